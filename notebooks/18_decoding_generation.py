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
# # 18. Decoding and generation: truncation, penalties, grammars and facts
#
# **What you will learn**
#
# - decoding as a *pipeline of logits processors*, each one line of maths, each equal to its
#   transformers counterpart on the same scores: temperature, top-k, top-p {cite}`holtzman2020curious`,
#   min-p {cite}`nguyen2024minp`, locally typical sampling {cite}`meister2023locally`, epsilon and eta
#   sampling {cite}`hewitt2022truncation`, the repetition penalty of CTRL {cite}`keskar2019ctrl`,
#   OpenAI's frequency and presence penalties, and the n-gram ban;
# - the quality–diversity frontier of five truncation rules on the character-level GPT of chapter 07,
#   over three independent sets of samples;
# - why greedy decoding loops {cite}`holtzman2020curious,welleck2020neural`, what each penalty and
#   contrastive search {cite}`su2022contrastive` do to the loops, and what they cost; that beam search
#   loops as well, and that the same processors run inside it, on each beam's log-probabilities, as in
#   transformers;
# - constrained decoding: a regular expression compiled to a finite-state machine that masks the
#   logits {cite}`thompson1968regular,willard2023efficient`, so that every output is valid;
# - hallucination on a fact table taken from the training corpus: accuracy against temperature, and
#   agreement across samples {cite}`wang2023selfconsistency,manakul2023selfcheckgpt` as a detector of
#   wrong answers, with its precision and recall.
#
# **What you need**: chapter 07 (the character GPT, greedy decoding, temperature, top-k and top-p,
# which this chapter does not repeat) and the KV cache of chapter 04.
#
# **Run time**: about 60 s on a laptop CPU on one thread, most of it sampling (a few thousand
# continuations of 40 characters).

# %%
# %matplotlib inline
from itertools import pairwise
from statistics import mean, stdev

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from ipywidgets import FloatSlider, IntSlider, interact
from tqdm.auto import tqdm
from transformers.generation.logits_process import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    MinPLogitsWarper,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TypicalLogitsWarper,
)

from roadmap_lib import data_path, set_seed
from roadmap_lib.chapters.ch18_decoding_generation.exercises import (
    check_distinct_prediction,
    check_min_p,
    check_repetition_penalty,
    check_time_regex,
    measure_distinct,
)
from roadmap_lib.chapters.ch18_decoding_generation.experiments import (
    BEAM_SETTINGS,
    answer_logits,
    beam_study,
    constrained_study,
    expected_accuracy,
    fact_table,
    frontier,
    mean_over_seeds,
    pick_prompts,
    repetition_study,
    sample_answers,
    self_consistency,
    vocabulary,
)
from roadmap_lib.chapters.ch18_decoding_generation.plots import (
    plot_accuracy_vs_temperature,
    plot_agreement,
    plot_frontier,
    plot_repetition,
    plot_step,
)
from roadmap_lib.decoding import generate
from roadmap_lib.generation import next_token_logits
from roadmap_lib.logits_processors import (
    Epsilon,
    Eta,
    MinP,
    NoRepeatNGram,
    RepetitionPenalty,
    Typical,
    make_pipeline,
)
from roadmap_lib.models.hf import gpt_to_hf
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)  # a model this small runs as fast on one thread, and steadily on a busy CPU

# %% [markdown]
# ## 1. One decoding step is a pipeline
#
# A decoder produces logits $z \in \mathbb{R}^V$ for the next token; *decoding* is everything that
# happens between those logits and the token. transformers and every serving engine organise it as a
# list of **logits processors**, each a function $(\text{ids}, z) \mapsto z'$ that rescales some
# logits or sets them to $-\infty$. Two families:
#
# - **penalties** look at the history. CTRL's repetition penalty divides a positive logit of a token
#   already seen by $\theta$ and multiplies a negative one by $\theta$. OpenAI's penalties subtract
#   $z_j \leftarrow z_j - c_j\,\alpha_\text{freq} - [c_j > 0]\,\alpha_\text{pres}$ with $c_j$ the count of
#   token $j$ generated so far. The n-gram ban sets $z_j = -\infty$ for every token that would repeat an
#   n-gram already in the text.
# - **truncation rules** keep a head of $p = \operatorname{softmax}(z)$ and drop the tail. With
#   $p_{(1)} \ge p_{(2)} \ge \dots$ the sorted probabilities and $H = -\sum_j p_j \log p_j$ the entropy:
#
# | rule | keeps token $j$ when |
# |---|---|
# | top-k | $j$ is among the $k$ most likely |
# | top-p | $j$ is in the smallest head with mass $\ge p$ |
# | min-p | $p_j \ge \text{min\_p} \cdot p_{(1)}$ |
# | epsilon | $p_j \ge \epsilon$ |
# | eta | $p_j \ge \min(\epsilon, \sqrt{\epsilon}\, e^{-H})$ |
# | typical | $\lvert -\log p_j - H \rvert$ is among the smallest, up to mass $\tau$ |
#
# Min-p scales its cut with the model's confidence; eta relaxes its cut when the distribution is
# flat; typical sampling ranks tokens by how close their surprisal is to the average surprisal, and
# can drop the most likely token. Our implementations are in `roadmap_lib.logits_processors`; here
# they meet transformers' on the zoo model's own logits after 12 prompts from the corpus.

# %%
model, vocab, record = load_char_gpt()
corpus = data_path("jargon.txt").read_text()
corpus_vocab = vocabulary(corpus)
prompts = pick_prompts(corpus, 12)
ids = torch.stack([vocab.encode(p) for p in prompts])
scores = next_token_logits(model, ids)
history = torch.cat([ids, ids.flip(1)], dim=1)  # a history with repeats, for the penalties

pairs = {
    "min-p 0.1": (MinP(0.1), MinPLogitsWarper(0.1)),
    "typical 0.7": (Typical(0.7), TypicalLogitsWarper(0.7)),
    "epsilon 0.01": (Epsilon(0.01), EpsilonLogitsWarper(0.01)),
    "eta 0.01": (Eta(0.01), EtaLogitsWarper(0.01)),
    "repetition 1.3": (RepetitionPenalty(1.3), RepetitionPenaltyLogitsProcessor(1.3)),
    "no-repeat 3-gram": (NoRepeatNGram(3), NoRepeatNGramLogitsProcessor(3)),
}
rows = []
for name, (ours, theirs) in pairs.items():
    a, b = ours(history, scores.clone()), theirs(history, scores.clone())
    same_mask = torch.equal(torch.isinf(a), torch.isinf(b))
    gap = (a - b)[torch.isfinite(b)].abs().max().item()
    rows.append(f"| {name} | {(torch.isfinite(a).sum(-1).float().mean().item()):.1f} | {same_mask} | {gap:.1e} |")
    assert same_mask and gap <= 1e-6, name
display(Markdown("| processor | tokens left (mean of 12 rows, of 138) | same tokens removed | max logit gap |\n"
                 "|---|---|---|---|\n" + "\n".join(rows)))

# %% [markdown]
# Every processor removes the same tokens as transformers' and leaves the others within $10^{-6}$
# (the unit tests repeat this on random scores with ties, and compare whole `generate` runs, greedy
# and sampled with the same seed). The frequency and presence penalties have no transformers
# counterpart; their test checks the defining formula on hand-counted histories.
#
# A whole generation must match too. We copy the zoo model into a transformers `GPT2LMHeadModel`
# (`gpt_to_hf`) and compare greedy decoding with a repetition penalty and an n-gram ban, 40 new
# characters after each of the 12 prompts.

# %%
hf_model = gpt_to_hf(model).eval()
with torch.no_grad():
    theirs = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False,
                               repetition_penalty=1.3, no_repeat_ngram_size=6, pad_token_id=0)
ours = generate(model, ids, 40, processors=make_pipeline(repetition_penalty=1.3, no_repeat_ngram_size=6),
                use_cache=True)
assert torch.equal(ours, theirs)
print("identical generations:", torch.equal(ours, theirs))
print(repr(vocab.decode(ours[0])))

# %% [markdown]
# What the processors do to one step: the next-character distribution after a prompt that ends in
# the middle of a word, before and after min-p 0.1 with a repetition penalty (the prompt is the
# history). The widget at the end of the chapter lets you move every knob.

# %%
step_prompt = "The hacker ethic is the belief that inform"
plot_step(model, vocab, step_prompt, min_p=0.1, repetition_penalty=1.3)
plt.show()

# %% [markdown]
# The repetition penalty lowers every character that already occurs in the prompt (`a`, the space,
# `e`, `s`), so the newline, which does not, gains; then min-p drops every character below a tenth of
# the most likely one (`i` and the long tail).

# %% [markdown]
# ## 2. The quality–diversity frontier
#
# Every truncation rule has one knob that trades how *good* samples are against how *different* they
# are. We measure both on the character GPT, which writes character by character, so "good" is
# modest: **quality** is the share of generated words (complete runs of letters) that occur anywhere
# in the Jargon File, and **diversity** is distinct-2, the share of distinct word bigrams among 4
# continuations of the same prompt (1 means the 4 samples share no bigram). Each setting samples 40
# characters after each of 6 corpus prompts (16 characters, picked by a fixed rule in
# `pick_prompts`), 4 times, in 3 independent replicate sets: the error bars are the standard
# deviation across the replicates. All 17 settings run as one batch through a `RowGroups` pipeline.

# %%
frontier_prompts = pick_prompts(corpus, 6)
fr = frontier(model, vocab, frontier_prompts, corpus_vocab)
ws, d2 = mean_over_seeds(fr, "word_share"), mean_over_seeds(fr, "distinct2")
plot_frontier(fr)
plt.show()

# %%
display(Markdown("| method | value | word share | distinct-2 |\n|---|---|---|---|\n" + "\n".join(
    f"| {m} | {v:g} | {ws[m, v][0]:.3f} ± {ws[m, v][1]:.3f} | {d2[m, v][0]:.3f} ± {d2[m, v][1]:.3f} |"
    for m, v in ws)))
noise = max(s for _, s in ws.values())  # the largest spread across replicates of any setting
print(f"noise: the largest std of word share across replicates is {noise:.3f}")

# %% [markdown]
# What the table shows, after 40 characters from 6 prompts, on a 0.8M-parameter character model:
#
# - **Temperature is the steepest knob.** From 0.3 to 1.4 the word share falls by far more than the
#   noise, while distinct-2 rises and saturates near 1 from about 0.7 on: beyond that point a higher
#   temperature buys no measurable diversity and costs quality.
# - **At saturated diversity the methods tie.** Take, for each method, the best word share among its
#   settings whose distinct-2 is at least 0.98 (saturated: within the noise of 1). The five bests,
#   printed below, lie within 1.5 times the noise of each other: at this scale we measure **no
#   difference** between the truncation rules and plain temperature. The differences the literature
#   reports come from large subword models and long texts, a regime we did not run.
# - **Typical sampling has no low-diversity end here.** Even at $\tau = 0.3$ it keeps distinct-2 near
#   1 and its word share stays below what min-p 0.3 or top-p 0.5 reach: at character level the most
#   likely next character is often *less* surprising than average, and typical sampling drops it.

# %%
t_lo, t_hi = ws["temperature", 0.3][0], ws["temperature", 1.4][0]
assert t_lo - t_hi > 5 * noise, (t_lo, t_hi)
assert d2["temperature", 1.4][0] > d2["temperature", 0.3][0] + 0.05
assert abs(d2["temperature", 1.0][0] - d2["temperature", 1.4][0]) < 0.02  # saturated
best = {m: max(ws[k][0] for k in ws if k[0] == m and d2[k][0] >= 0.98) for m, _ in ws}
print("best word share at distinct-2 >= 0.98:", {m: round(v, 3) for m, v in best.items()})
assert max(best.values()) - min(best.values()) < 1.5 * noise, best
assert ws["typical", 0.3][0] < min(ws["min-p", 0.3][0], ws["top-p", 0.5][0]) - noise
assert d2["typical", 0.3][0] > 0.97

# %% [markdown]
# Some pairs lean one way, some the other, all within the noise. What the rules share is the
# mechanism: cutting the tail of 138 characters (or sharpening it away) removes the rare, wrong
# characters that sampling from the full distribution lets through a few times per sentence, and a
# misspelt word counts as a non-word. Which rule you use matters less here than how far you turn it.
#
# ## 3. Greedy loops, and what the penalties do
#
# Greedy decoding picks the most likely character every time, and on this model it falls into loops
# within a few words: the same phrase again and again. We measure a loop as the share of character
# 8-grams of a continuation that already occurred earlier in it, over three disjoint sets of 4 corpus
# prompts (the dots), 48 new characters each (the most the 64-character window allows after a
# 16-character prompt), for greedy decoding alone, with each penalty, and with contrastive search
# ($k = 4$, $\alpha = 0.6$), which picks among the 4 most likely characters the one whose hidden state
# is least similar to any earlier one.

# %%
prompt_sets = [pick_prompts(corpus, 4, offset=o) for o in (0, 3, 6)]
rep = repetition_study(model, vocab, prompt_sets, corpus_vocab, contrastive={"top_k": 4, "alpha": 0.6})
plot_repetition(rep)
plt.show()


def by_setting(key):
    return {s: [r[key] for r in rep if r["setting"] == s] for s in dict.fromkeys(r["setting"] for r in rep)}


repeated, words_ok = by_setting("repeated"), by_setting("word_share")
display(Markdown("| setting | repeated 8-grams | word share | after the first prompt of set 0 |\n|---|---|---|---|\n"
                 + "\n".join(f"| {s} | {mean(repeated[s]):.3f} ± {stdev(repeated[s]):.3f} | "
                             f"{mean(words_ok[s]):.3f} ± {stdev(words_ok[s]):.3f} | "
                             f"`{next(r['sample'] for r in rep if r['setting'] == s)!r}` |"
                             for s in repeated)))

# %% [markdown]
# Over these 12 prompts:
#
# - **greedy loops**: about a third of its 8-grams are repeats (the sample above is the first prompt
#   of set 0, picked by that rule; the other prompts loop the same way);
# - **every penalty and contrastive search cut the repeats** to under a quarter of greedy's, except
#   the n-gram ban of size 12: it only forbids repeating 12 characters, so the loop goes on with one
#   character changed ("standay" in its sample). The ban of size 6 leaves no repeated 8-gram at all,
#   by construction;
# - **the cost in real words is mostly below our noise.** No setting writes more corpus words than
#   greedy (which repeats a few common ones), but only the 12-gram ban loses more than 1.5 times the
#   spread across prompt sets; for the others the loss is within it, so at 48 characters and 12
#   prompts we measure no difference.

# %%
g = mean(repeated["greedy"])
assert 0.2 < g < 0.45, g
for s in ("repetition 1.3", "frequency 0.3", "presence 0.6", "no-repeat 6-gram", "contrastive"):
    assert mean(repeated[s]) < g / 4, s
assert max(repeated["no-repeat 6-gram"]) == 0.0  # by construction: no 6-gram twice, so no 8-gram
assert mean(repeated["no-repeat 12-gram"]) > g / 3
noise3 = max(stdev(v) for v in words_ok.values())
loss = {s: mean(words_ok["greedy"]) - mean(v) for s, v in words_ok.items() if s != "greedy"}
print(f"loss of word share against greedy (noise {noise3:.3f}):", {s: round(v, 3) for s, v in loss.items()})
assert min(loss.values()) > 0
assert [s for s, v in loss.items() if v > 1.5 * noise3] == ["no-repeat 12-gram"]

# %% [markdown]
# The penalty strengths were set once, to values that break the loops, and not tuned on these
# numbers. Word share is a crude judge of repetitive text: greedy's is high *because* it repeats a
# few common words.
#
# ### Beam search loops too, and takes the same processors
#
# Beam search keeps the 4 most likely partial continuations instead of one, so it finds text of
# higher likelihood than greedy decoding, and likely text is repetitive text
# {cite}`holtzman2020curious`. transformers runs its logits processors inside beam search as well:
# each beam's next-token log-probabilities go through the pipeline (here the 6-gram ban sets the
# banned ones to $-\infty$; a repetition penalty would multiply the negative log-probabilities of
# seen tokens) before they are added to the beam's total. `beam_search(..., processors=...)` does
# the same, and `tests/test_generation_beam.py` checks it against `generate(num_beams=...,
# no_repeat_ngram_size=..., repetition_penalty=..., min_new_tokens=..., num_return_sequences=...)`.
# Same 12 prompts and 48 characters as above, 4 beams, no end token (every hypothesis runs to the
# length limit), with a KV cache that follows the surviving beams; the last column is the
# log-probability per character of the chosen text under the plain model.

# %%
beam_rows = beam_study(model, vocab, prompt_sets, corpus_vocab)
beam_rep = {s: [r["repeated"] for r in beam_rows if r["setting"] == s] for s in BEAM_SETTINGS}
beam_lp = {s: [r["logprob"] for r in beam_rows if r["setting"] == s] for s in BEAM_SETTINGS}
display(Markdown("| setting | repeated 8-grams | log-prob per character | after the first prompt of set 0 |\n|---|---|---|---|\n"
                 + "\n".join(f"| {s} | {mean(beam_rep[s]):.3f} ± {stdev(beam_rep[s]):.3f} | "
                             f"{mean(beam_lp[s]):.3f} ± {stdev(beam_lp[s]):.3f} | "
                             f"`{next(r['sample'] for r in beam_rows if r['setting'] == s)!r}` |"
                             for s in BEAM_SETTINGS)))
ban_cost = [a - b for a, b in zip(beam_lp["beam"], beam_lp["beam + no-repeat 6-gram"])]  # paired by prompt set
print("repeated 8-grams, greedy vs beam:", round(mean(repeated["greedy"]), 3), round(mean(beam_rep["beam"]), 3),
      "| log-prob lost to the ban, per prompt set:", [round(c, 3) for c in ban_cost])

# %%
assert mean(beam_rep["beam"]) > 0.15  # beam search loops
spread = max(stdev(repeated["greedy"]), stdev(beam_rep["beam"]))
assert abs(mean(beam_rep["beam"]) - mean(repeated["greedy"])) < spread  # no difference from greedy
assert max(beam_rep["beam + no-repeat 6-gram"]) == 0.0  # the ban reaches inside the beams
assert all(0 < c < 0.05 for c in ban_cost), ban_cost

# %% [markdown]
# Over these 12 prompts beam search repeats about as much as greedy decoding: the gap between their
# means is smaller than the spread across prompt sets, so we measure **no difference** (the sample in
# the table is the first prompt of set 0, by the same rule as above). With the 6-gram ban inside the
# search no hypothesis repeats an 8-gram, and the cost is small and consistent: the text it finds is
# a little less likely under the model in every prompt set, by the amounts printed above (all under
# 0.05 nats per character), on a 0.8M-parameter character model and 48 characters.
# ## 4. Constrained decoding: only valid outputs
#
# Sometimes the output must have a *format*: a date, a JSON object, a call to a tool. Constrained
# decoding compiles the format, here a regular expression, into a finite-state machine (Thompson's
# construction, determinised on the fly, in `roadmap_lib.constrained`). Before each step it walks the
# machine along the characters generated so far and sets to $-\infty$ every character that would lead
# into a dead state, one from which no accepting state can be reached. The model still chooses among
# what is left, so the output is both valid and as likely as the model can make it.
#
# Two formats, 24 samples at temperature 1 for each of 3 seeds, with and without the mask:

# %%
DATE = r"(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\."
ENTRY = r'\{"term": "[a-z]{2,12}", "pos": "(n|adj|vt|vi)\."\}'
formats = {"date": (DATE, "It was released on "), "JSON entry": (ENTRY, "\n\nAn entry: ")}
constrained = {name: constrained_study(model, vocab, prompt, pattern, n=24) for name, (pattern, prompt) in formats.items()}
lines = []
for name, rows_c in constrained.items():
    for flag in (False, True):
        sel = [r for r in rows_c if r["constrained"] == flag]
        per_seed = ", ".join(f"{r['valid']:.2f}" for r in sel)
        lines.append(f"| {name} | {'mask' if flag else 'free'} | {mean(r['valid'] for r in sel):.2f} "
                     f"({per_seed}) | {mean(r['logprob'] for r in sel):.2f} |")
display(Markdown("| format | decoding | valid (3 seeds) | log-prob per character |\n|---|---|---|---|\n"
                 + "\n".join(lines)))
for name, rows_c in constrained.items():
    print(name, "- first 3 masked samples of seed 0:", [s[:40] for s in rows_c[1]["samples"][:3]])
    print(name, "- first 2 free samples of seed 0:  ", [s[:40] for s in rows_c[0]["samples"][:2]])

# %%
for rows_c in constrained.values():
    assert all(r["valid"] == 1.0 for r in rows_c if r["constrained"])
    assert all(r["valid"] == 0.0 for r in rows_c if not r["constrained"])
    masked = mean(r["logprob"] for r in rows_c if r["constrained"])
    free = mean(r["logprob"] for r in rows_c if not r["constrained"])
    assert masked < free - 0.5, (masked, free)

# %% [markdown]
# Every masked sample is valid; none of the free ones is: this model never writes a date or a JSON
# object on its own. Validity is not quality, though. The log-probability per character of the
# masked outputs (the matching part, under the unmasked model) is much lower than that of free text:
# the mask pushes the model off its distribution, and inside the `[a-z]{2,12}` slot it invents words
# (the terms printed above). A format constraint guarantees syntax, not sense. (Production systems such as
# Outlines {cite}`willard2023efficient` precompute the allowed tokens of every state for a subword
# vocabulary; with 138 characters, computing them lazily is enough.)
#
# ## 5. Hallucination: a fact table from the training corpus
#
# The Jargon File's glossary starts each entry with a line like `:flamer: n.`: the headword and its
# part of speech. That is a fact table the model was trained on. We take 120 entries by a fixed rule
# (every k-th entry tagged `n.`, `adj.`, `vt.`, `v.`, `vi.` or untagged), prompt with the 24
# characters of the corpus that end in `:headword:`, and ask for the rest of the line. Because the
# answer is a short string, its probability at temperature $T$ is exact: the product of its
# characters' probabilities under $\operatorname{softmax}(z / T)$, so the expected accuracy of
# sampling needs no sampling. Three seeds of one sample per fact check it (at $T = 1$ we draw 5 per
# fact right away, for the self-consistency check below, and score the first). Each sampled answer
# ends at its first newline: a stop string (`StopOnStrings` in `roadmap_lib.decoding`) marks the row
# finished, and the batch stops as soon as every row is.

# %%
facts = fact_table(corpus)
per_fact = answer_logits(model, vocab, facts)
temperatures = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
expected = [expected_accuracy(per_fact, t) for t in temperatures]
answers_t1 = [sample_answers(model, vocab, facts, k=5, seed=s) for s in tqdm(range(3), desc="seeds at T = 1")]


def accuracy_of_first(answers):
    return mean(a[0] == f[1] for a, f in zip(answers, facts))


sampled = {t: [accuracy_of_first(sample_answers(model, vocab, facts, k=1, seed=s, temperature=t)) for s in range(3)]
           for t in (0.5, 1.5)}
sampled[1.0] = [accuracy_of_first(a) for a in answers_t1]  # the first of the 5 samples drawn at T = 1
baseline = mean(f[1] == "n." for f in facts)
plot_accuracy_vs_temperature(temperatures, expected, sampled, baseline)
plt.show()
print("expected accuracy:", {t: round(a, 3) for t, a in zip(temperatures, expected)})
print("sampled (3 seeds):", {t: [round(a, 3) for a in v] for t, v in sampled.items()}, "| always 'n.':", round(baseline, 3))

# %%
assert all(a > b for a, b in pairwise(expected))  # accuracy falls with every step up in T
assert expected[0] < baseline - 0.05  # greedy is worse than always answering "n."
for t, accs in sampled.items():
    exact = expected[temperatures.index(t)]
    assert abs(mean(accs) - exact) < 3 * max(0.03, stdev(accs)), (t, accs, exact)

# %% [markdown]
# Accuracy falls with every step up in temperature, and even greedy decoding is worse than the
# trivial answer "n." for every headword: the model answered this question for each of these
# entries during training, but 0.8M parameters hold the *format* of an entry line (it often writes a
# pronunciation guide, a real convention of the file), not the fact for each headword. The sampled
# accuracies scatter around the exact curve, as they should.
#
# **Self-consistency.** A model that knows an answer tends to give it every time; one that guesses
# spreads its samples. So sample $k = 5$ answers per fact at $T = 1$, take the majority answer, and
# flag the fact as *likely wrong* when fewer than half of the samples agree with it (the threshold is
# the natural "no majority"). Precision: the share of flagged facts whose majority answer is wrong;
# recall: the share of wrong facts that are flagged; both against the base rate of wrong answers, 3
# seeds.

# %%
sc = [self_consistency(answers, facts, threshold=0.5) for answers in answers_t1]  # drawn above
keys = ("accuracy", "wrong_rate", "flagged", "precision", "recall")
display(Markdown("| | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys) + "\n" + "\n".join(
    f"| seed {s} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |" for s, r in enumerate(sc))))
plot_agreement(sc)
plt.show()

# %%
precision, wrong_rate = [r["precision"] for r in sc], [r["wrong_rate"] for r in sc]
lift = [p - w for p, w in zip(precision, wrong_rate)]
print(f"precision {mean(precision):.3f} vs base rate {mean(wrong_rate):.3f}: lift {mean(lift):+.3f} "
      f"(std over seeds {stdev(lift):.3f}); recall {mean(r['recall'] for r in sc):.3f}")
assert mean(lift) > 3 * stdev(lift) and mean(lift) > 0.05
assert 0.5 < mean(r["recall"] for r in sc) < 0.9
assert mean(precision) < 2 / 3  # more than a third of the flagged facts are right

# %% [markdown]
# Low agreement does flag wrong answers better than chance: the flagged facts are wrong more often
# than facts are in general (the lift over the base rate is several times its spread across seeds),
# and a good part of the wrong answers is caught. But it is far from a fact checker: more than a
# third of the flagged facts are right, and the wrong answers the model gives *consistently* pass
# unflagged (the recall above is well below 1). Agreement measures the
# model's confidence, not the truth; the same holds for self-consistency checks of large models
# {cite}`manakul2023selfcheckgpt`, at a different scale.

# %% [markdown]
# ## Explore: one step under any pipeline
#
# The static figure is the default setting; the widget moves every knob of the pipeline (0 or 1
# switches a rule off).

# %%
explore_logits = next_token_logits(model, vocab.encode(step_prompt)[None])
plot_step(model, vocab, step_prompt, logits=explore_logits, temperature=1.0, top_k=0, top_p=1.0,
          min_p=0.1, typical_p=1.0, repetition_penalty=1.3)
plt.show()


# %% tags=["nbval-ignore-output", "remove-output"]
@interact(temperature=FloatSlider(value=1.0, min=0.2, max=2.0, step=0.1),
          top_k=IntSlider(value=0, min=0, max=40), top_p=FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05),
          min_p=FloatSlider(value=0.1, min=0.0, max=0.9, step=0.05),
          typical_p=FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05),
          repetition_penalty=FloatSlider(value=1.3, min=1.0, max=3.0, step=0.1))
def explore(temperature, top_k, top_p, min_p, typical_p, repetition_penalty):
    plot_step(model, vocab, step_prompt, logits=explore_logits, temperature=temperature, top_k=top_k,
              top_p=top_p, min_p=min_p, typical_p=typical_p, repetition_penalty=repetition_penalty)
    plt.show()


# %% [markdown]
# ## Summary
#
# - Decoding is a pipeline of small logits processors; ours equal transformers' on the same scores
#   and whole generations equal `generate` with the same weights. (transformers 5 moved contrastive
#   search out of the library; ours is tested against its definition.)
# - On the character GPT, temperature trades quality for diversity steeply and diversity saturates
#   early; top-k, top-p and min-p lie on the same curve, within our noise.
# - Greedy decoding loops; penalties and contrastive search break the loops (a long n-gram ban only
#   mutates them), at a cost in real words that is mostly below our noise. Beam search loops about
#   as much; an n-gram ban applied inside it, as transformers does, removes the loops for a small,
#   consistent loss of likelihood.
# - A grammar mask makes every output valid and says nothing about whether it makes sense.
# - On a fact table from its own training data, the model is worse than the majority answer, worse
#   still at higher temperature, and agreement across samples flags wrong answers only somewhat better
#   than chance.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-18-distinct
# :nonumber:
# ```
# **Exercise 18.1 (predict, then measure: diversity and temperature).** We will sample 4 continuations
# of 40 characters after each of the 6 frontier prompts at temperature 0.5 and at 1.5 (seed 0) and
# compute distinct-2 among the 4 continuations of each prompt, averaged over prompts. Before you run
# the measuring cell, write your predictions for both temperatures in `predict_distinct()`. The check
# wants the right order and each value within 0.1.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Look back at the temperature frontier of section 2: where was distinct-2 at low temperature, and where does it stop rising?
# ```

# %% [markdown]
# ```{solution-start} ex-18-distinct
# :class: dropdown
# ```

# %%
def predict_distinct():
    """Your prediction: {0.5: ..., 1.5: ...}."""
    ### BEGIN SOLUTION
    # From the frontier: temperature 0.5 was near 0.94, and from 0.7 on distinct-2 saturates near 1.
    return {0.5: 0.93, 1.5: 1.0}
    ### END SOLUTION


predicted_distinct = predict_distinct()

# %% [markdown]
# The frontier in section 2 measured 0.5 already (with other seeds); 1.5 is past the point where
# distinct-2 saturates, so predicting 1 for it is safe. What this does *not* tell you is whether the
# text at 1.5 is any good: look at the word share.
#
# ```{solution-end}
# ```

# %%
measured_distinct = measure_distinct(model, vocab, frontier_prompts, seed=0)
print("measured:", {t: round(v, 3) for t, v in measured_distinct.items()})
check_distinct_prediction(predicted_distinct, measured_distinct)

# %% [markdown]
# ```{exercise-start}
# :label: ex-18-minp
# :nonumber:
# ```
# **Exercise 18.2 (min-p by hand).** Write `my_min_p(logits, min_p)` for logits `(batch, vocab)`: compute
# the probabilities, and set to `-inf` every logit whose probability is below `min_p` times the
# largest probability of its row. Return the new logits (do not change the input).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The threshold is per row: `min_p` times that row's largest probability. Use `masked_fill` on a copy, not an in-place write.
# ```

# %% [markdown]
# ```{solution-start} ex-18-minp
# :class: dropdown
# ```

# %%
def my_min_p(logits, min_p):
    ### BEGIN SOLUTION
    probs = logits.softmax(-1)
    keep = probs >= min_p * probs.max(-1, keepdim=True).values
    return logits.masked_fill(~keep, float("-inf"))
    ### END SOLUTION


# %% [markdown]
# The most likely token always survives (its probability equals the threshold divided by `min_p`),
# so transformers' extra `min_tokens_to_keep` only matters when it is above 1.
#
# ```{solution-end}
# ```

# %%
check_min_p(my_min_p)

# %% [markdown]
# ```{exercise-start}
# :label: ex-18-time
# :nonumber:
# ```
# **Exercise 18.3 (a grammar for times).** Write `TIME`, a regular expression in the dialect of
# `roadmap_lib.constrained` (literals, `\d`, classes `[...]`, groups, `|`, `?`, `*`, `+`, `{n,m}`)
# that matches exactly the 24-hour times `HH:MM` from `00:00` to `23:59` followed by a full stop, such
# as `07:45.` (not `7:45.`, not `24:00.`). The check compares your pattern with the rule on every
# string `dd:dd.` and then lets the model write 32 constrained times.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Hours need two alternatives, told apart by their first digit; minutes only restrict their first digit. Escape the full stop.
# ```

# %% [markdown]
# ```{solution-start} ex-18-time
# :class: dropdown
# ```

# %%
### BEGIN SOLUTION
TIME = r"([01]\d|2[0-3]):[0-5]\d\."
### END SOLUTION

# %% [markdown]
# Two alternatives for the hour (`00`–`19` and `20`–`23`) and a class for the tens of minutes: a
# finite-state machine cannot count, but every finite set of strings is regular.
#
# ```{solution-end}
# ```

# %%
times = check_time_regex(TIME, model, vocab)

# %% [markdown]
# ```{exercise-start}
# :label: ex-18-repetition
# :nonumber:
# ```
# **Exercise 18.4 (CTRL's repetition penalty by hand).** Write `my_repetition_penalty(ids, logits,
# penalty)` for the tokens so far `ids` `(batch, seq)` and the next-token logits `(batch, vocab)`:
# every token that occurs in its row of `ids` gets its logit made less likely by the factor
# `penalty` (for `penalty > 1`), the way CTRL {cite}`keskar2019ctrl` and transformers do it, whatever
# the sign of the logit; the other logits stay as they are. Return new logits (do not change the
# input). Inside beam search (section 3) the same processor would run on log-probabilities, which
# are all negative.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Dividing a logit by 2 makes it smaller only if it is positive. Build a `(batch, vocab)` mask of the
# tokens seen in each row first (`scatter` of `True` at the ids), then choose per element between two
# penalised versions and the original.
# ```

# %% [markdown]
# ```{solution-start} ex-18-repetition
# :class: dropdown
# ```

# %%
def my_repetition_penalty(ids, logits, penalty):
    ### BEGIN SOLUTION
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, ids, True)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)
    ### END SOLUTION


# %% [markdown]
# A seen token is penalised once, however often it occurred (OpenAI's frequency penalty, section 1,
# is the one that counts). With log-probabilities, as in beam search, every score is negative, so the
# penalty multiplies them all.
#
# ```{solution-end}
# ```

# %%
check_repetition_penalty(my_repetition_penalty)
