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
# # 17. LLMOps: monitoring, A/B tests, continual learning and experiment tracking
#
# **What you will learn**
#
# - how to notice that the traffic reaching a deployed model has changed: **perplexity drift**
#   (the model's own per-token losses, compared with a Kolmogorov–Smirnov test
#   {cite}`massey1951kolmogorov`) and **embedding drift** (the kernel maximum mean discrepancy
#   {cite}`gretton2012kernel`), with an alarm threshold *calibrated* on days known to be normal and
#   its false alarm rate measured {cite}`rabanser2019failing`;
# - how to decide whether model B is better than model A from live traffic
#   {cite}`kohavi2020trustworthy`: the two-proportion z test and permutation tests written out,
#   paired against split traffic, the sample size a test needs, and why looking at a running test
#   until it says "significant" is wrong {cite}`johari2017peeking`;
# - **catastrophic forgetting** {cite}`mccloskey1989catastrophic` when a model is fine-tuned on a new
#   domain, and three mitigations: **replay** {cite}`rolnick2019experience`, an L2 pull to the
#   starting weights, and **EWC** {cite}`kirkpatrick2017overcoming`, the same pull weighted by how
#   much the old task depends on each weight, over 3 seeds;
# - **experiment tracking** with MLflow {cite}`zaharia2018mlflow` on a local SQLite store: log runs,
#   then ask the store for the best one; a **model registry** whose versions carry the content hash
#   of their weights, and a **release gate** (a paired bootstrap interval against a margin) that
#   decides which version production points at; and what the other tools of the landscape are for.
#
# **What you need**: the character-level GPT of chapter 07 (the deployed model here), the draft GPT
# of chapter 15 (the challenger in the A/B test), fine-tuning on Zetan from chapter 16 (where we first
# saw forgetting), and perplexity from chapter 05.
#
# **Run time**: about 60 s on a laptop CPU: scoring the traffic stream, the statistics, one live
# fine-tuning run (100 steps) that reproduces a recorded one, and the MLflow store. The continual
# learning comparison (4 methods × 3 seeds) is a shipped results file, rebuilt by
# `python -m roadmap_lib build 17-continual`.

# %%
import copy
import logging
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats
import torch
from IPython.display import Markdown, display
from ipywidgets import Dropdown, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch17_llmops import abtest, drift, forgetting
from roadmap_lib.chapters.ch17_llmops.artifacts import LIVE_METHOD, LIVE_SEED
from roadmap_lib.chapters.ch17_llmops.plots import (
    plot_day_statistic,
    plot_detection,
    plot_forgetting,
    plot_peeking,
    plot_power,
)
from roadmap_lib.llmops import (
    ks_pvalue,
    permutation_test,
    power_two_proportions,
    replay_batches,
    sample_size_two_proportions,
    simulate_peeking,
    two_proportion_ztest,
)
from roadmap_lib.llmops import ks_statistic as ks_library
from roadmap_lib.llmops.gate import noninferiority_gate, state_dict_sha256
from roadmap_lib.llmops.tracking import LocalTracking
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)  # the models are small: one thread is as fast, and steady on a busy CPU
# %matplotlib inline

# %% [markdown]
# ## 1. Monitoring: has the traffic drifted?
#
# A deployed model was checked on some traffic, the **reference**. Every day new requests arrive. If
# they stop looking like the reference (a new language, a broken upstream text extractor, a new
# user group), the quality measured before deployment no longer says much, and someone should look.
# We simulate this with the character GPT of chapter 07: the "traffic" is the Jargon File's
# validation text (which the model never trained on), cut into 64-character requests; a **day** is
# 32 requests drawn at random. Two drifts, each with an intensity:
#
# - **noise**: each character replaced, with some probability, by a random lowercase letter;
# - **Zetan**: a share of the day's requests replaced by requests in Zetan, the invented language of
#   the translation task.
#
# The model scores every request once: its per-token negative log-likelihoods (NLL; their mean is
# the log-perplexity), whether its top-1 guess of each next character was right, and an
# **embedding**, the mean over the 64 positions of its last hidden state.

# %%
model, vocab = forgetting.load_model()
scores = drift.score_stream(model, vocab, seed=0)
print({k: (len(v) if not isinstance(v, dict) else {r: len(s) for r, s in v.items()}) for k, v in scores.items()})
print(f"reference: mean NLL {scores['reference'].nll.mean():.3f} nats/char; "
      f"Zetan requests: {scores['zetan'].nll.mean():.3f}")

# %% [markdown]
# Three statistics compare a day with the reference:
#
# - the **mean NLL** of the day's tokens (its log-perplexity);
# - the two-sample **Kolmogorov–Smirnov** statistic between the day's token NLLs and the reference's:
#   the largest vertical gap between their empirical distribution functions,
#   $D = \max_x |F_\text{day}(x) - F_\text{ref}(x)|$. It reacts to any change of shape, not only of
#   the mean. For $n$ and $m$ *independent* draws, $P(D \ge d) \approx Q(\lambda)$ with
#   $\lambda = \sqrt{nm/(n+m)}\, d$ and $Q(\lambda) = 2\sum_{k\ge1}(-1)^{k-1}e^{-2k^2\lambda^2}$;
# - the squared **maximum mean discrepancy** between the day's embeddings $x_i$ and the reference's
#   $y_j$, with an RBF kernel $k$ (bandwidth: the median distance between reference embeddings):
#
# $$ \widehat{\text{MMD}}^2 = \frac{1}{n(n-1)}\sum_{i\ne i'} k(x_i, x_{i'})
#    + \frac{1}{m(m-1)}\sum_{j\ne j'} k(y_j, y_{j'}) - \frac{2}{nm}\sum_{i,j} k(x_i, y_j), $$
#
# which is zero in expectation when both come from the same distribution.
#
# Our KS statistic and p-value against `scipy.stats` on a real day (the first 32 test requests):

# %%
day = scores["noise"][0.0].take(np.arange(32))
ours_d = ks_library(day.nll, scores["reference"].nll)
ref = scipy.stats.ks_2samp(day.nll.flatten().numpy(), scores["reference"].nll.flatten().numpy(), method="asymp")
n_day, n_ref = day.nll.numel(), scores["reference"].nll.numel()
ours_p = ks_pvalue(ours_d, n_day, n_ref)
print(f"D = {ours_d:.6f} (scipy {ref.statistic:.6f}); asymptotic p = {ours_p:.4f} (scipy {ref.pvalue:.4f}; "
      f"Kolmogorov's limit {scipy.stats.kstwobign.sf(np.sqrt(n_day * n_ref / (n_day + n_ref)) * ours_d):.4f})")
assert abs(ours_d - ref.statistic) < 1e-12
assert abs(ours_p - scipy.stats.kstwobign.sf(np.sqrt(n_day * n_ref / (n_day + n_ref)) * ours_d)) < 1e-9
assert abs(ours_p - ref.pvalue) < 0.01  # scipy uses the finite-n distribution kstwo at round(nm/(n+m))

# %% [markdown]
# ### Calibrating the alarm
#
# A statistic becomes an alarm by a threshold. The KS p-value offers one ("alarm when p < 0.05"),
# but it assumes 2,016 independent tokens a day, and the tokens of one request are not independent:
# a hard passage makes all of its characters hard. So we **calibrate** instead: compute each
# statistic on 200 days drawn from a *calibration* part of the stream, known to be normal, and put
# the threshold where 5 % of those days lie above it. Then we measure what we care about on 200
# days from a separate *test* part: the **false alarm rate** on clean days, and the **detection
# rate** on the same days under each drift. Three seeds draw different days; the stream is scored
# once (so the spread is that of the day draws, for one reference sample and one noise pattern).

# %%
drift_runs = [drift.run_drift_experiment(scores, seed=s) for s in (0, 1, 2)]
false_alarm = {s: [r["false_alarm"][s] for r in drift_runs] for s in drift.STATISTICS}
nominal = [r["ks_nominal_false_alarm"] for r in drift_runs]
rows = ["| alarm rule | false alarm rate on clean test days (seeds 0, 1, 2) | mean |", "|---|---|---|"]
for s, v in false_alarm.items():
    rows.append(f"| {s} > calibrated threshold | {', '.join(f'{x:.3f}' for x in v)} | {np.mean(v):.3f} |")
rows.append(f"| KS p-value < 0.05 (textbook threshold) | {', '.join(f'{x:.3f}' for x in nominal)} | {np.mean(nominal):.3f} |")
display(Markdown("\n".join(rows)))

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
plot_detection(drift_runs, "noise", ax=axes[0])
plot_detection(drift_runs, "zetan", ax=axes[1])
axes[0].set_title("typos")
axes[1].set_title("another language in the traffic")
fig.tight_layout()
plt.show()

# %%
det = {kind: {x: {s: np.mean([r["detection"][kind][x][s] for r in drift_runs]) for s in drift.STATISTICS}
              for x in drift_runs[0]["detection"][kind]} for kind in ("noise", "zetan")}
spread = max(np.ptp([r["false_alarm"][s] for r in drift_runs]) for s in drift.STATISTICS)
print(f"largest seed-to-seed spread of a false alarm rate: {spread:.3f}")
for s in drift.STATISTICS:  # calibrated for 0.05; 200 days measure a rate to about ±0.015, days overlap
    assert np.mean(false_alarm[s]) < 0.1
ks_calibrated = false_alarm["KS on token NLL"]
assert all(n > c for n, c in zip(nominal, ks_calibrated))  # the same statistic, the textbook threshold:
assert np.mean(nominal) > np.mean(ks_calibrated) + np.ptp(ks_calibrated)  # more alarms, on every seed
m, k, e = (det["noise"][0.01][s] for s in drift.STATISTICS)
assert m > max(k, e) + spread  # 1 % typos: the mean NLL alarms far more often than the other two
assert det["noise"][0.03]["mean NLL"] > 0.95 and det["noise"][0.03]["KS on token NLL"] > 0.85
assert det["noise"][0.03]["MMD² on embeddings"] < 0.3
assert det["zetan"][4 / 32]["KS on token NLL"] > 0.95 and det["zetan"][4 / 32]["MMD² on embeddings"] < 0.3
assert det["zetan"][8 / 32]["MMD² on embeddings"] > 0.7

# %% [markdown]
# What the three seeds show (200 clean and 200 drifted days each, one 0.8M-parameter character model,
# 64-character requests, 32 a day):
#
# - **Calibrate the threshold on normal days.** Each calibrated threshold kept its false alarm rate
#   on fresh clean days in the neighbourhood of the 5 % it was set for (the table; 200 days measure
#   a rate only to about ±1.5 points, and the calibration days are a sample too, so the seeds
#   scatter). The KS test's own p-value, which assumes 2,016 independent tokens a day, alarmed on
#   clean days more often than the calibrated threshold on the *same* statistic: the tokens of one
#   request are not independent draws. Here the excess is moderate because a day's 32 requests are
#   drawn at random; on contiguous text (a pilot of this chapter used 32 consecutive windows) it
#   was far larger.
# - **The model's own loss is the sharpest detector here.** With 1 % of characters replaced, the mean
#   NLL raised an alarm on about half the days, the KS test and the embedding MMD on few more than
#   their false alarm rate (no difference between those two at this intensity). At 3 % both
#   loss-based statistics caught nearly every day while the MMD still mostly slept. Zetan tells the
#   same story: with an eighth of a day's requests in another language the loss-based statistics
#   alarmed on (nearly) every day, the embedding MMD rarely; it needed a quarter.
# - Why the embeddings do worse *here*: averaging 64 positions washes out a few changed characters,
#   and 32 points against 128 is a small sample for a two-sample test in 128 dimensions. With larger
#   days, or an embedding model trained for sentence similarity, the ranking could differ; the loss
#   has the advantage that it needs no labels and measures the thing we care about.
#
# Explore one setting: the histogram of a statistic over the clean test days and over the same days
# drifted, with the calibrated threshold (seed 0). The figure is the default setting.

# %%
plot_day_statistic(drift_runs[0], "noise", 0.01, "mean NLL")
plt.show()


# %% tags=["nbval-ignore-output", "remove-output"]
def explore_drift(kind="noise", intensity=0.01, statistic="mean NLL"):
    levels = list(drift_runs[0]["day_stats"][kind])
    nearest = min(levels, key=lambda x: abs(x - intensity))
    plot_day_statistic(drift_runs[0], kind, nearest, statistic)
    plt.show()


interact(explore_drift, kind=Dropdown(options=["noise", "zetan"], value="noise"),
         intensity=Dropdown(options=[0.01, 0.03, 0.1, 1 / 32, 2 / 32, 4 / 32, 8 / 32], value=0.01),
         statistic=Dropdown(options=list(drift.STATISTICS), value="mean NLL"));

# %% [markdown]
# ## 2. A/B testing two models
#
# Model A is the deployed 4-layer GPT; model B, the challenger, is chapter 15's 1-layer draft GPT
# (cheaper to serve). Is B worse on our traffic, and how much traffic does it take to tell? Each
# request gets two per-example metrics from each model: whether its top-1 guess of the request's
# **last character** is right (a success or not) and its **mean NLL** over the request.
#
# Two designs. **Split traffic**: each request goes to one model, as when users are randomised
# between two deployments. **Paired**: both models answer the same requests, as in an offline replay
# of logged traffic. Split success rates are compared with the **two-proportion z test**: under the
# null both arms share the pooled rate $\hat p = (x_A + x_B)/(n_A + n_B)$, and
#
# $$ z = \frac{\hat p_B - \hat p_A}{\sqrt{\hat p (1-\hat p)(1/n_A + 1/n_B)}}, \qquad p = 2(1 - \Phi(|z|)). $$
#
# A **permutation test** needs no normal approximation {cite}`good2005permutation`: under the null the
# labels "A" and "B" are exchangeable, so shuffle them (split) or flip the sign of each per-request
# difference (paired) many times and see how often the shuffled difference of means is as extreme
# as the observed one. Ours against `scipy.stats` on the pooled traffic, where the z statistic's
# square is Pearson's $\chi^2$ without continuity correction:

# %%
draft = abtest.load_draft()
parts = drift.stream_parts()
pool_ids = torch.cat([drift.windows(parts["calibration"], vocab)[: drift.N_CALIBRATION],
                      drift.windows(parts["test"][: drift.N_TEST * drift.LENGTH], vocab)])
pool_a = drift.Scores(*(torch.cat([getattr(scores["calibration"], k), getattr(scores["noise"][0.0], k)])
                        for k in ("nll", "correct", "emb")))
a, b = abtest.per_example(pool_a), abtest.per_example(drift.score(draft, pool_ids))
half = len(pool_ids) // 2
xa, xb = int(a["last correct"][:half].sum()), int(b["last correct"][half:].sum())
z = two_proportion_ztest(xa, half, xb, half)
chi2 = scipy.stats.chi2_contingency([[xa, half - xa], [xb, half - xb]], correction=False)
print(f"split: A {xa}/{half}, B {xb}/{half}: z = {z.statistic:.4f}, p = {z.pvalue:.4f} "
      f"(scipy χ² = {chi2.statistic:.4f} = z², p = {chi2.pvalue:.4f})")
assert abs(z.statistic**2 - chi2.statistic) < 1e-9 and abs(z.pvalue - chi2.pvalue) < 1e-9

small_a, small_b = a["mean nll"][:12], b["mean nll"][:12]  # 2^12 sign patterns: exact for both
ours = permutation_test(small_a, small_b, paired=True, n_resamples=10_000)
theirs = scipy.stats.permutation_test((small_a, small_b), lambda u, v: v.mean() - u.mean(),
                                      permutation_type="samples", n_resamples=10_000)
print(f"paired permutation test on 12 requests: ours p = {ours.pvalue:.6f}, scipy p = {theirs.pvalue:.6f}")
assert abs(ours.pvalue - theirs.pvalue) < 1e-12

# %% [markdown]
# Now the two designs on the whole pool (768 requests; split: 384 per model):

# %%
everything = np.arange(len(pool_ids))
paired = abtest.tests_on(a, b, everything)
split = abtest.tests_on(a, b, everything[:half], everything[half:])
rows = ["| design | success rate A | success rate B | p (success) | mean NLL A | mean NLL B | p (NLL) |",
        "|---|---|---|---|---|---|---|"]
for name, r in (("paired, 768 requests", paired), ("split, 384 + 384", split)):
    rows.append(f"| {name} | {r['success rate A']:.3f} | {r['success rate B']:.3f} | {r['success p']:.4f} | "
                f"{r['mean NLL A']:.3f} | {r['mean NLL B']:.3f} | {r['NLL p']:.4f} |")
display(Markdown("\n".join(rows)))
assert paired["mean NLL B"] > paired["mean NLL A"] + 0.1 and paired["NLL p"] < 0.01 and split["NLL p"] < 0.01
assert paired["success p"] < 0.01 and split["success p"] > 0.05

# %% [markdown]
# B is worse on both metrics. Paired, both tests say so with the smallest p-value 1999 resamples can
# give (0.001). Split, the mean NLL still does, but the success rate, one bit per request, does not
# reach significance at 5 % with 384 requests per arm: the same traffic, spent on the other design.
# How much traffic does each design need? For each size we draw the requests 40 times at random and
# count how often the permutation test on the mean NLL rejects at 5 %:

# %%
power = abtest.power_by_traffic(a, b, seed=0)
plot_power(abtest.TRAFFIC, power)
plt.show()
print(power)
assert min(power["paired"]) >= 0.95  # paired: (nearly) every draw, from 8 requests per model on
assert power["split"][0] < 0.4 and power["split"][1] < 0.75  # split: 8 and 16 requests often miss

# %% [markdown]
# From 8 requests per model on, the paired test rejected in (nearly) every draw; the split test
# needed between 64 and 128 requests per model to do as well (40 draws measure each share to about
# ±0.08, hence the wiggles): the requests themselves vary far more (some passages are hard for any model) than
# the models differ, and pairing subtracts that shared variation out. When you can replay the same
# traffic through both models, do.
#
# ### Planning the sample size, and the peeking problem
#
# Before a split test, fix the traffic it needs: to detect a true difference between rates $p_A$
# and $p_B$ with probability (**power**) $1-\beta$ at level $\alpha$, each arm needs
#
# $$ n = \frac{\left(z_{1-\alpha/2}\sqrt{2\bar p(1-\bar p)} + z_{1-\beta}\sqrt{p_A(1-p_A) + p_B(1-p_B)}\right)^2}{(p_A - p_B)^2},
#    \qquad \bar p = \tfrac{p_A + p_B}{2}. $$
#
# With the success rates measured on the paired pool as the "true" rates, the formula's $n$, and
# the power a simulation of 2,000 split tests at that $n$ actually reaches:

# %%
p_a, p_b = paired["success rate A"], paired["success rate B"]
n_needed = sample_size_two_proportions(p_a, p_b, alpha=0.05, power=0.8)
simulated = abtest.simulated_power(p_a, p_b, n_needed, sims=2000, seed=0)
print(f"p_A = {p_a:.3f}, p_B = {p_b:.3f}: n = {n_needed} per arm; formula power "
      f"{power_two_proportions(p_a, p_b, n_needed):.3f}, simulated {simulated:.3f}")
assert abs(simulated - 0.8) < 3 * np.sqrt(0.8 * 0.2 / 2000)

# %% [markdown]
# A difference of about six points in success rate needs over a thousand requests per arm, more
# than our split pool had, which is why the split z test above was not conclusive. And the test
# must run to that $n$: looking at a running test every day and stopping at the first $p < 0.05$
# gives the noise many chances to cross the line. An A/A simulation (both arms convert at 50 %, so
# every rejection is false) with up to 1,000 examples per arm, three seeds:

# %%
looks = (1, 2, 5, 10, 20, 50)
peek = np.array([[simulate_peeking(0.5, 1000, k, alpha=0.05, n_sims=2000, seed=s) for k in looks] for s in (0, 1, 2)])
plot_peeking(looks, peek, 0.05)
plt.show()
print(dict(zip(looks, peek.mean(0).round(3))))
assert abs(peek[:, 0].mean() - 0.05) < 0.015  # one look at the planned horizon: the promised 5 %
assert peek[:, -1].mean() > 4 * peek[:, 0].mean()  # 50 looks: many times more false winners

# %% [markdown]
# One look at the end keeps the promised 5 %. Fifty looks at the same data, stopping at the first
# "significant" one, declare a false winner several times as often. The cures are a fixed horizon
# (decide $n$ first, look once), or sequential tests built to be looked at whose thresholds account
# for the looks {cite}`johari2017peeking`.
#
# ## 3. Continual learning: a new domain without forgetting the old one
#
# Chapter 16 fine-tuned the English character GPT on Zetan and noticed that it forgot English. Here
# that is the subject: every weight trains for 100 steps on Zetan (AdamW, learning rate 3e-3, batches
# of 8 windows of 32 characters), and we measure the **forgetting** (rise of the English validation
# loss) and the **gain** (fall of the Zetan validation loss), in nats per character, with
#
# - plain **fine-tuning**;
# - **replay**: 1 of the 8 rows of every batch (12.5 %), or 4 of them (50 %), is English text;
# - **L2 to init**: the loss plus $\frac{\lambda}{2}\lVert\theta - \theta_0\rVert^2$, $\lambda = 0.01$,
#   a pull back toward the English weights;
# - **EWC**: the loss plus $\frac{\lambda}{2}\sum_i F_i(\theta_i - \theta_{0,i})^2$ with $F_i$ the
#   diagonal of the English task's Fisher information (the mean squared gradient of the English
#   loss over 32 batches, `diagonal_fisher`), $\lambda = 10^4$: weights that English depends on are
#   held hard, the others are free. L2 to init is EWC with every $F_i = 1$. The strengths were set
#   by a pilot on seed 0 (EWC's, from $10^3, 10^4, 10^5$: the strongest whose Zetan gain stayed within
#   0.05 of L2's), not tuned on the results below.
#
# Each method, three seeds (the batches drawn), from the shipped results file; below, one run
# re-done live. What replay does to a batch (rows drawn from the old corpus go first):

# %%
data = forgetting.domains(vocab)
mixed = replay_batches(data["new"].get_batch, data["old"].get_batch, 0.5)
x, _ = mixed("train", torch.Generator().manual_seed(0))
for row in (0, 3, 4, 7):
    print(f"row {row}: {vocab.decode(x[row].tolist())!r}")

# %%
record = forgetting.load_results()
rows_cl = forgetting.summary(record)
table = ["| method | forgetting of English (mean; min–max over 3 seeds) | gain on Zetan (mean; min–max) |",
         "|---|---|---|"]
for r in rows_cl:
    table.append(f"| {r['method']} | {r['forgetting']:.3f} ({r['forgetting_min']:.3f}–{r['forgetting_max']:.3f}) | "
                 f"{r['gain']:.3f} ({r['gain_min']:.3f}–{r['gain_max']:.3f}) |")
display(Markdown("\n".join(table)))
plot_forgetting(record)
plt.show()

# %%
cl = {r["method"]: r for r in rows_cl}
base = record["runs"][0]["before"]
print(f"before fine-tuning: English {base['old']:.3f}, Zetan {base['new']:.3f} nats/char")
noise_f = max(r["forgetting_max"] - r["forgetting_min"] for r in rows_cl)
noise_g = max(r["gain_max"] - r["gain_min"] for r in rows_cl)
print(f"largest seed spread: forgetting {noise_f:.3f}, gain {noise_g:.3f} nats/char")
f = {k: v["forgetting"] for k, v in cl.items()}
g = {k: v["gain"] for k, v in cl.items()}
assert f["fine-tune"] > base["old"] + f["replay 12.5%"]  # measured 3.56 against 0.80 (the English loss was 1.82)
assert f["replay 12.5%"] > f["replay 50%"] + noise_f
assert f["fine-tune"] > f["L2 to init"] + noise_f and f["L2 to init"] > f["replay 12.5%"] + noise_f
assert f["L2 to init"] > f["EWC"] + noise_f and f["EWC"] > f["replay 12.5%"] + noise_f  # EWC in between
assert abs(g["EWC"] - g["L2 to init"]) < 0.03  # at about the same gain
assert g["fine-tune"] - g["replay 12.5%"] < 0.1  # one English row in eight costs little Zetan gain
assert g["replay 12.5%"] > g["replay 50%"] + noise_g  # half the batch costs measurably more

# %% [markdown]
# After 100 steps on a 0.8M-parameter character model:
#
# - plain fine-tuning made Zetan easy and English far worse: the English loss rose by more than
#   the whole loss it started from (it roughly tripled), catastrophic forgetting;
# - replaying **one English row in eight** removed most of that forgetting for almost no loss of
#   Zetan gain; half the batch in English forgot even less but learnt Zetan measurably less: replay
#   trades the two, and a little buys most of the protection;
# - the L2 pull, at the one strength we tried, sat in between: it slowed the drift of the weights
#   without telling the model what English looks like;
# - EWC, at about the same Zetan gain as L2 (within 0.03 nats), forgot about half as much: knowing
#   *which* weights English needs is worth more than holding all of them equally. Replaying one
#   English row in eight still forgot less than either pull, at these strengths.
#
# The live re-run of one cell of the table (replay 12.5 %, seed 0): the same seed gives the same
# batches, so it must reproduce the recorded losses.

# %%
live = forgetting.run(LIVE_METHOD, LIVE_SEED, record["steps"])
recorded = next(r for r in record["runs"] if (r["method"], r["seed"]) == (LIVE_METHOD, LIVE_SEED))
print(f"live: English {live['after']['old']:.4f}, Zetan {live['after']['new']:.4f}; recorded: "
      f"{recorded['after']['old']:.4f}, {recorded['after']['new']:.4f}")
assert abs(live["after"]["old"] - recorded["after"]["old"]) < 2e-3
assert abs(live["after"]["new"] - recorded["after"]["new"]) < 2e-3

# %% [markdown]
# ## 4. Experiment tracking with MLflow
#
# Fifteen runs are already hard to keep apart in a notebook; a team makes hundreds. An **experiment
# tracker** stores each run's parameters, metrics (with their history by step) and files, and
# answers queries over them. MLflow {cite}`zaharia2018mlflow` does this with a tracking store; here
# a local SQLite file in a temporary folder (no server, nothing on the network), which we delete at
# the end. We log the fifteen recorded runs and the live one (with its training-loss curve and the
# figure as an artifact), then ask the store, not our Python lists, which run to ship: the least
# forgetting among the runs whose Zetan loss is within 0.1 nats/char of the best.

# %%
logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating tables" chatter
store_dir = Path(tempfile.mkdtemp(prefix="ch17-mlflow-"))
try:
    tracking = LocalTracking(store_dir)
    exp = tracking.experiment("continual-learning")
    for r in record["runs"]:
        tracking.log_run(exp, f"{r['method']} seed {r['seed']}",
                         params={"method": r["method"], "seed": r["seed"], "steps": r["steps"]},
                         metrics={"forgetting": r["forgetting"], "gain": r["gain"],
                                  "old_loss": r["after"]["old"], "new_loss": r["after"]["new"]},
                         tags={"source": "17_continual.json"})
    figure = store_dir / "forgetting.png"
    plot_forgetting(record).figure.savefig(figure, dpi=80)
    plt.close("all")
    live_id = tracking.log_run(
        exp, "live replay 12.5% seed 0", params={"method": live["method"], "seed": live["seed"], "steps": live["steps"]},
        metrics={"forgetting": live["forgetting"], "gain": live["gain"], "old_loss": live["after"]["old"],
                 "new_loss": live["after"]["new"]},
        history={"train_loss": list(enumerate(live["train_loss"], start=1))}, artifacts=[figure], tags={"source": "live"})
    best_new = tracking.best_run(exp, "new_loss").data.metrics["new_loss"]
    best = tracking.best_run(exp, "forgetting", filter_string=f"metrics.new_loss < {best_new + 0.1}")
    print(f"{len(tracking.runs(exp))} runs in {tracking.uri.split('/')[-1]}; best Zetan loss {best_new:.3f}; "
          f"picked: {best.info.run_name} (forgetting {best.data.metrics['forgetting']:.3f}, "
          f"Zetan loss {best.data.metrics['new_loss']:.3f})")
    curve = tracking.history(live_id, "train_loss")
    print(f"the live run's history: {len(curve)} steps, loss {curve[0][1]:.3f} -> {curve[-1][1]:.3f}; "
          f"artifacts {tracking.artifact_names(live_id)}")
    # the store's answer, recomputed from the record by hand
    eligible = [r for r in record["runs"] + [live] if r["after"]["new"] < best_new + 0.1]
    by_hand = min(eligible, key=lambda r: r["forgetting"])
    assert abs(best.data.metrics["forgetting"] - by_hand["forgetting"]) < 1e-9
    assert best.data.params["method"] == by_hand["method"] and by_hand["method"].startswith("replay")
    assert [v for _, v in curve] == live["train_loss"]
finally:
    shutil.rmtree(store_dir, ignore_errors=True)

# %% [markdown]
# The picked run is a replay run: the least forgetting among the runs that also learnt Zetan well.
# The same store would hold next month's runs, and `search_runs` with a filter and an ordering
# replaces the spreadsheet.
#
# ### A model registry behind a release gate
#
# Picking a run is not releasing a model. A **model registry** keeps numbered versions of a model,
# each linked to the run that made it, and a pointer (MLflow calls it an alias) to the version in
# production. Two rules make it trustworthy. Each version records the **content hash** of its
# weights (`state_dict_sha256`: every tensor's name, dtype, shape and bytes), so the entry can be
# checked against whatever file is deployed, the way `data/DATASHEET.md` pins every shipped file by
# its SHA-256. And a new version takes the pointer only through a **release gate**: on a held-out
# suite that both models answer, the paired bootstrap interval of the per-request difference in
# mean NLL (candidate minus production) must lie below a margin of 0.02 nats per character. The
# interval, not the mean: a candidate whose mean looks fine on too few requests is still a "no".
#
# Three candidates try to replace `gpt-char-jargon` on the 768 requests of section 2: the 1-layer
# draft model, the 2-layer student distilled from it in chapter 11, and the production model with
# every weight rounded to bfloat16 (half the bytes on disk).

# %%
MARGIN = 0.02
bf16_copy = copy.deepcopy(model)
with torch.no_grad():
    for prm in bf16_copy.parameters():
        prm.copy_(prm.to(torch.bfloat16).float())
candidates = {"draft, 1 layer": (draft, b["mean nll"]),
              "distilled, 2 layers": (load_char_gpt("gpt-char-distilled")[0], None),
              "bf16-rounded weights": (bf16_copy, None)}
registry_dir = Path(tempfile.mkdtemp(prefix="ch17-registry-"))
try:
    registry = LocalTracking(registry_dir)
    releases = registry.experiment("releases")
    base_run = registry.log_run(releases, "gpt-char-jargon", metrics={"mean_nll": float(a["mean nll"].mean())})
    base_version = registry.register_version("jargon-lm", base_run, sha256=state_dict_sha256(model.state_dict()),
                                             tags={"gate": "first release"})
    registry.promote("jargon-lm", base_version)
    gates = {}
    for name, (candidate, nll) in candidates.items():
        if nll is None:
            nll = abtest.per_example(drift.score(candidate, pool_ids))["mean nll"]
        gate = noninferiority_gate(nll, a["mean nll"], margin=MARGIN)
        run = registry.log_run(releases, name, metrics={"mean_nll": float(nll.mean()), "gate_high": gate.high})
        version = registry.register_version("jargon-lm", run, sha256=state_dict_sha256(candidate.state_dict()),
                                            tags={"gate": "pass" if gate.passed else "fail"})
        if gate.passed:
            registry.promote("jargon-lm", version)
        gates[name] = (gate, version)
        print(f"{name:<22} version {version}: {gate}")
    production = registry.version_for("jargon-lm")
    print(f"production now: version {production.version}, sha256 {production.tags['sha256'][:16]}...")
    assert not gates["draft, 1 layer"][0].passed and gates["draft, 1 layer"][0].low > 0.1
    assert not gates["distilled, 2 layers"][0].passed and gates["distilled, 2 layers"][0].low > 0.1
    assert gates["bf16-rounded weights"][0].passed and abs(gates["bf16-rounded weights"][0].mean_difference) < 0.01
    assert str(production.version) == gates["bf16-rounded weights"][1]
    assert production.tags["sha256"] == state_dict_sha256(bf16_copy.state_dict()) != state_dict_sha256(model.state_dict())
finally:
    shutil.rmtree(registry_dir, ignore_errors=True)

# %% [markdown]
# The gate turns down both smaller models, whose whole intervals lie far above the margin: cheaper
# to serve, clearly worse on this traffic. It lets the bfloat16-rounded copy through, and the
# registry's production entry now carries that copy's hash, which differs from the original's: had
# someone deployed the old file under the new version, the hash would say so.
#
# ## 5. The tool landscape
#
# What each common tool is for (as each project describes itself; we used only MLflow here):
#
# | tool | what it is for |
# |---|---|
# | MLflow | experiment tracking (runs, parameters, metrics, artifacts), a model registry, model packaging; open source, local or server store |
# | Weights & Biases | hosted experiment tracking, dashboards and sweeps; a client library logs to its service |
# | TensorBoard | visualising training logs (scalars, histograms) written to local event files |
# | Prometheus + Grafana | operations metrics: Prometheus scrapes and stores time series (latency, error rates, any custom gauge such as a daily drift statistic) and fires alert rules; Grafana draws dashboards over it |
# | Evidently | reports and tests of data and prediction drift between a reference and a current dataset |
# | DVC | versioning data and models next to git, and pipelines that rebuild them |
#
# The ideas of this chapter do not depend on the tool: a drift statistic with a calibrated threshold
# can be a Prometheus gauge with an alert rule; an A/B test's analysis is the statistics above,
# whatever dashboard shows it. Keeping these pieces working is much of the cost of a system that
# learns from data {cite}`sculley2015hidden`.
#
# ## Summary
#
# - **Monitor with the model's own loss, and calibrate.** On our stream, the mean NLL of a day
#   flagged small drifts that a KS test on token NLLs and an MMD on mean-pooled embeddings missed
#   more often. Thresholds set on known-normal days kept their false alarm rate near the 5 % they
#   were set for; the KS test's own p-value, which assumes independent tokens, alarmed more often.
# - **A/B tests**: the two-proportion z test and permutation tests match `scipy.stats`; pairing the
#   two models on the same requests needed far less traffic than splitting it; fix the sample size
#   in advance with the power formula (a simulation confirmed its 80 %), and do not stop at the first
#   significant look (fifty looks multiplied the false positive rate several times).
# - **Continual learning**: full fine-tuning on a new domain wrecked the old one; replaying one old
#   row in eight prevented most of that at almost no cost to the new domain; EWC's Fisher-weighted
#   pull forgot about half as much as a plain L2 pull at the same gain.
# - **Tracking**: MLflow stores runs in a local SQLite file and `search_runs` picks the best one; a
#   registry keeps versions with the content hash of their weights, and a paired-bootstrap gate
#   decides which version production points at.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-17-ks
# :nonumber:
# ```
# **Exercise 17.1 (the KS statistic).** Write `ks_statistic(a, b)`: for two 1-D float tensors
# (any lengths, ties allowed), return the two-sample Kolmogorov–Smirnov statistic
# $D = \max_x |F_a(x) - F_b(x)|$ as a float, where $F_a(x)$ is the fraction of `a` that is $\le x$.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The gap only changes at observed values, so it is enough to evaluate both distribution functions at every value of both samples; on sorted data, counting the values at or below x is a binary search.
# ```

# %% [markdown]
# ```{solution-start} ex-17-ks
# :class: dropdown
# ```

# %%
def ks_statistic(a, b):
    ### BEGIN SOLUTION
    a, b = torch.sort(a.double().flatten()).values, torch.sort(b.double().flatten()).values
    x = torch.cat([a, b])
    fa = torch.searchsorted(a, x, right=True) / len(a)
    fb = torch.searchsorted(b, x, right=True) / len(b)
    return float((fa - fb).abs().max())
    ### END SOLUTION


# %% [markdown]
# Evaluating only at the points of `a` misses a gap that peaks at a point of `b`; forgetting the
# absolute value gives the one-sided statistic $D^+$.
#
# ```{solution-end}
# ```

# %%
from roadmap_lib.chapters.ch17_llmops.exercises import check_ks_statistic

check_ks_statistic(ks_statistic)

# %% [markdown]
# ```{exercise-start}
# :label: ex-17-ztest
# :nonumber:
# ```
# **Exercise 17.2 (the two-proportion z statistic).** Write `two_proportion_z(x_a, n_a, x_b, n_b)`:
# the z statistic of B's success rate minus A's, with the pooled standard error, for `x_a` successes
# out of `n_a` and `x_b` out of `n_b` (plain ints). Then use it on the split traffic of section 2.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Under the null hypothesis both arms have the same rate: estimate that one rate from both arms together, and use it in the variance of the difference of the two observed rates.
# ```

# %% [markdown]
# ```{solution-start} ex-17-ztest
# :class: dropdown
# ```

# %%
def two_proportion_z(x_a, n_a, x_b, n_b):
    ### BEGIN SOLUTION
    pooled = (x_a + x_b) / (n_a + n_b)
    se = (pooled * (1 - pooled) * (1 / n_a + 1 / n_b)) ** 0.5
    return (x_b / n_b - x_a / n_a) / se
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
from roadmap_lib.chapters.ch17_llmops.exercises import check_two_proportion_z

check_two_proportion_z(two_proportion_z)
print(f"split traffic of section 2: z = {two_proportion_z(xa, half, xb, half):.4f}")

# %% [markdown]
# ```{exercise-start}
# :label: ex-17-sample-size
# :nonumber:
# ```
# **Exercise 17.3 (predict, then measure: how much traffic?).** A new decoding setting is expected
# to raise a task's success rate from 50 % to 53 %. Write `n_per_arm(p_a, p_b, alpha, power)`, the
# examples per arm a two-sided split z test needs, and predict (before running the measuring cell)
# how many that is for this case at $\alpha = 0.05$, power 0.8. The measuring cell then simulates
# 2,000 split tests at your $n$ and counts how often they detect the difference.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Two normal quantiles add up: one for the false positive rate (two-sided), one for the power; the needed n grows with the inverse square of the difference.
# ```

# %% [markdown]
# ```{solution-start} ex-17-sample-size
# :class: dropdown
# ```

# %%
def n_per_arm(p_a, p_b, alpha, power):
    ### BEGIN SOLUTION
    from statistics import NormalDist

    z_alpha, z_power = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    p_bar = (p_a + p_b) / 2
    spread = z_alpha * (2 * p_bar * (1 - p_bar)) ** 0.5 + z_power * (p_a * (1 - p_a) + p_b * (1 - p_b)) ** 0.5
    return int(np.ceil(spread**2 / (p_a - p_b) ** 2))
    ### END SOLUTION


predicted_n = n_per_arm(0.50, 0.53, 0.05, 0.8)
print(f"predicted: {predicted_n} examples per arm")

# %% [markdown]
# A three-point lift at 50 % needs over four thousand examples per arm: the difference enters
# squared in the denominator, so halving it quadruples the traffic.
#
# ```{solution-end}
# ```

# %%
from roadmap_lib.chapters.ch17_llmops.exercises import check_measured_power, check_sample_size

check_sample_size(n_per_arm)
measured_power = abtest.simulated_power(0.50, 0.53, predicted_n, sims=2000, seed=1)
print(f"simulated power at n = {predicted_n}: {measured_power:.3f}")
check_measured_power(measured_power, 0.8, 2000)
