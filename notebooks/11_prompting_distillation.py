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
# # 11. Prompting and distillation
#
# **What you will learn**
#
# - knowledge distillation {cite}`hinton2015distilling`: a small *student* trained to match the
#   whole next-token distribution of a large *teacher* (its *soft targets*), softened by a
#   temperature $T$, and what the wrong answers' probabilities carry that a one-hot label does not;
# - why the soft loss is multiplied by $T^2$, derived and then measured: without it the gradient
#   shrinks like $1/T^2$;
# - the loss itself against PyTorch's `kl_div` conventions (`reduction="batchmean"`,
#   `log_target=True`), which are easy to get wrong;
# - sequence-level distillation {cite}`kim2016sequence`: training the student on text the teacher
#   *wrote* (its greedy outputs) instead of on its probabilities;
# - the size/quality table on a real model: chapter 07's character GPT (819k parameters) as the
#   teacher, a 113k-parameter student trained from scratch, with soft targets and on the teacher's
#   text, three seeds each. The soft-target student of seed 0 ships as the zoo's
#   `gpt-char-distilled`, which chapter 26 serves;
# - chain of thought {cite}`wei2022chain` measured on a task a tiny model can learn: the same GPT
#   size trained to answer the parity of 2 to 6 bits directly or after a scratchpad
#   {cite}`nye2021show`, three seeds each, accuracy by problem length;
# - turning sampled chains into one answer: self-consistency (the majority vote of k chains
#   {cite}`wang2023selfconsistency`) and best-of-n with a verifier {cite}`cobbe2021training` that
#   checks a chain's arithmetic but not its copying;
# - a ReAct-style tool loop {cite}`yao2023react` in `roadmap_lib.agents`: the model writes the
#   request, a calculator writes the result, and what that fixes and what it cannot;
# - few-shot prompting {cite}`brown2020gpt3` in a model trained on a mixture of tasks that only the
#   examples in the prompt define: accuracy against the number of shots, against an ideal learner,
#   and with random labels in the demonstrations {cite}`min2022rethinking`, which separates
#   recognising a known task from learning a new one in context {cite}`pan2023incontext`;
# - tree of thoughts {cite}`yao2023tree`: a breadth-first beam search over partial chains
#   (`roadmap_lib.reasoning.tree_search`), the scratchpad model as proposer and the verifier as
#   pruning rule, against greedy decoding and sampled chains at matched compute (generated tokens).
#
# **What you need**: the character-level GPT of chapter 07 (the teacher is its shipped checkpoint),
# cross-entropy and softmax from chapter 04, the classification version of the same loss that
# chapter 06 used for DistilBERT {cite}`sanh2019distilbert`, and greedy decoding and sampling from
# chapter 07.
#
# **Run time**: about 30 s on a laptop CPU: a few forward passes of the teacher and the student, the
# measurements of the gradient scale, the re-scoring and tracing of the shipped scratchpad and
# few-shot models, a 30-step re-run of the few-shot training, and a small piece of the tree search.
# The nine distillation runs of the table (about half an hour on one thread), the six
# chain-of-thought runs and the three few-shot runs (several minutes each on one thread; each run's
# time is in its results file) and the tree-search comparison are shipped results files, rebuilt by
# `python -m roadmap_lib build gpt-char-distilled`, `... build 11-cot`, `... build 11-fewshot` and
# `... build 11-tot`.

# %%
# %matplotlib inline
import itertools
import json

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from ipywidgets import FloatSlider, IntSlider, interact

from roadmap_lib import data_path, reasoning, set_seed
from roadmap_lib.agents import tool_loop
from roadmap_lib.chapters.ch11_prompting_distillation import cot, distill, fewshot, tot
from roadmap_lib.chapters.ch11_prompting_distillation.analysis import gradient_norms, soft_targets
from roadmap_lib.chapters.ch11_prompting_distillation.exercises import (
    check_agreement,
    check_families_consistent,
    check_gradient_ratio,
    check_majority_vote,
    check_next_frontier,
    check_soft_target_loss,
)
from roadmap_lib.chapters.ch11_prompting_distillation.plots import (
    plot_compute,
    plot_cot_accuracy,
    plot_distillation,
    plot_gradient_scale,
    plot_samples_curve,
    plot_shots,
    plot_soft_targets,
)
from roadmap_lib.generation import greedy
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.objectives import distillation_loss, soft_target_loss
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)

# %% [markdown]
# ## 1. What a teacher knows that a label does not
#
# A language model trained with cross-entropy is told, at every position, one right answer: the
# next character of the corpus. But what it *learns* is a whole distribution over the vocabulary,
# and that distribution says more than the label: which wrong answers are nearly right, and which
# are absurd. Hinton et al. call this the teacher's *dark knowledge* {cite}`hinton2015distilling`.
#
# Here is chapter 07's character GPT, our teacher, at the end of the first validation window (the
# rule: the first 64 characters of the held-out tenth of the Jargon File; no picking). At
# temperature $T$ its probabilities are $p_T = \mathrm{softmax}(z / T)$ for logits $z$: $T = 1$ is
# the model itself, a larger $T$ flattens the distribution and lifts the small probabilities the
# student should also learn.

# %%
teacher, vocab, teacher_record = load_char_gpt("gpt-char-jargon")
data = distill.corpus(vocab)
window = data.splits["val"][:64]
with torch.no_grad():
    last_logits = teacher(window[None])[0, -1]
temperatures = [1.0, 2.0, 4.0]
targets = soft_targets(last_logits, temperatures, top=8)
top_chars = [vocab.itos[i] for i in targets["ids"]]
context_text = vocab.decode(window.tolist())
print(f"context: ...{context_text[-40:]!r}")
for T in temperatures:
    print(f"T = {T:g}: " + ", ".join(f"{c!r} {p:.3f}" for c, p in zip(top_chars, targets["probs"][T]))
          + f", all others {targets['rest'][T]:.3f}")
plot_soft_targets(targets, top_chars, context=context_text[-30:])
plt.show()

# %% [markdown]
# After "a number of exaggerated " the next character starts a word. The label says one letter;
# the teacher spreads its belief over the likely first letters of a plural noun, with `t` first.
# The label carries $\log_2 138 \approx 7$ bits of *which* character; the teacher's distribution
# carries a ranking of all 138, and at $T = 4$ the characters outside its top eight hold most of the
# mass: the student is told how unlikely each of them is, not only that they are wrong.

# %%
assert top_chars[0] == "t" and targets["probs"][1.0][0] > 0.2, "the teacher's favourite changed"
assert targets["rest"][4.0] > 0.7 > targets["rest"][1.0], "T = 4 should move most mass outside the top 8"

# %% [markdown]
# ## 2. The loss, and why it is multiplied by $T^2$
#
# With student logits $s$ and teacher logits $t$ over $C$ classes, the soft-target loss is the KL
# divergence from the teacher's softened distribution to the student's, at one temperature for
# both:
#
# $$\mathcal{L}_\text{soft} = T^2 \, \mathrm{KL}\big(p_T \,\|\, q_T\big)
#   = T^2 \sum_i p_{T,i} \log \frac{p_{T,i}}{q_{T,i}}, \qquad
#   p_T = \mathrm{softmax}(t / T), \; q_T = \mathrm{softmax}(s / T).$$
#
# Its gradient with respect to a student logit is short to derive: $\log q_{T,i} = s_i / T -
# \log \sum_j e^{s_j / T}$, so $\partial \log q_{T,i} / \partial s_k = (\delta_{ik} - q_{T,k}) / T$,
# and since the $p_{T,i}$ sum to one,
#
# $$\frac{\partial\, \mathrm{KL}}{\partial s_k} = -\sum_i p_{T,i} \frac{\delta_{ik} - q_{T,k}}{T}
#   = \frac{q_{T,k} - p_{T,k}}{T}.$$
#
# For a large $T$, $e^{x/T} \approx 1 + x / T$ and both distributions are close to uniform:
# $q_{T,k} \approx \frac{1}{C}\big(1 + (s_k - \bar s)/T\big)$, the same for $p$ with $t$. The
# gradient becomes
#
# $$\frac{\partial\, \mathrm{KL}}{\partial s_k} \approx
#   \frac{(s_k - \bar s) - (t_k - \bar t)}{C\, T^2}:$$
#
# it shrinks like $1/T^2$. Multiplying the loss by $T^2$ undoes exactly that, so the soft term keeps
# the scale of the hard cross-entropy whatever temperature we choose, and the mixing weight
# $\alpha$ in $\alpha \mathcal{L}_\text{soft} + (1 - \alpha)\,\mathrm{CE}$ means the same thing at
# every $T$. (As $T \to \infty$ the scaled loss becomes $\frac{1}{2C}\sum_k \big((s_k - \bar s) -
# (t_k - \bar t)\big)^2$: matching the centred logits, Hinton et al.'s link to Buciluǎ et al.'s
# logit regression.) `tests/test_distillation.py` checks both the exact gradient and the limit; here
# is the measurement on random logits (64 rows, 32 classes).

# %%
grad_temperatures = [1.0, 2.0, 4.0, 8.0, 16.0]
norms = gradient_norms(grad_temperatures)
plot_gradient_scale(grad_temperatures, norms)
plt.show()
spread_scaled = max(norms["scaled"]) / min(norms["scaled"])
fall_unscaled = norms["unscaled"][0] / norms["unscaled"][-1]
print(f"with T²: the gradient norm varies by a factor {spread_scaled:.2f} from T = 1 to 16; "
      f"without: it falls by a factor {fall_unscaled:.0f} (16² = 256)")
assert spread_scaled < 1.3 and 200 < fall_unscaled < 330

# %% [markdown]
# The scaled gradient is within 25 % of one value across a sixteen-fold range of temperatures (it
# is not exactly flat: at $T = 1$ the expansion above does not hold yet), while the unscaled one
# falls by about $T^2$.
#
# **PyTorch's conventions.** Our `soft_target_loss` is one call to `F.kl_div`, whose argument order
# and reductions trip people up: the *first* argument is the student's **log**-probabilities, the
# second the target (log-probabilities with `log_target=True`, probabilities without), and
# `reduction="batchmean"` divides the sum by the number of rows: that is the KL averaged over
# positions. `reduction="mean"` also divides by the number of classes, which is not a KL at all.
# Leading dimensions count as rows, so `(batch, seq, vocab)` logits give the mean over every
# position.

# %%
g = torch.Generator().manual_seed(0)
s_logits, t_logits = torch.randn(2, 5, 138, generator=g), torch.randn(2, 5, 138, generator=g)
ours = soft_target_loss(s_logits, t_logits, T=2.0)
log_q = F.log_softmax(s_logits.reshape(-1, 138) / 2, -1)
log_p = F.log_softmax(t_logits.reshape(-1, 138) / 2, -1)
torch_batchmean = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean") * 4
torch_probs = F.kl_div(log_q, log_p.exp(), reduction="batchmean") * 4
torch_mean = (F.kl_div(log_q, log_p, log_target=True, reduction="none")).mean() * 4
print(f"ours {ours:.5f}   kl_div batchmean {torch_batchmean:.5f}   with probabilities {torch_probs:.5f}   "
      f"'mean' {torch_mean:.5f} (= ours / 138)")
torch.testing.assert_close(ours, torch_batchmean)
torch.testing.assert_close(ours, torch_probs)
torch.testing.assert_close(torch_mean * 138, ours)

# %% [markdown]
# The full loss of the experiment below mixes the soft term with the ordinary next-character
# cross-entropy: `distillation_loss(student, teacher, labels, T, alpha)` $= \alpha\,
# \mathcal{L}_\text{soft} + (1 - \alpha)\,\mathrm{CE}$, and `lm_distillation_loss(teacher, T=...,
# alpha=...)` wraps it as the `loss_fn` that `roadmap_lib.training.train` calls, running the teacher
# without gradients on every batch. With `alpha=0` it is plain language-model training.

# %%
mixed = distillation_loss(s_logits, t_logits, torch.randint(0, 138, (2, 5), generator=g), T=2.0, alpha=0.5)
print(f"one mixed loss on random logits: {mixed:.4f} (soft half {0.5 * ours:.4f})")

# %% [markdown]
# ## 3. The experiment: a 7x smaller student, three ways
#
# One student architecture (2 layers, 4 heads, 64 dimensions) is trained for 400 steps of 16
# windows of 64 characters each, with the recipe of chapter 07 (AdamW, warmup then cosine), in
# three ways:
#
# - **scratch**: next-character cross-entropy on the corpus, no teacher;
# - **soft**: $\frac12 \mathcal{L}_\text{soft} + \frac12 \mathrm{CE}$ at $T = 2$ on the same batches
#   (word-level distillation, here character-level);
# - **sequence**: Kim and Rush's sequence-level distillation {cite}`kim2016sequence`: cross-entropy
#   on text the teacher wrote. Each of 512 training rows is 16 real characters followed by the
#   teacher's greedy continuation; the student learns only the continuation.
#
# Every model is then scored the same way: the loss on the real validation text (40 fixed batches
# of 12 windows, chapter 07's protocol). Three seeds per method; the seed fixes the student's
# initialisation and the order of its batches.

# %%
record = json.loads(data_path(distill.RESULTS).read_text(encoding="utf-8"))
rows = distill.table(record)
lines = ["| model | parameters | validation loss, mean | spread (max - min) | per seed |",
         "|---|---:|---:|---:|---|"]
for r in rows:
    lines.append(f"| {r['model']} | {r['params']:,} | {r['mean']:.3f} | {r['spread']:.3f} | "
                 + ", ".join(f"{x:.3f}" for x in r["losses"]) + " |")
display(Markdown("\n".join(lines)))
plot_distillation(rows)
plt.show()

# %% [markdown]
# **The noise.** Each method's spread across its three seeds is in the table. A gap between two
# methods counts only if it is larger than the larger of their two spreads; smaller than that, it
# is reported as no difference.

# %%
by_method = {r["model"].split(", ")[1]: r for r in rows[1:]}
teacher_loss = rows[0]["mean"]
paired = {m: [s - c for s, c in zip(by_method[m]["losses"], by_method["scratch"]["losses"])]
          for m in ("soft", "sequence")}
for m in ("soft", "sequence"):
    r, c = by_method[m], by_method["scratch"]
    noise = max(r["spread"], c["spread"])
    print(f"{m:>9} - scratch: {r['mean'] - c['mean']:+.3f} nats/char (noise {noise:.3f}); "
          f"per seed: " + ", ".join(f"{d:+.3f}" for d in paired[m]))
print(f"best student - teacher: {min(r['mean'] for r in rows[1:]) - teacher_loss:+.3f} nats/char")

# %%
gap_soft = by_method["soft"]["mean"] - by_method["scratch"]["mean"]
noise_soft = max(by_method["soft"]["spread"], by_method["scratch"]["spread"])
gap_sequence = by_method["sequence"]["mean"] - by_method["scratch"]["mean"]
noise_sequence = max(by_method["sequence"]["spread"], by_method["scratch"]["spread"])
assert abs(gap_soft) < noise_soft * 1.2, "soft targets now clearly differ from scratch: rewrite the prose"
assert -0.08 < gap_soft < -0.02 and all(d < 0 for d in paired["soft"])
assert gap_sequence > 10 * noise_sequence and 1.5 < gap_sequence < 2.1, "sequence-level distillation moved"
assert min(r["mean"] for r in rows[1:]) - teacher_loss > 0.7, "a student came close to the teacher"

# %% [markdown]
# What the table says, for this regime (a 113k-parameter character student, 400 steps of 1,024
# characters, the Jargon File):
#
# - **Soft targets against scratch: no difference at this budget.** The soft-target students end
#   about 0.05 nats per character lower on average, and lower than the scratch student of the same
#   seed in each of the three seeds, but the gap is the size of the spread across seeds, so three
#   seeds do not establish it. Hinton et al.'s gains were measured at convergence and with far
#   larger models; here the student has seen 410k characters (400 steps x 16 x 64) and is still far from what its size
#   allows. (A longer run, or more seeds, is exercise material, not a claim of this chapter.)
# - **Sequence-level distillation is far behind**, by well over ten times the noise: its students
#   learn the teacher's greedy text, and that text is not the Jargon File (below).
# - **Every student is far from the teacher**, by more than 0.7 nats per character: a 7x smaller
#   model trained for 400 steps is not a 2,500-step model of 819k parameters, whatever it imitates.

# %% [markdown]
# **Re-measured here.** The shipped student is the soft-target student of seed 0; its validation
# loss, measured again now, is the table's number, and so is the teacher's.

# %%
student, _, student_record = load_char_gpt(distill.NAME)
student_loss = distill.val_loss(student, data)
teacher_loss_now = distill.val_loss(teacher, data)
shipped_row = next(r for r in record["runs"] if r["method"] == "soft" and r["seed"] == student_record["seed"])
print(f"student ({count_parameters(student):,} parameters): {student_loss:.4f} (table: {shipped_row['val_loss']:.4f}); "
      f"teacher ({count_parameters(teacher):,}): {teacher_loss_now:.4f} (table: {record['teacher']['val_loss']:.4f})")
assert abs(student_loss - shipped_row["val_loss"]) < 2e-3
assert abs(teacher_loss_now - record["teacher"]["val_loss"]) < 2e-3

# %% [markdown]
# **What the teacher wrote.** Sequence-level distillation trains on the teacher's greedy text. Here
# is the first row of that training set (the rule: row 0 of the shipped record; 16 real characters,
# then the teacher):

# %%
print(repr(record["pool"]["sample"]))

# %% [markdown]
# Greedy decoding from a character model falls into loops ("the standard to the standard the
# star"), so the sequence-level students learn a narrow, repetitive language and are scored on real
# text they have never seen the like of: their validation loss is worse than a scratch student's by
# almost two nats per character. Kim and Rush's setting was translation, where the teacher's beam
# output *is* a good target for each source sentence; for open-ended text, the teacher's greedy
# output is not a sample of the language, and the method needs sampled or beam outputs, or the soft
# targets themselves.
#
# **Side by side.** Greedy continuations of the teacher and of the shipped student from the first
# 32 characters of the validation text (the same rule as above):

# %%
prompt_ids = data.splits["val"][:32][None]
with cpu_threads(1):
    for name, model in [("teacher", teacher), ("student", student)]:
        out = greedy(model, prompt_ids, 32, use_cache=True)  # up to the 64-character context
        print(f"{name:>8}: {vocab.decode(out[0].tolist())!r}")

# %% [markdown]
# Both fall into a loop within 32 characters, the student sooner and on a shorter one ("the the"):
# greedy decoding of small character models repeats itself (chapter 18 has the sampling methods
# that avoid it). One prompt is not a comparison; the validation losses above are.

# %% [markdown]
# ## 4. Explore: the teacher's soft targets
#
# The figure of section 1 at any position of the first validation window and any temperature. Small
# temperatures give the student nearly a label; large ones nearly a uniform distribution whose small
# differences carry the ranking.

# %%
with torch.no_grad():
    window_logits = teacher(window[None])[0]


def _explore(position=63, T=2.0):
    t = soft_targets(window_logits[position], [1.0, T], top=8)
    plot_soft_targets(t, [vocab.itos[i] for i in t["ids"]],
                      context=vocab.decode(window[max(0, position - 29):position + 1].tolist()))
    plt.show()


_explore()

# %% tags=["nbval-ignore-output", "remove-output"]
interact(_explore, position=IntSlider(63, 0, 63), T=FloatSlider(value=2.0, min=0.5, max=10.0, step=0.5));

# %% [markdown]
# ## 5. Chain of thought: one step at a time
#
# The second half of the chapter asks what a model gains from writing before it answers. Large
# models answer multi-step problems better when their prompt or their training makes them write the
# intermediate steps first: a *scratchpad* {cite}`nye2021show`, or a *chain of thought*
# {cite}`wei2022chain`. The reason is mechanical: a transformer spends a fixed amount of computation
# per token, so a problem with more steps than its layers can take in one forward pass needs more
# tokens, and each written step becomes an input to the next.
#
# We can see this on a task small enough to train in minutes: **the parity of n bits** (is the
# number of ones odd?), written in a *tagged* format where every bit has a name:
#
# - direct answer: `a1b1c0d1=` → `#1.`
# - scratchpad: `a1b1c0d1=` → `a1:1,b1:0,c0:0,d1:1#1.`: each step copies one named bit from the
#   prompt and writes the parity so far.
#
# Parity is the classic hard case for a transformer answering in one step {cite}`hahn2020theoretical`:
# flipping any single bit flips the answer, so no bit can be ignored and no partial count helps. With
# the scratchpad each step is easy: find the bit named by the tag (the names make it a look-up by
# content rather than a count of positions), and combine two bits.
#
# The experiment (the shipped results file `11_cot.json`, rebuilt by `python -m roadmap_lib build
# 11-cot`): one model size (2 layers, 4 heads, 64 dimensions; its parameter count is printed in the
# live cell below), trained for 600
# steps of 32 fresh random problems of 2 to 6 bits, once on direct answers and once on
# scratchpads, three seeds each. Each model is scored by greedy decoding on the same 100 test
# problems per length: an answer counts if the text after `#` is the right bit.

# %%
cot_record = json.loads(data_path(cot.RESULTS).read_text(encoding="utf-8"))
n_bits = cot_record["n_digits"]
runs_direct = [r for r in cot_record["runs"] if not r["cot"]]
runs_cot = [r for r in cot_record["runs"] if r["cot"]]
acc_direct = [[r["accuracy"][str(n)] for n in n_bits] for r in runs_direct]
acc_cot = [[r["accuracy"][str(n)] for n in n_bits] for r in runs_cot]
d = {n: [r["accuracy"][str(n)] for r in runs_direct] for n in n_bits}
c = {n: [r["accuracy"][str(n)] for r in runs_cot] for n in n_bits}
print(f"{cot_record['task']}; {len(runs_direct)} seeds per format, {cot_record['test_per_length']} test "
      f"problems per length, {cot_record['train']['max_steps']} steps of {cot_record['batch']} problems")
lines = ["| bits | direct: mean (min-max) | scratchpad: mean (min-max) |", "|---:|---:|---:|"]
for n in n_bits:
    lines.append(f"| {n} | {sum(d[n]) / 3:.2f} ({min(d[n]):.2f}-{max(d[n]):.2f}) | "
                 f"{sum(c[n]) / 3:.2f} ({min(c[n]):.2f}-{max(c[n]):.2f}) |")
display(Markdown("\n".join(lines)))
plot_cot_accuracy(n_bits, {"direct answer": acc_direct, "scratchpad": acc_cot}, chance=0.5)
plt.show()

# %%
share_odd = {n: sum(reasoning.answer(bits, 2) for bits in cot_tests_) / len(cot_tests_)
             for n, cot_tests_ in cot.test_set().items()}
constant = [all(abs(r["accuracy"][str(n)] - share_odd[n]) < 1e-9 for n in n_bits)
            or all(abs(r["accuracy"][str(n)] - (1 - share_odd[n])) < 1e-9 for n in n_bits) for r in runs_direct]
print("share of odd-parity test problems:", share_odd)
print("direct models whose accuracy is exactly what one constant answer scores:", sum(constant), "of", len(constant))
assert all(abs(a - 0.5) <= 0.1 for row in acc_direct for a in row), "a direct model beat chance: rewrite the prose"
assert all(constant), "a direct model no longer answers one constant bit"
assert all(a >= 0.95 for row in acc_cot for a in row[:-1]), "a scratchpad model fell below 0.95 up to 5 bits"
assert min(sum(c[n]) / 3 - max(d[n]) for n in n_bits) > 0.3, "the scratchpad's lead shrank"
assert min(c[6]) < 0.8 < max(c[6]), "the 6-bit spread across seeds changed: rewrite the prose"

# %% [markdown]
# What the table says, for this regime (a 2-layer, 64-dimension GPT, 600 steps of 32 problems):
#
# - **Direct answers stay at chance at every length, even for two bits.** Each direct model scores
#   exactly what one constant answer would on the test set (printed above): after 600 steps it has
#   learned the format and nothing about the bits. Parity of even two bits in one step (their XOR)
#   is not learned here.
# - **With the scratchpad the same model size is right on at least 95 % of the problems up to five
#   bits in every seed.** At six bits, the longest chains it trained on, one seed of three is
#   clearly worse (the min-max band): the scratchpad does not make long problems free, it makes
#   each step small.
# - The difference is not in what the models saw: both were trained on the same problems, for the
#   same steps. It is in where the computation happens: in the direct format all of it must fit in
#   one forward pass at the `=`; in the scratchpad format it is spread over one token per step.
#
# **The shipped scratchpad model, live.** The seed-0 scratchpad model ships with the results; here
# it is re-scored on the same test set (greedy decoding is deterministic, so the numbers must be the
# table's), and its chains for the first two 6-bit test problems (the rule: no picking).

# %%
cot_model = cot.load_model(data_path("."))
cot_tests = cot.test_set()
live = cot.accuracy_by_length(cot_model, cot_tests)
kept = next(r for r in runs_cot if r["seed"] == cot_record["kept_model_seed"])
print(f"shipped scratchpad model: {count_parameters(cot_model):,} parameters; re-measured:", {n: live[n] for n in n_bits})
assert all(live[n] == kept["accuracy"][str(n)] for n in n_bits), "the shipped model does not match its record"
for bits, (text,) in zip(cot_tests[6][:2], cot.complete(cot_model, cot_tests[6][:2])):
    print(f"{reasoning.tagged_prompt(bits)}{text}   (true parity {reasoning.answer(bits, 2)})")

# %% [markdown]
# ## 6. Sampling many chains: self-consistency and a verifier
#
# A scratchpad model can also be *sampled*: at temperature 1 it writes different chains for the
# same problem, some wrong. Two ways to turn k sampled chains into one answer:
#
# - **self-consistency** {cite}`wang2023selfconsistency`: the majority answer
#   (`roadmap_lib.reasoning.majority_vote`); it needs nothing but the answers;
# - **best-of-n with a verifier** {cite}`cobbe2021training`: keep the first chain a verifier
#   accepts (`roadmap_lib.agents.best_of_n`). Ours, `reasoning.chain_is_consistent`, checks the
#   arithmetic a chain shows (each running parity follows from the previous one and the step's
#   bit, and the answer is the last one) and *not* the copying: a chain that copied a bit wrongly
#   and computed correctly from it passes.
#
# Both are measured in the artifact for each scratchpad model on the first 40 test problems of
# each length, k = 1, 3, 5, 9 chains, against the same model's greedy chain on those problems.

# %%
ks = cot_record["sc_ks"]


def _mean_over_lengths(d):
    return sum(d.values()) / len(d)


vote = [[_mean_over_lengths({n: r["vote"][str(n)][str(k)] for n in n_bits}) for k in ks] for r in runs_cot]
verified = [[_mean_over_lengths({n: r["verifier"][str(n)][str(k)] for n in n_bits}) for k in ks] for r in runs_cot]
greedy_sc = [_mean_over_lengths({n: r["greedy_sc_set"][str(n)] for n in n_bits}) for r in runs_cot]
plot_samples_curve(ks, {"majority vote of k chains": vote, "first of k chains the verifier accepts": verified},
                   baseline=sum(greedy_sc) / len(greedy_sc))
plt.show()
for name, rows in [("vote", vote), ("verifier", verified)]:
    print(f"{name:>8}: " + "  ".join(f"k={k}: {sum(r[i] for r in rows) / 3:.3f} ({min(r[i] for r in rows):.3f}-"
                                     f"{max(r[i] for r in rows):.3f})" for i, k in enumerate(ks)))
print(f"  greedy: {sum(greedy_sc) / 3:.3f} ({min(greedy_sc):.3f}-{max(greedy_sc):.3f}), accuracy averaged over 2-6 bits")

# %%
per_seed_6 = {r["seed"]: (r["greedy_sc_set"]["6"], r["vote"]["6"][str(ks[-1])], r["verifier"]["6"][str(ks[-1])])
              for r in runs_cot}
print(f"6 bits, per seed: (greedy, vote of {ks[-1]}, verifier over {ks[-1]}) =", per_seed_6)
worst = min(runs_cot, key=lambda r: r["greedy_sc_set"]["6"])
assert all(r["verifier"][str(n)][str(ks[-1])] >= r["greedy_sc_set"][str(n)] for r in runs_cot for n in n_bits)
assert all(v[i] >= 0.9 for v in vote for i in range(len(ks))), "a seed's vote fell below 0.9"
assert worst["verifier"]["6"][str(ks[-1])] - worst["vote"]["6"][str(ks[-1])] >= 0.2, "the verifier's lead moved"
assert all(worst["verifier"]["6"][str(k)] == 1.0 for k in ks if k >= 5), "the verifier no longer fixes 6 bits"
assert worst["vote"]["6"][str(ks[-1])] - worst["greedy_sc_set"]["6"] < 0.1, "the vote now helps the weak seed"

# %% [markdown]
# For two of the three seeds there is nothing to fix: their greedy chains are (nearly) all right,
# and neither method moves them. The interesting one is the seed whose greedy chains fail on a
# quarter of the 6-bit problems (printed above; 40 problems, so read these as counts of problems,
# not as precise rates):
#
# - **The majority vote barely helps it** (at six bits, not at all): when a model's mistake is systematic, most samples make
#   the same mistake, and voting elects it. Self-consistency helps when errors are independent
#   across samples, which these are not.
# - **The verifier fixes every one of its 6-bit problems once it may choose among 5 chains or
#   more**: the wrong chains break the arithmetic somewhere, and a chain that does not is, here, a
#   right chain. With a verifier that can be fooled (ours ignores the copying), that holds only as
#   long as the model's errors are in the part the verifier checks.
#
# Neither is an ordering across seeds (one seed of three shows the effect); the per-seed rule,
# asserted above, is that the verifier over 9 chains is never worse than the greedy chain.
#
# ## 7. A tool loop: the model decides what to compute, a calculator computes it
#
# In a ReAct-style loop {cite}`yao2023react` (or with Toolformer's calls {cite}`schick2023toolformer`)
# the model writes a request, the program around it executes the request, and the result is pasted
# into the text before the model continues. `roadmap_lib.agents.tool_loop(generate, prompt, tool,
# call_marker=..., stop=...)` is that loop, for any `generate(text) -> continuation` and any
# `tool(text) -> result`. Our scratchpad model needs no retraining for it: its steps already read
# `c0:` then a parity, so `:` is the call marker and the tool (`cot.calculator`) writes the parity
# after every `:` from the step's bit and the previous parity. The model is left with the look-ups:
# which name comes next, and which bit has it. One problem, traced (the rule: the first 5-bit test
# problem):

# %%
generate = cot.model_generator(cot_model)
bits = cot_tests[5][0]
trace = tool_loop(generate, reasoning.tagged_prompt(bits), cot.calculator, call_marker=":", stop=reasoning.END)
for seen, result in trace.calls:
    print(f"model wrote ...{seen[-8:]!r:>12}   calculator -> {result}")
print(f"final text: {trace.text}   (true parity {reasoning.answer(bits, 2)})")

# %% [markdown]
# Scored in the artifact on the first 20 test problems of each length, for each seed's scratchpad
# model, against the same model's greedy chains on those problems:

# %%
tool_acc = [_mean_over_lengths({n: r["tool"][str(n)] for n in n_bits}) for r in runs_cot]
alone_acc = [_mean_over_lengths({n: r["greedy_tool_set"][str(n)] for n in n_bits}) for r in runs_cot]
for r, t, a in zip(runs_cot, tool_acc, alone_acc):
    print(f"seed {r['seed']}: model alone {a:.3f}, with the calculator {t:.3f}")

# %%
assert trace.finished and reasoning.parse_answer(trace.completion) == reasoning.answer(bits, 2)
assert all(t >= a for t, a in zip(tool_acc, alone_acc)), "the calculator made a model worse"
assert min(tool_acc) == 1.0 and min(alone_acc) < 0.97, "the tool loop's effect changed: rewrite the prose"

# %% [markdown]
# With the calculator every seed's scratchpad model is right on all 100 problems of its tool set
# (20 per length), including the seed that fails alone on a quarter of its 6-bit chains: its errors
# were in the parities, not in the look-ups, and the calculator took the parities over. A tool fixes
# exactly the part of the chain it computes; a model that copied the wrong bit would hand the
# calculator the wrong operand, and the answer would be wrong with perfect arithmetic. That is the
# general shape of tool use: the model still has to decide *what* to compute.

# %% [markdown]
# ## 8. Few-shot prompting: a task defined only by its examples
#
# GPT-3 made *few-shot prompting* famous {cite}`brown2020gpt3`: put a few solved examples (the
# *demonstrations*, or *shots*) in the prompt, then the question, and the model answers in kind,
# with no gradient step. Two questions follow, and a tiny model can answer both for a toy task:
# how does accuracy grow with the number of shots, and what do the demonstrations actually teach?
# Min et al. {cite}`min2022rethinking` found that, for large pretrained models on classification
# tasks, replacing the demonstrations' labels with *random* labels barely hurt: the demonstrations
# taught the format and the label space more than the mapping. Pan et al. {cite}`pan2023incontext`
# separate the two things a prompt can do: *task recognition* (which task I already know is this?)
# and *task learning* (a mapping seen only in the prompt).
#
# **The task** (`fewshot` in this chapter's package). An episode is a few 4-letter words over
# `a`-`f` (distinct letters) and their images under one mapping, written `x>y;` each. The mapping
# comes from one of four families, a quarter of the episodes each:
#
# - three fixed functions, the same in every episode: `reverse`, `sort` (letters in alphabetical
#   order) and `shift` (each letter one place along, `f` to `a`): the demonstrations can only say
#   *which one*: task recognition;
# - `substitute`: a random permutation of the six letters, drawn per episode: only the
#   demonstrations say where each letter goes: task learning.
#
# A GPT (2 layers, 64 dimensions) is trained on fresh episodes of five examples with the loss on
# every output, so it trains with 0 to 4 shots at once. Then it is prompted with k demonstrations and a
# query and scored by exact match of its greedy answer, on 320 fixed test episodes (80 per family).
# Three seeds, in the shipped results file `11_fewshot.json` (rebuilt by `python -m roadmap_lib
# build 11-fewshot`). Here are the test episodes' first prompts, one per family (the rule: the first
# test episode of each family, with two shots):

# %%
fs_record = json.loads(data_path(fewshot.RESULTS).read_text(encoding="utf-8"))
fs_tests = fewshot.test_set()
for t in fs_tests[:len(fewshot.FAMILIES)]:
    print(f"{t['mapping']['family']:>10}: {fewshot.format_prompt(t['demos'][:2], t['query'])}   -> {t['answer']}")

# %% [markdown]
# **The ceiling.** How well could any learner do? The *ideal learner* knows the four families and
# their priors, keeps every mapping consistent with the demonstrations, and answers the output with
# the most posterior probability (`fewshot.ideal_accuracy`). With no shot it can only bet on one
# family; one shot rules out almost every mapping except for the substitutions (one example pins
# only four of the six letters), and two shots nearly settle everything.
#
# **The measurement**: accuracy against the number of shots for the three seeds, with true
# demonstrations and with *random labels* (the same inputs, each output replaced by a random word
# of 4 distinct letters: the format intact, the mapping destroyed):

# %%
fs_runs = fs_record["runs"]
fs_shots = list(range(fs_record["max_shots"] + 1))
fs_true = [[r["true"][str(k)]["all"] for k in fs_shots] for r in fs_runs]
fs_random = [[None] + [r["random"][str(k)]["all"] for k in fs_shots[1:]] for r in fs_runs]
fs_ideal = [fs_record["ideal"][str(k)] for k in fs_shots]
plot_shots(fs_shots, {"true demonstrations": fs_true, "random labels": fs_random}, ideal=fs_ideal,
           chance=1 / len(fewshot.FAMILIES))
plt.show()


def _fs_mean(key, k, family="all"):
    return sum(r[key][str(k)][family] for r in fs_runs) / len(fs_runs)


lines = ["| family | 0 shots | 1 shot | 2 shots | 4 shots | 4 random-label shots |", "|---|---:|---:|---:|---:|---:|"]
for fam in (*fewshot.FAMILIES, "all"):
    lines.append(f"| {fam} | " + " | ".join(f"{_fs_mean('true', k, fam):.2f}" for k in (0, 1, 2, 4))
                 + f" | {_fs_mean('random', 4, fam):.2f} |")
display(Markdown("\n".join(lines)))
print("ideal learner:", {k: round(v, 3) for k, v in zip(fs_shots, fs_ideal)})
print("per seed, true demonstrations:", [[round(a, 3) for a in row] for row in fs_true])
print("training time per seed (s, on a shared machine):", [r["train_seconds"] for r in fs_runs])

# %%
def _fs_per_seed(key, k, family="all"):
    return [r[key][str(k)][family] for r in fs_runs]


def _fs_gap(a, b):
    """mean(a) - mean(b), and the noise: the larger of the two spreads across seeds."""
    return sum(a) / len(a) - sum(b) / len(b), max(max(a) - min(a), max(b) - min(b))


for name, a, b in [("1 shot - 0 shots", _fs_per_seed("true", 1), _fs_per_seed("true", 0)),
                   ("4 shots - 1 shot", _fs_per_seed("true", 4), _fs_per_seed("true", 1)),
                   ("4 true - 4 random-label shots", _fs_per_seed("true", 4), _fs_per_seed("random", 4)),
                   ("4 random-label shots - 0 shots", _fs_per_seed("random", 4), _fs_per_seed("true", 0))]:
    gap, noise = _fs_gap(a, b)
    print(f"{name:>31}: {gap:+.3f} (noise {noise:.3f})")

# %%
gap_first, noise_first = _fs_gap(_fs_per_seed("true", 1), _fs_per_seed("true", 0))
gap_more, noise_more = _fs_gap(_fs_per_seed("true", 4), _fs_per_seed("true", 1))
gap_labels, noise_labels = _fs_gap(_fs_per_seed("true", 4), _fs_per_seed("random", 4))
gap_random, noise_random = _fs_gap(_fs_per_seed("random", 4), _fs_per_seed("true", 0))
assert gap_first > 3 * noise_first and 0.15 < gap_first < 0.3, "the first demonstration's gain moved"
assert abs(gap_more) < noise_more, "more shots now clearly help (or hurt): rewrite the prose"
assert gap_labels > 2 * noise_labels, "random labels no longer clearly hurt"
assert abs(gap_random) < noise_random, "random labels are now clearly above or below zero shots"
assert max(fs_true[i][1] for i in range(3)) < fs_ideal[1] - 0.3, "a seed came close to the ideal learner"
assert min(_fs_per_seed("true", 1, "sort")) > 0.95 and max(_fs_per_seed("random", 4, "sort")) < 0.1
assert min(_fs_per_seed("true", 0, "sort")) > 0.3, "zero-shot sort changed: rewrite the prose"
assert all(r[key][str(k)]["substitute"] < 1.5 / 80 for r in fs_runs for key in ("true", "random") for k in r[key]), \
    "a seed learned substitutions"
gap_reverse, noise_reverse = _fs_gap(_fs_per_seed("true", 4, "reverse"), _fs_per_seed("random", 4, "reverse"))
assert abs(gap_reverse) < noise_reverse, "reverse now depends on the labels: rewrite the prose"

# %% [markdown]
# What the figure and the table say, for this regime (a 2-layer, 64-wide GPT, 550 steps of 32
# episodes, three seeds; 320 test episodes):
#
# - **The first demonstration is worth a lot; the next three nothing measurable.** Accuracy roughly
#   doubles from zero to one shot, far beyond the spread across seeds, and then stays flat: from one
#   to four shots the change is within the noise. The ideal learner is nearly perfect from two
#   shots; the model stays far below it.
# - **What it learned is recognition of one family, and nothing of task learning.** `sort` is
#   recognised from one demonstration in every seed (its outputs are visibly in order). `reverse`
#   and `shift` are partly right with true demonstrations *and with random labels*: the model
#   guesses between them when the demonstrations do not look sorted. The random substitutions,
#   which can only be learned from the demonstrations, are answered right in at most one episode
#   of 80 in any setting: after 550 steps this model shows no sign of a look-up that copies a
#   letter's image out of the prompt (the induction-head style copying {cite}`olsson2022context`
#   that learning a new mapping in context needs).
# - **Random labels take the gain away completely**: with four random-label demonstrations the
#   model is back at its zero-shot accuracy (no difference), and on `sort` episodes it falls far
#   *below* zero shots, because random words do not look sorted. For this model the demonstrations
#   carried the mapping (which family), not the format, which it knew from training. Min et al.'s
#   models, whose tasks and label words were familiar from pretraining, behaved the other way; the
#   difference is what the demonstrations had left to teach. This is a toy with four families,
#   character-level, 550 steps: it shows how to measure the question, not how large models behave.

# %% [markdown]
# **How many demonstrations must be right?** At four shots, a mix: 0 to 4 of the demonstrations
# true, the others with random labels (the same test episodes; which ones are true is drawn with a
# fixed seed):

# %%
mix = fs_record["label_mix"]
mix_acc = [[r["mix"][str(f)] for f in mix] for r in fs_runs]
print("true demonstrations out of 4:", [round(f * fs_record["mix_shots"]) for f in mix])
mix_mean = [sum(row[i] for row in mix_acc) / 3 for i in range(len(mix))]
print("accuracy, mean over seeds:   ", [round(m, 3) for m in mix_mean])
print("per seed:", [[round(a, 3) for a in row] for row in mix_acc])
assert all(b >= a for a, b in itertools.pairwise(mix_mean)), "accuracy no longer grows with the true share"
assert mix_mean[-1] - mix_mean[0] > 2 * max(max(c) - min(c) for c in zip(*mix_acc))
half_true = [row[mix.index(0.5)] for row in mix_acc]
assert abs(sum(half_true) / 3 - sum(_fs_per_seed("true", 0)) / 3) < max(half_true) - min(half_true)
assert mix_mean[-1] - mix_mean[-2] == max(b - a for a, b in itertools.pairwise(mix_mean))

# %% [markdown]
# On average over the seeds, each true demonstration added to the mix raises the accuracy or keeps
# it, and the last one (four of four true) adds the most. With two of the four true the model is
# where it was with no demonstration at all (the difference is within the seeds' spread): a few
# contradicting examples cancel what the right ones showed.

# %% [markdown]
# **Re-measured here.** The seed-0 model ships with the results
# (`zoo/gpt-char-fewshot.safetensors`); its accuracy by number of shots is measured again now on the
# same 320 episodes (one forward pass per setting: since every answer has four letters, the greedy
# answer is right exactly when the argmax is right at each of the four answer positions with the
# right letters fed in, which
# `tests/chapters/test_ch11_fewshot.py` checks against real greedy decoding). And the first 30
# training steps of seed 0 are run again, live: the same seed must give the same losses.

# %%
fs_model = fewshot.load_model(data_path("."))
fs_kept = next(r for r in fs_runs if r["seed"] == fs_record["kept_model_seed"])
fs_live = {k: fewshot.accuracy(fs_model, fs_tests, k)["all"] for k in fs_shots}
fs_live_random = fewshot.accuracy(fs_model, fs_tests, 4, "random")["all"]
print(f"shipped model ({count_parameters(fs_model):,} parameters), re-measured:", {k: round(v, 4) for k, v in fs_live.items()},
      f"random labels, 4 shots: {fs_live_random:.4f}")
assert all(abs(fs_live[k] - fs_kept["true"][str(k)]["all"]) <= 1.5 / len(fs_tests) for k in fs_shots)
assert abs(fs_live_random - fs_kept["random"]["4"]["all"]) <= 1.5 / len(fs_tests)
rerun = fewshot.short_rerun(fs_record["short_rerun"]["seed"], fs_record["short_rerun"]["steps"])
recorded = fs_record["short_rerun"]
print(f"{rerun['steps']} steps re-run: final training loss {rerun['losses'][-1]:.4f} (recorded {recorded['losses'][-1]:.4f}), "
      f"held-out loss {rerun['held_out_loss']:.4f} (recorded {recorded['held_out_loss']:.4f})")
assert max(abs(a - b) for a, b in zip(rerun["losses"], recorded["losses"])) < 1e-3
assert abs(rerun["held_out_loss"] - recorded["held_out_loss"]) < 1e-3

# %% [markdown]
# ## 9. Tree of thoughts: search over partial chains
#
# Sampling k whole chains (section 6) spends its tokens blindly: a chain that goes wrong at its
# first step is still written to the end. *Tree of thoughts* {cite}`yao2023tree` searches instead:
# the model proposes a few candidate next steps for each partial solution, an evaluator scores or
# rejects them, and only the best partial solutions are extended. Its breadth-first version is a
# beam search over *steps* rather than tokens:
#
# - **proposer**: our scratchpad model samples the next step of a partial chain (`b1:0,`, up to the
#   next comma, or the answer at the end), `branching` times for each state;
# - **evaluator**: a step whose arithmetic is wrong is pruned (`reasoning.chain_prefix_is_consistent`,
#   the section-6 verifier applied to a partial chain); the survivors are ranked by the model's
#   log-probability of the chain so far;
# - **search**: `reasoning.tree_search(root, propose, value, is_finished, beam_width=...)` keeps the
#   `beam_width` best partial chains at each depth and answers with the best finished one.
#   `tests/test_reasoning_search.py` checks it on toy trees with a known optimum: a beam as wide as
#   the tree is exhaustive search, a beam of one is greedy search on the value, and a trap that greedy
#   falls into is avoided by a beam of two.
#
# **Matched compute.** Every method is charged for the tokens the model *generates*: every sampled
# token of every proposal, kept or pruned. (Re-reading the prompt and the partial chain is not
# charged: a prefix cache shares it, and it is the same for every method that extends a chain.) The
# baselines: the greedy chain; and n chains sampled at the same temperature, answered by the first
# one the verifier accepts or by majority vote.
#
# **The regime.** The shipped seed-0 scratchpad model is nearly always right when decoding greedily,
# so to have something to search over, the proposer samples at **temperature 1.6**: a deliberately
# noisy proposer, whose single sampled chains are often wrong. The problems are the first 40 six-bit
# test problems; three sampling seeds (the model is fixed); the shipped results file `11_tot.json`
# (`python -m roadmap_lib build 11-tot`). First, one search, traced (the rule: the first problem,
# sampling seed 0, beam 2 and branching 2):

# %%
tot_problem = tot.problems(1)[0]
trace_search = tot.search(cot_model, tot_problem, 2, 2, generator=torch.Generator().manual_seed(0))
print(f"{reasoning.tagged_prompt(tot_problem)}{trace_search['chain']}   (true parity {reasoning.answer(tot_problem, 2)})")
print(f"{trace_search['expansions']} partial chains expanded, {trace_search['tokens']} tokens generated")

# %%
tot_record = json.loads(data_path(tot.RESULTS).read_text(encoding="utf-8"))
tot_runs = tot_record["runs"]
ns = tot_record["sample_ns"]
searches = [f"{w}x{b}" for w, b in tot_record["searches"]]


def _tot_tokens(kind, key):
    return sum(r[kind][key]["tokens"] for r in tot_runs) / len(tot_runs)


order = sorted(searches, key=lambda s: _tot_tokens("search", s))
plot_compute({
    "n sampled chains, first the verifier accepts": ([_tot_tokens("sample", str(n)) for n in ns],
                                                     [[r["sample"][str(n)]["verifier"] for n in ns] for r in tot_runs]),
    "n sampled chains, majority vote": ([_tot_tokens("sample", str(n)) for n in ns],
                                        [[r["sample"][str(n)]["vote"] for n in ns] for r in tot_runs]),
    "tree search (beam x branching)": ([_tot_tokens("search", s) for s in order],
                                       [[r["search"][s]["accuracy"] for s in order] for r in tot_runs]),
}, greedy=(tot_record["greedy"]["tokens"], tot_record["greedy"]["accuracy"]))
plt.show()
lines = ["| method | generated tokens per problem | accuracy, mean (min-max over 3 seeds) |", "|---|---:|---:|"]
lines.append(f"| greedy chain | {tot_record['greedy']['tokens']:.0f} | {tot_record['greedy']['accuracy']:.3f} (deterministic) |")
for n in ns:
    acc = [r["sample"][str(n)]["verifier"] for r in tot_runs]
    lines.append(f"| {n} sampled chains + verifier | {_tot_tokens('sample', str(n)):.0f} | "
                 f"{sum(acc) / 3:.3f} ({min(acc):.3f}-{max(acc):.3f}) |")
for s in order:
    acc = [r["search"][s]["accuracy"] for r in tot_runs]
    lines.append(f"| tree search {s} | {_tot_tokens('search', s):.0f} | {sum(acc) / 3:.3f} ({min(acc):.3f}-{max(acc):.3f}) |")
display(Markdown("\n".join(lines)))

# %%
def _tot_acc(kind, key, metric="accuracy"):
    return [r[kind][key][metric] for r in tot_runs]


def _spread(xs):
    return max(xs) - min(xs)


small_search, small_sample = _tot_acc("search", "1x2"), _tot_acc("sample", "2", "verifier")
big_search, big_sample = _tot_acc("search", "2x4"), _tot_acc("sample", "8", "verifier")
gap_small = sum(small_search) / 3 - sum(small_sample) / 3
noise_small = max(_spread(small_search), _spread(small_sample))
print(f"~{_tot_tokens('search', '1x2'):.0f} tokens: search 1x2 - 2 chains + verifier = {gap_small:+.3f} (noise {noise_small:.3f})")
print(f"search 2x4: {sum(big_search) / 3:.3f} with {_tot_tokens('search', '2x4'):.0f} tokens; "
      f"8 chains + verifier: {sum(big_sample) / 3:.3f} with {_tot_tokens('sample', '8'):.0f} tokens")
single = _tot_acc("sample", "1", "verifier")
assert tot_record["greedy"]["accuracy"] - max(single) > 0.2, "sampled single chains came close to greedy"
assert 0 < gap_small < noise_small, "the search's lead at ~60 tokens is no longer within the noise: rewrite"
assert sum(big_search) / 3 >= sum(big_sample) / 3 and _tot_tokens("search", "2x4") < 0.7 * _tot_tokens("sample", "8")
for s in ("2x4", "4x4"):
    widest = _tot_acc("search", s)
    assert abs(sum(widest) / 3 - tot_record["greedy"]["accuracy"]) < _spread(widest), \
        "the widest searches now clearly beat greedy: rewrite the prose"

# %% [markdown]
# What the figure says, for this regime (one 2-layer scratchpad model sampling at temperature 1.6,
# 40 six-bit parity problems, three sampling seeds):
#
# - **At about 60 generated tokens** (a search of beam 1 and branching 2, or two sampled chains) the
#   search is ahead on the mean, but by less than the seed-to-seed spread: no difference established.
# - **With about 140 tokens** (beam 2, branching 4) the search is at least as accurate on average as
#   eight sampled chains with the verifier, which cost about 230 tokens. This is where the search
#   pays: a wrong step is pruned when it is written, and the tokens go to re-proposing that step
#   instead of finishing a chain that is already wrong.
# - **The greedy chain is the cheapest good answer here**: right on more problems than any single
#   sampled chain, with the fewest tokens, and the widest searches are not clearly better (their
#   lead is within their spread). The search only repairs what sampling broke. Tree search earns its
#   compute when the model's single best guess is unreliable (Yao et al.'s Game of 24, where GPT-4's
#   chain of thought solved 4 % of the games); with a model whose greedy chain is right, it is a
#   cost. And the verifier limits it as in section 6: a step that copies the wrong bit with the right
#   arithmetic passes, so no amount of search fixes a copying error the proposer makes every time.
#
# **Re-measured here**: a small piece of the experiment (seed 0, the first 8 problems, search 1x2 and
# two sampled chains) re-run now, and the greedy accuracy over all 40 problems; sampling with a seeded
# generator repeats itself on the same software, so the numbers must be the record's.

# %%
tot_live = tot.live_check(cot_model)
greedy_live = tot.greedy_accuracy(cot_model)
print("re-measured:", tot_live, f"greedy {greedy_live:.3f}")
print("recorded:   ", tot_record["live"], f"greedy {tot_record['greedy']['accuracy']:.3f}")
assert greedy_live == tot_record["greedy"]["accuracy"]
assert abs(tot_live["search_1x2"]["accuracy"] - tot_record["live"]["search_1x2"]["accuracy"]) <= 1 / 8
assert abs(tot_live["sample_2"]["verifier"] - tot_record["live"]["sample_2"]["verifier"]) <= 1 / 8

# %% [markdown]
# ## Summary
#
# - A teacher's next-token distribution ranks every wrong answer; soft targets at a temperature
#   $T$ hand that ranking to a student, and the $T^2$ factor keeps the gradient's scale fixed as
#   $T$ changes (derived, and measured on random logits: from $T = 1$ to 16 the scaled gradient's
#   norm moved by a factor 1.23, the unscaled one fell 316-fold).
# - Chapter 07's 819k-parameter character GPT as teacher, a 113k-parameter student, 400 steps, three
#   seeds: soft targets ended 0.05 nats per character below training from scratch, within the
#   seed-to-seed noise (no difference established); training on the teacher's greedy text was far
#   worse, because greedy text from a character model is repetitive. The soft-target student ships
#   as `gpt-char-distilled`.
# - The loss is `F.kl_div(student log-probs, teacher log-probs, log_target=True,
#   reduction="batchmean")` times $T^2$; `"mean"` silently divides by the vocabulary size.
# - Chain of thought on the parity of 2 to 6 bits, one 2-layer GPT size, 600 steps, three seeds:
#   answering directly stayed at chance at every length (each model answered one constant bit);
#   with a scratchpad that copies each bit and writes the parity so far, every seed was right on at
#   least 95 % of the problems up to five bits, and two of three at six.
# - Sampling chains: a majority vote barely helped the one weak seed (its errors are systematic);
#   best-of-n with a verifier of the arithmetic, and a tool loop in which a calculator writes each
#   parity (`roadmap_lib.agents`), fixed all of its 6-bit failures, because its errors were in the
#   arithmetic they check or take over. A tool fixes exactly what it computes.
# - Few-shot prompting on a toy mixture of four word mappings defined only by their examples, a
#   2-layer GPT, 550 steps, three seeds: the first demonstration roughly doubled the accuracy, later
#   ones added nothing measurable, and the model stayed far below the ideal learner; it recognised
#   one family (`sort`) from one example and never learned a random substitution in context.
#   Random labels took the whole gain away (back to zero-shot accuracy): here the demonstrations
#   carried the mapping, not the format.
# - Tree of thoughts (`reasoning.tree_search`, a beam over partial chains pruned by the verifier)
#   with the scratchpad model sampling at temperature 1.6, on 40 six-bit problems, three sampling
#   seeds, compute counted in generated tokens: at about 60 tokens per problem its lead over sampled
#   chains is within the noise; a beam of 2 with 4 proposals per state (about 140 tokens) was at
#   least as accurate as 8 sampled chains with the verifier (about 230). The greedy chain (32 tokens)
#   was as good as any of them: search repairs what sampling breaks, and pays only where the
#   model's single best guess is unreliable.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-11-soft
# :nonumber:
# ```
# **Exercise 11.1 (the soft-target loss).** Write `my_soft_target_loss(student_logits,
# teacher_logits, T)` for logits of shape `(..., classes)`: $T^2\, \mathrm{KL}(p_T \| q_T)$ with
# $p_T$ the teacher's and $q_T$ the student's softmax at temperature `T`, averaged over every
# position (every leading dimension). Write it from `log_softmax`, without `F.kl_div`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Flatten the leading dimensions into rows first. Both distributions are softened by the same `T`;
# the KL is a sum over classes and a mean over rows, and which distribution weighs the log-ratio
# decides its direction.
# ```

# %% [markdown]
# ```{solution-start} ex-11-soft
# :class: dropdown
# ```

# %%
def my_soft_target_loss(student_logits, teacher_logits, T):
    ### BEGIN SOLUTION
    s = student_logits.reshape(-1, student_logits.shape[-1])
    t = teacher_logits.reshape(-1, teacher_logits.shape[-1])
    log_p, log_q = F.log_softmax(t / T, -1), F.log_softmax(s / T, -1)
    return T * T * (log_p.exp() * (log_p - log_q)).sum(-1).mean()
    ### END SOLUTION


# %% [markdown]
# The teacher's probabilities weigh the log-ratio (KL from the teacher to the student), the sum runs
# over classes and the mean over positions, and the $T^2$ keeps the gradient's scale (section 2).
#
# ```{solution-end}
# ```

# %%
check_soft_target_loss(my_soft_target_loss)

# %% [markdown]
# ```{exercise-start}
# :label: ex-11-predict
# :nonumber:
# ```
# **Exercise 11.2 (predict, then measure: the gradient without $T^2$).** On random unit-scale
# logits (64 rows, 32 classes), the loss *without* the $T^2$ factor is differentiated with respect
# to the student's logits at $T = 2$ and at $T = 8$. Before measuring, predict the ratio
# $\|\nabla_{T=2}\| / \|\nabla_{T=8}\|$ and return it from `predict_ratio()`. Then measure it with
# `gradient_norms` (from this chapter's `analysis` module, imported above) in `measure_ratio()`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Section 2's last approximation says how the gradient depends on $T$ once both distributions are
# close to uniform. `gradient_norms([2.0, 8.0])["unscaled"]` gives the two norms.
# ```

# %% [markdown]
# ```{solution-start} ex-11-predict
# :class: dropdown
# ```

# %%
def predict_ratio():
    """Your prediction of |gradient at T=2| / |gradient at T=8| without the T² factor."""
    ### BEGIN SOLUTION
    return (8 / 2) ** 2  # the gradient falls like 1/T^2
    ### END SOLUTION


def measure_ratio():
    """The same ratio, measured with gradient_norms."""
    ### BEGIN SOLUTION
    unscaled = gradient_norms([2.0, 8.0])["unscaled"]
    return unscaled[0] / unscaled[1]
    ### END SOLUTION


predicted_ratio, measured_ratio = predict_ratio(), measure_ratio()
print(f"predicted {predicted_ratio:.1f}, measured {measured_ratio:.1f}")

# %% [markdown]
# The measurement is a little above $16$: at $T = 2$ the distributions are not yet close enough to
# uniform for the $1/T^2$ law to be exact; the figure of section 2 shows the law settling in.
#
# ```{solution-end}
# ```

# %%
check_gradient_ratio(predicted_ratio, measured_ratio)

# %% [markdown]
# ```{exercise-start}
# :label: ex-11-agree
# :nonumber:
# ```
# **Exercise 11.3 (does the student imitate the teacher?).** A lower loss is one measure of a
# student; *fidelity* is another {cite}`stanton2021does`: how often it makes the teacher's choice.
# Write `student_teacher_agreement(student_logits, teacher_logits, labels)` for logits
# `(batch, seq, vocab)` and labels `(batch, seq)`: the fraction of positions whose label is not
# -100 where the student's most likely token is the teacher's most likely token. The cell after the
# check measures it on our students.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Compare two argmaxes, over the vocabulary; keep only the positions that have a label.
# ```

# %% [markdown]
# ```{solution-start} ex-11-agree
# :class: dropdown
# ```

# %%
def student_teacher_agreement(student_logits, teacher_logits, labels):
    ### BEGIN SOLUTION
    keep = labels != -100
    return (student_logits.argmax(-1) == teacher_logits.argmax(-1))[keep].float().mean()
    ### END SOLUTION


# %% [markdown]
# The labels are not compared with anything: they only say where there is something to predict.
# Comparing the student's choice with the labels instead would be its accuracy.
#
# ```{solution-end}
# ```

# %%
check_agreement(student_teacher_agreement)

# %%
x_val, y_val = data.get_batch("val", torch.Generator().manual_seed(1), batch_size=12)
with torch.no_grad():
    t_val, s_val = teacher(x_val), student(x_val)
agree = float(student_teacher_agreement(s_val, t_val, y_val))
accuracy = float((s_val.argmax(-1) == y_val).float().mean())
print(f"the shipped student makes the teacher's choice at {agree:.1%} of 768 validation positions; "
      f"its own accuracy is {accuracy:.1%}")


# %% [markdown]
# ```{exercise-start}
# :label: ex-11-vote
# :nonumber:
# ```
# **Exercise 11.4 (self-consistency by hand).** Write `my_majority_vote(answers)` for a `(problems,
# k)` long tensor of the answers parsed from k sampled chains per problem, with -1 where a chain had
# no well-formed answer. Return the `(problems,)` majority answers: -1 is not a vote, a tie goes to
# the answer that was sampled first, and a problem whose chains all failed gets -1.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Work row by row with Python lists. `torch.mode` is tempting, but it counts the -1s and breaks ties
# towards the smallest value.
# ```

# %% [markdown]
# ```{solution-start} ex-11-vote
# :class: dropdown
# ```

# %%
def my_majority_vote(answers):
    ### BEGIN SOLUTION
    out = []
    for row in answers.tolist():
        votes = [a for a in row if a != -1]
        if not votes:
            out.append(-1)
            continue
        best = max(votes.count(a) for a in votes)
        out.append(next(a for a in votes if votes.count(a) == best))
    return torch.tensor(out)
    ### END SOLUTION


# %% [markdown]
# The first answer (in sampling order) that reaches the largest count wins, which is
# `reasoning.majority_vote`'s rule. With only two possible answers, as in parity, an odd k never
# ties among well-formed answers; the failed chains are what make ties possible.
#
# ```{solution-end}
# ```

# %%
check_majority_vote(my_majority_vote)


# %% [markdown]
# ```{exercise-start}
# :label: ex-11-families
# :nonumber:
# ```
# **Exercise 11.5 (which families fit the demonstrations?).** The ideal learner of section 8 starts
# by ruling out every mapping the demonstrations contradict. Write `families_consistent(demos)` for
# a list of `(x, y)` pairs of 4-letter words: the list, in the order `reverse`, `sort`, `shift`,
# `substitute`, of the families that have a mapping sending every `x` to its `y`. Write the three
# fixed functions yourself (section 8 describes them); for `substitute`, any permutation of the
# letters is possible.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# A fixed function fits when it maps every demonstration's input to its output. A permutation fits
# when the letter pairs the demonstrations line up, position by position, never contradict a
# one-to-one map, in either direction. And think about what no demonstration at all rules out.
# ```

# %% [markdown]
# ```{solution-start} ex-11-families
# :class: dropdown
# ```

# %%
def families_consistent(demos):
    ### BEGIN SOLUTION
    letters = "abcdef"
    fixed = {"reverse": lambda w: w[::-1], "sort": lambda w: "".join(sorted(w)),
             "shift": lambda w: "".join(letters[(letters.index(c) + 1) % 6] for c in w)}
    out = [name for name, f in fixed.items() if all(f(x) == y for x, y in demos)]
    forward, backward = {}, {}
    if all(forward.setdefault(a, b) == b and backward.setdefault(b, a) == a
           for x, y in demos for a, b in zip(x, y)):
        out.append("substitute")
    return out
    ### END SOLUTION


# %% [markdown]
# With no demonstration every family fits (the zero-shot learner can only bet); a substitution is
# contradicted only when one letter is sent to two letters or two letters to one. The fixed
# functions are all permutations too, so `substitute` fits whenever one of them does: one
# demonstration never tells "reverse" from "a substitution that happens to look like reversal".
#
# ```{solution-end}
# ```

# %%
check_families_consistent(families_consistent)

# %% [markdown]
# The function at work on the test episodes: how many families survive one true demonstration, and
# how many survive four random-label demonstrations.

# %%
after_one = [len(families_consistent(t["demos"][:1])) for t in fs_tests]
random_four = [len(families_consistent(t["random_demos"][:4])) for t in fs_tests]
print(f"one true demonstration leaves {sum(after_one) / len(after_one):.2f} families on average "
      f"(always at least the true one: {min(after_one) >= 1})")
print(f"four random-label demonstrations fit no family in {sum(n == 0 for n in random_four) / len(random_four):.0%} "
      "of the episodes")

# %% [markdown]
# ```{exercise-start}
# :label: ex-11-beam
# :nonumber:
# ```
# **Exercise 11.6 (one step of the search).** The heart of `reasoning.tree_search` is the choice of
# the next frontier. Write `next_frontier(children, values, beam_width)`: given the proposed
# children in the order they were proposed and their values (a float, larger is better, or `None`
# for a child the verifier rejected), return the list of at most `beam_width` children to keep,
# best first; a tie goes to the child proposed first.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Drop the rejected children before ranking, not after. Python's `sorted` is stable, so a key
# that ignores the position keeps equal values in their proposed order.
# ```

# %% [markdown]
# ```{solution-start} ex-11-beam
# :class: dropdown
# ```

# %%
def next_frontier(children, values, beam_width):
    ### BEGIN SOLUTION
    kept = [(v, c) for c, v in zip(children, values) if v is not None]
    kept = sorted(kept, key=lambda vc: -vc[0])  # stable: ties stay in proposed order
    return [c for _, c in kept[:beam_width]]
    ### END SOLUTION


# %% [markdown]
# A log-probability is larger for a likelier chain, so the sort is descending; a rejected child must
# never take a place in the beam, even when fewer than `beam_width` children survive.
#
# ```{solution-end}
# ```

# %%
check_next_frontier(next_frontier)
