"""Chapter 19's figures and tables: true reward against KL per method, the over-optimisation
curve, DPO-family losses as functions of the implicit reward margin, and best-of-n selection by
outcome and process rewards."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from roadmap_lib.alignment import dpo_loss

from .experiments import OFFLINE, summary
from .process_rewards import LABELS as SELECTOR_LABELS
from .process_rewards import SELECTORS, selection_stats

LABELS = {"dpo": "DPO", "ipo": "IPO", "kto": "KTO", "orpo": "ORPO", "ppo": "PPO (learned RM)",
          "grpo": "GRPO (learned RM)"}
MARKERS = {"dpo": "o", "ipo": "s", "kto": "^", "orpo": "v", "ppo": "D", "grpo": "P"}


def _axes(ax, size=(6, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def plot_kl_vs_reward(results: dict, ax=None, *, metric: str = "true_reward"):
    """Each seed of each method as a faint point, the mean ± one std over seeds as a bold one;
    the start model at KL = 0."""
    ax = _axes(ax)
    for i, (method, runs) in enumerate(results["runs"].items()):
        color = f"C{i}"
        kl = torch.tensor([r["kl"] for r in runs])
        y = torch.tensor([r[metric] for r in runs])
        ax.scatter(kl, y, color=color, alpha=0.35, marker=MARKERS.get(method, "o"), s=25)
        ax.errorbar(kl.mean(), y.mean(), xerr=kl.std(), yerr=y.std(), color=color, marker=MARKERS.get(method, "o"),
                    markersize=8, capsize=3, label=LABELS.get(method, method) + (" (offline)" if method in OFFLINE else ""))
    ax.scatter([0], [results["start"][metric]], color="k", marker="*", s=120, label="start (zoo GPT)", zorder=3)
    ax.set_xlabel("KL(π ‖ π_ref) per 16-character completion (nats)")
    ax.set_ylabel(metric.replace("_", " ") + " (held-out prompts)")
    ax.set_title(f"{len(results['seeds'])} seeds per method: faint = one seed, bold = mean ± std")
    ax.legend(fontsize=8)
    return ax


def plot_overoptimisation(results: dict, ax=None):
    """True reward and reward-model score of the policy along the long β = 0 run, against KL."""
    ax = _axes(ax)
    curve = results["overoptimisation"]["curve"]
    kl = [c["kl"] for c in curve]
    ax.plot(kl, [c["true_reward"] for c in curve], "o-", color="C0", label="true reward (ground truth)")
    ax.set_xlabel("KL(π ‖ π_ref) per completion (nats)")
    ax.set_ylabel("true reward", color="C0")
    twin = ax.twinx()
    twin.plot(kl, [c["proxy_reward"] for c in curve], "s--", color="C3", label="reward-model score (proxy)")
    twin.set_ylabel("reward-model score", color="C3")
    for c in curve[:: max(1, len(curve) // 5)]:
        ax.annotate(f"step {c['step']}", (c["kl"], c["true_reward"]), fontsize=7, textcoords="offset points",
                    xytext=(3, -10))
    lines = ax.get_lines()[:1] + twin.get_lines()[:1]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="lower right")
    ax.set_title(f"GRPO on the learned reward, β = {results['overoptimisation']['beta']}")
    return ax


def curve_stats(curves: list[list[dict]], key: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(steps, mean, std)`` over seeds of one metric of the over-optimisation curves."""
    x = torch.tensor([[c[key] for c in curve] for curve in curves], dtype=torch.float64)
    return torch.tensor([c["step"] for c in curves[0]]), x.mean(0), x.std(0)


def plot_overoptimisation_seeds(record: dict, ax=None):
    """True reward (left axis) and reward-model score (right axis) against GRPO iterations: each
    seed faint, the mean over seeds bold."""
    ax = _axes(ax)
    twin = ax.twinx()
    for axis, key, color, style, label in ((ax, "true_reward", "C0", "o-", "true reward (ground truth)"),
                                           (twin, "proxy_reward", "C3", "s--", "reward-model score (proxy)")):
        for curve in record["curves"]:
            axis.plot([c["step"] for c in curve], [c[key] for c in curve], style, color=color, alpha=0.25, ms=3)
        steps, mean, _ = curve_stats(record["curves"], key)
        axis.plot(steps, mean, style, color=color, lw=2.5, label=label + ", mean")
    ax.set_xlabel("GRPO iteration (32 samples each)")
    ax.set_ylabel("true reward", color="C0")
    twin.set_ylabel("reward-model score", color="C3")
    lines = ax.get_lines()[-1:] + twin.get_lines()[-1:]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper left")
    ax.set_title(f"reward model fitted to {record['reward_model']['pairs']} pairs; "
                 f"{len(record['curves'])} seeds, β = {record['beta']}")
    return ax


def dpo_family_curves(beta: float, margins: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss of one pair as a function of the log-ratio margin
    h = (log π/π_ref)(y_w) − (log π/π_ref)(y_l), for DPO (sigmoid), IPO and hinge at ``beta``."""
    zeros = torch.zeros_like(margins)
    return {kind: dpo_loss(margins, zeros, zeros, zeros, beta=beta, loss_type=kind, reduction="none")
            for kind in ("sigmoid", "ipo", "hinge")}


def plot_dpo_family(beta: float = 0.1, ax=None, *, h_max: float = 40.0):
    """The three losses against the margin h at ``beta``; IPO's minimum sits at h = 1/(2β)."""
    ax = _axes(ax)
    h = torch.linspace(-h_max / 2, h_max, 301)
    for kind, loss in dpo_family_curves(beta, h).items():
        ax.plot(h, loss, label={"sigmoid": "DPO", "ipo": "IPO", "hinge": "hinge (SLiC)"}[kind])
    ax.axvline(1 / (2 * beta), color="grey", ls=":", label="1/(2β): IPO's target")
    ax.set_ylim(0, 3)
    ax.set_xlabel("margin h (nats): how much more the policy favours y_w than the reference does")
    ax.set_ylabel("loss of one pair")
    ax.set_title(f"β = {beta:g}")
    ax.legend(fontsize=8)
    return ax


def table_markdown(results: dict) -> str:
    """Mean ± std over seeds of each method's held-out numbers, as a Markdown table."""
    rows = ["| method | true reward | win rate vs start | reward-model score | KL (nats) |", "|---|---|---|---|---|"]
    s = results["start"]
    rows.append(f"| start (zoo GPT) | {s['true_reward']:.3f} | {s['win_rate']:.3f} | {s['proxy_reward']:.3f} | 0 |")
    for method, m in summary(results).items():
        cells = [f"{m[k][0]:.3f} ± {m[k][1]:.3f}" for k in ("true_reward", "win_rate", "proxy_reward", "kl")]
        rows.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


__all__ = ["curve_stats", "dpo_family_curves", "plot_dpo_family", "plot_kl_vs_reward", "plot_overoptimisation",
           "plot_overoptimisation_seeds", "table_markdown"]


def plot_selection(runs: list[dict], axes=None):
    """Best-of-n with each selector (chapter 19, section 8): final-answer accuracy (left) and the
    share of selected solutions whose every step is right (right) against n; faint lines are
    seeds, bold ones the mean ± one std over seeds."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    ns = runs[0]["ns"]
    for ax, metric, title in zip(axes, ("answer_accuracy", "path_correct"),
                                 ("final answer right", "every step right")):
        for i, sel in enumerate(SELECTORS):
            for r in runs:
                ax.plot(ns, r["curves"][sel][metric], color=f"C{i}", alpha=0.25, lw=1)
            mean, std = selection_stats(runs, sel, metric)
            ax.errorbar(ns, mean, yerr=std, color=f"C{i}", marker="o", capsize=3, label=SELECTOR_LABELS[sel])
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("n candidates per problem")
        ax.set_ylabel(f"share of selected solutions: {title}")
        ax.set_title(f"best-of-n, {len(runs)} seeds (faint = one seed)")
    axes[1].legend(fontsize=8, loc="lower right")
    return axes
