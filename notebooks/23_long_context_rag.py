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
# # 23. Long contexts and retrieval-augmented generation
#
# **What you will learn**
#
# - retrieval-augmented generation {cite}`lewis2020rag` end to end on the Jargon File: its entries as
#   documents, BM25 {cite}`robertson2009bm25` (equal to `rank_bm25`), a dense bi-encoder trained
#   contrastively with in-batch negatives {cite}`karpukhin2020dpr,oord2018cpc`, a real faiss index
#   {cite}`johnson2019faiss` (exact and HNSW {cite}`malkov2020hnsw`, saved and reloaded), hybrid
#   retrieval by reciprocal rank fusion {cite}`cormack2009rrf`, re-ranking, a reader, and a grounding
#   check; measured with recall@k and MRR over three encoder seeds;
# - why a strong lexical baseline is hard to beat on a small corpus, measured, not asserted from
#   folklore {cite}`thakur2021beir`;
# - context extension of RoPE {cite}`su2021roformer` without fine-tuning: position interpolation
#   {cite}`chen2023interpolation`, NTK-aware scaling {cite}`bloc97ntk2023` and YaRN
#   {cite}`peng2023yarn` (ours equals transformers' rope initialisation), compared by loss at every
#   position of windows 1x, 2x and 4x the training length, and by a needle-in-a-haystack test
#   {cite}`kamradt2023needle`: does a model trained to retrieve a planted key still find it at 2x and
#   4x, at every depth, under each scaling?
# - attention for long inputs in memory linear in the length {cite}`rabe2021selfattention`: query
#   blocks, exactly equal to full attention, peak memory measured.
#
# **What you need**: RoPE and the extrapolation table of chapter 03, attention from chapter 04, the
# character GPT of chapter 07 (our closed-book baseline), and FlashAttention's blocking idea from
# chapter 13.
#
# **Run time**: about 60 s on a laptop CPU (one thread). Training the dense encoder (3 seeds) and the RoPE models
# (3 seeds each for the loss curves and the needle test) takes minutes; they are shipped artifacts
# (`python -m roadmap_lib build 23-dense-retriever`, `23-long-context`, `23-needle`, `23-closed-book`)
# that this chapter loads and re-measures.

# %%
# %matplotlib inline
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from ipywidgets import IntSlider, interact
from rank_bm25 import BM25Okapi
from transformers import LlamaConfig as HFLlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from roadmap_lib import data_path, set_seed
from roadmap_lib.attention import scaled_dot_product_attention
from roadmap_lib.chapters.ch23_long_context_rag import artifacts, longctx, needle, rag
from roadmap_lib.chapters.ch23_long_context_rag.exercises import (
    check_bm25_term,
    check_key_found,
    check_long_measure,
    check_rrf_scores,
)
from roadmap_lib.chapters.ch23_long_context_rag.plots import (
    METHOD_NAMES,
    plot_hnsw,
    plot_loss_curves,
    plot_memory,
    plot_needle,
    plot_retrieval,
    plot_speeds,
    retrieval_table,
    seed_stats,
)
from roadmap_lib.longcontext import chunked_attention, loss_per_position
from roadmap_lib.measure import peak_memory
from roadmap_lib.retrieval import (
    BM25,
    VectorIndex,
    featurize,
    overlap_at_k,
    simple_tokenize,
)
from roadmap_lib.rope import yarn_attention_factor, yarn_inv_freq

set_seed(0)
torch.set_num_threads(1)

# %% [markdown]
# ## Part A: retrieval-augmented generation
#
# A language model answers from what its weights hold. Retrieval-augmented generation adds a step:
# find the passages of a document collection that bear on the question, put them in front of the
# model, and answer from them. Each piece can be measured on its own: did the retriever find the
# right passage (recall@k, MRR), did the reader answer correctly (exact match, F1), and is the answer
# supported by what was retrieved (grounding).
#
# ### Documents
#
# The Jargon File is a glossary, so its natural unit is an entry: a headword and its definition.
# `jargon_entries` cuts the text at every `:headword:` line. (Longer, unstructured texts need fixed
# windows instead: `word_windows(text, size, overlap)`.)

# %%
docs, ev = artifacts.corpus()
lengths = np.array([len(d.text.split()) for d in docs])
print(f"{len(docs)} entries; words per entry: median {np.median(lengths):.0f}, "
      f"90th percentile {np.percentile(lengths, 90):.0f}, longest {lengths.max()}")
print(docs[ev.doc_ids[0]])

# %% [markdown]
# The evaluation uses 200 entries drawn at random (seed 0) among those with at least 30 words, and
# three kinds of query for each (the first entry's queries are printed below):
#
# - **fragment**: 10 consecutive words from the middle of the entry ("which entry says this?");
# - **typo fragment**: the same words with a letter replaced in about half of the words of four
#   letters or more, so that exact word matching is partly broken;
# - **question**: "What is *headword*?", whose answer is the entry's first definition sentence.

# %%
for name in rag.QUERY_SETS:
    print(f"{name:>14}: {rag.queries_of(ev, name)[0]}")
print(f"{'gold answer':>14}: {ev.answers[0]}")

# %% [markdown]
# ### BM25
#
# BM25 scores a document by the query words it contains, each weighted by its rarity (idf) and by a
# term frequency that saturates and is discounted for long documents:
#
# $$\mathrm{score}(q, d) = \sum_{t \in q} \mathrm{idf}(t)\,
#   \frac{\mathrm{tf}(t,d)\,(k_1 + 1)}{\mathrm{tf}(t,d) + k_1\,(1 - b + b\,|d| / \mathrm{avgdl})},
#   \qquad \mathrm{idf}(t) = \ln\frac{N - \mathrm{df}(t) + 0.5}{\mathrm{df}(t) + 0.5}.$$
#
# Ours (`roadmap_lib.retrieval.BM25`, an inverted index over numpy arrays) must give the scores of
# the `rank_bm25` package's `BM25Okapi` on the same tokens, including its floor for terms in more
# than half of the documents. We compare all 2,307 scores for the first 20 questions.

# %%
corpus_tokens = [simple_tokenize(str(d)) for d in docs]
ours_bm25, ref_bm25 = BM25(corpus_tokens), BM25Okapi(corpus_tokens)
gap = max(np.abs(ours_bm25.scores(simple_tokenize(q)) - ref_bm25.get_scores(simple_tokenize(q))).max()
          for q in ev.questions[:20])
print(f"largest score difference from rank_bm25: {gap:.2e}")
assert gap < 1e-9

# %% [markdown]
# ### A dense retriever of our own
#
# A dense retriever maps queries and passages to unit vectors and ranks passages by the dot product.
# Ours is deliberately small: each text becomes the bag of its words and of their character trigrams,
# hashed into 8,192 buckets (the "word hashing" of DSSM {cite}`huang2013dssm`); the mean of their
# 64-dimensional embeddings goes through one linear map and is normalised. Queries and passages share
# the encoder.
#
# It is trained contrastively: a batch holds $B = 128$ distinct entries; each one's query (its
# headword, or a random 4-12-word span of its text) is scored against all $B$ passages, and the loss
# is InfoNCE, the cross-entropy of picking its own:
#
# $$\mathcal{L} = -\frac{1}{B}\sum_i \log \frac{\exp(q_i\cdot p_i/\tau)}{\sum_j \exp(q_i\cdot p_j/\tau)},
#   \qquad \tau = 0.05 .$$
#
# The other $B-1$ passages are free negatives. The evaluated fragments are never training queries
# (those words are cut out of the spans training draws from), but they are part of the passages.
# Training takes minutes, so the artifact `23-dense-retriever` trained three seeds (300 steps each)
# and ships seed 0 (in float16).

# %%
record = json.loads(data_path(artifacts.RESULTS_FILE).read_text(encoding="utf-8"))
fig, ax = plt.subplots(figsize=(6, 3))
for seed, losses in record["losses"].items():
    ax.plot(np.arange(len(losses)) * 10, losses, label=f"seed {seed}")
ax.set_xlabel("step")
ax.set_ylabel("InfoNCE loss (batch 128)")
ax.legend()
plt.show()
last = [v[-1] for v in record["losses"].values()]
print("first logged loss", [round(v[0], 2) for v in record["losses"].values()], "last", [round(v, 2) for v in last])
assert max(last) < 0.4 * np.log(128)  # ln(128): the loss of an encoder that ranks at random

# %% [markdown]
# ### A faiss index, exact and approximate
#
# `VectorIndex` wraps faiss: `"flat"` scores every vector (exact), `"hnsw"` walks a layered graph of
# neighbours and keeps `ef_search` candidates on the way. We index the 2,307 passage vectors both
# ways, save both to disk and load them back.

# %%
encoder = artifacts.load_encoder(data_path(artifacts.ENCODER_FILE))
passages = [featurize(str(d), encoder.num_buckets) for d in docs]
retrievers = rag.Retrievers(docs, encoder, passages)
queries = np.concatenate([retrievers.embed(rag.queries_of(ev, s)) for s in rag.QUERY_SETS])
with tempfile.TemporaryDirectory() as tmp:
    for kind, index in (("flat", retrievers.flat), ("hnsw", retrievers.approx)):
        index.save(Path(tmp) / f"{kind}.faiss")
        again = VectorIndex.load(Path(tmp) / f"{kind}.faiss")
        assert np.array_equal(again.search(queries, 10)[1], index.search(queries, 10)[1])
    print("saved:", sorted(p.name for p in Path(tmp).iterdir()))

# %% [markdown]
# How close is HNSW to exact search? The overlap of the two top-10 lists over all 600 queries, as
# `ef_search` grows:

# %%
exact_ids = retrievers.flat.search(queries, 10)[1]
ef_values = [4, 8, 16, 32, 64, 128]
overlaps = []
for ef in ef_values:
    retrievers.approx.set_search(ef_search=ef)
    overlaps.append(overlap_at_k(retrievers.approx.search(queries, 10)[1], exact_ids, 10))
retrievers.approx.set_search(ef_search=32)
plot_hnsw(ef_values, overlaps)
plt.show()
print(dict(zip(ef_values, np.round(overlaps, 3))))
assert overlaps[0] < 0.9 and overlaps[-1] > 0.97 and overlaps[-1] > overlaps[0] + 0.1

# %% [markdown]
# At 2,307 vectors exact search is cheap and we would not need HNSW; the point is the knob: the graph
# walk misses some true neighbours when it keeps few candidates, and converges to the exact answer
# as `ef_search` grows. (Explore it below, together with `k`.)

# %% tags=["nbval-ignore-output", "remove-output"]
def explore_hnsw(ef_search=32, k=10):
    got = retrievers.approx.set_search(ef_search=ef_search).search(queries, k)[1]
    print(f"ef_search={ef_search}, k={k}: overlap with exact top-{k} = "
          f"{overlap_at_k(got, retrievers.flat.search(queries, k)[1], k):.3f}")
    retrievers.approx.set_search(ef_search=32)


interact(explore_hnsw, ef_search=IntSlider(32, 1, 256), k=IntSlider(10, 1, 50));

# %% [markdown]
# ### Five retrievers, three kinds of query
#
# - **bm25**; **dense** (exact search); **dense (HNSW)**;
# - **hybrid (RRF)**: reciprocal rank fusion of the BM25 and dense top-50, each document scoring
#   $\sum_r 1/(60 + \mathrm{rank}_r)$: only ranks are combined, so the two scores need no common scale;
# - **dense + BM25 rerank**: the dense top-50 re-ordered by BM25. A re-ranker can only move up what
#   the first stage found.
#
# We re-measure seed 0 here and check it against the results file, then show all three seeds.

# %%
measured = rag.evaluate(retrievers, ev)
seeds = record["seeds"]
for q in rag.QUERY_SETS:
    for m, row in measured[q].items():
        want = seeds["0"][q][m]
        assert (abs(row - want) <= artifacts.TOL if isinstance(row, float)
                else all(abs(row[x] - want[x]) <= artifacts.TOL for x in row)), (q, m)
plot_retrieval(seeds, "recall@1")
plt.show()
display(Markdown(retrieval_table(seeds, "recall@1") + "\n\n" + retrieval_table(seeds, "mrr@10")))

# %% [markdown]
# Each cell is the mean over the three encoder seeds, with the lowest and highest seed in brackets
# (BM25 has no seed). What the table says, for this corpus, these queries and this 300-step encoder:
#
# - **BM25 beats our dense retriever in every column**, by more than the dense seeds' spread.
#   Fragments are verbatim text, BM25's home ground; even with typos in about half of the long words
#   the remaining exact matches carry it; and headwords are rare words it finds. This is the usual
#   picture on a small, specialised corpus {cite}`thakur2021beir`: dense retrievers win with large
#   encoders trained on many real question-passage pairs, which we do not have.
# - **Fusion does not rescue a weak retriever.** RRF of BM25 and a much weaker dense list sits below
#   BM25 on fragments, in every seed.
# - **Re-ranking is capped by its first stage**: BM25 re-ranking of the dense top-50 lifts dense
#   recall@1 a lot, but never above the dense recall@50 it starts from.
# - On **questions**, BM25, the hybrid and the re-ranked dense list are within the seed spread of each
#   other: no difference between those three.

# %%
def mean(q, m, metric="recall@1"):
    return seed_stats(seeds, q, m, metric)[0]


for q in rag.QUERY_SETS:
    _, lo, hi = seed_stats(seeds, q, "dense", "recall@1")
    assert mean(q, "bm25") > hi + 0.1, q  # BM25 beats every dense seed by a margin
    assert mean(q, "dense + BM25 rerank") > mean(q, "dense") + 0.1, q
_, lo, hi = seed_stats(seeds, "fragment", "hybrid (RRF)", "recall@1")
assert hi < mean("fragment", "bm25")
for m in ("hybrid (RRF)", "dense + BM25 rerank"):
    _, lo, hi = seed_stats(seeds, "question", m, "recall@1")
    assert lo - 0.02 <= mean("question", "bm25") <= hi + 0.02, m  # within the seed spread: no difference
print("HNSW top-10 overlap with exact search (ef_search=32), per query set and seed:")
for q in rag.QUERY_SETS:
    print(f"  {q:>14}:", [round(s[q]["hnsw_overlap@10"], 3) for s in seeds.values()])

# %% [markdown]
# ### Reader, closed book against RAG, and grounding
#
# The reader is the simplest honest one: it copies the first definition sentence of the top passage.
# Its answer is right exactly when the retriever put the right entry first, so answer accuracy
# equals recall@1 of the retriever it reads from, here the one with the best mean recall@1 on
# questions. The closed-book baseline is the character GPT of chapter 07 (trained on this very text,
# context 64 characters) continuing `:headword: ` from memory; its 200 answers are the shipped
# artifact `23-closed-book`. Scores are SQuAD's exact match and token F1 on normalised strings.

# %%
best = max(("bm25", "dense", "hybrid (RRF)", "dense + BM25 rerank"), key=lambda m: mean("question", m))
ranked = retrievers.run(ev.questions, k=5)[best]
rag_answers = [rag.read(docs, r) for r in ranked]
closed = json.loads(data_path(artifacts.CLOSED_FILE).read_text(encoding="utf-8"))
scores = {
    "closed book (char GPT)": (np.mean([rag.exact_match(a, g) for a, g in zip(closed["answers"], ev.answers)]),
                               np.mean([rag.answer_f1(a, g) for a, g in zip(closed["answers"], ev.answers)])),
    f"RAG ({best} + extractive reader)": (np.mean([rag.exact_match(a, g) for a, g in zip(rag_answers, ev.answers)]),
                                          np.mean([rag.answer_f1(a, g) for a, g in zip(rag_answers, ev.answers)])),
}
display(Markdown("| system | exact match | F1 |\n|---|---|---|\n" + "\n".join(
    f"| {k} | {em:.3f} | {f1:.3f} |" for k, (em, f1) in scores.items())))
(cb_em, cb_f1), (rag_em, rag_f1) = scores.values()
assert cb_em == 0 and cb_f1 < 0.1 and rag_em > 0.6 and rag_f1 > rag_em

# %% [markdown]
# The grounding check asks, of each answer, what fraction of its words appear in one of the five
# retrieved passages (`rag.support`). For the extractive reader it is 1 by construction (it copies),
# so the informative numbers are the closed-book answers' support, and the support of the RAG answers
# by the **gold** entry, which separates answers that are grounded in the wrong passage from right ones.

# %%
top5 = [[str(docs[i]) for i in r] for r in ranked]
cb_support = np.array([rag.support(a, p) for a, p in zip(closed["answers"], top5)])
gold_support = np.array([rag.support(a, [str(docs[g])]) for a, g in zip(rag_answers, ev.doc_ids)])
correct = np.array([rag.exact_match(a, g) for a, g in zip(rag_answers, ev.answers)])
print(f"closed-book answers with >= 80% of their words in a retrieved passage: {np.mean(cb_support >= 0.8):.3f}")
print(f"RAG answers supported (>= 80%) by the gold entry: {np.mean(gold_support >= 0.8):.3f}; "
      f"exact match: {correct.mean():.3f}")
assert np.mean(cb_support >= 0.8) < 0.1
assert abs(np.mean(gold_support >= 0.8) - correct.mean()) < 0.1

# %% [markdown]
# The first three questions, and the first one after them that the RAG pipeline gets wrong:

# %%
wrong = int(next(i for i in np.flatnonzero(correct == 0) if i >= 3))
for i in [0, 1, 2, wrong]:
    print(f"Q{i}: {ev.questions[i]}\n   closed book: {closed['answers'][i]}\n   RAG ({docs[ranked[i][0]].title}): "
          f"{rag_answers[i]}\n   gold: {ev.answers[i]}\n")

# %% [markdown]
# The closed-book GPT falls into loops of frequent words ("the start of the start of") with no
# connection to the headword: 64 characters of context and a few layers memorise spelling and style,
# not 2,307 definitions. Retrieval moves the knowledge out of the weights, and its failures are of a
# different kind: another entry comes first (question 1: the entry *book titles*, which refers to the
# Aluminum Book), and the reader copies a fluent, well-grounded answer to a different
# question. Grounding in *some* retrieved passage is not correctness. (Question 1 also shows a limit
# of our sentence splitter: the gold sentence is cut at the initial in "Guy L. Steele".)

# %% [markdown]
# ## Part B: reading past the training length
#
# A RoPE model trained on windows of 64 characters has never seen a rotation angle beyond
# $64\,\theta_i$ for pair $i$. Three test-time fixes rescale the angles when reading $s$ times longer:
#
# - **PI** (linear): divide every position by $s$, all angles stay in the trained range, but nearby
#   tokens become $s$ times harder to tell apart;
# - **NTK-aware**: raise the base, so slow pairs slow down about $s$ times and fast pairs barely move;
# - **YaRN**: per pair, by how many turns it makes over the trained length: more than
#   $\beta_{\text{fast}} = 32$ turns, keep; fewer than $\beta_{\text{slow}} = 1$, interpolate; a linear
#   ramp between; and multiply cos and sin by $0.1 \ln s + 1$ to sharpen the softmax again.
#
# Our YaRN (`roadmap_lib.rope`, `scaling="yarn"`) must equal transformers' rope initialisation:

# %%
hf_cfg = HFLlamaConfig(hidden_size=64, num_attention_heads=4, head_dim=16, max_position_embeddings=256,
                       rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                        "original_max_position_embeddings": 64})
hf_inv, hf_att = ROPE_INIT_FUNCTIONS["yarn"](hf_cfg, "cpu")
ours_inv = yarn_inv_freq(16, 10000.0, 4.0, 64)
print("max |inv_freq difference|:", (ours_inv - hf_inv).abs().max().item(), " attention factor:",
      yarn_attention_factor(4.0), hf_att)
assert torch.allclose(ours_inv, hf_inv, rtol=1e-6, atol=0) and abs(yarn_attention_factor(4.0) - hf_att) < 1e-12
plot_speeds(dim=16, factor=4.0, train_len=64)
plt.show()

# %% [markdown]
# With head dimension 16 and a 64-character training length, few pairs turn more than 32 times, so
# YaRN keeps only the fastest pair, ramps over the next ones and interpolates the rest as PI does;
# NTK's curve is smooth, from kept to interpolated.
#
# The artifact `23-long-context` trained a character Llama (2 layers, 64 dimensions, RoPE) on
# 64-character windows for 600 steps, three seeds, and recorded its loss at every position of 32
# validation windows of 64, 128 and 256 characters, under each scaling, with `factor = L / 64` and
# no fine-tuning. We re-measure seed 0 first.

# %%
long_record = json.loads(data_path(artifacts.LONG_FILE).read_text(encoding="utf-8"))
cfg = artifacts.LONG_CFG
llama = artifacts.load_llama(data_path(artifacts.LLAMA_FILE))
chars = longctx.data(cfg)
again = longctx.summary(longctx.curves(llama, chars, cfg), cfg.train_len)
for m, by_f in long_record["summary"]["0"].items():
    for f, row in by_f.items():
        for part, want in row.items():
            assert abs(again[m][int(f)][part] - want) <= artifacts.LONG_TOL, (m, f, part)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
plot_loss_curves(long_record, 2, ax=axes[0])
plot_loss_curves(long_record, 4, ax=axes[1])
plt.show()

# %%
def beyond(m, f):
    """Per-seed mean loss over the positions past the training length."""
    return np.array([s[m][str(f)]["beyond"] for s in long_record["summary"].values()])


rows = [f"| {METHOD_NAMES[m]} | " + " | ".join(
    f"{beyond(m, f).mean():.3f} [{beyond(m, f).min():.3f}, {beyond(m, f).max():.3f}]" for f in (2, 4)) + " |"
    for m in longctx.METHODS]
display(Markdown("| loss past position 64 | 2x (128 chars) | 4x (256 chars) |\n|---|---|---|\n" + "\n".join(rows)))

# %% [markdown]
# At 1x every method is plain RoPE. Past the training length, with this small model, 600 steps and
# no fine-tuning (means over 3 seeds, min and max in brackets):
#
# - plain RoPE holds for a few more positions past 64, then its loss climbs; much more at 4x than
#   at 2x: the unseen angles break it;
# - PI without fine-tuning is **worse** than doing nothing at 2x, and already in the first 64
#   positions: squeezing positions blurs the local order a character model lives on. (PI was
#   designed to be followed by a short fine-tuning {cite}`chen2023interpolation`.)
# - NTK-aware scaling and YaRN both keep the loss below plain RoPE at 2x and 4x, in every seed;
# - at 4x YaRN is below NTK in every seed; at 2x their ranges overlap: no difference.
#
# The four methods read the *same* trained model of each seed, so NTK and YaRN against plain RoPE
# are paired comparisons, asserted seed by seed (the smallest per-seed gaps are printed: at 2x,
# plain RoPE's own loss varies from seed to seed about as much as the gap). The other orderings
# asserted below have a gap larger than the spread across seeds.

# %%
for f in (2, 4):
    gaps = {m: beyond("rope", f) - beyond(m, f) for m in ("ntk", "yarn")}
    print(f"{f}x, plain RoPE minus the method, smallest over the seeds: "
          + ", ".join(f"{METHOD_NAMES[m]} {g.min():+.3f}" for m, g in gaps.items())
          + f"; plain RoPE's range over the seeds {np.ptp(beyond('rope', f)):.3f}")
    assert all((g > 0.1).all() for g in gaps.values())
assert beyond("linear", 2).min() > beyond("rope", 2).max()
first64 = {m: np.array([np.mean(c[m]["2"][:8]) for c in long_record["curves"].values()]) for m in ("rope", "linear")}
assert first64["linear"].min() > first64["rope"].max() + 0.3  # bins of 8: the first 8 bins are positions 0-63
assert beyond("yarn", 4).max() < beyond("ntk", 4).min()
assert not (beyond("yarn", 2).max() < beyond("ntk", 2).min() or beyond("ntk", 2).max() < beyond("yarn", 2).min())
assert beyond("rope", 4).mean() > beyond("rope", 2).mean() + 0.5

# %% [markdown]
# ### Needle in a haystack: is the far context used?
#
# A loss past position 64 that stays low says the model is not confused there; it does not say the
# model *uses* what lies far back: predicting the next character of English mostly needs the last
# few. The needle-in-a-haystack test {cite}`kamradt2023needle` (passkey retrieval in
# {cite}`mohtashami2023landmark`) asks it directly: plant a fact at some depth of a long input, ask
# for it at the end, and vary the length and the depth.
#
# A character model cannot be asked a question, so we use a needle it can learn to retrieve
# (`roadmap_lib.longcontext.NeedleTask`): the sentence `" the key is 48172. "`, with a key of five
# random digits drawn afresh for every window, planted after a fraction *depth* of the haystack (0%:
# the window starts with it, 100%: it comes right before the query); the window ends with the query
# `" the key is "` and the key. Nothing but the needle tells the model the five digits, so a window
# counts as **found** when all five are the model's top choices (greedy decoding would write the key
# exactly). Part B's model was trained on plain text; does it find the key inside its own 64
# characters?

# %%
plain = [needle.cell(llama, chars, needle.NeedleConfig(), "rope", 64, depth)[0] for depth in needle.NeedleConfig().depths]
print("Part B's model, 64-char windows, keys found per depth:", [round(v, 3) for v in plain])
assert max(plain) <= 1 / 32  # at most one window of 32 per depth

# %% [markdown]
# It does not: after 600 steps of plain text it has not learned to copy from its context (a copying
# circuit, an "induction head" {cite}`olsson2022context`, needs two layers and, it seems, more
# training or more repeated text than this). So the artifact `23-needle` trains the same model (2
# layers, $d_\text{model} = 64$, RoPE) from scratch on 64-character windows that each hold a needle
# at a random depth, three seeds, with the loss
# $\tfrac12\,(\text{loss on the text}) + \tfrac12\,(\text{loss on the five key digits})$ (with the
# plain language-model loss the key would be only 5 of 64 targets; the weight makes retrieval half
# of the objective, a choice of ours for a short training). We then test it, without fine-tuning,
# on 32 windows per cell: lengths 64, 128 and 256, depths 0 to 100%, under each RoPE scaling. First,
# seed 0 re-measured at 1x (where every method is plain RoPE) and at 2x, then the whole grid from
# the results file:

# %%
needle_record = json.loads(data_path(artifacts.NEEDLE_FILE).read_text(encoding="utf-8"))
ncfg = artifacts.NEEDLE_CFG
needle_model = artifacts.load_llama(data_path(artifacts.NEEDLE_MODEL))
again = needle.grid(needle_model, chars, ncfg, lengths=(128,))
again["found"]["rope"]["64"] = needle.grid(needle_model, chars, ncfg, ("rope",), (64,))["found"]["rope"]["64"]
for m, by_len in again["found"].items():
    for n, got in by_len.items():
        want = needle_record["seeds"]["0"]["grid"]["found"][m][n]
        assert all(abs(a - b) <= artifacts.NEEDLE_TOL for a, b in zip(got, want)), (m, n)
plot_needle(needle_record)
plt.show()


def found(m, n):
    """Per-seed found rate of method m at length n, averaged over the depths."""
    return needle.found_array(needle_record, m)[:, ncfg.lengths.index(n)].mean(1).numpy()


header = "| keys found, mean over depths | " + " | ".join(f"{n} chars" for n in ncfg.lengths) + " |\n"
display(Markdown(header + "|---" * (len(ncfg.lengths) + 1) + "|\n" + "\n".join(
    f"| {METHOD_NAMES[m]} | " + " | ".join(f"{found(m, n).mean():.2f} [{found(m, n).min():.2f}, {found(m, n).max():.2f}]"
                                             for n in ncfg.lengths) + " |" for m in longctx.METHODS)))

# %% [markdown]
# Each heatmap cell is the mean over the three seeds of the fraction of 32 windows whose key was
# found; the table averages over the five depths, with the lowest and highest seed in brackets. For
# this 2-layer, 64-wide character model, trained for 1,200 steps on 64-character windows with
# five-digit keys, and read longer with no fine-tuning:
#
# - **At 1x it retrieves**, at every depth, though not equally well in every seed (seed 1 is the
#   weakest). The four rows are the same model at 1x.
# - **At 4x retrieval is gone**: plain RoPE, PI and YaRN find no key in any window of any seed;
#   NTK-aware scaling finds a few, in two seeds out of three. Its loss on the key digits is below
#   plain RoPE's in every seed, by more than the seeds' spread: NTK leaves the model nearer the
#   key, not near enough to write it.
# - **PI finds no key at 2x either**, in any seed; in Part B, too, PI without fine-tuning hurt
#   even inside the first 64 positions.
# - **At 2x, plain RoPE, NTK and YaRN do not differ**: each one's mean lies inside the others'
#   range over seeds, and each range runs from almost nothing (seed 1) to most keys (seed 2). Here
#   the training seed matters more than the scaling.
# - **The distance to the needle is not the whole story.** At depth 100% the needle sits right
#   before the query, at distances seen in training, yet at 2x plain RoPE finds fewer keys there
#   than at 1x, in every seed: the 64 characters further back, at distances never seen in
#   training, are enough to disturb the copying.
#
# This is a toy: one kind of needle, digit keys, a small model trained on the task itself. Needle
# tests of real models {cite}`kamradt2023needle,hsieh2024ruler` hide a natural-language fact in long
# documents and ask for it in words. What carries over is the method (vary the length and the depth,
# score retrieval, not the loss) and the lesson of Part B's curves read again: a loss that stays
# low past the training length does not show that the far context is used.

# %%
def key_loss(m, n):
    """Per-seed mean loss (nats) on the key digits of method m at length n, over the depths."""
    return needle.found_array(needle_record, m, "loss")[:, ncfg.lengths.index(n)].mean(1).numpy()


assert found("rope", 64).mean() > 0.8 and found("rope", 64).min() > 0.5  # 1x: retrieval learned
for m in ("rope", "linear", "yarn"):
    assert found(m, 256).max() == 0, m  # 4x: not one key, in any seed
assert 0 < found("ntk", 256).max() < 0.3
assert key_loss("ntk", 256).max() < key_loss("rope", 256).min()  # a gap larger than the seed spread
assert found("linear", 128).max() == 0 and min(found(m, 128).max() for m in ("rope", "ntk", "yarn")) > 0.5
for a in ("rope", "ntk", "yarn"):  # 2x: every mean inside every other method's seed range: no difference
    for b in ("rope", "ntk", "yarn"):
        assert found(b, 128).min() <= found(a, 128).mean() <= found(b, 128).max(), (a, b)
deepest = needle.found_array(needle_record, "rope")[:, :, -1]  # (seeds, lengths) at depth 100%
assert (deepest[:, 1] < deepest[:, 0] - 0.1).all()  # 2x below 1x in every seed, needle close or not

# %% [markdown]
# The first test window of the 4x, depth-0% cell (the needle as far from the query as it gets),
# with the model's top choice for each key digit given the right digits before it:

# %%
ids = needle.cell_windows(chars, 256, 0.0, ncfg.windows)[:1]
print(repr("".join(chars.vocab.chars[i] for i in ids[0, :40].tolist())), "...",
      repr("".join(chars.vocab.chars[i] for i in ids[0, -20:].tolist())))
for m in longctx.METHODS:
    with longctx.rescaled(needle_model, m, 4, 64):
        top = needle_model(ids[:, :-1])[0, -5:].argmax(-1)
    print(f"{METHOD_NAMES[m]:>12}: {''.join(chars.vocab.chars[i] for i in top.tolist())}")

# %% [markdown]
# ## Part C: attention in memory linear in the length
#
# Each row of the attention matrix is normalised on its own, so the rows can be computed a block of
# queries at a time: scores against all keys, softmax, times $V$, next block. The result is exact;
# the largest temporary is $B \times L$ per head instead of $L \times L$ (time stays quadratic).
# FlashAttention (chapter 13) also splits the keys, with an online softmax.

# %%
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 4, 300, 32, generator=g) for _ in range(3))
for causal in (False, True):
    diff = (chunked_attention(q, k, v, causal=causal, block_size=64)
            - scaled_dot_product_attention(q, k, v, is_causal=causal)).abs().max().item()
    print(f"causal={causal}: max difference from full attention {diff:.1e}")
    assert diff < 1e-5

lengths, naive, chunked = [128, 256, 512, 1024], [], []
for L in lengths:
    q, k, v = (torch.randn(1, 4, L, 32, generator=g) for _ in range(3))
    naive.append(peak_memory(lambda q=q, k=k, v=v: scaled_dot_product_attention(q, k, v, is_causal=True)))
    chunked.append(peak_memory(lambda q=q, k=k, v=v: chunked_attention(q, k, v, causal=True, block_size=128)))
plot_memory(lengths, naive, chunked)
plt.show()
print("peak MiB, full:", [round(x / 2**20, 2) for x in naive], " chunked:", [round(x / 2**20, 2) for x in chunked])
assert naive[-1] / naive[-2] > 3.5 and chunked[-1] / chunked[-2] < 2.2 and chunked[-1] < naive[-1] / 4

# %% [markdown]
# Doubling $L$ roughly quadruples the full path's peak (the $L \times L$ scores and weights) and about
# doubles the chunked one's (one block's scores plus the inputs and output).
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-23-bm25
# :nonumber:
# ```
# **Exercise 23.1 (the BM25 term weight).** Write `bm25_term(tf, doc_len, avgdl, idf)`: the
# contribution of one query term to BM25, elementwise over tensors `tf`, `doc_len`, `idf` of shape
# `(n,)` and a scalar tensor `avgdl`, with $k_1 = 1.5$ and $b = 0.75$ (the formula of Part A).
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Three ingredients: the idf weight, a term frequency that saturates as it grows, and a denominator
# that grows with the document's length relative to the average.
# ```

# %% [markdown]
# ```{solution-start} ex-23-bm25
# :class: dropdown
# ```

# %%
def bm25_term(tf, doc_len, avgdl, idf):
    ### BEGIN SOLUTION
    k1, b = 1.5, 0.75
    return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avgdl))
    ### END SOLUTION


# %% [markdown]
# With $b = 0$ the length plays no role; with $\mathrm{tf} \to \infty$ the fraction tends to $k_1 + 1$.
#
# ```{solution-end}
# ```

# %%
check_bm25_term(bm25_term)

# %% [markdown]
# ```{exercise-start}
# :label: ex-23-rrf
# :nonumber:
# ```
# **Exercise 23.2 (reciprocal rank fusion).** Write `rrf_scores(ranks)`: `ranks` is an integer tensor
# `(rankers, docs)` where `ranks[r, d]` is document `d`'s rank in ranker `r`'s list (1 = first) or 0 if
# that ranker did not return it. Return the fused scores `(docs,)` with $k = 60$.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Each ranker that returned a document adds one term that shrinks with the rank; a ranker that did
# not return it adds nothing.
# ```

# %% [markdown]
# ```{solution-start} ex-23-rrf
# :class: dropdown
# ```

# %%
def rrf_scores(ranks):
    ### BEGIN SOLUTION
    contrib = 1.0 / (60.0 + ranks.double())
    return torch.where(ranks > 0, contrib, torch.zeros_like(contrib)).sum(0)
    ### END SOLUTION


# %% [markdown]
# `roadmap_lib.retrieval.rrf` does the same on ranked id lists and sorts the result.
#
# ```{solution-end}
# ```

# %%
check_rrf_scores(rrf_scores)

# %% [markdown]
# ```{exercise-start}
# :label: ex-23-predict
# :nonumber:
# ```
# **Exercise 23.3 (predict, then measure: PI or NTK at 2x?).** Before measuring, write in
# `prediction` which of `"linear"` (position interpolation) and `"ntk"` gives the shipped seed-0 model
# the lower loss past position 64 on 128-character windows. Then measure both: fill `measured` with the
# mean loss over positions 64-127 of `longctx.eval_windows(chars, 128, cfg.eval_windows)`, using
# `longctx.rescaled(llama, method, 2, 64)` and `roadmap_lib.longcontext.loss_per_position`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Which of the two moves the fast-turning pairs, the ones that tell neighbouring characters apart?
# ```

# %% [markdown]
# ```{solution-start} ex-23-predict
# :class: dropdown
# ```

# %%
measured_2x = {}
### BEGIN SOLUTION
prediction = "ntk"  # your prediction, made before running the loop: "linear" or "ntk"
windows = longctx.eval_windows(chars, 128, cfg.eval_windows)
for method in ("linear", "ntk"):
    with longctx.rescaled(llama, method, 2, 64):
        measured_2x[method] = loss_per_position(llama, windows)[64:].mean().item()
### END SOLUTION

# %% [markdown]
# PI halves every angle, so neighbouring characters, which the model tells apart mostly through the
# fast pairs, look half as far apart as in training; NTK leaves the fast pairs almost unchanged.
#
# ```{solution-end}
# ```

# %%
check_long_measure(measured_2x, long_record["summary"]["0"], prediction)

# %% [markdown]
# ```{exercise-start}
# :label: ex-23-needle
# :nonumber:
# ```
# **Exercise 23.4 (was the needle found?).** Write `key_found(logits, ids, key_len)`: `ids` is a batch
# of needle windows `(n, L + 1)` whose last `key_len` ids are the key, and `logits` `(n, L, vocab)`
# is the model's output on `ids[:, :-1]`. Return a boolean tensor `(n,)`: True where every key
# character is the model's top choice. Then use it on the shipped needle model at 2x (128 characters)
# with the needle at depth 50%, with plain RoPE and with YaRN.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Which logits predict the key's first character: the ones at the key's own position, or the ones
# one step earlier? Line up the last `key_len` rows of `logits` with the right slice of `ids`, and a
# window counts only if the whole key matches.
# ```

# %% [markdown]
# ```{solution-start} ex-23-needle
# :class: dropdown
# ```

# %%
def key_found(logits, ids, key_len):
    ### BEGIN SOLUTION
    return (logits[:, -key_len:].argmax(-1) == ids[:, -key_len:]).all(1)
    ### END SOLUTION


# %% [markdown]
# `logits[:, t]` is computed from `ids[:, : t + 1]` and predicts `ids[:, t + 1]`; the last `key_len`
# rows of `logits` therefore predict the last `key_len` ids, which is the alignment
# `roadmap_lib.longcontext.needle_scores` uses.
#
# ```{solution-end}
# ```

# %%
check_key_found(key_found)
windows_2x = needle.cell_windows(chars, 128, 0.5, ncfg.windows)
for m in ("rope", "yarn"):
    with longctx.rescaled(needle_model, m, 2, 64), torch.no_grad():
        rate = key_found(needle_model(windows_2x[:, :-1]), windows_2x, 5).double().mean().item()
    print(f"{METHOD_NAMES[m]}: keys found in {rate:.3f} of the windows (recorded for seed 0: "
          f"{needle_record['seeds']['0']['grid']['found'][m]['128'][2]:.3f})")
