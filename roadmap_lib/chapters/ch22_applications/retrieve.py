"""Retrieval as an application: which Jargon File entry does a query describe?

The corpus is every glossary entry (``roadmap_lib.retrieval.jargon_entries``); a query has one
relevant entry. Queries are generated from the entries by a stated, seeded rule (``make_queries``):

- pick ``n`` entries at random (``seed``) among those whose **definition sentence** (the first
  sentence of the body, after a sense number "1." and ``[tags]``) has at least ``MIN_WORDS`` words;
- **definition** query: that sentence with the headword's own words removed, the way a
  reverse dictionary is asked ("which term means ...?");
- **keywords** query: ``KEYWORDS`` of its content words (not a stop word, not a headword word, at
  least 4 letters), drawn at random (``seed``) and shuffled: what a user types into a search box.

Three retrievers rank all entries: BM25 (``roadmap_lib.retrieval.BM25``, equal to ``rank_bm25``),
chapter 23's dense bi-encoder (shipped as ``data/23_dense_encoder.safetensors``, exact inner-product
search with faiss) and their reciprocal rank fusion. Scores are recall@k and MRR@10
(``roadmap_lib.retrieval.ranking``). The dense encoder was trained by chapter 23 on random spans of
*every* entry (only a middle fragment of 200 entries was held out), so this is retrieval over a
fixed, known corpus, not over unseen documents.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from roadmap_lib.retrieval import (
    BM25,
    Document,
    HashedBagEncoder,
    VectorIndex,
    featurize,
    jargon_entries,
    mrr,
    recall_at_k,
    rrf,
    simple_tokenize,
)

ENCODER_FILE = "23_dense_encoder.safetensors"  # chapter 23's artifact `23-dense-retriever`
MIN_WORDS = 8
KEYWORDS = 3
QUERY_KINDS = ("definition", "keywords")
METHODS = ("BM25", "dense", "hybrid (RRF)")
KS = (1, 5, 10)
DEPTH = 50  # candidates of each retriever that the fusion looks at

# scikit-learn's English stop-word list, frozen here so that the rule does not move with a release
_STOP = frozenset("""a about above across after afterwards again against all almost alone along already also
although always am among amongst an and another any anyhow anyone anything anyway anywhere are around as at
be became because become becomes becoming been before beforehand behind being below beside besides between
beyond both but by can cannot could did do does done down during each either else elsewhere enough etc even
ever every everyone everything everywhere except few for former formerly from further had has have he hence
her here hereafter hereby herein hereupon hers herself him himself his how however i ie if in indeed into is
it its itself just last latter latterly least less made many may me meanwhile might more moreover most mostly
much must my myself namely neither never nevertheless next no nobody none noone nor not nothing now nowhere of
off often on once one only onto or other others otherwise our ours ourselves out over own per perhaps please
rather re same seem seemed seeming seems several she should since so some somehow someone something sometime
sometimes somewhere still such than that the their them themselves then thence there thereafter thereby
therefore therein thereupon these they this those though through throughout thru thus to together too toward
towards under until up upon us used using very via was we well were what whatever when whence whenever where
whereafter whereas whereby wherein whereupon wherever whether which while whither who whoever whole whom whose
why will with within without would yet you your yours yourself yourselves""".split())

_SENSE = re.compile(r"^(\d+\.\s*)?(\[[^\]]*\]\s*)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])")


def definition_of(doc: Document) -> str:
    """The entry's first sentence, after a leading sense number ("1.") and ``[tags]``."""
    body = _SENSE.sub("", doc.text.strip(), count=1)
    m = _SENTENCE_END.search(body)
    return (body[: m.start()] if m else body).strip()


@dataclass
class QuerySet:
    seed: int
    gold: list[int]  # the relevant entry of each query
    definition: list[str]
    keywords: list[str]

    def queries(self, kind: str) -> list[str]:
        if kind not in QUERY_KINDS:
            raise ValueError(f"kind: expected one of {QUERY_KINDS}, got {kind!r}")
        return getattr(self, kind)


def _headword_words(doc: Document) -> set[str]:
    return set(simple_tokenize(doc.title))


def make_queries(docs: Sequence[Document], n: int = 200, seed: int = 0) -> QuerySet:
    """The module docstring's rule: ``n`` entries (seeded) and their definition and keyword queries."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    pool = []
    for d in docs:
        words = simple_tokenize(definition_of(d))
        content = sorted({w for w in words if len(w) >= 4 and w not in _STOP and not w.isdigit()}
                         - _headword_words(d))
        if len(words) >= MIN_WORDS and len(content) >= KEYWORDS:
            pool.append((d, content))
    if n > len(pool):
        raise ValueError(f"n: only {len(pool)} entries qualify, got n={n}")
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(pool)), n))
    gold, definition, keywords = [], [], []
    for i in picked:
        d, content = pool[i]
        head = _headword_words(d)
        gold.append(d.doc_id)
        definition.append(" ".join(w for w in definition_of(d).split()
                                   if not set(simple_tokenize(w)) & head))
        kw = rng.sample(content, KEYWORDS)
        keywords.append(" ".join(kw))
    return QuerySet(seed, gold, definition, keywords)


def load_encoder(path=None) -> HashedBagEncoder:
    """Chapter 23's shipped dense encoder (float16 on disk), as a float32 model in eval mode."""
    from roadmap_lib import data_path
    from roadmap_lib.checkpoint import load_model, read_model_metadata

    path = path or data_path(ENCODER_FILE)
    config, _ = read_model_metadata(path)
    model = HashedBagEncoder(**config).half()
    load_model(model, path)
    return model.float().eval()


class Search:
    """The three retrievers over one corpus: ``rank(queries)`` -> ``{method: top-10 ids per query}``."""

    def __init__(self, docs: Sequence[Document], encoder: HashedBagEncoder) -> None:
        self.docs, self.encoder = list(docs), encoder
        self.bm25 = BM25([simple_tokenize(str(d)) for d in self.docs])
        vecs = encoder.encode([featurize(str(d), encoder.num_buckets) for d in self.docs])
        self.index = VectorIndex(vecs.shape[1], "flat").add(vecs)

    def rank(self, queries: Sequence[str], k: int = 10) -> dict[str, list[list[int]]]:
        if isinstance(queries, str) or not len(queries):
            raise ValueError("queries: expected a non-empty list of query strings")
        with torch.no_grad():
            q = self.encoder.encode([featurize(t, self.encoder.num_buckets) for t in queries])
        depth = min(DEPTH, len(self.docs))  # faiss pads a short corpus with id -1
        _, dense = self.index.search(q, depth)
        out = {m: [] for m in METHODS}
        for text, d in zip(queries, dense):
            s = self.bm25.scores(simple_tokenize(text))
            lexical = np.lexsort((np.arange(len(s)), -s))[:depth].tolist()
            out["BM25"].append(lexical[:k])
            out["dense"].append(d[:k].tolist())
            out["hybrid (RRF)"].append(rrf([lexical, d.tolist()])[:k])
        return out


def reciprocal_ranks(ranked: Sequence[Sequence[int]], gold: Sequence[int], k: int = 10) -> torch.Tensor:
    """Per query, ``1 / rank`` of the gold entry in the top ``k`` (0 if absent): MRR is its mean,
    and recall@j is the share of values ``>= 1 / j``; the bootstrap resamples these."""
    rr = [1.0 / (list(r[:k]).index(g) + 1) if g in list(r[:k]) else 0.0 for r, g in zip(ranked, gold)]
    return torch.tensor(rr, dtype=torch.float64)


def scores(ranked: Sequence[Sequence[int]], gold: Sequence[int]) -> dict[str, float]:
    """recall@1/5/10 and MRR@10 with the core metrics."""
    out = {f"recall@{k}": recall_at_k(ranked, gold, k) for k in KS}
    out["mrr@10"] = mrr(ranked, gold, 10)
    return out


def run(search: Search, seeds: Sequence[int] = (0, 1, 2), n: int = 200) -> dict:
    """``{kind: {method: {seed: scores}}}`` and the per-query reciprocal ranks of every run."""
    table, rr = {}, {}
    for seed in seeds:
        qs = make_queries(search.docs, n, seed)
        for kind in QUERY_KINDS:
            ranked = search.rank(qs.queries(kind))
            for m in METHODS:
                table.setdefault(kind, {}).setdefault(m, {})[seed] = scores(ranked[m], qs.gold)
                rr[kind, m, seed] = reciprocal_ranks(ranked[m], qs.gold)
    return {"table": table, "rr": rr}


def corpus() -> list[Document]:
    from roadmap_lib.data import load_text
    return jargon_entries(load_text())


__all__ = ["ENCODER_FILE", "KS", "METHODS", "QUERY_KINDS", "QuerySet", "Search", "corpus", "definition_of",
           "load_encoder", "make_queries", "reciprocal_ranks", "run", "scores"]


def top_titles(search: Search, query: str, k: int = 5) -> dict[str, list[str]]:
    """The headwords each retriever returns first for one query (for the chapter's explorer)."""
    return {m: [search.docs[i].title for i in r[0][:k]] for m, r in search.rank([query]).items()}


def per_seed(table: dict, kind: str, method: str, metric: str) -> list[float]:
    """One metric of one retriever on one query kind, per query seed (in seed order)."""
    runs = table[kind][method]
    return [runs[s][metric] for s in sorted(runs)]


__all__ += ["per_seed", "top_titles"]
