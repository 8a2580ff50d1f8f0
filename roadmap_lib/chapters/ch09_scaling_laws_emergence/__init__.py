"""Chapter 09, scaling laws and emergence: the sweep of tiny character GPTs, its artifact, figures.

``sweep`` trains one model per size on ``data/jargon.txt`` and records its validation curve and
its per-character scores; ``artifacts`` registers the shipped results file; ``plots`` draws the
frontier, IsoFLOP profiles and emergence curves; ``exercises`` holds the exercise checks.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
