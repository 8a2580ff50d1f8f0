"""Chapter 14, quantization: the table's methods, the measurements behind each section, figures.

``methods`` builds every variant of the table (float32, bfloat16, torch's dynamic int8 kernels,
LLM.int8() layers and everything :func:`roadmap_lib.quantization.quantize_model` offers) and counts
their bytes; ``experiments`` measures them (held-out perplexity with its noise, activation outlier
channels, per-layer errors); ``plots`` draws the figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
