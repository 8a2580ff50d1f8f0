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
# # 06. Encoder-only models: BERT, masked-LM pretraining and fine-tuning
#
# **What you will learn**
#
# - the masked-language-modelling objective of BERT {cite}`devlin2019bert`: hide 15 % of the
#   words (80 % become `[MASK]`, 10 % a random word, 10 % stay) and predict them from both sides;
# - what a small word-level BERT pretrained on the Jargon File knows: the words it proposes for a
#   gap, and which words of a sentence surprise it (a zero-shot intruder detector, scored with the
#   same F1 as the fine-tuned tagger);
# - fine-tuning the same encoder for **sentence classification** (was a word replaced?) and
#   **token labelling** (which word?), and what pretraining is worth, measured against a
#   from-scratch model of the same size for 200 to 5,600 labelled sentences;
# - what RoBERTa {cite}`liu2019roberta` and DistilBERT {cite}`sanh2019distilbert` changed, with
#   knowledge distillation {cite}`hinton2015distilling` in miniature.
#
# **What you need**: transformer blocks and padding masks (chapter 04), tokenisation (chapter 02);
# the training loop is `roadmap_lib.training`'s, the one chapters 04 and 05 use.
#
# **Run time**: about 40 s on a laptop CPU. The encoder was pretrained beforehand by
# `python -m roadmap_lib build bert-word-jargon` (about 13 minutes on one CPU core), the
# fine-tuning sweep was run by `python -m roadmap_lib build 06-finetune` and the fine-tuned tagger
# with its distilled students by `python -m roadmap_lib build 06-distil`; this chapter loads them
# and replays the start of one fine-tuning live.

# %%
import copy
import math

import matplotlib.pyplot as plt
import torch
from ipywidgets import Text, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch06_encoder_only.distil import (
    REPLAY_STEPS,
    load_teacher,
    student_f1,
    train_teacher,
)
from roadmap_lib.chapters.ch06_encoder_only.distil import results as distil_results
from roadmap_lib.chapters.ch06_encoder_only.exercises import (
    check_distillation_loss,
    check_f1,
    check_mlm_shares,
    check_token_labels,
)
from roadmap_lib.chapters.ch06_encoder_only.finetune import TaskData, scores
from roadmap_lib.chapters.ch06_encoder_only.plots import (
    plot_learning_curves,
    plot_mask_predictions,
    plot_seed_bars,
    plot_word_scores,
)
from roadmap_lib.chapters.ch06_encoder_only.pretrain import (
    CLS,
    MASK,
    PAD,
    SEP,
    UNK,
    MLMData,
    load,
    top_predictions,
    word_surprise,
)
from roadmap_lib.chapters.ch06_encoder_only.study import (
    RECIPE,
    TASK,
    best_threshold,
    bootstrap_token_f1,
    curve,
    encoder_mlm_loss,
    fast_path,
    flag_above,
    flag_top,
    results,
    seed_values,
    surprise_scores,
    tagger_location,
    zero_shot_location,
)
from roadmap_lib.measure import count_parameters
from roadmap_lib.metrics import token_f1
from roadmap_lib.objectives import mlm_loss, mlm_mask
from roadmap_lib.training import evaluate
from roadmap_lib.viz import plot_training_log

set_seed(0)
torch.set_num_threads(1)  # a model this small runs as fast on one thread, and steadily on a busy CPU
# %matplotlib inline

# %% [markdown]
# ## 1. The masked-LM objective
#
# A decoder (chapter 07) predicts each token from the tokens to its left. An encoder sees the whole
# sentence at once, so "predict the next token" would be trivial: the answer is in the input. BERT
# instead corrupts the input and asks for the original. It chooses 15 % of the positions; 80 % of
# those become `[MASK]`, 10 % a random token and 10 % stay unchanged (so that the model cannot
# assume that only `[MASK]` positions matter), and the loss is the cross-entropy at the chosen
# positions only:
#
# $$\mathcal{L}_{\text{MLM}} = -\frac{1}{|M|}\sum_{i \in M} \log p_\theta(x_i \mid \tilde{x}),$$
#
# where $\tilde x$ is the corrupted sentence and $M$ the chosen positions. Our tokens are
# whitespace words, lower-cased, punctuation stripped, with a 3,000-word vocabulary (the rest are
# `[UNK]`); word $i$ of a sentence is token $i+1$, after `[CLS]`. `roadmap_lib.objectives.mlm_mask`
# does the corruption; on a large batch its proportions come out as specified:

# %%
model, vocab, record = load()
data = MLMData(vocab)
ids = data.splits["train"]
inputs, labels = mlm_mask(ids, vocab_size=len(vocab), mask_id=MASK, special_ids=(PAD, CLS, SEP),
                          generator=torch.Generator().manual_seed(0))
words = (ids != PAD) & (ids != CLS) & (ids != SEP)  # real words, [UNK] included
chosen = labels != -100
share = {"chosen": chosen.sum().item() / words.sum().item(),
         "[MASK]": (inputs[chosen] == MASK).float().mean().item(),
         "unchanged": (inputs[chosen] == ids[chosen]).float().mean().item()}
print({k: round(v, 3) for k, v in share.items()})
print("original :", " ".join(vocab.decode(ids[0][words[0]])))
print("corrupted:", " ".join(vocab.decode(inputs[0][words[0]])))
assert abs(share["chosen"] - 0.15) < 0.01 and abs(share["[MASK]"] - 0.8) < 0.02
assert 0.09 < share["unchanged"] < 0.13  # 10 % kept, plus random picks that hit the same word

# %% [markdown]
# ## 2. The pretrained encoder
#
# The zoo's `bert-word-jargon` has BERT's architecture at a tiny size (post-norm blocks, learned
# positions, the output matrix tied to the embeddings; `roadmap_lib.models.bert`, checked against
# transformers' `BertForMaskedLM` in the tests): 2 layers, 4 heads, 128 dimensions, context 32.
# It was pretrained on the Jargon File's prose sentences, *minus* the 1,400 sentences behind the
# validation and test splits of the tasks below, so nothing we score later was read during
# pretraining. Its recorded validation loss is reproduced here and compared with the best a model
# can do without context: always predicting the corpus word frequencies (the unigram baseline).
#
# From here on the chapter scores with the encoder on PyTorch's fused kernels (`fast_path`:
# attention through `F.scaled_dot_product_attention`, every LayerNorm and GELU as one kernel). They
# compute the same functions as the written-out layers of chapter 04, to float rounding (the tests
# check it), only faster; nothing here looks inside the attention.

# %%
fast_path(model)
counts = torch.bincount(ids[words], minlength=len(vocab)).float()
unigram = counts / counts.sum()
unigram_loss = -(unigram[ids[words]].log()).mean().item()
mlm_val = evaluate(model, data.get_batch, mlm_loss, batches=record["eval"]["batches"], seed=record["eval"]["seed"])
val_curve = {r["step"]: r["val_loss"] for r in record["log"] if "val_loss" in r}
print(f"parameters {count_parameters(model):,}; steps {record['steps']}; "
      f"val MLM loss {mlm_val:.3f} (recorded {record['eval']['loss']:.3f}); unigram baseline {unigram_loss:.3f}")
print("validation loss at steps", {s: round(v, 2) for s, v in val_curve.items()})
plot_training_log(record["log"], baseline=(unigram_loss, "unigram baseline"),
                  ylabel="masked-LM loss (nats)", title="Pretraining the word-level BERT")
plt.show()
train_end = sum(r["loss"] for r in record["log"][-500:]) / 500  # mean training loss, last 500 steps
print(f"training loss over the last 500 steps {train_end:.2f}")
assert abs(mlm_val - record["eval"]["loss"]) < 2e-3
assert mlm_val < unigram_loss - 1.0
assert val_curve[2500] - val_curve[8000] > 0.3 and val_curve[5000] - val_curve[8000] < 0.15
assert train_end < val_curve[8000] - 0.3

# %% [markdown]
# The encoder ends well over a nat below the unigram line: it uses the words on *both* sides of a
# gap. The curve also shows the limits of our corpus. The validation loss still falls by more than
# 0.3 nats after step 2,500, then flattens after step 5,000, while the training loss keeps falling
# and ends more than 0.3 nats below it. Eight thousand batches of 64 are about 77 passes over 6,600
# sentences, so the model starts to memorise them. BERT read 3.3 billion words; we have about 100,000.
#
# What the encoder proposes for a few masked words:

# %%
probes = ["The [MASK] is a program that translates source code into machine code.",
          "A hacker is a person who enjoys [MASK] the details of programmable systems.",
          "This term is used in the [MASK] community."]
for text in probes:
    print(text, "->", ", ".join(f"{w} {p:.2f}" for w, p in top_predictions(model, vocab, text)))

# %% [markdown]
# ## 3. A task that needs to know which words fit: the intruder
#
# The *intruder* task (`data/tasks/intruder`, written by `python -m roadmap_lib build tasks`) holds
# 7,000 Jargon File sentences split 5,600 / 700 / 700. In half of them one word was replaced by an
# intruder drawn uniformly from the 1,510 words that occur at least ten times in the corpus; the file
# records the label (1 = original) and where the intruder sits. One dataset, two tasks:
#
# - **sentence classification**: was a word replaced? `BertForSequenceClassification` reads the
#   `[CLS]` position through the pooler; metric: accuracy (chance 0.5);
# - **token labelling**: which word? A linear layer on every position predicts "changed" or not;
#   metric: F1 of the "changed" class over words (accuracy would be 97 % for a tagger that never
#   flags anything).
#
# Before any fine-tuning, the masked-LM head can already play: mask each word in turn and measure
# its *surprise*, $-\log p(x_i \mid x_{\setminus i})$, in nats. The intruder should be the most
# surprising word. This is the idea behind ELECTRA's replaced-token detection {cite}`clark2020electra`.

# %%
test_set = TaskData(vocab, TASK, "test")
example = next(i for i in range(len(test_set)) if test_set.labels[i] == 0 and 12 <= len(test_set.text[i].split()) <= 20)
intruder = int((test_set.token_labels[example] == 1).nonzero()[0]) - 1
surprise = word_surprise(model, vocab, test_set.text[example])
print(test_set.text[example], "\nintruder:", test_set.text[example].split()[intruder])
plot_word_scores(surprise, "surprise (nats)", "Masked-LM surprise of each word (* = the intruder)",
                 highlight=intruder)
plt.show()

corrupted = test_set.labels == 0
n_known = ((test_set.token_labels != -100) & (test_set.ids != UNK)).sum(1)[corrupted].float()
chance_location = (1 / n_known).mean().item()  # guessing one known word at random
test_surprise = surprise_scores(model, test_set)  # every word of every test sentence, masked in turn
located = zero_shot_location(test_surprise, test_set)
print(f"zero-shot: the most surprising word is the intruder in {located:.1%} of corrupted test sentences "
      f"(guessing: {chance_location:.1%})")
rank = sorted((v for _, v in surprise if not math.isnan(v)), reverse=True).index(surprise[intruder][1])
print(f"in the example, the intruder is the {rank + 1}. most surprising word")
assert located > 3 * chance_location
assert rank < 3

# %% [markdown]
# With no labelled data at all, the pretrained encoder finds about half of the intruders, several
# times better than guessing one of the sentence's known words. In the example the intruder is
# among the three most surprising words, but it is not always first: a rare but legitimate word
# (or one the model has seen too little, like a name) can surprise it more. The zero bars are
# `[UNK]` words, which the model cannot score. This knowledge came from pretraining alone; the
# question now is how much of it survives fine-tuning.
#
# ## 4. Fine-tuning, with and without pretraining
#
# Each model below is fine-tuned with the same recipe (600 steps of 32 sentences, AdamW at learning
# rate 3e-4 with warm-up and cosine decay, dropout 0.1) and scored on the 700 test sentences. The
# baseline has the same configuration and training with a randomly initialised encoder instead of
# the pretrained one: the difference is what pretraining is worth.
#
# The sweep over 200, 700, 2,000 and 5,600 labelled sentences, three seeds each, took about 22
# CPU-minutes and is read from `data/06_finetune.json`. One of its cells, the tagger on 2,000
# labelled sentences with seed 0 from the pretrained encoder, was trained once more by
# `python -m roadmap_lib build 06-distil` and its weights kept in `data/06_tagger.safetensors`
# (half precision, 1.6 MB): we use it below as a finished model and as a teacher. That run trains
# with fused norms and activations but keeps the written-out attention: fused norms draw no random
# numbers, so it is the sweep's run up to float rounding, whereas the fused attention would draw
# other attention-dropout masks and make it a different run. To show that the weights are what the
# code produces, we replay its first 50 fine-tuning steps live and compare each step's loss with the
# recorded one, then score the shipped weights and compare them with the sweep's recorded run and
# with the three recorded scratch taggers of the same size.

# %%
study, tagged = results(), distil_results()
LIVE_N = tagged["n_train"]
_, replay = train_teacher(model, vocab, stop_at=REPLAY_STEPS)
first = tagged["teacher"]["first_losses"]
worst = max(abs(a - b) for a, b in zip(replay, first))
print(f"steps 1-{len(replay)}: loss {replay[0]:.4f} -> {replay[-1]:.4f} now, {first[0]:.4f} -> {first[-1]:.4f} "
      f"in the file; largest difference {worst:.1e}")
assert len(replay) == len(first) == REPLAY_STEPS and worst < 1e-3

teacher = load_teacher()  # the tagger after all 600 steps, on the fast path: from here on it only scores and teaches
tagger_scores = scores(teacher, test_set, "token")
recorded = {start: [r["f1"] for r in study["runs"] if (r["kind"], r["start"], r["n_train"]) == ("token", start, LIVE_N)]
            for start in ("pretrained", "scratch")}
recorded_seed = next(r["f1"] for r in study["runs"] if (r["kind"], r["start"], r["n_train"], r["seed"])
                     == ("token", "pretrained", LIVE_N, RECIPE["seed"]))
print(f"pretrained, shipped weights: test F1 {tagger_scores['f1']:.3f} (the sweep's run with this seed "
      f"{recorded_seed:.3f})")
print(f"scratch, recorded seeds: {[round(f, 3) for f in recorded['scratch']]}")
assert len(recorded["scratch"]) == 3
assert abs(tagger_scores["f1"] - tagged["teacher"]["f1"]) < 1e-4
assert abs(tagger_scores["f1"] - recorded_seed) < 0.01  # the same run, up to fused kernels' and fp16's rounding
assert tagger_scores["f1"] > max(recorded["scratch"]) + 0.08

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
plot_learning_curves({s: seed_values(study, "sequence", s, "accuracy") for s in ("pretrained", "scratch")},
                     "test accuracy", "Sentence: was a word replaced?", chance=0.5, ax=axes[0])
plot_learning_curves({s: seed_values(study, "token", s, "f1") for s in ("pretrained", "scratch")},
                     "test F1 of 'changed'", "Token: which word?", ax=axes[1])
plt.tight_layout()
plt.show()

# %%
gain = {kind: [p - s for p, s in zip(curve(study, kind, "pretrained", metric)[1], curve(study, kind, "scratch", metric)[1])]
        for kind, metric in (("sequence", "accuracy"), ("token", "f1"))}
print({k: [round(g, 3) for g in v] for k, v in gain.items()})
sizes_sweep, f1_pre = curve(study, "token", "pretrained", "f1")
f1_scratch = curve(study, "token", "scratch", "f1")[1]
assert all(g > 0.02 for g in gain["token"])  # the pretrained tagger wins at every size
assert min(gain["token"][2:]) > 0.1 and min(p / q for p, q in zip(f1_pre[2:], f1_scratch[2:])) > 1.6
assert f1_pre[sizes_sweep.index(700)] > f1_scratch[sizes_sweep.index(5600)] - 0.01  # 700 labels ~ 5,600
assert min(gain["sequence"][2:]) > 0.02 and max(gain["sequence"]) < 0.08 and gain["sequence"][1] < 0.02
assert max(curve(study, "sequence", "pretrained", "accuracy")[1]) < 0.65
located_tagger = tagger_location(teacher, test_set)
print(f"the fine-tuned tagger ({LIVE_N} labels) puts the intruder first in {located_tagger:.1%} of corrupted "
      f"test sentences; the masked LM alone: {located:.1%}")
assert located > located_tagger + 0.08

# %% [markdown]
# "Located" is not the tagger's metric: it only looks at corrupted sentences and always names one
# word. To put the zero-shot detector on the tagger's scale, score it with the same F1 of "changed"
# over the words of all 700 test sentences. It needs a rule for when to flag a word. Two rules:
#
# - **threshold**: flag every word whose surprise exceeds a threshold, chosen to maximise F1 on the
#   700 *validation* sentences (the only use of labels) and applied unchanged to the test set;
# - **top-1**: flag the most surprising word of every sentence (no labels at all, but it assumes one
#   intruder per sentence, and so flags a word in every clean sentence too).
#
# The spread of the zero-shot F1 is a 95 % bootstrap interval over the test sentences (the detector
# has no seed); the taggers' spread is their three seeds.

# %%
val_set = TaskData(vocab, TASK, "val")
threshold, f1_val = best_threshold(surprise_scores(model, val_set), val_set.token_labels)
zero_shot = {"threshold": flag_above(test_surprise, threshold), "top-1": flag_top(test_surprise)}
zs_f1 = {rule: token_f1(pred, test_set.token_labels) for rule, pred in zero_shot.items()}
zs_ci = bootstrap_token_f1(zero_shot["threshold"], test_set.token_labels)
tagger_f1 = seed_values(study, "token", "pretrained", "f1")
print(f"threshold {threshold:.2f} nats (validation F1 {f1_val:.3f})")
print(f"zero-shot surprise, threshold: F1 {zs_f1['threshold']:.3f} (95% interval {zs_ci[0]:.3f}-{zs_ci[1]:.3f}); "
      "labels used: 700 validation sentences, to choose one number")
print(f"zero-shot surprise, top-1:     F1 {zs_f1['top-1']:.3f}; labels used: none")
for n, f1s in tagger_f1.items():
    print(f"fine-tuned tagger, {n:>4} labelled sentences: F1 {min(f1s):.3f}-{max(f1s):.3f} (3 seeds)")
assert zs_ci[0] > max(tagger_f1[2000]), "zero-shot beats the tagger fine-tuned on 2,000 labels"
assert zs_ci[0] < sum(tagger_f1[5600]) / 3 < zs_ci[1], "no difference from the tagger on 5,600 labels"
assert abs(zs_f1["top-1"] - zs_f1["threshold"]) < 0.03

# %% [markdown]
# On the tagger's own metric, the masked LM with no fine-tuning at all scores an F1 above that of
# the pretrained tagger fine-tuned on 2,000 labelled sentences (above the highest of its three
# seeds, by more than the bootstrap interval allows), and no different from the tagger trained on
# all 5,600 (the taggers' mean lies inside the zero-shot interval). The two flagging rules land
# within 0.03 of each other. This holds for this small encoder, a 600-step fine-tuning recipe, and an
# intruder drawn uniformly from frequent words; a harder intruder (a plausible word that merely
# changes the meaning) would favour the tagger, which can learn what the labels mean.

# %% [markdown]
# Did fine-tuning make the *encoder* forget, or does the tagger's fresh head use less than the
# encoder knows? Put the fine-tuned tagger's encoder back under the pretrained masked-LM head and
# measure both things again: the held-out masked-LM loss (the same batches and masks as in
# section 2) and the zero-shot surprise detector.

# %%
tuned_encoder = teacher.bert.state_dict()
mlm_after = encoder_mlm_loss(model, vocab, record, tuned_encoder)
tuned_mlm = copy.deepcopy(model)
tuned_mlm.bert.load_state_dict(tuned_encoder)
located_after = zero_shot_location(surprise_scores(tuned_mlm, test_set, sentences=corrupted), test_set)
print(f"held-out MLM loss: pretrained encoder {mlm_val:.3f}, fine-tuned encoder {mlm_after:.3f} nats "
      f"(unigram baseline {unigram_loss:.3f})")
print(f"zero-shot intruder found: pretrained encoder {located:.1%}, fine-tuned encoder {located_after:.1%}, "
      f"fine-tuned tagger's own head {located_tagger:.1%}")
assert 0.2 < mlm_after - mlm_val < 0.8 and mlm_after < unigram_loss - 0.5
assert located - 0.1 < located_after < located - 0.02 and located_after > located_tagger + 0.04

# %% [markdown]
# Each point is the mean of three seeds (the seed draws the new weights and the order of the
# batches) and the band spans the three runs. Three results, all measured on the same 700 test
# sentences:
#
# - **Token labelling gains the most.** The pretrained tagger beats the scratch one at every
#   size, and from 2,000 labelled sentences on its F1 is nearly twice as high. With 700 labels it is
#   as good as the scratch tagger with 5,600, so pretraining is worth about eight times the labels
#   here. A tagger must compare each word with its context, and that comparison is exactly what the
#   masked-LM objective trained.
# - **Sentence classification gains a little, late.** On average over the three seeds, the
#   pretrained classifier is 3-5 accuracy points ahead with 2,000 labels or more; below that the
#   two are within the spread of the seeds. Everyone stays under 65 %: one odd word among fifteen
#   is a weak signal for the single `[CLS]` summary to pick up.
# - **Fine-tuning moves the encoder, but the tagger uses less than the encoder still knows.**
#   Scored with the tagger's own F1, the untouched masked LM is level with the tagger trained on
#   5,600 labels and ahead of it at 2,000.
#   Through the pretrained head, the fine-tuned encoder's masked-LM loss rises by a few tenths of a
#   nat (still far below the unigram baseline), and its zero-shot surprise still finds the
#   intruder only a few points less often than before. The fine-tuned tagger's own head finds it
#   less often than either: a fresh linear head trained on a few thousand examples recovers only
#   part of what the encoder knows (one seed, 600 steps; the numbers are printed above).
#   ELECTRA's answer {cite}`clark2020electra` was to make replaced-token detection *the
#   pretraining task itself*.
#
# ## 5. What RoBERTa and DistilBERT changed
#
# **RoBERTa** {cite}`liu2019roberta` kept BERT's architecture and changed the recipe: drop the
# next-sentence-prediction objective, mask *dynamically* (a new mask each time a sentence is seen,
# instead of masks fixed once during preprocessing), train on ten times more data with much larger
# batches and for longer, and use a byte-level BPE vocabulary. Our pretraining already follows the
# first two: `MLMData.get_batch` calls `mlm_mask` afresh on every batch and there is no
# sentence-pair objective. "Train longer" and "more data" can both be read from our own curve in
# section 2: the validation loss was still falling at step 2,500, and by step 8,000 it was limited
# by the size of the corpus, not by the number of steps.
#
# **DistilBERT** {cite}`sanh2019distilbert` halves the depth (6 layers instead of 12),
# initialises the student from every other layer of the teacher, and trains it on the teacher's
# *soft targets*: the student matches the teacher's output distribution softened by a temperature
# $T$ {cite}`hinton2015distilling`,
#
# $$\mathcal{L} = \alpha\, T^2\, \mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_s/T)\big)
#   + (1-\alpha)\, \mathrm{CE}(z_s, y),$$
#
# which carries more information per example than the hard label (how sure the teacher is, and
# about what). In miniature: the teacher is the pretrained tagger loaded above (2 layers); the
# student has 1 layer, initialised from the teacher's embeddings, first layer and head, as
# DistilBERT does. One student is fine-tuned on the labels alone; a second, identical one with
# $\alpha = 0.5$, $T = 2$, for 300 steps each on the same 2,000 sentences, and each pair once per
# seed (0, 1, 2: the seed draws the batches and the dropout masks). The six runs were made by
# `python -m roadmap_lib build 06-distil`, from the shipped teacher, and are read from
# `data/06_distil.json`; `roadmap_lib.chapters.ch06_encoder_only.distil.train_student` is the code
# that trains one.

# %%
students = student_f1(tagged)
sizes = {"teacher": tagged["teacher"]["parameters"], "student": tagged["students"]["parameters"]}
paired = [d - a for d, a in zip(students["student distilled"], students["student alone"])]
mean = {name: sum(f1) / len(f1) for name, f1 in students.items()}
spread = max(max(f1) - min(f1) for f1 in students.values())  # the largest range over the seeds
print(sizes, "teacher F1", round(tagger_scores["f1"], 3))
for name, f1 in students.items():
    print(f"{name:<18} F1 per seed {[round(v, 3) for v in f1]}, mean {mean[name]:.3f}")
print(f"distilled minus alone, per seed: {[round(d, 3) for d in paired]}; spread between seeds {spread:.3f}")
plot_seed_bars({"teacher (2 layers)": [tagger_scores["f1"]], **students}, "test F1 of 'changed'",
               "Distillation in miniature: a 1-layer student")
plt.show()

# %%
assert sizes["student"] < 0.85 * sizes["teacher"] and sizes["teacher"] == count_parameters(teacher)
assert max(max(f1) for f1 in students.values()) < 0.7 * tagger_scores["f1"]
assert abs(mean["student distilled"] - mean["student alone"]) < spread  # a gap inside the seed noise: no difference

# %% [markdown]
# The miniature does not reproduce DistilBERT's result, and the reasons are instructive. Both
# students fall well short of the teacher on every seed, and the soft targets do not help: the
# distilled student's mean F1 is within the spread between seeds of the one trained on labels alone,
# which we report as no difference (if anything it ends a little lower, on each of the three seeds,
# printed above). Dropping one layer of two removes half the
# depth (DistilBERT dropped one in two of twelve), yet saves only a fifth of the parameters,
# because the 3,005 × 128 embedding table is most of the model. Above all, DistilBERT distils
# *during pretraining*: over the whole corpus, against the teacher's distribution over 30,000
# word pieces at every masked position, plus a loss that aligns hidden states. Soft targets over two
# classes on 2,000 sentences carry little the hard labels do not already say. The exercise below
# builds the loss; distilling the masked LM itself is the experiment to try next.
#
# ## 6. Explore: what does the encoder put in the gap?
#
# Type a sentence with one `[MASK]` word (at most 30 words); the bars show the encoder's five most
# probable words. First the default sentence, then the explorer.

# %%
default_text = "A [MASK] is someone who enjoys exploring the details of programmable systems."
plot_mask_predictions(top_predictions(model, vocab, default_text), default_text)
plt.show()

# %% tags=["nbval-ignore-output", "remove-output"]
@interact(text=Text(value=default_text, continuous_update=False, layout={"width": "90%"}))
def explore(text):
    try:
        plot_mask_predictions(top_predictions(model, vocab, text), text)
        plt.show()
    except ValueError as err:
        print(err)


# %% [markdown]
# ## Summary
#
# - BERT pretrains an encoder by hiding 15 % of the words and predicting them from both sides; a
#   tenth of those stay as they are, so fewer words are corrupted than are scored (Exercise 06.4
#   measures both shares). Our 2-layer word-level BERT ends 1.5 nats below the unigram baseline
#   after 8,000 steps, and its curve shows where a small corpus stops it.
# - Without any labels, the masked LM's surprise finds about half of the intruders in a sentence.
# - Fine-tuned with a fresh head, the pretrained encoder nearly doubles the token-labelling F1 of
#   a same-size model trained from scratch, worth about eight times the labelled data, while
#   the sentence-level decision gains only a few points.
# - RoBERTa changed the recipe (no next-sentence prediction, dynamic masking, more data, longer
#   training); DistilBERT distils a smaller student, and our miniature shows why it does this during
#   pretraining rather than on a small labelled set.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-06-token-labels
# :nonumber:
# ```
# **Exercise 06.1 (token targets).** Write `my_token_labels(n_words, changed, context)`: a `(context,)`
# int64 tensor with 1 at the tokens of the words whose indices are in the list `changed`, 0 at the
# other words, and -100 at `[CLS]` (position 0), `[SEP]` (position `n_words + 1`) and the padding
# after it. Word `i` is token `i + 1`; an index of -1 in `changed` marks nothing.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Start from a tensor full of `-100`, then set the real words (tokens 1 to `n_words`) to 0, and finally the changed ones to 1, remembering the shift of one for `[CLS]`.
# ```

# %% [markdown]
# ```{solution-start} ex-06-token-labels
# :class: dropdown
# ```

# %%
def my_token_labels(n_words, changed, context):
    ### BEGIN SOLUTION
    labels = torch.full((context,), -100, dtype=torch.long)
    labels[1 : n_words + 1] = 0
    for k in changed:
        if k >= 0:
            labels[k + 1] = 1
    return labels
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_token_labels(my_token_labels)

# %% [markdown]
# ```{exercise-start}
# :label: ex-06-f1
# :nonumber:
# ```
# **Exercise 06.2 (F1 of the "changed" class).** Write `my_f1(pred, gold)` for two integer tensors of
# the same shape: ignore the positions where `gold == -100`, and return the F1 score (a float) of
# class 1, $2PR/(P+R)$ with precision $P$ and recall $R$; return 0.0 when there is no true positive.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Count true positives, false positives and false negatives only where `gold != -100`; then $2PR/(P+R)$ simplifies to $2\,tp / (2\,tp + fp + fn)$.
# ```

# %% [markdown]
# ```{solution-start} ex-06-f1
# :class: dropdown
# ```

# %%
def my_f1(pred, gold):
    ### BEGIN SOLUTION
    counted = gold != -100
    tp = ((pred == 1) & (gold == 1) & counted).sum().item()
    fp = ((pred == 1) & (gold == 0) & counted).sum().item()
    fn = ((pred != 1) & (gold == 1) & counted).sum().item()
    # 2PR / (P + R) with P = tp / (tp + fp) and R = tp / (tp + fn) simplifies to:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_f1(my_f1)

# %% [markdown]
# ```{exercise-start}
# :label: ex-06-distil
# :nonumber:
# ```
# **Exercise 06.3 (the distillation loss).** Write `my_distillation_loss(student_logits,
# teacher_logits, labels, T, alpha)` for logits `(n, classes)` and labels `(n,)` (no -100 here):
# $\alpha\, T^2\, \mathrm{KL}(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T))$, averaged over
# the $n$ rows, plus $(1 - \alpha)$ times the mean cross-entropy of the student on the labels.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Work with log-probabilities of both models at temperature $T$: $\mathrm{KL}(p_t \| p_s) = \sum p_t (\log p_t - \log p_s)$ per row, then the mean over rows. The cross-entropy uses the student's logits *without* the temperature.
# ```

# %% [markdown]
# ```{solution-start} ex-06-distil
# :class: dropdown
# ```

# %%
def my_distillation_loss(student_logits, teacher_logits, labels, T, alpha):
    ### BEGIN SOLUTION
    log_s = torch.log_softmax(student_logits / T, -1)
    log_t = torch.log_softmax(teacher_logits / T, -1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1).mean()
    ce = torch.nn.functional.cross_entropy(student_logits, labels)
    return alpha * T * T * kl + (1 - alpha) * ce
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_distillation_loss(my_distillation_loss)

# %% [markdown]
# ```{exercise-start}
# :label: ex-06-mlm-shares
# :nonumber:
# ```
# **Exercise 06.4 (predict, then measure: what the masked LM sees).** Section 1 masked the
# pretraining sentences once with BERT's rule. *Before the check masks them again (a fresh draw)
# and counts*, predict two shares of the **words** (not counting `[CLS]`, `[SEP]` or padding; the
# vocabulary has 3,005 tokens): `"loss"`, the share of words that carry the masked-LM loss, and
# `"changed"`, the share of words whose input token differs from the original (what the encoder
# actually sees corrupted). Return them from `predict_mlm_shares` as `{"loss": ..., "changed": ...}`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Follow one word through the rule: with what probability is it chosen, and then what happens to it
# in each of the three cases? A random replacement can draw the word itself.
# ```

# %% [markdown]
# ```{solution-start} ex-06-mlm-shares
# :class: dropdown
# ```

# %%
def predict_mlm_shares():
    """Your prediction: {"loss": share of words, "changed": share of words}."""
    ### BEGIN SOLUTION
    chosen = 0.15
    changed = chosen * (0.8 + 0.1 * (1 - 1 / 3005))  # [MASK], or a random word that is not the word itself
    return {"loss": chosen, "changed": changed}
    ### END SOLUTION


predicted_mlm_shares = predict_mlm_shares()

# %% [markdown]
# The loss is taken on every chosen word, but fewer words than that are corrupted: a tenth of the
# chosen words (and the rare random draw of the word itself) reach the encoder unchanged, and it is
# still asked for them. That is the point of the 10 % kept: the model cannot assume that a word it
# can read needs no thought, so every position's representation must be ready to predict its own
# word. The check prints the measured shares.
#
# ```{solution-end}
# ```

# %%
check_mlm_shares(predicted_mlm_shares, ids, len(vocab))  # masks section 1's sentences afresh and counts
