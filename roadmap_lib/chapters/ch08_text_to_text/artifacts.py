"""Chapter 08's shipped artifacts: two pretrained T5s (span corruption, BART-style infilling) and
the multitask and single-task fine-tunes."""

from __future__ import annotations

from pathlib import Path

from roadmap_lib.chapters.ch08_text_to_text import multitask, pretrain
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


ARTIFACTS = [
    *(_pretrained(o) for o in ("span", "denoise")),
    *(_finetuned(init, multitask.TASKS) for init in multitask.INITS),
    *(_finetuned("scratch", tasks) for tasks in multitask.SINGLE),
]
