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
# # 03. Positional encodings
#
# **What you will learn**
#
# - why attention, left alone, cannot tell "dog bites man" from "man bites dog", shown on a real
#   attention layer;
# - the absolute schemes: the sinusoidal table of the original Transformer and a learned table;
# - the relative schemes: Shaw et al.'s distance embeddings and T5's bucketed bias;
# - rotary embeddings (RoPE) in both conventions in use today, the permutation that converts one
#   into the other, and how position interpolation and NTK-aware scaling stretch a model's context;
# - ALiBi's linear biases, including its rule for head counts that are not powers of two;
# - what happens when the same tiny model, trained with each scheme on 64 characters, reads 128 and
#   256: the extrapolation table, and why a flat loss there is not evidence that the model reads
#   the longer input (the loss at each position, with the context cut to 64 characters and without).
#
# **What you need**: chapter 2 (tokens and embeddings). Attention itself is taken apart in
# chapter 4; here it is enough that it computes $\mathrm{softmax}(QK^\top/\sqrt{d} + B)\,V$, where $B$
# is an optional bias added to the scores.
#
# **Run time**: about 25 s on a laptop CPU.

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch
from ipywidgets import IntSlider, interact
from transformers import LlamaConfig
from transformers.models.bloom.modeling_bloom import build_alibi_tensor
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from transformers.models.t5.modeling_t5 import T5Attention

from roadmap_lib import set_seed
from roadmap_lib.attention import AttentionConfig, MultiHeadAttention, scaled_dot_product_attention
from roadmap_lib.chapters.ch03_positional_encodings.exercises import (
    check_alibi_far_share,
    check_alibi_slopes,
    check_ntk_base,
    check_rope_interleaved,
    check_sinusoidal,
)
from roadmap_lib.chapters.ch03_positional_encodings.extrapolation import (
    KEPT_SCHEME,
    REPLAY_STEPS,
    ROWS,
    experiment_config,
    load_results,
    load_trained,
    score,
    train_scheme,
)
from roadmap_lib.chapters.ch03_positional_encodings.plots import (
    mean_pair_score,
    plot_alibi,
    plot_context_extension,
    plot_extrapolation,
    plot_position_loss,
    plot_rope_rotation,
    plot_sinusoidal,
    plot_t5_buckets,
)
from roadmap_lib.data import CharLMData
from roadmap_lib.exercises import check_close
from roadmap_lib.longcontext import (
    bin_mean,
    cut_context_loss,
    loss_per_position,
    needle_scores,
    needle_windows,
)
from roadmap_lib.positional import (
    LearnedPositionalEmbedding,
    RoPEConfig,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    interleaved_to_half_permutation,
    ntk_scaled_base,
    permute_qk_weight,
    relative_positions,
    rope_angles,
    rope_cos_sin,
    shaw_attention,
    sinusoidal_encoding,
    t5_relative_position_bucket,
)

set_seed(0)

# %% [markdown]
# ## Attention does not know where tokens are
#
# Self-attention compares every query with every key by a dot product, and nothing in that
# comparison says where either token sits. Shuffle the input tokens with a permutation $\pi$ and
# every query finds the same keys with the same scores, just at shuffled places; the output is the
# shuffled output. In symbols, for an attention layer $f$ and a permutation matrix $P$:
#
# $$f(PX) = P\,f(X).$$
#
# The layer is *permutation-equivariant*, so a bag of words is all it sees. Here is the check on a
# real multi-head attention layer from `roadmap_lib.attention` (chapter 4 builds it).

# %%
attn = MultiHeadAttention(AttentionConfig(d_model=32, n_heads=4)).eval()
x = torch.randn(1, 10, 32)
perm = torch.randperm(10)
with torch.no_grad():
    out, out_of_shuffled = attn(x), attn(x[:, perm])
print("max |f(PX) - P f(X)| without positions:", (out_of_shuffled - out[:, perm]).abs().max().item())
assert torch.allclose(out_of_shuffled, out[:, perm], atol=1e-6)

# %% [markdown]
# Add a positional encoding to the token vectors first, and the symmetry is gone: the same token
# now looks different at different places.

# %%
add_positions = SinusoidalPositionalEncoding(32)
with torch.no_grad():
    out, out_of_shuffled = attn(add_positions(x)), attn(add_positions(x[:, perm]))
print("max |f(PX) - P f(X)| with sinusoidal positions:", (out_of_shuffled - out[:, perm]).abs().max().item())
assert not torch.allclose(out_of_shuffled, out[:, perm], atol=1e-3)

# %% [markdown]
# A causal mask (each token sees only the past) already breaks the symmetry a little: the first
# token sees one key, the tenth sees ten. Decoder-only models with *no* positional encoding
# ("NoPE") can use that to infer positions {cite}`kazemnejad2023nope`, and we will train one below.
# The rest of the chapter is about doing it on purpose. There are three places to put positions:
# in the input (absolute), in the attention scores (relative biases, ALiBi), or in the queries and
# keys themselves (RoPE).
#
# ## Absolute positions
#
# ### Sinusoidal
#
# The original Transformer {cite}`vaswani2017attention` adds to the embedding of the token at
# position $p$ a fixed vector whose pairs of features are a sine and a cosine at geometrically
# spaced frequencies:
#
# $$\mathrm{PE}_{p,\,2i} = \sin\!\left(p\,\omega_i\right),\quad
#   \mathrm{PE}_{p,\,2i+1} = \cos\!\left(p\,\omega_i\right),\qquad
#   \omega_i = 10000^{-2i/d}.$$
#
# The fast pairs (small $i$) tell neighbours apart; the slow ones change over thousands of
# positions. Every value lies in $[-1, 1]$, whatever the position.

# %%
pe = sinusoidal_encoding(128, 64)
plot_sinusoidal(128, 64)
plt.show()
assert pe.abs().max() <= 1.0
big = sinusoidal_encoding(torch.tensor([10**6]), 64)
assert big.abs().max() <= 1.0  # bounded even a million positions out

# %% [markdown]
# Why sines and cosines? Because moving $k$ positions is the *same linear map* at every position:
# each $(\sin, \cos)$ pair turns by the angle $k\omega_i$,
#
# $$\begin{pmatrix}\sin((p+k)\omega)\\ \cos((p+k)\omega)\end{pmatrix}
#   = \begin{pmatrix}\cos k\omega & \sin k\omega\\ -\sin k\omega & \cos k\omega\end{pmatrix}
#     \begin{pmatrix}\sin p\omega\\ \cos p\omega\end{pmatrix},$$
#
# so a layer could in principle learn to attend "$k$ tokens back" with one matrix. We check that
# identity for a shift of 7 on every position and pair.

# %%
k_shift = 7
omega = 10000.0 ** (-torch.arange(0, 64, 2) / 64)
s, c = pe[:, 0::2], pe[:, 1::2]
shifted = sinusoidal_encoding(torch.arange(k_shift, 128 + k_shift), 64)
turned = s * torch.cos(k_shift * omega) + c * torch.sin(k_shift * omega)
print("max error of the rotation identity:", (shifted[:, 0::2] - turned).abs().max().item())
assert torch.allclose(shifted[:, 0::2], turned, atol=1e-4)

# %% [markdown]
# ### Learned
#
# BERT and GPT-2 simply learn a table: one trainable vector per position, up to a fixed maximum.
# It can fit anything the data asks for, but the table has a last row, and a position past it has no
# vector at all.

# %%
learned = LearnedPositionalEmbedding(max_len=64, d_model=32)
print(learned(torch.zeros(1, 64, 32)).shape)
try:
    learned(torch.zeros(1, 65, 32))
    raise AssertionError("a learned table should refuse position 64")
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## Relative positions
#
# Language mostly cares how far apart two words are, not where they sit in the document. Relative
# schemes put the distance $j - i$ between query $i$ and key $j$ into the attention scores.
#
# ### Shaw et al.: an embedding per distance
#
# Shaw et al. {cite}`shaw2018relative` learn a vector $a^K_{j-i}$ (and $a^V_{j-i}$) per distance,
# clipped to $\pm K$ since the exact distance matters less far away, and add it to the key (and
# value) when query $i$ looks at key $j$:
#
# $$e_{ij} = \frac{q_i\cdot(k_j + a^K_{\mathrm{clip}(j-i)})}{\sqrt d},\qquad
#   z_i = \sum_j \alpha_{ij}\,(v_j + a^V_{\mathrm{clip}(j-i)}).$$
#
# `shaw_attention` never builds the $(L, L, d)$ tensor of $a^K_{j-i}$: it scores each query
# against the $2K+1$ distance vectors once, then gathers. The table of clipped distances for
# $K = 3$:

# %%
print(relative_positions(6, 6).clamp(-3, 3))
q, k, v = (torch.randn(1, 2, 6, 8) for _ in range(3))
zero_table = torch.zeros(7, 8)
plain = scaled_dot_product_attention(q, k, v, is_causal=True)
assert torch.allclose(shaw_attention(q, k, v, zero_table, zero_table, is_causal=True), plain, atol=1e-6)
with_distances = shaw_attention(q, k, v, torch.randn(7, 8), torch.randn(7, 8), is_causal=True)
assert not torch.allclose(with_distances, plain, atol=1e-3)

# %% [markdown]
# With zero tables it is ordinary attention (the first assert); the learned vectors are the only
# way position enters. Because only $j - i$ matters, the same pattern of scores is produced at any
# absolute offset, which is what lets relative schemes run on longer inputs than they saw.
#
# ### T5: one scalar per bucket
#
# T5 {cite}`raffel2020t5` simplifies further: each head learns one *scalar* per distance bucket,
# added to the attention logits. Buckets are exact for small distances and logarithmically wider
# for large ones, up to `max_distance`, past which all distances share the last bucket. A decoder
# (causal) only needs the past, so it spends all its buckets on one side.

# %%
plot_t5_buckets(num_buckets=32, max_distance=128)
plt.show()
rel = torch.arange(-300, 301)
for bidirectional in (True, False):
    ours = t5_relative_position_bucket(rel, bidirectional, 32, 128)
    theirs = T5Attention._relative_position_bucket(rel, bidirectional, 32, 128)
    assert torch.equal(ours, theirs)  # the same buckets as transformers' T5
print("buckets for distances -1, -8, -16, -64, -1000 (causal):",
      t5_relative_position_bucket(torch.tensor([-1, -8, -16, -64, -1000]), False, 32, 128).tolist())

# %% [markdown]
# The figure is exact for $|j-i| < 8$ (bidirectional) or $< 16$ (causal), then coarser, and flat
# past 128: every distance beyond `max_distance` gets the same bias, so a T5 model has nothing new
# to learn about a longer input, and nothing to say about it either.
#
# ## Rotary position embeddings (RoPE)
#
# RoPE {cite}`su2021roformer` puts position into the queries and keys themselves. Split a
# $d$-dimensional query into $d/2$ pairs and turn pair $i$ of the query at position $m$ by the angle
# $m\theta_i$, with $\theta_i = b^{-2i/d}$ ($b$ = 10000 by default); do the same to the keys. A
# rotation by $m\theta$ then a dot product with a rotation by $n\theta$ is a rotation by
# $(m-n)\theta$:
#
# $$\langle R_{m\theta}\,q,\; R_{n\theta}\,k\rangle = \langle q,\; R_{(n-m)\theta}\,k\rangle,$$
#
# so **the score depends only on the distance $m - n$**, with no extra parameters, and the values
# are untouched. The figure turns one pair for positions $0, \dots, 5$ (left) and shows the score
# of a query and a key that are both all ones against their distance (right, divided by its value at
# distance 0): one pair alone is a pure cosine; all pairs together average cosines of different
# speeds. Does that average decay with distance? We measure it for our head dimension, 16, and for
# Llama's, 128.

# %%
plot_rope_rotation(position=5, pair=2, dim=16)
plt.show()
distance = torch.arange(257)
avg16, avg128 = mean_pair_score(distance, 16), mean_pair_score(distance, 128)
peak16 = 32 + int(avg16[32:].argmax())
print(f"head dim 16:  score {avg16[32]:.2f} at distance 32, back up to {avg16[peak16]:.2f} at {peak16}, "
      f"lowest {avg16.min():.2f} at {int(avg16.argmin())}")
print(f"head dim 128: score {avg128[32]:.2f} at distance 32, highest past 32: {avg128[32:].max():.2f}, "
      f"mean over distances 128-256: {avg128[128:].mean():.2f}")
assert avg16[peak16] > avg16[32] + 0.2  # dim 16: no steady decay, the average climbs back
assert avg128[33:].max() <= avg128[32] and avg128[128:].mean() < avg128[1:33].mean() - 0.2  # dim 128: it falls

# %% [markdown]
# With 8 pairs (head dimension 16) there is **no steady decay**: the average falls at first, then
# swings back up past distance 32 and down to about zero, because a handful of cosines beat against
# each other. With 64 pairs (head dimension 128) the swings are smaller and, past distance 32, the
# score never climbs back to its value there. This is the "long-term decay" of RoFormer
# {cite}`su2021roformer`, and it is a statement about averages over many pairs (the paper bounds a
# sum of this kind), not a promise that every query-key score falls with distance: a trained model
# sets $q$ and $k$, and can make far keys score high.

# %% [markdown]
# ### Check: only the distance matters
#
# Score one query and one key at positions $(m, n)$ and again at $(m + 1000, n + 1000)$.

# %%
rope = RoPEConfig(dim=16)
qv, kv = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)


def rope_score(m, n, config=rope):
    qc, qs = rope_cos_sin(torch.tensor([m]), config)
    kc, ks = rope_cos_sin(torch.tensor([n]), config)
    qr, kr = apply_rope(qv, qc, qs, config.convention), apply_rope(kv, kc, ks, config.convention)
    return (qr * kr).sum().item()


for m, n in [(3, 1), (40, 10), (7, 7)]:
    print(f"score at ({m}, {n}) = {rope_score(m, n):+.5f}   at ({m + 1000}, {n + 1000}) = {rope_score(m + 1000, n + 1000):+.5f}")
    assert abs(rope_score(m, n) - rope_score(m + 1000, n + 1000)) < 1e-3
assert abs(rope_score(3, 1) - rope_score(1, 3)) > 1e-3  # but the sign of the distance does matter

# %% [markdown]
# ### Two conventions, one model
#
# Which features form a pair is a convention, and two are in use:
#
# - **interleaved** (RoFormer, GPT-J, Meta's original LLaMA code): pairs $(x_{2i}, x_{2i+1})$;
# - **half-split** (GPT-NeoX {cite}`black2022gptneox`, Hugging Face's Llama): pairs $(x_i, x_{i+d/2})$.
#
# They are the same model up to a reordering of features: list the even features first, then the
# odd ones, and interleaved pair $(2i, 2i+1)$ becomes half-split pair $(i, i + d/2)$. Reordering the
# output rows of the query and key projections of every head the same way converts a checkpoint
# from one convention to the other (this is what the script that converts Meta's LLaMA weights
# to Hugging Face's format does). Attention scores are dot products, which a common reordering of
# features does not change, so the converted model gives *identical* scores.

# %%
print("interleaved -> half order for d = 8:", interleaved_to_half_permutation(8).tolist())
heads, head_dim, d_model, L = 4, 16, 64, 12
w_q, w_k = torch.randn(heads * head_dim, d_model), torch.randn(heads * head_dim, d_model)
h = torch.randn(1, L, d_model)


def rope_scores(wq, wk, convention):
    q = (h @ wq.T).view(1, L, heads, head_dim).transpose(1, 2)
    k = (h @ wk.T).view(1, L, heads, head_dim).transpose(1, 2)
    q, k = RotaryEmbedding(RoPEConfig(head_dim, convention=convention))(q, k)
    return q @ k.transpose(-1, -2)


interleaved = rope_scores(w_q, w_k, "interleaved")
converted = rope_scores(permute_qk_weight(w_q, heads), permute_qk_weight(w_k, heads), "half")
unconverted = rope_scores(w_q, w_k, "half")
print("max |difference| after conversion:", (converted - interleaved).abs().max().item())
print("max |difference| without it:      ", (unconverted - interleaved).abs().max().item())
assert torch.allclose(converted, interleaved, atol=1e-3) and not torch.allclose(unconverted, interleaved, atol=1.0)

# %% [markdown]
# Our half-split RoPE is the one in transformers' Llama: same cos/sin tables, same rotated queries
# and keys (the test suite checks this for the "linear", "dynamic" and "llama3" scalings too).

# %%
llama_rope = LlamaRotaryEmbedding(LlamaConfig(hidden_size=64, num_attention_heads=4, head_dim=16,
                                              max_position_embeddings=64))
q, k, pos = torch.randn(2, 4, 50, 16), torch.randn(2, 4, 50, 16), torch.arange(50).expand(2, -1)
cos, sin = llama_rope(q, pos)
q_hf, k_hf = apply_rotary_pos_emb(q, k, cos, sin)
q_ours, k_ours = RotaryEmbedding(RoPEConfig(16))(q, k, pos)
print("max |ours - transformers|:", max((q_ours - q_hf).abs().max().item(), (k_ours - k_hf).abs().max().item()))
assert torch.allclose(q_ours, q_hf, atol=1e-5) and torch.allclose(k_ours, k_hf, atol=1e-5)

# %% [markdown]
# ### Stretching the context
#
# A RoPE model trained on $L$ positions has only seen angles $m\theta_i$ with $m < L$. At $4L$ the
# fast pairs are fine (they had already turned many times round the circle during training), but
# the slow pairs reach angles they never saw. Two fixes need no new parameters:
#
# - **Position interpolation** {cite}`chen2023interpolation` divides positions by the factor $s$:
#   every angle stays inside the trained range $[0, L\theta_i)$, but neighbours are now $1/s$ apart, which the
#   model never saw either; it works well after a short fine-tuning.
# - **NTK-aware scaling** {cite}`bloc97ntk2023` raises the base instead, $b' = b\,s^{d/(d-2)}$:
#   the slowest pair turns exactly $s$ times slower (interpolated), the fastest not at all
#   (extrapolated), and the ones in between by something in between. Dynamic NTK picks $s$ from
#   the current length; Llama 3 and YaRN {cite}`peng2023yarn` blend per frequency band.
#
# The figure shows, for each pair, the largest angle the model meets.

# %%
plot_context_extension(dim=16, train_len=64, factor=4)
plt.show()
L_angle = rope_angles(torch.tensor([64]), RoPEConfig(16))[0]  # L·θ_i, the edge of the trained range
pi = rope_angles(torch.tensor([255]), RoPEConfig(16, scaling="linear", factor=4))[0]
ntk = rope_angles(torch.tensor([255]), RoPEConfig(16, scaling="ntk", factor=4))[0]
raw = rope_angles(torch.tensor([255]), RoPEConfig(16))[0]
assert (pi < L_angle).all()  # interpolation: every angle stays inside [0, L·θ_i)
assert L_angle[0] > 2 * math.pi > L_angle[-1]  # in training, fast pairs went round the circle, slow ones did not
# NTK: the fastest pair is untouched, the slowest turns exactly 4× slower
assert torch.isclose(ntk[0], raw[0]) and torch.isclose(ntk[-1], raw[-1] / 4, rtol=1e-4)
assert math.isclose(ntk_scaled_base(10000.0, 16, 4.0), 10000 * 4 ** (16 / 14))

# %% [markdown]
# ## ALiBi: a linear penalty on distance
#
# ALiBi {cite}`press2021alibi` adds no embeddings at all. Head $h$ adds $-m_h\,|i - j|$ to the
# score of query $i$ and key $j$: the farther the key, the lower its score, at a rate that differs
# per head. For $n$ heads (a power of two) the slopes are the geometric sequence
# $2^{-8/n}, 2^{-16/n}, \dots, 2^{-8}$; some heads look far, others only at their neighbours. For
# other head counts the paper takes the slopes of the largest power of two $m < n$ and adds every
# other slope of $2m$, which is why 12 heads give two interleaved sequences below.

# %%
plot_alibi(num_heads=12, seq_len=16)
plt.show()
for n in (8, 16):
    s = alibi_slopes(n)
    assert torch.allclose(s[1:] / s[:-1], torch.full((n - 1,), 2 ** (-8 / n)))  # geometric
print("12 heads:", [round(v, 4) for v in alibi_slopes(12).tolist()])
assert torch.allclose(alibi_slopes(12), torch.cat([alibi_slopes(8), alibi_slopes(16)[0::2][:4]]))

# %% [markdown]
# BLOOM implements ALiBi as $+m_h\,j$ rather than $-m_h(i - j)$: the two differ by $m_h\,i$, the
# same for every key of a query, and softmax ignores a constant added to a whole row. The attention
# weights are identical:

# %%
n_heads, L = 12, 20
bloom = build_alibi_tensor(torch.ones(1, L, dtype=torch.long), n_heads, torch.float32).view(1, n_heads, 1, L)
scores = torch.randn(1, n_heads, L, L)
causal = torch.ones(L, L, dtype=torch.bool).tril()
w_bloom = (scores + bloom).masked_fill(~causal, float("-inf")).softmax(-1)
w_ours = (scores + alibi_bias(n_heads, L)).masked_fill(~causal, float("-inf")).softmax(-1)
print("max |weights ours - BLOOM|:", (w_ours - w_bloom).abs().max().item())
assert torch.allclose(w_ours, w_bloom, atol=1e-6)

# %% [markdown]
# ## The experiment: train short, test long
#
# Now the question that decides which scheme a long-context model uses: trained on short inputs,
# what happens on longer ones? `roadmap_lib.chapters.ch03_positional_encodings.extrapolation` holds one tiny character-level
# language model (2 pre-norm layers, $d_\text{model} = 64$, 4 heads, about 110k parameters) whose
# only difference from run to run is how positions enter. Each version is trained for 1000 steps on
# random 64-character windows of the Jargon File, then scored (mean next-character loss, nats) on
# the same validation windows of 64, 128 and 256 characters. Two more rows reuse the RoPE model at
# test time, without any fine-tuning: with position interpolation and with NTK-aware scaling by the
# length factor.
#
# Training seven models takes about ten minutes, so the table was built once by
# `python -m roadmap_lib build 03-extrapolation` into `data/03_extrapolation.json`; the build also
# kept the trained ALiBi model, which the next section studies, in `data/03_alibi.safetensors`. To
# show that both files are what the code produces, we replay the first 100 of ALiBi's 1000 training
# steps live (same seed, same batches, same learning-rate schedule) and compare every step's loss
# with the one the build recorded, then score the shipped weights on the table's validation windows.

# %%
results = load_results()
cfg = experiment_config(results)
_, replay = train_scheme(KEPT_SCHEME, cfg, progress=False, stop_at=REPLAY_STEPS)
now = [r["loss"] for r in replay.log]
recorded = results["first_losses"][KEPT_SCHEME]
worst = max(abs(a - b) for a, b in zip(now, recorded))
print(f"{KEPT_SCHEME}, steps 1-{len(now)}: loss {now[0]:.4f} -> {now[-1]:.4f} now, "
      f"{recorded[0]:.4f} -> {recorded[-1]:.4f} in the file; largest difference {worst:.1e}")
assert len(now) == len(recorded) == REPLAY_STEPS and worst < 1e-3  # other CPUs round the last digits differently

alibi_model = load_trained()
alibi_row = score(alibi_model, KEPT_SCHEME, cfg)
for n, shipped in results["rows"][KEPT_SCHEME].items():
    print(f"{KEPT_SCHEME} at {n:>3} characters: shipped weights scored now {alibi_row[n]:.4f}, table {shipped:.4f}")
    assert abs(alibi_row[n] - shipped) < 1e-4

# %% [markdown]
# The replayed steps land on the recorded ones, and the shipped weights score their row of the
# table. Here is the whole table (lower is better; "—" means the model cannot take that length at
# all):

# %%
rows, L = results["rows"], cfg.train_len
lengths = [str(f * L) for f in cfg.eval_factors]
print(f"{'scheme':<11}" + "".join(f"{n + ' chars':>12}" for n in lengths) + f"{'4x - 1x':>10}")
for name in ROWS:
    r = rows[name]
    cells = "".join(f"{'—' if r[n] is None else format(r[n], '.3f'):>12}" for n in lengths)
    growth = "" if r[lengths[-1]] is None else f"{r[lengths[-1]] - r[lengths[0]]:+.3f}"
    print(f"{name:<11}{cells}{growth:>10}")
plot_extrapolation(rows, L)
plt.show()

# %% [markdown]
# What the table says (one seed each, so differences below about 0.05 nats are noise):
#
# - **Learned absolute positions stop at the table's end**: the model simply cannot read 128
#   characters.
# - **Sinusoidal positions do not extrapolate** although the formula is defined everywhere: the
#   loss rises by more than 0.5 nats at 2× and by about 1 nat at 4×. The model has never seen the
#   vectors of positions 64 to 255 added to its inputs.
# - **The relative schemes (Shaw, T5) and ALiBi hold their loss flat** out to 4×; their scores
#   depend on distances only, and distances past the clipping point (Shaw), the last bucket (T5) or
#   simply large (ALiBi) look like ones seen in training.
# - **At 1×, Shaw, T5 and RoPE are within 0.07 nats of each other**: about the noise of one seed,
#   so we do not rank them. Sinusoidal, learned positions and ALiBi are about 0.1 nats or more behind.
# - **RoPE is in between**: better than sinusoidal at 2×, but at 4× its slow pairs reach angles
#   never seen in training and the loss rises by about 1 nat as well.
# - **NTK-aware scaling rescues much of that with no training at all**: at 2× its loss is that of
#   RoPE at 1× (a gap of 0.01 nats, inside the noise: no difference), and at 4× it is 0.6 nats
#   better than plain RoPE, though no longer flat. **Position interpolation without fine-tuning hurts**: squeezing
#   neighbours to $1/s$ of a position apart is also something the model never saw; Chen et al.
#   pair it with a short fine-tuning, which is where it shines.
# - **NoPE** learns position only through the causal mask; in this short training it is by far
#   the worst at 1×, although it degrades little with length (0.1 nats at 4×, a tenth of
#   sinusoidal's rise).
# - **ALiBi pays a little at 1×** (against RoPE) for its flat curve.
#
# Every one of these statements is checked below against the numbers in the table. A flat mean
# loss at 2× and 4× is not yet proof that a model *uses* the far context: the mean hides where in
# the window the loss goes, and a model can score well by ignoring everything beyond its training
# length. We test that right after the checks.

# %%
def growth(name, factor):
    return rows[name][str(factor * L)] - rows[name][str(L)]


at1 = {name: rows[name][str(L)] for name in ROWS}
assert rows["learned"][str(2 * L)] is None and rows["learned"][str(4 * L)] is None
assert growth("sinusoidal", 2) > 0.5 and growth("sinusoidal", 4) > 0.8
for name in ("shaw", "t5", "alibi"):
    assert abs(growth(name, 2)) < 0.1 and abs(growth(name, 4)) < 0.1, name
assert max(at1["shaw"], at1["t5"], at1["rope"]) - min(at1["shaw"], at1["t5"], at1["rope"]) < 0.08
assert min(at1[n] for n in ("sinusoidal", "learned", "alibi")) > max(at1["shaw"], at1["t5"], at1["rope"]) + 0.08
assert growth("rope", 2) < growth("sinusoidal", 2) - 0.3  # RoPE degrades less at 2x than sinusoidal
assert growth("rope", 4) > 0.5  # ... but it does degrade at 4x
assert abs(rows["rope+ntk"][str(2 * L)] - at1["rope"]) < 0.05  # no difference: inside one seed's noise
assert rows["rope+ntk"][str(4 * L)] < rows["rope"][str(4 * L)] - 0.5 and growth("rope+ntk", 4) > 0.2
assert rows["rope+pi"][str(2 * L)] > rows["rope"][str(2 * L)] + 0.3  # interpolation without fine-tuning hurts
assert at1["nope"] > max(at1[n] for n in ROWS if n != "nope") + 0.3 and abs(growth("nope", 4)) < 0.15 * growth("sinusoidal", 4)
assert at1["alibi"] > at1["rope"] + 0.05

# %% [markdown]
# ### A flat loss, but what does the model read?
#
# Take the ALiBi model loaded above (seed 0, 64-character windows, flat loss out to 4×) and 32
# validation windows of 256 characters. Two curves of the loss at every position:
#
# - with the **whole past**, as in the table (`roadmap_lib.longcontext.loss_per_position`);
# - with **only the last 64 characters**: each position past 64 is predicted from a 64-character
#   window that slides along (`cut_context_loss`).
#
# If a model used what lies more than 64 characters back, cutting it off would raise its loss past
# position 64. If the curves coincide there, nothing older than 64 characters changed its predictions,
# and its flat 4× loss is that of a 64-character reader sliding along the text.

# %%
long_data = CharLMData(context=4 * L, batch_size=32)
long_x, long_y = long_data.get_batch("val", torch.Generator().manual_seed(7))
long_ids = torch.cat([long_x, long_y[:, -1:]], 1)
full_curve = loss_per_position(alibi_model.eval(), long_ids)
cut_curve = cut_context_loss(alibi_model, long_ids, L)
plot_position_loss(bin_mean(full_curve, 8).repeat_interleave(8), bin_mean(cut_curve, 8).repeat_interleave(8), L)
plt.show()
past = slice(L, 4 * L)
gap = (cut_curve[past] - full_curve[past]).mean().item()
print(f"positions {L}-{4 * L - 1}: whole past {full_curve[past].mean():.3f}, last {L} only "
      f"{cut_curve[past].mean():.3f} nats (cut minus whole: {gap:+.4f}); positions 32-63: {full_curve[32:L].mean():.3f}")
assert -0.05 < gap < 0.005  # cutting the far context off does not raise the loss: it was not being used

# %% [markdown]
# The figure shows both curves in bins of 8 positions. Past position 64 they follow each other
# closely, and cutting the context to the last 64 characters does not raise the loss there: the
# printed difference, cut minus whole, is a little *below* zero. For this ALiBi
# model, after 1000 steps on 64-character windows, the characters more than 64 back do not help
# (if anything they hurt a little): its flat loss at 4× is no better than that of a 64-character
# reader sliding along the text. That is what ALiBi's distance
# penalty is designed to do, and it is why a flat loss is not evidence of using a long context.
#
# A test that *needs* the far context is passkey retrieval {cite}`mohtashami2023landmark`: plant a
# random key and ask for it at the end. `roadmap_lib.longcontext.needle_windows` plants
# `" the key is 48172. "` (five random digits, new in every window) at a chosen depth of a window
# and ends the window with `" the key is 48172"`; a window counts as found when all five digits are
# the model's top choices. We try the same ALiBi model inside its own 64 characters, 32 windows at
# each of five depths:

# %%
g_key = torch.Generator().manual_seed(3)
key_scores = [needle_scores(alibi_model, needle_windows(long_data.splits["val"], long_data.vocab.encode, L, depth, 32,
                                                       generator=g_key), 5) for depth in (0, 0.25, 0.5, 0.75, 1.0)]
key_found_rate = torch.cat([found for _, found in key_scores]).double().mean().item()
key_loss = torch.cat([loss for loss, _ in key_scores]).mean().item()
print(f"keys found: {key_found_rate:.3f} of 160 windows; loss on the key digits {key_loss:.2f} nats "
      f"(a uniform guess among the ten digits: ln 10 = {math.log(10):.2f})")
assert key_found_rate == 0 and key_loss > math.log(10)

# %% [markdown]
# Not one key, even at 64 characters, and the digits score worse than a blind guess among the ten:
# nothing in plain text taught this model to copy a random string from its context, so the test
# cannot tell us anything about its reach beyond 64. Chapter 23 trains a RoPE model on windows that
# each hold a key, and measures how often it still finds the key at 2× and 4×, at every depth, with
# and without PI, NTK and YaRN scaling.

# %% [markdown]
# ### Explore: RoPE's rotations
#
# The figure below is the default setting of the explorer after it: a query's feature pair `pair`
# turned for positions $0, \dots,$ `position` (left), and the score of two identical vectors as a
# function of their distance (right). Fast pairs (small index) go round the circle within a few
# positions; slow ones barely move over the 64 positions of training, which is why they are the
# ones that break at 4×. In JupyterLab, the sliders redraw it.

# %%
plot_rope_rotation(position=12, pair=3, dim=16)
plt.show()

# %% tags=["nbval-ignore-output", "remove-output"]
def _explore(position=12, pair=3, log10_base=4.0):
    plot_rope_rotation(position=position, pair=pair, dim=16, base=10 ** log10_base)
    plt.show()


interact(_explore, position=IntSlider(12, 0, 255, description="position"),
         pair=IntSlider(3, 0, 7, description="pair"),
         log10_base=IntSlider(4, 1, 6, description="log10 base"));

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: ex-03-sinusoidal
# :nonumber:
# ```
# **Exercise 03.1 (the sinusoidal table).** Write `my_sinusoidal(seq_len, d_model)` returning the
# `(seq_len, d_model)` float32 table of Vaswani et al.: column $2i$ holds $\sin(p\,\omega_i)$ and
# column $2i+1$ holds $\cos(p\,\omega_i)$, with $\omega_i = 10000^{-2i/d}$ and $p = 0, 1, \dots$.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Build positions as a column `(seq_len, 1)` and frequencies as a row `(d_model / 2,)`: broadcasting gives every angle; fill the even columns with the sines and the odd ones with the cosines.
# ```

# %% [markdown]
# ```{solution-start} ex-03-sinusoidal
# :class: dropdown
# ```

# %%
def my_sinusoidal(seq_len, d_model):
    ### BEGIN SOLUTION
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(seq_len, d_model)
    table[:, 0::2] = torch.sin(pos * omega)
    table[:, 1::2] = torch.cos(pos * omega)
    return table
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_sinusoidal(my_sinusoidal)

# %% [markdown]
# ```{exercise-start}
# :label: ex-03-alibi
# :nonumber:
# ```
# **Exercise 03.2 (ALiBi slopes for any number of heads).** Write `my_alibi_slopes(num_heads)`
# returning a float tensor of `num_heads` slopes by the paper's rule: for a power of two $n$, the
# geometric sequence $2^{-8/n}, 2^{-16/n}, \dots, 2^{-8}$; otherwise the slopes for the largest power
# of two $m < n$, followed by the first $n - m$ of the slopes for $2m$ taken at every other place
# (its 1st, 3rd, 5th, ...).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Write a helper for the power-of-two case first. For other counts, find the largest power of two below, then take the odd-numbered slopes (`[0::2]`) of the sequence for twice that many heads.
# ```

# %% [markdown]
# ```{solution-start} ex-03-alibi
# :class: dropdown
# ```

# %%
def my_alibi_slopes(num_heads):
    ### BEGIN SOLUTION
    def geometric(n):
        return torch.tensor([2.0 ** (-8.0 * (i + 1) / n) for i in range(n)])

    m = 1
    while m * 2 <= num_heads:
        m *= 2
    slopes = geometric(m)
    if m < num_heads:
        slopes = torch.cat([slopes, geometric(2 * m)[0::2][: num_heads - m]])
    return slopes
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_alibi_slopes(my_alibi_slopes)

# %% [markdown]
# ```{exercise-start}
# :label: ex-03-rope
# :nonumber:
# ```
# **Exercise 03.3 (interleaved RoPE by hand).** Write `my_rope_interleaved(x, positions, base)`
# for `x` of shape `(batch, heads, seq, dim)` and integer `positions` of shape `(seq,)`: turn each
# pair $(x_{2i}, x_{2i+1})$ at position $m$ by the angle $m\,\theta_i$, $\theta_i = \text{base}^{-2i/d}$,
# that is $(a, b) \mapsto (a\cos\phi - b\sin\phi,\; a\sin\phi + b\cos\phi)$. Use no helper from
# `roadmap_lib.rope`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Slice the even and odd features with `0::2` and `1::2`; the angles form a `(seq, dim/2)` table that broadcasts over batch and heads. Write the results into a new tensor, not into `x`.
# ```

# %% [markdown]
# ```{solution-start} ex-03-rope
# :class: dropdown
# ```

# %%
def my_rope_interleaved(x, positions, base=10000.0):
    ### BEGIN SOLUTION
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    phi = positions.float()[:, None] * theta  # (seq, d/2)
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * phi.cos() - b * phi.sin()
    out[..., 1::2] = a * phi.sin() + b * phi.cos()
    return out
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_rope_interleaved(my_rope_interleaved)

# %% [markdown]
# ```{exercise-start}
# :label: ex-03-ntk
# :nonumber:
# ```
# **Exercise 03.4 (the NTK-aware base).** A RoPE model with head dimension $d$ and base $b$ must run
# at $s$ times its training length. Find the new base $b'$ for which the *slowest* pair,
# $\theta_{d/2-1} = b^{-(d-2)/d}$, turns exactly $s$ times slower while the fastest ($\theta_0 = 1$)
# is unchanged. Write `ntk_base(base, dim, factor)` returning $b'$.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Set $b'^{-(d-2)/d} = b^{-(d-2)/d} / s$ and solve for $b'$: raise both sides to the power $-d/(d-2)$.
# ```

# %% [markdown]
# ```{solution-start} ex-03-ntk
# :class: dropdown
# ```

# %%
def ntk_base(base, dim, factor):
    ### BEGIN SOLUTION
    # b'^{-(d-2)/d} = b^{-(d-2)/d} / s  <=>  b' = b · s^{d/(d-2)}
    return base * factor ** (dim / (dim - 2))
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_ntk_base(ntk_base)
_b = ntk_base(10000.0, 64, 8.0)
_slow = lambda b: b ** (-62 / 64)
check_close(_slow(10000.0) / _slow(_b), 8.0, name="how many times slower the slowest pair turns", rtol=1e-6)

# %% [markdown]
# ```{exercise-start}
# :label: ex-03-alibi-far
# :nonumber:
# ```
# **Exercise 03.5 (predict, then measure: how far ALiBi looks).** The ALiBi model loaded above has
# 4 heads, with slopes $2^{-2}, 2^{-4}, 2^{-6}, 2^{-8}$. Take the query at position 255 of a
# 256-character window and suppose its content tells it nothing: every raw score $q \cdot k$ is the
# same, so only ALiBi's bias $-m_h\,(i - j)$ shapes the softmax. *Before the check runs the
# attention and measures*, predict for each head the share of this query's attention that falls on
# keys 64 or more positions back (outside the last 64 characters, the window `cut_context_loss`
# kept). Return the 4 shares, head 1 first, from `predict_far_share`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# With equal raw scores, the weight on the key at distance $\delta$ is proportional to
# $e^{-m\delta}$ for $\delta = 0, \dots, 255$: the share is a ratio of two sums of a geometric
# sequence (or of two `sum`s in Python). Which head's sum barely decays over 256 positions?
# ```

# %% [markdown]
# ```{solution-start} ex-03-alibi-far
# :class: dropdown
# ```

# %%
def predict_far_share():
    """Your prediction: 4 shares, head 1 first."""
    ### BEGIN SOLUTION
    weights = [[math.exp(-m * d) for d in range(256)] for m in (2**-2, 2**-4, 2**-6, 2**-8)]
    return [sum(w[64:]) / sum(w) for w in weights]
    ### END SOLUTION


predicted_far_share = predict_far_share()

# %% [markdown]
# The steep heads look only at the last few characters, but the gentlest one would put about two
# thirds of its attention outside the last 64 if the content said nothing. Yet the section *A flat
# loss, but what does the model read?* found that cutting those characters off does not raise the
# trained model's loss: what the model learned to put into $q \cdot k$, not the bias, decides how
# far it reads.
#
# ```{solution-end}
# ```

# %%
check_alibi_far_share(predicted_far_share)  # runs causal attention with ALiBi's bias and measures


# %% [markdown]
# ## Summary
#
# - Attention is permutation-equivariant; positions must be put in, at the input (absolute), in
#   the scores (Shaw, T5, ALiBi) or by rotating queries and keys (RoPE).
# - Our implementations match transformers' Llama RoPE (with its scalings), BLOOM's ALiBi and T5's
#   buckets; the two RoPE conventions are one permutation of the q/k weights apart.
# - Trained on 64 characters and read at 128 and 256: learned positions cannot, sinusoidal ones
#   break, RoPE bends at 2× and breaks at 4× (NTK scaling mends much of it, interpolation without
#   fine-tuning does not), and the distance-based schemes stay flat; for ALiBi, flat because nothing
#   more than 64 characters back changes its loss, although its bias alone would let its gentlest
#   head spread most of its attention there (Exercise 03.5 measures how much).
#
# Chapter 4 builds the attention layer these schemes plug into.
