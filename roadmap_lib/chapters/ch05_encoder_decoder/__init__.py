"""Chapter 05, the encoder-decoder: the English->Zetan translation experiment and its figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
