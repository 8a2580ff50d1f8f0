"""Chapter 08, text-to-text: T5 span corruption vs BART infilling, multitask fine-tuning, figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
