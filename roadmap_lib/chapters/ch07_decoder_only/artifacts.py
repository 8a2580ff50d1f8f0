"""Chapter 07's shipped artifact: the character-level GPT of the zoo."""

from __future__ import annotations

from pathlib import Path

from roadmap_lib.chapters.ch07_decoder_only import char_gpt
from roadmap_lib.zoo import Artifact, check


def _artifact(name: str) -> Artifact:
    def build(root: Path) -> None:
        char_gpt.build(name, root / "zoo")

    def verify(root: Path):
        got, recorded = char_gpt.verify(name, root / "zoo")
        return [check("eval loss (nats/char)", got, recorded, 2e-3)]

    return Artifact(name, "07", char_gpt.ENTRIES[name].description,
                    (f"zoo/{name}.safetensors", f"zoo/{name}.json"), build, verify,
                    seed=char_gpt.ENTRIES[name].seed)


ARTIFACTS = [_artifact(name) for name in char_gpt.ENTRIES]
