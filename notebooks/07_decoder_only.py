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
# # 07. Decoder-only models: GPT, sampling, and what Llama changed
#
# **What you will learn**
#
# - the causal language-modelling objective and the GPT-2 architecture {cite}`radford2018gpt,radford2019gpt2`,
#   built from the blocks of chapter 04;
# - how a small GPT trained on the Jargon File behaves: its loss curves, and what it writes at
#   different sampling temperatures, with top-k {cite}`fan2018hierarchical` and nucleus (top-p)
#   {cite}`holtzman2020curious` filtering;
# - how GPT-2-format weights map onto our model, checked against transformers' `GPT2LMHeadModel`;
# - what BLOOM {cite}`scao2022bloom` and Llama {cite}`touvron2023llama` changed, and how the same
#   blocks express those changes.
#
# **What you need**: attention, masks and transformer blocks (chapter 04), positional encodings,
# ALiBi and RoPE (chapter 03), character-level tokenisation (chapter 02).
#
# **Run time**: about 20 s on a laptop CPU. The model itself was trained beforehand, in minutes on
# one CPU core, by `python -m roadmap_lib build gpt-char-jargon`; this chapter loads it.

# %%
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from ipywidgets import FloatSlider, IntSlider, interact
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM
from transformers import LlamaConfig as HFLlamaConfig

import roadmap_lib
from roadmap_lib import set_seed
from roadmap_lib.chapters.ch07_decoder_only import char_gpt
from roadmap_lib.chapters.ch07_decoder_only.analysis import (
    corpus_words,
    plot_next_token_distribution,
    plot_sweep,
    sample_stats,
    temperature_sweep,
)
from roadmap_lib.chapters.ch07_decoder_only.exercises import (
    check_causal_lm_loss,
    check_gpt_num_params,
    check_positions_processed,
    check_sample_next,
    check_top_p,
)
from roadmap_lib.data import CharLMData, load_text
from roadmap_lib.generation import greedy, next_token_logits
from roadmap_lib.measure import kv_cache_bytes
from roadmap_lib.models import Llama, LlamaConfig
from roadmap_lib.models.hf import gpt_from_hf, gpt_to_hf, llama_from_hf
from roadmap_lib.positional import alibi_bias
from roadmap_lib.training import evaluate
from roadmap_lib.viz import plot_training_log

set_seed(0)
torch.set_num_threads(1)  # a model this small runs as fast on one thread, and steadily on a busy CPU
# %matplotlib inline

# %% [markdown]
# ## 1. A language model that only looks back
#
# A decoder-only model assigns a probability to a sequence one token at a time, each conditioned
# on everything before it:
#
# $$p(x_1, \dots, x_T) = \prod_{t=1}^{T} p(x_t \mid x_1, \dots, x_{t-1}).$$
#
# Training minimises the average negative log-likelihood of the next token, the cross-entropy
# $\mathcal{L} = -\frac{1}{T}\sum_t \log p_\theta(x_{t+1} \mid x_{\le t})$, over every position of
# every window at once. That "at once" is what the causal mask buys: position $t$ may attend to
# positions $\le t$ only, so a single forward pass yields $T$ predictions, none of which has seen
# its answer.
#
# GPT-2 is the decoder half of the original transformer {cite}`vaswani2017attention` without the
# cross-attention, with four changes: the layer norms move *before* each sub-layer (pre-norm), a final
# LayerNorm sits before the output head, positions come from a learned table instead of sinusoids,
# and the feed-forward uses GELU instead of ReLU. The output head shares its matrix with the token
# embedding, as the original transformer already did (its section 3.4; see also {cite}`press2017tied`).
#
# $$h_0 = W_E[x] + W_P[\text{pos}], \quad
#   h_{\ell} = h'_{\ell} + \text{MLP}(\text{LN}(h'_{\ell})),\;
#   h'_{\ell} = h_{\ell-1} + \text{Attn}(\text{LN}(h_{\ell-1})), \quad
#   \text{logits} = \text{LN}(h_L)\, W_E^\top.$$
#
# The model of this chapter reads characters. Its configuration is stored with its weights:

# %%
model, vocab, record = char_gpt.load("gpt-char-jargon")
config = model.config
print(config)
print(f"{model.num_parameters():,} parameters, vocabulary of {len(vocab)} characters")
print(model.blocks[0])

# %% [markdown]
# Is it really causal? Change the last character of a window: the logits of every *earlier*
# position must stay exactly as they were, and only the last one may move.

# %%
text = load_text()
ids = vocab.encode(text[100_000:100_064])[None]
changed = ids.clone()
changed[0, -1] = (changed[0, -1] + 1) % len(vocab)
with torch.no_grad():
    a, b = model(ids), model(changed)
earlier_diff = (a[:, :-1] - b[:, :-1]).abs().max().item()
last_diff = (a[:, -1] - b[:, -1]).abs().max().item()
print(f"max change at earlier positions: {earlier_diff:.2e}, at the last one: {last_diff:.2e}")
assert earlier_diff < 1e-5 < last_diff

# %% [markdown]
# ## 2. Training on the Jargon File
#
# The shipped checkpoint was trained with `roadmap_lib.training.train`: our AdamW (equal to
# `torch.optim.AdamW` step for step {cite}`loshchilov2019adamw`), linear warmup then a cosine decay
# to a tenth of the peak learning rate, gradient clipping at 1, on random 64-character windows of
# the first 90 % of the corpus. Every 100 steps the loop measured the loss on fixed windows of the
# last 10 %. The recipe and the whole log are in the checkpoint's JSON record:

# %%
print({k: record["entry"]["train_config"][k] for k in ("max_steps", "lr", "warmup_steps", "weight_decay")},
      "batch", record["entry"]["batch_size"], "x", record["entry"]["context"], "characters")
plot_training_log(record["log"], smooth=50, ylabel="cross-entropy (nats per character)",
                  title="Training a character-level GPT")
plt.show()

# %% [markdown]
# Two baselines put the final number in perspective: a model that knows nothing pays
# $\log |V|$ nats per character, and one that knows only how frequent each character is pays the
# unigram entropy. We re-measure the checkpoint's validation loss here (the chapter would fail if
# the shipped weights had drifted from their record).

# %%
data = CharLMData(context=config.context_length, batch_size=12, vocab=vocab)
val_loss = evaluate(model, data.get_batch, batches=10, seed=1)
counts = torch.bincount(data.splits["train"], minlength=len(vocab)).double()
p = counts / counts.sum()
unigram = -(p[p > 0] * p[p > 0].log()).sum().item()
uniform = math.log(len(vocab))
print(f"uniform: {uniform:.3f}   unigram: {unigram:.3f}   GPT: {val_loss:.3f} nats/char "
      f"({val_loss / math.log(2):.2f} bits/char; recorded {record['eval']['loss']:.3f} on 40 batches)")
assert abs(val_loss - record["eval"]["loss"]) < 0.1
assert val_loss < unigram - 1.0 < uniform - 1.0

# %% [markdown]
# The validation loss stays close to the training loss: with 1.3 million training characters and
# under a million parameters, this model is far from memorising its corpus. And it was still
# falling when training stopped, so more steps would still help:

# %%
val_curve = {r["step"]: r["val_loss"] for r in record["log"] if "val_loss" in r}
last = record["log"][-1]["step"]
train_end = sum(r["loss"] for r in record["log"][-50:]) / 50
print(f"train loss (last 50 steps) {train_end:.3f}, validation {val_curve[last]:.3f}; "
      f"validation 500 steps earlier {val_curve[last - 500]:.3f}")
assert val_curve[last] - train_end < 0.2
assert val_curve[last - 500] - val_curve[last] > 0.02

# %% [markdown]
# How long does such a run take, next to the implementation most people train with? In one process,
# on one CPU thread, `benchmarks/train_lm.py` trains transformers' `GPT2LMHeadModel` and our GPT from
# the *same* initial weights (ours converted with `gpt_to_hf`), on the same batches with the same
# optimiser and schedule: a *reference recipe* (this architecture, batch 12, 2000 steps at a peak
# learning rate of $10^{-3}$; not the shipped checkpoint's recipe, which the record above gives).
# Ours runs three ways: attention written out as in chapter 04 (`math`), PyTorch's fused attention
# kernel (`sdpa`), and the fast path, `sdpa` with LayerNorm and GELU as one PyTorch kernel each
# (`fused_ops=True`; the same functions, tested equal). Then shallower settings of the fast path try to
# reach the reference's validation loss sooner. Times are CPU seconds of the process, which other
# programs on a shared machine disturb far less than wall-clock time (the file has both):

# %%
bench_file = Path(roadmap_lib.__file__).parent.parent / "benchmarks" / "results" / "train_lm.json"
bench = json.loads(bench_file.read_text())
reference = bench["reference"]
fastest = next(c for c in bench["candidates"] if c["name"] == bench["fastest"])
for row in [reference, *bench["ours"].values(), fastest]:
    print(f"{row['name']:<48} {row['parameters']:>8,} parameters {row['steps']:>5} steps "
          f"{row['tokens_per_cpu_second']:>7,.0f} tokens/CPU-s  validation loss {row['final_val_loss']:.4f}")
speed = bench["tokens_per_cpu_second_ratio_to_reference"]
each_run = {k: r["cpu_ratio_to_each_reference_run"] for k, r in bench["ours"].items()}
print("tokens per CPU-second relative to transformers (mean of its two runs):",
      {k: round(v, 2) for k, v in speed.items()})
print(f"the fastest setting reaches the reference's loss in {bench['fastest_cpu_ratio']:.2f} x its CPU time")
print(f"the shipped checkpoint ({record['steps']} steps, batch {record['entry']['batch_size']}, "
      f"peak lr {record['entry']['train_config']['lr']:g}): validation loss {record['eval']['loss']:.3f}")
# same weights, same batches, same function: every recipe run ends at the same loss
assert all(abs(r["final_val_loss"] - reference["final_val_loss"]) < 1e-3 for r in bench["ours"].values())
# CPU time against each of the reference's two runs: slower than both, or faster than both
assert min(each_run["math"]) > 1 and min(each_run["sdpa"]) > 1 and max(each_run["sdpa+fused"]) < 1
assert fastest["final_val_loss"] <= reference["final_val_loss"] and bench["fastest_cpu_ratio"] < 0.3
assert record["eval"]["loss"] < fastest["final_val_loss"] - 0.1  # the shipped model trained longer

# %% [markdown]
# Same starting weights, same batches and the same arithmetic give the same model: every recipe run
# ends at the same validation loss, to the printed digits, whichever implementation trained it. Speed
# is where they differ, and the reference ran twice (first and last) so that a drift in the machine
# shows: against *both* of its runs, our GPT with attention written out is slower, PyTorch's fused
# attention alone still leaves it slower (transformers uses that kernel too), and the fast path is
# faster. The profile in the results file (`profile_30_steps`) says why: in a model this small,
# element-wise operations (`aten::mul`, `add`, `pow`) take about as much time as the matrix products.
# transformers computes LayerNorm with PyTorch's kernel but writes GPT-2's GELU out term by term; our
# fast path uses one kernel for each, and then the matrix products are what is left on top.
#
# The biggest saving is not in the code, though: half the blocks and a four times higher learning
# rate reach the reference's loss in about a quarter of its CPU time. With so short a budget, the
# recipe is limited by how fast it learns, not by how much its model can hold. Neither is the end of
# the road: the shipped checkpoint, trained for longer on larger batches, reaches a clearly lower
# validation loss than both (printed above).
#
# ## 3. Writing text: greedy decoding, temperature, top-k and top-p
#
# Generation feeds the model its own output. **Greedy** decoding takes the most likely character
# every time, and a small model quickly falls into a loop:

# %%
prompt = "A hacker is "
ids = vocab.encode(prompt)[None]
greedy_text = vocab.decode(greedy(model, ids, 120, context_length=config.context_length)[0])
print(greedy_text)
print("distinct 4-grams:", round(sample_stats(greedy_text, set())["distinct"], 2))
assert sample_stats(greedy_text, set())["distinct"] < 0.5

# %% [markdown]
# **Sampling** draws the next character from $\text{softmax}(z / T)$ instead. The temperature $T$
# trades fidelity for diversity: $T \to 0$ is greedy, $T = 1$ is the model's own distribution,
# $T > 1$ flattens it. Two measurements make that concrete: the fraction of generated words that
# exist in the corpus (fidelity) and the fraction of character 4-grams that are distinct
# (diversity; loops drive it down), on 150 characters after each of four prompts.

# %%
prompts = ["The hacker said that ", "In the old days, a program ", "This term is used to ",
           "It was common to find "]
words = corpus_words(text)
temperatures = [0.2, 0.5, 0.8, 1.0, 1.5]
sweep = temperature_sweep(model, vocab, prompts, temperatures, new_tokens=150, seed=0, vocabulary=words)
for row in sweep:
    print(f"T = {row['temperature']:<4} words in corpus {row['word_rate']:.2f}  distinct 4-grams "
          f"{row['distinct']:.2f}  | {row['sample'][:90]!r}")
plot_sweep(sweep)
plt.show()

# %%
by_t = {row["temperature"]: row for row in sweep}
assert by_t[0.5]["word_rate"] > by_t[1.5]["word_rate"] + 0.1  # hot sampling invents words
assert by_t[1.0]["distinct"] > by_t[0.2]["distinct"] + 0.1  # cold sampling repeats itself

# %% [markdown]
# The sweep shows the trade-off the figure draws: cold sampling writes real words and
# repeats them; hot sampling varies more and invents words. Truncation cuts off the unreliable
# tail of the distribution instead of reshaping all of it: **top-k** keeps the $k$ most likely
# characters, **top-p** (nucleus) the smallest set whose probability reaches $p$. With $p = 0.9$
# at $T = 1$ most of the invented words disappear, for a small loss of diversity:

# %%
nucleus = temperature_sweep(model, vocab, prompts, [1.0], new_tokens=150, seed=0, vocabulary=words, top_p=0.9)[0]
print(f"T = 1.0, top-p 0.9: words in corpus {nucleus['word_rate']:.2f}, distinct {nucleus['distinct']:.2f}"
      f" (T = 1.0 alone: {by_t[1.0]['word_rate']:.2f}, {by_t[1.0]['distinct']:.2f})")
print(repr(nucleus["sample"][:200]))
assert nucleus["word_rate"] > by_t[1.0]["word_rate"] + 0.05
assert nucleus["distinct"] > by_t[1.0]["distinct"] - 0.1

# %% [markdown]
# ## 4. Loading GPT-2-format weights
#
# Our `GPT` is the GPT-2 architecture, so the weights of any `GPT2LMHeadModel` load into it. The
# names differ, and two layouts need care: GPT-2 stores its linear layers as `Conv1D` with the
# weight transposed, (in, out), and computes queries, keys and values with one fused matrix
# `c_attn` that we split in three. `roadmap_lib.models.hf` does that mapping both ways.
#
# No download is needed to check it: we build a GPT-2 with random weights locally (a small one, same
# architecture as the 124M-parameter release) and compare logits and greedy generations.

# %%
torch.manual_seed(0)
hf_gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=128, n_embd=96, n_layer=3, n_head=4,
                                     initializer_range=0.1, bos_token_id=0, eos_token_id=0)).eval()
ours = gpt_from_hf(hf_gpt2)
ids = torch.randint(0, 300, (2, 40))
with torch.no_grad():
    diff = (ours(ids) - hf_gpt2(ids).logits).abs().max().item()
    theirs = hf_gpt2.generate(ids[:, :5], attention_mask=torch.ones(2, 5, dtype=torch.long),
                              max_new_tokens=30, do_sample=False, pad_token_id=0)
print(f"max |logit difference| = {diff:.1e}")
assert diff < 1e-5
assert torch.equal(greedy(ours, ids[:, :5], 30), theirs)

# %% [markdown]
# The other direction turns our trained checkpoint into a transformers model, which then
# generates with its own `generate` exactly what ours does:

# %%
exported = gpt_to_hf(model)
ids = vocab.encode("The hacker ")[None]
with torch.no_grad():
    theirs = exported.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40,
                               do_sample=False, pad_token_id=0)
print(vocab.decode(theirs[0]))
assert torch.equal(theirs, greedy(model, ids, 40))

# %% [markdown]
# With the released GPT-2 weights in your local Hugging Face cache,
# `roadmap_lib.models.hf.load_local_pretrained("gpt2")` converts them the same way (it never
# downloads; nothing in this book needs it).
#
# ## 5. What BLOOM and Llama changed
#
# Later decoder-only models kept the recipe (a stack of pre-norm causal blocks trained on next-token
# prediction) and changed the parts:
#
# | | GPT-2 (2019) | BLOOM (2022) | Llama (2023) |
# |---|---|---|---|
# | positions | learned table $W_P$ | ALiBi: a linear bias $-m_h \lvert i-j \rvert$ on the scores {cite}`press2021alibi` | RoPE: rotate $q, k$ by position {cite}`su2021roformer` |
# | normalisation | LayerNorm | LayerNorm, plus one right after the embedding | RMSNorm {cite}`zhang2019rmsnorm` |
# | feed-forward | GELU, $4d$ | GELU, $4d$ | SwiGLU, $\approx \tfrac{8}{3}d$ {cite}`shazeer2020glu` |
# | attention | multi-head | multi-head | multi-head; grouped-query from Llama 2's 34B and 70B {cite}`touvron2023llama2,ainslie2023gqa` |
# | biases / head | biases; tied head | biases; tied head | no biases; separate head |
#
# ALiBi drops the position table altogether: each head subtracts a distance penalty with its own
# slope, so far-away keys fade at a head-specific rate, and nothing in the model is tied to a
# maximum length.

# %%
bias = alibi_bias(4, 12)[0]  # (heads, query, key) for 4 heads and 12 positions
fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
for h, ax in enumerate(axes):
    im = ax.imshow(bias[h], cmap="viridis", vmin=bias.min().item(), vmax=0)
    ax.set_title(f"ALiBi head {h}")
    ax.set_xlabel("key position")
axes[0].set_ylabel("query position")
fig.colorbar(im, ax=axes, shrink=0.8, label="bias added to the score")
plt.show()

# %% [markdown]
# Llama's changes are options of the same blocks: `roadmap_lib.models.Llama` uses RMSNorm, RoPE in
# the half-split convention, a SwiGLU feed-forward and grouped-query attention, and its weights
# load from transformers' `LlamaForCausalLM` with the same logits:

# %%
torch.manual_seed(0)
hf_llama = LlamaForCausalLM(HFLlamaConfig(
    vocab_size=len(vocab), hidden_size=128, intermediate_size=344, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.1,
)).eval()
llama = llama_from_hf(hf_llama)
ids = vocab.encode(text[5000:5064])[None]
with torch.no_grad():
    diff = (llama(ids) - hf_llama(ids).logits).abs().max().item()
print(f"Llama: max |logit difference| = {diff:.1e}")
assert diff < 1e-5

# %% [markdown]
# At the size of our GPT, what do the changes cost? The table counts parameters and the bytes of
# key/value cache each generated token adds (float16, every layer), for our GPT and for Llama-style
# models with 4, 2 and 1 key/value heads.

# %%
rows = [("GPT (ours)", model.num_parameters(), kv_cache_bytes(4, 4, 32))]
for kv in (4, 2, 1):
    m = Llama(LlamaConfig(vocab_size=len(vocab), context_length=64, d_model=128, n_layers=4, n_heads=4,
                          n_kv_heads=kv))
    rows.append((f"Llama, {kv} kv heads", m.num_parameters(), kv_cache_bytes(4, kv, 32)))
print(f"{'model':<20}{'parameters':>12}{'KV bytes/token':>16}")
for name, n, kvb in rows:
    print(f"{name:<20}{n:>12,}{kvb:>16,}")
assert rows[-1][2] * 4 == rows[1][2]  # one kv head: a quarter of the cache
assert rows[-1][1] > 0.85 * rows[1][1]  # ... for about a tenth of the parameters

# %% [markdown]
# With one key/value head (multi-query attention) the cache is four times smaller here, and the
# parameter count drops only a little: GQA buys memory at generation time, where long contexts and
# large batches make the cache the bottleneck.
#
# ## 6. Explore: temperature, top-k and top-p on one step
#
# The figure shows the model's distribution over the next character after a prompt (grey) and what
# remains after the filters (purple). First the default setting, then the explorer.

# %%
explore_prompt = "The hacker "
explore_logits = next_token_logits(model, vocab.encode(explore_prompt)[None], config.context_length)[0]
plot_next_token_distribution(model, vocab, explore_prompt, temperature=0.7, top_k=10, top_p=0.9,
                             logits=explore_logits)
plt.show()

# %% tags=["nbval-ignore-output", "remove-output"]
@interact(temperature=FloatSlider(value=0.7, min=0.1, max=2.0, step=0.1),
          top_k=IntSlider(value=10, min=1, max=len(vocab)),
          top_p=FloatSlider(value=0.9, min=0.05, max=1.0, step=0.05))
def explore(temperature, top_k, top_p):
    plot_next_token_distribution(model, vocab, explore_prompt, temperature=temperature, top_k=top_k,
                                 top_p=top_p, logits=explore_logits)
    plt.show()


# %% [markdown]
# ## Summary
#
# - A GPT is a stack of pre-norm causal blocks; one forward pass trains on every position at once.
# - Our small character-level GPT reaches well below the unigram baseline on held-out text; its
#   samples show the temperature trade-off between real words and repetition, and nucleus
#   sampling improves fidelity at $T = 1$.
# - GPT-2 and Llama weights move between our models and transformers' with logits equal to
#   $10^{-5}$ and identical greedy generations.
# - BLOOM and Llama changed positions (ALiBi, RoPE), normalisation (RMSNorm), the feed-forward
#   (SwiGLU) and attention (GQA), each a small swap of one block part.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-07-loss
# :nonumber:
# ```
# **Exercise 07.1 (the next-token loss).** Given logits `(batch, seq, vocab)` computed on `ids[:, :-1]`
# and the full `ids` `(batch, seq + 1)`, return the mean cross-entropy of predicting `ids[:, 1:]`.
# Write `causal_lm_loss(logits, ids)` with `torch.log_softmax` (not `F.cross_entropy`).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The targets are the ids shifted by one, `ids[:, 1:]`; `gather` picks each target's log-probability from the last dimension.
# ```

# %% [markdown]
# ```{solution-start} ex-07-loss
# :class: dropdown
# ```

# %%
def causal_lm_loss(logits, ids):
    ### BEGIN SOLUTION
    targets = ids[:, 1:]
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, targets[..., None]).mean()
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_causal_lm_loss(causal_lm_loss)  # against F.cross_entropy on random logits and ids

# %% [markdown]
# ```{exercise-start}
# :label: ex-07-top-p
# :nonumber:
# ```
# **Exercise 07.2 (nucleus filtering).** Write `my_top_p(logits, p)` for logits `(batch, vocab)`:
# keep, in each row, the most likely tokens until their probabilities add up to at least `p`
# (always at least one), and set the other logits to `-inf`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Sort each row, accumulate the probabilities, and remove a token when the mass *before* it already reaches `p`; then scatter the decision back to the original order.
# ```

# %% [markdown]
# ```{solution-start} ex-07-top-p
# :class: dropdown
# ```

# %%
def my_top_p(logits, p):
    ### BEGIN SOLUTION
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    remove = (cumulative - sorted_logits.softmax(-1)) >= p  # mass before this token already >= p
    remove[..., 0] = False
    mask = torch.zeros_like(remove).scatter(-1, order, remove)
    return logits.masked_fill(mask, float("-inf"))
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_top_p(my_top_p)  # against the library's `top_p_filter` (which the answer may not call)

# %% [markdown]
# ```{exercise-start}
# :label: ex-07-params
# :nonumber:
# ```
# **Exercise 07.3 (counting parameters).** Write `gpt_num_params(vocab_size, context_length, d_model,
# n_layers)` for our `GPT` with its defaults (biases, tied head, feed-forward width $4d$): token and
# position embeddings, per block two LayerNorms, the four attention projections and the two MLP
# projections with their biases, and the final LayerNorm.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Count one block: two LayerNorms (a weight and a bias each), four $d \times d$ projections with biases, and the two MLP matrices $d \times 4d$ and $4d \times d$ with their biases. The tied head adds nothing.
# ```

# %% [markdown]
# ```{solution-start} ex-07-params
# :class: dropdown
# ```

# %%
def gpt_num_params(vocab_size, context_length, d_model, n_layers):
    ### BEGIN SOLUTION
    d = d_model
    per_block = 2 * (2 * d) + 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    return vocab_size * d + context_length * d + n_layers * per_block + 2 * d
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_gpt_num_params(gpt_num_params)  # against GPT modules built with those sizes, and GPT-2 small

# %% [markdown]
# ```{exercise-start}
# :label: ex-07-sample
# :nonumber:
# ```
# **Exercise 07.4 (temperature sampling by hand).** Write `sample_next(logits, temperature, generator)`
# that returns one sampled token id per row of `logits` `(batch, vocab)`, drawing from
# `softmax(logits / temperature)` with `torch.multinomial(..., generator=generator)`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Divide the logits by the temperature before the softmax; `torch.multinomial(probs, 1, generator=...)` returns a `(batch, 1)` tensor.
# ```

# %% [markdown]
# ```{solution-start} ex-07-sample
# :class: dropdown
# ```

# %%
def sample_next(logits, temperature, generator):
    ### BEGIN SOLUTION
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_sample_next(sample_next)  # the same seeded draws as the reference

# %% [markdown]
# ```{exercise-start}
# :label: ex-07-positions
# :nonumber:
# ```
# **Exercise 07.5 (predict, then measure: the work of generating).** Section 3 generated with
# `greedy(model, ids, n, context_length=...)`, which runs the whole (cropped) sequence through the
# model again for every new token; with `use_cache=True` it feeds the prompt once and then only the
# newest token, the past keys and values coming from a KV cache (chapter 04). Before the check
# hooks a real model and counts, predict: write `positions_processed(prompt_len, new_tokens,
# context_length, use_cache)`, the number of token positions the model takes in, summed over all
# its forward calls, while `greedy` generates `new_tokens` tokens after a prompt of `prompt_len`.
# (With a cache, the check keeps `prompt_len + new_tokens - 1` within the window.) Then guess
# before you look: how many times less work does the cache do for 53 characters after a
# 12-character prompt in our 64-character window? The check prints the measured ratio.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Write down the length of the input of each call: the first call sees the prompt; after each new
# token the sequence is one longer, and without a cache `next_token_logits` keeps only the last
# `context_length` of it. How many calls does it take to produce `new_tokens` tokens, and does the
# token produced by the last call ever go back into the model? With a cache, what is each call's
# input after the first?
# ```

# %% [markdown]
# ```{solution-start} ex-07-positions
# :class: dropdown
# ```

# %%
def positions_processed(prompt_len, new_tokens, context_length, use_cache):
    ### BEGIN SOLUTION
    if use_cache:
        return prompt_len + (new_tokens - 1)  # the prompt once, then one token per call
    return sum(min(prompt_len + step, context_length) for step in range(new_tokens))
    ### END SOLUTION


# %% [markdown]
# Without a cache the work per token grows with the sequence until the window is full and then
# stays at `context_length` per token; the total is quadratic in the length while it fits. With a
# cache every position goes through the model once. (The attention of each cached step still reads
# all the stored keys: the cache saves the recomputation of the projections and feed-forward
# layers for the past, not the attention itself.)
#
# ```{solution-end}
# ```

# %%
check_positions_processed(positions_processed)  # against a forward hook counting what greedy() feeds a GPT
