"""Chapter 17's figures. Each takes ``ax=None`` (a new figure) and returns the axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from roadmap_lib.chapters.ch17_llmops.drift import FALSE_ALARM, STATISTICS

COLORS = dict(zip(STATISTICS, ("C0", "C1", "C2")))
KIND_LABEL = {"noise": "characters replaced at random (rate)",
              "zetan": "share of the day's requests in Zetan"}


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(6, 4))[1]


def plot_detection(results: list[dict], kind: str, ax=None):
    """Alarm rate against drift intensity, one line per statistic: the mean over seeds (``results``
    from :func:`~.drift.run_drift_experiment`, one per seed), the band from the lowest to the
    highest seed. The intensity 0 point is the false alarm rate on no-drift test days."""
    ax = _ax(ax)
    xs = list(results[0]["detection"][kind])
    for s in STATISTICS:
        rates = np.array([[r["detection"][kind][x][s] for x in xs] for r in results])
        ax.plot(xs, rates.mean(0), "o-", color=COLORS[s], label=s)
        ax.fill_between(xs, rates.min(0), rates.max(0), color=COLORS[s], alpha=0.2)
    ax.axhline(FALSE_ALARM, color="gray", ls=":", label=f"calibrated false alarm rate ({FALSE_ALARM:.0%})")
    ax.set(xlabel=KIND_LABEL[kind], ylabel="share of days with an alarm", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    return ax


def plot_day_statistic(result: dict, kind: str, intensity: float, statistic: str, ax=None):
    """Histogram of one statistic over the no-drift test days and over the same days under a drift,
    with the calibrated threshold."""
    ax = _ax(ax)
    null = result["day_stats"][kind][0.0][statistic]
    drift = result["day_stats"][kind][intensity][statistic]
    bins = np.histogram_bin_edges(np.concatenate([null, drift]), bins=30)
    ax.hist(null, bins=bins, alpha=0.6, label="no drift", color="gray")
    ax.hist(drift, bins=bins, alpha=0.6, label=f"{kind} {intensity:.3g}", color=COLORS[statistic])
    ax.axvline(result["thresholds"][statistic], color="k", ls="--", label="threshold")
    ax.set(xlabel=statistic, ylabel="days")
    ax.legend(fontsize=8)
    return ax


def plot_forgetting(record: dict, ax=None):
    """Each run's forgetting (rise of the English loss) against its gain (fall of the Zetan loss),
    one colour per method; crosses mark the means over seeds."""
    ax = _ax(ax)
    methods = list(dict.fromkeys(r["method"] for r in record["runs"]))
    for i, m in enumerate(methods):
        runs = [r for r in record["runs"] if r["method"] == m]
        g, f = [r["gain"] for r in runs], [r["forgetting"] for r in runs]
        ax.scatter(g, f, color=f"C{i}", alpha=0.6, label=m)
        ax.scatter([np.mean(g)], [np.mean(f)], color=f"C{i}", marker="x", s=90)
    ax.set(xlabel="gain on Zetan (nats/char, higher is better)",
           ylabel="forgetting of English (nats/char, lower is better)")
    ax.legend(fontsize=8)
    return ax


def plot_power(traffic, power: dict, ax=None):
    """Share of draws in which the test rejected, against the requests per model."""
    ax = _ax(ax)
    for k, v in power.items():
        ax.plot(traffic, v, "o-", label=k)
    ax.set(xscale="log", xlabel="requests per model", ylabel="share of draws with p < 0.05", ylim=(-0.02, 1.02))
    ax.set_xticks(list(traffic), [str(t) for t in traffic])
    ax.legend()
    return ax


def plot_peeking(looks, rates: np.ndarray, alpha: float, ax=None):
    """False positive rate of an A/A test against the number of looks (rows of ``rates``: seeds)."""
    ax = _ax(ax)
    ax.plot(looks, rates.mean(0), "o-", label="stop at the first p < α")
    ax.fill_between(looks, rates.min(0), rates.max(0), alpha=0.25)
    ax.axhline(alpha, color="gray", ls=":", label=f"α = {alpha}")
    ax.set(xscale="log", xlabel="looks at the running test", ylabel="false positive rate")
    ax.set_xticks(list(looks), [str(k) for k in looks])
    ax.legend()
    return ax
