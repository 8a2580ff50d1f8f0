"""Chapter 26's drivers, figures and exercise checks."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.chapters.ch26_deployment import exercises as ex
from roadmap_lib.chapters.ch26_deployment.experiments import (
    alone_greedy,
    char_loss,
    first_divergence,
    left_padded_greedy,
    padded_batch_greedy,
    percentile,
    serve_load_table,
    simulate_queue,
    summarise_level,
)
from roadmap_lib.chapters.ch26_deployment.plots import plot_export, plot_latency, plot_queue, plot_throughput
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.models.hf import gpt_to_hf

matplotlib.use("Agg")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=50), st.floats(0.5, 100))
def test_percentile_is_numpys_inverted_cdf(values, q):
    assert percentile(values, q) == float(np.percentile(np.array(values), q, method="inverted_cdf"))


def test_percentile_errors():
    with pytest.raises(ValueError, match="values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="q"):
        percentile([1.0], 0)


def _record():
    def level(c, tps, lat):
        return {"concurrency": c, "requests": len(lat), "ok": len(lat), "tokens": 10 * len(lat),
                "seconds": 1.0, "throughput_tok_s": tps, "latency_s": lat, "ttft_s": [x / 10 for x in lat]}
    return {"runs": {"a": [[level(1, 10, [0.1, 0.2]), level(4, 30, [0.3, 0.4])],
                           [[level(1, 12, [0.3]), level(4, 34, [0.5])]][0]],
                     "b": [[level(1, 9, [0.2]), level(4, 12, [0.9])]]}}


def test_serve_load_table_pools_rounds():
    table = serve_load_table(_record())
    a4 = table["a"][1]
    assert a4["throughput"] == 32 and (a4["throughput_min"], a4["throughput_max"]) == (30, 34)
    assert a4["latency_p50"] == 0.4 and a4["latency_p99"] == 0.5 and a4["requests"] == 3
    assert math.isclose(a4["ttft_p50"], 0.04)
    assert summarise_level(_record()["runs"]["b"][0][0])["latency_p95"] == 0.2


def test_simulate_queue():
    under = simulate_queue(5, 10, 10, max_queue=None)
    assert max(under["wait_s"]) == 0 and under["refused"] == 0  # never waits below capacity
    over = simulate_queue(12, 10, 30, max_queue=None)
    # the wait of request i is i (1/mu - 1/lambda): linear growth
    assert math.isclose(over["wait_s"][-1], (len(over["wait_s"]) - 1) * (1 / 10 - 1 / 12))
    bounded = simulate_queue(12, 10, 30, max_queue=3)
    assert max(bounded["wait_s"]) <= 3 / 10 + 1e-9 and bounded["refused"] > 0
    assert len(bounded["wait_s"]) + bounded["refused"] == bounded["offered"]
    with pytest.raises(ValueError, match="service_rate"):
        simulate_queue(1, 0, 1, max_queue=None)


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=20, context_length=32, d_model=16, n_layers=1, n_heads=2)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(5)
    return m


@pytest.mark.slow
def test_padding_side(tiny):
    """A few seconds (more on a busy machine): transformers' generate, three times."""
    prompts = [[1, 2], [3, 4, 5, 6, 7], [8, 9, 10]]
    alone = alone_greedy(tiny, prompts, 6)
    hf = gpt_to_hf(tiny).eval()
    good = padded_batch_greedy(hf, prompts, 6, side="left", pad_id=0, attention_mask=True)
    right = padded_batch_greedy(hf, prompts, 6, side="right", pad_id=0, attention_mask=True)
    assert good == alone
    assert right[1] == alone[1]  # the longest prompt has no padding
    assert right != alone
    naive = left_padded_greedy(tiny, prompts, 6, pad_id=0)
    assert naive[1] == alone[1] and naive != alone  # pads attended, positions shifted


def test_char_loss(tiny):
    ids = torch.randint(0, 20, (100,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = ids[:96].view(3, 32)
        want = torch.nn.functional.cross_entropy(tiny(x).flatten(0, 1), ids[1:97].view(3, 32).flatten())
    assert math.isclose(char_loss(tiny, ids), float(want), rel_tol=1e-6)


def test_plots_draw():
    import matplotlib.pyplot as plt

    table = serve_load_table(_record())
    fig, axes = plt.subplots(1, 4)
    plot_throughput(table, ax=axes[0])
    plot_latency(table, ax=axes[1], metric="ttft")
    plot_queue(simulate_queue(12, 10, 5, max_queue=None), simulate_queue(12, 10, 5, max_queue=2), 2, ax=axes[2])
    plot_export({"runtimes": {"eager": {"step_s": 0.002, "setup_s": 0.0},
                              "ort": {"step_s": 0.001, "setup_s": 3.0}, "bad": {"error": "x"}}}, ax=axes[3])
    assert len(axes[0].lines) > 0 and len(axes[3].patches) == 2
    plt.close(fig)


# --- exercises: the reference passes, each declared mistake is named ----------------------------


def _stream(lines):
    out = []
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:])["choices"][0]["text"])
        if line == "data: [DONE]":
            break
    return "".join(out)


def test_stream_text_check():
    ex.check_stream_text(_stream)
    with pytest.raises(ExerciseError, match="stripped"):
        ex.check_stream_text(lambda lines: _stream(lines).strip())

    def past_done(lines):
        return "".join(json.loads(ln[6:])["choices"][0]["text"] for ln in lines
                       if ln.startswith("data: ") and ln != "data: [DONE]")
    with pytest.raises(ExerciseError, match=r"past 'data: \[DONE\]'"):
        ex.check_stream_text(past_done)

    def all_json(lines):
        return "".join(json.loads(ln[6:])["choices"][0]["text"] for ln in lines if ln)
    with pytest.raises(ExerciseError, match="not JSON"):
        ex.check_stream_text(all_json)

    def stub(lines):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        ex.check_stream_text(stub)


def test_percentile_check():
    def good(x, q):
        s = x.sort().values
        return s[max(math.ceil(q / 100 * len(s)) - 1, 0)]

    ex.check_percentile(good)
    wrong = {
        "the latencies are not sorted": lambda x, q: x[max(math.ceil(q / 100 * len(x)) - 1, 0)],
        "interpolating": lambda x, q: torch.quantile(x, q / 100),
        "off by one": lambda x, q: x.sort().values[min(math.ceil(q / 100 * len(x)), len(x) - 1)],
        "the mean is not a percentile": lambda x, q: x.mean(),
    }
    for name, fn in wrong.items():
        with pytest.raises(ExerciseError, match=f"likely mistake: {name}"):
            ex.check_percentile(fn)


def test_little_check():
    ex.check_little(lambda c, x: c / x)
    with pytest.raises(ExerciseError, match="likely mistake: the ratio is upside down"):
        ex.check_little(lambda c, x: x / c)
    with pytest.raises(ExerciseError, match=r"likely mistake: 1 / throughput"):
        ex.check_little(lambda c, x: 1 / x)

    def stub(c, x):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not written yet"):
        ex.check_little(stub)
