"""Chapter 07, decoder-only models: sampling analysis of the character-level GPT and its figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
