"""Chapter 10's shipped artifacts: the results of the fine-tuning-depth sweep, of the objectives at
equal compute and of instruction tuning."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch10_pretraining_finetuning import finetune, instruct
from roadmap_lib.chapters.ch10_pretraining_finetuning import objectives_compare as oc
from roadmap_lib.zoo import Artifact, check


def _build_depth(root: Path) -> None:
    finetune.build(root / finetune.RESULTS)


def _verify_depth(root: Path):
    """Re-run one cell (head only, seed 0: the cheapest, about 10 s on one core) and compare its F1."""
    info = json.loads((root / finetune.RESULTS).read_text(encoding="utf-8"))
    recorded = next(r for r in info["runs"] if (r["level"], r["seed"]) == ("head only", 0))
    got = finetune.rerun_point("head only", 0)
    return [check("F1 (head only, seed 0)", got["f1"], recorded["f1"], 0.01),
            check("trainable parameters (head only)", got["trainable"], recorded["trainable"], 0),
            check("runs in the sweep", len(info["runs"]), len(finetune.SEEDS) * len(finetune.LEVELS), 0)]


def _build_objectives(root: Path) -> None:
    oc.build(root / oc.RESULTS)


def _verify_objectives(root: Path):
    """Re-run one pretrained cell (causal LM, seed 0: pretraining and the probe, about 35 s on one
    core) and the FLOP count of a step."""
    info = json.loads((root / oc.RESULTS).read_text(encoding="utf-8"))
    recorded = next(r for r in info["runs"] if (r["objective"], r["seed"]) == ("causal LM", 0))
    got = oc.run_cell("causal LM", 0, finetune=False)
    vocab = oc.load_vocab()
    return [check("probe ROC-AUC (causal LM, seed 0)", got["probe"], recorded["probe"], 0.01),
            check("pretraining loss (causal LM, seed 0)", got["final_loss"], recorded["final_loss"], 0.02),
            check("FLOPs per step", oc.step_flops("causal LM", vocab, oc.pretraining_docs(vocab)),
                  info["flops_per_step"]["causal LM"], 0),
            check("runs", len(info["runs"]), len(oc.SEEDS) * (len(oc.OBJECTIVES) + 1), 0)]


def _build_instruct(root: Path) -> None:
    instruct.build(root)


def _verify_instruct(root: Path):
    """Replay the first steps of one cell (varied templates, seed 0) against its recorded losses, and
    re-score the untuned model on every evaluation set. A whole cell (600 steps and its scoring, about
    70 CPU s) and the study are ``build``'s."""
    info = json.loads((root / instruct.RESULTS).read_text(encoding="utf-8"))
    recorded = next(r for r in info["runs"] if (r["condition"], r["seed"]) == ("varied", 0))["first_losses"]
    _, result = instruct.tune("varied", 0, stop_at=len(recorded))
    worst = max(abs(r["loss"] - want) for r, want in zip(result.log, recorded))
    base, want = instruct.base_row(), next(r for r in info["runs"] if r["condition"] == instruct.BASE)
    return [check("steps replayed (varied, seed 0)", len(result.log), len(recorded), 0),
            check("largest loss difference over the replayed steps (varied, seed 0)", worst, 0.0, 1e-3),
            *(check(f"exact match of the untuned model, {s}", base["scores"][s]["exact"],
                    want["scores"][s]["exact"], 0.02) for s in instruct.EVAL_SETS),
            # the untuned model scores 0 everywhere, so its greedy answers to the shown prompts are the
            # sharper check of the generation path (another CPU's rounding may flip one near-tie)
            check("untuned greedy answers equal to the recorded ones", sum(a == b for a, b in zip(
                base["examples"], want["examples"])), len(want["examples"]), 1),
            check("runs", len(info["runs"]), 1 + len(instruct.SEEDS) * len(instruct.CONDITIONS), 0)]


ARTIFACTS = [
    Artifact("10-finetune-depth", "10", "how much of the zoo word BERT to fine-tune on intruder tagging: "
             "head only, top block + head, full; 3 seeds", (finetune.RESULTS,), _build_depth, _verify_depth,
             needs=("bert-word-jargon",)),
    Artifact("10-objectives", "10", "causal LM, masked LM, prefix LM and span corruption pretrained at equal "
             "FLOPs on Jargon File sentences, judged by a linear probe and a fine-tune on intruder tagging; "
             "3 seeds", (oc.RESULTS,), _build_objectives, _verify_objectives, needs=("bert-word-jargon",)),
    Artifact("10-instruct", "10", "instruction tuning of the zoo character GPT on templated instructions "
             "(4 seen task families, 2 held out; varied templates vs one template each), exact match on "
             "held-out templates and families; 3 seeds", (instruct.RESULTS,), _build_instruct, _verify_instruct,
             needs=("gpt-char-jargon",)),
]
