"""The faiss wrapper: exact search equals brute force, save/load round trip, approximate recall."""

import numpy as np
import pytest

from roadmap_lib.retrieval import VectorIndex, overlap_at_k


def _unit(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_equals_brute_force():
    x, q = _unit(300, 16, 0), _unit(20, 16, 1)
    scores, ids = VectorIndex(16, "flat").add(x).search(q, 5)
    want = np.argsort(-(q @ x.T), axis=1)[:, :5]
    assert np.array_equal(ids, want)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, want, 1), rtol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_and_load_give_the_same_results(tmp_path, kind):
    x, q = _unit(500, 16, 0), _unit(30, 16, 1)
    index = VectorIndex(16, kind, nlist=8, nprobe=3, ef_search=20).add(x)
    index.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss")
    assert again.kind == kind and len(again) == 500 and again.settings == index.settings
    for a, b in zip(index.search(q, 7), again.search(q, 7)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind,knob", [("hnsw", "ef_search"), ("ivf", "nprobe")])
def test_approximate_search_approaches_exact(kind, knob):
    x, q = _unit(2000, 16, 0), _unit(100, 16, 1)
    exact = VectorIndex(16, "flat").add(x).search(q, 10)[1]
    index = VectorIndex(16, kind, nlist=32).add(x)
    low = overlap_at_k(index.set_search(**{knob: 1}).search(q, 10)[1], exact, 10)
    high = overlap_at_k(index.set_search(**{knob: 32 if kind == "ivf" else 256}).search(q, 10)[1], exact, 10)
    assert low < 0.9 and high > 0.98


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        VectorIndex(4, "lsh")
    with pytest.raises(ValueError, match="vectors"):
        VectorIndex(4).add(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="empty"):
        VectorIndex(4).search(np.zeros((1, 4)), 1)
    with pytest.raises(ValueError, match="nlist"):
        VectorIndex(4, "ivf", nlist=16).add(np.ones((3, 4)))
    with pytest.raises(ValueError, match="ef_search"):
        VectorIndex(4, "hnsw").set_search(ef_search=0)
    with pytest.raises(FileNotFoundError, match="VectorIndex.save"):
        VectorIndex.load(tmp_path / "missing.faiss")
