"""Chapter 16's shipped artifact: the fine-tuning sweep's results (every method, three seeds)."""

from __future__ import annotations

from pathlib import Path

from roadmap_lib.chapters.ch16_peft_lora_qlora import study
from roadmap_lib.chapters.ch16_peft_lora_qlora.experiments import METHODS, SEEDS, run_one
from roadmap_lib.zoo import Artifact, check

#: the cell that :func:`_verify_sweep` and the chapter re-run live
LIVE_METHOD, LIVE_SEED = "qlora r=4 qv", 0


def _build_sweep(root: Path) -> None:
    study.build(root / study.RESULTS, jobs=2)


def _verify_sweep(root: Path):
    """Re-run one cell of the sweep (QLoRA r=4 on q/v, seed 0, about 20 s on one core) and compare
    its validation loss with the recorded one; count the runs."""
    record = study.load(root / study.RESULTS)
    recorded = next(r for r in record["runs"] if (r["method"], r["seed"]) == (LIVE_METHOD, LIVE_SEED))
    got = run_one(LIVE_METHOD, LIVE_SEED, record["steps"])
    return [check(f"val loss ({LIVE_METHOD}, seed {LIVE_SEED})", got["val_loss"],
                  recorded["val_loss"], 2e-3),
            check("trainable parameters", got["trainable"], recorded["trainable"], 0),
            check("runs in the sweep", len(record["runs"]), len(METHODS) * len(SEEDS), 0)]


ARTIFACTS = [
    Artifact("16-peft-sweep", "16", "fine-tuning the char GPT on Zetan text: full, LoRA (ranks 1, "
             "4, 16; q/v or all linear layers), DoRA, QLoRA, prompt tuning, IA3; 3 seeds",
             (study.RESULTS,), _build_sweep, _verify_sweep, needs=("gpt-char-jargon", "tasks")),
]
