"""Chapter 15: the draft artifact, experiment drivers and figures."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from roadmap_lib.chapters.ch15_inference_optimization import artifacts, experiments, plots
from roadmap_lib.inference.paged import PagedKVCache, waste_report
from roadmap_lib.models import GPT, GPTConfig


def test_artifact_registration():
    a = artifacts.ARTIFACTS[0]
    assert a.name == "gpt-char-draft"
    assert a.chapter == "15" and a.needs == ("gpt-char-jargon",)
    assert set(a.files) == {"zoo/gpt-char-draft.safetensors", "zoo/gpt-char-draft.json"}


def test_draft_build_smoke(tmp_path):
    path = artifacts.build_draft(tmp_path, max_steps=3, progress=False)
    record = json.loads(path.read_text())
    target_vocab = artifacts._target_vocab()
    assert record["vocab"] == target_vocab.chars  # the draft proposes ids the target understands
    model, _vocab, _ = artifacts.load_draft(tmp_path)
    assert model.config.vocab_size == len(target_vocab) and model.config.n_layers == 1
    got, recorded = artifacts.verify_draft(tmp_path)
    assert got == pytest.approx(recorded, abs=1e-4)


def test_kv_table_and_measured_cache():
    rows = {r["model"]: r for r in experiments.kv_table(4096, 1)}
    assert rows["Llama 2 7B"]["kib_per_token"] == 512  # 2 * 32 * 4096 * 2 bytes
    assert rows["Llama 2 70B (no GQA)"]["gib"] == pytest.approx(8 * rows["Llama 2 70B"]["gib"])
    m = experiments.measured_cache(2)
    assert m["measured"] == m["formula"]


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    t = GPT(GPTConfig(vocab_size=20, context_length=64, d_model=32, n_layers=2, n_heads=2)).eval()
    d = GPT(GPTConfig(vocab_size=20, context_length=64, d_model=16, n_layers=1, n_heads=2)).eval()
    return t, d


def test_spec_sweep_and_transformers(pair):
    t, d = pair
    ids = torch.arange(200) % 20
    ps = experiments.prompts(ids, 2, 8, seed=0)
    assert all(p.shape == (1, 8) for p in ps)
    sweep = experiments.spec_sweep(t, d, ps, ks=(1, 3), max_new_tokens=10)
    assert all(r["identical"] for rows in sweep.values() for r in rows)
    assert torch.equal(experiments.transformers_assisted(t, d, ps[0], 10, k=3),
                       __import__("roadmap_lib.generation", fromlist=["greedy"]).greedy(t, ps[0], 10))


def test_streaming_driver(pair):
    t, _ = pair
    segs = [torch.randint(0, 20, (80,), generator=torch.Generator().manual_seed(s)) for s in range(2)]
    out = experiments.streaming(t, segs, window=20, n_sink=2)
    assert set(out) == {"rolling", "sinks", "recompute"}
    # inside the window every method computes the same thing
    for name in ("rolling", "sinks"):
        torch.testing.assert_close(out[name][0][:21], out["recompute"][0][:21], atol=1e-5, rtol=0)


def test_load_benchmark_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="bench_inference"):
        experiments.load_benchmark(tmp_path / "none.json")


def test_plots_draw(pair):
    t, _ = pair
    ax = plots.plot_kv_memory(experiments.kv_table(), 4096, 1)
    assert len(ax.patches) == 4
    reports = {"paged": [waste_report(lambda: PagedKVCache.for_model(t, num_blocks=64, block_size=4),
                                      [3, 9, 20], 64)]}
    reports["contiguous"] = reports["paged"]
    plots.plot_waste(reports)
    plots.plot_speculative([1, 2], {1: [0.9], 2: [0.8]}, {1: [1.1, 1.2], 2: [1.3]})
    plots.plot_streaming({"a": [torch.rand(100)], "b": [torch.rand(100)]}, 64)
    tl = [[("F", 0, 0.0, 1.0), ("B", 0, 2.0, 3.0)], [("F", 0, 1.0, 2.0), ("B", 0, 2.0, 2.5)]]
    plots.plot_timeline(tl)
    plots.plot_bubble({1: [0.5], 2: [0.4, 0.35]})
    bench = {"workloads": {"0": {"static": [{"tokens": 10, "seconds": 1.0}],
                                 "continuous": [{"tokens": 10, "seconds": 0.5}]}}}
    plots.plot_batching(bench)
    plt.close("all")


def test_compare_paged(pair):
    t, _ = pair
    out = experiments.compare_paged(t, torch.randint(0, 20, (1, 21)), prefill=5, block_size=4)
    assert out["max_abs_diff"] < 1e-5 and out["length"] == 21 and len(out["table"]) == 6

# gpt-char-draft's verify runs once, in tests/test_artifacts.py (every registered artifact).
