"""Chapter 20's shipped artifact: the canary study (tiny char GPTs trained with planted secrets).

Training three tiny models takes a few minutes on one thread, too long for the notebook, so
``python -m roadmap_lib build 20-canaries`` runs it once and records every canary's exposure and
whether greedy decoding extracts it; ``verify`` retrains seed 0 and re-measures its canaries.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib.chapters.ch20_responsible_ai import experiments as E
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.zoo import Artifact, check

RESULTS = "20_canaries.json"
SEEDS, STEPS = (0, 1, 2), 600


def _timed(run):
    """``(run(), seconds)`` on one thread."""
    with cpu_threads(1):
        start = time.perf_counter()
        out = run()
        return out, time.perf_counter() - start


def _build(root: Path) -> None:
    study, seconds = _timed(lambda: E.canary_study(SEEDS, steps=STEPS))
    info = {"name": "20-canaries", "description": "exposure of planted 4-digit canaries in tiny char GPTs "
            f"(2 layers, 64 dims, context 32, {STEPS} steps, batch 32) trained on the first 120 000 "
            "characters of the Jargon File; two canaries per duplicate count, 3 seeds",
            "model_config": E.TINY, "steps": STEPS, "seeds": list(SEEDS), "duplicates": list(E.DUPLICATES),
            "candidates": len(E.ALL_PINS), **study, "seconds": round(seconds, 1),
            "command": "python -m roadmap_lib build 20-canaries", "torch": torch.__version__}
    atomic_write_text(root / RESULTS, json.dumps(info, indent=1) + "\n")


def results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / RESULTS).read_text(encoding="utf-8"))


def _verify(root: Path):
    """Retrain seed 0 (about a minute on one thread) and re-measure its canaries' exposures."""
    info = results(root)
    with cpu_threads(1):
        got = E.canary_study((0,), steps=info["steps"])
    recorded = [r for r in info["rows"] if r["seed"] == 0]
    return [check(f"exposure of canary {r['name']} (seed 0, {r['duplicates']} copies, bits)", g["exposure"],
                  r["exposure"], 0.05) for g, r in zip(got["rows"], recorded)] + [
            check("canaries in the study", len(info["rows"]), 2 * len(E.DUPLICATES) * len(SEEDS), 0)]


MEMORISATION = "20_memorisation.json"


def _build_memorisation(root: Path) -> None:
    study, seconds = _timed(lambda: E.memorisation_study(E.SIZES, SEEDS, steps=STEPS))
    info = {"name": "20-memorisation", "description": "canary exposure and verbatim extraction against "
            f"training copies and model size: char GPTs of 2 layers, 4 heads, context 32 and width "
            f"{', '.join(map(str, E.SIZES))}, {STEPS} steps of batch 32 on the first 120 000 characters "
            "of the Jargon File with the canaries of 20-canaries; 3 seeds",
            "model_config": E.TINY, "sizes": list(E.SIZES), "steps": STEPS, "seeds": list(SEEDS),
            "duplicates": list(E.DUPLICATES), "candidates": len(E.ALL_PINS), **study,
            "seconds": round(seconds, 1), "command": "python -m roadmap_lib build 20-memorisation",
            "torch": torch.__version__}
    atomic_write_text(root / MEMORISATION, json.dumps(info, indent=1) + "\n")


def memorisation_results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / MEMORISATION).read_text(encoding="utf-8"))


def _verify_memorisation(root: Path):
    """Retrain the smallest width with seed 0 (well under a minute on one thread) and re-measure its
    canaries' exposures and greedy extractions."""
    info = memorisation_results(root)
    d = min(info["sizes"])
    with cpu_threads(1):
        got = E.memorisation_study((d,), (0,), steps=info["steps"])
    recorded = [r for r in info["rows"] if r["seed"] == 0 and r["d_model"] == d]
    return [check(f"exposure of canary {r['name']} (width {d}, seed 0, {r['duplicates']} copies, bits)",
                  g["exposure"], r["exposure"], 0.05) for g, r in zip(got["rows"], recorded)] + [
            check(f"greedy extractions (width {d}, seed 0)", sum(g["greedy"] for g in got["rows"]),
                  sum(r["greedy"] for r in recorded), 0),
            check("canaries in the study", len(info["rows"]),
                  2 * len(E.DUPLICATES) * len(SEEDS) * len(info["sizes"]), 0)]


INJECTION = "20_injection.json"
INJECTION_SEEDS, INJECTION_STEPS = (0, 1, 2), 600


def _build_injection(root: Path) -> None:
    from roadmap_lib.chapters.ch20_responsible_ai import injection as J

    record, seconds = _timed(lambda: J.study_record(J.injection_study(INJECTION_SEEDS, steps=INJECTION_STEPS)))
    info = {"name": "20-injection", "description": "prompt-injection attacks on a toy instruction-following "
            f"GPT ({J.CONFIG}), {INJECTION_STEPS} steps of batch 32 on generated prompts, base and "
            "instruction-hierarchy training, input classifier and output filter, 3 seeds",
            "model_config": J.CONFIG, **record, "seconds": round(seconds, 1),
            "command": "python -m roadmap_lib build 20-injection", "torch": torch.__version__}
    atomic_write_text(root / INJECTION, json.dumps(info, indent=1) + "\n")


def injection_results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / INJECTION).read_text(encoding="utf-8"))


def _verify_injection(root: Path):
    """Retrain seed 0 (base and hierarchy, under a minute on one thread) and re-measure its rates."""
    from roadmap_lib.chapters.ch20_responsible_ai import injection as J

    info = injection_results(root)
    with cpu_threads(1):
        got = J.study_record(J.injection_study((0,), steps=info["steps"], n_test=info["n_test"]))
    return [check(f"leak rate, {f}, {d} (seed 0)", got["success"][f][d][0], info["success"][f][d][0], 0.05)
            for f in J.ATTACK_NAMES for d in J.DEFENCES] + [
            check(f"benign refusals, {d} (seed 0)", got["refused"][d][0], info["refused"][d][0], 0.05)
            for d in J.DEFENCES]


ARTIFACTS = [
    Artifact("20-injection", "20", "attacks on a toy instruction-following GPT and defences, 3 seeds",
             (INJECTION,), _build_injection, _verify_injection),
    Artifact("20-canaries", "20", "canary exposure vs number of training copies in tiny char GPTs, 3 seeds",
             (RESULTS,), _build, _verify),
    Artifact("20-memorisation", "20", "canary exposure and greedy extraction vs copies and model width "
             "(32/64/128), 3 seeds", (MEMORISATION,), _build_memorisation, _verify_memorisation),
]
