"""Operating a model after training (chapter 17).

- :mod:`~roadmap_lib.llmops.monitoring`: perplexity and embedding drift, KS and MMD statistics,
  alarm thresholds calibrated on no-drift windows;
- :mod:`~roadmap_lib.llmops.stats`: the statistics of an A/B test (two-proportion z test,
  permutation tests paired and unpaired, sample size and power, the peeking problem);
- :mod:`~roadmap_lib.llmops.continual`: replay and L2-to-init against catastrophic forgetting;
- :mod:`~roadmap_lib.llmops.tracking`: MLflow runs and a model registry in a local SQLite store;
- :mod:`~roadmap_lib.llmops.gate`: a paired-bootstrap release gate and content hashes of weights.

``tracking`` imports MLflow (a few seconds), so it is not imported here: ``from
roadmap_lib.llmops.tracking import LocalTracking``.
"""

from roadmap_lib.llmops.continual import diagonal_fisher, ewc, l2_to_init, replay_batches
from roadmap_lib.llmops.monitoring import (
    alarm_rate,
    calibrate_threshold,
    ks_pvalue,
    ks_statistic,
    median_bandwidth,
    mmd2_unbiased,
    score_windows,
    token_nll,
    window_embeddings,
)
from roadmap_lib.llmops.stats import (
    TestResult,
    permutation_test,
    power_two_proportions,
    sample_size_two_proportions,
    simulate_peeking,
    two_proportion_ztest,
)

__all__ = [
    "TestResult",
    "alarm_rate",
    "calibrate_threshold",
    "diagonal_fisher",
    "ewc",
    "ks_pvalue",
    "ks_statistic",
    "l2_to_init",
    "median_bandwidth",
    "mmd2_unbiased",
    "permutation_test",
    "power_two_proportions",
    "replay_batches",
    "sample_size_two_proportions",
    "score_windows",
    "simulate_peeking",
    "token_nll",
    "two_proportion_ztest",
    "window_embeddings",
]
