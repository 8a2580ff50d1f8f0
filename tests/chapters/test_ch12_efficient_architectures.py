"""Chapter 12's code: the model family, the task, the sweep driver, the artifact and the figures."""

import json
import string

import matplotlib

matplotlib.use("Agg")
import pytest
import torch

from roadmap_lib.chapters.ch12_efficient_architectures import artifacts, experiment, plots
from roadmap_lib.chapters.ch12_efficient_architectures.models import MIXERS, TinyConfig, TinyLM
from roadmap_lib.chapters.ch12_efficient_architectures.task import (
    IGNORE,
    RecallLM,
    evaluate,
    first_queries,
    task_loss,
)
from roadmap_lib.data import CharLMData
from roadmap_lib.efficient.sparse import SparsePattern


@pytest.fixture(scope="module")
def task():
    return experiment.make_task()


def test_same_parameter_budget(task):
    V = len(task.data.vocab.itos)
    counts = {v: TinyLM(experiment.config(v, V)).active_parameters() for v in experiment.VARIANTS}
    dense = counts["dense"]
    assert all(abs(c - dense) / dense < 0.01 for c in counts.values()), counts
    moe = TinyLM(experiment.config("moe", V))
    assert sum(p.numel() for p in moe.parameters()) > 2 * moe.active_parameters()


@pytest.mark.parametrize("mixer", MIXERS)
def test_every_mixer_is_causal(mixer):
    torch.manual_seed(0)
    model = TinyLM(TinyConfig(vocab_size=20, context=32, d_model=16, n_heads=2, d_ff=32, mixer=mixer,
                              window=8, block=8, n_global=4, d_state=4)).eval()
    x = torch.randint(0, 20, (2, 32))
    y = x.clone()
    y[:, 20:] = (y[:, 20:] + 1) % 20  # change the future
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :20], model(y)[:, :20], atol=1e-5)


def test_recall_batches(task):
    g = torch.Generator().manual_seed(0)
    x, y = task.get_batch("train", g)
    assert x.shape == y.shape == (experiment.BATCH, experiment.CONTEXT)
    half = experiment.BATCH // 2
    assert (y[:half] != IGNORE).all()  # text: every position scored
    v = task.data.vocab
    rec_x, rec_y = x[half:], y[half:]
    for row_x, row_y in zip(rec_x, rec_y):
        chars = v.decode(row_x.tolist())
        pairs = {chars[2 * i]: chars[2 * i + 1] for i in range(experiment.N_PAIRS)}
        assert all(k in string.ascii_lowercase for k in pairs) and len(pairs) == experiment.N_PAIRS
        scored = (row_y != IGNORE).nonzero().flatten().tolist()
        assert scored and min(scored) - 2 * experiment.N_PAIRS >= experiment.GAP
        for t in scored:  # the answer is the digit that followed this key among the pairs
            assert v.decode([int(row_y[t])]) == pairs[chars[t]]


def test_first_queries():
    x = torch.tensor([[5, 1, 7, 2, 5, 1, 7, 2, 9, 3]])
    y = torch.full_like(x, IGNORE)
    y[0, [0, 2, 4, 6, 8]] = torch.tensor([1, 2, 1, 2, 3])  # keys 5, 7, 5, 7, 9
    assert first_queries(x, y)[0].nonzero().flatten().tolist() == [0, 2, 8]


def test_task_bad_input():
    data = CharLMData(context=32, batch_size=4)
    with pytest.raises(ValueError, match="gap"):
        RecallLM(data, batch_size=4, n_pairs=6, gap=30)
    with pytest.raises(ValueError, match="batch_size"):
        RecallLM(data, batch_size=3)
    with pytest.raises(ValueError, match="n_pairs"):
        RecallLM(data, n_pairs=27)
    with pytest.raises(ValueError, match="mixer"):
        TinyConfig(mixer="rwkv")
    with pytest.raises(ValueError, match="variant"):
        experiment.config("hyena", 10)


def test_short_run_and_summary(task):
    records = [experiment.run("window", s, task, steps=3) for s in (0, 1)]
    again = experiment.run("window", 0, task, steps=3)
    assert again["text_loss"] == records[0]["text_loss"]  # seeded: the same numbers each time
    moe = experiment.run("moe", 0, task, steps=3)
    util = moe["expert_utilisation"]
    assert len(util) == 2 and all(abs(sum(u) - 1) < 1e-3 for u in util)
    s = experiment.summary(records + [moe])
    assert s["window"]["seeds"] == 2 and s["moe"]["seeds"] == 1
    assert s["window"]["text_loss"]["min"] <= s["window"]["text_loss"]["mean"] <= s["window"]["text_loss"]["max"]
    table = experiment.table_markdown(s)
    assert table.count("\n") == 3 and "| window | " in table and table.count("± ") == 8  # two variants, four metrics
    a = {"x": {"mean": 1.0, "sd": 0.1, "values": [0.9, 1.0, 1.1]}}
    b = {"x": {"mean": 1.5, "sd": 0.05, "values": [1.45, 1.5, 1.55]}}
    v = experiment.verdict(a, b, "x")
    assert v["verdict"] == "A lower" and abs(v["se"] - (0.01 / 3 + 0.0025 / 3) ** 0.5) < 1e-12
    assert experiment.verdict(b, a, "x")["verdict"] == "B lower"
    close = {"x": {"mean": 1.1, "sd": 0.1, "values": [1.0, 1.1, 1.2]}}
    assert experiment.verdict(a, close, "x")["verdict"] == "no difference"  # gap 0.1 < 2 SE = 0.163


def test_task_loss_adds_moe_aux(task):
    torch.manual_seed(0)
    model = TinyLM(experiment.config("moe", len(task.data.vocab.itos)))
    x, y = task.get_batch("train", torch.Generator().manual_seed(0))
    with_aux = task_loss(model, x, y)
    assert float(model.aux_loss().detach()) > 0.01  # balance loss >= 1 when top-1 of 4, times 0.01
    dense = TinyLM(experiment.config("dense", len(task.data.vocab.itos)))
    assert float(dense.aux_loss()) == 0.0 and with_aux.requires_grad
    metrics = evaluate(dense, task, batches=1)
    assert 0 <= metrics["recall_acc"] <= 1 and metrics["text_loss"] > 3  # untrained: about log(vocab)
    n_first, n_all = 8 * 6, 8 * 14  # 8 recall rows: 14 queries each, at most 6 distinct keys
    assert min(metrics["recall_first_acc"], metrics["recall_repeat_acc"]) <= metrics["recall_acc"] <= max(
        metrics["recall_first_acc"], metrics["recall_repeat_acc"]) and n_first < n_all


def test_artifact_round_trip(tmp_path, monkeypatch):
    fake = {"runs": [{"variant": v, "seed": s, "text_loss": 1.0, "recall_acc": 0.5} for v in experiment.VARIANTS
                     for s in experiment.SEEDS]}
    (tmp_path / artifacts.FILE).write_text(json.dumps(fake))
    monkeypatch.setattr(experiment, "run", lambda v, s, task=None: {"text_loss": 1.01, "recall_acc": 0.5})
    monkeypatch.setattr(experiment, "make_task", lambda: None)
    checks = artifacts.verify(tmp_path)
    assert all(c.ok for c in checks) and len(checks) == 1 + 2 * len(artifacts.RECHECK)
    monkeypatch.setattr(experiment, "run", lambda v, s, task=None: {"text_loss": 1.5, "recall_acc": 0.5})
    assert not all(c.ok for c in artifacts.verify(tmp_path))
    with pytest.raises(FileNotFoundError, match="ch12-sweep"):
        artifacts.load(tmp_path / "nowhere")


def test_plots():
    p = SparsePattern("bigbird", window=8, block=8, n_global=4, n_random=1)
    assert plots.plot_pattern(p, 64) is not None
    assert len(plots.plot_patterns({"a": p, "b": SparsePattern("window", window=8, block=8)}, 64)) == 2
    bench = {"time_s": {"x": {"1024": 1e-3, "2048": 2e-3}}, "peak_bytes": {"x": {"1024": 10, "2048": 20}},
             "slopes": {"x": {"time": 1.0, "memory": 1.0}},
             "decode_state_bytes": {"1024": {"kv": 10}, "2048": {"kv": 20}}}
    assert len(plots.plot_scaling(bench)) == 2 and plots.plot_decode_state(bench) is not None
    summ = {"a": {k: {"mean": 1.0, "min": 0.9, "max": 1.1, "values": [0.9, 1.1]}
                  for k in ("text_loss", "recall_acc", "recall_first_acc")}}
    assert len(plots.plot_sweep(summ)) == 3 and len(plots.plot_sweep(summ, metrics=("text_loss", "recall_acc"))) == 2
    assert plots.plot_favor([1, 2], {1: [0.5], 2: [0.3]}) is not None
    assert plots.plot_kernels(torch.randn(3, 10)) is not None
    assert plots.plot_utilisation([[0.25] * 4, [0.5, 0.5, 0, 0]]) is not None


def test_benchmark_script_writes_what_the_chapter_reads(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_efficient.py"
    spec = importlib.util.spec_from_file_location("bench_efficient", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "efficient.json"
    bench.main(["--lengths", "256", "512", "--repeats", "1", "--rounds", "1", "--max-quadratic", "256",
                "--only", "dense (scores)", "linear", "--out", str(out)])
    got = experiment.load_benchmark(out)
    assert "dense (scores)" in got["time_s"] and "512" not in got["time_s"]["dense (scores)"]
    assert set(got["time_s"]) == {"dense (scores)", "linear"} and set(got["time_s"]["linear"]) == {"256", "512"}
    assert got["peak_bytes"]["linear"]["512"] < 2.5 * got["peak_bytes"]["linear"]["256"]
    state = got["decode_state_bytes"]
    assert state["512"]["KV cache, 8 heads (MHA)"] == 2 * state["256"]["KV cache, 8 heads (MHA)"]
    assert state["512"]["Mamba, d_inner 512, state 16"] == state["256"]["Mamba, d_inner 512, state 16"]
    assert state["512"]["KV cache, 8 heads (MHA)"] == 8 * state["512"]["KV cache, 1 head (MQA)"]
    assert state["512"]["sliding window 256, 8 heads"] == state["256"]["KV cache, 8 heads (MHA)"]
    with pytest.raises(FileNotFoundError, match="bench_efficient"):
        experiment.load_benchmark(tmp_path / "missing.json")
