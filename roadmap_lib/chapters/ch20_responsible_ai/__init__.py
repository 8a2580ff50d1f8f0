"""Chapter 20, responsible AI: watermark, bias and canary experiments, documentation, figures.

``experiments`` runs the measurements (green-list watermark on the zoo char GPT, WEAT on the zoo word
BERT, minimal-pair likelihood gaps, canaries in tiny char GPTs); ``artifacts`` ships the canary
study; ``docs`` writes model cards and energy estimates from the project's records; ``exercises``
holds the exercise checks; ``plots`` draws the figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
