"""Chapter 04's shipped artifact: the activation comparison, five activations by three seeds."""

from __future__ import annotations

from pathlib import Path

from roadmap_lib.chapters.ch04_core_components import activations as act
from roadmap_lib.zoo import Artifact, check

#: 200 steps from the same seed give the same loss on one machine; across CPUs, float rounding
#: differs in the last digits and a short run amplifies it a little.
RETRAIN_TOL = 0.01


def _verify(root: Path):
    info = act.load_results(root / act.RESULTS_FILE)
    got = act.run_one("swiglu", 0)
    want = next(r for r in info["runs"] if (r["activation"], r["seed"]) == ("swiglu", 0))
    return [check("swiglu seed 0 validation loss", got["val_loss"], want["val_loss"], RETRAIN_TOL)]


ARTIFACTS = [
    Artifact("04-activations", "04", "validation loss of chapter 04's character model by FFN activation "
             "at equal parameters, 3 seeds", (act.RESULTS_FILE,), act.write, _verify),
]
