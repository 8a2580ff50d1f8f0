"""Writing and reading a results file with the model it ships, laid out like ``data/``: shared by
the chapter's chain-of-thought (``11-cot``) and few-shot (``11-fewshot``) artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from roadmap_lib.checkpoint import load_model as load_weights
from roadmap_lib.checkpoint import save_model


def save(root: Path, results: str, record: dict, model: torch.nn.Module, checkpoint: str, config: dict) -> None:
    """``root/results`` (the record as JSON) and ``root/checkpoint`` (the weights, with ``config``
    and the record's ``kept_model_seed`` and ``task`` as metadata)."""
    (root / checkpoint).parent.mkdir(parents=True, exist_ok=True)
    (root / results).write_text(json.dumps(record, indent=1), encoding="utf-8")
    save_model(model, root / checkpoint, config=config,
               extra={"seed": record["kept_model_seed"], "task": record["task"]})


def load(model: torch.nn.Module, root: Path, checkpoint: str) -> torch.nn.Module:
    """``model`` with the weights of ``root/checkpoint``, in eval mode."""
    load_weights(model, root / checkpoint)
    return model.eval()


__all__ = ["load", "save"]
