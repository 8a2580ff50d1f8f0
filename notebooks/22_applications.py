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
# # 22. Applications: a small system, its metric, and the baseline it must beat
#
# **What you will learn**
#
# - how a pretrained encoder becomes an application: a sentence classifier (one linear layer on
#   `[CLS]`) and a sequence tagger (one linear layer on every word), as BERT does
#   {cite}`devlin2019bert`;
# - why every application needs a **simple strong baseline** next to it: TF-IDF
#   {cite}`sparckjones1972idf` + logistic regression for classification, a frequency dictionary for
#   tagging; and what it means when the baseline cannot see the signal at all;
# - sequence labelling with BIO tags {cite}`ramshaw1995chunking` and the metric that goes with them,
#   span-level F1 as in the CoNLL shared tasks {cite}`tjongkimsang2000conll,tjongkimsang2003conll`,
#   written in `roadmap_lib.tagging` with seqeval's two readings of ill-formed tags (default and
#   strict);
# - extractive question answering as BERT does it: a start and an end score on every position, a
#   loss that is two cross-entropies, and the best valid span at inference; scored with SQuAD's
#   exact match and F1 against a word-overlap baseline;
# - translation scored two ways: chapter 05's Transformer against a word-by-word dictionary, and
#   why BLEU and chrF disagree about a system that has every word right and the order wrong;
# - retrieval as an application: BM25 against a dense bi-encoder and their reciprocal rank fusion,
#   scored by recall@k and MRR on queries generated from the Jargon File, and why fusing a weak
#   retriever into a strong one can hurt;
# - extractive summarisation scored by ROUGE-L against lead-k, a learned position baseline and the
#   oracle's ceiling;
# - a dialogue model with turn structure: the character GPT fine-tuned on `u:`/`a:` exchanges with
#   the loss on the assistant's turns only, against the untuned model and a nearest-turn retrieval
#   baseline;
# - how sure each comparison is: bootstrap intervals {cite}`efron1993bootstrap`, paired for a
#   difference {cite}`koehn2004significance`, and the spread over three fine-tuning seeds.
#
# **What you need**: chapter 05 (the translation task and `transformer-zetan`), chapter 06 (the
# word-level BERT `bert-word-jargon` and the *intruder* task), chapter 07 (the character GPT
# `gpt-char-jargon`), chapter 10 (fine-tuning a pretrained encoder) and chapter 21 (metrics,
# bootstrap intervals). Section 6 uses chapter 23's dense encoder as a ready-made component;
# chapter 23 explains how it is trained.
#
# **Run time**: 49 to 100 s measured on a shared 2-core machine under varying load (one thread); most of it fits
# the TF-IDF baselines, decodes the 200 test translations, runs the retrievers on 1,200 queries and
# resamples the bootstrap intervals. The fine-tuning runs (3 seeds x a classifier and a
# tagger, 300 steps each) are the zoo artifact `22-applications`
# (`python -m roadmap_lib build 22-applications`), and the QA runs (3 seeds x 2 variants) are
# `22-qa`; the summarisation study (sentence embeddings and scorers, 3 splits) is `22-summarise`
# and the dialogue fine-tuning (3 seeds) is `22-dialogue`; their build times are in the results
# files, printed below. This chapter loads their scores and test predictions and re-scores them;
# the translation model is chapter 05's, decoded here, and the retrievers run live.
#
# **What is not here.** Retrieval-augmented generation (a reader on top of the retrievers of
# section 6, long contexts) is chapter 23. Summarisation is extractive only: an abstractive
# encoder-decoder summariser is not trained here. The dialogue model is trained on templated
# exchanges that fit a 64-character context, not on free conversation, and is scored turn by turn
# under teacher forcing, not as a free-running chat.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
from ipywidgets import IntSlider, Text, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch22_applications import experiments as E
from roadmap_lib.chapters.ch22_applications import dialogue as DL
from roadmap_lib.chapters.ch22_applications import extractive_qa as Q
from roadmap_lib.chapters.ch22_applications import retrieve as RT
from roadmap_lib.chapters.ch22_applications import summarise as SM
from roadmap_lib.chapters.ch22_applications import translate as T
from roadmap_lib.chapters.ch22_applications.artifacts import dialogue_results, qa_results, results, summarise_results
from roadmap_lib.chapters.ch22_applications.exercises import (
    check_assistant_mask,
    check_best_span,
    check_bio_to_spans,
    check_corpus_bleu,
    check_rouge_l,
    check_rrf,
    check_span_f1,
)
from roadmap_lib.chapters.ch22_applications.plots import plot_system_scores, plot_tagged_sentence
from roadmap_lib.data import load_task
from roadmap_lib.evaluation import bootstrap_ci
from roadmap_lib.exercises import check_true
from roadmap_lib.metrics import accuracy, bleu_from_statistics
from roadmap_lib.tagging import bio_to_spans, span_scores

set_seed(0)
torch.set_num_threads(1)

# %% [markdown]
# ## 1. The task and the recorded runs
#
# The *intruder* task (chapter 06) takes Jargon File sentences and, in half of them, replaces one
# word by a random word of the vocabulary. Two applications live on it:
#
# - **classification**: is the sentence as written (label 1) or corrupted (label 0)?
# - **sequence labelling**: which word is the intruder? Each word is tagged `B-INTRUDER` or `O`.
#
# The data is synthetic and word-level (whitespace words, not subwords), and the encoder is small
# (2 layers, 128 dimensions); every result below is worded for that regime.

# %%
train, test = E.Split("intruder", "train"), E.Split("intruder", "test")
R = results()
print(f"train {len(train)} sentences, test {len(test)}; corrupted share of test: {1 - test.labels.float().mean():.3f}")
print(f"recorded runs: seeds {R['seeds']}, recipe {R['recipe']}, {R['n_train']} training sentences, "
      f"built in {R['seconds']:.0f} s by `{R['command']}`")
for i in range(3):  # the first three test sentences
    print(test.labels[i].item(), test.position[i].item(), test.text[i])

# %% [markdown]
# ## 2. Classification: TF-IDF + logistic regression against the fine-tuned encoder
#
# The baseline is the one every text-classification project should run first: TF-IDF features of
# word n-grams and a logistic regression (scikit-learn), here on unigrams and on unigrams + bigrams,
# fitted on the 5,600 training sentences. The model is the zoo BERT with a fresh linear layer on
# `[CLS]`, fine-tuned for 300 steps (recorded, 3 seeds). The score is test accuracy with a 95%
# bootstrap interval over the 700 test sentences.

# %%
base = {n: E.tfidf_baseline(train, test, ngrams=n) for n in (1, 2)}
clf_seeds = {int(s): torch.tensor(r["pred"]) for s, r in R["classifier"].items()}
clf_acc = [accuracy(p, test.labels) for p in clf_seeds.values()]
cis = {f"TF-IDF {n}-gram": bootstrap_ci(accuracy, base[n], test.labels, n=500, seed=0) for n in (1, 2)}
cis["BERT, seed 0"] = bootstrap_ci(accuracy, clf_seeds[0], test.labels, n=500, seed=0)
for name, ci in cis.items():
    print(f"{name:15s} accuracy {ci.estimate:.3f}  [{ci.low:.3f}, {ci.high:.3f}]")
print("BERT per seed:", [round(a, 3) for a in clf_acc], f"mean {sum(clf_acc) / 3:.3f}")

# %%
rows = [(f"TF-IDF {n}-gram", cis[f"TF-IDF {n}-gram"], [cis[f"TF-IDF {n}-gram"].estimate]) for n in (1, 2)]
rows.append(("BERT fine-tuned\n(seed 0 CI, 3 seeds)", cis["BERT, seed 0"], clf_acc))
plot_system_scores(rows, metric="test accuracy", chance=0.5,
                   title="intruder, sentence level: 5,600 training sentences, 300 fine-tuning steps")
plt.show()

# %% [markdown]
# A paired bootstrap of the difference (the same resampled sentences for both systems) tells
# whether the encoder's lead over the better baseline is larger than the test set's noise: for each
# seed, and pooled (the mean accuracy of the three seeds minus the baseline's, on each resample).


# %%
def lead_over(base_pred):
    """Paired bootstrap of (mean accuracy over the seeds' columns) minus the baseline's accuracy."""
    return lambda p, b, g: sum(accuracy(p[:, k], g) for k in range(p.shape[1])) / p.shape[1] - accuracy(b, g)


best = max((1, 2), key=lambda n: cis[f"TF-IDF {n}-gram"].estimate)
base_best = cis[f"TF-IDF {best}-gram"]
clf_cols = torch.stack(list(clf_seeds.values()), 1)  # (sentences, seeds)
diffs = {s: bootstrap_ci(lead_over(base[best]), clf_cols[:, [k]], base[best], test.labels, n=500, seed=0)
         for k, s in enumerate(clf_seeds)}
pooled = bootstrap_ci(lead_over(base[best]), clf_cols, base[best], test.labels, n=500, seed=0)
for s, d in diffs.items():
    print(f"BERT seed {s} minus TF-IDF {best}-gram: {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]")
print(f"pooled over the 3 seeds: {pooled.estimate:+.3f} [{pooled.low:+.3f}, {pooled.high:+.3f}]")
excluding_zero = sum(d.low > 0 for d in diffs.values())
assert 0.02 < pooled.estimate < 0.05, "the mean lead is a few points of accuracy"
assert pooled.low < 0 < pooled.high, "pooled over seeds, the lead is within the test set's noise"
assert excluding_zero == 1, "one seed of three has a paired interval that excludes 0"
assert all(abs(ci.estimate - 0.5) < 0.05 for k, ci in cis.items() if k.startswith("TF-IDF")), \
    "both baselines are within 0.05 of chance"

# %% [markdown]
# **What this shows.** After 300 fine-tuning steps on 5,600 sentences, the pretrained 2-layer
# encoder is ahead of the better TF-IDF baseline by a few points of accuracy on average, but the
# pooled paired interval includes zero, and only one seed of three has an interval that excludes
# it: at this test size, **no difference** we can claim. Both are weak; the baselines stay within
# 0.05 of chance for a reason worth remembering: an intruder is an ordinary vocabulary word, and
# what makes it wrong is its *context*. A bag of words (or of bigrams, most of which were not seen in
# training) has almost nothing to go on. One bit per sentence is also a thin training signal for
# the encoder; the next section trains the same encoder with a label on every word.

# %% [markdown]
# ## 3. Sequence labelling: BIO tags and span F1
#
# A tagger emits one tag per word: `B-TYPE` begins a span, `I-TYPE` continues it, `O` is outside.
# The metric is over **spans**, not tags: a predicted span counts only if its type, start and end all
# equal a gold span's (CoNLL's `conlleval`, and seqeval, which reproduces it). `roadmap_lib.tagging`
# writes both readings of tags that break the scheme, as seqeval has them:

# %%
for tags in (["B-PER", "I-PER", "O", "B-LOC"], ["O", "I-PER", "I-PER"], ["B-PER", "I-LOC", "I-LOC"]):
    print(f"{' '.join(tags):24s} default {bio_to_spans(tags)}   strict {bio_to_spans(tags, strict=True)}")
gold_demo, pred_demo = [["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]]
print("span F1, default vs strict:", span_scores(pred_demo, gold_demo).f1, span_scores(pred_demo, gold_demo, strict=True).f1)

# %% [markdown]
# Spans are `(type, start, end)` with `end` exclusive, as in `words[start:end]`. The default reading
# opens a span at an `I-` that follows `O`, so a tagger that forgets its `B-` loses nothing there,
# while the strict one drops it; report which one you use.
#
# On the intruder task every span is one word, so span F1 is the F1 of the "intruder" words. The
# baseline is a frequency dictionary: flag a sentence's rarest word (counted over the training
# sentences) when its count is at most a threshold, the threshold picked for the best F1 on the
# training split among ten candidates (0 to 55).

# %%
gold_tags = test.gold_tags()
rare = E.RarestWordTagger(train).fit(train)
rare_score = span_scores(rare.tag(test.text), gold_tags)
tag_f1 = [R["tagger"][s]["f1"] for s in map(str, R["seeds"])]
seed0_tags = E.flagged_to_tags(R["tagger"]["0"]["flagged"], test.text)
seed0 = span_scores(seed0_tags, gold_tags)
print(f"rarest word (threshold {rare.threshold}): P {rare_score.precision:.3f} R {rare_score.recall:.3f} F1 {rare_score.f1:.3f}")
print(f"BERT tagger seed 0 (re-scored): P {seed0.precision:.3f} R {seed0.recall:.3f} F1 {seed0.f1:.3f}")
print("BERT tagger span F1 per seed:", [round(f, 3) for f in tag_f1], f"mean {sum(tag_f1) / 3:.3f}")
assert abs(seed0.f1 - tag_f1[0]) < 1e-9, "the stored predictions re-score to the recorded F1"
assert rare.threshold == 55, "the training split picks the largest candidate threshold"
assert all(R["tagger"][s]["precision"] < R["tagger"][s]["recall"] - 0.1 for s in map(str, R["seeds"])), \
    "the tagger's precision is well below its recall on every seed"

# %%
idx = torch.arange(len(test))
f1_of = lambda rows: span_scores([seed0_tags[i] for i in rows.tolist()], [gold_tags[i] for i in rows.tolist()]).f1
rare_tags = rare.tag(test.text)
rare_f1_of = lambda rows: span_scores([rare_tags[i] for i in rows.tolist()], [gold_tags[i] for i in rows.tolist()]).f1
tag_cis = [("rarest word", bootstrap_ci(rare_f1_of, idx, n=200, seed=0), [rare_score.f1]),
           ("BERT tagger\n(seed 0 CI, 3 seeds)", bootstrap_ci(f1_of, idx, n=200, seed=0), tag_f1)]
plot_system_scores(tag_cis, metric="span F1 (test)", title="intruder, word level: which word was replaced?")
plt.show()
assert min(tag_f1) > tag_cis[0][1].high + 0.1, "every tagger seed is far above the dictionary baseline's interval"
assert max(tag_f1) - min(tag_f1) < 0.1, "the three seeds agree within 0.1 F1"

# %% [markdown]
# **What this shows.** The dictionary baseline is close to useless (the training split picks its
# largest threshold, and even then it finds almost nothing): intruders are drawn from the
# vocabulary, so they are not rarer than the words around them, and the rarest word of a sentence is
# usually a genuine rare word. The fine-tuned tagger finds a large share of intruders, with a
# precision well below its recall (the weighted loss, as in chapter 06, pushes it to flag). These are
# spans of one word; on multi-word spans (names, chunks) span F1 is stricter than word F1, because a
# span with one wrong boundary counts as one false positive *and* one false negative.
#
# A tagger is also a sentence classifier: call a sentence corrupted when it flags any word. Scored
# that way, against the same TF-IDF baseline and with the same paired bootstrap:

# %%
tag_cols = torch.stack([E.labels_from_flagged(R["tagger"][s]["flagged"]) for s in map(str, R["seeds"])], 1)
tag_acc = [accuracy(tag_cols[:, k], test.labels) for k in range(tag_cols.shape[1])]
tag_lead = bootstrap_ci(lead_over(base[best]), tag_cols, base[best], test.labels, n=500, seed=0)
print("tagger as a sentence classifier, accuracy per seed:", [round(a, 3) for a in tag_acc])
print(f"pooled lead over TF-IDF {best}-gram: {tag_lead.estimate:+.3f} [{tag_lead.low:+.3f}, {tag_lead.high:+.3f}]")
assert tag_lead.low > 0.01, "pooled over seeds, the tagger's sentence accuracy beats the baseline beyond the noise"
assert min(tag_acc) > max(clf_acc), "every tagger seed classifies sentences better than every classifier seed"

# %% [markdown]
# The same encoder, the same data and the same 300 steps, but a label on every word: now the lead
# over the baseline is clear of the test set's noise, and every tagger seed is a better sentence
# classifier than every classifier seed (on this task, at this size).
# Where the signal is local, supervising where it is pays.
#
# The sentences below are the tagger's test predictions (seed 0); the first figure is the first test
# sentence that has an intruder, the slider walks through the others in order.

# %%
with_intruder = [i for i in range(len(test)) if test.position[i] >= 0]


def show(k: int = 0, ax=None):
    i = with_intruder[k]
    words = test.text[i].split()
    hit = "found" if bio_to_spans(seed0_tags[i]) == bio_to_spans(gold_tags[i]) else "missed or wrong"
    return plot_tagged_sentence(words, gold_tags[i], seed0_tags[i], ax=ax,
                                title=f"test sentence {i} ({hit}); green: the intruder, red box: flagged by the tagger")


show(0)
plt.show()
found = sum(bio_to_spans(seed0_tags[i]) == bio_to_spans(gold_tags[i]) for i in with_intruder)
print(f"sentences whose intruder span the tagger gets exactly (and flags nothing else): {found} of {len(with_intruder)}")


# %% tags=["nbval-ignore-output", "remove-output"]
def _explore(k=0):
    show(k)
    plt.show()


interact(_explore, k=IntSlider(0, 0, len(with_intruder) - 1));

# %% [markdown]
# ## 4. Extractive QA: a start and an end over the context
#
# Extractive question answering, the SQuAD task {cite}`rajpurkar2016squad`, gives a question and a
# context and wants the answer as a span of the context. BERT reads `[CLS] question [SEP] context
# [SEP]` (segment ids 0, then 1) and puts one linear layer on every position that gives it two
# scores, a *start* $s_i$ and an *end* $e_j$ {cite}`devlin2019bert`. Training minimises the mean of
# two cross-entropies over positions, one for the gold start and one for the gold end; the answer
# is the span that maximises $s_i + e_j$ over the context's positions with
# $i \le j < i + L$ ($L$ = 10 words here). `roadmap_lib.qa` holds the head, the loss (equal to
# transformers' `BertForQuestionAnswering` loss on the same logits, `tests/test_qa.py`) and the
# decoding.
#
# **The data** is generated by a seeded rule from the English side of chapter 05's translation task,
# a small grammar (`subject verb object [adverb]`, noun phrases with adjectives and prepositional
# phrases). Each sentence gives one question, of one of two kinds drawn by the seeded rule: a
# *subject* question, `what <verb> the <object's noun>`, answered by the subject noun phrase, or an
# *object* question, `what did the <subject's noun> <verb's plain form>`, answered by the object
# noun phrase (sentences where the question's noun occurs twice are skipped). The rule copies the
# sentence's verb as it is into subject questions, so some are not good English (`what like the
# wizard`). The context is that sentence followed by a full stop, written as a word of its own
# because the word tokenizer strips punctuation from words. A harder
# variant puts a **distractor** sentence from the same split before or after it. The metrics are
# SQuAD's exact match (EM) and token F1 (`roadmap_lib.metrics`).
#
# **The encoder** is the same zoo BERT; the grammar's words that its Jargon File vocabulary lacks get
# new embedding rows (drawn around the mean of the old rows), which fine-tuning learns along with
# everything else. Three seeds per variant, 300 steps each, are the zoo artifact `22-qa`.
#
# **The baseline** is the word-overlap heuristic of early reading-comprehension systems
# {cite}`richardson2013mctest`: take the sentence that shares the most words with the question,
# and answer with its longest run of words that are not in the question (articles, wh-words and
# *did* do not count as question words).

# %%
RQ = qa_results()
qa_test = {v: Q.qa_examples("test", distractor=d) for v, d in Q.VARIANTS.items()}
print(f"recorded runs: seeds {RQ['seeds']}, recipe {RQ['recipe']}, {len(RQ['added_words'])} words added to the "
      f"vocabulary, built in {RQ['seconds']:.0f} s by `{RQ['command']}`")
for v, rec in RQ["variants"].items():
    print(f"{v:10s}: {rec['n_train']} training and {rec['n_test']} test questions")
for ex in qa_test["distractor"][:3]:  # the first three test questions of the harder variant
    print(f"  Q: {ex.question}?\n  C: {ex.context}\n  A: {ex.answer}   ({ex.kind})")

# %%
qa_rows, qa_cols = {}, {}
for v, test in qa_test.items():
    base_em, base_f1 = Q.squad_scores(test, [Q.overlap_baseline(ex) for ex in test])
    em, f1 = Q.score_runs(test, RQ["variants"][v]["runs"])
    qa_cols[v] = (base_em, base_f1, em, f1)
    for name, e, f in (("word overlap", base_em, base_f1), ("BERT, seed 0", em[:, 0], f1[:, 0])):
        ci_em = bootstrap_ci(lambda x: x.mean().item(), e, n=1000, seed=0)
        ci_f1 = bootstrap_ci(lambda x: x.mean().item(), f, n=1000, seed=0)
        qa_rows[v, name] = (ci_em, ci_f1)
        print(f"{v:10s} {name:13s} EM {ci_em.estimate:.3f} [{ci_em.low:.3f}, {ci_em.high:.3f}]   "
              f"F1 {ci_f1.estimate:.3f} [{ci_f1.low:.3f}, {ci_f1.high:.3f}]")
    print(f"{v:10s} BERT per seed: EM {[round(x, 3) for x in em.mean(0).tolist()]}, "
          f"F1 {[round(x, 3) for x in f1.mean(0).tolist()]}")
    assert abs(f1[:, 0].mean().item() - RQ["variants"][v]["runs"]["0"]["f1"]) < 1e-6, \
        "the stored spans re-score to the recorded F1"

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 6.6), sharey=True)
for col, (v, title) in enumerate(zip(Q.VARIANTS, ("context: the sentence", "context: the sentence + a distractor"))):
    for row, metric in enumerate(("EM", "F1")):
        rows = [("word overlap", qa_rows[v, "word overlap"][row], [qa_rows[v, "word overlap"][row].estimate]),
                ("BERT + span head\n(seed 0 CI, 3 seeds)", qa_rows[v, "BERT, seed 0"][row],
                 qa_cols[v][2 + row].mean(0).tolist())]
        plot_system_scores(rows, metric=f"SQuAD {metric} (test)", title=f"{title}: {metric}", ax=axes[row, col])
plt.tight_layout()
plt.show()

# %% [markdown]
# A paired bootstrap of the F1 difference, the three seeds pooled (the mean of their F1 minus the
# baseline's, on the same resampled questions), says which gaps are larger than the test set's noise:

# %%
qa_lead = {}
for v in Q.VARIANTS:
    base_em, base_f1, em, f1 = qa_cols[v]
    for metric, ours, theirs in (("EM", em, base_em), ("F1", f1, base_f1)):
        d = qa_lead[v, metric] = bootstrap_ci(lambda p, b: p.mean().item() - b.mean().item(), ours, theirs,
                                              n=1000, seed=0)
        print(f"{v:10s} BERT (3 seeds) minus word overlap, {metric}: {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]")
is_object = torch.tensor([ex.kind == "object" for ex in qa_test["single"]])
base_em_single = qa_cols["single"][0]
print(f"word overlap, one sentence: EM {base_em_single[~is_object].mean():.3f} on subject questions, "
      f"{base_em_single[is_object].mean():.3f} on object questions")
assert qa_cols["single"][2].min() == 1, "with one sentence, every seed answers every test question exactly"
assert qa_lead["single", "F1"].low > 0.15, "with one sentence, BERT's F1 lead is far beyond the noise"
assert base_em_single[is_object].mean() < 0.15 and base_em_single[~is_object].mean() > 0.7, \
    "word overlap gets most subject questions exactly and few object questions"
assert 0.45 < qa_cols["distractor"][2].mean() < 0.6, "with a distractor, BERT answers about half exactly"
assert qa_lead["distractor", "EM"].low > 0 and qa_lead["distractor", "F1"].high < -0.1, \
    "with a distractor, BERT leads on EM and trails on F1, both beyond the noise"

# %% [markdown]
# Where do the fine-tuned model's answers go wrong with a distractor? For each wrong answer (not an
# exact match), does its start lie in the question's own sentence or in the distractor? And how
# much partial credit (F1) do the two systems' wrong answers earn?

# %%
test = qa_test["distractor"]
em_d = qa_cols["distractor"][2]
wrong_in_other, wrong = 0, 0
for k, run in enumerate(RQ["variants"]["distractor"]["runs"].values()):
    for i, (ex, (s, e)) in enumerate(zip(test, run["spans"])):
        if em_d[i, k] == 0:
            wrong += 1
            wrong_in_other += Q.sentence_index(ex, s) != Q.sentence_index(ex, ex.start)
print(f"wrong answers over the 3 seeds: {wrong}; started in the distractor sentence: {wrong_in_other} "
      f"({wrong_in_other / wrong:.0%})")
base_em_d, base_f1_d, _, f1_d = qa_cols["distractor"]
miss_f1, base_miss_f1 = f1_d[em_d == 0].mean().item(), base_f1_d[base_em_d == 0].mean().item()
print(f"mean F1 of the answers that are not exact: BERT {miss_f1:.3f}, word overlap {base_miss_f1:.3f}")
assert wrong_in_other / wrong > 0.9, "nearly all of BERT's wrong answers start in the distractor sentence"
assert miss_f1 < 0.2 and base_miss_f1 > 0.5, "BERT's misses earn little partial credit, the baseline's earn much"

# %% [markdown]
# **What this shows.** With the answer's sentence alone, 300 fine-tuning steps are enough for
# the span head to answer every test question exactly, on all three seeds. The word-overlap
# baseline gets most *subject* questions exactly but few *object* questions: their question says
# `see` where the sentence says `saw` or `sees`, so the verb does not count as a question word, and
# its run of "unmatched" words swallows the verb and the object together (partial credit: a high F1,
# a low EM). The encoder learned where a subject and an object are, whatever the verb's form.
#
# Add one distractor sentence and the same recipe answers only about half of the questions exactly,
# and nearly all of its misses start in the distractor. It learned the roles but not **which
# sentence** the question is about: that needs matching the question's noun with its occurrence in
# the context, which word overlap does by construction, and which the encoder did not learn in 300
# steps. (We have not measured why; one candidate is that some of the nouns it must match are new
# words whose embeddings start random.) The two metrics then disagree, beyond their noise: the
# encoder is ahead on exact match, and the baseline is ahead on F1, because the baseline's misses
# are near misses in the right sentence that earn much partial credit, while the encoder's misses,
# in the wrong sentence, earn little. Report both, and look at the errors. All
# of this is on a small synthetic grammar, with a 2-layer encoder after 300 steps; it says nothing
# about how either system does on real text.

# %% [markdown]
# ## 5. Translation: chapter 05's model against a dictionary
#
# Chapter 05 trained `transformer-zetan`, the original encoder-decoder Transformer
# {cite}`vaswani2017attention`, to translate the grammar's English into *Zetan*, an invented
# language that puts the verb last and adjectives and determiners after their noun. Here it is not
# retrained: we load it from the zoo and decode greedily the 200 test sentences chapter 05 scores
# (the BLEU must equal its recorded one). The baseline is a **word-by-word dictionary** learned from
# the first 2,000 training pairs: each English word gets the Zetan word with the highest Dice
# coefficient {cite}`dice1945measures` of sentence co-occurrence, $2\,c(e, z) / (c(e) + c(z))$, and
# a sentence is translated one word at a time, in English order. The metrics are BLEU
# {cite}`papineni2002bleu` and chrF {cite}`popovic2015chrf` (as sacrebleu computes them
# {cite}`post2018sacrebleu`; `roadmap_lib.metrics` is tested against it), with bootstrap intervals
# over the test sentences: each sentence's statistics are kept, and a resample sums rows.

# %%
zetan, zetan_vocab, zetan_record = T.load_zetan()
mt_rows = load_task("translation", "test")[:zetan_record["experiment_config"]["eval_sentences"]]
sources, refs = [r["src"] for r in mt_rows], [r["tgt"] for r in mt_rows]
mt_hyps = T.translate(zetan, zetan_vocab, sources)
dictionary = T.DictionaryTranslator([(r["src"], r["tgt"]) for r in load_task("translation", "train")[:2000]])
dict_hyps = [dictionary(s) for s in sources]
mt_stats = {"word-by-word dictionary": T.segment_statistics(dict_hyps, refs),
            "transformer-zetan (greedy)": T.segment_statistics(mt_hyps, refs)}
mt_ci = {name: (bootstrap_ci(T.corpus_bleu_of, b, n=500, seed=0), bootstrap_ci(T.corpus_chrf_of, c, n=500, seed=0))
         for name, (b, c) in mt_stats.items()}
precisions = {name: bleu_from_statistics(b.sum(0).tolist()).precisions for name, (b, _) in mt_stats.items()}
for name, (b, c) in mt_ci.items():
    print(f"{name:27s} BLEU {b.estimate:5.1f} [{b.low:5.1f}, {b.high:5.1f}]   chrF {c.estimate:5.1f} "
          f"[{c.low:5.1f}, {c.high:5.1f}]   1-4-gram precisions {[round(p, 1) for p in precisions[name]]}")
for i in range(2):  # the first two test sentences
    print(f"\n  EN   {sources[i]}\n  ref  {refs[i]}\n  dict {dict_hyps[i]}\n  MT   {mt_hyps[i]}")
model_bleu, dict_bleu = mt_ci["transformer-zetan (greedy)"][0], mt_ci["word-by-word dictionary"][0]
model_chrf, dict_chrf = mt_ci["transformer-zetan (greedy)"][1], mt_ci["word-by-word dictionary"][1]
assert abs(model_bleu.estimate - zetan_record["test_bleu_greedy"]) < 1e-9, "the zoo model reproduces chapter 05's BLEU"
assert precisions["word-by-word dictionary"][0] == 100.0, "every word the dictionary writes is in its reference"
assert dict_bleu.high < 2 and model_bleu.low > 99, "BLEU: the dictionary is near 0, the model near 100"
assert 60 < dict_chrf.estimate < 70 and dict_chrf.high < model_chrf.low - 25, \
    "chrF gives the dictionary about two thirds, well below the model"

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, k, metric in zip(axes, (0, 1), ("BLEU", "chrF")):
    rows = [(name.replace(" (", "\n("), cis[k], [cis[k].estimate]) for name, cis in mt_ci.items()]
    plot_system_scores(rows, metric=f"{metric} (200 test sentences)", ax=ax,
                       title=f"English -> Zetan, {metric} (one trained model)")
plt.show()

# %% [markdown]
# **What this shows.** The dictionary knows the lexicon: every Zetan word it writes is in the
# reference (a unigram precision of 100). It cannot reorder, and Zetan wants the verb last and the
# determiner after its noun, so almost none of its word pairs and none of its longer n-grams match.
# BLEU is a geometric mean over 1- to 4-gram precisions, so it scores the dictionary near 0 (the
# *exp* smoothing of sacrebleu keeps it off exactly 0). chrF counts character n-grams of the text
# with its spaces removed; most of them lie inside words, so it gives the right words in the wrong
# order about two thirds. The Transformer, which learned the lexicon *and* the reordering, is near
# 100 on both. Two honest caveats: this is one trained model (chapter 05's seed 0), so the
# intervals are over test sentences, not over training runs; and the task is a small synthetic
# grammar that a 2-layer model learns almost perfectly, which real translation is not. The
# lesson that carries over is about the metrics: BLEU punishes word order hard, chrF rewards
# getting the words (and their morphology) right, and a table should say which one it reports.

# %% [markdown]
# ## 6. Retrieval: find the entry a query describes
#
# A search engine is an application too: given a query, rank the documents so that the relevant
# one comes first. The corpus is every Jargon File glossary entry (counted below), and the queries are
# generated from them by a stated rule (`retrieve.make_queries`, seeded): pick 200 entries at
# random among those whose **definition sentence** (the first sentence of the body, after a sense
# number and `[tags]`) has at least 8 words, and ask two kinds of query about each:
#
# - **definition**: that sentence with the headword's own words removed, as one asks a reverse
#   dictionary ("which term means ...?");
# - **keywords**: 3 of its content words (no stop words, no headword words, 4+ letters), drawn at
#   random and shuffled, as a user types into a search box.
#
# Three retrievers rank all the entries. The baseline is **BM25** {cite}`robertson2009bm25`
# (`roadmap_lib.retrieval.BM25`, equal to `rank_bm25`). The model is chapter 23's **dense
# bi-encoder** (hashed word and character-trigram features mapped to a small vector, trained with
# in-batch negatives {cite}`karpukhin2020dpr`), loaded from its shipped file through the core
# checkpoint reader and searched exactly with faiss. The third fuses the two top-50 lists by
# **reciprocal rank fusion** {cite}`cormack2009rrf`. The metrics are recall@k (is the entry in the
# first $k$?) and the mean reciprocal rank MRR@10 (the mean of $1/\text{rank}$, 0 outside the top
# 10), from `roadmap_lib.retrieval.ranking`; three query seeds draw three query sets (the encoder
# is one trained model, chapter 23's seed 0; chapter 23 reports its other seeds). One caveat
# shapes what this measures: chapter 23 trained the encoder on random spans of *every* entry, so
# this is search over a fixed corpus the encoder has seen, not over new documents. Chapter 23
# builds the full retrieval-augmented generation pipeline on the same pieces.

# %%
entries = RT.corpus()
search = RT.Search(entries, RT.load_encoder())
qs0 = RT.make_queries(entries, 200, seed=0)
print(f"{len(entries)} entries; the dense encoder: {search.encoder.num_buckets} hash buckets -> {search.encoder.dim} dimensions\n")
for i in range(3):  # the first three queries of seed 0 (in entry order)
    print(f"{entries[qs0.gold[i]].title!r}\n  definition: {qs0.definition[i]}\n  keywords:   {qs0.keywords[i]}")
ret = RT.run(search, seeds=(0, 1, 2), n=200)
print(f"\n{'query':11s} {'retriever':13s}" + "".join(f"{m:>19s}" for m in ("recall@1", "recall@5", "recall@10", "mrr@10")))
for kind in RT.QUERY_KINDS:
    for m in RT.METHODS:
        cells = [RT.per_seed(ret["table"], kind, m, metric) for metric in ("recall@1", "recall@5", "recall@10", "mrr@10")]
        print(f"{kind:11s} {m:13s}" + "".join(f"{sum(c) / 3:9.3f} ({min(c):.2f}-{max(c):.2f})" for c in cells))

# %% [markdown]
# Each cell is the mean over the three query seeds, with the lowest and highest seed in brackets.
# For the intervals, take seed 0's 200 queries: each query's reciprocal rank is kept, MRR is their
# mean, and the paired bootstrap resamples queries to get the interval of a difference between two
# retrievers on the same queries.

# %%
mean = lambda x: x.mean().item()  # noqa: E731  (MRR of a resample of reciprocal ranks)
ret_ci = {(kind, m): bootstrap_ci(mean, ret["rr"][kind, m, 0], n=500, seed=0)
          for kind in RT.QUERY_KINDS for m in RT.METHODS}
ret_diff = {(kind, m): bootstrap_ci(lambda a, b: mean(a) - mean(b), ret["rr"][kind, m, 0], ret["rr"][kind, "BM25", 0],
                                    n=500, seed=0)
            for kind in RT.QUERY_KINDS for m in ("dense", "hybrid (RRF)")}
for (kind, m), ci in ret_diff.items():
    print(f"{kind:11s} MRR@10, {m:13s} - BM25: {ci.estimate:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]")
r1 = {(kind, m): RT.per_seed(ret["table"], kind, m, "recall@1") for kind in RT.QUERY_KINDS for m in RT.METHODS}
r10 = {(kind, m): RT.per_seed(ret["table"], kind, m, "recall@10") for kind in RT.QUERY_KINDS for m in RT.METHODS}
assert min(r1["definition", "BM25"]) > 0.95, "BM25 puts the entry first for nearly every definition query"
assert all(ci.high < -0.015 for ci in ret_diff.values()), \
    "on both query kinds, dense and hybrid are behind BM25 on MRR beyond the noise (seed 0)"
assert all(max(RT.per_seed(ret["table"], kind, m, "mrr@10")) < min(RT.per_seed(ret["table"], kind, "BM25", "mrr@10"))
           for kind in RT.QUERY_KINDS for m in ("dense", "hybrid (RRF)")), "and on every seed, on both kinds"
assert all(d + 0.5 < b for d, b in zip(r1["keywords", "dense"], r1["keywords", "BM25"])), \
    "keywords: the dense encoder's recall@1 is more than 0.5 below BM25's on every seed"
assert all(d < h < b for d, h, b in zip(r1["keywords", "dense"], r1["keywords", "hybrid (RRF)"], r1["keywords", "BM25"])), \
    "keywords: fusion lands between its two inputs on recall@1, on every seed"
assert max(r10["keywords", "hybrid (RRF)"]) < min(r10["keywords", "BM25"]) - 0.03, \
    "keywords: even at k=10, fusing in the weak retriever loses entries that BM25 alone finds"

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, kind in zip(axes, RT.QUERY_KINDS):
    rows = [(m, ret_ci[kind, m], RT.per_seed(ret["table"], kind, m, "mrr@10")) for m in RT.METHODS]
    plot_system_scores(rows, metric="MRR@10 (200 queries)", ax=ax, title=f"{kind} queries: seed 0 and its 95% interval, dots: 3 seeds")
plt.show()
print(RT.top_titles(search, "a program that replicates itself over a network"))


# %% tags=["nbval-ignore-output", "remove-output"]
def _search(query="a program that replicates itself over a network"):
    for m, titles in RT.top_titles(search, query).items():
        print(f"{m:13s} {titles}")


interact(_search, query=Text("a program that replicates itself over a network", continuous_update=False));

# %% [markdown]
# **What this shows.** When the query is made of the corpus's own words, BM25 is the system to
# beat, and here nothing beats it: it puts the entry first for nearly every definition, and for most
# three-word keyword queries. The dense encoder, a small bag of hashed features, is behind on both
# kinds of query, far behind on keywords, beyond the noise of 200
# queries and on every seed. Fusion is not a free lunch: reciprocal rank fusion lands between its
# two inputs, so with one strong and one weak retriever it is worse than the strong one alone, even
# at recall@10. A dense retriever earns its place where words do not match (a paraphrase, a typo,
# another language) and when it is trained on real query-passage pairs; chapter 23 measures it on
# typo'd and question queries and puts a reader on top. Everything here is worded for this regime:
# Jargon File entries, queries built from their own sentences, and chapter 23's small encoder.

# %% [markdown]
# ## 7. Summarisation: recover an entry's definition, against lead-k
#
# Most Jargon File entries open with a one-sentence definition and then explain. That gives a
# summarisation task with a reference written by the authors (`summarise.examples`, a stated
# rule): for every entry whose body splits into at least 4 sentences and whose first sentence has
# at least 8 words, the **target** is that first sentence and the **source** is the rest of the
# entry. Every system here is *extractive*: it returns one sentence of the source (lead-2 returns
# two), and the metric is ROUGE-L F1 {cite}`lin2004rouge` (`roadmap_lib.metrics.rouge`, equal to
# `rouge-score`). The systems:
#
# - **lead-1, lead-2**: the first one or two source sentences, the baseline that is famously hard
#   to beat on news {cite}`nallapati2017summarunner`;
# - **position + length**: a logistic regression on the sentence's position and length, trained
#   to recognise the best sentence: a lead-k that is learned;
# - **BERT scorer**: the same, plus the zoo word BERT's (frozen) mean-pooled vector of the
#   sentence and its product with the source's mean vector, in the spirit of BERTSum
#   {cite}`liu2019bertsum` but with a frozen encoder and a linear scorer;
# - **oracle**: the source sentence with the best ROUGE-L, the ceiling of one-sentence extraction.
#
# The scorers are trained to pick the oracle sentence on two thirds of the entries and tested on
# the other third; a seed is one such split (3 splits). Embedding every source sentence takes longer
# than this chapter's budget allows (the build time is printed below), so the study is the zoo
# artifact `22-summarise`; the notebook re-scores split 0's picks and reads the other splits from the
# results file.

# %%
SR = summarise_results()
sum_exs = SM.examples(entries)
run0 = SR["seeds"]["0"]
test0 = [sum_exs[i] for i in run0["test"]]
print(f"{len(sum_exs)} examples, {len(test0)} in each test third; built in {SR['seconds']:.0f} s by `{SR['command']}`")
ex = test0[0]  # the first test example of split 0
print(f"\n{ex.title!r}\n  target: {ex.target}")
for i, s in enumerate(ex.sources[:4]):
    chosen = [name for name in ("BERT scorer", "oracle") if run0["picks"][name][0] == i]
    print(f"  [{i}] {s[:110]}{'...' if len(s) > 110 else ''}  {' <- ' + ', '.join(chosen) if chosen else ''}")
sum_scores = {s: SM.scores(test0, s, run0["picks"].get(s)) for s in SM.SYSTEMS}
for s in SM.SYSTEMS:
    assert abs(sum_scores[s].mean().item() - run0["rougeL"][s]) < 1e-9, f"{s}: split 0 re-scores to its record"
sum_seeds = {s: [SR["seeds"][k]["rougeL"][s] for k in sorted(SR["seeds"])] for s in SM.SYSTEMS}
sum_ci = {s: bootstrap_ci(mean, sum_scores[s], n=500, seed=0) for s in SM.SYSTEMS}
print(f"\n{'system':18s} {'ROUGE-L, split 0 [95% CI]':>27s}   3 splits")
for s in SM.SYSTEMS:
    ci = sum_ci[s]
    print(f"{s:18s} {ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]   {[round(v, 4) for v in sum_seeds[s]]}")
sum_diff = {(a, b): bootstrap_ci(lambda x, y: mean(x) - mean(y), sum_scores[a], sum_scores[b], n=500, seed=0)
            for a, b in (("BERT scorer", "lead-1"), ("BERT scorer", "lead-2"), ("position + length", "lead-1"))}
for (a, b), ci in sum_diff.items():
    print(f"{a} - {b}: {ci.estimate:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]")
first = sum(p == 0 for p in run0["picks"]["BERT scorer"]) / len(test0)
print(f"the BERT scorer picks the first source sentence for {first:.0%} of split 0's test entries")
assert all(b > max(l1, l2) for b, l1, l2 in zip(sum_seeds["BERT scorer"], sum_seeds["lead-1"], sum_seeds["lead-2"])), \
    "the BERT scorer beats lead-1 and lead-2 on every split"
assert sum_diff["BERT scorer", "lead-1"].low > 0.01 and sum_diff["BERT scorer", "lead-2"].low > 0, \
    "split 0: its leads over lead-1 and lead-2 are beyond the noise"
assert sum_diff["position + length", "lead-1"].low < 0 < sum_diff["position + length", "lead-1"].high, \
    "position + length is lead-1 again: no difference"
assert all(abs(p - l1) < 0.002 for p, l1 in zip(sum_seeds["position + length"], sum_seeds["lead-1"])), \
    "and on every split within 0.002 of it"
assert all(max(v[k] for s, v in sum_seeds.items() if s != "oracle") < sum_seeds["oracle"][k] - 0.03 for k in range(3)), \
    "every system is far below the one-sentence oracle"
assert all((b - l1) / (o - l1) < 0.5 for b, l1, o in zip(sum_seeds["BERT scorer"], sum_seeds["lead-1"], sum_seeds["oracle"])), \
    "the BERT scorer closes less than half of the gap from lead-1 to the oracle, on every split"
assert 0.5 < first < 0.7, "the BERT scorer still picks the first sentence for a majority of the entries"
assert sum(p == 0 for p in run0["picks"]["position + length"]) / len(test0) > 0.9, \
    "position + length picks the first sentence almost always"

# %%
rows = [(s.replace(" + ", "\n+ ").replace(" scorer", "\nscorer"), sum_ci[s], sum_seeds[s]) for s in SM.SYSTEMS]
plot_system_scores(rows, metric=f"ROUGE-L F1 ({len(test0)} test entries)",
                   title="definition from the rest of the entry: split 0 and its 95% interval, dots: 3 splits")
plt.show()

# %% [markdown]
# **What this shows.** On this task lead-1 is a weak baseline: the sentence after a definition
# usually elaborates rather than restates it, and no single sentence of the source is close to the
# definition (the oracle's ROUGE-L is low too). Learning from position and length alone gives lead-1
# back: the regression picks the first sentence almost always, and its score is lead-1's within the
# noise, on every split. What the frozen BERT vectors add is small but real here: the scorer beats
# lead-1 and lead-2 on every split, beyond the noise of split 0's test entries, while still
# picking the first sentence for the majority of entries. It closes well under half of the gap to
# the oracle. The lesson carries over: run lead-k first, train a position-only model as a second
# baseline, and look at how far the oracle is before building anything bigger. All of this is
# extraction scored by word overlap with one reference on one corpus; an abstractive model
# (chapter 08's encoder-decoders) is not measured here.

# %% [markdown]
# ## 8. Dialogue with turn structure: the loss on the assistant's turns only
#
# A chat model is a language model trained on conversations whose turns are marked by role. Here the
# conversations are templated (`dialogue.Exchange`): the user states two facts, a name and a thing
# they like, in either order; the assistant acknowledges each; then the user asks for one of them
# and the assistant must **copy it from an earlier turn**. Roles are marked `u:` and `a:`, one turn
# per line, so that a whole exchange fits the zoo character GPT's 64-character context (chapter 07's
# `gpt-char-jargon`, pretrained on the Jargon File, which has never seen this format). The split
# holds out a quarter of the (name, thing) *pairs*: every test name and thing occurs in training,
# never together, so a test exchange cannot be recalled whole.
#
# Fine-tuning is supervised fine-tuning as `trl`'s `SFTTrainer` does it with a completion-only
# loss: the next-character cross-entropy is counted only where the next character belongs to an
# assistant turn (its text and its closing newline); every user character and the `a:` marker
# have target `-100` (`dialogue.encode_with_targets`, tested to give those positions zero
# gradient). The recipe (150 steps of 16 exchanges, AdamW, 3 seeds) is the zoo artifact
# `22-dialogue`. Evaluation is teacher-forced: for each of the 3 assistant turns of a test exchange,
# the gold history up to its `a:` goes in, the model continues greedily to the newline, and the turn
# counts if it equals the gold text exactly. Two baselines: the **untuned** zoo model, and a
# **retrieval** baseline that answers with the assistant turn of the most similar training history
# (TF-IDF of character 2-4-grams), the "nearest training turn".

# %%
DR = dialogue_results()
dlg_train, dlg_test = DL.make_exchanges(0)
print(f"{len(dlg_train)} training exchanges, {len(dlg_test)} test; recipe {DR['recipe']}; built in {DR['seconds']:.0f} s "
      f"by `{DR['command']}`\n")
print(dlg_test[0].text())  # the first test exchange
dlg_answers = {"untuned GPT": DR["untuned"], "nearest training turn": DL.nearest_turn(dlg_train, dlg_test)}
dlg_answers |= {f"fine-tuned, seed {s}": run["answers"] for s, run in DR["seeds"].items()}
dlg_scores = {name: DL.turn_scores(a, dlg_test) for name, a in dlg_answers.items()}
for s, run in DR["seeds"].items():
    assert abs(dlg_scores[f"fine-tuned, seed {s}"][:, 2].mean().item() - run["answer_em"]) < 1e-12, "re-scores to its record"
print(f"{'system':22s} {'turn 1':>7s} {'turn 2':>7s} {'answer (turn 3), 95% CI':>26s}")
dlg_ci = {}
for name, sc in dlg_scores.items():
    dlg_ci[name] = bootstrap_ci(mean, sc[:, 2], n=500, seed=0)
    ci = dlg_ci[name]
    print(f"{name:22s} {sc[:, 0].mean().item():7.3f} {sc[:, 1].mean().item():7.3f} {ci.estimate:9.3f} [{ci.low:.3f}, {ci.high:.3f}]")
tuned = [dlg_scores[f"fine-tuned, seed {s}"] for s in DR["seeds"]]
nearest = dlg_scores["nearest training turn"]
by_question = {q: torch.tensor([ex.question == q for ex in dlg_test]) for q in DL.QUESTIONS}
print("nearest training turn, answer accuracy by question:",
      {q: round(nearest[m, 2].mean().item(), 3) for q, m in by_question.items()})

# %% [markdown]
# The table's columns are the three assistant turns: the first acknowledges the first fact, the
# second acknowledges the second fact, the third answers the question. The interval is over the
# 200 test exchanges.

# %%
assert dlg_scores["untuned GPT"].sum() == 0, "the untuned model answers no turn exactly: it does not know the format"
assert nearest[:, 0].mean() == 1 and nearest[:, 1].mean() == 0, \
    "retrieval gets every first turn and no second turn: the second needs a pair it has never seen"
assert 0.4 < nearest[:, 2].mean() < 0.7, "retrieval answers the question right about half of the time"
assert all(t[:, :2].mean() > 0.97 for t in tuned), "every fine-tuned seed acknowledges nearly every fact"
assert min(dlg_ci[f"fine-tuned, seed {s}"].low for s in DR["seeds"]) > dlg_ci["nearest training turn"].high + 0.2, \
    "every fine-tuned seed answers the question far more often than retrieval, beyond the noise"

# %%
rows = [(name.replace(", ", "\n").replace(" training", "\ntraining"), ci, [ci.estimate]) for name, ci in dlg_ci.items()
        if not name.startswith("fine-tuned")]
rows.append(("fine-tuned\n(seed 0)", dlg_ci["fine-tuned, seed 0"],
             [dlg_ci[f"fine-tuned, seed {s}"].estimate for s in DR["seeds"]]))
plot_system_scores(rows, metric="answer turn exact match (200 exchanges)",
                   title="dialogue: copy the asked fact from an earlier turn; dots: 3 fine-tuning seeds")
plt.show()

# %% [markdown]
# **What this shows.** The untuned model has never seen `u:`/`a:` turns and answers none of them.
# The retrieval baseline is perfect where the answer is a function of one earlier turn it has seen
# (the first acknowledgement), useless where the answer combines two turns into a pair it has
# never seen (the second), and right on the question about half of the time: it copies the answer
# of its nearest training exchange, which is right only when that exchange happens to share the
# fact asked for (how often depends on the question, printed above). The fine-tuned model, trained
# only on the assistant's
# characters, learned the turn structure: acknowledge each fact, then copy the one asked for, on
# held-out pairs, on every seed. The loss mask is what keeps the model an *assistant*: it is never
# trained to write the user's side (Exercise 22.8 builds that mask by hand). Caveats: templated
# exchanges with a tiny vocabulary, 64 characters of context, exact match under teacher forcing; a
# real chat model's conversations are free text, many turns long, and scored by people or by other
# models (chapter 21).

# %% [markdown]
# ## Summary
#
# | application | metric | simple baseline | the transformer |
# |---|---|---|---|
# | sentence classification (intruder) | accuracy | TF-IDF + logistic regression, within 0.05 of chance | classifier on `[CLS]`: a few points ahead, within the noise (no difference); tagger read as a classifier: ahead beyond the noise |
# | word tagging (intruder, BIO) | span F1 | rarest word, close to 0 | far ahead on 3 of 3 seeds |
# | extractive QA (generated questions, the answer's sentence as context) | SQuAD EM and F1 | word overlap: high F1, low EM (object questions mostly missed) | span head: every test question exact, 3 of 3 seeds |
# | extractive QA, with a distractor sentence in the context | SQuAD EM and F1 | word overlap, as above | about half exact: ahead on EM, behind on F1, both beyond the noise; its misses are in the wrong sentence |
# | translation (English -> Zetan, chapter 05's model, not a fine-tuned BERT) | BLEU / chrF | word-by-word dictionary: near 0 BLEU, about two thirds chrF | near 100 on both (one trained model) |
# | retrieval (Jargon File entries, definition and keyword queries) | recall@k, MRR@10 | BM25: the entry first for nearly every definition and most keyword queries | chapter 23's dense encoder: behind on both, beyond the noise, every seed; RRF lands in between, below BM25 |
# | summarisation (an entry's definition from the rest of it) | ROUGE-L F1 | lead-1, lead-2; a learned position model is lead-1 again | frozen-BERT sentence scorer: ahead of both on 3 of 3 splits, less than half way to the oracle |
# | dialogue (templated turns, copy a fact from an earlier turn) | exact match per turn | untuned GPT: none; nearest training turn: every first turn, no second, about half of the answers | character GPT with assistant-only loss: nearly every turn, 3 of 3 seeds |
#
# On this synthetic, word-level task, the pretrained encoder is what sees a word against its
# context; the baselines that look at words one at a time (or two at a time) cannot. How it is
# supervised matters as much: one label per sentence, after 300 steps, is not enough to beat a
# near-chance baseline beyond the noise of 700 test sentences; one label per word is. For QA, a
# start/end head learns the grammar's roles quickly but, in 300 steps, not to find the sentence a
# question is about, which the word-overlap baseline does for free. In translation, chapter 05's
# model gets the words and their order; a dictionary gets only the words, which chrF rewards and
# BLEU does not. Not every row is a win for the transformer: in retrieval BM25, the baseline, is the
# best system when queries reuse the corpus's words; in summarisation the frozen encoder adds a
# little over lead-k and most of the gap to the oracle remains. In dialogue, fine-tuning with the
# loss on the assistant's turns is what turns a text model into one that takes turns. The numbers are printed above, from the recorded runs and the live baselines; here
# they are in one table, each with its 95% bootstrap interval over the test set (for a fine-tuned
# model, seed 0's; the other seeds are above; for retrieval the "transformer" column is the dense
# encoder, for summarisation the BERT scorer, for dialogue the baseline is the nearest training
# turn):

# %%
summary = [("intruder, sentence", "accuracy", cis[f"TF-IDF {best}-gram"], cis["BERT, seed 0"]),
           ("intruder, word tags", "span F1", tag_cis[0][1], tag_cis[1][1])]
summary += [(f"QA, {v}", metric, qa_rows[v, "word overlap"][k], qa_rows[v, "BERT, seed 0"][k])
            for v in Q.VARIANTS for k, metric in enumerate(("EM", "F1"))]
summary += [("English -> Zetan", metric, mt_ci["word-by-word dictionary"][k], mt_ci["transformer-zetan (greedy)"][k])
            for k, metric in enumerate(("BLEU", "chrF"))]
summary += [(f"retrieval, {kind}", "MRR@10", ret_ci[kind, "BM25"], ret_ci[kind, "dense"]) for kind in RT.QUERY_KINDS]
summary += [("summarisation", "ROUGE-L", sum_ci["lead-1"], sum_ci["BERT scorer"]),
            ("dialogue, answer", "exact", dlg_ci["nearest training turn"], dlg_ci["fine-tuned, seed 0"])]
print(f"{'task':22s} {'metric':9s} {'baseline':>24s} {'transformer':>24s}")
for task, metric, b, m in summary:
    print(f"{task:22s} {metric:9s} {b.estimate:8.3f} [{b.low:6.3f}, {b.high:6.3f}] {m.estimate:8.3f} [{m.low:6.3f}, {m.high:6.3f}]")

# %% [markdown]
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-bio
# :nonumber:
# ```
# **Exercise 22.1 (BIO decoding).** Write `my_bio_to_spans(tags)`: the spans `(type, start, end)` of
# one sentence's tags, `end` exclusive, in the **default** (conlleval) reading: a span starts at every
# `B-`, at an `I-` that does not continue an open span of its type, and ends before the next `O`,
# `B-` or change of type. Return a list of tuples in order.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Walk the tags once, keeping the open span's type and start. At each tag, first decide whether the
# open span ends here, then whether a new one starts here. A sentinel `"O"` after the last tag closes
# a span that runs to the end.
# ```

# %% [markdown]
# ```{solution-start} ex-22-bio
# :class: dropdown
# ```

# %%
def my_bio_to_spans(tags):
    ### BEGIN SOLUTION
    spans, kind, start = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, label = ("O", None) if tag == "O" else (tag[0], tag[2:])
        if kind is not None and not (prefix == "I" and label == kind):
            spans.append((kind, start, i))
            kind = None
        if prefix == "B" or (prefix == "I" and kind is None):
            kind, start = label, i
    return spans
    ### END SOLUTION


# %% [markdown]
# After the closing step, `kind is None` at an `I-` means no span of its type was open: the default
# reading starts one there, the strict reading would skip the tag.
#
# ```{solution-end}
# ```

# %%
check_bio_to_spans(my_bio_to_spans)

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-spanf1
# :nonumber:
# ```
# **Exercise 22.2 (span F1 by hand).** Write `my_span_f1(pred, gold)`: `pred` and `gold` are lists
# (one entry per sentence) of lists of `(type, start, end)` spans. Return the corpus (micro) F1: a
# predicted span is right when it equals a gold span of the same sentence; precision = right /
# predicted, recall = right / gold, both summed over all sentences first; 0 when a denominator is 0.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Three running counts over the sentences; per sentence, the number of right spans is the size of an
# intersection of two sets.
# ```

# %% [markdown]
# ```{solution-start} ex-22-spanf1
# :class: dropdown
# ```

# %%
def my_span_f1(pred, gold):
    ### BEGIN SOLUTION
    right = sum(len(set(p) & set(g)) for p, g in zip(pred, gold))
    n_pred, n_gold = sum(len(p) for p in pred), sum(len(g) for g in gold)
    precision = right / n_pred if n_pred else 0.0
    recall = right / n_gold if n_gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ### END SOLUTION


# %% [markdown]
# Averaging F1 sentence by sentence instead would weight a one-span sentence as much as a ten-span
# one, and a sentence with no gold and no predicted span would have no F1 at all.
#
# ```{solution-end}
# ```

# %%
check_span_f1(my_span_f1)

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-order
# :nonumber:
# ```
# **Exercise 22.3 (predict, then measure: a baseline that cannot see the signal).** The shipped
# *acceptability* task corrupts half of its sentences by **swapping two words** (chapter 06). Before
# running the measuring cell, predict the test accuracy of TF-IDF on word **unigrams** + logistic
# regression trained on its 5,600 training sentences: set `unigram_prediction` to `"chance"` (within
# 0.05 of 0.5) or `"above"` (more than 0.05 above 0.5).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Compare the unigram TF-IDF vector of a corrupted sentence with that of the sentence it came from.
# ```

# %% [markdown]
# ```{solution-start} ex-22-order
# :class: dropdown
# ```

# %%
### BEGIN SOLUTION
unigram_prediction = "chance"
### END SOLUTION

# %% [markdown]
# A swap leaves the bag of words unchanged, so a corrupted sentence has exactly the vector of its
# original: unigram features carry no information about the label, and whatever the classifier
# learns is noise about which sentences happened to be corrupted. Bigrams do change under a swap.
#
# ```{solution-end}
# ```

# %%
acc_train, acc_test = E.Split("acceptability", "train"), E.Split("acceptability", "test")
measured = {n: accuracy(E.tfidf_baseline(acc_train, acc_test, ngrams=n), acc_test.labels) for n in (1, 2)}
print({f"{n}-gram": round(a, 3) for n, a in measured.items()})
outcome = "chance" if abs(measured[1] - 0.5) <= 0.05 else "above"
check_true(unigram_prediction == outcome,
           fail=f"you predicted {unigram_prediction!r}; the measured unigram accuracy {measured[1]:.3f} is {outcome!r}",
           success=f"unigram TF-IDF scores {measured[1]:.3f} on swapped-word acceptability: {outcome}, as you predicted")

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-span
# :nonumber:
# ```
# **Exercise 22.4 (the best answer span).** Write `my_best_span(start_logits, end_logits,
# max_answer_len)`: two `(seq,)` tensors of start and end scores and an int; return the pair of ints
# `(start, end)`, **end inclusive**, that maximises `start_logits[start] + end_logits[end]` over the
# valid spans: `start <= end` and at most `max_answer_len` positions long. (The checks have no
# ties.)
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The best start and the best end, each taken on its own, need not make a span. Two nested loops over
# starts and ends, skipping the pairs that are not valid, are enough; count the positions of a span
# whose end is inclusive carefully.
# ```

# %% [markdown]
# ```{solution-start} ex-22-span
# :class: dropdown
# ```

# %%
def my_best_span(start_logits, end_logits, max_answer_len):
    ### BEGIN SOLUTION
    seq = len(start_logits)
    best, span = None, None
    for i in range(seq):
        for j in range(i, min(i + max_answer_len, seq)):
            score = float(start_logits[i] + end_logits[j])
            if best is None or score > best:
                best, span = score, (i, j)
    return span
    ### END SOLUTION


# %% [markdown]
# `roadmap_lib.qa.best_span` does the same for a batch at once: it scores all `(start, end)` pairs as
# a `(seq, seq)` matrix, masks the invalid ones with $-\infty$ and takes one arg-max.
#
# ```{solution-end}
# ```

# %%
check_best_span(my_best_span)

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-bleu
# :nonumber:
# ```
# **Exercise 22.5 (corpus BLEU from sentence statistics).** Section 5 keeps, for every sentence, the
# row `[hyp_len, ref_len, matches_1, ..., matches_4, totals_1, ..., totals_4]` (the clipped n-gram
# matches and the hypothesis n-grams of each order). Write `my_corpus_bleu(stats)` for a `(n, 10)`
# tensor of such rows: return corpus BLEU on the 0-100 scale, $100 \cdot \mathrm{BP} \cdot
# \exp\big(\tfrac14 \sum_{k=1}^4 \log p_k\big)$ with $p_k$ the precision of order $k$ and the brevity
# penalty $\mathrm{BP} = \min(1, e^{1 - r/h})$ for hypothesis length $h$ and reference length $r$.
# (The checks have a match of every order, so no smoothing is needed.)
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# "Corpus" is the word to take literally: decide at which point the rows of different sentences are
# combined, before or after any division.
# ```

# %% [markdown]
# ```{solution-start} ex-22-bleu
# :class: dropdown
# ```

# %%
def my_corpus_bleu(stats):
    ### BEGIN SOLUTION
    total = stats.sum(0).double()
    hyp_len, ref_len = total[0], total[1]
    log_p = sum(torch.log(total[2 + k] / total[6 + k]) for k in range(4)) / 4
    brevity = torch.exp(torch.clamp(1 - ref_len / hyp_len, max=0.0))
    return 100 * brevity * torch.exp(log_p)
    ### END SOLUTION


# %% [markdown]
# Sum first, divide last: the corpus precision of order $k$ is all sentences' matches over all
# their n-grams, and the brevity penalty compares the corpus's total lengths. Averaging sentence
# BLEUs gives another number (and a sentence without a 4-gram match would score 0 without smoothing).
#
# ```{solution-end}
# ```

# %%
check_corpus_bleu(my_corpus_bleu)

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-rrf
# :nonumber:
# ```
# **Exercise 22.6 (reciprocal rank fusion).** Write `my_rrf(rankings, k)`: `rankings` is a list of
# ranked lists of document ids (best first, no repeats within a list, lists may differ in length and
# content) and `k` a positive number. Score every id that appears in any list by
# $\sum_r 1 / (k + \mathrm{rank}_r(d))$ over the lists $r$ that contain it, ranks counted **from
# 1**, and return all those ids sorted by score, highest first. (The checks have no ties.)
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# One dictionary from id to score; `enumerate(ranking, start=...)` gives the rank. A document that
# is missing from a list simply gets nothing from it.
# ```

# %% [markdown]
# ```{solution-start} ex-22-rrf
# :class: dropdown
# ```

# %%
def my_rrf(rankings, k):
    ### BEGIN SOLUTION
    score = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(score, key=lambda d: -score[d])
    ### END SOLUTION


# %% [markdown]
# `roadmap_lib.retrieval.rrf` is the same with a tie rule (the best single rank, then the smaller
# id). Fusion uses only the ranks, so BM25's unbounded scores and the encoder's cosines never have
# to be put on one scale; the price, seen in section 6, is that a weak list pulls the fused one down.
#
# ```{solution-end}
# ```

# %%
check_rrf(my_rrf)

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-rougel
# :nonumber:
# ```
# **Exercise 22.7 (ROUGE-L by hand).** Write `my_rouge_l(target, prediction)`: two lists of tokens;
# return ROUGE-L F1: with $L$ the length of their longest common **subsequence** (tokens in the same
# order in both, gaps allowed), precision $P = L / |\text{prediction}|$, recall
# $R = L / |\text{target}|$, and $F_1 = 2PR / (P + R)$, 0 when $L = 0$.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The LCS is a dynamic programme over a `(len(target) + 1) x (len(prediction) + 1)` table: a cell is
# the diagonal + 1 when the two tokens match, else the larger of its upper and left neighbours.
# ```

# %% [markdown]
# ```{solution-start} ex-22-rougel
# :class: dropdown
# ```

# %%
def my_rouge_l(target, prediction):
    ### BEGIN SOLUTION
    table = [[0] * (len(prediction) + 1) for _ in range(len(target) + 1)]
    for i, a in enumerate(target):
        for j, b in enumerate(prediction):
            table[i + 1][j + 1] = table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
    lcs = table[-1][-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(target)
    return 2 * precision * recall / (precision + recall)
    ### END SOLUTION


# %% [markdown]
# Section 7's scores are this, after `rouge-score`'s tokenisation (lower case, runs of letters and
# digits). Because a subsequence may skip words, "the reason is hack value" against "hack value is
# the reason" still shares two words in order, and ROUGE-L rewards that less than ROUGE-1, which
# ignores order altogether.
#
# ```{solution-end}
# ```

# %%
check_rouge_l(my_rouge_l)

# %% [markdown]
# ```{exercise-start}
# :label: ex-22-mask
# :nonumber:
# ```
# **Exercise 22.8 (which characters carry the loss).** Write `my_counted(text)` for an exchange in
# section 8's format (lines starting `u:` or `a:`, each ending in a newline). A model reads
# `text[:-1]` and at position `i` predicts character `i + 1`. Return the list of `len(text) - 1`
# booleans: entry `i` is True when that prediction is counted in the loss, that is when character
# `i + 1` is part of an assistant turn's text or the newline that ends it (not its `a:` marker, not
# a user line).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# First flag every character of the text (walk it line by line), then line the flags up with the
# predictions: which character does position 0 predict?
# ```

# %% [markdown]
# ```{solution-start} ex-22-mask
# :class: dropdown
# ```

# %%
def my_counted(text):
    ### BEGIN SOLUTION
    flags = []
    for line in text.splitlines(keepends=True):
        flags += [False, False] + [line.startswith("a:")] * (len(line) - 2)
    return flags[1:]
    ### END SOLUTION


# %% [markdown]
# Counting the newline teaches the model to end its turn; leaving the user's lines out keeps it from
# learning to write them. Counting everything is ordinary language modelling on the transcript, and
# `trl` calls the masked version completion-only (or assistant-only) loss.
#
# ```{solution-end}
# ```

# %%
check_assistant_mask(my_counted)
