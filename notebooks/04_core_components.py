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
# # 04. Core components
#
# **What you will learn**
#
# - scaled dot-product attention written out, with every kind of mask (causal, padding, sliding
#   window, additive biases), and multi-head attention in its three flavours: MHA, GQA and MQA;
#   ours is checked against PyTorch's `scaled_dot_product_attention` as we go;
# - what attention costs: time and memory measured against the sequence length, with the fitted
#   exponent, and why a fused kernel changes the memory curve but not the time curve;
# - the rest of a block: the feed-forward network and its activations (ReLU, GELU, SiLU, and the
#   gated SwiGLU and GeGLU), LayerNorm and RMSNorm, residual paths, pre-norm and post-norm, and
#   why one of the two trains at a learning rate where the other stalls, with the gradient norms of
#   each block at initialisation that Xiong et al. use to explain it;
# - where a model's parameters and training FLOPs are ($12d^2$ per block, $\approx 6N$ per token),
#   checked against a real model and PyTorch's FLOP counter;
# - that a GPT-2 block, a BERT layer and a Llama decoder layer are all the same few pieces, by
#   loading each from transformers into our block and getting the same numbers;
# - a function transformers find hard to learn (parity), and how a convolution in front of
#   attention (a hybrid) supplies what attention lacks.
#
# **What you need**: chapter 1 (why attention) and chapter 3 (positional encodings, RoPE).
#
# **Run time**: about 50 s on a laptop CPU.

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from ipywidgets import Dropdown, FloatSlider, IntSlider, interact
from torch.utils.flop_counter import FlopCounterMode

from roadmap_lib import set_seed
from roadmap_lib.attention import (
    AttentionConfig,
    KVCache,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
    sliding_window_mask,
)
from roadmap_lib.chapters.ch04_core_components.activations import (
    load_results as load_activation_results,
)
from roadmap_lib.chapters.ch04_core_components.activations import (
    losses_by_activation,
)
from roadmap_lib.chapters.ch04_core_components.activations import (
    run_one as run_activation,
)
from roadmap_lib.chapters.ch04_core_components.exercises import (
    check_block_train_flops,
    check_causal_attention,
    check_kv_cache_bytes,
    check_rms_norm,
    check_window_mask,
)
from roadmap_lib.chapters.ch04_core_components.experiments import (
    BitClassifier,
    BitGRU,
    BlockStackLM,
    attention_scaling,
    grad_norms_at_init,
    hf_layer_max_diff,
    offset_heads_attention,
    train_bit_task,
    train_lm,
)
from roadmap_lib.chapters.ch04_core_components.plots import (
    plot_activation_seeds,
    plot_attention_heads,
    plot_grad_norms,
    plot_loss_curves,
    plot_masks,
    plot_norms,
    plot_scaling,
)
from roadmap_lib.data import CharLMData
from roadmap_lib.layers import (
    BlockConfig,
    LayerNorm,
    RMSNorm,
    gelu,
    gelu_tanh,
    relu,
    silu,
)
from roadmap_lib.measure import count_parameters
from roadmap_lib.models import GPT, GPTConfig
from roadmap_lib.scaling import fit_power_law, gpt_param_counts

set_seed(0)

# %% [markdown]
# ## Scaled dot-product attention
#
# Every position $i$ asks a question (a query $q_i$), every position $j$ offers a label (a key
# $k_j$) and a content (a value $v_j$). Position $i$ gets a weighted average of the values, with
# weights that say how well its query matches each key {cite}`vaswani2017attention`:
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{QK^\top}{\sqrt{d}} + M\right) V .$$
#
# $Q$ is $(L_q, d)$, $K$ and $V$ are $(L_k, d)$, so $QK^\top$ is an $(L_q, L_k)$ table of scores.
# Why divide by $\sqrt d$? If the entries of $q$ and $k$ have unit variance, their dot product has
# variance $d$; without the scale, a wide head would push the softmax into a nearly one-hot corner
# where its gradient vanishes. $M$ is the mask: $0$ where position $i$ may look at $j$, $-\infty$
# where it may not, or any real number (a bias, as ALiBi and T5 add, chapter 3).
#
# `roadmap_lib.attention.scaled_dot_product_attention` is those lines written out, with the same
# arguments as PyTorch's fused function so that one can replace the other. Is it the same
# function? Compare them on every kind of mask, in float32 and float64:

# %%
g = torch.Generator().manual_seed(0)
q = torch.randn(2, 4, 6, 16, generator=g)  # (batch, heads, Lq, d)
k = torch.randn(2, 4, 9, 16, generator=g)  # (batch, heads, Lk, d)
v = torch.randn(2, 4, 9, 16, generator=g)
masks = {
    "none": {},
    "causal": {"is_causal": True},
    "boolean": {"attn_mask": torch.rand(6, 9, generator=g) > 0.3},
    "additive": {"attn_mask": torch.randn(2, 4, 6, 9, generator=g)},
    "scale": {"scale": 0.5},
}
print(f"{'mask':<10}{'float32':>12}{'float64':>12}")
for name, kw in masks.items():
    diffs = []
    for dtype in (torch.float32, torch.float64):
        kw_d = {a: (b.to(dtype) if torch.is_tensor(b) and b.is_floating_point() else b)
                for a, b in kw.items()}
        ours = scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), **kw_d)
        ref = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), **kw_d)
        diffs.append((ours - ref).abs().max().item())
    print(f"{name:<10}{diffs[0]:>12.1e}{diffs[1]:>12.1e}")
    assert diffs[0] < 1e-5 and diffs[1] < 1e-12

# %% [markdown]
# The largest difference is at the level of float rounding. Two details are easy to get wrong and
# the comparison covers both. With $L_q \ne L_k$, PyTorch's `is_causal` lets query $i$ see keys
# $j \le i$ (the mask is aligned to the top-left corner); when new queries come *after* cached
# keys, as in decoding, the mask must be aligned to the bottom-right instead
# (`causal_mask(lq, lk, offset=lk - lq)`). And a query row whose keys are all masked gives zeros
# rather than the NaN that a plain softmax of $-\infty$ would give.
#
# ## Masks
#
# A mask is a boolean table: which query may look at which key. The four that every model uses:

# %%
pad = padding_mask(torch.tensor([6]), 8)  # one sequence of 6 real tokens, padded to 8
plot_masks({
    "causal (GPT)": causal_mask(8),
    "padding (BERT)": ~pad.expand(8, 8),
    "sliding window 3": sliding_window_mask(8, 3),
    "causal + padding": causal_mask(8) & ~pad,
})
plt.show()

# %% [markdown]
# A causal mask is what makes a decoder a language model: position $t$ is trained to predict
# token $t+1$ and must not see it. Padding masks hide the filler tokens that make a batch of
# sentences rectangular. A sliding window (Mistral, Longformer; chapter 12) keeps only the last
# $w$ keys, so the cost per token stops growing with the context.
#
# ### Explore: attention maps by head
#
# To see what a mask does to the weights, we build four heads by hand: keys are one-hot positions
# and head $h$'s query at position $i$ is the one-hot of position $i - h$, so head $h$ "wants" the
# token $h$ steps back with a score of `sharpness` and is indifferent to everything else. The
# static figure is the causal mask at sharpness 4: rows near the top have nothing $h$ steps back
# and spread their weight over what they may see. In JupyterLab, the controls below redraw it;
# watch how a sliding window shorter than $h$ leaves head $h$ with nothing it wants, and how
# raising the sharpness (a lower softmax temperature) turns soft averages into hard lookups.

# %%
plot_attention_heads(offset_heads_attention(12, 4, sharpness=4.0, mask="causal"),
                     "Four heads, causal mask, sharpness 4")
plt.show()

# %% tags=["nbval-ignore-output", "remove-output"]
def _explore(mask="causal", sharpness=4.0, window=4, pad=3):
    w = offset_heads_attention(12, 4, sharpness=sharpness, mask=mask, window=window, pad=pad)
    plot_attention_heads(w, f"Four heads, {mask} mask, sharpness {sharpness:g}")
    plt.show()


interact(_explore, mask=Dropdown(options=["none", "causal", "sliding", "padding"], value="causal"),
         sharpness=FloatSlider(value=4.0, min=0.0, max=12.0, step=0.5),
         window=IntSlider(value=4, min=1, max=12), pad=IntSlider(value=3, min=0, max=11));

# %% [markdown]
# ## Multi-head attention: MHA, GQA, MQA
#
# One head computes one weighted average; a layer usually wants several, looking for different
# things. Multi-head attention projects the input $x$ (of width $d_\text{model}$) into $h$ heads of
# width $d = d_\text{model}/h$, runs attention in each head independently, concatenates the results
# and projects back:
#
# $$\operatorname{MHA}(x) = \operatorname{concat}(\text{head}_1, \dots, \text{head}_h)\, W_O, \qquad
# \text{head}_i = \operatorname{Attention}(x W_Q^{(i)}, x W_K^{(i)}, x W_V^{(i)}).$$
#
# At generation time a model keeps every past key and value in a **KV cache**, so that each new
# token costs one query against the stored keys instead of recomputing the whole prefix. That cache
# is what fills a GPU's memory during serving. Multi-query attention {cite}`shazeer2019mqa` keeps a
# single key/value head shared by all query heads; grouped-query attention {cite}`ainslie2023gqa`
# sits in between, with $g$ key/value heads, each shared by $h/g$ query heads. In our
# `MultiHeadAttention` this is one number, `n_kv_heads`:

# %%
x = torch.randn(2, 10, 64, generator=g)
print(f"{'variant':<8}{'kv heads':>9}{'parameters':>12}{'KV cache floats/token':>23}")
for name, n_kv in [("MHA", 8), ("GQA", 2), ("MQA", 1)]:
    attn = MultiHeadAttention(AttentionConfig(d_model=64, n_heads=8, n_kv_heads=n_kv, causal=True))
    attn.eval()
    full = attn(x)
    cache = KVCache()  # feed the same sequence one token at a time
    steps = torch.cat([attn(x[:, t:t + 1], cache=cache) for t in range(10)], dim=1)
    assert (steps - full).abs().max() < 1e-5, "cached decoding must equal full recomputation"
    per_token = 2 * n_kv * attn.config.head_dim  # one key and one value per kv head
    print(f"{name:<8}{n_kv:>9}{count_parameters(attn):>12}{per_token:>23}")

# %% [markdown]
# With the cache, feeding the sequence one token at a time gives the same outputs as processing it
# whole (asserted above for all three variants), and GQA with 2 key/value heads stores 4× less
# per token than MHA with 8. The test suite checks more: that our multi-head attention equals
# `torch.nn.MultiheadAttention` with the same weights, that GQA equals MHA with the key/value
# weights repeated, and, as property tests over random inputs, that a causal output at position
# $t$ never changes when a later token changes and that attention without positions is
# permutation-equivariant (shuffle the input, and the output is shuffled the same way).
#
# ## What attention costs
#
# The score table $QK^\top$ has $L^2$ entries for a sequence of length $L$. Computing it takes
# $O(L^2 d)$ operations, and a straightforward implementation also *stores* it, which is $O(L^2)$
# memory per head. Let us measure both: our written-out function against PyTorch's fused
# `scaled_dot_product_attention`, which on CPU computes attention block by block without ever
# holding the whole table (the FlashAttention idea
# {cite}`dao2022flashattention,rabe2021selfattention`,
# chapter 13).
#
# *How we measure.* Time is the fastest of three calls after a warm-up, on one CPU thread (wall
# clock; other programs on the machine make it noisy, so compare the two curves measured in the
# same run rather than the absolute numbers).
# Memory is **measured**, not computed from a formula: a `TorchDispatchMode` sees every tensor that
# every operator creates during the call, follows its storage with a weak reference, and records
# the largest total of the storages still alive. Scratch memory that a fused kernel uses
# internally and frees before returning is invisible to it; for PyTorch's CPU kernel that is a
# few blocks per thread, independent of $L$.

# %%
lengths = [128, 256, 512, 1024, 2048]
scaling = attention_scaling(
    {"ours (written out)": scaled_dot_product_attention,
     "torch SDPA (fused)": F.scaled_dot_product_attention},
    lengths, batch=1, heads=2, head_dim=32, repeats=3,
)
fit_from = 2  # fit on L >= 512, where the L^2 work dominates the fixed overheads
plot_scaling(scaling, fit_from=fit_from)
plt.show()
exponents = {
    name: {key: fit_power_law(r["length"][fit_from:], r[key][fit_from:])[0]
           for key in ("seconds", "bytes")}
    for name, r in scaling.items()
}
for name, e in exponents.items():
    print(f"{name:<20} time ∝ L^{e['seconds']:.2f}   memory ∝ L^{e['bytes']:.2f}")

# %%
ours_e, fused_e = exponents["ours (written out)"], exponents["torch SDPA (fused)"]
assert 1.8 < ours_e["bytes"] < 2.2, "the written-out version stores the L x L table"
assert fused_e["bytes"] < 1.2, "the fused kernel never holds the whole table"
assert ours_e["seconds"] > 1.3 and fused_e["seconds"] > 1.3, "both still do L^2 work"
ours_mib = scaling["ours (written out)"]["bytes"][-1] / 2**20
fused_mib = scaling["torch SDPA (fused)"]["bytes"][-1] / 2**20
assert ours_mib > 20 * fused_mib
print(f"at L = {lengths[-1]}: {ours_mib:.0f} MiB against {fused_mib:.1f} MiB")

# %% [markdown]
# What we found. The written-out attention's memory grows as $L^{2}$ (fitted exponent printed
# above, asserted between 1.8 and 2.2): at $L = 2048$ it holds about three copies of a
# $2 \times 2048 \times 2048$ float table at once (the scores, the masked scores, the softmax),
# tens of times what the fused kernel needs, whose memory grows linearly (exponent asserted below
# 1.2). Time grows about quadratically for **both** (asserted above 1.3 only, because timings on a
# busy machine are noisy; the fits often come out near or a little above 2, as at large $L$ the
# tables no longer fit in the CPU caches): the
# fused kernel is faster by a constant factor, but it still computes every one of the $L^2$
# scores. Avoiding the memory wall is an implementation matter; avoiding the compute wall needs a
# different architecture (sparse, linear or state-space attention, chapter 12).
#
# ## The feed-forward network and its activations
#
# Attention mixes information *across* positions; the feed-forward network (FFN) then transforms
# each position on its own: $\operatorname{FFN}(x) = W_2\, \phi(W_1 x)$, with a hidden width
# $d_\text{ff}$ usually $4 d_\text{model}$. The activation $\phi$ has changed over the years:
#
# - ReLU, $\max(0, x)$, in the original Transformer {cite}`vaswani2017attention`;
# - GELU, $x\,\Phi(x)$ with $\Phi$ the standard normal CDF {cite}`hendrycks2016gelu`, in BERT and
#   GPT-2; GPT-2 uses its tanh approximation
#   $\tfrac12 x\,(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715 x^3)))$;
# - SiLU (Swish), $x\,\sigma(x)$ {cite}`elfwing2018silu,ramachandran2017swish`;
# - gated variants {cite}`shazeer2020glu`: $\operatorname{FFN}(x) = W_2\,(\phi(W_g x) \odot W_1 x)$,
#   a third matrix whose output multiplies the activation element by element; SwiGLU ($\phi$ =
#   SiLU) is Llama's, GeGLU ($\phi$ = GELU) is Gemma's.

# %%
z = torch.linspace(-4, 4, 401, dtype=torch.float64)
for ours_fn, ref in [(relu, F.relu(z)), (gelu, F.gelu(z)),
                     (gelu_tanh, F.gelu(z, approximate="tanh")), (silu, F.silu(z))]:
    assert (ours_fn(z) - ref).abs().max() < 1e-12, ours_fn.__name__
fig, ax = plt.subplots(figsize=(6, 3.5))
for fn in (relu, gelu, silu):
    ax.plot(z, fn(z), label=fn.__name__)
ax.set_xlabel("x")
ax.set_ylabel("φ(x)")
ax.set_title("Activations (ours; equal to torch's within 1e-12)")
ax.legend()
ax.grid(alpha=0.3)
plt.show()
print(f"max |GELU(tanh) - GELU| on [-4, 4]: {(gelu_tanh(z) - gelu(z)).abs().max():.1e}")

# %% [markdown]
# GELU and SiLU are smooth versions of ReLU that let a little negative signal through; the tanh
# approximation differs from the exact GELU by less than $10^{-3}$, which is still enough to
# matter when loading GPT-2 weights (the model was trained with the approximation).
#
# ## LayerNorm and RMSNorm
#
# A deep stack of blocks stays trainable only if the scale of the activations is kept in check.
# LayerNorm {cite}`ba2016layernorm` normalises each position's vector over its features:
#
# $$\operatorname{LN}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \gamma + \beta, \qquad
# \operatorname{RMSNorm}(x) = \frac{x}{\sqrt{\tfrac1d \sum_i x_i^2 + \epsilon}} \odot \gamma .$$
#
# RMSNorm {cite}`zhang2019rmsnorm` drops the centring and the bias: one reduction instead of two,
# and in practice no loss of quality, which is why Llama and most recent models use it. Ours are
# the formulas above; they equal PyTorch's modules:

# %%
xn = torch.randn(4, 10, 32, dtype=torch.float64) * 3 + 2
ln, rms = LayerNorm(32, eps=1e-5).double(), RMSNorm(32, eps=1e-5).double()
assert (ln(xn) - torch.nn.LayerNorm(32, eps=1e-5).double()(xn)).abs().max() < 1e-12
assert (rms(xn) - torch.nn.RMSNorm(32, eps=1e-5).double()(xn)).abs().max() < 1e-12
vec = torch.tensor([3.0, 4.0, 2.5, 5.0, 3.5, 1.0, 4.5, 3.0])  # all positive, mean 3.3
plot_norms(vec, {"LayerNorm": LayerNorm(8)(vec), "RMSNorm": RMSNorm(8, 1e-6)(vec)},
           "LayerNorm centres and scales; RMSNorm only scales")
plt.show()
assert abs(LayerNorm(8)(vec).mean()) < 1e-6 and RMSNorm(8, 1e-6)(vec).mean() > 0.8

# %% [markdown]
# On a vector whose features are all positive, LayerNorm's output has mean zero while RMSNorm's
# keeps the sign pattern and only rescales to unit root-mean-square.
#
# ## Residual paths, pre-norm and post-norm
#
# Each sub-layer (attention, FFN) sits on a residual path {cite}`he2016resnet`: the block adds its
# output to its input, so information and gradients can flow straight through a deep stack. Where
# the norm goes is the one design choice that differs:
#
# - **post-norm** (the original Transformer, BERT): $x \leftarrow \operatorname{LN}(x + f(x))$;
# - **pre-norm** (GPT-2 onwards, Llama): $x \leftarrow x + f(\operatorname{LN}(x))$, with one
#   final norm after the last block.
#
# In pre-norm the residual stream itself is never normalised, so there is a clean identity path
# from the input to the output. In post-norm every block's output passes through a norm, and the
# gradient reaching the early layers must cross all of them; Xiong et al.
# {cite}`xiong2020layernorm` showed that post-norm needs a learning-rate warm-up to train at all at
# usual learning rates (see also {cite}`liu2020admin`). Our `TransformerBlock` does both with one
# flag, `prenorm`. The experiment: an 8-block character language model on the Jargon File,
# trained with Adam at a constant learning rate, no warm-up and no clipping: pre-norm and post-norm
# at a high rate (3e-2), and post-norm again at a gentle one (3e-3).
#
# From here on, the models we *train* compute attention with PyTorch's fused kernel and their norms
# and activations as one PyTorch kernel each (`attention_backend="sdpa", fused_ops=True`, the
# `FAST` settings below): the lesson is now where the norm sits, not how attention is computed, and
# the fast path is the same function as the written-out one (the test suite checks them equal
# within float rounding; chapter 07 measures the speed-up). The attention-cost measurement above
# is *about* the arithmetic and keeps both paths side by side; the gradient norms at initialisation
# below are one backward pass per model and stay on the default, written-out path.

# %%
data = CharLMData(context=32, batch_size=16)
FAST = {"attention_backend": "sdpa", "fused_ops": True}  # the same function as "math", fewer kernels
counts = torch.bincount(data.splits["train"], minlength=len(data.vocab)).double()
freqs = counts[counts > 0] / counts.sum()
unigram = -(freqs * freqs.log()).sum().item()  # the loss of predicting character frequencies
print(f"unigram entropy of the corpus: {unigram:.2f} nats")

norm_runs = {}
for label, prenorm, lr in [("pre-norm, lr 3e-2", True, 3e-2), ("post-norm, lr 3e-2", False, 3e-2),
                           ("post-norm, lr 3e-3", False, 3e-3)]:
    set_seed(0)
    cfg = BlockConfig(d_model=32, n_heads=4, d_ff=64, causal=True, prenorm=prenorm, **FAST)
    model = BlockStackLM(len(data.vocab), data.context, cfg, n_layers=8)
    norm_runs[label] = train_lm(model, data.get_batch, steps=100, lr=lr, desc=label)
plot_loss_curves(norm_runs, "8 blocks, Adam at a constant learning rate, no warm-up",
                 reference=(unigram, "unigram entropy"))
plt.show()
final = {label: sum(losses[-20:]) / 20 for label, losses in norm_runs.items()}
for label, value in final.items():
    print(f"{label:<20} final loss {value:.2f}")

# %%
assert final["post-norm, lr 3e-2"] > unigram - 0.1, "post-norm stalls at the high rate"
assert final["pre-norm, lr 3e-2"] < unigram - 0.3, "pre-norm learns at the high rate"
assert final["post-norm, lr 3e-3"] < unigram - 0.2, "post-norm learns at a gentle rate"

# %% [markdown]
# What we found. At learning rate 3e-2 the post-norm stack gets stuck at the unigram entropy: it
# learns how frequent each character is and nothing more, and does not recover within the run.
# The pre-norm stack, with the same weights at the start and the same
# batches, keeps learning. At 3e-3 the post-norm stack trains too: post-norm is not broken, it is
# fragile, which is why post-norm recipes (BERT's included) always come with a warm-up. Pre-norm
# buys robustness to the learning rate; its price, according to Liu et al.
# {cite}`liu2020admin`, is that a post-norm model that does train well often ends slightly better.
#
# ### Why: the gradients at initialisation
#
# Xiong et al.'s explanation {cite}`xiong2020layernorm` is about the gradients *before* the first
# step. In post-norm, the gradient reaching the last block's weights does not shrink as the stack
# gets deeper; in pre-norm it does (their Theorem 1: like $1/\sqrt{L}$ for $L$ blocks), because each
# block adds its output to a residual stream that keeps growing and the final norm divides by it.
# So at the same learning rate the first post-norm updates are much larger near the output, which
# is what the warm-up tames. We measure it: the norm of the gradient of each block's second FFN
# matrix ($W_2$, the weight the paper analyses), at initialisation, after one batch, with Xavier
# initialisation as in the paper, for stacks of 2, 4, 8 and 16 blocks (width 32) and 3 seeds each
# (the seed draws the weights and the batch).

# %%
depths, grad_seeds = (2, 4, 8, 16), (0, 1, 2)
grad_norms = {(label, L): torch.tensor([grad_norms_at_init(len(data.vocab), data.context, data.get_batch,
                                                           prenorm=prenorm, n_layers=L, seed=seed)
                                        for seed in grad_seeds])
              for label, prenorm in (("post-norm", False), ("pre-norm", True)) for L in depths}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
plot_grad_norms({label: grad_norms[(label, 16)] for label in ("post-norm", "pre-norm")}, ax=axes[0])
axes[0].set_title("16 blocks: gradient norm of each block's W2 at initialisation")
for k, label in enumerate(("post-norm", "pre-norm")):
    top = torch.stack([grad_norms[(label, L)][:, -1] for L in depths])  # (depths, seeds)
    axes[1].plot(depths, top, "o", color=f"C{k}", alpha=0.3)
    axes[1].plot(depths, top.mean(1), "-o", color=f"C{k}", label=label)
axes[1].set(xscale="log", yscale="log", xlabel="number of blocks L", ylabel="last block's $\\|\\nabla W_2\\|$",
            title="The last block's gradient against depth")
axes[1].set_xticks(depths, [str(L) for L in depths])
axes[1].minorticks_off()
axes[1].legend()
plt.tight_layout()
plt.show()
last = {label: [grad_norms[(label, L)][:, -1].mean().item() for L in depths] for label in ("post-norm", "pre-norm")}
exponent = {label: fit_power_law(depths, v)[0] for label, v in last.items()}
deep = {label: grad_norms[(label, 16)] for label in ("post-norm", "pre-norm")}  # (seeds, blocks)
top_vs_bottom = {label: (v[:, -4:].mean(1) / v[:, :4].mean(1)).tolist() for label, v in deep.items()}
print("last block's gradient norm at L =", depths, {k: [round(x, 3) for x in v] for k, v in last.items()})
print("fitted exponent of L:", {k: round(v, 2) for k, v in exponent.items()})
print("16 blocks, mean of the top 4 / bottom 4 blocks, per seed:",
      {k: [round(x, 2) for x in v] for k, v in top_vs_bottom.items()})
print(f"16 blocks, last block: post-norm / pre-norm = {last['post-norm'][-1] / last['pre-norm'][-1]:.1f}")

# %%
assert exponent["pre-norm"] < -0.15 and exponent["post-norm"] > -0.05, "pre-norm's top gradient shrinks with depth"
assert last["post-norm"][-1] > 2.5 * last["pre-norm"][-1]
assert max(top_vs_bottom["pre-norm"]) < 0.6 and min(top_vs_bottom["post-norm"]) > 0.8

# %% [markdown]
# What came out, at width 32 and one batch. The last block's gradient does not shrink with depth in
# post-norm (the fitted exponent of $L$ is about zero or positive) and does in pre-norm, though
# more slowly than the paper's $L^{-1/2}$ bound (the fit is printed above); at 16 blocks the
# post-norm gradient on the last block is several times the pre-norm one. Inside the 16-block
# stacks the two differ in shape too, but not as in Xiong et al.'s Figure 3 (post-norm rising
# toward the top, pre-norm flat): here post-norm's profile has no consistent trend (it is flat
# within the seeds' scatter, one seed of three rising toward the top), while pre-norm's *falls*
# toward the top, to less than 0.6 of the bottom blocks' in every seed. In a stack this small every
# lower block also receives gradient through all the residual branches above it. The mechanism the
# warm-up addresses, large gradients near the output of a post-norm stack relative to pre-norm, is
# there either way; the exact profile depends on width, depth and initialisation.
#
# ## Counting parameters and FLOPs
#
# A block's parameters are almost all in four $d \times d$ attention projections and two
# $d \times 4d$ FFN matrices: $4d^2 + 8d^2 = 12d^2$ per block, plus $13d$ biases and norm
# weights. Training costs about $6N$ FLOPs per token for $N$ non-embedding parameters
# {cite}`kaplan2020scaling`: $2N$ for the forward pass (a multiply and an add per weight) and $4N$
# for the backward (the gradients with respect to the inputs and to the weights). Two terms are
# missing from $6N$: the output layer, $6dV$ per token for a vocabulary of $V$, and the attention
# scores and weighted sums, $6 \cdot 2 L T d$ per token at sequence length $T$. We check the
# accounting against the real thing: GPT-2 small's configuration built on PyTorch's `meta` device
# (shapes only, no memory), its parameters counted, and one training step's matrix FLOPs counted
# by `torch.utils.flop_counter.FlopCounterMode`. (Chapter 09 builds scaling laws on these counts.)

# %%
gpt2_cfg = GPTConfig()  # GPT-2 small: d = 768, 12 blocks, V = 50,257, context 1,024
with torch.device("meta"):
    gpt2 = GPT(gpt2_cfg)
d, L, V, T = gpt2_cfg.d_model, gpt2_cfg.n_layers, gpt2_cfg.vocab_size, 128
block_params = count_parameters(gpt2.blocks[0])
counts = gpt_param_counts(gpt2_cfg)
ids = torch.zeros(2, T, dtype=torch.long, device="meta")
with FlopCounterMode(display=False) as flop_counter:
    gpt2(ids).float().sum().backward()
per_token = flop_counter.get_total_flops() / ids.numel()
terms = {"6N (blocks, N = 12Ld²)": 6 * counts["kaplan"], "6dV (output layer)": 6 * d * V,
         "6·2LTd (attention scores)": 6 * 2 * L * T * d}
print(f"one block: {block_params:,} parameters; 12d² = {12 * d * d:,}; 12d² + 13d = {12 * d * d + 13 * d:,}")
print(f"whole model: {count_parameters(gpt2):,} parameters; N (non-embedding) = {counts['non_embedding']:,}")
print(f"training FLOPs per token at T = {T}: FlopCounterMode {per_token:,.0f}")
for name, value in terms.items():
    print(f"  {name:<28} {value:>13,.0f}  ({value / per_token:.0%})")
assert block_params == 12 * d * d + 13 * d and count_parameters(gpt2) == counts["total"]
assert per_token == sum(terms.values())
assert 0.6 < terms["6N (blocks, N = 12Ld²)"] / per_token < 0.75

# %% [markdown]
# The parameter count is $12d^2$ per block up to the biases, and FlopCounterMode's count is exactly
# the sum of the three terms, with $N = 12Ld^2$: the biases and norm weights (the other
# $13d$ per block) are not matrix multiplications and are not counted. For GPT-2 small at 128 tokens, $6N$ is only about two thirds of the
# work: the output layer over a 50k vocabulary adds almost half as much again. The rule $C \approx
# 6ND$ is for models where $N$ dwarfs $dV$ and $T$ is small next to $d$; at long contexts the
# attention term grows with $T$ (the section above measured its time and memory).
#
# ## Three real layers, one block
#
# A GPT-2 block is pre-norm LayerNorm + attention with biases + a GELU(tanh) MLP
# {cite}`radford2019gpt2`. A BERT layer is post-norm LayerNorm + attention + an exact-GELU MLP
# {cite}`devlin2019bert`. A Llama decoder layer is pre-norm RMSNorm + grouped-query attention with
# RoPE and no biases + a SwiGLU MLP {cite}`touvron2023llama`. Each is a `BlockConfig` away from our
# `TransformerBlock`: `roadmap_lib.hf_layers` reads the weights of the transformers layer (GPT-2's
# fused, transposed `c_attn` included) into ours; for Llama the RoPE comes from chapter 3's
# `roadmap_lib.rope`. Random weights, the same input, and the largest difference:

# %%
layer_diffs = {family: hf_layer_max_diff(family) for family in ("gpt2", "bert", "llama")}
for family, diff in layer_diffs.items():
    print(f"{family:<6} max |ours - transformers| = {diff:.1e}")
assert max(layer_diffs.values()) <= 1e-5

# %% [markdown]
# ## Activations at equal parameter count
#
# A gated FFN has three matrices where a plain one has two, so comparing them at the same hidden
# width would give the gated one 50% more parameters. At equal parameters its hidden width must be
# $\tfrac23$ of the plain one's (Llama's $\tfrac23 \cdot 4 d$ comes from there):
# `ffn_width_for_params(d_model, d_ff, gated)`. We train the same 3-block character model (no
# biases, so the counts match exactly) with each activation for 200 steps and compare the
# validation loss. Five activations and three seeds are fifteen runs, more than this chapter's
# time budget, so they were run once by `python -m roadmap_lib build 04-activations` into
# `data/04_activations.json`; here we re-train one of them live, on the fast path (`fast=True`; the
# recorded runs used the written-out one), and compare.

# %%
act_info = load_activation_results()
live_act = run_activation("swiglu", seed=0, data=data, fast=True)
recorded_act = next(r for r in act_info["runs"] if (r["activation"], r["seed"]) == ("swiglu", 0))
print(f"swiglu, seed 0: live {live_act['val_loss']:.4f}, recorded {recorded_act['val_loss']:.4f}")
assert abs(live_act["val_loss"] - recorded_act["val_loss"]) < 0.01
act_losses = losses_by_activation(act_info)
params = {r["activation"]: (r["params"], r["d_ff"]) for r in act_info["runs"]}
print(f"{'activation':<11}{'d_ff':>6}{'parameters':>12}   val loss, seeds 0 1 2    mean")
for act, losses in act_losses.items():
    print(f"{act:<11}{params[act][1]:>6}{params[act][0]:>12}   " + " ".join(f"{v:.3f}" for v in losses)
          + f"   {sum(losses) / 3:.3f}")
plot_activation_seeds(act_losses)
plt.show()

# %%
assert len({n for n, _ in params.values()}) == 1, "equal parameter counts"
assert all(len(v) == 3 for v in act_losses.values())
every = [v for losses in act_losses.values() for v in losses]
assert max(every) - min(every) < 0.1, "all within 0.1 nats"
gated_by_seed = [(act_losses["swiglu"][i] + act_losses["geglu"][i]) / 2 for i in range(3)]
plain_by_seed = [sum(act_losses[a][i] for a in ("relu", "gelu", "silu")) / 3 for i in range(3)]
gaps = [p - g for p, g in zip(plain_by_seed, gated_by_seed)]
print("plain mean - gated mean, per seed:", [round(x, 3) for x in gaps])
assert all(x > 0.005 for x in gaps), "gated ahead in every seed"
plain_means = [sum(act_losses[a]) / 3 for a in ("relu", "gelu", "silu")]
assert max(plain_means) - min(plain_means) < 0.015, "the plain three: no difference at this scale"

# %% [markdown]
# What we found, after 200 steps at 41k parameters on characters. All fifteen runs land
# within 0.1 nats of each other. The two gated activations come out ahead of the three plain ones
# in every seed, by about 0.01 to 0.03 nats (printed above), the direction Shazeer
# {cite}`shazeer2020glu` reports at scale. Among the plain ones the means differ by less than
# 0.015 nats, about the spread between seeds of one activation: no difference we would defend.
#
# ## What transformers cannot easily learn
#
# Attention computes smooth averages, and a function whose output flips when *any single* input
# flips is hard to express as one. Parity (is the number of ones odd?) is the standard example:
# Hahn {cite}`hahn2020theoretical` proved that a transformer's sensitivity to one input bit must
# shrink as the input grows, so it cannot represent parity robustly for long inputs. Experiments
# on formal languages agree in an unexpected direction {cite}`bhattamishra2020ability`:
# transformers learn *counter* languages (such as balanced brackets of one kind) well, and it is
# some *regular* languages, parity among them, that defeat them. Majority (are there more ones
# than zeros?) is an average by nature.
#
# Before blaming attention, we need a baseline that *can* represent parity easily: a recurrent
# network needs one bit of state for it. The same small 2-block transformer and a one-layer GRU
# of the same width, trained on fresh random 15-bit strings for 150 steps, three seeds each:

# %%
bit_runs = {}
set_seed(0)
bit_runs["majority"] = train_bit_task(BitClassifier(15, **FAST), "majority", 15, steps=50)
print(f"transformer, majority: held-out accuracy {bit_runs['majority']['accuracy']:.3f}")
parity = {"transformer": [], "GRU": []}
for seed in range(3):
    for name, make in (("transformer", lambda: BitClassifier(15, **FAST)), ("GRU", BitGRU)):
        set_seed(seed)
        parity[name].append(train_bit_task(make(), "parity", 15, steps=150, seed=seed))
for name, runs in parity.items():
    tails = [sum(r["loss"][-50:]) / 50 for r in runs]
    print(f"{name:<11} parity: held-out accuracy {[round(r['accuracy'], 3) for r in runs]}, "
          f"mean loss over the last 50 steps {[round(t, 3) for t in tails]} (ln 2 = {math.log(2):.3f})")

# %%
assert bit_runs["majority"]["accuracy"] > 0.95
for name, runs in parity.items():
    assert all(r["accuracy"] < 0.6 for r in runs), name
    assert all(sum(r["loss"][-50:]) / 50 > math.log(2) - 0.05 for r in runs), f"{name}: parity's loss stays near ln 2"

# %% [markdown]
# Majority is solved within fifty steps. Parity stays at chance (50%) with its loss flat at
# $\ln 2$ for all six runs, **the GRU's included**: in this budget (150 steps of 64 strings) the
# failure is not attention's alone. Parity is hard for gradient descent itself: until a model
# is nearly right, the gradient carries almost no information about which subset of bits matters
# {cite}`shalevshwartz2017failures`, and we also saw the GRU stay at chance for 1,500 steps
# while writing this chapter. What is specific to transformers is the representation limit above
# (Hahn) and its consequence at longer lengths; what a transformer *can* do is write intermediate
# results (chain of thought, chapter 11), turning one hard step into many easy ones.
#
# ### Hybrids
#
# Attention without positions sees its input as a *set* (the permutation-equivariance above), so
# it cannot tell "0110" from "0101". Positional encodings (chapter 3) are one fix. Another is to
# put a layer that *is* order-aware in front of, or between, the attention layers:
#
# - **CNN + Transformer**: convolutions capture local patterns cheaply and attention handles the
#   long range; Conformer {cite}`gulati2020conformer` does this for speech and DETR
#   {cite}`carion2020detr` puts a transformer on top of a CNN backbone for images.
# - **RNN + Transformer**: a recurrence carries a state through the sequence, which gives order,
#   unbounded memory and cheap decoding; Block-Recurrent Transformers
#   {cite}`hutchins2022blockrecurrent` and Jamba {cite}`lieber2024jamba` (attention layers
#   interleaved with Mamba state-space layers, chapter 12) are examples.
#
# A small test of both: "does the string contain two neighbouring ones?" is a purely local
# question. Without positions, our transformer only sees how many ones there are; with a width-3
# convolution in front (`front="conv"`) it sees neighbours, and with a GRU in front
# (`front="gru"`) each position carries a summary of the bits before it (one seed each: the
# gaps below are large; 100 steps).

# %%
hybrid = {}
for label, kw in [("transformer, no positions", {"positions": False}),
                  ("conv + transformer, no positions", {"positions": False, "front": "conv"}),
                  ("GRU + transformer, no positions", {"positions": False, "front": "gru"})]:
    set_seed(0)
    hybrid[label] = train_bit_task(BitClassifier(12, **kw, **FAST), "adjacent", 12, steps=100)
    print(f"{label:<34} held-out accuracy {hybrid[label]['accuracy']:.3f}")
assert hybrid["transformer, no positions"]["accuracy"] < 0.9
assert hybrid["conv + transformer, no positions"]["accuracy"] > 0.95
assert hybrid["GRU + transformer, no positions"]["accuracy"] > 0.95

# %% [markdown]
# The plain transformer guesses from the count of ones (more ones, more likely a pair) and
# plateaus well below 90%; both order-aware front ends answer almost perfectly. Hybrids put each
# kind of layer where it is strong.
#
# ## Summary
#
# - Attention is softmax$(QK^\top/\sqrt d + M)V$; the mask $M$ encodes causality, padding,
#   windows and positional biases. Ours equals PyTorch's on all of them.
# - MHA, GQA and MQA differ only in the number of key/value heads, which sets the size of the KV
#   cache; cached decoding equals full recomputation.
# - A written-out attention needs $O(L^2)$ memory (measured exponent ≈ 2); a fused kernel needs
#   $O(L)$, but both need $O(L^2)$ time.
# - Pre-norm trains at learning rates where post-norm stalls without warm-up. At initialisation the
#   last block's gradient shrinks with depth in pre-norm and not in post-norm (16 blocks: several
#   times smaller).
# - A block holds $12d^2$ parameters plus biases; a training step costs $6N$ FLOPs per token plus
#   the output layer and the attention scores (for GPT-2 small at 128 tokens, $6N$ is two thirds).
# - GPT-2, BERT and Llama layers are the same block with different choices, equal to transformers'
#   within 1e-5.
# - Gated FFNs edge out plain ones at equal parameters in our short runs (see the seeds above);
#   15-bit parity defeats both a small transformer and a GRU in 150 steps; a convolution or a
#   recurrence in front supplies local order.
# - Every model this chapter trains runs on the fast path (`attention_backend="sdpa",
#   fused_ops=True`): the same function as the written-out blocks, computed with fewer kernels; the
#   cells about the arithmetic itself keep the written-out attention.

# %% [markdown]
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-04-causal
# :nonumber:
# ```
# **Exercise 04.1 (causal attention from scratch).** Write `causal_attention(q, k, v)` for `q`, `k`,
# `v` of shape `(batch, heads, L, d)`: scores scaled by $1/\sqrt d$, keys after the query masked
# out, softmax over the keys, weighted sum of the values. Use only `torch` operations (no
# `scaled_dot_product_attention`).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# First compute the `(L, L)` score matrix of every query against every key and divide it by $\sqrt
# d$. Then build a boolean matrix that is True *above* the diagonal (`torch.triu` with
# `diagonal=1`), fill those scores with $-\infty$, and take the softmax over the **last**
# dimension, the keys, before multiplying by `v`.
# ```

# %% [markdown]
# ```{solution-start} ex-04-causal
# :class: dropdown
# ```

# %%
def causal_attention(q, k, v):
    ### BEGIN SOLUTION
    L, d = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    future = torch.ones(L, L, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1) @ v
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_causal_attention(causal_attention)

# %% [markdown]
# ```{exercise-start}
# :label: ex-04-rmsnorm
# :nonumber:
# ```
# **Exercise 04.2 (RMSNorm).** Write `rms_norm(x, weight, eps)` that normalises `x` over its last
# dimension by its root mean square (with `eps` added to the mean square inside the square root)
# and multiplies by `weight`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Square `x`, take the mean over the last dimension with `keepdim=True`, add `eps` to that mean,
# then take the reciprocal square root (`torch.rsqrt`). Nothing is subtracted: that is the
# difference from LayerNorm.
# ```

# %% [markdown]
# ```{solution-start} ex-04-rmsnorm
# :class: dropdown
# ```

# %%
def rms_norm(x, weight, eps):
    ### BEGIN SOLUTION
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_rms_norm(rms_norm)

# %% [markdown]
# ```{exercise-start}
# :label: ex-04-kvcache
# :nonumber:
# ```
# **Exercise 04.3 (the size of a KV cache).** Write `kv_cache_bytes(n_layers, n_kv_heads, head_dim,
# seq_len, batch, bytes_per_value)` that returns how many bytes the key/value cache of a decoder
# takes: every layer stores one key and one value vector per kv head, per position, per sequence.
# Then use it: how much smaller is the cache of a Llama-2-70B-like model (80 layers, 64 query heads
# of width 128, **8** kv heads) than it would be with full multi-head attention?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Count values first, bytes last: one key *and* one value, each `head_dim` numbers, per kv head,
# per position, per sequence of the batch, per layer. Multiply by `bytes_per_value` at the end.
# ```

# %% [markdown]
# ```{solution-start} ex-04-kvcache
# :class: dropdown
# ```

# %%
def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_value):
    ### BEGIN SOLUTION
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch * bytes_per_value
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_kv_cache_bytes(kv_cache_bytes)

# %% [markdown]
# ```{exercise-start}
# :label: ex-04-window
# :nonumber:
# ```
# **Exercise 04.4 (a sliding-window mask).** Write `window_mask(L, w)` that returns an `(L, L)` boolean
# tensor, True where query `i` may attend to key `j`: causal, and at most `w` keys (the query's own
# position included). Then check your intuition: with 4 layers of window 3, how far back can
# information reach the last position? (Each layer moves it at most `w - 1` positions.)
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Broadcast two index vectors against each other: the query positions as a column, the key
# positions as a row (`torch.arange` and indexing with `None` add the missing dimension). A key is
# allowed when it is not after the query and not more than `w - 1` positions before it.
# ```

# %% [markdown]
# ```{solution-start} ex-04-window
# :class: dropdown
# ```

# %%
def window_mask(L, w):
    ### BEGIN SOLUTION
    i = torch.arange(L)[:, None]
    j = torch.arange(L)[None, :]
    return (j <= i) & (j > i - w)
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_window_mask(window_mask)  # also: which inputs reach the last position after 4 layers?

# %% [markdown]
# ```{exercise-start}
# :label: ex-04-flops
# :nonumber:
# ```
# **Exercise 04.5 (predict, then measure: the FLOPs of one block's training step).** One pre-norm
# GPT-style block (4 heads, $d_\text{ff} = 4d$, biases, causal attention) takes an input of shape
# `(batch, seq_len, d_model)` through one forward and one backward pass. Before the check runs
# PyTorch's `FlopCounterMode` on real blocks and compares, predict the count from this chapter's
# accounting alone: write `block_train_flops(d_model, seq_len, batch)`. (Like the section on
# FLOPs above, count only matrix products, and treat the input as requiring a gradient, as it does
# inside a model.) Then predict before you look: with $d = 768$, how many times more FLOPs does a
# 2048-token sequence cost than a 128-token one? The check prints the measured ratio.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Work per token, then multiply by the number of tokens. The weights: how many multiply-adds does
# each token spend in the four attention projections and the two FFN matrices, how many FLOPs is a
# multiply-add, and how many times the forward's work is a whole training step? Then the two
# products that have no weights, $QK^\top$ and the weights times $V$: what does one query pay
# against $T$ keys of width $d$?
# ```

# %% [markdown]
# ```{solution-start} ex-04-flops
# :class: dropdown
# ```

# %%
def block_train_flops(d_model, seq_len, batch):
    ### BEGIN SOLUTION
    per_token = 6 * 12 * d_model**2 + 6 * 2 * seq_len * d_model  # 6N, then the attention products
    return batch * seq_len * per_token
    ### END SOLUTION


# %% [markdown]
# Per token, the block's $12d^2$ weights cost $2 \cdot 12d^2$ FLOPs forward and twice that
# backward, $72d^2$; the attention products cost $2Td$ each forward ($QK^\top$ row and weighted
# sum), $12Td$ with the backward. The weight term grows like $T$ per sequence, the attention term
# like $T^2$, so a 16 times longer sequence costs more than 16 times as much; the measured ratio
# printed by the check says by how much at $d = 768$.
#
# ```{solution-end}
# ```

# %%
check_block_train_flops(block_train_flops)  # against FlopCounterMode on blocks built on the meta device
