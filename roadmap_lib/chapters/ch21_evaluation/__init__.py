"""Chapter 21: evaluation (metrics, log-likelihood benchmarks, contamination, perturbations, reasoning paths, judges, confidence intervals)."""
