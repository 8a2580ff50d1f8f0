"""Retrieval for RAG: documents and chunks, BM25, a dense bi-encoder, a faiss index, rank fusion.

- :mod:`.chunking`: the Jargon File's entries as documents, fixed-size word windows;
- :mod:`.bm25`: Okapi BM25 (equal to ``rank_bm25.BM25Okapi``);
- :mod:`.dense`: a hashed word/char-trigram bag encoder trained with InfoNCE on in-batch negatives;
- :mod:`.index`: exact and approximate (HNSW, IVF) inner-product search with faiss, saved and reloaded;
- :mod:`.fusion`: reciprocal rank fusion and re-ranking a candidate list;
- :mod:`.ranking`: recall@k, MRR, and recall of an approximate search against the exact one.
"""

from .bm25 import BM25, simple_tokenize
from .chunking import Document, jargon_entries, word_windows
from .dense import HashedBagEncoder, featurize, info_nce_loss
from .fusion import rerank, rrf
from .index import VectorIndex
from .ranking import mrr, overlap_at_k, recall_at_k

__all__ = ["BM25", "Document", "HashedBagEncoder", "VectorIndex", "featurize", "info_nce_loss",
           "jargon_entries", "mrr", "overlap_at_k", "recall_at_k", "rerank", "rrf",
           "simple_tokenize", "word_windows"]
