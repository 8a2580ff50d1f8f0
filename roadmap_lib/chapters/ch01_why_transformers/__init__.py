"""Chapter 01, why transformers: the long-range recall experiment (LSTM vs attention) and the model timeline.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
