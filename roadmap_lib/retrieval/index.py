"""A vector index on faiss: exact inner-product search and two approximate ones, saved and reloaded.

- ``"flat"``: ``IndexFlatIP``, every vector scored: exact, ``O(N·d)`` per query;
- ``"hnsw"``: ``IndexHNSWFlat`` (Malkov & Yashunin): a layered proximity graph walked greedily;
  ``ef_search`` candidates are kept during the walk (more: slower, closer to exact);
- ``"ivf"``: ``IndexIVFFlat``: k-means into ``nlist`` cells, a query scans the ``nprobe`` nearest.

With unit vectors the inner product is the cosine. ``save`` writes the faiss file and a small JSON
of the search settings (faiss does not store ``nprobe``), each atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np

from ..fileio import atomic_path, atomic_write_text

KINDS = ("flat", "hnsw", "ivf")


def _as_matrix(x, dim: int, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (n, {dim}), got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


class VectorIndex:
    """``add(vectors)``, ``search(queries, k) -> (scores, ids)``, ``save(path)``, ``VectorIndex.load(path)``."""

    def __init__(self, dim: int, kind: str = "flat", *, hnsw_m: int = 16, ef_search: int = 32,
                 nlist: int = 32, nprobe: int = 4) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected an int >= 1, got {dim!r}")
        self.dim, self.kind = dim, kind
        self.settings = {"hnsw_m": hnsw_m, "ef_search": ef_search, "nlist": nlist, "nprobe": nprobe}
        if kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            self._quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(self._quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        self._apply_settings()

    def _apply_settings(self) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = int(self.settings["ef_search"])
        elif self.kind == "ivf":
            self.index.nprobe = int(self.settings["nprobe"])

    def set_search(self, *, ef_search: int | None = None, nprobe: int | None = None) -> VectorIndex:
        """Change the search-time knobs (HNSW ``ef_search``, IVF ``nprobe``); the graph/cells stay."""
        for name, value in (("ef_search", ef_search), ("nprobe", nprobe)):
            if value is not None:
                if not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
                self.settings[name] = value
        self._apply_settings()
        return self

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors) -> VectorIndex:
        """Add ``(n, dim)`` vectors; their ids are ``len(self), ..., len(self) + n - 1``. An IVF index
        learns its cells (k-means) from the first batch."""
        x = _as_matrix(vectors, self.dim, "vectors")
        if self.kind == "ivf" and not self.index.is_trained:
            if len(x) < self.settings["nlist"]:
                raise ValueError(f"vectors: an IVF index with nlist={self.settings['nlist']} needs at "
                                 f"least that many vectors to train, got {len(x)}")
            self.index.train(x)
        self.index.add(x)
        return self

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(num_queries, k)``, best first; id -1 where fewer than k exist."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an int >= 1, got {k!r}")
        if not len(self):
            raise ValueError("search: the index is empty; add vectors first")
        return self.index.search(_as_matrix(queries, self.dim, "queries"), k)

    def save(self, path: str | Path) -> None:
        """Write ``path`` (the faiss index) and ``path.json`` (kind and search settings)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))
        meta = {"kind": self.kind, "dim": self.dim, **self.settings}
        atomic_write_text(path.with_name(path.name + ".json"), json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        path = Path(path)
        meta_path = path.with_name(path.name + ".json")
        if not path.exists() or not meta_path.exists():
            raise FileNotFoundError(f"path: expected {path} and {meta_path} written by VectorIndex.save")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        out = cls.__new__(cls)
        out.dim, out.kind = meta.pop("dim"), meta.pop("kind")
        out.settings = meta
        out.index = faiss.read_index(str(path))
        out._apply_settings()
        return out
