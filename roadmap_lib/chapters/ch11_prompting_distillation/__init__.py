"""Chapter 11, prompting and distillation.

``distill`` trains the students of the size/quality table (from scratch, with soft targets, on the
teacher's text) and writes the shipped ``gpt-char-distilled``; ``cot`` the chain-of-thought experiment
(direct answers against scratchpads on parity, self-consistency, best-of-n with a verifier, a
calculator tool loop) behind ``11-cot``; ``analysis`` holds the small live
measurements (soft targets at a temperature, the gradient scale of the soft loss); ``plots`` the
figures; ``exercises`` the exercise checks; ``artifacts`` the registration.

Chapter code: it imports the core of roadmap_lib and this chapter's own modules only
(CONTRIBUTING.md, "Where code goes").
"""
