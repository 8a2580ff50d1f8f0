"""Chapter 12, efficient architectures: one task, one budget, every sequence mixer.

``models`` is the small language model whose mixer is swapped (dense, sliding window, BigBird,
linear attention, S4D, Mamba; dense or MoE feed-forward); ``task`` the Jargon File text with an
associative-recall probe; ``experiment`` trains and summarises the sweep, shipped by
``artifacts`` (``python -m roadmap_lib build ch12-sweep``); ``plots`` draws the figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
