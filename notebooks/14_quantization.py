# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14. Quantization: int8, int4, NF4, GPTQ and AWQ on a small GPT
#
# **What you will learn**
#
# - how a float becomes a small integer and back: absmax and zero-point quantisation, worked by hand
#   {cite}`jacob2018quantization,nagel2021white`;
# - why the *granularity* of the scales (per tensor, per channel, per group) matters, and why outliers
#   hurt, with the outlier features of our own model's activations measured by forward hooks;
# - what bytes really shrink once codes are packed two to a byte, and what stays in float;
# - the NF4 code book of QLoRA {cite}`dettmers2023qlora`, the outlier decomposition of LLM.int8()
#   {cite}`dettmers2022llmint8`, and the two calibrated methods, GPTQ {cite}`frantar2022gptq`
#   (error feedback through the inverse Hessian) and AWQ {cite}`lin2023awq` (activation-aware
#   scales), each shown on one layer;
# - a whole-model table for the character-level GPT of chapter 07: bits, bytes, held-out perplexity
#   against float32 (3 calibration seeds where calibration is random) and measured CPU speed.
#
# **What you need**: the decoder-only GPT of chapter 07 (we quantise its shipped checkpoint) and
# linear layers and blocks from chapter 04.
#
# **Run time**: about 40 s on a laptop CPU, most of it the whole-model table (18 quantised copies of
# the model, nine of them calibrated by GPTQ or AWQ).

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from ipywidgets import Dropdown, IntSlider, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch14_quantization.exercises import (
    check_gptq_by_hand,
    check_zeropoint_quantize,
)
from roadmap_lib.chapters.ch14_quantization.experiments import (
    all_layer_objectives,
    calibration_sets,
    capture_inputs,
    codebook_errors,
    compare,
    eval_windows,
    granularity_errors,
    inject_outlier,
    layer_objectives,
    llm_int8_errors,
    load_benchmark,
    outlier_report,
    run_table,
    summary,
)
from roadmap_lib.chapters.ch14_quantization.methods import (
    build,
    quantizable,
    storage_breakdown,
    total_bytes,
)
from roadmap_lib.chapters.ch14_quantization.plots import (
    plot_awq_search,
    plot_codebooks,
    plot_granularity_errors,
    plot_layer_objectives,
    plot_llm_int8,
    plot_outlier_channels,
    plot_quantization_grid,
    plot_storage,
    plot_table,
    plot_weight_quantization,
    rtn_grid,
    table_markdown,
)
from roadmap_lib.data import CharLMData
from roadmap_lib.exercises import check_close
from roadmap_lib.measure import count_parameters
from roadmap_lib.quantization import (
    activation_scale,
    awq_search,
    nf4_code_book,
)
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)  # a model this small runs as fast on one thread, and steadily on a busy CPU
# %matplotlib inline

# %% [markdown]
# The model is the character-level GPT of chapter 07 (4 blocks, 128 dimensions, trained on the
# Jargon File), loaded from its shipped checkpoint. Held-out text is 240 random windows of 64
# characters from the validation split (the last 10 % of the corpus); calibration data, when a
# method needs it, comes from the training split.

# %%
model, vocab, record = load_char_gpt()
data = CharLMData(context=64, batch_size=12, vocab=vocab)
windows = eval_windows(data, n=240, seed=1)
calibration = calibration_sets(data, seeds=(0, 1, 2), windows=16)
n_params = count_parameters(model)
print(f"{n_params:,} parameters, {total_bytes(model):,} bytes in float32; "
      f"{len(quantizable(model))} linear layers to quantise")
print(quantizable(model)[:6], "...")

# %% [markdown]
# ## 1. A float on an integer grid: absmax and zero-point
#
# Quantising a tensor $w$ to $b$ bits means choosing a **scale** $s$ (the step between neighbouring
# representable values), rounding $w / s$ to an integer code $q$, and storing $q$ in $b$ bits with
# $s$ alongside. Dequantising multiplies back: $\hat w = s\,q$. Two choices of grid:
#
# - **absmax** (symmetric): $s = \max|w| / (2^{b-1}-1)$ and $q = \operatorname{round}(w/s)$, codes in
#   $[-(2^{b-1}-1),\, 2^{b-1}-1]$. The grid is centred on 0 whatever the data.
# - **zero-point** (asymmetric, the integer-only inference scheme of {cite}`jacob2018quantization`):
#   the grid spans $[\min w, \max w]$ (stretched to include 0) with all $2^b$ codes,
#   $s = (\max w - \min w)/(2^b - 1)$, an integer zero point $z = \operatorname{round}(-\min w / s)$,
#   $q = \operatorname{clamp}(\operatorname{round}(w/s) + z,\, 0,\, 2^b-1)$ and $\hat w = s\,(q - z)$.
#
# Either way each value moves to its nearest grid point, so the error is at most half a step,
# $|w - \hat w| \le s/2$. Here are eight values, skewed to the positive side like the output of a
# GELU, quantised to 3 bits by hand:

# %%
w = torch.tensor([-0.15, 0.02, 0.11, 0.23, 0.38, 0.47, 0.61, 0.90])
bits = 3
s_abs = w.abs().max() / (2 ** (bits - 1) - 1)  # 3 codes each side of 0
q_abs = torch.round(w / s_abs)
w_abs = s_abs * q_abs
s_zp = (w.max() - w.min().clamp(max=0)) / (2**bits - 1)  # 8 codes over [min, max]
z = torch.round(-w.min().clamp(max=0) / s_zp)
q_zp = torch.clamp(torch.round(w / s_zp) + z, 0, 2**bits - 1)
w_zp = s_zp * (q_zp - z)
print(f"absmax:     s = {s_abs:.4f}, codes {q_abs.int().tolist()}, max |error| {(w - w_abs).abs().max():.4f}")
print(f"zero-point: s = {s_zp:.4f}, z = {int(z)}, codes {q_zp.int().tolist()}, "
      f"max |error| {(w - w_zp).abs().max():.4f}")
assert (w - w_abs).abs().max() <= s_abs / 2 + 1e-7 and (w - w_zp).abs().max() <= s_zp / 2 + 1e-7
assert torch.allclose(w_abs, rtn_grid(w, bits, "absmax")["w_hat"])  # the library agrees
assert torch.allclose(w_zp, rtn_grid(w, bits, "zeropoint")["w_hat"])
assert (w - w_zp).abs().max() < 0.6 * (w - w_abs).abs().max()

# %% [markdown]
# The symmetric grid spends three of its seven levels on negative values this vector barely has;
# the zero-point grid spreads all eight over the range actually used, so its step, and its worst
# error, is about half as large. The price: a zero point per scale, and a subtraction in every
# dequantisation. Weights are roughly symmetric around 0, so weight quantisers (GPTQ, AWQ, NF4,
# and the rest of this chapter) mostly use absmax; zero-point pays off on one-sided data such as
# activations after a ReLU or GELU.

# %%
plot_quantization_grid(w, bits)
plt.show()

# %% [markdown]
# ## 2. Where the scales go, and why outliers hurt
#
# One scale for a whole matrix (**per tensor**) is set by its single largest weight: every other
# weight gets a step sized for that one. One scale per output row (**per channel**) lets each row
# use its own range, and one scale per **group** of $g$ consecutive input columns of a row
# (group-wise, $g$ = 32 to 128 in practice) localises it further. Each scale costs bits: with
# float32 scales, a group of $g$ adds $32/g$ bits per weight (1 bit at $g = 32$, a quarter at 128).
#
# Round-to-nearest (RTN) at 4 bits on each of the 24 linear layers of our GPT:

# %%
names = quantizable(model)
errors = granularity_errors(model, bits=4, granularities=("tensor", "channel", 128, 32))
plot_granularity_errors(errors, names)
plt.show()
mean = {g: sum(e) / len(e) for g, e in errors.items()}
print("mean relative error:", {g: f"{v:.4f}" for g, v in mean.items()})
assert all(t > c for t, c in zip(errors["tensor"], errors["channel"]))  # per channel wins in every layer
assert mean["tensor"] > 3 * mean["channel"] and 0.5 < mean[32] / mean["channel"] < 0.7

# %% [markdown]
# Per tensor is several times worse than per channel on every layer; groups of 32 cut the error of
# per-channel scales by about 40 %. (With 128 inputs per row, "group 128" *is* per channel for every
# layer except the feed-forward's down projection, whose rows have 512 inputs.)
#
# Weights are the easy part. **Activations** are quantised per token on the fly (LLM.int8() does so,
# and torch's dynamic int8 kernels below), and there the enemy is an *outlier feature*: a hidden
# dimension that is large for many tokens. In large models such features reach 20 or more while
# the rest stay near 1, and they appear in the same dimensions layer after layer
# {cite}`dettmers2022llmint8`. Does our 0.8M-parameter model have them? Record what enters each
# linear layer with forward hooks, on the first calibration set (16 windows, 1024 tokens):

# %%
acts = capture_inputs(model, calibration[0])
ups = [f"blocks.{i}.ffn.up_proj" for i in range(4)]
report = outlier_report(acts, ups)
for r in report:
    print(f"{r['layer']:<22} largest channels {r['top_channels']}, max |x| {r['max']:.2f} "
          f"= {r['ratio_to_median']:.1f} x the median channel's")
plot_outlier_channels(acts, ups, threshold=6.0, heatmap="blocks.1.ffn.up_proj")
plt.show()
n_above = {n: int((acts[n].abs().amax(dim=0) >= 6).sum()) for n in ups}
print("features reaching |x| >= 6:", n_above)
assert all(r["top_channels"][0] == 102 for r in report)
assert all({85, 110} & set(r["top_channels"]) for r in report[1:])
assert all(1.3 < r["ratio_to_median"] < 3 for r in report) and max(n_above.values()) <= 3

# %% [markdown]
# It has one, mildly. Feature 102 is the largest input of the feed-forward in all four blocks (the
# vertical stripe in the heat map), and 85 or 110 join it in the top three of blocks 1 to 3. But it
# peaks at 1.5 to 2.4 times the typical feature's maximum, not the 20-fold of large models, and at
# most three features per layer reach LLM.int8()'s threshold of 6. Section 5 comes back to what
# that means.
#
# Explore the grids on one weight matrix: the layer whose largest weight lies furthest out, in
# standard deviations of its weights. The static figure shows 4 bits, groups of 32, absmax; the
# explorer changes bits, granularity and scheme.

# %%
weights = {n: model.get_submodule(n).weight.detach() for n in names}
tails = {n: float(w_.abs().max() / w_.std()) for n, w_ in weights.items()}
explore_layer = max(tails, key=tails.get)
print(f"{explore_layer}: largest |w| = {tails[explore_layer]:.1f} standard deviations")
assert explore_layer.endswith("down_proj") and tails[explore_layer] > 10
explore_w = weights[explore_layer]
plot_weight_quantization(explore_w, bits=4, granularity=32, scheme="absmax")
plt.show()

# %% tags=["nbval-ignore-output", "remove-output"]
granularity_choices = [("per tensor", "tensor"), ("per channel", "channel"), ("group 128", 128),
                       ("group 64", 64), ("group 32", 32), ("group 16", 16)]


def explore_grid(bits, granularity, scheme):
    plot_weight_quantization(explore_w, bits=bits, granularity=granularity, scheme=scheme)
    plt.show()


interact(explore_grid, bits=IntSlider(value=4, min=2, max=8),
         granularity=Dropdown(options=granularity_choices, value=32),
         scheme=Dropdown(options=["absmax", "zeropoint"], value="absmax"));

# %% [markdown]
# ## 3. Packing, and what bytes really shrink
#
# A 4-bit code fits in half a byte, but PyTorch has no 4-bit type: `QuantizedLinear`
# (`roadmap_lib.quantization`) packs two codes into each `uint8`, the first in the high nibble. The
# model also holds things no recipe here quantises: the token and position embeddings (the token
# table doubles as the output layer, tied), the LayerNorms and every bias, all kept in float32.
# Measure the bytes each variant stores, by kind:

# %%
shown = {"float32": "fp32", "int8 per channel": "int8-rtn", "int4 group 128": "int4-rtn-g128",
         "int4 group 32": "int4-rtn-g32", "NF4": "nf4"}
breakdowns = {label: storage_breakdown(build(model, key)) for label, key in shown.items()}
for label, b in breakdowns.items():
    print(f"{label:<18} {sum(b.values()):>9,} bytes   " + ", ".join(f"{k} {v:,}" for k, v in b.items()))
plot_storage(breakdowns)
plt.show()
fp32_total, int4_total = sum(breakdowns["float32"].values()), sum(breakdowns["int4 group 128"].values())
int4_layer = build(model, "int4-rtn-g128").get_submodule("blocks.0.attn.q_proj")
print(f"one 128 x 128 layer in int4: {int4_layer.codes.numel():,} bytes of codes for "
      f"{128 * 128:,} weights, codes stored as {int4_layer.codes.dtype}")
assert int4_layer.codes.numel() == 128 * 128 // 2
assert breakdowns["int4 group 128"]["codes"] * 8 == breakdowns["float32"]["codes"]
assert 5.5 < fp32_total / int4_total < 6.5
float_rest = 1 - breakdowns["int4 group 128"]["codes"] / int4_total
print(f"int4 group 128: {fp32_total / int4_total:.2f} x smaller than float32; "
      f"{100 * float_rest:.0f} % of it is not codes")
assert 0.25 < float_rest < 0.33
emb = [breakdowns[k]["embeddings"] / sum(breakdowns[k].values()) for k in ("float32", "int4 group 128")]
print(f"embeddings: {100 * emb[0]:.1f} % of the float32 model, {100 * emb[1]:.1f} % of the int4 one")
assert emb[0] < 0.035 and 0.17 < emb[1] < 0.21

# %% [markdown]
# The codes shrink 8-fold from float32, exactly; the whole model only about 6-fold, because what
# stays in float32 (embeddings, biases, norms) and the new scales are now more than a quarter of
# what is left. The embeddings were 3 % of the float32 model and are a fifth of the int4 one: a
# format is only as small as everything it leaves alone. One more fact worth knowing before the
# table: our `QuantizedLinear` stores 3-bit codes in the same nibbles as 4-bit ones, so 3 bits save
# no bytes here; a format that packs 3-bit codes tightly (8 codes in 3 bytes) would.
#
# ## 4. NF4: a code book shaped like the weights
#
# An integer grid spaces its levels evenly, but trained weights are roughly normal: dense near 0,
# sparse in the tails. QLoRA's **NormalFloat-4** {cite}`dettmers2023qlora` puts its 16 levels at
# quantiles of $\mathcal N(0, 1)$ instead (8 above zero, 7 below, an exact 0), scaled to $[-1, 1]$.
# A weight is stored as the index of the level nearest to $w/\text{absmax}$, with one absmax per
# block of 64 weights; **double quantisation** then stores those absmax values themselves in 8 bits
# (blocks of 256), bringing the overhead from 0.5 to about 0.127 bits per weight. Our NF4 is bit for
# bit that of bitsandbytes. Compare the two code books on normal weights and on our model's weights,
# one scale per 64 weights in every format:

# %%
g = torch.Generator().manual_seed(0)
normal_w = 0.05 * torch.randn(512, 512, generator=g)
model_w = torch.cat([model.get_submodule(n).weight.detach().reshape(-1, 128) for n in names])
book_errors = {"normal weights": codebook_errors(normal_w), "our GPT's weights": codebook_errors(model_w)}
blocks = normal_w.reshape(-1, 64)
normalised = (blocks / blocks.abs().amax(dim=1, keepdim=True)).flatten()
plot_codebooks(nf4_code_book(), normalised, book_errors)
plt.show()
for kind, e in book_errors.items():
    print(f"{kind:<18} MSE  " + ", ".join(f"{f} {v:.2e}" for f, v in e.items()))
for e in book_errors.values():
    assert 0.6 < e["NF4"] / e["int4 absmax"] < 0.8
    assert abs(e["NF4"] / e["int4 zero-point"] - 1) < 0.05

# %% [markdown]
# NF4's error is about a quarter to a third below the symmetric int4 grid's, on normal weights and
# on ours. Most of that gain, though, comes from using all 16 codes and fitting the range: an
# asymmetric int4 grid with a zero point per block (16 even levels) comes within 5 % of NF4 on
# both. NF4's own advantage is that it needs no zero point, and that its levels match the
# weights' shape without any per-model tuning.
#
# ## 5. LLM.int8(): keep the outliers in floating point
#
# LLM.int8() {cite}`dettmers2022llmint8` multiplies in real int8: each token's activations and
# each weight row get their own absmax scale (*vector-wise* quantisation), and the int32 product is
# rescaled by the outer product of the scales. A single outlier feature inflates the scale of every
# token it appears in and crushes the other features of that token to a few codes. So the method
# splits the matrix product: the input features where some $|x| \ge 6$ are multiplied in floating
# point, everything else in int8,
#
# $$X W^\top = X_{:,O}\, W_{:,O}^\top \;(\text{float}) + X_{:,\bar O}\, W_{:,\bar O}^\top \;(\text{int8}).$$
#
# On the input of block 1's feed-forward (our strongest outlier), and then with feature 102 made
# five times larger, the size of outlier that large models grow:

# %%
x_up = acts["blocks.1.ffn.up_proj"]
w_up = model.get_submodule("blocks.1.ffn.up_proj").weight.detach()
cases = {"our activations": llm_int8_errors(x_up, w_up, threshold=6.0),
         "feature 102 x 5": llm_int8_errors(inject_outlier(x_up, 102, 5.0), w_up, threshold=6.0)}
for name, c in cases.items():
    print(f"{name:<16}", ", ".join(f"{k}: {v:.2e}" if isinstance(v, float) else f"{k}: {v}" for k, v in c.items()))
plot_llm_int8(cases)
plt.show()
no_dec, dec = list(cases["our activations"].values())[:2]
no_dec_big, dec_big = list(cases["feature 102 x 5"].values())[:2]
assert 5e-6 < no_dec < 2e-5 and 0.6 < dec / no_dec < 0.85  # ours: accurate already, a modest trim
assert no_dec_big > 4 * no_dec and dec_big <= dec  # a real outlier: int8 alone degrades, decomposed not

# %% [markdown]
# With our mild outliers, plain vector-wise int8 is already accurate (relative error around
# $10^{-5}$) and the decomposition trims it by about a quarter. A large outlier makes plain int8
# several times worse, and the decomposition removes the damage entirely (its error is no larger
# than before), since the offending feature no longer takes part in the int8 product. That is the
# regime LLM.int8() was built for (models from about 6.7B parameters up); at our size it is
# insurance.
#
# ## 6. GPTQ: quantise a column, then let the others make up for it
#
# RTN rounds every weight on its own. But the quantity that matters is the layer's *output* on real
# inputs, $\lVert W X - \hat W X\rVert^2$, and rounding errors of different weights can cancel in
# it. GPTQ {cite}`frantar2022gptq` quantises the columns of $W$ one at a time and, after each,
# adjusts the columns not yet quantised to absorb its error. For inputs $X$ (one column per token)
# the objective's Hessian is $H = 2XX^\top$, the same for every row. The Optimal Brain Surgeon
# update {cite}`hassibi1993obs` says that after rounding column $j$ with error
# $e_j = w_j - \hat w_j$ (a column of errors, one per row), the best change of the remaining
# columns $F$ is
#
# $$\delta_F = -\frac{e_j}{[H_F^{-1}]_{jj}}\,(H_F^{-1})_{j,:},$$
#
# where $H_F^{-1}$ is the inverse Hessian of the columns still free. Quantising in a fixed order
# makes all these restricted inverses rows of a single upper Cholesky factor $U$ of $H^{-1}$, so
# one factorisation drives the whole loop:
# `for j: q = quant(W[:, j]); E = (W[:, j] - q) / U[j, j]; W[:, j:] -= E ⊗ U[j, j:]`. A small
# dampening, $H + 0.01\,\overline{\operatorname{diag} H}\, I$, keeps $H$ invertible.
#
# On one layer (block 1's up projection, 4 bits, one scale per row), calibrated on the first
# calibration set and measured both on it and on held-out text:

# %%
layer = "blocks.1.ffn.up_proj"
held_acts = capture_inputs(model, windows[0][:16], names=[layer])[layer]
on_calib = layer_objectives(w_up, x_up, bits=4, group_size=None)
on_held, on_weights = layer_objectives(w_up, x_up, bits=4, group_size=None, x_eval=held_acts,
                                       weight_errors=True)
for name in ("RTN", "GPTQ"):
    print(f"{name:<5} relative output error: calibration {on_calib[name]:.2e}, held out {on_held[name]:.2e}; "
          f"relative weight error {on_weights[name]:.2e}")
assert on_calib["GPTQ"] < 0.3 * on_calib["RTN"] and 0.15 < on_held["GPTQ"] / on_held["RTN"] < 0.25
assert on_weights["GPTQ"] > on_weights["RTN"]

# %% [markdown]
# GPTQ's output error is about a fifth of RTN's, on the calibration tokens and, which is what
# matters, on held-out ones: with 1024 tokens for a 128-input layer the Hessian is well estimated.
# Note that GPTQ's weights are individually *further* from the originals than RTN's (each column
# absorbs earlier errors); it is the product with real inputs that improves.
#
# ## 7. AWQ: protect the channels that carry large activations
#
# AWQ {cite}`lin2023awq` starts from the observation that input channels with large activations
# matter most, and protects them without mixed precision. For any positive per-channel scales
# $s$, $W x = (W \operatorname{diag}(s))(\operatorname{diag}(s)^{-1} x)$: quantise
# $W\operatorname{diag}(s)$ instead of $W$ and divide the input by $s$ (a division that can be
# folded into the preceding LayerNorm). Columns with $s > 1$ get a finer relative grid. The scales
# come from the activations alone, $s = \overline{|x|}^{\,\alpha}$, and a grid search over
# $\alpha \in [0, 1]$ keeps the one with the smallest output error on calibration data; $\alpha = 0$
# is plain RTN, so AWQ never does worse on that objective. Its search on the same layer (group
# 128, as in the table):

# %%
awq = awq_search(w_up, x_up, bits=4, granularity=128)
plot_awq_search(awq.errors, activation_scale(x_up), awq.scales)
plt.show()
rtn_err, best_err = awq.errors[0][1], min(e for _, e in awq.errors)
print(f"kept alpha = {awq.alpha:.2f}: calibration error {best_err:.3e} against RTN's {rtn_err:.3e} "
      f"({100 * (1 - best_err / rtn_err):.1f} % lower)")
print(f"scales from {awq.scales.min():.3f} to {awq.scales.max():.3f}")
assert awq.alpha <= 0.2 and 0.97 < best_err / rtn_err <= 1 and (awq.scales - 1).abs().max() < 0.05

# %% [markdown]
# The search gains little here: the best exponent is small, the kept scales stay within 5 % of 1,
# and the error falls by about 0.1 %. Our model's activations have no strongly salient channels to
# protect (section 2), which is the situation AWQ's scaling is least able to exploit. (Our
# `quantize_model` stores $1/s$ as an input scale of the layer instead of folding it into the
# LayerNorm, which costs AWQ about 0.2 bits per weight in the table.) Across all 24 layers,
# calibrated on 1024 tokens and measured on 1024 held-out ones (each layer on its own, with float
# inputs):

# %%
objectives = all_layer_objectives(model, calibration[0], windows[0][:16], bits=4, group_size=128)
plot_layer_objectives(objectives)
plt.show()
gptq_ratio = [o["GPTQ"] / o["RTN"] for o in objectives.values()]
awq_ratio = [o["AWQ"] / o["RTN"] for o in objectives.values()]
print(f"GPTQ / RTN: {min(gptq_ratio):.2f} to {max(gptq_ratio):.2f};  AWQ / RTN: {min(awq_ratio):.2f} "
      f"to {max(awq_ratio):.2f} (mean {sum(awq_ratio) / len(awq_ratio):.3f})")
assert 0.15 < min(gptq_ratio) and max(gptq_ratio) < 0.65
assert 0.85 < min(awq_ratio) and max(awq_ratio) <= 1.01 and 0.93 < sum(awq_ratio) / len(awq_ratio) < 0.99

# %% [markdown]
# Layer by layer, GPTQ divides the held-out output error by about 2 to 5, and AWQ shaves off 4 % on
# average (never more than about 12 %, and nothing where its search keeps $\alpha = 0$). Whether
# such per-layer gains survive in the whole model, where errors pass through LayerNorms, attention
# and GELUs and compound across blocks, is what the table measures.
#
# ## 8. The whole model: bytes, perplexity and speed
#
# Every row is a copy of the GPT with all 24 linear layers quantised (the tied output layer stays
# float32 everywhere), evaluated on the same 240 held-out windows. GPTQ and AWQ run once per
# calibration set (3 seeds, 16 training windows each) and go layer by layer, each layer calibrated
# on the inputs it receives with the layers before it already quantised. "int8 torch dynamic" is
# `torch.ao.quantization.quantize_dynamic` (PyTorch's own int8 kernels, which also quantise the
# activations, one scale per call); "LLM.int8()" stores int8 rows and runs the decomposition above.
#
# The copies compute on the fast path of chapter 07 (`fast=True`: attention with PyTorch's fused
# kernel, LayerNorm and GELU as one kernel each; `on_fast_path` in the chapter's `experiments.py`).
# Quantisation replaces only the linear layers, so every quantised matrix product is the one the
# sections above describe, and the rest is the same function computed with fewer kernels. The
# bfloat16 row keeps the written-out attention: in bfloat16 the fused kernel rounds differently,
# and that row is meant to measure the whole written-out model in bfloat16.

# %%
rows = run_table(model, windows, calibration, fast=True)
table = summary(rows)

# %% [markdown]
# The speed columns are not measured here but read from `benchmarks/results/quantization.json`,
# written by `python benchmarks/bench_quantization.py`: the forward pass (logits of every position)
# on a batch of 12 windows of 64 characters and on a single window, one CPU thread, the best of 20
# calls in each of 3 rounds, on the machine the file names:

# %%
bench = load_benchmark()
speed = bench["methods"]
machine = bench["machine"]
print(f"measured {bench['date']} on {machine['cpu']} ({', '.join(machine['cpu_flags'])}), "
      f"torch {machine['torch']}, {machine['threads']} thread, load average {machine['load_average_at_start'][0]:.1f}; "
      f"{bench['timing']}")
display(Markdown(table_markdown(table, speed)))

# %% [markdown]
# Perplexity is $e^{\text{loss}}$ in nats per character; float32 scores about 5.93. "± 1 SE" is the
# standard error of the change: the spread over calibration seeds and over held-out windows
# combined (`compare` in the chapter's `experiments.py` says how). The figure shows each method's
# cost with the range over the three calibration seeds; below it, the gap between pairs of methods
# with its standard error, called a difference only beyond two standard errors:

# %%
plot_table(table)
plt.show()
by = {r["key"]: r for r in table}
pairs = [("int8-rtn", "fp32"), ("llm-int8", "fp32"), ("bf16", "fp32"), ("int8-dynamic", "int8-rtn"),
         ("int4-gptq-g128", "int4-rtn-g128"), ("int4-gptq-g128", "int4-rtn-g32"),
         ("int4-awq-g128", "int4-rtn-g128"), ("nf4", "int4-rtn-g128"), ("nf4", "int4-rtn-g32"),
         ("int4-gptq-g128", "nf4"), ("int3-gptq-g128", "int3-rtn-g128"), ("int3-gptq-g128", "int4-rtn-g128")]
verdicts = {}
for a, b in pairs:
    c = compare(rows[a], rows[b])
    verdicts[a, b] = c["verdict"]
    print(f"{a:>15} vs {b:<14} gap {c['gap']:+.5f} ± {c['se']:.5f} nats/char -> {c['verdict']}")

# %%
assert all(by[k]["seeds"] == 3 for k in ("int4-gptq-g128", "int4-awq-g128", "int3-gptq-g128"))
# 8 bits
assert verdicts["int8-rtn", "fp32"] == verdicts["llm-int8", "fp32"] == verdicts["bf16", "fp32"] == "no difference"
assert abs(by["bf16"]["delta"]) < 0.003
assert verdicts["int8-dynamic", "int8-rtn"] == "B better" and 0.008 < by["int8-dynamic"]["delta"] < 0.02
# 4 bits
assert 0.07 < by["int4-rtn-g128"]["delta"] < 0.09 and 0.06 < by["int4-rtn-g32"]["delta"] < 0.08
assert abs(by["int4-rtn-g32"]["weight_bits"] - by["int4-rtn-g128"]["weight_bits"] - 0.75) < 1e-9
assert verdicts["int4-gptq-g128", "int4-rtn-g128"] == verdicts["int4-gptq-g128", "int4-rtn-g32"] == "A better"
assert 0.38 < by["int4-gptq-g128"]["delta"] / by["int4-rtn-g128"]["delta"] < 0.53
assert verdicts["nf4", "int4-rtn-g128"] == verdicts["nf4", "int4-rtn-g32"] == "A better"
assert verdicts["int4-gptq-g128", "nf4"] == "no difference"
assert 0.48 < by["nf4"]["delta"] / by["int4-rtn-g128"]["delta"] < 0.62
assert verdicts["int4-awq-g128", "int4-rtn-g128"] == "no difference"
assert by["int4-awq-g128"]["delta_min"] > by["int4-rtn-g128"]["delta"]  # all three seeds a little above
assert 0.15 < by["int4-awq-g128"]["weight_bits"] - by["int4-rtn-g128"]["weight_bits"] < 0.25  # its input scales
# 3 bits
assert 0.55 < by["int3-rtn-g128"]["delta"] < 0.75
assert verdicts["int3-gptq-g128", "int3-rtn-g128"] == "A better"
assert 0.2 < by["int3-gptq-g128"]["delta"] / by["int3-rtn-g128"]["delta"] < 0.4
assert verdicts["int3-gptq-g128", "int4-rtn-g128"] == "B better"

# %% [markdown]
# What the table says, for this regime (a 4-block, 0.8M-parameter character-level model, the
# Jargon File, 1024 calibration tokens, 240 held-out windows):
#
# - **8 bits cost nothing measurable.** Weight-only int8 and LLM.int8() are indistinguishable from
#   float32, and so is bfloat16 (+0.001 perplexity, within the noise). Torch's dynamic
#   kernels, which round the activations as well (one scale for everything in a call, here 120
#   windows, so the exact number depends on the batch), cost a little more than weight-only int8
#   (+0.013 perplexity against float32), a gap of several standard errors.
# - **4 bits cost something, and the method matters.** Plain RTN adds about 0.08 perplexity with
#   groups of 128, and about 0.07 with groups of 32, which pay 0.75 more bits per weight for their
#   scales. GPTQ removes about half of RTN's loss, a clear win over RTN at either group size.
#   NF4, with no calibration at all, loses somewhat more than GPTQ on average, but the gap between
#   them is within our noise.
# - **AWQ did not help here.** Although it lowers every layer's own objective a little, all three
#   AWQ seeds land slightly *above* RTN at the same group size, by less than two standard errors of
#   the gap: no difference. Our model lacks the strongly salient activation channels that AWQ's
#   scaling protects, and layer-wise gains of a few percent are below what the whole model can show.
#   This is a finding about this model, not about AWQ on large language models, where its authors
#   measured clear gains.
# - **3 bits need GPTQ.** 3-bit RTN adds about 0.65 perplexity; GPTQ cuts that about threefold, though
#   it stays worse than 4-bit RTN. (Our format stores 3-bit codes in 4-bit nibbles, so its bytes
#   equal 4-bit's; see section 3.)
#
# And the speed columns, from the benchmark file:

# %%
ms = {k: v["forward_ms"]["12x64"] for k, v in speed.items()}
ms1 = {k: v["forward_ms"]["1x64"] for k, v in speed.items()}
low_bit = ["int4-rtn-g128", "int4-rtn-g32", "int4-gptq-g128", "int4-awq-g128", "nf4", "int3-rtn-g128",
           "int3-gptq-g128"]
print(f"12 x 64: float32 {ms['fp32']:.1f} ms, bfloat16 {ms['bf16']:.1f}, int8 weight-only {ms['int8-rtn']:.1f}, "
      f"torch dynamic int8 {ms['int8-dynamic']:.1f}, LLM.int8() {ms['llm-int8']:.1f}, 4- and 3-bit "
      f"{min(ms[k] for k in low_bit):.1f} to {max(ms[k] for k in low_bit):.1f}, "
      f"torch._weight_int8pack_mm {ms['int8-rtn-int8pack']:.0f}")
print(f" 1 x 64: float32 {ms1['fp32']:.2f} ms, 4- and 3-bit {min(ms1[k] for k in low_bit):.2f} to "
      f"{max(ms1[k] for k in low_bit):.2f}")
slow = [min(m[k] / m["fp32"] for k in low_bit) for m in (ms, ms1)] + [max(m[k] / m["fp32"] for k in low_bit)
                                                                     for m in (ms, ms1)]
print(f"4- and 3-bit time / float32's: {slow[0]:.2f} to {slow[2]:.2f} (12 windows), "
      f"{slow[1]:.2f} to {slow[3]:.2f} (one window)")
assert 0.75 < ms["bf16"] / ms["fp32"] < 0.9 and ms1["bf16"] > ms1["fp32"]
assert 0.9 < ms["int8-dynamic"] / ms["fp32"] < 1 and 0.9 < ms["int8-rtn"] / ms["fp32"] < 1.1
assert 1.2 < slow[0] and slow[2] < 1.7 and ms["nf4"] == max(ms[k] for k in low_bit)
assert 2.5 < slow[1] and slow[3] < 5
assert ms["llm-int8"] > 2 * ms["fp32"] and ms["int8-rtn-int8pack"] > 10 * ms["fp32"]

# %% [markdown]
# On this CPU, quantisation saved memory, and little or no time. bfloat16 was the fastest on the
# batch of 12, by about 15 % (this processor has bfloat16 matrix instructions, `avx512_bf16` and
# `amx_bf16` in the file's flags), but slower on one window. Torch's dynamic int8 kernels were a
# few percent faster than float32 and our weight-only int8 layers within 10 % of it. The 4- and 3-bit layers were slower, 1.3 to 1.6 times float32's time on 12 windows and
# 3 to 4.5 times on one window: they unpack nibbles and dequantise the whole weight on every call before a
# float matmul, a cost that does not shrink with the batch (NF4's code-book lookup is the
# slowest). LLM.int8() pays for finding outliers and for two products, and PyTorch's weight-only
# int8 kernel `torch._weight_int8pack_mm` was far slower still in float32 on this machine.
# Quantisation buys speed with kernels that never materialise the float weight (fused
# dequantise-and-multiply on a GPU, integer GEMMs on int8 activations) and on memory-bound work,
# such as generating one token at a time from a model far larger than the caches. Our 3 MB model
# is neither.
#
# ## Summary
#
# - Quantisation maps values to a grid of $2^b$ codes with a scale (and for zero-point, an offset);
#   the error is at most half a step, so what sets the error is the range each scale must cover.
# - Finer scales (per channel, groups) shrink that range at a cost of $32/g$ bits per weight with
#   float32 scales; outliers, in weights or activations, make coarse scales fail. Our small model has
#   one mild outlier feature (number 102), 1.5 to 2.4 times the typical maximum.
# - Packed int4 shrinks the codes 8-fold; the model shrank about 6-fold because embeddings, biases,
#   norms and scales stay in float.
# - NF4's normal-quantile code book has a quarter to a third less weight error than a symmetric int4
#   grid and matches an asymmetric one; LLM.int8()'s decomposition matters once an outlier feature
#   is large.
# - On the whole model at 4 bits, GPTQ and NF4 keep about half of RTN's perplexity loss (no
#   difference between them within our noise); AWQ was no better than RTN here despite winning on
#   the layers' own objective; 3 bits need GPTQ.
# - Measured on one CPU thread, bfloat16 (on a batch) and torch's dynamic int8 kernels ran somewhat
#   faster than float32, weight-only int8 at about its speed, and the 4- and 3-bit formats slower.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-14-zeropoint
# :nonumber:
# ```
# **Exercise 14.1 (zero-point quantisation, group-wise).** Write `zeropoint_quantize(w, bits,
# group_size)` for a weight `w` of shape `(out, in)`: cut each row into groups of `group_size`
# consecutive columns; for each group take `lo = min(min(group), 0)` and `hi = max(max(group), 0)`,
# the scale `s = (hi - lo) / (2**bits - 1)` (use 1 where it is 0), the zero point
# `z = clamp(round(-lo / s), 0, 2**bits - 1)` and the codes `clamp(round(w / s) + z, 0, 2**bits - 1)`.
# Return `(codes, scales, zeros)`: codes `uint8 (out, in)`, scales `(out, in // group_size)` in `w`'s
# dtype, zero points `uint8 (out, in // group_size)`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Reshape to `(out, in // group_size, group_size)` so that every group is a row of the last dimension; compute `lo`, `hi`, scales and zero points with `amin`/`amax` there, then the codes, and reshape back.
# ```

# %% [markdown]
# ```{solution-start} ex-14-zeropoint
# :class: dropdown
# ```

# %%
def zeropoint_quantize(w, bits, group_size):
    ### BEGIN SOLUTION
    out_features, in_features = w.shape
    groups = w.reshape(out_features, in_features // group_size, group_size)
    lo = groups.amin(-1).clamp(max=0)
    hi = groups.amax(-1).clamp(min=0)
    top = 2**bits - 1
    scales = (hi - lo) / top
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    zeros = torch.round(-lo / scales).clamp(0, top)
    codes = (torch.round(groups / scales.unsqueeze(-1)) + zeros.unsqueeze(-1)).clamp(0, top)
    return codes.to(torch.uint8).reshape(w.shape), scales, zeros.to(torch.uint8)
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
# Against the library's round-to-nearest `quantize` (which the answer may not call), dtypes included.
check_zeropoint_quantize(zeropoint_quantize)

# %% [markdown]
# ```{exercise-start}
# :label: ex-14-bytes
# :nonumber:
# ```
# **Exercise 14.2 (predict, then measure: bytes).** Block 0's up projection is an `nn.Linear(128, 512)`
# with a bias. Before running the measuring cell, predict how many bytes `QuantizedLinear` stores
# for it (codes, scales or absmax, zero points if any, and the float32 bias) in three formats:
# `"int4_g32"` (4-bit absmax, groups of 32, float32 scales), `"int3_g128"` (3-bit absmax, groups of
# 128) and `"nf4"` (NF4 with double quantisation: one 8-bit absmax code per block of 64 weights,
# one float32 scale per 256 such codes, and one float32 offset). Write your numbers in
# `predict_bytes`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Two 4-bit codes share a byte (and 3-bit codes still take a nibble each). Then count the extra tensors per format: one float32 scale per group, or for NF4 one byte per block of 64 plus the second-level scales and one offset. The bias is float32 in all three.
# ```

# %% [markdown]
# ```{solution-start} ex-14-bytes
# :class: dropdown
# ```

# %%
def predict_bytes():
    """Your prediction, in bytes: {"int4_g32": ..., "int3_g128": ..., "nf4": ...}."""
    ### BEGIN SOLUTION
    n_weights, rows_out = 512 * 128, 512
    codes_4bit = n_weights // 2  # two codes per byte
    bias = 4 * rows_out
    absmax_codes = n_weights // 64
    return {
        "int4_g32": codes_4bit + 4 * rows_out * (128 // 32) + bias,
        "int3_g128": codes_4bit + 4 * rows_out + bias,  # 3-bit codes still take a nibble each
        "nf4": codes_4bit + absmax_codes + 4 * -(-absmax_codes // 256) + 4 + bias,
    }
    ### END SOLUTION


predicted_bytes = predict_bytes()

# %% [markdown]
# The 3-bit layer stores as many code bytes as the 4-bit one: `QuantizedLinear` packs any code of 4
# bits or fewer into a nibble. Only its scales are fewer (groups of 128 instead of 32).
#
# ```{solution-end}
# ```

# %%
# The measuring instrument, imported after your prediction.
from roadmap_lib.quantization import QuantizedLinear

up0 = model.get_submodule("blocks.0.ffn.up_proj")
measured_bytes = {"int4_g32": QuantizedLinear.from_linear(up0, "rtn", 4, "absmax", 32).nbytes,
                  "int3_g128": QuantizedLinear.from_linear(up0, "rtn", 3, "absmax", 128).nbytes,
                  "nf4": QuantizedLinear.from_linear(up0, "nf4").nbytes}
for fmt, n in measured_bytes.items():
    check_close(predicted_bytes[fmt], n, name=f"predicted bytes, {fmt}", atol=0.5, rtol=0)

# %% [markdown]
# ```{exercise-start}
# :label: ex-14-gptq
# :nonumber:
# ```
# **Exercise 14.3 (GPTQ by hand).** Write `gptq_by_hand(w, hessian, bits)` for `w` `(out, in)` and the
# Hessian `(in, in)` of its calibration inputs, following section 6 without lazy batches: absmax
# scales per row computed once from the original `w` ($s = \max|w_{\text{row}}| / (2^{b-1}-1)$),
# dampening $H + 0.01\,\overline{\operatorname{diag} H}\, I$, $U$ the upper Cholesky factor of
# $H^{-1}$ (`torch.linalg.cholesky(..., upper=True)`), then column by column: round, clamp to
# $[-(2^{b-1}-1), 2^{b-1}-1]$, and spread the scaled error over the columns to the right. Return the
# dequantised weight $\hat W$ `(out, in)`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Compute the scales once from the original weight; the loop changes `W` in place to the right of column $j$, so work on a copy. The error divided by $U_{jj}$ times the row $U_{j, j:}$ is the update.
# ```

# %% [markdown]
# ```{solution-start} ex-14-gptq
# :class: dropdown
# ```

# %%
def gptq_by_hand(w, hessian, bits):
    ### BEGIN SOLUTION
    qmax = 2 ** (bits - 1) - 1
    W = w.clone()
    s = W.abs().amax(dim=1, keepdim=True) / qmax
    h = hessian + 0.01 * torch.diagonal(hessian).mean() * torch.eye(len(hessian), dtype=hessian.dtype)
    U = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    w_hat = torch.zeros_like(W)
    for j in range(W.shape[1]):
        w_hat[:, j] = s[:, 0] * torch.clamp(torch.round(W[:, j] / s[:, 0]), -qmax, qmax)
        err = (W[:, j] - w_hat[:, j]) / U[j, j]
        W[:, j:] -= err[:, None] * U[j, j:][None, :]
    return w_hat
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
# Against the library's `gptq_quantize` (which the answer may not call), then against round-to-nearest.
check_gptq_by_hand(gptq_by_hand)
