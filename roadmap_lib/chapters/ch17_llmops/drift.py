"""Chapter 17's drift experiment: the character GPT of chapter 07 (``gpt-char-jargon``) watches a
stream of incoming text, 64-character windows, grouped into *monitoring windows* of
:data:`WINDOW` text windows drawn at random from a part of the stream (one "day" of traffic: many
requests from many users, so not one contiguous document).

The stream is the Jargon File's validation text (the last 10 % of ``jargon.txt``, which the model
never trained on), dealt in blocks to three parts: the *reference* (the traffic the model was
checked on), a *calibration* part (no-drift days on which the alarm thresholds are set) and a
*test* part (other no-drift days, on which the false alarm rate is measured, and which the drifts
are applied to). Two drifts, each with an intensity:

- ``"noise"``: each character replaced, with probability ``rate``, by a random lowercase letter
  (typos, a broken text extractor);
- ``"zetan"``: a fraction of the day's windows replaced by windows of Zetan, the invented language of
  ``data/tasks/translation`` (another language arriving in the traffic).

Every text window is scored once (per-token NLL and mean-pooled embedding); a day's statistics
are computed from its windows' scores, so hundreds of days cost one forward pass over the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from roadmap_lib.data import load_task, load_text
from roadmap_lib.llmops import monitoring as mon

LENGTH = 64  # characters per text window (the model's context)
WINDOW = 32  # text windows per monitoring window ("day")
N_REFERENCE = 128  # text windows in the reference
N_CALIBRATION = 384  # text windows the calibration days are drawn from
N_TEST = 384  # text windows the test days are drawn from (clean and drifted)
N_ZETAN = 128  # Zetan windows the drifted days draw from
DAYS = 200  # monitoring windows drawn for calibration, and again for testing
FALSE_ALARM = 0.05  # the false alarm rate the thresholds are calibrated for
NOISE_RATES = (0.0, 0.01, 0.03, 0.1)
ZETAN_FRACTIONS = (0.0, 1 / 32, 2 / 32, 4 / 32, 8 / 32)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
STATISTICS = ("mean NLL", "KS on token NLL", "MMD² on embeddings")


def stream_parts(val_fraction: float = 0.1, block: int = 8 * LENGTH) -> dict[str, str]:
    """The Jargon File's validation text cut in blocks of ``block`` characters dealt in turn to the
    reference, calibration and test parts, so that all three cover the same stretch of the file
    (its entries are in alphabetical order: contiguous thirds would differ in topic, a drift of
    their own)."""
    text = load_text()
    val = text[len(text) - int(len(text) * val_fraction):]
    blocks = [val[i:i + block] for i in range(0, len(val) - block + 1, block)]
    return {name: "".join(blocks[k::3]) for k, name in enumerate(("reference", "calibration", "test"))}


def zetan_text() -> str:
    """Zetan sentences (the translation task's test split, targets), one per line."""
    return "\n".join(row["tgt"] for row in load_task("translation", "test"))


def add_noise(text: str, rate: float, seed: int) -> str:
    """Each character replaced, with probability ``rate``, by a random lowercase letter."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate: expected a probability in [0, 1], got {rate!r}")
    rng = np.random.default_rng(seed)
    chars = np.array(list(text))
    hit = rng.random(chars.size) < rate
    chars[hit] = rng.choice(list(LETTERS), size=int(hit.sum()))
    return "".join(chars)


def windows(text: str, vocab) -> torch.Tensor:
    """``text`` cut into consecutive non-overlapping windows: ``(n, LENGTH)`` ids."""
    ids = vocab.encode(text)
    n = len(ids) // LENGTH
    return ids[: n * LENGTH].reshape(n, LENGTH)


@dataclass
class Scores:
    """Per text window: token NLLs ``(n, LENGTH - 1)``, top-1 hits ``(n, LENGTH - 1)``, embeddings
    ``(n, d)``."""

    nll: torch.Tensor
    correct: torch.Tensor
    emb: torch.Tensor

    def take(self, idx) -> Scores:
        return Scores(self.nll[idx], self.correct[idx], self.emb[idx])

    def __len__(self) -> int:
        return len(self.nll)


def score(model, ids: torch.Tensor, batch: int = 64) -> Scores:
    """:func:`~roadmap_lib.llmops.score_windows` in batches of ``batch`` windows."""
    parts = [mon.score_windows(model, ids[i:i + batch]) for i in range(0, len(ids), batch)]
    return Scores(*(torch.cat([p[k] for p in parts]) for k in ("nll", "correct", "embedding")))


class Monitor:
    """The three drift statistics of a day against the fixed reference."""

    def __init__(self, reference: Scores):
        self.reference = reference
        half = len(reference) // 2
        self.bandwidth = mon.median_bandwidth(reference.emb[:half], reference.emb[half:])

    def statistics(self, day: Scores) -> dict[str, float]:
        ref = self.reference
        return {
            "mean NLL": float(day.nll.mean()),
            "KS on token NLL": mon.ks_statistic(day.nll, ref.nll),
            "MMD² on embeddings": mon.mmd2_unbiased(day.emb, ref.emb, self.bandwidth),
        }

    def ks_nominal_p(self, day: Scores) -> float:
        """The KS test's textbook p-value, which treats every token as an independent draw."""
        return mon.ks_pvalue(mon.ks_statistic(day.nll, self.reference.nll), day.nll.numel(), self.reference.nll.numel())


def draw_days(n_windows: int, days: int, seed: int) -> list[np.ndarray]:
    """``days`` days of :data:`WINDOW` distinct windows each, drawn at random from ``n_windows``."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n_windows, size=WINDOW, replace=False)) for _ in range(days)]


def drifted_day(clean: Scores, other: Scores, idx: np.ndarray, fraction: float, rng: np.random.Generator) -> Scores:
    """The day ``idx`` of ``clean`` with ``round(fraction · WINDOW)`` of its windows, picked at
    random, replaced by random windows of ``other``."""
    day = clean.take(idx)
    k = round(fraction * WINDOW)
    if k:
        slots = rng.choice(WINDOW, size=k, replace=False)
        picked = rng.choice(len(other), size=k, replace=False)
        day = Scores(day.nll.clone(), day.correct.clone(), day.emb.clone())
        day.nll[slots], day.correct[slots], day.emb[slots] = other.nll[picked], other.correct[picked], other.emb[picked]
    return day


def score_stream(model, vocab, *, seed: int = 0) -> dict:
    """Score every text window the experiment uses: the reference, the calibration pool, the test
    pool at every noise rate, and the Zetan pool (one forward pass each)."""
    parts = stream_parts()
    ref_ids = windows(parts["reference"], vocab)
    ref_ids = ref_ids[np.sort(np.random.default_rng(seed).choice(len(ref_ids), size=N_REFERENCE, replace=False))]
    test_chars = N_TEST * LENGTH
    return {
        "reference": score(model, ref_ids),
        "calibration": score(model, windows(parts["calibration"], vocab)[:N_CALIBRATION]),
        "noise": {r: score(model, windows(add_noise(parts["test"][:test_chars], r, seed + 1), vocab))
                  for r in NOISE_RATES},
        "zetan": score(model, windows(zetan_text(), vocab)[:N_ZETAN]),
    }


def run_drift_experiment(scores: dict, *, seed: int = 0, days: int = DAYS) -> dict:
    """Calibrate each statistic's threshold on ``days`` no-drift calibration days at
    :data:`FALSE_ALARM`, then measure its false alarm rate on ``days`` no-drift test days and its
    detection rate on the same test days under each drift and intensity. ``scores``: from
    :func:`score_stream`."""
    monitor = Monitor(scores["reference"])

    def per_day(day_list) -> dict[str, list[float]]:
        out = {s: [] for s in STATISTICS}
        for day in day_list:
            for k, v in monitor.statistics(day).items():
                out[k].append(v)
        return out

    calib = scores["calibration"]
    calib_stats = per_day([calib.take(i) for i in draw_days(len(calib), days, seed + 2)])
    thresholds = {s: mon.calibrate_threshold(calib_stats[s], FALSE_ALARM) for s in STATISTICS}
    clean = scores["noise"][0.0]
    test_days = draw_days(len(clean), days, seed + 3)
    nominal_p = [monitor.ks_nominal_p(clean.take(i)) for i in test_days]
    day_stats: dict[str, dict[float, dict[str, list[float]]]] = {"noise": {}, "zetan": {}}
    for r in NOISE_RATES:
        day_stats["noise"][r] = per_day([scores["noise"][r].take(i) for i in test_days])
    for f in ZETAN_FRACTIONS:
        rng = np.random.default_rng(seed + 4)
        day_stats["zetan"][f] = per_day([drifted_day(clean, scores["zetan"], i, f, rng) for i in test_days])
    detection = {kind: {x: {s: mon.alarm_rate(st[s], thresholds[s]) for s in STATISTICS} for x, st in by.items()}
                 for kind, by in day_stats.items()}
    return {
        "thresholds": thresholds,
        "calibration": calib_stats,
        "false_alarm": detection["noise"][0.0],
        "ks_nominal_p": nominal_p,
        "ks_nominal_false_alarm": float(np.mean(np.array(nominal_p) < FALSE_ALARM)),
        "detection": detection,
        "day_stats": day_stats,
        "bandwidth": monitor.bandwidth,
    }
