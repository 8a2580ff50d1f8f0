"""Chapter 13, FlashAttention kernels: error studies, the HBM traffic model, figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
