"""Chapter 03, positional encodings: the extrapolation experiment and its figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
