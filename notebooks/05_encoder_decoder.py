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
# # 05. Encoder-decoder: the original Transformer, end to end
#
# **What you will learn**
#
# - how the original Transformer {cite}`vaswani2017attention` turns one sequence into another: an
#   encoder reads the whole source, a decoder writes the target one word at a time and looks back at
#   the source through *cross-attention*;
# - how it is trained with teacher forcing, and what its training curve looks like on a small
#   translation task that a laptop learns in a minute;
# - greedy decoding against beam search {cite}`sutskever2014seq2seq`, measured with BLEU
#   {cite}`papineni2002bleu`, computed by our own implementation and checked against sacrebleu
#   {cite}`post2018sacrebleu`;
# - what cross-attention maps show: the model learns *where* in the English sentence each word of
#   the translation comes from, reordering included {cite}`bahdanau2015attention`.
#
# **What you need**: attention, masks and the encoder and decoder blocks (chapter 04), sinusoidal
# positions (chapter 03), tokenisation (chapter 02).
#
# **Run time**: about 30 s on a laptop CPU. The fully trained model was trained beforehand on one
# CPU core by `python -m roadmap_lib build transformer-zetan` (under two minutes); this chapter
# loads it, and also trains a short run live.

# %%
import math

import matplotlib.pyplot as plt
import sacrebleu
import torch
from ipywidgets import Dropdown, IntSlider, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch05_encoder_decoder.exercises import (
    check_bleu_predictions,
    check_brevity_penalty,
    check_clipped_matches,
    check_decoder_io,
)
from roadmap_lib.chapters.ch05_encoder_decoder.plots import plot_cross_attention
from roadmap_lib.chapters.ch05_encoder_decoder.translation import (
    BOS,
    EOS,
    PAD,
    ExperimentConfig,
    alignment_map,
    batch_sampler,
    bleu_of,
    load,
    make_batch,
    verb_alignment,
)
from roadmap_lib.data import load_task
from roadmap_lib.metrics import ngrams, sentence_bleu
from roadmap_lib.models.encoder_decoder import Transformer
from roadmap_lib.objectives import seq2seq_loss
from roadmap_lib.training import TrainConfig, evaluate, train
from roadmap_lib.viz import plot_training_log

set_seed(0)
torch.set_num_threads(1)  # a model this small runs as fast on one thread, and steadily on a busy CPU
# %matplotlib inline

# %% [markdown]
# ## 1. The task: English to Zetan
#
# The book ships a translation task generated from a small English grammar (`data/tasks/translation`,
# written by `python -m roadmap_lib build tasks`). The target language, "Zetan", is invented: it
# puts the verb last (subject-object-verb), adjectives and determiners *after* their noun, adverbs
# first, and marks plural nouns and the tense with suffixes. A translator must learn a lexicon *and*
# how to reorder, which is exactly what attention is for.
#
# Keep in mind what kind of task this is: the Zetan sentence is a **deterministic function** of the
# English one (a fixed grammar and lexicon, one correct translation per sentence). A perfect score
# is reachable, and a BLEU near 100 below says the model learned this grammar, not that it would
# translate natural language, where a sentence has many good translations and BLEU rarely passes 50.

# %%
train_rows = load_task("translation", "train")
val_rows = load_task("translation", "val")
test_rows = load_task("translation", "test")
for row in train_rows[:3]:
    print(f"{row['src']}\n  -> {row['tgt']}")
print(len(train_rows), len(val_rows), len(test_rows))
assert (len(train_rows), len(val_rows), len(test_rows)) == (8000, 1000, 1000)
assert not {r["src"] for r in test_rows} & {r["src"] for r in train_rows}  # test sentences are unseen

# %% [markdown]
# ## 2. The model and its training objective
#
# The encoder maps the source words $x_1 \dots x_S$ to vectors $h_1 \dots h_S$ (the *memory*) with
# bidirectional self-attention. The decoder models
#
# $$p(y \mid x) = \prod_{t=1}^{T} p(y_t \mid y_{<t}, h_{1..S}),$$
#
# each block doing causal self-attention over the words written so far, then cross-attention whose
# queries come from the decoder and whose keys and values are the memory, then a feed-forward
# layer. All sublayers are post-norm, $x \leftarrow \mathrm{LayerNorm}(x + f(x))$, as in the paper,
# and source and target share one embedding matrix, tied to the output projection. As in the paper,
# the embeddings are multiplied by $\sqrt{d_\text{model}}$ before the sinusoidal positions are
# added, so the two have comparable scale.
#
# Training uses *teacher forcing*: the decoder reads the reference shifted right by one,
# `<bos> y_1 ... y_T`, and is asked for `y_1 ... y_T <eos>` at every position at once. Padding in
# the source is masked out of the attention; padding in the target is ignored by the loss.

# %%
model, vocab, record = load()
config = model.config
(src, src_mask, tgt_in), tgt_out = make_batch(vocab, train_rows[:2])
print("vocabulary:", len(vocab), "words (both languages) + specials")
print("src    ", src[0].tolist())
print("tgt_in ", tgt_in[0].tolist())
print("tgt_out", tgt_out[0].tolist())
words = tgt_out[:, :-1] > EOS  # real target words (not <eos>, not padding)
assert (tgt_in[:, 0] == BOS).all() and (tgt_in[:, 1:] == tgt_out[:, :-1])[words].all()  # shifted by one
n_params = sum(p.numel() for p in model.parameters())
print(f"{config.n_layers} encoder + {config.n_layers} decoder layers, d_model={config.d_model}, "
      f"{config.n_heads} heads: {n_params:,} parameters")

# %% [markdown]
# ## 3. Training: a short run live, the full run from the zoo
#
# We train a fresh model of the same size for 200 steps with the book's training loop (AdamW,
# warm-up then cosine decay, gradient clipping), and put its curve next to the full 1500-step run
# that produced the shipped checkpoint. Two departures from the paper's recipe
# {cite}`vaswani2017attention`: it used Adam with a warm-up followed by an inverse-square-root
# decay, $\text{lr} \propto d_\text{model}^{-0.5}\min(t^{-0.5}, t\cdot w^{-1.5})$, where we decay
# with a cosine to a fixed step budget; and it trained with label smoothing ($\epsilon = 0.1$), which
# we leave out, since the targets here are exact and a smoothed target would only cap how sure the
# model may become.

# %%
exp = ExperimentConfig(**record["experiment_config"])
set_seed(exp.seed)
live = Transformer(exp.model_config(len(vocab)))
get_batch = batch_sampler(vocab, exp.batch_size)
live_result = train(live, get_batch, TrainConfig(max_steps=200, lr=exp.lr, warmup_steps=50, weight_decay=0.01,
                                                 betas=(0.9, 0.98), eval_interval=50, eval_batches=5,
                                                 seed=exp.seed), loss_fn=seq2seq_loss)
live.eval()
live_val = live_result.series("val_loss")[1]
print("live run, validation loss every 50 steps:", [round(v, 3) for v in live_val])

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
plot_training_log(record["log"], ax=ax, yscale="log", ylabel="cross-entropy (nats / target word)",
                  title="Transformer on English -> Zetan")
ax.plot(*live_result.series("val_loss"), "s--", ms=4, label="validation, live 200-step run")
ax.legend()
plt.show()
shipped_val = evaluate(model, get_batch, seq2seq_loss, batches=5, seed=exp.seed + 1)
print(f"shipped model: validation loss {shipped_val:.4f} (recorded {record['val_loss']:.4f}), "
      f"trained in {record['seconds']:.0f} s on one thread")
assert record["seconds"] < 120  # the full run took under two minutes where it was built
assert abs(shipped_val - record["val_loss"]) < 1e-3  # the checkpoint reproduces its record
assert live_val[-1] < 1.5 and live_val[-1] < 0.4 * live_val[0]  # the live run learns fast ...
assert shipped_val < 0.01 * live_val[-1]  # ... and the long run goes over a hundred times lower
print(f"perplexity: {math.exp(live_val[-1]):.2f} (live), {math.exp(shipped_val):.4f} (shipped)")
assert 1.5 < math.exp(live_val[-1]) < 5 and math.exp(shipped_val) < 1.01

# %% [markdown]
# The loss falls fast: after 200 steps the validation loss is around one nat per target word, and
# the rest of training takes it more than a hundred times lower. (Cross-entropy is per target word,
# in nats; $e^{\mathcal{L}}$ is the perplexity, the number of equally likely words the model is
# hesitating between: a few after 200 steps, almost exactly one at the end.)
#
# ## 4. Decoding: greedy against beam search
#
# At test time there is no reference to feed the decoder: it must condition on its own output.
# *Greedy* decoding takes the most likely word at each step. *Beam search* keeps the $k$ best partial
# translations by total log-probability, extends each by every word, keeps the $k$ best again, and
# returns the finished hypothesis with the best length-normalised score
# $\log p(y \mid x) / |y|^{\alpha}$. Both use `roadmap_lib`: greedy with a key/value cache (the
# encoder's keys and values are computed once per sentence), beam search with
# `roadmap_lib.generation.beam_search` driving the decoder.
#
# We score both with corpus BLEU: the geometric mean of clipped $n$-gram precisions for
# $n = 1..4$, times a brevity penalty $\min(1, e^{1 - r/c})$ for hypotheses shorter than the
# references:
#
# $$\mathrm{BLEU} = \mathrm{BP} \cdot \exp\Big(\tfrac14 \sum_{n=1}^{4} \log p_n\Big).$$

# %%
eval_rows = test_rows[:exp.eval_sentences]
refs = [r["tgt"] for r in eval_rows]
results = {}
for name, m in [("live (200 steps)", live), ("shipped (1500 steps)", model)]:
    for decoder in ("greedy", "beam"):
        score, hyps = bleu_of(m, vocab, eval_rows, decoder, num_beams=exp.num_beams)
        reference = sacrebleu.corpus_bleu(hyps, [refs]).score
        assert abs(score - reference) < 1e-6, (score, reference)  # our BLEU is sacrebleu's
        results[name, decoder] = (score, hyps)
print(f"{'model':<22}{'greedy BLEU':>12}{'beam-4 BLEU':>13}")
for name in ("live (200 steps)", "shipped (1500 steps)"):
    print(f"{name:<22}{results[name, 'greedy'][0]:>12.2f}{results[name, 'beam'][0]:>13.2f}")
assert abs(results["shipped (1500 steps)", "greedy"][0] - record["test_bleu_greedy"]) < 0.5
assert abs(results["shipped (1500 steps)", "beam"][0] - record["test_bleu_beam"]) < 0.5

# %% [markdown]
# What the table shows: after 200 steps the model translates about half of the $n$-grams right, and
# beam search adds a few BLEU points over greedy decoding: it recovers from an early word that
# looked best locally but leads to an unlikely sentence. The fully trained model is almost perfect
# (BLEU near 100) and then greedy and beam agree: when the model is confident, the most likely
# next word already lies on the most likely sentence. Beam search pays off where the model is
# uncertain.

# %%
live_gain = results["live (200 steps)", "beam"][0] - results["live (200 steps)", "greedy"][0]
shipped_greedy, shipped_beam = results["shipped (1500 steps)", "greedy"][0], results["shipped (1500 steps)", "beam"][0]
print(f"beam - greedy: {live_gain:+.2f} BLEU (live), {shipped_beam - shipped_greedy:+.2f} BLEU (shipped)")
assert 30 < results["live (200 steps)", "greedy"][0] < 80  # about half right
assert live_gain > 1.5  # beam helps the uncertain model ...
assert shipped_greedy > 98 and abs(shipped_beam - shipped_greedy) < 0.5  # ... not the confident one

# %% [markdown]
# Where greedy and beam disagree, we can look at the sentences themselves:

# %%
live_greedy, live_beam = results["live (200 steps)", "greedy"][1], results["live (200 steps)", "beam"][1]
differ = [i for i in range(len(eval_rows)) if live_greedy[i] != live_beam[i]]
print(f"{len(differ)} of {len(eval_rows)} live-model translations change with beam search")
for i in differ[:3]:
    print(f"\nsource:    {eval_rows[i]['src']}\nreference: {refs[i]}")
    for label, hyp in (("greedy", live_greedy[i]), ("beam", live_beam[i])):
        print(f"{label:<10} {hyp}   (sentence BLEU {sentence_bleu(hyp, refs[i]).score:.1f})")
sentence_gain = [sentence_bleu(live_beam[i], refs[i]).score - sentence_bleu(live_greedy[i], refs[i]).score
                 for i in differ]
wins, losses = sum(g > 0 for g in sentence_gain), sum(g < 0 for g in sentence_gain)
print(f"\nof the {len(differ)} changed translations, beam scores higher on {wins}, lower on {losses}, "
      f"equal on {len(differ) - wins - losses} (sentence BLEU)")
assert losses > 0  # beam search does not win every sentence ...
assert sum(sentence_gain) > 0  # ... but on the changed sentences it gains more than it loses

# %% [markdown]
# The three sentences are the first three of the evaluation set on which the two decoders differ
# (no other choice was made). Beam search does not improve every one of them: it maximises the
# model's probability of the whole sentence, which is not BLEU, and for a model this uncertain the
# likeliest sentence is sometimes worse, for example when it starts with a word the reference does
# not have. Counted over all the changed sentences (printed above), beam search gains more than it
# loses, which is the corpus-level gain of the table.

# %% [markdown]
# ## 5. Cross-attention: where each Zetan word comes from
#
# For each word it predicts, the decoder's cross-attention spreads a unit of weight over the source
# words. Averaged over heads, the last layer's map is close to a *word alignment*: the verb, last in
# Zetan, attends to the English verb in the middle of the sentence, and each noun to its English
# noun although the two languages order noun phrases differently.

# %%
examples = [eval_rows[i] for i in (0, 1, 2)]
fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
for ax, row in zip(axes, examples):
    weights, s_words, t_words = alignment_map(model, vocab, row)
    plot_cross_attention(weights, s_words, t_words, ax=ax, title="last decoder layer, mean of heads")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read each row as "to write this Zetan word, look there". The verb at the end of each Zetan sentence
# looks at the English verb; the noun that opens a Zetan noun phrase looks at the English noun that
# closes it; the adverb that Zetan puts first looks at the English adverb at the very end. Nobody
# told the model about word order: it found the alignment because it needed it to lower the loss.
# We measure it over the 200 test sentences: how often does the verb's strongest attention fall on
# the English verb?

# %%
verb_hits = {layer: verb_alignment(model, vocab, eval_rows, layer) for layer in range(config.n_layers)}
live_hits = verb_alignment(live, vocab, eval_rows, -1)
print("Zetan verb -> English verb, shipped model, by layer:", verb_hits)
print(f"live 200-step model, last layer: {live_hits:.2f}")
assert min(verb_hits.values()) > 0.95  # the trained model aligns the verb in every layer ...
assert live_hits < 0.8  # ... the 200-step model not yet

# %% [markdown]
# The trained model puts the verb's strongest attention on the English verb in more than 95% of the
# test sentences, in both layers; the 200-step model in fewer than 80%: the alignment is learnt
# along with the translation.

# %% [markdown]
# ## 6. Explore: one sentence, its attention, greedy and beam
#
# Pick a test sentence, a decoder layer and a head (or the mean of heads, -1); the explorer shows the
# cross-attention map of the shipped model while it reads the reference, and both decodings of the
# live model. First the default setting:

# %%
def explore(index=0, layer=1, head=-1):
    row = eval_rows[index]
    weights, s_words, t_words = alignment_map(model, vocab, row, layer, None if head < 0 else head)
    which = "mean of heads" if head < 0 else f"head {head}"
    plot_cross_attention(weights, s_words, t_words, title=f"layer {layer}, {which}")
    plt.show()
    print(f"reference:    {row['tgt']}")
    print(f"live greedy:  {live_greedy[index]}")
    print(f"live beam-4:  {live_beam[index]}")


explore()

# %% tags=["nbval-ignore-output", "remove-output"]
interact(explore, index=Dropdown(options=[(r["src"][:60], i) for i, r in enumerate(eval_rows[:40])], value=0),
         layer=IntSlider(value=config.n_layers - 1, min=0, max=config.n_layers - 1),
         head=IntSlider(value=-1, min=-1, max=config.n_heads - 1));

# %% [markdown]
# ## Summary
#
# - The original Transformer is an encoder (bidirectional self-attention over the source) and a
#   decoder (causal self-attention, then cross-attention to the encoder output), trained with
#   teacher forcing on shifted targets.
# - On English to Zetan, a 250k-parameter model learns the task in under two minutes on one CPU core:
#   BLEU near 100 on unseen sentences; after 200 steps it is at about half that.
# - Beam search beat greedy decoding by a few BLEU points for the under-trained model and made no
#   difference for the trained one.
# - Our BLEU equals sacrebleu's to $10^{-6}$; the cross-attention maps are word alignments that
#   undo the reordering between the two languages.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-05-brevity
# :nonumber:
# ```
# **Exercise 05.1 (brevity penalty).** Write `brevity_penalty(hyp_len, ref_len)`: 1 when the hypothesis
# is at least as long as the reference, $e^{1 - r/c}$ when it is shorter ($c$ = `hyp_len` > 0,
# $r$ = `ref_len`), and 0 for an empty hypothesis.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Three cases in order: the empty hypothesis first (it would divide by zero), then long-enough hypotheses, then the exponential.
# ```

# %% [markdown]
# ```{solution-start} ex-05-brevity
# :class: dropdown
# ```

# %%
def brevity_penalty(hyp_len, ref_len):
    ### BEGIN SOLUTION
    import math

    if hyp_len == 0:
        return 0.0
    return 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_brevity_penalty(brevity_penalty)  # against corpus BLEU's own brevity penalty

# %% [markdown]
# ```{exercise-start}
# :label: ex-05-clipped
# :nonumber:
# ```
# **Exercise 05.2 (clipped n-gram matches).** Write `clipped_matches(hyp, ref, n)` for two lists of
# tokens: the number of $n$-grams of `hyp` that also occur in `ref`, each $n$-gram counted at most
# as many times as it occurs in `ref` (so "the the the" against "the cat" has one unigram match).
# You may use `roadmap_lib.metrics.ngrams(tokens, n)`, which returns a `Counter` of $n$-gram tuples.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Count the hypothesis's $n$-grams and the reference's; each hypothesis $n$-gram contributes the smaller of its two counts.
# ```

# %% [markdown]
# ```{solution-start} ex-05-clipped
# :class: dropdown
# ```

# %%
def clipped_matches(hyp, ref, n):
    ### BEGIN SOLUTION
    ref_counts = ngrams(ref, n)
    return sum(min(count, ref_counts[g]) for g, count in ngrams(hyp, n).items())
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_clipped_matches(clipped_matches)  # against the matches BLEU counts, on sentence pairs with repeats

# %% [markdown]
# ```{exercise-start}
# :label: ex-05-teacher
# :nonumber:
# ```
# **Exercise 05.3 (teacher-forcing inputs).** Given target sentences as lists of word ids, build the
# decoder inputs and the loss targets: `decoder_io(targets) -> (tgt_in, tgt_out)`, both
# `(batch, max_len + 1)` int64 tensors, with `tgt_in = <bos> y_1 ... y_T` padded with `PAD` and
# `tgt_out = y_1 ... y_T <eos>` padded with `-100` (ignored by the loss). `BOS`, `EOS` and `PAD`
# are imported above.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Both tensors have the same width, one more than the longest target: the input adds `BOS` in front, the output adds `EOS` at the back. Pad each row to that width with its own padding value.
# ```

# %% [markdown]
# ```{solution-start} ex-05-teacher
# :class: dropdown
# ```

# %%
def decoder_io(targets):
    ### BEGIN SOLUTION
    width = max(len(t) for t in targets) + 1
    tgt_in = torch.tensor([[BOS] + t + [PAD] * (width - 1 - len(t)) for t in targets])
    tgt_out = torch.tensor([t + [EOS] + [-100] * (width - 1 - len(t)) for t in targets])
    return tgt_in, tgt_out
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_decoder_io(decoder_io)  # against the padded batches `make_batch` builds

# %% [markdown]
# ```{exercise-start}
# :label: ex-05-bleu-predict
# :nonumber:
# ```
# **Exercise 05.4 (predict, then measure: when BLEU collapses).** Take the first five test sentences
# whose Zetan reference has seven different words, and score two kinds of damaged translation against
# them with corpus BLEU (which adds up the $n$-gram counts of all five sentences before it divides):
# **one wrong word**, each reference with its fourth (middle) word replaced by a word it does not
# contain, and **the first four words**, each reference cut after its fourth word. Before running the
# check, predict three scores on sacrebleu's 0-100 scale:
#
# - `"one_wrong"`: one wrong word, no smoothing (`smooth_method="none"`);
# - `"one_wrong_exp"`: one wrong word, with sacrebleu's default smoothing `"exp"`, which gives the
#   $k$-th order that has no match at all the precision $1 / (2^k \cdot \text{total})$, total being
#   the number of $n$-grams of that order in the hypotheses;
# - `"first_four"`: the first four words, no smoothing.
#
# Write `predict_bleu()` returning the dict of your three numbers. The check builds these
# translations, scores them with `corpus_bleu` and accepts a prediction within 0.1 BLEU.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# For a seven-word sentence, count the $n$-grams of each order, and how many of them contain the
# fourth word. BLEU multiplies the four precisions (a geometric mean), so one order with no match
# decides the unsmoothed score. A prefix of the reference matches every one of its $n$-grams: only
# the brevity penalty $e^{1 - r/c}$ is left.
# ```

# %% [markdown]
# ```{solution-start} ex-05-bleu-predict
# :class: dropdown
# ```

# %%
def predict_bleu():
    ### BEGIN SOLUTION
    import math

    # seven words, the fourth wrong: of the 7, 6, 5, 4 n-grams of orders 1-4, those that contain
    # position 4 are 1, 2, 3 and all 4; the counts are the same in each of the five sentences
    p = [6 / 7, 4 / 6, 2 / 5, 0 / 4]
    p_exp = p[:3] + [1 / (2 * 4 * 5)]  # the first order with no match: 1 / (2 * 20 four-grams)
    return {"one_wrong": 0.0,
            "one_wrong_exp": 100 * math.prod(p_exp) ** (1 / 4),
            "first_four": 100 * math.exp(1 - 7 / 4)}  # every n-gram matches; c = 4, r = 7
    ### END SOLUTION

# %% [markdown]
# Six of the seven words are right, yet the unsmoothed score is 0: all four 4-grams contain the wrong
# word, and a geometric mean with one zero factor is zero. Smoothing replaces that zero by a small
# precision that shrinks with the number of 4-grams in the corpus; this is why sentence-level BLEU
# (section 4 prints some) is smoothed by default, as in sacrebleu. The truncated translation has perfect precisions and
# loses more than half its score to the brevity penalty alone.
#
# ```{solution-end}
# ```

# %%
check_bleu_predictions(predict_bleu)  # the damaged translations, scored by corpus_bleu
