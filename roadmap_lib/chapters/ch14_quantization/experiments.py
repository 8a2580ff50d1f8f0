"""Chapter 14's measurements: held-out perplexity of every variant with its noise, activation
outlier channels, and per-layer errors of the quantisers.

Noise. Two things move a perplexity gap between two variants A and B: the calibration windows
(GPTQ and AWQ; we run 3 seeds) and the held-out text (a finite sample of windows). For a gap in
mean loss, :func:`compare` combines both into one standard error,

    SE² = var_seeds(A) / n_A + var_seeds(B) / n_B + var_windows(A − B) / n_windows,

the last term from the paired per-window differences (the same held-out windows for every variant), and calls
the gap a difference only when it exceeds twice that.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from roadmap_lib.chapters.ch14_quantization.methods import (
    METHODS,
    Method,
    build,
    quantizable,
    total_bytes,
    weight_bits,
)
from roadmap_lib.data import CharLMData
from roadmap_lib.models import GPT
from roadmap_lib.quantization import (
    awq_search,
    dequantize,
    dequantize_nf4,
    fake_quantize,
    gptq_hessian,
    gptq_quantize,
    layer_error,
    llm_int8_linear,
    quantize_nf4,
)

#: Written by ``python benchmarks/bench_quantization.py``; the chapter reads its speed column here.
BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "quantization.json"


def load_benchmark(path: Path | None = None) -> dict:
    """The measured forward times of every variant (see ``benchmarks/bench_quantization.py``)."""
    path = BENCHMARK if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/bench_quantization.py`")
    return json.loads(path.read_text(encoding="utf-8"))


def on_fast_path(model: GPT) -> GPT:
    """A copy of ``model`` (a :class:`~roadmap_lib.models.GPT`) that computes attention with
    PyTorch's fused kernel and its LayerNorms and GELUs as one PyTorch kernel each
    (``attention_backend="sdpa", fused_ops=True``): the same function on the same weights, faster
    on a CPU. Quantisation replaces the linear layers only, so a quantised copy of it runs the same
    quantised matrix products as one of ``model``. In eval mode; ``model`` is untouched."""
    if not isinstance(model, GPT):
        raise TypeError(f"model: expected a roadmap_lib.models.GPT, got {type(model).__name__}")
    fast = GPT(dataclasses.replace(model.config, attention_backend="sdpa", fused_ops=True))
    fast.load_state_dict(model.state_dict())
    return fast.eval()


def eval_windows(data: CharLMData, n: int = 240, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fixed random windows ``(inputs, targets)`` of the validation split, each (n, context)."""
    return data.get_batch("val", torch.Generator().manual_seed(seed), batch_size=n)


def calibration_sets(data: CharLMData, seeds=(0, 1, 2), windows: int = 16) -> list[torch.Tensor]:
    """One calibration set per seed: ``windows`` random windows (windows, context) of the
    *training* split, so calibration never sees the held-out text."""
    return [data.get_batch("train", torch.Generator().manual_seed(1000 + s), batch_size=windows)[0]
            for s in seeds]


@torch.no_grad()
def window_losses(model: nn.Module, windows: tuple[torch.Tensor, torch.Tensor], chunk: int = 120) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) of each window, computed in float32: (n,).

    The windows go through the model ``chunk`` at a time (a quantised layer dequantises its weight
    once per call, so fewer, larger calls are faster; the losses do not depend on ``chunk``)."""
    x, y = windows
    out = []
    for i in range(0, len(x), chunk):
        logits = model(x[i:i + chunk]).float()
        nll = F.cross_entropy(logits.transpose(1, 2), y[i:i + chunk], reduction="none")
        out.append(nll.mean(dim=1))
    return torch.cat(out).double()


# ---------------------------------------------------------------------------------- the table


@dataclass
class Row:
    method: Method
    losses: torch.Tensor  # (seeds, windows); one seed for methods without calibration
    weight_bits: float
    bytes: int
    quantize_s: list[float] = field(default_factory=list)

    @property
    def seed_losses(self) -> torch.Tensor:
        return self.losses.mean(dim=1)

    @property
    def perplexities(self) -> torch.Tensor:
        return self.seed_losses.exp()


#: Rows that keep the written-out path when ``run_table(..., fast=True)``: in bfloat16, PyTorch's
#: fused attention rounds differently from the written-out softmax, so the row would measure
#: another computation than the one the chapter describes.
WRITTEN_OUT_ROWS = ("bf16",)


def run_table(model: nn.Module, windows, calibration: list[torch.Tensor], methods=None,
              progress: bool = True, fast: bool = False) -> dict[str, Row]:
    """Build every variant (GPTQ and AWQ once per calibration set) and measure its losses.

    ``fast=True`` quantises and evaluates a copy of ``model`` on the fast path
    (:func:`on_fast_path`; a roadmap_lib GPT), except the rows in :data:`WRITTEN_OUT_ROWS`.
    """
    from tqdm.auto import tqdm

    methods = list(METHODS if methods is None else methods)
    fast_model = on_fast_path(model) if fast else model
    jobs = [(m, c) for m in methods for c in (calibration if m.calibrated else [None])]
    rows: dict[str, Row] = {}
    for m, calib in tqdm(jobs, desc="quantise and evaluate", disable=not progress, leave=False):
        start = time.perf_counter()
        q = build(model if m.key in WRITTEN_OUT_ROWS else fast_model, m, calib)
        seconds = time.perf_counter() - start
        losses = window_losses(q, windows)
        if m.key not in rows:
            rows[m.key] = Row(m, losses[None], weight_bits(q), total_bytes(q), [seconds])
        else:
            row = rows[m.key]
            row.losses = torch.cat([row.losses, losses[None]])
            row.quantize_s.append(seconds)
    return rows


def compare(a: Row, b: Row) -> dict:
    """Gap in mean loss A − B (nats per character) with its standard error and a verdict:
    ``"A better"``/``"B better"`` when |gap| > 2 SE, else ``"no difference"``."""
    gap = float(a.seed_losses.mean() - b.seed_losses.mean())
    var = 0.0
    for r in (a, b):
        if len(r.seed_losses) > 1:
            var += float(r.seed_losses.var()) / len(r.seed_losses)
    paired = a.losses.mean(dim=0) - b.losses.mean(dim=0)  # per held-out window
    var += float(paired.var()) / len(paired)
    se = math.sqrt(var)
    verdict = "no difference" if abs(gap) <= 2 * se else ("A better" if gap < 0 else "B better")
    return {"gap": gap, "se": se, "verdict": verdict}


def summary(rows: dict[str, Row], reference: str = "fp32") -> list[dict]:
    """One dict per row: perplexity (mean over seeds), its change against ``reference`` (mean, std
    and range over seeds), the standard error of that change (:func:`compare`), bits and bytes."""
    ref = rows[reference]
    ppl_ref = float(ref.perplexities.mean())
    out = []
    for key, r in rows.items():
        deltas = r.perplexities - ppl_ref
        c = compare(r, ref)
        out.append({
            "key": key, "label": r.method.label, "bits": r.method.bits, "weight_bits": r.weight_bits,
            "bytes": r.bytes, "seeds": len(deltas), "ppl": float(r.perplexities.mean()),
            "delta": float(deltas.mean()),
            "delta_std": float(deltas.std()) if len(deltas) > 1 else 0.0,
            "delta_min": float(deltas.min()), "delta_max": float(deltas.max()),
            "delta_pct": 100 * float(deltas.mean()) / ppl_ref,
            "se": ppl_ref * c["se"],  # perplexity units, to first order
            "quantize_s": sum(r.quantize_s) / len(r.quantize_s) if r.quantize_s else 0.0,
        })
    return out


# ------------------------------------------------------------------- activations and outliers


@torch.no_grad()
def capture_inputs(model: nn.Module, ids: torch.Tensor, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The inputs every named ``nn.Linear`` receives on ``ids``, as (tokens, in_features), recorded
    with forward hooks (all linear layers but ``lm_head`` by default)."""
    names = quantizable(model) if names is None else names
    seen: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(n).register_forward_hook(
        lambda _m, args, _out, n=n: seen.__setitem__(n, args[0].detach().reshape(-1, args[0].shape[-1])))
        for n in names]
    try:
        model(ids)
    finally:
        for h in handles:
            h.remove()
    return seen


def channel_maxima(x: torch.Tensor) -> torch.Tensor:
    """max |x| of each feature over the tokens: (tokens, features) -> (features,)."""
    return x.abs().amax(dim=0)


def outlier_report(acts: dict[str, torch.Tensor], names: list[str], top: int = 3) -> list[dict]:
    """For each named layer: its ``top`` largest channels by max |x|, the largest max, and its ratio
    to the median channel's max."""
    rows = []
    for n in names:
        mx = channel_maxima(acts[n])
        values, idx = mx.topk(top)
        rows.append({"layer": n, "top_channels": idx.tolist(), "max": float(values[0]),
                     "ratio_to_median": float(values[0] / mx.median())})
    return rows


# --------------------------------------------------------------------- per-layer weight errors


def relative_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """||W − Ŵ||² / ||W||²."""
    return float(((w - w_hat) ** 2).sum() / (w**2).sum())


def granularity_errors(model: nn.Module, bits: int = 4, granularities=("tensor", "channel", 128, 32),
                       scheme: str = "absmax") -> dict:
    """Relative weight error of round-to-nearest for every quantisable layer and granularity:
    ``{granularity: [error per layer]}``, layers in :func:`quantizable` order."""
    names = quantizable(model)
    return {g: [relative_error(w, fake_quantize(w, bits, scheme, g))
                for w in (model.get_submodule(n).weight.detach() for n in names)]
            for g in granularities}


def codebook_errors(w: torch.Tensor, block: int = 64) -> dict[str, float]:
    """Mean squared error per weight of 4-bit formats with one scale per ``block`` consecutive
    weights of a row: NF4 (without double quantisation, to compare the code books alone), int4
    absmax (15 levels) and int4 zero-point (16 levels)."""
    nf4 = dequantize_nf4(quantize_nf4(w, block_size=block, double_quant=False))
    return {"NF4": float(((w - nf4) ** 2).mean()),
            "int4 absmax": float(((w - fake_quantize(w, 4, "absmax", block)) ** 2).mean()),
            "int4 zero-point": float(((w - fake_quantize(w, 4, "zeropoint", block)) ** 2).mean())}


# ---------------------------------------------------------------------------------- LLM.int8()


def llm_int8_errors(x: torch.Tensor, w: torch.Tensor, threshold: float = 6.0) -> dict:
    """Relative output error ||y − ŷ||² / ||y||² of LLM.int8() on inputs ``x`` (tokens, in) and
    weight ``w`` (out, in), with the decomposition (``threshold``) and without it (``None``)."""
    y = x @ w.t()
    err = lambda t: relative_error(y, llm_int8_linear(x, w, None, t))
    outliers = int((x.abs() >= threshold).any(dim=0).sum())
    return {"int8, no decomposition": err(None), f"int8 + fp outliers (|x| ≥ {threshold:g})": err(threshold),
            "outlier features": outliers}


def inject_outlier(x: torch.Tensor, channel: int, factor: float) -> torch.Tensor:
    """A copy of ``x`` (tokens, in) with one feature multiplied by ``factor``: an outlier feature of
    the size large models grow (LLM.int8(): 20 and more), placed where ours has its largest."""
    out = x.clone()
    out[:, channel] *= factor
    return out


# -------------------------------------------------------------------- GPTQ and AWQ, one layer


def layer_objectives(w: torch.Tensor, x: torch.Tensor, bits: int = 4, group_size: int | None = 128,
                     x_eval: torch.Tensor | None = None, weight_errors: bool = False):
    """Output error ||W X − Ŵ X||² of RTN, GPTQ and AWQ on one layer, relative to ||W X||².

    ``x`` (tokens, in) calibrates GPTQ and AWQ; the errors are measured on ``x_eval`` (default: the
    same tokens, the objective both methods minimise). With ``weight_errors``, also return the
    relative weight errors ||W − Ŵ||² / ||W||²: ``(output_errors, weight_errors)``."""
    g = "channel" if group_size is None or group_size >= w.shape[1] else group_size
    x_eval = x if x_eval is None else x_eval
    norm = float(((x_eval.double() @ w.double().t()) ** 2).sum())
    s = awq_search(w, x, bits, "absmax", g).scales
    w_hats = {"RTN": fake_quantize(w, bits, "absmax", g),
              "GPTQ": dequantize(*gptq_quantize(w, gptq_hessian(x), bits, "absmax", g), dtype=w.dtype),
              "AWQ": fake_quantize(w * s, bits, "absmax", g) / s}
    out = {name: layer_error(w, w_hat, x_eval) / norm for name, w_hat in w_hats.items()}
    if weight_errors:
        return out, {name: relative_error(w, w_hat) for name, w_hat in w_hats.items()}
    return out


def all_layer_objectives(model: nn.Module, calib_ids: torch.Tensor, eval_ids: torch.Tensor,
                         bits: int = 4, group_size: int | None = 128) -> dict[str, dict[str, float]]:
    """:func:`layer_objectives` for every quantisable layer of the float model, calibrated on the
    inputs it sees on ``calib_ids`` and measured on those it sees on ``eval_ids`` (held out)."""
    calib, held = capture_inputs(model, calib_ids), capture_inputs(model, eval_ids)
    return {n: layer_objectives(model.get_submodule(n).weight.detach(), calib[n], bits, group_size,
                                x_eval=held[n]) for n in quantizable(model)}


__all__ = [
    "BENCHMARK",
    "Row",
    "all_layer_objectives",
    "calibration_sets",
    "capture_inputs",
    "channel_maxima",
    "codebook_errors",
    "compare",
    "eval_windows",
    "granularity_errors",
    "inject_outlier",
    "layer_objectives",
    "llm_int8_errors",
    "load_benchmark",
    "outlier_report",
    "relative_error",
    "run_table",
    "summary",
    "window_losses",
]
