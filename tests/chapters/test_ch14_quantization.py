"""roadmap_lib.chapters.ch14_quantization: the table's recipes, byte counts, noise statistics,
per-layer measurements and figures (chapter 14), on a tiny random GPT."""

import matplotlib

matplotlib.use("Agg")

import math

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from roadmap_lib.chapters.ch14_quantization import experiments, methods, plots
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.quantization import QuantizedLinear, llm_int8_linear, model_nbytes, nf4_code_book


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, context_length=16, d_model=128, n_layers=1, n_heads=2)).eval()
    ids = torch.randint(0, 20, (4, 16), generator=torch.Generator().manual_seed(1))
    return model, ids


def test_every_method_builds_and_runs(tiny):
    model, ids = tiny
    with torch.no_grad():
        ref = model(ids)
    for m in methods.METHODS:
        q = methods.build(model, m, ids if m.calibrated else None)
        with torch.no_grad():
            out = q(ids).float()
        assert out.shape == ref.shape
        assert (out - ref).abs().max() < (0.5 if m.bits <= 4 else 0.05), m.key
        assert isinstance(q.lm_head, nn.Linear)  # the tied output layer stays float
    assert isinstance(model.blocks[0].attn.q_proj, nn.Linear)  # the original is untouched
    with pytest.raises(ValueError, match="calibration"):
        methods.build(model, "int4-gptq-g128")
    with pytest.raises(ValueError, match="method"):
        methods.build(model, "int5")


def test_weight_bits_and_bytes(tiny):
    model, _ = tiny
    assert methods.weight_bits(methods.build(model, "fp32")) == 32
    assert methods.weight_bits(methods.build(model, "bf16")) == 16
    # a float32 scale per row costs 32 bits per row; one per group of 32 costs 1 bit per weight
    layers = [model.get_submodule(n) for n in methods.quantizable(model)]
    per_row = 32 * sum(m.out_features for m in layers) / sum(m.weight.numel() for m in layers)
    assert math.isclose(methods.weight_bits(methods.build(model, "int8-rtn")), 8 + per_row)
    assert methods.weight_bits(methods.build(model, "int4-rtn-g32")) == 4 + 32 / 32
    nf4 = methods.build(model, "nf4")
    assert 4.125 < methods.weight_bits(nf4) < 4.5
    for key in ("fp32", "int8-rtn", "int4-rtn-g32", "nf4", "llm-int8"):
        q = methods.build(model, key)
        assert sum(methods.storage_breakdown(q).values()) == methods.total_bytes(q) == model_nbytes(q)
    dyn = methods.build(model, "int8-dynamic")
    assert methods.total_bytes(dyn) > model_nbytes(dyn)  # the packed int8 weights are counted
    int8 = methods.build(model, "int8-rtn")
    assert methods.storage_breakdown(int8)["codes"] == sum(
        m.in_features * m.out_features for m in int8.modules() if isinstance(m, QuantizedLinear))


def test_llm_int8_layer_matches_core_and_float():
    torch.manual_seed(0)
    lin = nn.Linear(48, 24)
    layer = methods.LLMInt8Linear.from_linear(lin, threshold=6.0)
    x = torch.randn(10, 48)
    x[:, 5] *= 20  # one outlier feature
    with torch.no_grad():
        y, ref = layer(x), lin(x)
    assert ((y - ref) ** 2).sum() / (ref**2).sum() < 1e-3
    # the stored codes give back the weight to half a step per row
    step = lin.weight.abs().amax(1, keepdim=True) / 127
    assert ((layer.dequantized_weight() - lin.weight).abs() <= step / 2 + 1e-7).all()
    assert torch.equal(y, llm_int8_linear(x, layer.dequantized_weight(), lin.bias.detach(), 6.0))
    with pytest.raises(ValueError, match="codes"):
        methods.LLMInt8Linear(torch.zeros(3, 4), torch.ones(3), None)


def _row(key, losses):
    return experiments.Row(methods.method(key), torch.as_tensor(losses, dtype=torch.float64), 4.0, 100)


def test_compare_and_summary():
    g = torch.Generator().manual_seed(0)
    base = 2 + 0.1 * torch.randn(1, 50, generator=g, dtype=torch.float64)
    same = experiments.compare(_row("int4-rtn-g128", base), _row("fp32", base))
    assert same["gap"] == 0 and same["verdict"] == "no difference"
    worse = _row("int4-rtn-g128", base + 0.05)
    assert experiments.compare(worse, _row("fp32", base))["verdict"] == "B better"
    # seeds that disagree widely make the same mean gap undecidable
    noisy = _row("int4-gptq-g128", torch.cat([base - 0.5, base + 0.6, base]))
    c = experiments.compare(noisy, _row("fp32", base))
    assert c["verdict"] == "no difference" and c["se"] > 0.2
    table = experiments.summary({"fp32": _row("fp32", base), "int4-gptq-g128": noisy})
    gptq = table[1]
    assert gptq["seeds"] == 3 and gptq["delta_min"] < gptq["delta"] < gptq["delta_max"]
    assert math.isclose(gptq["ppl"], float(noisy.perplexities.mean()))
    assert table[0]["delta"] == 0


def test_window_losses_do_not_depend_on_chunk(tiny):
    model, ids = tiny
    windows = (ids, torch.roll(ids, -1, dims=1))
    a = experiments.window_losses(model, windows, chunk=1)
    b = experiments.window_losses(model, windows, chunk=4)
    assert a.shape == (4,) and torch.allclose(a, b)
    with torch.no_grad():
        full = F.cross_entropy(model(ids).flatten(0, 1), windows[1].flatten())
    assert math.isclose(float(a.mean()), float(full), rel_tol=1e-6)


def test_capture_inputs_and_outliers(tiny):
    model, ids = tiny
    acts = experiments.capture_inputs(model, ids)
    assert set(acts) == set(methods.quantizable(model))
    assert acts["blocks.0.ffn.down_proj"].shape == (64, 512)
    assert not model.blocks[0].ffn.up_proj._forward_hooks  # hooks removed
    x = torch.ones(20, 8)
    x[3, 6] = 9.0
    rep = experiments.outlier_report({"l": x}, ["l"], top=2)[0]
    assert rep["top_channels"][0] == 6 and rep["max"] == 9 and rep["ratio_to_median"] == 9


def test_error_measurements():
    g = torch.Generator().manual_seed(0)
    w = 0.05 * torch.randn(64, 128, generator=g)
    book = experiments.codebook_errors(w)
    assert book["NF4"] < book["int4 absmax"]
    x = torch.randn(200, 128, generator=g)
    plain = experiments.llm_int8_errors(x, w, threshold=6.0)
    big = experiments.llm_int8_errors(experiments.inject_outlier(x, 7, 20.0), w, threshold=6.0)
    assert big["int8, no decomposition"] > 4 * plain["int8, no decomposition"]
    assert big["outlier features"] >= 1
    out, wts = experiments.layer_objectives(w, x, bits=3, group_size=None, weight_errors=True)
    assert out["GPTQ"] < out["RTN"] and out["AWQ"] <= out["RTN"] * (1 + 1e-6)
    assert wts["GPTQ"] > 0 and set(out) == set(wts) == {"RTN", "GPTQ", "AWQ"}
    errs = experiments.granularity_errors(GPT(GPTConfig(vocab_size=10, context_length=8, d_model=32,
                                                        n_layers=1, n_heads=2)), bits=4,
                                          granularities=("tensor", "channel", 32))
    assert all(t >= c for t, c in zip(errs["tensor"], errs["channel"]))


def test_all_layer_objectives(tiny):
    model, ids = tiny
    obj = experiments.all_layer_objectives(model, ids, ids.flip(0), bits=4, group_size=64)
    assert list(obj) == methods.quantizable(model)
    assert all(o["GPTQ"] > 0 for o in obj.values())


def test_shipped_benchmark_covers_the_table():
    bench = experiments.load_benchmark()
    for m in methods.METHODS:
        assert m.key in bench["methods"], m.key
        assert set(bench["methods"][m.key]["forward_ms"]) == {"12x64", "1x64"}
    assert bench["machine"]["threads"] == 1 and bench["machine"]["torch"]
    with pytest.raises(FileNotFoundError, match="bench_quantization"):
        experiments.load_benchmark("/nonexistent/quantization.json")


def test_plots_return_axes(tiny):
    model, ids = tiny
    w = torch.tensor([-0.15, 0.02, 0.11, 0.23, 0.38, 0.47, 0.61, 0.90])
    g = plots.rtn_grid(w, 3, "absmax")
    assert len(g["levels"]) == 7 and torch.allclose(g["levels"], -g["levels"].flip(0))
    assert plots.rtn_grid(w, 3, "zeropoint")["zero"] == 1
    assert plots.plot_quantization_grid(w, 3).shape == (2, 2)
    weight = model.blocks[0].ffn.down_proj.weight.detach()
    assert len(plots.plot_weight_quantization(weight, 4, 32)) == 2
    acts = experiments.capture_inputs(model, ids)
    assert len(plots.plot_outlier_channels(acts, ["blocks.0.ffn.up_proj"])) == 2
    names = methods.quantizable(model)
    plots.plot_granularity_errors(experiments.granularity_errors(model, granularities=("channel",)), names)
    plots.plot_storage({"a": {"codes": 10, "scales": 2}, "b": {"codes": 5, "scales": 1}})
    book = {"normal": {"NF4": 1.0, "int4": 1.4}}
    plots.plot_codebooks(nf4_code_book(), torch.rand(100) * 2 - 1, book)
    plots.plot_llm_int8({"c": {"x": 1e-5, "y": 2e-5, "outlier features": 1}})
    plots.plot_layer_objectives({"l": {"RTN": 1.0, "GPTQ": 0.3, "AWQ": 0.9}})
    plots.plot_awq_search([(0.0, 1.0), (0.5, 0.9), (1.0, 1.2)], torch.rand(8) + 0.5, torch.rand(8) + 0.5)
    rows = experiments.summary({"fp32": _row("fp32", torch.ones(1, 5)),
                                "int4-gptq-g128": _row("int4-gptq-g128", torch.ones(3, 5) * 1.1)})
    plots.plot_table(rows)
    md = plots.table_markdown(rows, {"fp32": {"forward_ms": {"12x64": 1.0, "1x64": 0.5}}})
    assert md.count("\n") == 3 and "| 1.0 | 0.5 |" in md and "n/a" in md
    plt.close("all")


def test_on_fast_path_is_the_same_function(tiny):
    model, ids = tiny
    fast = experiments.on_fast_path(model)
    assert (fast.config.attention_backend, fast.config.fused_ops) == ("sdpa", True)
    assert model.config.attention_backend == "math" and not model.config.fused_ops  # untouched
    with torch.no_grad():
        assert (fast(ids) - model(ids)).abs().max() < 1e-5
        q_fast, q_slow = methods.build(fast, "int4-rtn-g128"), methods.build(model, "int4-rtn-g128")
        assert (q_fast(ids) - q_slow(ids)).abs().max() < 1e-5
    with pytest.raises(TypeError, match="model: expected a roadmap_lib.models.GPT, got Linear"):
        experiments.on_fast_path(nn.Linear(2, 2))


def test_run_table_on_the_fast_path_measures_the_same_losses(tiny):
    model, ids = tiny
    windows = (ids, torch.roll(ids, -1, dims=1))
    keys = ["fp32", "bf16", "int4-rtn-g128", "int4-gptq-g128"]
    chosen = [methods.method(k) for k in keys]
    slow = experiments.run_table(model, windows, [ids[:2]], methods=chosen, progress=False)
    fast = experiments.run_table(model, windows, [ids[:2]], methods=chosen, progress=False, fast=True)
    for key in ("fp32", "bf16", "int4-rtn-g128"):
        assert torch.allclose(fast[key].losses, slow[key].losses, atol=1e-5), key
    # GPTQ rounds each weight after feeding back earlier errors: a difference at float rounding in
    # its calibration inputs can flip a code, so the losses agree to the rounding of a few codes
    assert torch.allclose(fast["int4-gptq-g128"].losses, slow["int4-gptq-g128"].losses, atol=1e-3)
    assert torch.equal(fast["bf16"].losses, slow["bf16"].losses)  # the written-out row
    assert "bf16" in experiments.WRITTEN_OUT_ROWS
