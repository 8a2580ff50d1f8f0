"""Safetensors checkpoints: a model's weights, or a whole training state, in one file.

safetensors stores named tensors plus a ``str -> str`` metadata header and never runs code on load
(unlike pickle). Everything that is not a tensor (the config, the step, the optimiser's
hyper-parameters, the metrics log) goes into the header as JSON.

Writes are atomic: the file is written next to its destination under a temporary name, then
``os.replace``-d, so a crash never leaves half a checkpoint behind. Loading checks the file and the
model against each other and says precisely what does not match.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .fileio import atomic_path

FORMAT = "roadmap_lib/1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or that does not fit the model it is loaded into."""


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for bad headers / truncation
        raise CheckpointError(
            f"checkpoint {path} is not a readable safetensors file ({type(err).__name__}: {err}); "
            "it may be truncated or corrupt: rebuild it"
        ) from err
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path}: expected metadata format {FORMAT!r}, got {metadata.get('format')!r}"
        )
    return tensors, metadata


def _model_tensors(model: torch.nn.Module, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict with tied tensors stored once; ``aliases`` maps each dropped name to its twin."""
    tensors, aliases, seen = {}, {}, {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride()) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[prefix + name] = t.detach().contiguous().clone()
    return tensors, aliases


def _load_model_tensors(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], aliases: dict[str, str], path
) -> None:
    state = {**tensors, **{dup: tensors[src] for dup, src in aliases.items() if src in tensors}}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing keys (in the model, not the file): {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected keys (in the file, not the model): {', '.join(unexpected)}")
        if shapes:
            problems.append(f"shape mismatches: {'; '.join(shapes)}")
        raise CheckpointError(
            f"checkpoint {path} does not match {type(model).__name__}: " + " | ".join(problems)
        )
    model.load_state_dict(state)


def save_model(model: torch.nn.Module, path: str | os.PathLike, *, config: dict | None = None,
               extra: dict | None = None) -> None:
    """Write ``model``'s weights (and a JSON-able ``config`` and ``extra`` info) to ``path``."""
    tensors, aliases = _model_tensors(model, "")
    metadata = {"format": FORMAT, "kind": "model", "aliases": json.dumps(aliases),
                "config": json.dumps(config or {}), "extra": json.dumps(extra or {})}
    _atomic_save(tensors, Path(path), metadata)


def read_model_metadata(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(config, extra)`` stored by :func:`save_model`, without building a model."""
    _, metadata = _read(path)
    return json.loads(metadata.get("config", "{}")), json.loads(metadata.get("extra", "{}"))


def load_model(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Load weights saved by :func:`save_model` into ``model``; return the stored config.

    Raises :class:`CheckpointError` naming missing/unexpected keys and shape mismatches.
    """
    tensors, metadata = _read(path)
    if metadata.get("kind") != "model":
        raise CheckpointError(f"checkpoint {path}: expected a model checkpoint, got {metadata.get('kind')!r}")
    _load_model_tensors(model, tensors, json.loads(metadata["aliases"]), path)
    return json.loads(metadata.get("config", "{}"))


# --- full training state ---------------------------------------------------------------------


def save_training_state(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    step: int,
    generators: dict[str, torch.Generator] | None = None,
    info: dict[str, Any] | None = None,
) -> None:
    """Everything needed to continue a run exactly: weights, optimiser state, step, RNG states.

    ``generators`` are the named ``torch.Generator``s the run draws batches from; the global torch
    RNG (dropout) is saved as well. ``info`` is any JSON-able dict (the metrics log, early-stopping
    counters).
    """
    tensors, aliases = _model_tensors(model, "model.")
    opt = optimizer.state_dict()
    scalars = {}
    for idx, st in opt["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v.detach().contiguous().clone()
            else:
                scalars[f"{idx}.{k}"] = v
    tensors["rng.torch"] = torch.get_rng_state()
    for name, g in (generators or {}).items():
        tensors[f"rng.gen.{name}"] = g.get_state()
    metadata = {
        "format": FORMAT,
        "kind": "training",
        "step": str(int(step)),
        "aliases": json.dumps(aliases),
        "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "info": json.dumps(info or {}),
    }
    _atomic_save(tensors, Path(path), metadata)


def load_training_state(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    generators: dict[str, torch.Generator] | None = None,
) -> tuple[int, dict]:
    """Restore what :func:`save_training_state` wrote; return ``(step, info)``."""
    tensors, metadata = _read(path)
    if metadata.get("kind") != "training":
        raise CheckpointError(
            f"checkpoint {path}: expected a training checkpoint, got {metadata.get('kind')!r}"
        )
    model_tensors = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _load_model_tensors(model, model_tensors, json.loads(metadata["aliases"]), path)

    groups = json.loads(metadata["param_groups"])
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for key, v in json.loads(metadata["optim_scalars"]).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    if len(groups) != len(optimizer.param_groups):
        raise CheckpointError(
            f"checkpoint {path}: optimiser has {len(optimizer.param_groups)} param groups, "
            f"the file {len(groups)}"
        )
    optimizer.load_state_dict({"state": state, "param_groups": groups})

    torch.set_rng_state(tensors["rng.torch"])
    for name, g in (generators or {}).items():
        key = f"rng.gen.{name}"
        if key not in tensors:
            raise CheckpointError(f"checkpoint {path}: no state for generator {name!r}")
        g.set_state(tensors[key])
    return int(metadata["step"]), json.loads(metadata["info"])


__all__ = [
    "CheckpointError",
    "load_model",
    "load_training_state",
    "read_model_metadata",
    "save_model",
    "save_training_state",
]
