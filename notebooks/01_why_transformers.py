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
# # 01. Why transformers
#
# **What you will learn**
#
# - how sequence models worked before 2017, and the two walls recurrence runs into: everything must
#   pass through one fixed-size state, and the positions must be processed one after another;
# - what self-attention changed, in one table and one experiment: an LSTM and a small attention
#   model trained on the same task, where the answer lies $k$ steps back;
# - how the field grew from the 2017 Transformer to today's models, as data you can load and plot,
#   and what each leap bought and cost.
#
# **What you need**: Python and PyTorch basics (tensors, `nn.Module`, a training loop). Nothing from
# earlier chapters: this is the first one.
#
# **Run time**: about 40 s on a laptop CPU.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
from ipywidgets import IntSlider, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch01_why_transformers.exercises import (
    check_carried_numbers,
    check_chinchilla_optimal,
    check_memory_limited_accuracy,
    check_recall_target,
)
from roadmap_lib.chapters.ch01_why_transformers.recall import (
    AttentionRecall,
    LSTMRecall,
    RecallConfig,
    accuracy_by_distance,
    make_recall_batch,
    plot_accuracy_by_distance,
    plot_question,
    sequential_steps,
    time_per_step,
    train_recall,
)
from roadmap_lib.chapters.ch01_why_transformers.timeline import (
    format_count,
    load_timeline,
    plot_timeline,
    plot_tokens_per_parameter,
)
from roadmap_lib.exercises import check_true
from roadmap_lib.measure import count_parameters

set_seed(0)

# %% [markdown]
# ## Sequence models before 2017
#
# Language is a sequence, and for thirty years the default way to model a sequence was to read it
# the way we do: left to right, keeping a summary of what has been seen so far. A recurrent neural
# network {cite}`elman1990finding` keeps that summary in a state vector $h_t$ and updates it with
# each new input $x_t$:
#
# $$h_t = f(h_{t-1}, x_t), \qquad \hat y_t = g(h_t).$$
#
# Two problems follow from this one line.
#
# 1. **The state is a bottleneck.** Whatever the model will need later must be squeezed into $h_t$,
#    a vector of fixed size, and must survive every later update. Training makes this worse:
#    the gradient that tells step $t$ what step $t+k$ needed is a product of $k$ Jacobians, which
#    tends to vanish or explode as $k$ grows {cite}`bengio1994learning`. The LSTM
#    {cite}`hochreiter1997lstm` added gates and an additive memory cell so that information and
#    gradients can pass many steps unchanged, and it became the workhorse of the 2010s.
# 2. **The computation is sequential.** $h_t$ needs $h_{t-1}$, so a sequence of length $L$ takes
#    $L$ steps one after another, however many processors you have.
#
# Sequence-to-sequence translation {cite}`sutskever2014seq2seq` hit the first wall head-on: the
# encoder had to pack a whole sentence into its last state. Bahdanau et al.
# {cite}`bahdanau2015attention` let the decoder *look back* at every encoder state through a learned,
# soft alignment, an attention mechanism, and translation quality on long sentences jumped. But the
# encoder and decoder were still recurrent.
#
# ## What self-attention changed
#
# The Transformer {cite}`vaswani2017attention` kept attention and dropped the recurrence. Each
# position computes a query $q_i$, a key $k_j$ and a value $v_j$, and reads a weighted mix of all
# values at once:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right) V.$$
#
# Two numbers capture the change (Table 1 of the paper, for a layer on a sequence of length $L$
# with width $d$):
#
# | layer | work per layer | sequential steps | longest path between two positions |
# |---|---|---|---|
# | recurrent | $O(L\,d^2)$ | $O(L)$ | $O(L)$ |
# | self-attention | $O(L^2 d)$ | $O(1)$ | $O(1)$ |
#
# Any two positions are one step apart, and all positions of a layer can be computed in parallel.
# The price is the $L^2$ term: every position scores every other. Chapter 4 measures that curve,
# and chapters 12, 13 and 23 are about paying less of it.
#
# ## Experiment: what is $k$ steps back?
#
# A task that puts the first wall under a microscope: read $L = 32$ random symbols (from 8), then
# answer a question that arrives at the end, *which symbol did you see $k$ steps ago?* The question
# comes after the text, so a model cannot know in advance what to keep: to answer for any $k$, the
# LSTM must hold the last $k$ symbols in its state. The attention model only has to look at the
# right position.

# %%
cfg = RecallConfig()
symbols, distance, target = make_recall_batch(3, cfg, generator=torch.Generator().manual_seed(0))
for row, k, answer in zip(symbols, distance, target):
    print(" ".join(map(str, row.tolist())), f"| {int(k):2d} back? -> {int(answer)}")
print(cfg)

# %% [markdown]
# Two models of about the same size: a 2-layer LSTM, and 2 pre-norm attention blocks with learned
# positions (the block is PyTorch's `nn.TransformerEncoderLayer` here, which trains with PyTorch's
# fused attention kernel; chapter 4 writes one from scratch, and the explorer below asks the layer
# for its attention weights). Both read the same symbols; the question "k back?" is an embedding added at the last
# position, and the answer is read from the last position's output.

# %%
set_seed(0)
lstm = LSTMRecall(cfg)
attn = AttentionRecall(cfg)
n_lstm, n_attn = count_parameters(lstm), count_parameters(attn)
print(f"LSTM: {n_lstm:,} parameters   attention: {n_attn:,} parameters")
assert abs(n_lstm - n_attn) / n_attn < 0.1, "the two models should be within 10% in size"

# %% [markdown]
# Both get the same 500 steps of AdamW on fresh random batches of 64 sequences, with $k$ drawn
# uniformly from 0 to 31.

# %%
STEPS = 500
loss_lstm = train_recall(lstm, cfg, steps=STEPS, seed=0)
loss_attn = train_recall(attn, cfg, steps=STEPS, seed=0)

fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(loss_lstm, label="LSTM")
ax.plot(loss_attn, label="attention")
ax.axhline(torch.log(torch.tensor(8.0)).item(), color="gray", linestyle=":", label="chance (ln 8)")
ax.set_xlabel("training step")
ax.set_ylabel("cross-entropy")
ax.set_title("Training loss on k-back recall")
ax.legend()
plt.show()

# %% [markdown]
# Now the question the experiment was built for: accuracy as a function of the distance $k$, on
# 256 fresh sequences per distance.

# %%
distances = list(range(cfg.seq_len))
acc_lstm = accuracy_by_distance(lstm, cfg, distances)
acc_attn = accuracy_by_distance(attn, cfg, distances)
plot_accuracy_by_distance(distances, {"LSTM": acc_lstm, "attention": acc_attn}, cfg.vocab)
plt.show()
print("LSTM accuracy at k = 0..5:     ", [round(a, 2) for a in acc_lstm[:6].tolist()])
print("LSTM mean accuracy for k >= 4:", round(acc_lstm[4:].mean().item(), 3))
print("attention minimum accuracy:   ", round(acc_attn.min().item(), 3))

# %% [markdown]
# What the run shows:
#
# - the **attention model answers correctly at every distance** (at least 90% at each, 0 to 31
#   steps back): for it the distance is only *which* position to look at;
# - the **LSTM answers the last one or two symbols almost perfectly and falls towards chance
#   beyond that**: after the same 500 steps it has learned to keep a memory of about two symbols,
#   and everything further back is lost in the state.
#
# Read this as a result about **what 500 steps of training found**, not about what an LSTM can hold.
# Its state is large enough in principle: 2 layers of 64 cells could store the 32 symbols of a
# sequence at 3 bits each, and with much longer training LSTMs do learn longer copies. What this run
# shows is how much easier the attention model finds the task: for it every distance is one
# step away, while the LSTM's gradient for a symbol $k$ back must pass through $k$ state updates,
# and that stays however long it trains. The asserts below hold the claims to the numbers.

# %%
assert acc_attn.min() >= 0.9, "attention should recall at every distance"
assert acc_lstm[:2].min() >= 0.9, "the LSTM should recall the most recent symbols"
assert acc_lstm[4:].mean() < 0.5, "the LSTM should be far from perfect beyond 4 steps back"
assert acc_lstm[4:].mean() > 1 / cfg.vocab - 0.05, "...but not below chance"

# %% [markdown]
# ### The second wall: sequential steps
#
# How long is the chain of operations that must run one after another? For the LSTM it is one state
# update per position and layer; for attention it is one step per block, whatever the length.
# We also time one training step (forward and backward, batch 32; the median of 3) on this CPU.

# %%
lengths = [16, 32, 64, 128]
rows = []
for L in lengths:
    c = RecallConfig(seq_len=L)
    set_seed(0)
    m_lstm, m_attn = LSTMRecall(c), AttentionRecall(c)
    rows.append((L, sequential_steps(m_lstm, L), sequential_steps(m_attn, L),
                 time_per_step(m_lstm, c, repeats=3), time_per_step(m_attn, c, repeats=3)))
print(f"{'length':>6} {'LSTM steps':>11} {'attn steps':>11} {'LSTM ms':>9} {'attn ms':>9}")
for L, s_l, s_a, t_l, t_a in rows:
    print(f"{L:>6} {s_l:>11} {s_a:>11} {t_l * 1e3:>9.1f} {t_a * 1e3:>9.1f}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.plot(lengths, [r[1] for r in rows], marker="o", label="LSTM")
ax1.plot(lengths, [r[2] for r in rows], marker="o", label="attention")
ax1.set_xscale("log", base=2)
ax1.set_yscale("log", base=2)
ax1.set_xlabel("sequence length")
ax1.set_ylabel("sequential steps (forward pass)")
ax1.set_title("Chain of dependent operations")
ax1.legend()
ax2.plot(lengths, [r[3] * 1e3 for r in rows], marker="o", label="LSTM")
ax2.plot(lengths, [r[4] * 1e3 for r in rows], marker="o", label="attention")
ax2.set_xscale("log", base=2)
ax2.set_yscale("log")
ax2.set_xlabel("sequence length")
ax2.set_ylabel("ms per training step (this CPU)")
ax2.set_title("Measured time per step, batch 32")
ax2.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The left panel is the structural fact: the LSTM's chain grows with the length, attention's does
# not. The right panel is what a laptop CPU makes of it, and it is worth reading honestly: a CPU has
# a handful of cores, PyTorch's LSTM kernel is well optimised, and attention does more arithmetic
# ($L^2$), so on this machine attention is **not** faster per step, and both times grow with length.
# The chain length matters on hardware with thousands of parallel lanes, GPUs and TPUs, where the
# attention step fills the machine while the recurrence waits on itself $L$ times: that, together
# with the one-step path between any two positions, is what let transformers be trained on far more
# data than RNNs. (Chapter 13 writes attention as GPU kernels and runs them here through an
# interpreter; `benchmarks/bench_flash.py` measures them on a GPU, and the book shows no GPU
# timing until such a run has been made.)

# %%
# The step counts are the definition in `sequential_steps`, so only the measured times are asserted.
assert rows[-1][3] > rows[0][3] and rows[-1][4] > rows[0][4], "both times grow with the length"

# %% [markdown]
# ### Explore: where does the attention model look?
#
# Pick a distance $k$ and a random sequence. The bars are the attention weights of the last
# position (where the question is) in the first block, for the head that looks most sharply at a
# single position; the orange bar is the position holding the answer. The title gives both models' answers. The figure is drawn for
# $k = 20$; in JupyterLab, the sliders below it redraw it.

# %%
plot_question(attn, lstm, cfg, distance=20, seed=0)
plt.show()

# %% tags=["nbval-ignore-output", "remove-output"]
def _explore(k=20, seed=0):
    plot_question(attn, lstm, cfg, distance=k, seed=seed)
    plt.show()


interact(_explore, k=IntSlider(20, 0, cfg.seq_len - 1, description="k back"),
         seed=IntSlider(0, 0, 20, description="sequence"));

# %% [markdown]
# ## From the Transformer to today, as data
#
# `data/model_timeline.csv` lists landmark models with their size, the number of training tokens
# where the authors reported it, and the source of both numbers (see `data/DATASHEET.md`).

# %%
timeline = load_timeline()
print(f"{'model':<17}{'year':>5}{'parameters':>13}{'tokens':>12}  architecture")
for e in timeline:
    p = format_count(e.parameters) if e.parameters else "?"
    t = format_count(e.tokens) if e.tokens else "?"
    print(f"{e.model:<17}{e.year:>5}{p:>13}{t:>12}  {e.architecture}")

# %%
plot_timeline(timeline)
plt.show()
plot_tokens_per_parameter(timeline)
plt.show()

# %% [markdown]
# Three things the data shows.
#
# 1. **Size grew by more than three orders of magnitude in four years**: from GPT-1's 117 million
#    parameters (2018) to PaLM's 540 billion (2022) {cite}`radford2018gpt,chowdhery2022palm`.
# 2. **The 2020-2022 giants were trained on relatively little data**: GPT-3, Gopher, MT-NLG, OPT,
#    BLOOM and PaLM saw between about half a token (MT-NLG) and two tokens (BLOOM) per parameter,
#    printed below. Chinchilla
#    {cite}`hoffmann2022chinchilla` showed that for a fixed compute budget a smaller model trained on
#    about 20 tokens per parameter does better, and 70B Chinchilla was trained on exactly that ratio.
# 3. **Since then, data grew faster than size, most of all for small models**: LLaMA-65B
#    {cite}`touvron2023llama` is only just past 20 tokens per parameter, but the small models of
#    the same families are trained far beyond it (LLaMA-7B about 150, Llama-3-8B almost 2,000),
#    because a smaller model trained longer is cheaper to *serve*. The frontier also went quiet:
#    GPT-4 {cite}`openai2023gpt4` discloses neither number.

# %%
by_name = {e.model: e for e in timeline}
assert all(e.source for e in timeline), "every row names its source"
assert by_name["PaLM"].parameters / by_name["GPT-1"].parameters > 1000
giants = {n: by_name[n].tokens_per_parameter for n in ["GPT-3", "Gopher", "MT-NLG", "OPT-175B", "BLOOM", "PaLM"]}
print("tokens per parameter, 2020-2022 giants:", {n: round(r, 2) for n, r in giants.items()})
later = {n: by_name[n].tokens_per_parameter for n in ["LLaMA-65B", "LLaMA-7B", "Llama-2-70B", "Llama-3-8B", "Llama-3.1-405B"]}
print("tokens per parameter, later models:    ", {n: round(r) for n, r in later.items()})
assert 0.4 < min(giants.values()) < 0.6 and min(giants, key=giants.get) == "MT-NLG"
assert 1.9 < max(giants.values()) < 2.2 and max(giants, key=giants.get) == "BLOOM"
assert abs(by_name["Chinchilla"].tokens_per_parameter - 20) < 1
assert 20 < later["LLaMA-65B"] < 23, "only just past Chinchilla's ratio"
assert 140 < later["LLaMA-7B"] < 160 and 1800 < later["Llama-3-8B"] < 1900
assert by_name["GPT-4"].parameters is None and by_name["GPT-4"].tokens is None

# %% [markdown]
# ## What each leap bought, and what it cost
#
# | leap | what it bought | what it cost or left open |
# |---|---|---|
# | RNN/LSTM language models | models of any length with one set of weights | sequential compute; memory squeezed into one state |
# | attention on top of seq2seq (2015) | the decoder looks back at every input word | the encoder is still recurrent and slow to train |
# | Transformer (2017) | one-step paths between all positions; parallel training | cost quadratic in length; needs positional information (chapter 3) |
# | BERT (2018) {cite}`devlin2019bert` | bidirectional pre-training, then cheap fine-tuning for understanding tasks | cannot generate text; the masked-LM objective wastes most positions |
# | GPT-1/2 (2018-19) {cite}`radford2019gpt2` | one left-to-right model that both generates and transfers | zero-shot ability is weak at small scale |
# | T5 (2019) {cite}`raffel2020t5` | every task as text to text; a careful study of objectives and data | an encoder-decoder is heavier to serve than a decoder alone |
# | GPT-3 (2020) {cite}`brown2020gpt3` | in-context learning: tasks from a prompt, no fine-tuning | enormous training cost; undertrained for its size (see above) |
# | Chinchilla, PaLM (2022) | compute-optimal scaling; reasoning gains at scale | data, not parameters, becomes the scarce input |
# | LLaMA and open models (2023-) | strong small models trained on more tokens, weights released | the frontier's recipes move into undisclosed reports |
#
# The rest of the book opens each row: the components (Part II), the three families (Part III),
# scaling (Part IV), training and adaptation (Parts V-VII), and the rest of the road to deployment.

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: ex-01-target
# :nonumber:
# ```
# **Exercise 01.1 (the task's answer key).** Write `recall_target(symbols, distance)` that returns,
# for each row `b`, the symbol `distance[b]` steps back from the last position: `symbols` has shape
# `(batch, seq_len)` and `distance` shape `(batch,)`; the result has shape `(batch,)`. Use tensor
# indexing, not a Python loop.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Build one row index per batch element with `torch.arange`; the column of row `b` is the last position minus `distance[b]`. Index with both tensors at once.
# ```

# %% [markdown]
# ```{solution-start} ex-01-target
# :class: dropdown
# ```

# %%
def recall_target(symbols, distance):
    ### BEGIN SOLUTION
    rows = torch.arange(symbols.shape[0])
    return symbols[rows, symbols.shape[1] - 1 - distance]
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_recall_target(recall_target)

# %% [markdown]
# ```{exercise-start}
# :label: ex-01-memory
# :nonumber:
# ```
# **Exercise 01.2 (a model of the LSTM's memory).** Suppose a model remembers the last `memory`
# symbols exactly and guesses uniformly among `vocab` symbols for anything older. Write
# `memory_limited_accuracy(distances, memory, vocab)` returning its expected accuracy at each
# distance, as a float tensor of the same length as `distances`. Then look at the LSTM's curve above:
# which `memory` fits it?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Compare each distance with `memory` once, as a tensor: `torch.where` picks 1 or the chance level `1 / vocab` elementwise. For the fit, where does the LSTM's curve fall to near chance?
# ```

# %% [markdown]
# ```{solution-start} ex-01-memory
# :class: dropdown
# ```

# %%
def memory_limited_accuracy(distances, memory, vocab):
    ### BEGIN SOLUTION
    d = torch.as_tensor(distances)
    return torch.where(d < memory, torch.tensor(1.0), torch.tensor(1.0 / vocab))
    ### END SOLUTION


# %% [markdown]
# The LSTM's curve above is close to `memory = 2`: near-perfect for $k \le 1$, then near chance
# (it does a little better than $1/8$ further back, as a memory of a few extra symbols decays
# gradually rather than all at once).
#
# ```{solution-end}
# ```

# %%
check_memory_limited_accuracy(memory_limited_accuracy)
_fit = min(range(6), key=lambda m: (memory_limited_accuracy(distances, m, cfg.vocab) - acc_lstm).abs().mean())
check_true(_fit == 2, fail=f"the best-fitting memory for this LSTM came out as {_fit}, expected 2",
           success="the LSTM behaves like a memory of about 2 symbols")

# %% [markdown]
# ```{exercise-start}
# :label: ex-01-chinchilla
# :nonumber:
# ```
# **Exercise 01.3 (compute-optimal size).** Training a model with $N$ parameters on $D$ tokens costs
# about $C \approx 6ND$ floating-point operations, and Chinchilla's rule of thumb is $D \approx 20N$.
# Write `chinchilla_optimal(compute)` returning the pair `(N, D)` that spends `compute` FLOPs by
# that rule. Check it against the timeline: what does it give for the compute of GPT-3?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Substitute $D = 20N$ into $C = 6ND$: the equation has only $N$ left, and it is a square.
# ```

# %% [markdown]
# ```{solution-start} ex-01-chinchilla
# :class: dropdown
# ```

# %%
def chinchilla_optimal(compute):
    ### BEGIN SOLUTION
    n = (compute / (6 * 20)) ** 0.5
    return n, 20 * n
    ### END SOLUTION


# %% [markdown]
# With $C = 6ND$ and $D = 20N$, $C = 120N^2$, so $N = \sqrt{C/120}$. For GPT-3's budget
# ($6 \times 175\text{B} \times 300\text{B} \approx 3.2 \times 10^{23}$ FLOPs) the rule gives a
# model of about 51B parameters trained on about 1T tokens: a third of GPT-3's size on three times
# its data.
#
# ```{solution-end}
# ```

# %%
check_chinchilla_optimal(chinchilla_optimal)  # Chinchilla's and GPT-3's budgets among the cases

# %% [markdown]
# ```{exercise-start}
# :label: ex-01-carry
# :nonumber:
# ```
# **Exercise 01.4 (predict, then measure: what reaches the question).** When the question arrives at
# the last position, how many numbers can each model read about the earlier symbols? For the LSTM,
# count the state it hands from one step to the next (after the last step, in every layer); for the
# attention model, count the keys and values its attention layers read (every position, every
# block). Both models have the chapter's sizes (`cfg`: width 64, 2 layers). *Before the check runs
# the models and counts*, write your numbers for sequences of 32 and of 256 symbols in
# `predict_carried`, as `{"lstm": {32: ..., 256: ...}, "attention": {32: ..., 256: ...}}`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# `nn.LSTM` returns `(h_n, c_n)` besides its outputs: what are their shapes? For attention, one key
# vector and one value vector of width `d_model` exist for every position, in each block. Which of
# the two counts depends on the length?
# ```

# %% [markdown]
# ```{solution-start} ex-01-carry
# :class: dropdown
# ```

# %%
def predict_carried():
    """Your prediction: {"lstm": {32: ..., 256: ...}, "attention": {32: ..., 256: ...}}."""
    ### BEGIN SOLUTION
    d, layers = cfg.d_model, cfg.n_layers
    lstm_state = 2 * layers * d  # h and c in every layer, whatever the length
    return {"lstm": {32: lstm_state, 256: lstm_state},
            "attention": {n: 2 * layers * n * d for n in (32, 256)}}  # a key and a value per position and block
    ### END SOLUTION


predicted_carried = predict_carried()

# %% [markdown]
# The LSTM's 256 numbers are the same at every length: that is the first wall. The attention
# model's keys and values grow with the length, 8,192 numbers at 32 symbols, 65,536 at 256; it
# pays for that reach with the $L^2$ scores. (The LSTM trained above used its 256 numbers to recall
# about two symbols, 6 bits: a state is not a memory until training makes it one.)
#
# ```{solution-end}
# ```

# %%
check_carried_numbers(predicted_carried)  # runs both models at lengths 32 and 256 and counts

# %% [markdown]
# ## Summary
#
# - Recurrence funnels all memory through one state and processes positions one after another; the
#   experiment showed the first wall directly: after equal training, the LSTM recalls about two
#   steps back, the attention model every distance.
# - Self-attention makes every pair of positions one step apart and the positions of a layer
#   independent, at a cost quadratic in length; what the last position can read grows with the
#   length (a key and a value per position and block), where the LSTM hands on a state of fixed
#   size (Exercise 01.4 counts both).
# - The models built on it grew a thousandfold in size in four years, then learned to spend compute
#   on data as much as on parameters.
#
# Next, chapter 2 turns text into the tokens these models read.
