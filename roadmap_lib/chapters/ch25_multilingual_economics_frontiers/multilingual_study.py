"""Chapter 25's multilingual experiments on the parallel Sphinx sample (data/25_parallel_sphinx.json).

- :func:`build_sample` extracts the sample from the installed Sphinx's catalogues (the artifact);
- :func:`premium_table`: tokens per language relative to English for three byte-level BPEs: the
  shipped Jargon File one (English, another domain), one trained on the sample's English only, and
  one trained on all ten languages of the sample (same vocabulary size);
- :func:`transfer_study`: a bag-of-subwords classifier that tells which part of Sphinx a message
  comes from, trained on English and tested on every language, with one *shared* multilingual
  tokenizer and embedding table versus *separate* per-language ones; three seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from roadmap_lib import data_path
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.multilingual import parallel_sample, split, token_premium
from roadmap_lib.tokenizers import BPETokenizer

FILE = "25_parallel_sphinx.json"
LANGUAGES = ["fr", "es", "pt_BR", "tr", "el", "ja", "zh_CN", "ko", "hi"]
ALL = ["en", *LANGUAGES]
CLASSES = ["builders", "cmd", "ext", "domains"]
VOCAB = 2000
TEST_FRACTION = 0.3


def build_sample(out: Path) -> dict:
    """Write the parallel sample: messages translated into all of :data:`LANGUAGES`."""
    import sphinx

    messages = parallel_sample(LANGUAGES)
    doc = {"source": f"Sphinx {sphinx.__version__}: sphinx/locale/<lang>/LC_MESSAGES/sphinx.po "
                     "(msgid = English, msgstr = translation), format codes stripped",
           "licence": "BSD-2-Clause (the Sphinx licence; translations contributed under it)",
           "sphinx_version": sphinx.__version__, "languages": ALL, "messages": messages,
           "command": "python -m roadmap_lib build 25-parallel-sphinx"}
    atomic_write_text(out, json.dumps(doc, ensure_ascii=False, indent=0) + "\n")
    return doc


def load_sample(path: Path | None = None) -> list[dict]:
    path = Path(path) if path is not None else data_path(FILE)
    return json.loads(path.read_text(encoding="utf-8"))["messages"]


def train_bpe(rows: list[dict], languages: list[str], vocab_size: int = VOCAB) -> BPETokenizer:
    """A byte-level BPE trained on ``rows``' texts in ``languages`` (one text per message)."""
    return BPETokenizer().train([r[lang] for r in rows for lang in languages], vocab_size)


def premium_table(sample: list[dict], english_bpe, seed: int = 0) -> dict:
    """``{tokenizer name: {lang: tokens / English tokens}}`` on the held-out messages of a split."""
    train, test = split(sample, TEST_FRACTION, seed)
    toks = {"Jargon File BPE (English, 4k)": english_bpe,
            f"sample-English BPE ({VOCAB // 1000}k)": train_bpe(train, ["en"]),
            f"multilingual BPE ({VOCAB // 1000}k)": train_bpe(train, ALL)}
    return {"n_test": len(test), "premium": {name: token_premium(t, test, ALL) for name, t in toks.items()},
            "tokenizers": toks}


class BagOfSubwords(nn.Module):
    """Mean of the token embeddings of a message, then a linear layer: (n, vocab) bags -> logits.

    A bag is a row of token frequencies that sums to 1 (:func:`bags`), so ``bag @ E`` is the mean
    of the message's token embeddings.
    """

    def __init__(self, vocab: int, n_classes: int, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(vocab, dim, bias=False)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, bag: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(bag))


def bags(encoded: list[list[int]], vocab: int) -> torch.Tensor:
    """(n, vocab) token frequencies of ``n`` encoded messages (rows sum to 1)."""
    out = torch.zeros(len(encoded), vocab)
    for row, ids in enumerate(encoded):
        out[row].index_add_(0, torch.tensor(ids, dtype=torch.long), torch.full((len(ids),), 1.0 / len(ids)))
    return out


def labelled(sample: list[dict]) -> list[dict]:
    """The messages from one of :data:`CLASSES` (the four largest parts of Sphinx), labelled."""
    return [{**r, "label": CLASSES.index(r["source"])} for r in sample if r["source"] in CLASSES]


def fit_and_score(encode, train: list[dict], test: list[dict], train_lang: str, vocab: int, seed: int,
                  epochs: int = 150, lr: float = 2e-2) -> dict[str, float]:
    """Train on ``train`` in ``train_lang``; accuracy on ``test`` in every language of :data:`ALL`.

    ``encode(text, lang)`` returns token ids below ``vocab``.
    """
    torch.manual_seed(seed)
    model = BagOfSubwords(vocab, len(CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = bags([encode(r[train_lang], train_lang) for r in train], vocab)
    y = torch.tensor([r["label"] for r in train])
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    y_test = torch.tensor([r["label"] for r in test])
    out = {}
    with torch.no_grad():
        for lang in ALL:
            pred = model(bags([encode(r[lang], lang) for r in test], vocab)).argmax(-1)
            out[lang] = float((pred == y_test).double().mean())
    return out


def transfer_study(sample: list[dict], seeds=(0, 1, 2), vocab_size: int = VOCAB) -> dict:
    """Accuracy per (setting, seed, test language) of classifiers trained on English:
    ``study["accuracy"][setting][k][lang]`` for the k-th seed of ``study["seeds"]``.

    settings: ``shared`` (one multilingual BPE and embedding table), ``separate`` (one BPE per
    language, disjoint ids: the English-trained embeddings never see another language's tokens),
    and ``in-language`` (shared tokenizer, trained and tested in the same language: the ceiling).
    ``majority``: the accuracy of always answering the most frequent training class.
    """
    rows = labelled(sample)
    acc = {"shared": [], "separate": [], "in-language": [], "majority": []}
    for seed in seeds:
        train, test = split(rows, TEST_FRACTION, seed)
        shared = train_bpe(train, ALL, vocab_size)
        own = {lang: train_bpe(train, [lang], vocab_size) for lang in ALL}
        def shared_ids(text, lang, tok=shared):
            return tok.encode(text)

        def own_ids(text, lang, toks=own):  # disjoint id ranges, one per language
            return [ALL.index(lang) * vocab_size + i for i in toks[lang].encode(text)]

        acc["shared"].append(fit_and_score(shared_ids, train, test, "en", shared.vocab_size, seed))
        acc["separate"].append(fit_and_score(own_ids, train, test, "en", len(ALL) * vocab_size, seed))
        acc["in-language"].append({
            lang: fit_and_score(shared_ids, train, test, lang, shared.vocab_size, seed)[lang] for lang in ALL})
        counts = torch.bincount(torch.tensor([r["label"] for r in train]), minlength=len(CLASSES))
        top = int(counts.argmax())
        acc["majority"].append(float(sum(r["label"] == top for r in test) / len(test)))
    return {"seeds": list(seeds), "accuracy": acc, "n_train": len(train), "n_test": len(test)}


def per_seed(study: dict, setting: str, languages=LANGUAGES) -> list[float]:
    """Per seed, the accuracy of ``setting`` averaged over ``languages`` (default: the nine
    non-English ones)."""
    return [sum(a[lang] for lang in languages) / len(languages) for a in study["accuracy"][setting]]


def mean_accuracy(study: dict, setting: str, lang: str) -> float:
    accs = [a[lang] for a in study["accuracy"][setting]]
    return sum(accs) / len(accs)
