"""Chapter 06, encoder-only models: word-level BERT pretraining, fine-tuning, the sweep, figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
