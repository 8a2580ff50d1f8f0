"""Chapter 08's shipped artifacts: two pretrained T5s (span corruption, BART-style infilling) and
the multitask and single-task fine-tunes."""

from __future__ import annotations

import json
from pathlib import Path

from roadmap_lib.chapters.ch08_text_to_text import diagnose, multitask, pretrain
from roadmap_lib.zoo import Artifact, check


def _files(name: str) -> tuple[str, str]:
    return (f"zoo/{name}.safetensors", f"zoo/{name}.json")


def _pretrained(objective: str) -> Artifact:
    name = pretrain.name_of(objective)

    def build(root: Path) -> None:
        pretrain.build(objective, root / "zoo")

    def verify(root: Path):
        got = pretrain.verify(objective, root / "zoo")
        return [check("validation loss (nats/target token)", got["val_loss"], got["recorded"], 1e-4)]

    what = "span corruption" if objective == "span" else "BART-style text infilling"
    return Artifact(name, "08", f"word-level T5 pretrained with {what} on Jargon File sentences",
                    _files(name), build, verify)


def _finetuned(init: str, tasks: tuple[str, ...]) -> Artifact:
    name = multitask.name_of(init, tasks)

    def build(root: Path) -> None:
        multitask.build(init, tasks, root / "zoo")

    def verify(root: Path):
        result = multitask.verify(init, tasks, root / "zoo")
        got, recorded = result["got"], result["recorded"]
        tol = {"val_loss": 1e-4, "bleu": 0.5, "fix_bleu": 0.5}  # exact-match rates: 0.01
        return [check(k, got[k], recorded[k], tol.get(k, 0.01)) for k in recorded]

    needs = () if init == "scratch" else (pretrain.name_of(init),)
    return Artifact(name, "08", f"word-level T5 ({init} initialisation) fine-tuned on "
                    f"{' + '.join(tasks)}", _files(name), build, verify, needs=(*needs, "tasks"))


def _build_diagnosis(root: Path) -> None:
    diagnose.build(root / diagnose.RESULTS)


def _verify_diagnosis(root: Path):
    """The count-based baselines are recomputed in full; the overfitting run's first logged steps
    are re-run (the same-budget training runs are not: ten minutes)."""
    info = json.loads((root / diagnose.RESULTS).read_text(encoding="utf-8"))
    data = pretrain.PretrainData("span")
    got = diagnose.context_baselines(data)
    checks = [check(f"{k} loss on the hidden words", got[k], info["baselines"][k], 1e-9)
              for k in ("unigram", "left_bigram", "right_bigram")]
    checks.append(check("word prior (nats)", pretrain.word_prior(data), info["prior"], 1e-9))
    logged = diagnose.overfit_one_batch(data, steps=diagnose.OVERFIT["log_every"])
    checks += [check(f"overfitting loss at step {r['step']}", r["loss"], info["overfit"]["log"][i]["loss"], 2e-3)
               for i, r in enumerate(logged)]
    return checks


ARTIFACTS = [
    *(_pretrained(o) for o in ("span", "denoise")),
    *(_finetuned(init, multitask.TASKS) for init in multitask.INITS),
    *(_finetuned("scratch", tasks) for tasks in multitask.SINGLE),
    Artifact("08-span-diagnosis", "08", "why the span-corruption model learns only the word prior: "
             "overfitting one batch, transformers' T5 at the same budget, count-based context baselines",
             (diagnose.RESULTS,), _build_diagnosis, _verify_diagnosis, needs=("tasks",)),
]
