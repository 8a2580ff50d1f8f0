"""Chapter 17 (LLMOps): drift monitoring, A/B tests, continual learning and experiment tracking
on the project's own models."""
