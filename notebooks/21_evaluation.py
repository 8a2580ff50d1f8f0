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
# # 21. Evaluation: metrics, benchmarks, and how much to trust a score
#
# **What you will learn**
#
# - what BLEU {cite}`papineni2002bleu`, chrF {cite}`popovic2015chrf`, ROUGE {cite}`lin2004rouge`,
#   SQuAD's exact match and F1 {cite}`rajpurkar2016squad` and micro/macro/weighted F1 each reward,
#   with our implementations checked equal to sacrebleu {cite}`post2018sacrebleu`, rouge-score and
#   scikit-learn;
# - how multiple-choice benchmarks score a language model by log-likelihood, as
#   lm-evaluation-harness does {cite}`gao2021harness`, and why `acc_norm` exists
#   {cite}`zellers2019hellaswag`, on a 4-choice benchmark built from the Jargon File and scored with
#   the zoo's character GPT and three variants of it;
# - how sure a score is: bootstrap confidence intervals {cite}`efron1993bootstrap`, paired for
#   comparisons {cite}`koehn2004significance`, and calibration (expected calibration error,
#   {cite}`guo2017calibration`);
# - what lies beyond one accuracy number: contamination found by n-gram overlap and what it does to a
#   score {cite}`brown2020gpt3,sainz2023contamination`; perturbed versions of a task
#   {cite}`jia2017adversarial,ribeiro2020checklist`; grading reasoning paths rather than final answers
#   {cite}`uesato2022process,lightman2024verify`; and a judge's position bias, found by swapping
#   the answers {cite}`zheng2023judging,wang2024fair`.
#
# **What you need**: the char GPT of chapter 07 and its perplexity; BLEU from chapter 05; the draft
# model of chapter 15 and round-to-nearest quantisation of chapter 14 (all loaded or rebuilt from the
# zoo).
#
# **Run time**: about 20 s on a laptop CPU, most of it re-scoring 40 benchmark items live. The full
# sweep (4 models, 3 seeds, perturbations, leaked-data fine-tuning, the judge) is the zoo artifact
# `21-evaluation` (`python -m roadmap_lib build 21-evaluation`; its build time is in the results
# file, printed below).

# %%
# %matplotlib inline
import math
import random

import matplotlib.pyplot as plt
import sacrebleu
import torch
from IPython.display import Markdown, display
from ipywidgets import FloatSlider, interact
from rouge_score import rouge_scorer
from sklearn.metrics import precision_recall_fscore_support

from roadmap_lib import metrics as M
from roadmap_lib import set_seed
from roadmap_lib.chapters.ch21_evaluation import benchmark as B
from roadmap_lib.chapters.ch21_evaluation import experiments as E
from roadmap_lib.chapters.ch21_evaluation import reasoning as R
from roadmap_lib.chapters.ch21_evaluation.artifacts import results
from roadmap_lib.chapters.ch21_evaluation.exercises import (
    check_acc_norm_choice,
    check_prediction,
    check_squad_f1,
)
from roadmap_lib.chapters.ch21_evaluation.plots import (
    plot_contamination,
    plot_judge_bias,
    plot_model_scores,
    plot_perturbations,
    plot_reasoning,
    plot_reliability,
)
from roadmap_lib.evaluation import bootstrap_ci, expected_calibration_error, reliability_bins
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)  # small models: as fast on one thread, and steady on a busy CPU

# %% [markdown]
# ## 1. What each metric rewards
#
# Generation metrics compare a hypothesis with a reference, and each counts a different kind of
# agreement:
#
# - **BLEU**: the geometric mean of clipped word 1- to 4-gram precisions, times a brevity penalty
#   (chapter 05). Word order matters through the longer n-grams.
# - **chrF**: an F-score over character 1- to 6-grams (spaces removed), with recall weighted
#   $\beta = 2$ times as much as precision: $F_\beta = (1+\beta^2)PR / (\beta^2 P + R)$, precision
#   and recall averaged over the orders. A misspelt word still shares most of its character n-grams.
# - **ROUGE-N**: clipped word n-gram overlap, reported as precision, recall and F; **ROUGE-L** uses
#   the longest common subsequence instead, so it rewards words in the right order without requiring
#   them to be adjacent; ROUGE-Lsum does the same per sentence (one sentence per line). rouge-score's
#   tokenizer lower-cases and treats every character outside `[a-z0-9]` as a separator ("don't" is
#   "don", "t"; accented letters vanish), with optional Porter stemming of tokens longer than 3.
# - **SQuAD exact match and F1**: both first *normalise* the answer (lower-case, drop punctuation,
#   drop the articles a/an/the, collapse spaces); F1 is the overlap of the two *bags* of words; both
#   take the best over the gold answers.
#
# The three hypotheses below were written by hand to pull the metrics apart: a paraphrase, the
# reference's words shuffled, and the reference with one misspelt word. Every number is also
# computed by the reference implementation, and the cell asserts they agree.

# %%
reference = "the hacker fixed the bug in the kernel"
hypotheses = {"paraphrase": "the kernel bug was fixed by the hacker",
              "shuffled": "kernel the in bug the fixed hacker the",
              "one typo": "the hacker fixd the bug in the kernel"}
scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
rows = ["| hypothesis | BLEU | chrF | ROUGE-1 F | ROUGE-2 F | ROUGE-L F | SQuAD EM | SQuAD F1 |", "|---|" + "---|" * 7]
scores = {}
for name, hyp in hypotheses.items():
    r = M.rouge(reference, hyp, ["rouge1", "rouge2", "rougeL"])
    s = {"bleu": M.sentence_bleu(hyp, reference).score, "chrf": M.sentence_chrf(hyp, reference),
         "r1": r["rouge1"].fmeasure, "r2": r["rouge2"].fmeasure, "rL": r["rougeL"].fmeasure,
         "em": M.squad_exact_match(hyp, reference), "f1": M.squad_f1(hyp, reference)}
    theirs = scorer.score(reference, hyp)
    assert abs(s["bleu"] - sacrebleu.sentence_bleu(hyp, [reference]).score) < 1e-9
    assert abs(s["chrf"] - sacrebleu.sentence_chrf(hyp, [reference]).score) < 1e-9
    assert all(abs(s[k] - theirs[t].fmeasure) < 1e-12 for k, t in (("r1", "rouge1"), ("r2", "rouge2"), ("rL", "rougeL")))
    scores[name] = s
    rows.append(f"| {name} | " + " | ".join(f"{s[k]:.2f}" for k in ("bleu", "chrf", "r1", "r2", "rL", "em", "f1")) + " |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The shuffled words have the reference's exact bag of words, so ROUGE-1 and SQuAD F1 give them a
# perfect score, while ROUGE-2, ROUGE-L and BLEU, which look at order, drop. One typo costs BLEU
# more than chrF: the misspelt word breaks every word n-gram through it, but only a few of its
# character n-grams. The paraphrase, a correct answer in other words, scores lower than the shuffled
# nonsense on ROUGE-1 and SQuAD F1; BLEU and chrF rank it above the shuffle, but far below the
# misspelt copy. Overlap metrics measure overlap with one reference, not meaning.

# %%
sh, ty, pa = scores["shuffled"], scores["one typo"], scores["paraphrase"]
assert sh["r1"] == 1.0 and sh["f1"] == 1.0 and sh["r2"] < 0.5 and sh["rL"] < sh["r1"] and sh["bleu"] < 20
assert ty["chrf"] > ty["bleu"] + 10
assert pa["r1"] < sh["r1"] and pa["f1"] < sh["f1"] and pa["bleu"] > sh["bleu"] and pa["chrf"] > sh["chrf"]
assert pa["bleu"] < ty["bleu"] - 20 and pa["chrf"] < ty["chrf"] - 20

# %% [markdown]
# Classification metrics have their own trap: how to average over classes. *Micro* averaging pools
# every decision (for single-label data it equals accuracy), *macro* takes the plain mean of the
# per-class scores (a rare class counts as much as a frequent one), *weighted* weights each class by
# its frequency in the gold labels. A classifier that always answers the majority class of a 90/10
# split shows the difference; scikit-learn gives the same numbers.

# %%
gold = [0] * 90 + [1] * 10
majority = [0] * 100
table = {avg: M.precision_recall_f1(majority, gold, average=avg) for avg in ("micro", "macro", "weighted")}
for avg, (p, r, f) in table.items():
    sk = precision_recall_fscore_support(gold, majority, average=avg, zero_division=0)[:3]
    assert max(abs(a - b) for a, b in zip((p, r, f), sk)) < 1e-12
    print(f"{avg:>8}: precision {p:.3f}  recall {r:.3f}  F1 {f:.3f}")
print(f"accuracy {M.classification_accuracy(majority, gold):.2f}")
assert table["micro"][2] == M.classification_accuracy(majority, gold) == 0.9 and table["macro"][2] < 0.5

# %% [markdown]
# ## 2. A multiple-choice benchmark scored by log-likelihood
#
# Benchmarks such as HellaSwag or MMLU give a question and a few answers. A language model is not
# asked to *write* an answer; lm-evaluation-harness scores each choice $c_j$ as a continuation of the
# context and picks the most likely:
#
# $$ \ell_j = \sum_t \log p(c_{j,t} \mid \text{context}, c_{j,<t}), \qquad
#    \texttt{acc} = [\arg\max_j \ell_j = \text{gold}], \qquad
#    \texttt{acc\_norm} = [\arg\max_j \ell_j / \text{bytes}(c_j) = \text{gold}]. $$
#
# A sum of log-probabilities is lower for a longer text, so `acc` favours short choices;
# `acc_norm` divides by the choice's length in UTF-8 bytes. `roadmap_lib.evaluation` implements both
# (its tests check them on a hand-written task against hand-computed scores, and the harness's left
# truncation of long inputs).
#
# Our benchmark: the context is 48 characters of Jargon File text that end *inside a word*; the four
# choices are the text that really follows (the rest of the word and up to two more words) and three
# such fragments cut from random other places. Each seed draws 100 items from the validation split,
# the last 10% of the file, which the zoo model never trained on. The first three items of seed 0:

# %%
model, vocab, _ = load_char_gpt()
items = B.build_items("val", E.N_ITEMS, seed=0)
for it in items[:3]:
    print(repr(it.context), "->", [("*" if j == it.gold else "") + c for j, c in enumerate(it.choices)])

# %% [markdown]
# The sweep scores 3 seeds x 100 items with four models: the zoo char GPT (4 layers, 128 dims), the
# 1-layer draft model of chapter 15, and the char GPT with its linear layers rounded to 8 and to 4
# bits. Here we re-score the first 40 items of seed 0 with the char GPT and check that they match
# the shipped records item by item.

# %%
res = results()
live = B.scorer(model, vocab)(items[:40])
recorded = res["models"]["gpt-char-jargon"]["0"]
assert live["acc"].tolist() == recorded["acc"][:40] and live["acc_norm"].tolist() == recorded["acc_norm"][:40]
print(f"live, 40 items: acc {live['acc'].mean():.3f}, acc_norm {live['acc_norm'].mean():.3f} (as recorded)")
print(f"the whole sweep took {res['seconds']:.0f} s to build on one thread ({res['command']})")

# %%
names = list(res["models"])
per_seed = {n: {m: E.seed_means(res["models"][n], m) for m in ("acc", "acc_norm")} for n in names}
pooled = {n: {m: E.pooled(res["models"][n], m) for m in ("acc", "acc_norm")} for n in names}
cis = {n: {m: bootstrap_ci(lambda x: x.mean(), pooled[n][m], n=1000, seed=0) for m in ("acc", "acc_norm")}
       for n in names}
plot_model_scores(names, per_seed, cis)
plt.show()
rows = ["| model | acc (95% CI) | acc_norm (95% CI) | acc_norm per seed |", "|---|---|---|---|"]
for n in names:
    a, b = cis[n]["acc"], cis[n]["acc_norm"]
    rows.append(f"| {n} | {a.estimate:.3f} ({a.low:.3f}-{a.high:.3f}) | {b.estimate:.3f} ({b.low:.3f}-{b.high:.3f}) | "
                + ", ".join(f"{v:.2f}" for v in per_seed[n]["acc_norm"]) + " |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# On this benchmark (300 items, 4 choices, chance 0.25), `acc_norm` is far above `acc` for every
# model: the real continuation is often longer than a distractor, and a raw sum of log-probabilities
# punishes it for that. The gap is larger than the spread between seeds for each model. The choice
# of normalisation moves the score more than any model difference below does, which is why a
# reported number must say which one it is.

# %%
for n in names:
    gap = [b - a for a, b in zip(per_seed[n]["acc"], per_seed[n]["acc_norm"])]
    spread = max(max(v) - min(v) for v in per_seed[n].values())
    print(f"{n}: acc_norm - acc per seed {[round(g, 2) for g in gap]}, seed spread {spread:.2f}")
    assert sum(gap) / 3 > spread

# %% [markdown]
# ## 3. How sure is a score? Confidence intervals and paired comparisons
#
# A benchmark score is an average over a sample of items, and another sample gives another number.
# The percentile bootstrap estimates that spread: resample the items with replacement many times,
# recompute the score, and take the 2.5% and 97.5% quantiles. To *compare* two models, resample the
# items and score both models on the same draw (a paired bootstrap): what the items have in common
# (some are easy for every model) cancels in the difference, and the interval of the difference is
# narrower than the two intervals side by side suggest.
#
# `bootstrap_ci(metric_fn, *arrays, n, seed)` does both: all arrays are resampled with the same
# indices. Below, the difference of `acc_norm` between the char GPT and each variant, on the 300
# items of the sweep.

# %%
base = pooled["gpt-char-jargon"]["acc_norm"]
diffs = {n: bootstrap_ci(lambda x, y: float((x - y).mean()), base, pooled[n]["acc_norm"], n=1000, seed=0)
         for n in names[1:]}
for n, ci in diffs.items():
    verdict = "no difference" if ci.low <= 0 <= ci.high else "a difference"
    print(f"gpt-char-jargon - {n}: {ci.estimate:+.3f}, paired 95% CI [{ci.low:+.3f}, {ci.high:+.3f}] -> {verdict}")
identical = bool((pooled["jargon-int8"]["acc_norm"] == base).all())
print("int8 gives the same verdict as float32 on every item:", identical)

# %% [markdown]
# - The **draft model** is worse, and the interval of the difference is well away from 0.
# - **8-bit weights** change no verdict at all on these 300 items.
# - **4-bit weights**: their mean is lower, but the paired interval of the difference reaches 0.
#   That is the case the interval is for: with 300 items, we cannot tell this gap from the luck of
#   the draw, so we report *no difference*, not "int4 loses 2 points". (A larger benchmark might
#   resolve it; this one does not.)

# %%
assert diffs["gpt-char-draft"].low > 0.05
assert identical and diffs["jargon-int8"].estimate == 0.0
assert diffs["jargon-int4"].estimate > 0 and diffs["jargon-int4"].low <= 0 <= diffs["jargon-int4"].high

# %% [markdown]
# How wide is the interval as a function of the number of items? For a score $p$ on $n$ independent
# items its half-width is about $1.96\sqrt{p(1-p)/n}$: four times the items for half the width.
# The bootstrap on the first $n$ items of the sweep shows the same (the first seed's items, then the
# second's, ...).

# %%
for n in (25, 100, 300):
    ci = bootstrap_ci(lambda x: x.mean(), base[:n], n=1000, seed=0)
    normal = 1.96 * math.sqrt(ci.estimate * (1 - ci.estimate) / n)
    print(f"n={n:3d}: acc_norm {ci.estimate:.3f}, bootstrap half-width {(ci.high - ci.low) / 2:.3f}, "
          f"normal approximation {normal:.3f}")
    assert abs((ci.high - ci.low) / 2 - normal) < 0.3 * normal

# %% [markdown]
# ### Calibration
#
# A softmax over the four choices' log-likelihoods gives the model's confidence in its `acc` choice.
# A model is *calibrated* when, among the items where it says 80%, it is right 80% of the time. The
# expected calibration error sorts the items into 10 equal-width bins of confidence and averages
# $|\text{accuracy} - \text{confidence}|$ over the bins, weighted by their share of items
# (`roadmap_lib.evaluation.expected_calibration_error`; a confidence on a bin edge goes to the lower
# bin).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
ece = {}
for ax, n in zip(axes, ("gpt-char-jargon", "gpt-char-draft")):
    ll = torch.tensor([x for s in sorted(res["logliks"][n]) for x in res["logliks"][n][s]])
    conf = ll.softmax(-1).max(-1).values
    correct = pooled[n]["acc"]
    ece[n] = expected_calibration_error(conf, correct, n_bins=10)
    plot_reliability(*reliability_bins(conf, correct, 10), label=f"{n}: ECE {ece[n]:.2f}", ax=ax)
    print(f"{n}: mean confidence {conf.mean():.2f}, accuracy {correct.mean():.2f}, ECE {ece[n]:.3f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Both models are overconfident by a wide margin: they put more than 90% on their choice on average
# and are right about 60% (char GPT) or 50% (draft) of the time. The summed log-likelihood of a
# whole phrase separates the choices by many nats, so the softmax over them is nearly one-hot, even
# when the choice is wrong. A probability read off a log-likelihood benchmark is a ranking score, not
# a calibrated probability.

# %%
assert ece["gpt-char-jargon"] > 0.3 and ece["gpt-char-draft"] > 0.3

# %% [markdown]
# ## 4. Contamination: items the model has seen
#
# If benchmark items were in the training data, a score measures memory, not skill. The usual check
# {cite}`brown2020gpt3` searches the training text for the items' word n-grams (GPT-3: 13-grams).
# Our items are short (about ten words), so we use 5-grams of lower-cased words
# (`roadmap_lib.evaluation.ngram_index` / `ngram_overlap`), skipping the fragment of a word each
# context starts with.
#
# Two experiments:
#
# 1. **Natural**: items built the same way from the *training* split of the Jargon File, which the
#    zoo model saw during its 2,500 steps (about twice each character on average), against items from
#    the validation split.
# 2. **Leaked**: half of each seed's 100 validation items (the first 50) are added to training, by
#    fine-tuning a copy of the char GPT on their text for 1 or 3 epochs; the other 50 stay clean.

# %%
ov = res["overlap"]
train_flagged = [sum(v > 0 for v in ov[s]["train"]) for s in sorted(ov)]
val_flagged = [sum(v > 0 for v in ov[s]["val"]) for s in sorted(ov)]
leak_ov = res["leak"]["overlap"]
leaked_flagged = [sum(v > 0 for v in leak_ov[s][:50]) for s in sorted(leak_ov)]
clean_flagged = [sum(v > 0 for v in leak_ov[s][50:]) for s in sorted(leak_ov)]
print(f"items sharing a 5-gram with the training text: training split {train_flagged} of 100, "
      f"validation split {val_flagged} of 100 (per seed)")
print(f"after the leak: leaked items {leaked_flagged} of 50, clean items {clean_flagged} of 50")
assert min(train_flagged) >= 99 and max(val_flagged + clean_flagged) <= 5 and min(leaked_flagged) == 50

# %% [markdown]
# The detector flags nearly every training-split item and every leaked item. It also flags a few
# validation items that were never trained on (1 to 4 per seed, before and after the leak): they
# share a 5-gram with the training text, a common phrase or a passage the Jargon File repeats. That
# is the n-gram check's usual weakness: a shared phrase is not the same item, and short n-grams
# catch more of both. What did the contamination do to
# the scores?

# %%
leak_rows = [("val items (zoo model)", per_seed["gpt-char-jargon"]["acc_norm"]),
             ("train-split items (zoo model)", E.seed_means(res["train"], "acc_norm"))]
for ep in sorted(res["leak"], key=lambda k: (k != "overlap", k)):
    if ep == "overlap":
        continue
    for part in ("clean", "leaked"):
        leak_rows.append((f"{part}, {ep} epoch{'s' * (ep != '1')}",
                          [sum(res["leak"][ep][s][part]["acc_norm"]) / 50 for s in sorted(res["leak"][ep])]))
plot_contamination(leak_rows)
plt.show()
means = {label: sum(v) / len(v) for label, v in leak_rows}
spread = {label: max(v) - min(v) for label, v in leak_rows}
leak_noise = max(spread[label] for label, _ in leak_rows[2:])  # the fine-tuned models' seed spread
for label, v in leak_rows:
    print(f"{label:>30}: acc_norm {means[label]:.3f} (seeds {', '.join(f'{x:.2f}' for x in v)})")

# %% [markdown]
# - **Leaked items**: after one epoch on them the fine-tuned model scores higher on the leaked half
#   than on the clean half (by more than the seed spread of these rows), and after three epochs it gets nearly every leaked item right while the
#   clean half stays where it was: the score on contaminated items measures what the model saw.
# - **Training-split items** score *no higher* than validation items for the zoo model: the gap is
#   smaller than the seed spread (in fact the training-split mean is lower). A character model that
#   saw each passage about twice, among 1.3 million characters, has not memorised these windows;
#   overlap alone does not prove that a score is inflated. Measure both: flag the overlap, then
#   compare the flagged and the clean items' scores.

# %%
gap1 = means["leaked, 1 epoch"] - means["clean, 1 epoch"]
gap3 = means["leaked, 3 epochs"] - means["clean, 3 epochs"]
print(f"leaked - clean: {gap1:+.3f} (1 epoch), {gap3:+.3f} (3 epochs); "
      f"largest seed spread of the fine-tuned rows {leak_noise:.3f}")
assert gap1 > leak_noise and gap3 > 2 * gap1 and means["leaked, 3 epochs"] > 0.95
natural = means["train-split items (zoo model)"] - means["val items (zoo model)"]
assert abs(natural) < max(spread["train-split items (zoo model)"], spread["val items (zoo model)"])

# %% [markdown]
# ## 5. Perturbed versions of the task
#
# A benchmark measures one distribution of inputs. Perturbed copies ask whether the score survives
# changes that should not matter to a reader (typos, upper case) and how much context the model
# uses (a truncated context). The choices are left alone; only the context changes. Each perturbation
# is applied to the same 3 x 100 items.

# %%
labels = list(res["perturb"])
perturbed = [E.seed_means(res["perturb"][k], "acc_norm") for k in labels]
clean_seeds = per_seed["gpt-char-jargon"]["acc_norm"]
plot_perturbations(labels, perturbed, clean_seeds)
plt.show()
p_mean = {k: sum(v) / 3 for k, v in zip(labels, perturbed)}
clean_mean = sum(clean_seeds) / 3
p_noise = max(max(v) - min(v) for v in perturbed + [clean_seeds])
for k in labels:
    print(f"{k:>12}: acc_norm {p_mean[k]:.3f} ({p_mean[k] - clean_mean:+.3f} vs clean)")
print(f"largest seed spread: {p_noise:.3f}")

# %% [markdown]
# - **Upper case** is the largest drop by far: the Jargon File is mostly lower case, so a shouted
#   context is text the character model has hardly seen, though a reader finds it as easy.
# - **Typos** cost more as their rate grows; at a swap rate of 0.4 the drop is larger than the seed
#   spread.
# - **Keeping only the last 16 characters** of the context makes no difference: the next characters
#   of a cut word depend mostly on the word itself. Keeping 4 costs a few points, within the noise
#   at 300 items.
#
# Sensitivity to a change that should not matter is a finding about the model, and a reason to
# report a benchmark's perturbed versions next to the clean one.

# %%
assert clean_mean - p_mean["upper:1"] > 0.3
assert clean_mean - p_mean["typos:0.4"] > p_noise and p_mean["typos:0.4"] < p_mean["typos:0.1"]
assert abs(p_mean["truncate:16"] - clean_mean) < p_noise

# %% [markdown]
# ## 6. Grading the reasoning path, not only the answer
#
# Final-answer grading counts a right answer as success however it was reached. For the problem
# "(a + b) x c" we grade a written trace (`step 1: 3 + 4 = 7`, `step 2: 7 * 5 = 35`, `answer: 35`)
# both ways: is the final answer right, and is the *path* valid (each step's arithmetic right, on the
# right operands, and the answer is the last step's result)? The solvers are **scripted** programs
# with known failure modes, not models, so that we know the truth the grader should find:
#
# - `careful` is always right; `slipper` makes an arithmetic slip in each step with probability 0.2,
#   and its errors propagate to the answer;
# - `memoriser` writes the right answer 90% of the time *whatever its steps say* (as a model that
#   had seen the problems in training might), with a slip in step 1 40% of the time;
# - `compensator` computes a + (b x c) 30% of the time and writes the right answer anyway.

# %%
reasoning = {name: {} for name in R.SOLVERS}
for name, solver in R.SOLVERS.items():
    for seed in range(3):
        for k, v in R.grade_solver(solver, 200, seed).items():
            reasoning[name].setdefault(k, []).append(v)
plot_reasoning(reasoning)
plt.show()
# one memoriser trace, problem (3, 4, 5), the first one its seed-1 random stream writes
print(R.memoriser((3, 4, 5), random.Random(1)))
rows = ["| solver | final answer right | path valid | right answer, invalid path |", "|---|---|---|---|"]
for name, d in reasoning.items():
    rows.append(f"| {name} | " + " | ".join(f"{sum(d[k]) / 3:.3f}" for k in
                                          ("answer_accuracy", "path_accuracy", "right_answer_wrong_path")) + " |")
display(Markdown("Mean of 3 seeds of 200 problems:\n\n" + "\n".join(rows)))

# %% [markdown]
# Final-answer grading ranks `compensator` (every answer right) above `slipper` and on par with
# `careful`; path grading finds that about a quarter of its right answers came from a wrong
# computation, and a third of `memoriser`'s (the trace printed above is one: its first step says
# 3 + 4 = 4, and its answer is the right 35 anyway). On `slipper` the two gradings agree: an honest error
# shows in the answer. A right answer from a wrong path is what a contaminated model or a lucky
# guess looks like, and why process-level grading {cite}`uesato2022process,lightman2024verify`
# exists. Our checker can do it because arithmetic can be verified step by step; for free text, the
# steps need a verifier of their own (a trained one, in those papers).

# %%
mean = {n: {k: sum(v) / 3 for k, v in d.items()} for n, d in reasoning.items()}
assert mean["compensator"]["answer_accuracy"] == 1.0 and mean["compensator"]["path_accuracy"] < 0.8
assert mean["memoriser"]["right_answer_wrong_path"] > 0.3
assert mean["slipper"]["right_answer_wrong_path"] == 0 and mean["careful"]["path_accuracy"] == 1.0

# %% [markdown]
# ## 7. A judge, and its position bias
#
# Open-ended answers have no reference to compare with, so people ask a strong LLM to judge which
# of two answers is better. LLM judges are known to prefer the answer shown first (or second)
# {cite}`zheng2023judging,wang2024fair`, and the standard test is to ask twice with the answers
# swapped: a consistent judge gives the same verdict, and on pairs of equally good answers a fair
# judge sends half its verdicts to each position.
#
# We have no instruction-following model, so our "judge" is the char GPT reading both answers:
# `ctx + A + "\n" + ctx + B`, comparing their mean log-probabilities per character. The second answer
# is read with the first inside the model's 64-character window, so the order *could* matter. Two
# kinds of pairs per item: the real continuation against a distractor ("real" pairs: the judge should
# pick the real one), and two distractors ("tie" pairs: neither is right). Then we add a *scripted*
# preference for the first position, `bias` nats per character added to the first answer's score,
# to see what the swap test reports for a biased judge.

# %%
judge = res["judge"]


def judge_stats(bias):
    out = {}
    for kind in ("real", "tie"):
        per = [B.position_bias(torch.tensor(judge[kind][s]["ab"]), torch.tensor(judge[kind][s]["ba"]), bias)
               for s in sorted(judge[kind])]
        out[kind] = {k: sum(float(d[k].mean()) for d in per) / len(per) for k in per[0]}
    return out


biases = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
curve = [judge_stats(b) for b in biases]
plot_judge_bias(biases, [c["tie"]["shown_first_chosen"] for c in curve], [c["tie"]["consistent"] for c in curve],
                [c["real"]["a_wins_ab"] for c in curve])
plt.show()
unbiased = curve[0]
print({k: {m: round(v, 3) for m, v in d.items()} for k, d in unbiased.items()})

# %% [markdown]
# Without a scripted bias, this likelihood judge picks the real continuation about 9 times in 10 and
# gives the same verdict in both orders on 97% or more of the pairs of both kinds, with the
# first-shown answer chosen in half the verdicts on tie pairs: the swap test finds **no position
# bias** in it. Its 64-character window is the reason: by the time it reads the second answer, the
# first has mostly scrolled out.
#
# With the scripted bias the swap test sees what it is designed to see: on tie pairs the share of
# verdicts for the first position rises above one half and the share of consistent verdicts falls.
# Reading the real pairs in one order only (the real answer shown first) hides the bias: the judge
# even looks *more* accurate, because the bias pushes it towards the answer that happens to be right.
# Swapping both ways and counting inconsistent pairs as ties is the fix; it costs twice the calls.

# %%
at1 = curve[biases.index(1.0)]
assert unbiased["real"]["a_wins_ab"] > 0.85 and min(unbiased["real"]["consistent"], unbiased["tie"]["consistent"]) > 0.95
assert abs(unbiased["tie"]["shown_first_chosen"] - 0.5) < 0.02
assert at1["tie"]["shown_first_chosen"] > 0.7 and at1["tie"]["consistent"] < 0.6
assert at1["real"]["a_wins_ab"] > unbiased["real"]["a_wins_ab"]


# %% tags=["nbval-ignore-output", "remove-output"]
def explore_judge(bias=1.0):
    s = judge_stats(bias)
    _fig, ax = plt.subplots(figsize=(6, 3.4))
    keys = ["a_wins_ab", "a_wins_ba", "a_wins_both", "consistent", "shown_first_chosen"]
    for j, kind in enumerate(("real", "tie")):
        ax.bar([i + 0.4 * j for i in range(len(keys))], [s[kind][k] for k in keys], 0.4, label=f"{kind} pairs")
    ax.set_xticks([i + 0.2 for i in range(len(keys))], keys, rotation=15, fontsize=8)
    ax.axhline(0.5, color="grey", ls=":")
    ax.set_ylim(0, 1)
    ax.set_title(f"judge with a scripted first-position bias of {bias:.2f} nats/char")
    ax.legend(fontsize=8)
    plt.show()


interact(explore_judge, bias=FloatSlider(value=1.0, min=0.0, max=3.0, step=0.05));

# %% [markdown]
# ## Summary
#
# - Metrics count different things; our BLEU, chrF, ROUGE, SQuAD EM/F1 and class-averaged F1 equal
#   the reference implementations (tests compare them on fixed and random inputs).
# - Log-likelihood benchmarks come in `acc` and `acc_norm`; on our 4-choice Jargon File benchmark the
#   choice between them moves the score more than the differences between models.
# - Every score gets an interval; comparisons get a *paired* one. Here 4-bit weights score lower on
#   average than float32, but within the interval: no difference at 300 items.
# - Contamination is found by n-gram overlap and measured by comparing flagged and clean items: a
#   leak inflated the score of the leaked items, while natural overlap with the training split did not
#   for this small model.
# - Perturbations, path grading and swapped judging each reveal something a single accuracy hides.

# %% [markdown]
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-21-squad
# :nonumber:
# ```
# **Exercise 21.1 (SQuAD F1).** Write `squad_f1(prediction, golds)`: normalise both strings the
# official way (lower-case; remove ASCII punctuation, `string.punctuation`; remove the words a, an,
# the; collapse whitespace), compute the F1 of the two *bags* of words, and return the best F1 over
# the list `golds`. If either side is empty after normalisation, the score is 1.0 when both are and
# 0.0 otherwise.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# `collections.Counter` objects support `&`: the element-wise minimum of two counts, which is the
# overlap of two bags.
# ```

# %% [markdown]
# ```{solution-start} ex-21-squad
# :class: dropdown
# ```

# %%
def squad_f1(prediction, golds):
    ### BEGIN SOLUTION
    import re
    import string
    from collections import Counter

    def normalise(s):
        s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
        return re.sub(r"\b(a|an|the)\b", " ", s).split()

    def f1(p, g):
        if not p or not g:
            return float(p == g)
        same = sum((Counter(p) & Counter(g)).values())
        return 2 * same / (len(p) + len(g))  # 2PR / (P + R) with P = same/|p|, R = same/|g|

    return max(f1(normalise(prediction), normalise(g)) for g in golds)
    ### END SOLUTION


# %% [markdown]
# The order of the normalisation steps matters: punctuation goes before the articles, so that
# "the," loses its comma and then its article.
#
# ```{solution-end}
# ```

# %%
check_squad_f1(squad_f1)

# %% [markdown]
# ```{exercise-start}
# :label: ex-21-accnorm
# :nonumber:
# ```
# **Exercise 21.2 (the choice `acc_norm` makes).** Write `acc_norm_choice(logliks, choices)`:
# `logliks` is a float64 tensor `(n_choices,)` of summed log-likelihoods, `choices` the list of the
# choice strings; return the index (an `int`) of the choice with the highest log-likelihood per UTF-8
# byte.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# `len("é")` is 1 but `len("é".encode("utf-8"))` is 2; curly quotes take 3 bytes.
# ```

# %% [markdown]
# ```{solution-start} ex-21-accnorm
# :class: dropdown
# ```

# %%
def acc_norm_choice(logliks, choices):
    ### BEGIN SOLUTION
    nbytes = torch.tensor([len(c.encode("utf-8")) for c in choices], dtype=torch.float64)
    return int((logliks / nbytes).argmax())
    ### END SOLUTION


# %% [markdown]
# The harness normalises by bytes so that the score does not depend on the tokenizer; for plain ASCII
# text, bytes and characters agree, which is why the mistake of counting characters usually goes
# unnoticed.
#
# ```{solution-end}
# ```

# %%
check_acc_norm_choice(acc_norm_choice)

# %% [markdown]
# ```{exercise-start}
# :label: ex-21-ci
# :nonumber:
# ```
# **Exercise 21.3 (predict, then measure: the interval of a difference).** Section 3 found the
# paired 95% interval of the char GPT's lead over the draft model on 300 items. *Before you run
# anything*, predict the half-width of the same interval on only the first 75 items (set
# `predicted_half_width`). Then measure it: the paired bootstrap (`bootstrap_ci`, 1000 resamples,
# seed 0) of the mean difference of the two models' per-item `acc_norm` on those 75 items; set
# `measured_half_width` to half the interval's length.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The width of an interval of a mean shrinks like one over the square root of the number of items.
# ```

# %% [markdown]
# ```{solution-start} ex-21-ci
# :class: dropdown
# ```

# %%
### BEGIN SOLUTION
full = diffs["gpt-char-draft"]
predicted_half_width = (full.high - full.low) / 2 * math.sqrt(300 / 75)
a75, b75 = base[:75], pooled["gpt-char-draft"]["acc_norm"][:75]
ci75 = bootstrap_ci(lambda x, y: float((x - y).mean()), a75, b75, n=1000, seed=0)
measured_half_width = (ci75.high - ci75.low) / 2
### END SOLUTION

# %% [markdown]
# The $1/\sqrt n$ rule (a quarter of the items, twice the half-width) gives the order of magnitude;
# the rest comes from the 75 items themselves, since the bootstrap can only estimate the spread from
# the items it has. The number of items decides which differences a benchmark can see.
#
# ```{solution-end}
# ```

# %%
check_prediction(predicted_half_width, measured_half_width, base[:75], pooled["gpt-char-draft"]["acc_norm"][:75])
