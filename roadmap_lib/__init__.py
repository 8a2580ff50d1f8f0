"""roadmap_lib: the library the chapters of the Transformer Roadmap import.

Each module holds one idea of the book (see DESIGN.md's library map). This top-level module only
holds what every chapter needs first: where the shipped data lives and how to seed everything.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

__version__ = "0.1.0"

#: The repository's ``data/`` folder (small corpora, task outputs, tiny checkpoints).
DATA_DIR = Path(os.environ.get("ROADMAP_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch so that a chapter prints the same numbers on every run.

    Also asks PyTorch for deterministic algorithms where it has them (``warn_only``, so a kernel
    without a deterministic version warns instead of failing).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def data_path(name: str) -> Path:
    """Path of a shipped file in ``data/``; raises ``FileNotFoundError`` naming what is there."""
    path = DATA_DIR / name
    if not path.exists():
        have = sorted(p.name for p in DATA_DIR.iterdir()) if DATA_DIR.is_dir() else []
        raise FileNotFoundError(
            f"data file {name!r} not found in {DATA_DIR} (the repository's data/ folder); "
            f"it holds: {', '.join(have) or 'nothing'}"
        )
    return path


__all__ = ["DATA_DIR", "data_path", "set_seed", "__version__"]
