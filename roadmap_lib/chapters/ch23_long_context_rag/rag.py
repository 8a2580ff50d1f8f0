"""Chapter 23's RAG pipeline on the Jargon File: questions, retrievers, a reader, scores.

Each entry is a document. Two kinds of query, for a fixed sample of entries (``eval_docs``):

- **fragment**: 10 words from the middle of the entry ("which entry says ...?"); the dense encoder
  never trains on these words as a query (they stay in the passage it encodes);
- **typo fragment**: the same 10 words with one letter replaced in each word of 4+ letters, with
  probability 1/2 (seeded): the words no longer match exactly;
- **question**: "What is <headword>?", answered by the entry's first definition sentence.

The reader is extractive: it returns the first definition sentence of the best retrieved passage,
so its answer is right exactly when retrieval put an entry with that definition first. The
closed-book baseline is the chapter-07 character GPT continuing ``:<headword>: `` from memory.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from roadmap_lib.generation import greedy
from roadmap_lib.retrieval import (
    BM25,
    Document,
    HashedBagEncoder,
    VectorIndex,
    featurize,
    rerank,
    rrf,
    simple_tokenize,
)
from roadmap_lib.retrieval.dense import train_bi_encoder

FRAGMENT_WORDS = 10


@dataclass
class EvalSet:
    doc_ids: list[int]  # the gold entry of each query
    fragments: list[str]
    typos: list[str]
    questions: list[str]
    answers: list[str]  # gold: the entry's first definition sentence


def eval_docs(docs: Sequence[Document], n: int = 200, min_words: int = 30, seed: int = 0) -> list[int]:
    """The rule that picks the evaluated entries: ``n`` at random (``seed``) among the entries with at
    least ``min_words`` words of body, in id order."""
    pool = [d.doc_id for d in docs if len(d.text.split()) >= min_words]
    return sorted(random.Random(seed).sample(pool, n))


def _middle(words: list[str]) -> int:
    return len(words) // 2 - FRAGMENT_WORDS // 2


_SENSE = re.compile(r"^(\d+\.\s*)?(\[[^\]]*\]\s*)*")


def definition_sentence(text: str) -> str:
    """The first sentence of an entry body, after a leading sense number ("1.") and [tags]."""
    body = _SENSE.sub("", text.strip(), count=1)
    m = re.search(r"(?<=[.!?])\s+(?=[A-Z0-9“\"(])", body)
    return (body[: m.start()] if m else body).strip()


def add_typos(text: str, rng: random.Random, p: float = 0.5) -> str:
    """Replace one letter (never the first) of each word of 4+ letters with probability ``p``."""
    out = []
    for w in text.split():
        if len(w) >= 4 and w.isalpha() and rng.random() < p:
            i = rng.randrange(1, len(w))
            w = w[:i] + rng.choice([c for c in string.ascii_lowercase if c != w[i].lower()]) + w[i + 1:]
        out.append(w)
    return " ".join(out)


def make_eval_set(docs: Sequence[Document], ids: Sequence[int], seed: int = 0) -> EvalSet:
    frags, questions, answers = [], [], []
    for i in ids:
        words = docs[i].text.split()
        m = _middle(words)
        frags.append(" ".join(words[m: m + FRAGMENT_WORDS]))
        questions.append(f"What is {docs[i].title}?")
        answers.append(definition_sentence(docs[i].text))
    rng = random.Random(seed)
    return EvalSet(list(ids), frags, [add_typos(f, rng) for f in frags], questions, answers)


# --- the dense encoder -----------------------------------------------------------------------


def training_text(docs: Sequence[Document], held_out: Sequence[int]) -> list[list[str]]:
    """Per document, the words a training query may be cut from: all of them, except the held-out
    fragment of the evaluated entries (replaced by a break, so no span crosses it)."""
    held = set(held_out)
    out = []
    for d in docs:
        words = d.text.split()
        if d.doc_id in held:
            m = _middle(words)
            words = words[:m] + ["\n"] + words[m + FRAGMENT_WORDS:]
        out.append(words)
    return out


def pair_sampler(docs: Sequence[Document], held_out: Sequence[int], num_buckets: int,
                 title_prob: float = 0.2):
    """``make_batch(rng, B)`` for :func:`train_bi_encoder`: ``B`` distinct entries; the query is the
    headword (probability ``title_prob``) or a random 4-12-word span of the entry's training text."""
    words = training_text(docs, held_out)
    passages = [featurize(str(d), num_buckets) for d in docs]

    def span(rng: random.Random, ws: list[str]) -> str:
        n = rng.randint(4, 12)
        start = rng.randrange(max(len(ws) - n, 0) + 1)
        return " ".join(w for w in ws[start: start + n] if w != "\n")

    def make_batch(rng: random.Random, b: int):
        picked = rng.sample(range(len(docs)), b)
        qs = [docs[i].title if rng.random() < title_prob else span(rng, words[i]) for i in picked]
        return [featurize(q, num_buckets) for q in qs], [passages[i] for i in picked]

    return make_batch, passages


def train_dense(docs, held_out, *, steps=300, batch_size=128, dim=64, num_buckets=8192, seed=0):
    """``(encoder, losses, passage features)``: a :class:`HashedBagEncoder` trained by InfoNCE."""
    torch.manual_seed(seed)
    enc = HashedBagEncoder(num_buckets, dim)
    make_batch, passages = pair_sampler(docs, held_out, num_buckets)
    losses = train_bi_encoder(enc, make_batch, steps=steps, batch_size=batch_size, seed=seed)
    return enc, losses, passages


# --- retrievers ------------------------------------------------------------------------------


class Retrievers:
    """BM25, dense (exact and HNSW), hybrid RRF, and BM25 re-ranking of the dense candidates."""

    def __init__(self, docs: Sequence[Document], encoder: HashedBagEncoder, passages, *,
                 kind_approx: str = "hnsw", **index_settings):
        self.docs, self.encoder = docs, encoder
        self.bm25 = BM25([simple_tokenize(str(d)) for d in docs])
        vecs = encoder.encode(passages)
        self.flat = VectorIndex(vecs.shape[1], "flat").add(vecs)
        self.approx = VectorIndex(vecs.shape[1], kind_approx, **index_settings).add(vecs)

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode([featurize(q, self.encoder.num_buckets) for q in queries])

    def run(self, queries: Sequence[str], k: int = 10, depth: int = 50) -> dict[str, list[list[int]]]:
        """Ranked ids (top ``k``) per method; fusion and re-ranking look at ``depth`` candidates."""
        q = self.embed(queries)
        _, dense = self.flat.search(q, depth)
        _, approx = self.approx.search(q, k)
        out = {"bm25": [], "dense": [r[:k].tolist() for r in dense],
               "dense (HNSW)": [r.tolist() for r in approx], "hybrid (RRF)": [], "dense + BM25 rerank": []}
        for text, d in zip(queries, dense):
            toks = simple_tokenize(text)
            scores = self.bm25.scores(toks)
            lexical = np.lexsort((np.arange(len(scores)), -scores))[:depth].tolist()
            out["bm25"].append(lexical[:k])
            out["hybrid (RRF)"].append(rrf([lexical, d.tolist()])[:k])
            out["dense + BM25 rerank"].append(rerank(d.tolist(), lambda c, s=scores: s[c])[:k])
        return out


# --- reader, scores, grounding ------------------------------------------------------------------


def normalize_answer(s: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: SQuAD's normalisation, plus the curly
    quotes the Jargon File uses, which the official script (``roadmap_lib.metrics.normalize_answer``)
    keeps. On this chapter's answers the two differ, so the chapter keeps its own and its recorded
    scores stand."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation) | {"“", "”", "‘", "’"})
    return " ".join(w for w in s.split() if w not in ("a", "an", "the"))


def exact_match(pred: str, gold: str) -> float:
    return float(normalize_answer(pred) == normalize_answer(gold))


def answer_f1(pred: str, gold: str) -> float:
    """Token F1 between normalised answers (SQuAD's; 1.0 when both are empty)."""
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if not common:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def support(answer: str, passages: Sequence[str]) -> float:
    """Grounding: the largest fraction of the answer's normalised tokens found in one passage."""
    a = normalize_answer(answer).split()
    if not a:
        return 0.0
    best = 0.0
    for p in passages:
        vocab = set(normalize_answer(p).split())
        best = max(best, sum(t in vocab for t in a) / len(a))
    return best


def read(docs: Sequence[Document], ranked: Sequence[int]) -> str:
    """The extractive reader: the first definition sentence of the top passage."""
    return definition_sentence(docs[ranked[0]].text)


@torch.no_grad()
def closed_book(model, vocab, titles: Sequence[str], max_new: int = 100) -> list[str]:
    """The character GPT's greedy continuation of ``:<title>: `` (no retrieval), cut to the first
    definition sentence after the entry's header line. Prompts of equal length run as one batch."""
    out: dict[int, str] = {}
    by_len: dict[int, list[int]] = {}
    prompts = [f":{t}: " for t in titles]
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    for idx in by_len.values():
        ids = torch.stack([vocab.encode(prompts[i]) for i in idx])
        gen = greedy(model, ids, max_new, context_length=model.config.context_length)
        for i, row in zip(idx, gen[:, ids.shape[1]:].tolist()):
            text = vocab.decode(row)
            text = text.split("\n\n", 1)[1] if "\n\n" in text else text
            out[i] = definition_sentence(" ".join(text.replace("{", "").replace("}", "").split()))
    return [out[i] for i in range(len(titles))]


# --- the whole evaluation -------------------------------------------------------------------------

QUERY_SETS = ("fragment", "typo fragment", "question")


def queries_of(ev: EvalSet, name: str) -> list[str]:
    return {"fragment": ev.fragments, "typo fragment": ev.typos, "question": ev.questions}[name]


def evaluate(retrievers: Retrievers, ev: EvalSet, k: int = 10) -> dict:
    """``{query set: {method: {"recall@1", "recall@10", "mrr@10"}}}`` plus, per query set, the
    HNSW index's agreement with exact search (``"hnsw_overlap@10"``)."""
    from roadmap_lib.retrieval import mrr, overlap_at_k, recall_at_k

    out = {}
    for name in QUERY_SETS:
        res = retrievers.run(queries_of(ev, name), k=k)
        out[name] = {m: {"recall@1": recall_at_k(r, ev.doc_ids, 1),
                         "recall@10": recall_at_k(r, ev.doc_ids, 10),
                         "mrr@10": mrr(r, ev.doc_ids, 10)} for m, r in res.items()}
        out[name]["hnsw_overlap@10"] = overlap_at_k(res["dense (HNSW)"], res["dense"], k)
    return out
