"""Chapter 04, core components: attention scaling, norm placement, activations, bit tasks, and their figures.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
