"""Chapter 22's extractive QA: questions generated from the translation task's English grammar, a
word-overlap baseline, and the zoo's word BERT fine-tuned with a start/end head (:mod:`roadmap_lib.qa`).

**The data** (generated here, seeded, from the shipped ``data/tasks/translation`` English sides):
every sentence of the grammar is ``subject verb object [adverb]``, each noun phrase ``det adj* noun
[preposition det adj* noun]``. A seeded rule turns a sentence into one question:

- *subject*: ``what <verb> the <object's head noun>`` -> the subject noun phrase;
- *object*: ``what did the <subject's head noun> <verb lemma>`` -> the object noun phrase.

The context is the sentence and a *distractor* (another sentence of the same split, first or second
at random), joined with ``". "``; a sentence whose question noun occurs twice is skipped (ambiguous).
The encoder sees ``[CLS] question [SEP] context [SEP]`` in its 32 positions, segment ids 0 then 1.

**Words the encoder does not know.** The zoo BERT was pretrained on the Jargon File, and many of
the grammar's words (``dog``, ``river``, ``paints``, ...) are ``[UNK]`` to it. :func:`extend_vocab`
adds them as new embedding rows around the mean of the old rows (transformers'
``resize_token_embeddings`` centres new rows there too, but with a tiny spread; ours have the old
rows' spread, so that two new nouns start distinguishable), learned during fine-tuning.

**The baseline** (no training): pick the context sentence that shares the most words with the
question, then answer with its longest run of words that are not question words (at most
:data:`MAX_ANSWER` words), the classic word-overlap heuristic of reading-comprehension baselines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from roadmap_lib.chapters.ch22_applications.experiments import train_steps
from roadmap_lib.data import load_task
from roadmap_lib.measure import cpu_threads
from roadmap_lib.metrics import squad_exact_match, squad_f1
from roadmap_lib.models.bert import BertConfig, BertForMaskedLM
from roadmap_lib.qa import BertForQuestionAnswering, best_span, span_loss
from roadmap_lib.tasks import NOUNS, VERBS
from roadmap_lib.tokenizers.word import WordTokenizer, normalize_word

QA_SEED = 22
PERIOD = "."  # the sentence boundary, written as a word of its own
MAX_ANSWER = 10  # longest answer span in words (a noun phrase with its prepositional phrase is <= 9)
PAD, CLS, SEP = 0, 2, 3
STOPWORDS = frozenset({"a", "an", "the", "what", "who", "which", "did", "does", "do"})  # not matched by the baseline
QA_RECIPE = {"steps": 300, "lr": 1e-3, "batch_size": 32}
_NOUN_FORMS = {w for pair in NOUNS for w in pair}
_LEMMA = {form: forms[1] for forms in VERBS for form in forms}  # any verb form -> the plural present


@dataclass(frozen=True)
class QAExample:
    question: str
    context: str  # two sentences, each followed by the word "." (a word of its own, as the encoder sees it)
    start: int  # the answer's first word in context.split()
    end: int  # one past its last word
    kind: str  # "subject" or "object"

    @property
    def answer(self) -> str:
        return " ".join(self.context.split()[self.start:self.end])


def parse(sentence: str) -> tuple[list[str], str, list[str]]:
    """``(subject words, verb, object words)`` of a grammar sentence (a final adverb is dropped)."""
    words = sentence.split()
    verbs = [i for i, w in enumerate(words) if w in _LEMMA]
    if len(verbs) != 1:
        raise ValueError(f"sentence: expected exactly one verb of the grammar, got {len(verbs)} in {sentence!r}")
    v = verbs[0]
    obj = words[v + 1:]
    if obj and obj[-1] not in _NOUN_FORMS:  # the adverb comes last, after the object's noun
        obj = obj[:-1]
    return words[:v], words[v], obj


def _head(np_words: list[str]) -> str:
    return next(w for w in np_words if w in _NOUN_FORMS)


def make_question(sentence: str, kind: str) -> tuple[str, list[str]] | None:
    """``(question, answer words)`` of one sentence, or None when the question's noun is ambiguous."""
    subj, verb, obj = parse(sentence)
    if kind == "subject":
        noun, question, answer = _head(obj), f"what {verb} the {_head(obj)}", subj
    elif kind == "object":
        noun, question, answer = _head(subj), f"what did the {_head(subj)} {_LEMMA[verb]}", obj
    else:
        raise ValueError(f"kind: expected 'subject' or 'object', got {kind!r}")
    return None if sentence.split().count(noun) != 1 else (question, answer)


def qa_examples(split: str, seed: int = QA_SEED, limit: int | None = None, distractor: bool = False
                ) -> list[QAExample]:
    """The QA examples of one split of the translation task's English sentences (seeded)."""
    sentences = [r["src"] for r in load_task("translation", split)]
    rng = random.Random(f"{seed}-{split}")
    out = []
    for i, s in enumerate(sentences):
        kind = rng.choice(("subject", "object"))
        other = sentences[rng.randrange(len(sentences))]
        first = rng.random() < 0.5
        made = make_question(s, kind)
        if made is None or other == s:
            continue
        question, answer = made
        pair = ([s, other] if first else [other, s]) if distractor else [s]
        context = " ".join(f"{p} {PERIOD}" for p in pair)
        start = (0 if first or not distractor else len(other.split()) + 1) + _find(s.split(), answer)
        ex = QAExample(question, context, start, start + len(answer), kind)
        if ex.answer != " ".join(answer):
            raise AssertionError(f"example {i}: the span {ex.answer!r} is not the answer {answer}")
        if len(question.split()) + len(context.split()) + 3 <= 32:
            out.append(ex)
        if limit is not None and len(out) == limit:
            break
    return out


def _find(words: list[str], part: list[str]) -> int:
    for i in range(len(words) - len(part) + 1):
        if words[i:i + len(part)] == part:
            return i
    raise ValueError(f"part: {part} is not in {words}")


# ---- the baseline ---------------------------------------------------------------------------------


def overlap_baseline(ex: QAExample, max_answer: int = MAX_ANSWER) -> tuple[int, int]:
    """``(start, end)`` word span of the word-overlap heuristic: the sentence sharing the most
    words with the question (the first on a tie), then its longest run of words that are not
    question words (articles, wh-words and ``did`` do not count as question words)."""
    q = {normalize_word(w) for w in ex.question.split()} - STOPWORDS
    words = ex.context.split()
    sentences, start = [], 0
    for i, w in enumerate(words):
        if w == PERIOD:
            sentences.append((start, i + 1))
            start = i + 1
    lo, hi = max(sentences, key=lambda r: len(q & {normalize_word(w) for w in words[r[0]:r[1]]}))
    best, run = (lo, lo), lo
    for i in range(lo, hi + 1):
        if i == hi or normalize_word(words[i]) in q:
            if i - run > best[1] - best[0]:
                best = (run, min(i, run + max_answer))
            run = i + 1
    return best


def span_text(ex: QAExample, start: int, end: int) -> str:
    return " ".join(ex.context.split()[start:end])


def squad_scores(examples: list[QAExample], spans) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example SQuAD exact match and F1 (float tensors) of predicted ``(start, end)`` word spans."""
    pred = [span_text(ex, s, e) for ex, (s, e) in zip(examples, spans)]
    em = torch.tensor([squad_exact_match(p, ex.answer) for p, ex in zip(pred, examples)])
    f1 = torch.tensor([squad_f1(p, ex.answer) for p, ex in zip(pred, examples)])
    return em, f1


def sentence_index(ex: QAExample, position: int) -> int:
    """Which sentence of the context (0, 1) holds context word ``position``."""
    return ex.context.split()[:position].count(PERIOD)


def score_runs(examples: list[QAExample], runs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact match and F1 per example and run: two (n, runs) tensors, columns in ``runs``' order."""
    scores = [squad_scores(examples, run["spans"]) for run in runs.values()]
    return torch.stack([em for em, _ in scores], 1), torch.stack([f1 for _, f1 in scores], 1)


# ---- the fine-tuned encoder ---------------------------------------------------------------------


def keep_period(word: str) -> str:
    """The encoder's word normalisation, except that the word ``"."`` stays a word (a new token)."""
    return PERIOD if word == PERIOD else normalize_word(word)


def extend_vocab(encoder: BertForMaskedLM, vocab: WordTokenizer, texts, seed: int = QA_SEED
                 ) -> tuple[BertConfig, dict, WordTokenizer]:
    """The words of ``texts`` that ``vocab`` maps to [UNK], added at the end: ``(config, encoder
    state dict, extended vocabulary)``. Each new embedding row is drawn (seeded) from a normal with
    the old rows' mean and per-dimension standard deviation: distinct words start distinct."""
    new = sorted({keep_period(w) for t in texts for w in t.split()} - set(vocab.itos) - {""})
    itos = vocab.itos
    ext = WordTokenizer(itos[5:] + new, special_tokens=itos[:5], unk_token="[UNK]", normalize=keep_period,
                        literal_specials=["[MASK]"])
    config = BertConfig(**{**encoder.config.to_dict(), "vocab_size": len(ext)})
    state = dict(encoder.bert.state_dict())
    old = state["tok_emb.weight"]
    g = torch.Generator().manual_seed(seed)
    rows = old.mean(0) + old.std(0) * torch.randn(len(new), old.shape[1], generator=g)
    state["tok_emb.weight"] = torch.cat([old, rows])
    return config, state, ext


def encode_qa(vocab: WordTokenizer, examples: list[QAExample], context_length: int = 32):
    """``(ids, token_type_ids, context_mask, offsets)``: ids (n, L) ``[CLS] q [SEP] c [SEP]``; context
    word ``i`` of example ``r`` is token ``offsets[r] + i``; ``context_mask`` marks those tokens."""
    n = len(examples)
    ids = torch.full((n, context_length), PAD, dtype=torch.long)
    types = torch.zeros_like(ids)
    ctx = torch.zeros(n, context_length, dtype=torch.bool)
    offsets = torch.zeros(n, dtype=torch.long)
    for r, ex in enumerate(examples):
        q, c = vocab.encode(ex.question), vocab.encode(ex.context)
        if len(q) + len(c) + 3 > context_length:
            raise ValueError(f"examples[{r}]: expected at most {context_length - 3} question and context words, "
                             f"got {len(q) + len(c)}")
        row = [CLS, *q, SEP, *c, SEP]
        ids[r, :len(row)] = torch.tensor(row)
        offsets[r] = len(q) + 2
        types[r, offsets[r]:len(row)] = 1
        ctx[r, offsets[r]:offsets[r] + len(c)] = True
    return ids, types, ctx, offsets


def fine_tune_qa(model: BertForQuestionAnswering, examples: list[QAExample], vocab: WordTokenizer, *, seed: int,
                 steps: int = QA_RECIPE["steps"], lr: float = QA_RECIPE["lr"],
                 batch_size: int = QA_RECIPE["batch_size"]) -> list[float]:
    """The chapter's recipe (:func:`.experiments.train_steps`) on the span loss; the loss per step."""
    ids, types, _, offsets = encode_qa(vocab, examples)
    start = offsets + torch.tensor([ex.start for ex in examples])
    end = offsets + torch.tensor([ex.end - 1 for ex in examples])  # inclusive, as span_loss expects

    def get_batch(split, generator):
        rows = torch.randint(0, len(ids), (batch_size,), generator=generator)
        return (ids[rows], types[rows]), (start[rows], end[rows])

    def loss_fn(m, x, y):
        s, e = m(x[0], x[1], attention_mask=x[0] != PAD)
        return span_loss(s, e, *y)

    return train_steps(model, get_batch, loss_fn, seed=seed, steps=steps, lr=lr)


@torch.no_grad()
def predict_spans(model: BertForQuestionAnswering, examples: list[QAExample], vocab: WordTokenizer,
                  max_answer: int = MAX_ANSWER) -> list[tuple[int, int]]:
    """The best valid span of each example, as ``(start, end)`` context word indices (end exclusive)."""
    model.eval()
    ids, types, ctx, offsets = encode_qa(vocab, examples)
    out = []
    with cpu_threads(1):
        for rows in torch.arange(len(examples)).split(256):
            s, e = model(ids[rows], types[rows], attention_mask=ids[rows] != PAD)
            a, b = best_span(s, e, max_answer_len=max_answer, allowed=ctx[rows])
            out += [(int(x - o), int(y - o) + 1) for x, y, o in zip(a, b, offsets[rows])]
    return out


VARIANTS = {"single": False, "distractor": True}  # the context: its sentence alone, or with a distractor


def run_qa_study(seeds=(0, 1, 2), *, steps: int = QA_RECIPE["steps"], variants=tuple(VARIANTS),
                 progress: bool = True) -> dict:
    """Fine-tune the zoo BERT with a span head on each variant's QA train split, once per seed;
    record every run's test EM/F1 and predicted spans (``out["variants"][variant]["runs"][seed]``)."""
    from tqdm.auto import tqdm

    from roadmap_lib.zoo import load_word_bert

    encoder, vocab, _ = load_word_bert()
    data = {v: (qa_examples("train", distractor=VARIANTS[v]), qa_examples("test", distractor=VARIANTS[v]))
            for v in variants}
    texts = [ex.question + " " + ex.context for tr, _ in data.values() for ex in tr]
    config, state, ext = extend_vocab(encoder, vocab, texts)
    out = {"task": "extractive QA generated from the translation task's English sentences",
           "recipe": {**QA_RECIPE, "steps": steps}, "seeds": list(seeds), "added_words": ext.itos[len(vocab):],
           "max_answer": MAX_ANSWER, "variants": {}}
    for v, (tr, te) in data.items():
        rec = out["variants"][v] = {"n_train": len(tr), "n_test": len(te), "runs": {}}
        for seed in tqdm(seeds, desc=f"fine-tune QA ({v})", disable=not progress):
            torch.manual_seed(seed)
            model = BertForQuestionAnswering(config)
            model.bert.load_state_dict(state)
            losses = fine_tune_qa(model, tr, ext, seed=seed, steps=steps)
            spans = predict_spans(model, te, ext)
            em, f1 = squad_scores(te, spans)
            rec["runs"][str(seed)] = {"em": em.mean().item(), "f1": f1.mean().item(), "spans": spans,
                                      "final_loss": sum(losses[-20:]) / len(losses[-20:])}
    return out


__all__ = [
    "MAX_ANSWER",
    "QA_RECIPE",
    "VARIANTS",
    "QAExample",
    "encode_qa",
    "extend_vocab",
    "fine_tune_qa",
    "make_question",
    "overlap_baseline",
    "parse",
    "predict_spans",
    "qa_examples",
    "run_qa_study",
    "score_runs",
    "sentence_index",
    "span_text",
    "squad_scores",
]
