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
# # 13. FlashAttention: online softmax, IO complexity and Triton kernels
#
# **What you will learn**
#
# - how to write a GPU kernel in Triton, starting with a fused softmax, and how to run it on a
#   laptop CPU through Triton's interpreter;
# - the *online softmax*: a softmax computed in one streaming pass, with a running max and a
#   running sum that is rescaled whenever the max grows;
# - why attention is limited by memory traffic rather than arithmetic, counted in bytes, and where
#   that puts it on a roofline: a GPU's published specification against this CPU's measured one;
# - FlashAttention-2 {cite}`dao2022flashattention,dao2023flashattention2`: the tiled algorithm in
#   plain PyTorch, then the Triton kernels of `roadmap_lib.kernels` (forward and backward, causal,
#   grouped-query attention), checked against PyTorch.
#
# **What you need**: attention and its masks from chapter 04 (core components) and
# grouped-query attention (MHA, GQA, MQA), also from chapter 04.
#
# **Run time**: about 40 s on a laptop CPU (the kernels run through Triton's interpreter, which is
# slow, so the shapes here are small).
#
# **No Triton on your machine?** Triton publishes wheels for Linux on x86-64 only. On macOS, Windows
# or an ARM laptop the chapter still runs: sections 2 to 5 (online softmax, IO complexity, the tiled
# algorithm in PyTorch) and the kernels' source need only PyTorch. The three cells that *run* the
# kernels start with the comment `# needs Triton`; where Triton cannot be imported they print
# "Skipped" and the reason instead of running, and the book's site shows their outputs from a
# Linux run.

# %%
import inspect
import math
import os

import torch

if not torch.cuda.is_available():
    # Triton decides when the kernels are *defined* whether to compile or interpret them,
    # so this must come before the first import of roadmap_lib.kernels.
    os.environ["TRITON_INTERPRET"] = "1"

import matplotlib.pyplot as plt
import torch.nn.functional as F
from IPython.display import Markdown, display
from ipywidgets import IntSlider, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch13_flashattention_kernels.exercises import (
    check_attention_backward,
    check_causal_kv_reads,
    check_causal_tiled_attention,
    check_merge_states,
    check_peak_memory,
)
from roadmap_lib.chapters.ch13_flashattention_kernels.experiments import (
    errors_against_sdpa,
    half_precision_errors,
)
from roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity import (
    attention_flops,
    flash_attention_traffic,
    flash_reads_closed_form,
    naive_attention_traffic,
)
from roadmap_lib.chapters.ch13_flashattention_kernels.plots import (
    find_flash_results,
    flash_results_markdown,
    load_flash_results,
    plot_half_precision_errors,
    plot_hbm_traffic,
    plot_online_softmax_step,
)
from roadmap_lib.chapters.ch13_flashattention_kernels.roofline import (
    H100_SXM,
    attention_intensity,
    load_cpu,
    plot_roofline,
)
from roadmap_lib.kernels import (
    HAVE_TRITON,
    INTERPRET,
    MISSING_TRITON,
    flash_attention,
    kernel_source,
    skip_cells_without_triton,
    softmax,
)
from roadmap_lib.kernels.reference import (
    naive_attention,
    online_softmax,
    online_softmax_states,
    tiled_attention,
    tiled_attention_forward,
)

set_seed(0)
# %matplotlib inline
skip_cells_without_triton()  # cells that start with "# needs Triton" print a note where it is missing
if not HAVE_TRITON:
    print("Without Triton:", MISSING_TRITON)
elif INTERPRET:
    print("Triton kernels: interpreted on the CPU")
else:
    print("Triton kernels: compiled for", torch.cuda.get_device_name())

# %% [markdown]
# ## 1. A first Triton kernel: the fused softmax
#
# Triton {cite}`tillet2019triton` is a Python dialect for GPU kernels. You write the program that
# *one* block of work runs; the launch grid says how many such programs run in parallel. Inside a
# program you handle whole blocks of numbers at once: `tl.arange(0, BLOCK)` is a vector of offsets,
# `tl.load(pointer + offsets, mask=...)` reads a block from GPU memory, `tl.store` writes one back,
# and arithmetic, `tl.max`, `tl.sum` and `tl.dot` act on blocks. The compiler decides how the
# block maps onto threads, registers and shared memory.
#
# The warm-up kernel is a row softmax, one program per row. PyTorch's unfused
# `torch.exp(x - x.max(-1)) / ...` would read and write an `x`-sized tensor at each step; the fused
# kernel reads each row once and writes it once. The row is padded to a power of two (`BLOCK`) and
# the padding is loaded as $-\infty$, so it contributes $e^{-\infty} = 0$ to the sum:

# %%
print(kernel_source("fused_softmax", "_softmax_fwd"))

# %% [markdown]
# On this machine the kernel runs through Triton's *interpreter*: the same Python function,
# executed block by block with NumPy. It is slow, but it runs every line you see, masks included,
# so it is how we test the kernels on a CPU. (Its one known gap: `tl.dot` on bfloat16 multiplies the
# raw bit patterns, triton-lang/triton#11584, so under the interpreter our entry points compute
# bfloat16 inputs in float32 and say so in `kernels/_triton_env.py`.) Compare with PyTorch,
# forward and backward, on a ragged row length of 37:

# %%
# needs Triton
x = (4 * torch.randn(6, 37)).requires_grad_()
y = softmax(x)
dy = torch.randn_like(y)
y.backward(dy)
x_ref = x.detach().clone().requires_grad_()
torch.softmax(x_ref, -1).backward(dy)
err_fwd = (y - torch.softmax(x_ref, -1)).abs().max().item()
err_bwd = (x.grad - x_ref.grad).abs().max().item()
print(f"fused softmax vs torch: forward {err_fwd:.1e}, backward {err_bwd:.1e}")
assert err_fwd < 1e-6 and err_bwd < 1e-6

# %% [markdown]
# The kernel keeps a whole row in registers, which works up to a few thousand columns. Attention's
# rows are as long as the sequence, and FlashAttention never holds a whole row at all. It needs a
# softmax that can be computed while the row streams past.
#
# ## 2. The online softmax
#
# The stable softmax subtracts the row maximum $m = \max_j x_j$ before exponentiating:
#
# $$\operatorname{softmax}(x)_j = \frac{e^{x_j - m}}{\ell}, \qquad \ell = \sum_j e^{x_j - m}.$$
#
# That seems to need two passes over $x$ (one for $m$, one for $\ell$) before a third that
# normalises. Milakov and Gimelshein {cite}`milakov2018online` noticed that $m$ and $\ell$ can be
# built together. Suppose after some entries we hold $m$ and $\ell = \sum_{\text{seen}} e^{x_j - m}$,
# and a new block $B$ arrives. Let $m' = \max(m, \max_{j \in B} x_j)$. Every old term should have been
# $e^{x_j - m'} = e^{x_j - m}\,e^{m - m'}$, so one multiplication corrects the whole old sum:
#
# $$\ell' = \ell\, e^{m - m'} + \sum_{j \in B} e^{x_j - m'}.$$
#
# Since $m' \ge m$, the factor $e^{m - m'} \le 1$ never overflows; at the start $m = -\infty$,
# $\ell = 0$. Check it numerically, with scores large enough that the unstable formula overflows:

# %%
row = torch.tensor([3.0, 95.0, -20.0, 40.0, 101.0, 7.0, 99.0]) * 1.0
print("naive exp(x)/sum(exp(x)):", (torch.exp(row) / torch.exp(row).sum()).tolist()[:3], "...")
for block in (1, 2, 3, 7):
    err = (online_softmax(row, block) - torch.softmax(row, 0)).abs().max().item()
    print(f"online softmax, blocks of {block}: max error {err:.1e}")
    assert err < 1e-6
assert torch.isnan(torch.exp(row) / torch.exp(row).sum()).any()  # the unstable version fails
for step, (m, l) in enumerate(online_softmax_states(row, 2), 1):
    print(f"after tile {step}: m = {m.item():6.1f}, l = {l.item():.6f}")

# %% [markdown]
# The running max only grows, and the final state gives the log-sum-exp directly,
# $\log\sum_j e^{x_j} = m + \log \ell$, which FlashAttention saves for the backward pass.
#
# ## 3. From one row to attention: the tiled algorithm
#
# Attention applies a softmax to each row of $S = QK^\top\cdot\text{scale}$ and multiplies by $V$:
# $O_i = \sum_j \operatorname{softmax}(S_i)_j V_j$. The same rescaling works for the weighted sum
# of values. Keep an unnormalised accumulator $\text{acc}_i = \sum_{\text{seen}} e^{S_{ij} - m_i} V_j$:
# when the max moves to $m_i'$, multiply it by $\alpha = e^{m_i - m_i'}$ and add the new block's
# $e^{S_{ij} - m_i'} V_j$. At the end $O_i = \text{acc}_i / \ell_i$. Nothing of size
# $L_q \times L_k$ is ever stored: one block of queries (`block_m` rows) meets one block of keys
# (`block_n` columns) at a time. This is FlashAttention-2's forward pass (Algorithm 1 of
# {cite}`dao2023flashattention2`); {cite}`rabe2021selfattention` made the same observation for
# memory. Here it is in PyTorch, the version to step through in a debugger; the kernel uses the same
# names:

# %%
src = inspect.getsource(tiled_attention_forward)
print(src[src.index("    for start_m"):src.index("    return o, lse")])

# %% [markdown]
# Run it against the naive definition (which builds the whole score matrix) in float64, with a
# sequence length that is not a multiple of the block, grouped-query heads and a causal mask:

# %%
q = torch.randn(2, 4, 45, 16, dtype=torch.float64)
k = torch.randn(2, 2, 45, 16, dtype=torch.float64)
v = torch.randn(2, 2, 45, 16, dtype=torch.float64)
for causal in (False, True):
    o_tiled, lse_tiled = tiled_attention_forward(q, k, v, causal, block_m=16, block_n=8)
    o_naive, lse_naive = naive_attention(q, k, v, causal)
    err_o = (o_tiled - o_naive).abs().max().item()
    err_lse = (lse_tiled - lse_naive).abs().max().item()
    print(f"causal={causal}: tiled vs naive, output {err_o:.1e}, log-sum-exp {err_lse:.1e}")
    assert err_o < 1e-12 and err_lse < 1e-12
o_sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
assert torch.allclose(o_tiled, o_sdpa, atol=1e-12)

# %% [markdown]
# The two agree to rounding in float64: tiling changes the order of the sums, not the result.
#
# ## 4. Why bother: counting bytes
#
# A GPU does far more arithmetic per second than it can fetch bytes from its main memory (HBM): an
# H100 SXM is specified at about 990 TFLOP/s of dense bfloat16 matmul and 3.35 TB/s of HBM
# bandwidth, about 300 FLOPs per byte. A kernel that does fewer FLOPs per byte it moves waits for
# memory. The naive implementation runs three kernels and sends the $L_q\times L_k$ matrices $S$
# and $P$ through HBM four times (write $S$, read it, write $P$, read it). The tiled one reads each
# query block once and the keys and values once per query block, and writes only $O$ and the
# log-sum-exp. `roadmap_lib.chapters.ch13_flashattention_kernels.io_complexity` counts both, the tiled one by walking the kernel's loops
# (tiles of $B_m = 128$ queries, 64 keys). For bfloat16 inputs, batch 4, 32 heads:

# %%
B, H = 4, 32
print(f"{'N':>6} {'d':>4} {'naive GB':>9} {'tiled GB':>9} {'ratio':>6} {'naive FLOP/B':>12}"
      f" {'tiled FLOP/B':>12} {'S alone GB':>10}")
ratios, intensity = {}, {}
for d in (64, 128):
    for n in (1024, 4096, 16384):
        naive = naive_attention_traffic(B, H, n, n, d, bytes_per_element=2)
        tiled = flash_attention_traffic(B, H, n, n, d, block_m=128, block_n=64, bytes_per_element=2)
        flops = attention_flops(B, H, n, n, d)
        ratios[n, d] = naive.total / tiled.total
        intensity[n, d] = (flops / naive.total, flops / tiled.total)
        s_bytes = B * H * n * n * 2  # the score matrix the naive version must hold
        print(f"{n:>6} {d:>4} {naive.total / 1e9:>9.2f} {tiled.total / 1e9:>9.2f} {ratios[n, d]:>6.1f}"
              f" {intensity[n, d][0]:>12.0f} {intensity[n, d][1]:>12.0f} {s_bytes / 1e9:>10.1f}")
        assert tiled.reads == flash_reads_closed_form(B, H, n, n, d, block_m=128)
assert all(3.5 < ratios[n, 64] < 4.1 and 1.9 < ratios[n, 128] < 2.1 for n in (1024, 4096, 16384))
assert all(naive_i < d / 2 + 1 and tiled_i > 110 for (n, d), (naive_i, tiled_i) in intensity.items())
assert B * H * 16384**2 * 2 > 64e9

# %% [markdown]
# What the counts say. The naive schedule moves about $4N^2$ elements for $4N^2d$ FLOPs:
# about $d/2$ FLOPs per byte in 16 bits (32 for $d = 64$), whatever $N$ is, so it is firmly
# memory-bound. The tiled one reads $Q$ once and $K, V$ $\lceil N/B_m\rceil$ times, about $2N^2 d/B_m$
# elements, so its intensity is about $B_m$: 2 to 4 times less traffic here, and it grows with the
# tile size that on-chip memory $M$ allows (hence the FlashAttention paper's
# $\Theta(N^2 d^2 / M)$ HBM accesses against $\Theta(N d + N^2)$). The count is pessimistic for the
# tiled kernel: neighbouring programs reread the same $K, V$ blocks, which a GPU's L2 cache often
# serves. The last column is the other half of the story: at $N = 16384$ the naive version must
# hold a 69 GB score matrix (and as much again for $P$) that the tiled one never allocates. The
# assert above also checked the closed form $N d + \lceil N/B_m\rceil\, 2 N d$ against the loop
# count. The figure shows the traffic against $N$; the causal kernel skips the tiles above the
# diagonal and halves the tiled traffic again:

# %%
plot_hbm_traffic([256, 512, 1024, 2048, 4096, 8192, 16384], d=64)
plt.show()

# %% [markdown]
# ### The roofline: where the byte counts put attention
#
# The roofline model {cite}`williams2009roofline` turns the counts into a prediction. A kernel with
# arithmetic intensity $I$ (FLOPs per byte of main memory) on a machine with peak compute $P$ and
# bandwidth $B$ can reach at most $\min(P, I\,B)$ FLOP/s; below the *ridge point* $P/B$ it is
# memory-bound. Two machines: an H100 SXM at its **published** specification (989.5 TFLOP/s dense
# bfloat16, 3.35 TB/s: NVIDIA's datasheet, not a measurement), and **this CPU as measured** by
# `benchmarks/bench_roofline.py` (a float32 matmul for the peak, a 256 MiB copy for the bandwidth,
# one thread; `benchmarks/results/roofline.json`). The intensities are the IO model's above, at
# $N = 4096$, in bfloat16 on the GPU and float32 (twice the bytes) on the CPU:

# %%
cpu_roof = load_cpu()
machines = [H100_SXM, cpu_roof]
points = {m.name: {f"{s}, d={d}": attention_intensity(s, 4096, d, bytes_per_element=m.bytes_per_element)
                   for s in ("naive", "tiled") for d in (64, 128)} for m in machines}
plot_roofline(machines, points)
plt.show()
for m in machines:
    print(f"{m.name}: peak {m.peak_flop_per_s / 1e12:.3g} TFLOP/s, {m.bytes_per_s / 1e9:.3g} GB/s, "
          f"ridge {m.ridge:.1f} FLOPs/byte")
    for label, i in points[m.name].items():
        print(f"   {label:<14} {i:6.1f} FLOPs/byte -> at most {m.attainable(i) / m.peak_flop_per_s:4.0%} of peak")
gpu_points, cpu_points = points[H100_SXM.name], points[cpu_roof.name]
assert max(gpu_points.values()) < H100_SXM.ridge  # memory-bound on the GPU, both schedules
assert min(cpu_points.values()) > cpu_roof.ridge  # compute-bound on this CPU, both schedules
assert H100_SXM.attainable(gpu_points["tiled, d=64"]) > 3.5 * H100_SXM.attainable(gpu_points["naive, d=64"])

# %% [markdown]
# The two machines sit on opposite sides of their ridges. On the H100, by this count, *both*
# schedules are memory-bound: the ridge is near 300 FLOPs per byte, the naive kernel's intensity is
# about $d/2$, and the tiled one's about $B_m = 128$, so the model predicts the tiled kernel at
# about four times the naive one's speed for $d = 64$ (twice for $d = 128$), and below the peak
# even so. (Real kernels do better than this count, since the L2 cache serves many of the repeated
# $K, V$ reads; whether they do is what section 8's GPU measurement will show: none has been made
# yet.) On this CPU, with one thread, the measured ridge (printed above) lies below both
# schedules' intensities: attention is compute-bound either way, so tiling saves memory but not time here, which
# is what chapter 04 measured (a fused kernel changes the memory curve, not the time curve). The
# same algorithm is a large speed-up or none depending on which side of the ridge the machine puts
# it.

# %% [markdown]
# ## 5. The backward pass without the attention matrix
#
# For $O = PV$ with $P = \operatorname{softmax}(S)$ and $S = QK^\top\cdot\text{scale}$, the
# gradients are $dV = P^\top dO$, $dP = dO\,V^\top$,
# $dS_{ij} = P_{ij}(dP_{ij} - \Delta_i)$ with $\Delta_i = \sum_j P_{ij} dP_{ij}$, then
# $dQ = dS\,K\cdot\text{scale}$ and $dK = dS^\top Q\cdot\text{scale}$. Two facts make this
# tileable. $P$ can be recomputed tile by tile from $Q$, $K$ and the saved log-sum-exp:
# $P_{ij} = e^{S_{ij} - \text{lse}_i}$, no running max needed. And
# $\Delta_i = \sum_j P_{ij} (dO_i \cdot V_j) = dO_i\cdot O_i$, a dot product of two vectors we
# already have. The FlashAttention-2 paper parallelises the backward pass over *key* blocks: one
# program per key block accumulates $dK$ and $dV$ over all query blocks and adds its share of $dQ$
# into global memory with atomic additions. Our kernels deviate from that on purpose: one program per
# key block accumulates $dK$ and $dV$, and a *second* kernel, one program per query block,
# recomputes $P$ and accumulates $dQ$ over all key blocks. No two programs write the same output, so
# there are no atomics and the result is deterministic, at the price of computing the scores
# $QK^\top$ once more. `tiled_attention` wraps the tiled forward and this
# hand-written backward in an `autograd.Function`; `gradcheck` compares it with finite differences:

# %%
args = [torch.randn(1, 2, 7, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(1, 1, 7, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(1, 1, 7, 4, dtype=torch.float64, requires_grad=True)]
ok = torch.autograd.gradcheck(lambda a, b, c: tiled_attention(a, b, c, True, None, 3, 2), args)
print("gradcheck of the tiled backward (causal, GQA, ragged tiles):", ok)
assert ok

# %% [markdown]
# ## 6. The Triton kernels, block by block
#
# `roadmap_lib/kernels/flash.py` holds the same algorithm as three Triton kernels. Here is the
# forward one:

# %%
print(kernel_source("flash", "_attn_fwd"))

# %% [markdown]
# Reading it top to bottom:
#
# - **Which tile am I?** The launch grid is `(ceil(Lq / BLOCK_M), batch·heads)`: axis 0 picks the
#   query block, axis 1 the batch and head. With grouped-query attention query head `h` reads
#   key/value head `h // group`; that one line is all GQA and MQA cost in the forward pass.
# - **Pointers and masks.** `offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd` is a
#   `(BLOCK_M, BLOCK_D)` grid of addresses; any tensor layout works through the strides.
#   `BLOCK_D` is the head dimension rounded up to a power of two, and the masks
#   `offs_m < Lq`, `cols < Lk`, `offs_d < head_dim` make ragged sequence ends and odd head sizes
#   read zeros instead of someone else's memory.
# - **The loop** over key blocks is the online softmax of section 3, line for line: `m_i`,
#   `l_i`, `acc`, `alpha`. Keys past the end get score $-\infty$, hence weight 0. Causal
#   masking sets the scores above the diagonal to $-\infty$, and the loop stops at the diagonal
#   (`hi`), so the tiles that are entirely masked are never loaded.
# - **Base 2.** GPUs have a fast `exp2` instruction, so the kernel folds $\log_2 e$ into the scale
#   (`qk_scale = scale·log2 e`) and uses `exp2` throughout; it converts back to natural log when it
#   stores `lse`.
# - **Precision.** `tl.dot` takes 16-bit inputs and accumulates in float32; `m_i`, `l_i` and
#   `acc` are float32; only `p` is rounded to the input type before the second `tl.dot`.
#
# The backward kernel for $dK, dV$ has one program per key block, and its outer loop runs over the
# query heads that share that key/value head. So grouped-query attention needs no atomic additions,
# and the result is deterministic:

# %%
src = kernel_source("flash", "_attn_bwd_dkdv")
print(src[src.index("    # Causal"):])

# %% [markdown]
# Now run the kernels through the interpreter on small shapes and compare them with PyTorch's
# `scaled_dot_product_attention`, output and all three gradients, for each kind of attention:

# %%
# needs Triton
results = {}
for name, (heads, kv_heads) in {"MHA": (4, 4), "GQA": (4, 2), "MQA": (4, 1)}.items():
    for dtype in (torch.float32, torch.float16):
        results[name, dtype] = errors_against_sdpa(flash_attention, heads, kv_heads, True, dtype, n=40, d=32)
        errs = ", ".join(f"{k} {e:.1e}" for k, e in results[name, dtype].items())
        print(f"{name} causal {str(dtype)[6:]:>8}: max |error| {errs}")
assert all(max(e.values()) < 1e-4 for (_, dt), e in results.items() if dt == torch.float32)
assert all(max(e.values()) < 2e-2 for (_, dt), e in results.items() if dt == torch.float16)

# %% [markdown]
# In float32 the kernel matches PyTorch to about $10^{-6}$; in float16 to the precision of the
# format. A sequence of 40 with 32-row tiles leaves a ragged last tile, so the masks were exercised
# too.
#
# ## 7. Experiment: accuracy of 16-bit attention
#
# Does the tiling cost accuracy in 16 bits? The opposite: a naive float16 implementation rounds
# the scores $S$ and the probabilities $P$ to float16 when it stores them in HBM, while the kernel
# keeps `s`, `m_i`, `l_i` and `acc` in float32 registers. Measure both against float64 on the same
# float16 inputs, for a few sequence lengths (causal, 2 heads, $d = 64$):

# %%
# needs Triton
accuracy = half_precision_errors(flash_attention, lengths=[32, 64, 128, 256], d=64)
for n, e_kernel, e_naive in zip(accuracy["lengths"], accuracy["kernel"], accuracy["naive"]):
    print(f"N={n:4d}: mean |error| kernel {e_kernel:.2e}, naive float16 {e_naive:.2e}")
plot_half_precision_errors(accuracy)
plt.show()
assert all(a < 0.7 * b for a, b in zip(accuracy["kernel"], accuracy["naive"]))

# %% [markdown]
# The kernel's error is at most about half the naive float16 error at every length measured:
# keeping the softmax statistics in float32 registers makes the fast version the more accurate one.
#
# ## 8. Measured on a GPU
#
# Speed is measured only on a real GPU, by `benchmarks/bench_flash.py` (forward, backward and both,
# in TFLOP/s, against PyTorch's flash, cuDNN and math backends of `scaled_dot_product_attention`).
# The cell below reads its results file if one has been committed:

# %%
result_files = find_flash_results()
if result_files:
    for path in result_files:
        data = load_flash_results(path)
        for causal in (False, True):
            display(Markdown(f"**{data['device']}** ({path.name}): TFLOP/s, bfloat16, B=4, H=32, "
                             f"d=128, {'causal' if causal else 'not causal'}"))
            display(Markdown(flash_results_markdown(data, dtype="bfloat16", causal=causal, d=128)))
else:
    print("No GPU measurement has been made yet: benchmarks/results/ holds no flash_*.json file.\n"
          "Run `python benchmarks/bench_flash.py` on a CUDA machine to produce one; this chapter\n"
          "quotes only measured numbers.")

# %% [markdown]
# ## 9. From FlashAttention to FlashAttention-3
#
# The algorithm of this chapter went through three published versions, each fitted to the GPUs of
# its day (the summaries below are the papers' own accounts; nothing here was measured by us):
#
# - **FlashAttention** {cite}`dao2022flashattention` introduced the tiling with the online softmax
#   and the recomputation of $P$ in the backward pass, so attention's memory became linear in $N$;
#   its thread blocks were spread over batch and heads.
# - **FlashAttention-2** {cite}`dao2023flashattention2` cut the non-matmul FLOPs (the rescaling is
#   applied once at the end of the loop, as in our forward kernel), parallelised over the sequence
#   length as well (our launch grid's axis 0), and split the work between the warps of a block so
#   that they exchange less through shared memory.
# - **FlashAttention-3** {cite}`shah2024flashattention3` targets NVIDIA's Hopper GPUs: *warp
#   specialisation*, where producer warps load tiles with the asynchronous Tensor Memory Accelerator
#   (TMA) while consumer warps compute; overlapping the softmax of one tile with the matrix
#   multiplications of another; and FP8 inputs, with block-wise scaling and a random orthogonal
#   transform that spreads outliers to keep the low-precision error small.
#
# Triton exposes some of this (software pipelining through `num_stages`; TMA descriptors on recent
# versions); our kernels use none of it, since they are written to be read and to run in the
# interpreter.
#
# ## 10. Explore: the online softmax, tile by tile
#
# Step through one row of 40 scores in tiles of 8. On the left, the tiles seen so far and the
# running max; on the right, the weights the running state gives the seen entries,
# $e^{s_j - m}/\ell$, against the final softmax. Watch them shrink as later tiles add to $\ell$, and
# jump when a new maximum rescales everything. The static figure shows the first tile:

# %%
scores = 3 * torch.randn(40, generator=torch.Generator().manual_seed(3))
plot_online_softmax_step(scores, block_size=8, step=1)
plt.show()

# %% tags=["nbval-ignore-output", "remove-output"]
def show_step(step=1):
    plot_online_softmax_step(scores, block_size=8, step=step)
    plt.show()


interact(show_step, step=IntSlider(value=1, min=1, max=5, description="tiles seen"));

# %% [markdown]
# ## Summary
#
# - The online softmax builds the max and the normaliser in one streaming pass, rescaling the old sum by
#   $e^{m - m'}$ when the max grows; the final $m + \log \ell$ is the log-sum-exp.
# - The same rescaling applies to the output accumulator, so attention can be computed tile by
#   tile without storing the $N \times N$ matrix; the tiled and naive results agree to $10^{-12}$
#   in float64.
# - Counted in bytes, the naive schedule does about $d/2$ FLOPs per byte and must hold the
#   $N\times N$ matrix; the tiled one reads $K$ and $V$ once per query block, moves 2 to 4 times less
#   here, and its FLOPs per byte grow with the tile size.
# - On a roofline, both schedules fall below an H100's ridge point (published specification; the
#   tiled one about four times higher up the memory slope for $d = 64$) and above this CPU's
#   (measured, one thread): the same tiling is a large speed-up on the GPU by this count and none
#   on the CPU, where only the memory saving remains.
# - The Triton kernels (forward, and a backward that recomputes $P$ from the log-sum-exp, in two
#   kernels instead of FlashAttention-2's one with atomic $dQ$ updates, so no atomics) match PyTorch, and in float16 they are more
#   accurate than a naive implementation.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-13-causal-skip
# :nonumber:
# ```
# **Exercise 13.1 (the causal early exit).** `tiled_attention_forward` masks the tiles above the
# diagonal but still computes them. Write `causal_tiled_attention(q, k, v, block_m, block_n)` for
# one head (`q`, `k`, `v` of shape `(N, d)`, scale $1/\sqrt d$) that follows the same online-softmax
# loop but stops each query block's key loop at the diagonal, as the kernel does. Return
# `(o, tiles)`: the output `(N, d)` and the number of `(query block, key block)` tiles computed.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Start from the loop of `tiled_attention_forward`. The only change: the key loop's upper limit for the query block starting at `start_m` is the end of that block (still masking inside the diagonal tile).
# ```

# %% [markdown]
# ```{solution-start} ex-13-causal-skip
# :class: dropdown
# ```

# %%
def causal_tiled_attention(q, k, v, block_m, block_n):
    ### BEGIN SOLUTION
    n, d = q.shape
    scale = 1 / math.sqrt(d)
    o, tiles = torch.empty_like(q), 0
    for start_m in range(0, n, block_m):
        q_block = q[start_m:start_m + block_m]
        rows = torch.arange(start_m, start_m + len(q_block))
        m_i = torch.full((len(rows),), float("-inf"), dtype=q.dtype)
        l_i = torch.zeros(len(rows), dtype=q.dtype)
        acc = torch.zeros(len(rows), d, dtype=q.dtype)
        for start_n in range(0, min(n, start_m + block_m), block_n):  # stop at the diagonal
            k_block, v_block = k[start_n:start_n + block_n], v[start_n:start_n + block_n]
            cols = torch.arange(start_n, start_n + len(k_block))
            s = (q_block @ k_block.T * scale).masked_fill(cols[None, :] > rows[:, None], float("-inf"))
            m_new = torch.maximum(m_i, s.amax(-1))
            alpha, p = torch.exp(m_i - m_new), torch.exp(s - m_new[:, None])
            l_i = l_i * alpha + p.sum(-1)
            acc = acc * alpha[:, None] + p @ v_block
            m_i = m_new
            tiles += 1
        o[start_m:start_m + block_m] = acc / l_i[:, None]
    return o, tiles
    ### END SOLUTION

# %% [markdown]
# ```{solution-end}
# ```

# %%
check_causal_tiled_attention(causal_tiled_attention)
_, tiles_ex = causal_tiled_attention(*(torch.randn(50, 8, dtype=torch.float64) for _ in range(3)), 16, 8)
print(f"N = 50, block_m = 16, block_n = 8: {tiles_ex} tiles instead of {math.ceil(50 / 16) * math.ceil(50 / 8)}")

# %% [markdown]
# ```{exercise-start}
# :label: ex-13-merge
# :nonumber:
# ```
# **Exercise 13.2 (merging two partial softmax states).** Split a row into two halves and run the
# online softmax on each: you get states $(m_1, \ell_1)$ and $(m_2, \ell_2)$. Write
# `merge_states(m1, l1, m2, l2)` that returns the state `(m, l)` of the whole row, without looking at
# the scores. (This is how split-key kernels such as Flash-Decoding combine partial results.)
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Rescale both partial sums to the common maximum $m = \max(m_1, m_2)$ before adding them.
# ```

# %% [markdown]
# ```{solution-start} ex-13-merge
# :class: dropdown
# ```

# %%
def merge_states(m1, l1, m2, l2):
    ### BEGIN SOLUTION
    m = torch.maximum(m1, m2)
    return m, l1 * torch.exp(m1 - m) + l2 * torch.exp(m2 - m)
    ### END SOLUTION

# %% [markdown]
# ```{solution-end}
# ```

# %%
check_merge_states(merge_states)

# %% [markdown]
# ```{exercise-start}
# :label: ex-13-backward
# :nonumber:
# ```
# **Exercise 13.3 (the attention backward by hand).** For one head without a mask (`q` of shape
# `(Lq, d)`, `k`, `v` of shape `(Lk, d)`, scale $1/\sqrt d$) and the output gradient `do`, write
# `attention_backward(q, k, v, do)` returning `(dq, dk, dv)` from the formulas of section 5, using
# $\Delta_i = dO_i\cdot O_i$.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Recompute $P$ and $O$ from the inputs. $dV = P^\top dO$; $dP = dO\,V^\top$; $dS = P \circ (dP - \Delta)$ with $\Delta$ a column; the scale appears in $dQ$ and $dK$.
# ```

# %% [markdown]
# ```{solution-start} ex-13-backward
# :class: dropdown
# ```

# %%
def attention_backward(q, k, v, do):
    ### BEGIN SOLUTION
    scale = 1 / math.sqrt(q.shape[-1])
    p = torch.softmax(q @ k.T * scale, -1)
    o = p @ v
    dv = p.T @ do
    dp = do @ v.T
    delta = (do * o).sum(-1, keepdim=True)
    ds = p * (dp - delta)
    return ds @ k * scale, ds.T @ q * scale, dv
    ### END SOLUTION

# %% [markdown]
# ```{solution-end}
# ```

# %%
check_attention_backward(attention_backward)

# %% [markdown]
# ```{exercise-start}
# :label: ex-13-bytes
# :nonumber:
# ```
# **Exercise 13.4 (bytes of the causal schedule).** Write `causal_kv_reads(n, d, block_m, block_n)`:
# the number of key and value *elements* the causal forward kernel reads for one head of length `n`
# (each query block reads the key rows and value rows from 0 up to the end of its diagonal
# tile, never past `n`). Check yourself against `flash_attention_traffic`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Loop over the query blocks: block `start_m` reads keys and values from 0 to `min(n, start_m + block_m)`, $d$ elements per row, twice (keys and values).
# ```

# %% [markdown]
# ```{solution-start} ex-13-bytes
# :class: dropdown
# ```

# %%
def causal_kv_reads(n, d, block_m, block_n):
    ### BEGIN SOLUTION
    return sum(2 * min(n, start_m + block_m) * d for start_m in range(0, n, block_m))
    ### END SOLUTION

# %% [markdown]
# ```{solution-end}
# ```

# %%
check_causal_kv_reads(causal_kv_reads)

# %% [markdown]
# ```{exercise-start}
# :label: ex-13-peak
# :nonumber:
# ```
# **Exercise 13.5 (predict, then measure: the memory attention holds).** Section 4 counted bytes that
# cross HBM; now count the memory a call *holds*. For one head of length `n`, head dimension `d`,
# float32, not causal, predict the peak bytes of the tensors that `naive_attention(q, k, v)` and
# `tiled_attention_forward(q, k, v, block_m=64, block_n=64)` allocate beyond their inputs (the most
# that is alive at one moment). Write `predict_peak_bytes(n, d)` returning `(naive_bytes,
# tiled_bytes)`. The check measures both with `roadmap_lib.measure.peak_memory`, which sees every
# tensor that a PyTorch operator returns, at `(n, d) = (1024, 64)` and `(1536, 32)`, and accepts a
# prediction within 20% of the measurement. Read the two functions before you predict:
# `print(inspect.getsource(naive_attention))`, and the same for `tiled_attention_forward` and the
# helper `_expand_kv` they call (in `roadmap_lib.kernels.reference`).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# In eager PyTorch every operator returns a new tensor, and an expression such as `torch.exp(s - m)`
# first makes `s - m`, then its `exp`, while `s` is still referenced. Find the moment when the most
# $n \times n$ matrices are alive in the naive version. In the tiled version nothing is $n \times n$:
# list the tensors as large as `q` (or `k`, `v`) that it creates; tile-sized scratch is small enough
# to leave out at these sizes.
# ```

# %% [markdown]
# ```{solution-start} ex-13-peak
# :class: dropdown
# ```

# %%
def predict_peak_bytes(n, d):
    ### BEGIN SOLUTION
    # naive: while exp(s - lse) runs, s, s - lse and the exp's output are three n x n matrices;
    # _expand_kv's repeat_interleave copied k and v (n x d each), and lse is n floats
    naive = 3 * n * n + 2 * n * d + n
    # tiled: the output o (n x d), lse (n) and the same copies of k and v; the tiles are scratch
    tiled = 3 * n * d + n
    return 4 * naive, 4 * tiled  # float32: 4 bytes each
    ### END SOLUTION

# %% [markdown]
# The naive version holds three $n \times n$ float32 matrices at its peak, not the two ($S$ and $P$)
# of the HBM count: eager PyTorch materialises `s - lse` on the way to its exponential, which is one
# of the temporaries a fused kernel never writes. The tiled version's peak is a few $n \times d$
# tensors (the output, and copies of $K$ and $V$ that `repeat_interleave` makes even when there is
# nothing to expand) plus a few tiles: more than ten times less than the naive peak at both sizes the
# check measures (it prints the table, and the assert after it checks the factor), and the gap grows
# with $n$ since one side is quadratic and the other linear.
#
# ```{solution-end}
# ```

# %%
peaks = check_peak_memory(predict_peak_bytes)  # measured with roadmap_lib.measure.peak_memory
assert all(naive > 10 * tiled for naive, tiled in peaks.values())
