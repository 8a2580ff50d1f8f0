"""Chapter 18's experiments on the character-level GPT of chapter 07 (``gpt-char-jargon``).

Every run stays inside the model's 64-character window so that the KV cache serves each step:
a 16-character prompt and at most 48 new characters.

- :func:`frontier`: quality (share of generated words that exist in the corpus) against diversity
  (distinct word bigrams) for temperature, top-k, top-p, min-p and typical sampling, over seeds;
- :func:`repetition_study`: how repetitive greedy decoding is, and what each penalty changes;
  :func:`beam_study`: the same for beam search, alone and with an n-gram ban;
- :func:`constrained_study`: how often sampling produces a string of a given pattern, with and
  without the grammar mask;
- :func:`fact_table`, :func:`answer_logprobs`, :func:`expected_accuracy`, :func:`self_consistency`:
  a fact table from the Jargon File (headword -> part of speech), accuracy against temperature, and
  agreement across samples as a detector of wrong answers.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

from roadmap_lib.constrained import Regex, RegexConstraint
from roadmap_lib.decoding import StopOnStrings, contrastive_search, generate, with_hidden_states
from roadmap_lib.generation import beam_search
from roadmap_lib.logits_processors import RowGroups, make_pipeline

PROMPT_CHARS = 16
_WORD = re.compile(r"[a-z]+")


# --- prompts and text measures -------------------------------------------------------------------


def pick_prompts(corpus: str, n: int, offset: int = 0, length: int = PROMPT_CHARS) -> list[str]:
    """``n`` prompts of ``length`` characters, the rule: cut the corpus into ``n`` equal stretches,
    skip ``offset`` lines into each, and take the first line there that is long enough, from the start
    of its first word. Disjoint ``offset`` values give disjoint prompt sets."""
    lines = corpus.split("\n")
    prompts = []
    for i in range(n):
        j = i * len(lines) // n + offset
        while len(lines[j]) < length + 10 or not lines[j][0].isalpha():
            j += 1
        prompts.append(lines[j][:length])
    return prompts


def vocabulary(corpus: str) -> set[str]:
    """The lower-cased words (runs of letters) of the corpus."""
    return set(_WORD.findall(corpus.lower()))


def words(text: str) -> list[str]:
    """The complete words of a generated text: runs of letters, dropping the last run (it may be cut
    off by the length limit)."""
    return _WORD.findall(text.lower())[:-1]


def word_share(texts: list[str], vocab: set[str]) -> float:
    """Fraction of all complete words in ``texts`` that occur in the corpus vocabulary."""
    ws = [w for t in texts for w in words(t)]
    return sum(w in vocab for w in ws) / max(1, len(ws))


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct word ``n``-grams / all word ``n``-grams, pooled over ``texts`` (1 = nothing repeats)."""
    grams = [tuple(ws[i:i + n]) for t in texts for ws in [words(t)] for i in range(len(ws) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def repeated_ngrams(text: str, n: int = 8) -> float:
    """Share of the character ``n``-grams of ``text`` that already occurred earlier in it (a loop
    repeats long substrings, so this goes towards 1)."""
    grams = [text[i:i + n] for i in range(len(text) - n + 1)]
    return 1 - len(set(grams)) / max(1, len(grams))


# --- 1. the quality-diversity frontier ------------------------------------------------------------


FRONTIER = {
    "temperature": ("temperature", [0.3, 0.5, 0.7, 1.0, 1.4]),
    "top-k": ("top_k", [2, 5, 20]),
    "top-p": ("top_p", [0.5, 0.8, 0.95]),
    "min-p": ("min_p", [0.3, 0.1, 0.03]),
    "typical": ("typical_p", [0.3, 0.6, 0.9]),
}


def _encode(vocab, prompts: list[str]) -> torch.Tensor:
    """``(len(prompts), length)`` ids; the prompts share one batch, so they must share a length."""
    if len({len(p) for p in prompts}) != 1:
        raise ValueError(f"prompts: expected strings of one length (see pick_prompts), got lengths "
                         f"{sorted({len(p) for p in prompts})}")
    return torch.stack([vocab.encode(p) for p in prompts])


def sample_texts(model, vocab, prompts: list[str], *, new_tokens: int, seed: int,
                 samples_per_prompt: int = 1, **pipeline) -> list[str]:
    """Sampled continuations (text after each prompt), ``samples_per_prompt`` per prompt."""
    ids = _encode(vocab, prompts).repeat_interleave(samples_per_prompt, 0)
    out = generate(model, ids, new_tokens, processors=make_pipeline(**pipeline), do_sample=True,
                   generator=torch.Generator().manual_seed(seed), use_cache=True)
    return [vocab.decode(row[ids.shape[1]:]) for row in out]


def _settings(methods) -> list[tuple[str, str, float]]:
    return [(m, arg, v) for m, (arg, values) in methods.items() for v in values]


def frontier(model, vocab, prompts: list[str], corpus_vocab: set[str], *, replicates: int = 3,
             samples_per_prompt: int = 4, seed: int = 0, new_tokens: int = 40,
             methods=FRONTIER) -> list[dict]:
    """One row per (method, value, replicate): ``word_share`` (over all its texts), ``distinct2``
    (distinct word bigrams among the ``samples_per_prompt`` continuations of one prompt, averaged
    over prompts) and the replicate's first sample. A replicate is an independent set of samples; all
    settings run as one batch (a :class:`RowGroups` pipeline) from one seeded generator."""
    settings = _settings(methods)
    per_rep = len(prompts) * samples_per_prompt
    block = replicates * per_rep
    ids = _encode(vocab, prompts).repeat_interleave(samples_per_prompt, 0).repeat(replicates * len(settings), 1)
    groups = RowGroups([make_pipeline(**{arg: v}) for _, arg, v in settings], [block] * len(settings))
    out = generate(model, ids, new_tokens, processors=[groups], do_sample=True,
                   generator=torch.Generator().manual_seed(seed), use_cache=True)
    texts = [vocab.decode(row[ids.shape[1]:]) for row in out]
    rows = []
    for i, (method, _, value) in enumerate(settings):
        for r in range(replicates):
            part = texts[i * block + r * per_rep: i * block + (r + 1) * per_rep]
            by_prompt = [part[j:j + samples_per_prompt] for j in range(0, per_rep, samples_per_prompt)]
            rows.append({"method": method, "value": value, "replicate": r,
                         "word_share": word_share(part, corpus_vocab),
                         "distinct2": sum(distinct_n(t, 2) for t in by_prompt) / len(by_prompt),
                         "sample": part[0]})
    return rows


def mean_over_seeds(rows: list[dict], key: str) -> dict[tuple[str, float], tuple[float, float]]:
    """``{(method, value): (mean, std)}`` of ``key`` over replicates."""
    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["value"]), []).append(r[key])
    return {k: (torch.tensor(v).mean().item(), torch.tensor(v).std().item() if len(v) > 1 else 0.0)
            for k, v in groups.items()}


# --- 2. repetition under greedy decoding, and the penalties ---------------------------------------


PENALTIES = {
    "greedy": {},
    "repetition 1.3": {"repetition_penalty": 1.3},
    "frequency 0.3": {"frequency_penalty": 0.3},
    "presence 0.6": {"presence_penalty": 0.6},
    "no-repeat 6-gram": {"no_repeat_ngram_size": 6},
    "no-repeat 12-gram": {"no_repeat_ngram_size": 12},
}


def greedy_texts(model, vocab, prompts: list[str], new_tokens: int, **pipeline) -> list[str]:
    ids = _encode(vocab, prompts)
    out = generate(model, ids, new_tokens, use_cache=True,
                   processors=make_pipeline(prompt_length=ids.shape[1], **pipeline))
    return [vocab.decode(row[ids.shape[1]:]) for row in out]


def contrastive_texts(model, vocab, prompts: list[str], new_tokens: int, *, top_k: int = 4,
                      alpha: float = 0.6) -> list[str]:
    ids = _encode(vocab, prompts)
    out = contrastive_search(with_hidden_states(model), ids, new_tokens, top_k=top_k, alpha=alpha)
    return [vocab.decode(row[ids.shape[1]:]) for row in out]


def repetition_study(model, vocab, prompt_sets: list[list[str]], corpus_vocab: set[str], *,
                     new_tokens: int = 48, settings=PENALTIES, contrastive: dict | None = None) -> list[dict]:
    """One row per (setting, prompt set): ``repeated`` (mean share of repeated 8-grams per text),
    ``word_share``, and the text after the set's first prompt. Greedy decoding with each setting's
    processors, all settings in one batch; ``contrastive`` (e.g. ``{"top_k": 4, "alpha": 0.6}``) adds
    contrastive search as one more setting."""
    prompts = [p for ps in prompt_sets for p in ps]
    ids = _encode(vocab, prompts).repeat(len(settings), 1)
    groups = RowGroups([make_pipeline(prompt_length=ids.shape[1], **kw) for kw in settings.values()],
                       [len(prompts)] * len(settings))
    out = generate(model, ids, new_tokens, processors=[groups], use_cache=True)
    texts = {name: [vocab.decode(row[ids.shape[1]:]) for row in out[i * len(prompts):(i + 1) * len(prompts)]]
             for i, name in enumerate(settings)}
    if contrastive:
        texts["contrastive"] = contrastive_texts(model, vocab, prompts, new_tokens, **contrastive)
    rows = []
    for name, ts in texts.items():
        start = 0
        for s, ps in enumerate(prompt_sets):
            part, start = ts[start:start + len(ps)], start + len(ps)
            rows.append({"setting": name, "prompt_set": s,
                         "repeated": sum(repeated_ngrams(t) for t in part) / len(part),
                         "word_share": word_share(part, corpus_vocab), "sample": part[0]})
    return rows


BEAM_SETTINGS = {
    "beam": {},
    "beam + no-repeat 6-gram": {"no_repeat_ngram_size": 6},
}


def beam_texts(model, vocab, prompts: list[str], new_tokens: int, *, num_beams: int = 4,
               **pipeline) -> tuple[list[str], list[float]]:
    """Beam search continuations (no eos: every hypothesis runs ``new_tokens`` characters) with the
    processors that ``pipeline`` switches on, and each one's log-probability per character under the
    plain model (what the processors cost in likelihood)."""
    ids = _encode(vocab, prompts)
    procs = make_pipeline(prompt_length=ids.shape[1], **pipeline)
    out = beam_search(model, ids, new_tokens, num_beams=num_beams, processors=procs, use_cache=True)
    texts = [vocab.decode(row[ids.shape[1]:]) for row in out]
    return texts, [mean_char_logprob(model, vocab, p, [t]) for p, t in zip(prompts, texts)]


def beam_study(model, vocab, prompt_sets: list[list[str]], corpus_vocab: set[str], *, new_tokens: int = 48,
               num_beams: int = 4, settings=BEAM_SETTINGS) -> list[dict]:
    """:func:`repetition_study`'s rows for beam search: per (setting, prompt set) the mean share of
    repeated 8-grams, the word share, the mean log-probability per character and the first text."""
    prompts = [p for ps in prompt_sets for p in ps]
    rows = []
    for name, kw in settings.items():
        texts, logps = beam_texts(model, vocab, prompts, new_tokens, num_beams=num_beams, **kw)
        start = 0
        for s, ps in enumerate(prompt_sets):
            part, lp, start = texts[start:start + len(ps)], logps[start:start + len(ps)], start + len(ps)
            rows.append({"setting": name, "prompt_set": s,
                         "repeated": sum(repeated_ngrams(t) for t in part) / len(part),
                         "word_share": word_share(part, corpus_vocab), "logprob": sum(lp) / len(lp),
                         "sample": part[0]})
    return rows


# --- 3. constrained decoding ------------------------------------------------------------------------


def constrained_study(model, vocab, prompt: str, pattern: str, *, n: int = 32, seeds=(0, 1, 2),
                      max_new_tokens: int = 40, temperature: float = 1.0) -> list[dict]:
    """For each seed, ``n`` samples with and without the pattern's mask; a sample is valid when
    the text from its start matches the pattern (then anything may follow). Rows: ``seed``,
    ``constrained`` (bool), ``valid`` (rate), ``logprob`` (mean log-probability per character under
    the unconstrained model), ``samples``."""
    regex = Regex(pattern)
    ids = _encode(vocab, [prompt] * n)
    plen = ids.shape[1]
    constraint = RegexConstraint(pattern, list(vocab.chars), prompt_length=plen)
    rows = []
    for seed in seeds:
        for constrained in (False, True):
            procs = make_pipeline(temperature=temperature) + ([constraint] if constrained else [])
            out = generate(model, ids, max_new_tokens, processors=procs, do_sample=True,
                           generator=torch.Generator().manual_seed(seed), use_cache=True,
                           stopping=[constraint.done] if constrained else (), pad_token_id=0)
            texts = [vocab.decode(row[plen:]) for row in out]
            valid = [_prefix_match(regex, t) for t in texts]
            rows.append({"seed": seed, "constrained": constrained, "valid": sum(v is not None for v in valid) / n,
                         "logprob": mean_char_logprob(model, vocab, prompt, [v or t for v, t in zip(valid, texts)]),
                         "samples": texts})
    return rows


def _prefix_match(regex: Regex, text: str) -> str | None:
    """The shortest prefix of ``text`` that fully matches, or None."""
    state = regex.start
    for i, c in enumerate(text):
        state = regex.step(state, c)
        if not state:
            return None
        if regex.accepts(state):
            return text[:i + 1]
    return None


@torch.no_grad()
def mean_char_logprob(model, vocab, prompt: str, texts: list[str]) -> float:
    """Mean log-probability per character of ``texts`` after ``prompt`` under the model (T = 1)."""
    total, count = 0.0, 0
    for t in texts:
        ids = vocab.encode(prompt + t)[None, -model.config.context_length:]
        logp = model(ids[:, :-1]).log_softmax(-1)
        k = len(t)
        total += logp[0, -k:].gather(-1, ids[0, -k:, None]).sum().item()
        count += k
    return total / max(1, count)


# --- 4. facts: headword -> part of speech -----------------------------------------------------------


ANSWERS = ("n.", "adj.", "vt.", "v.", "vi.", "")
PROMPT_WIDTH = 24


def fact_table(corpus: str, n: int = 120, width: int = PROMPT_WIDTH) -> list[tuple[str, str, str]]:
    """``(headword, part of speech, prompt)`` from the glossary's entry lines ``:headword: n.``.

    Kept: entries whose tag is one of :data:`ANSWERS` ("" = no tag) and whose ``:headword:`` fits
    in ``width - 4`` characters; the rule: every k-th such entry in file order so that ``n`` remain.
    The prompt is the ``width`` characters of the corpus that end with ``:headword:`` (the end of the
    previous entry, a blank line, the headword): the model read exactly this during training.
    """
    entries = []
    for m in re.finditer(r"^:([^:\n]+):(.*)$", corpus, re.MULTILINE):
        head, tag = m.group(1), m.group(2).strip()
        end = m.start() + len(head) + 2
        if tag in ANSWERS and len(head) + 2 <= width - 4:
            entries.append((head, tag, corpus[end - width:end]))
    step = max(1, len(entries) // n)
    return entries[::step][:n]


def answer_text(tag: str) -> str:
    """What follows ``:headword:`` in the corpus: ``" n.\\n"``, or ``"\\n"`` for no tag."""
    return (" " + tag if tag else "") + "\n"


def read_answer(generated: str) -> str:
    """The tag a model wrote: the line up to the first newline, stripped; a pronunciation guide
    first (``/mom/, n.``, a format the corpus also uses) is skipped."""
    line = generated.split("\n")[0].strip()
    if line.startswith("/") and "/, " in line:
        line = line.rsplit("/, ", 1)[1].strip()
    return line


@torch.no_grad()
def answer_logits(model, vocab, facts: list[tuple[str, str]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each fact, ``(logits (k, vocab), targets (k,))`` of the k characters of its answer text."""
    out = []
    for _, tag, prompt in facts:
        ans = answer_text(tag)
        ids = vocab.encode(prompt + ans)[None]
        logits = model(ids[:, :-1])[0, -len(ans):]
        out.append((logits, ids[0, -len(ans):]))
    return out


def expected_accuracy(per_fact, temperature: float) -> float:
    """Probability that sampling at ``temperature`` writes exactly the corpus's answer line, averaged
    over the facts: the product of each answer character's probability (no sampling noise).
    ``temperature = 0`` means greedy (1 when every character is the argmax)."""
    total = 0.0
    for logits, target in per_fact:
        if temperature == 0:
            total += float(bool((logits.argmax(-1) == target).all()))
        else:
            total += (logits / temperature).log_softmax(-1).gather(-1, target[:, None]).sum().exp().item()
    return total / len(per_fact)


def sample_answers(model, vocab, facts, *, k: int, seed: int, temperature: float = 1.0,
                   max_new_tokens: int = 16) -> list[list[str]]:
    """``k`` sampled answers per fact, all facts in one batch (read with :func:`read_answer`)."""
    prompts = [p for _, _, p in facts]
    if len({len(p) for p in prompts}) != 1:
        raise ValueError("facts: expected prompts of one length (from fact_table), got several")
    ids = _encode(vocab, prompts).repeat_interleave(k, 0)
    n = ids.shape[1]
    newline = StopOnStrings(["\n"], vocab.decode, prompt_length=n)
    out = generate(model, ids, max_new_tokens, processors=make_pipeline(temperature=temperature),
                   do_sample=True, generator=torch.Generator().manual_seed(seed), use_cache=True,
                   stopping=[newline], pad_token_id=int(vocab.encode("\n")[0]))
    answers = [read_answer(vocab.decode(row[n:])) for row in out]
    return [answers[i * k:(i + 1) * k] for i in range(len(facts))]


def self_consistency(answers: list[list[str]], facts, threshold: float) -> dict:
    """Majority answer per fact, its agreement (share of the k samples that gave it), and a flag
    "likely wrong" when agreement < ``threshold``. Returns accuracy of the majority answers, the
    flag's precision (flagged facts that are wrong) and recall (wrong facts that are flagged), and
    the base rate of wrong answers."""
    majority, agreement = [], []
    for a in answers:
        answer, count = Counter(a).most_common(1)[0]
        majority.append(answer)
        agreement.append(count / len(a))
    wrong = [m != fact[1] for m, fact in zip(majority, facts)]
    flagged = [g < threshold for g in agreement]
    tp = sum(w and f for w, f in zip(wrong, flagged))
    return {"accuracy": 1 - sum(wrong) / len(wrong), "precision": tp / max(1, sum(flagged)),
            "recall": tp / max(1, sum(wrong)), "wrong_rate": sum(wrong) / len(wrong),
            "flagged": sum(flagged) / len(flagged), "agreement": agreement, "wrong": wrong}


__all__ = [
    "ANSWERS",
    "BEAM_SETTINGS",
    "FRONTIER",
    "PENALTIES",
    "answer_logits",
    "answer_text",
    "beam_study",
    "beam_texts",
    "constrained_study",
    "contrastive_texts",
    "distinct_n",
    "expected_accuracy",
    "fact_table",
    "frontier",
    "greedy_texts",
    "mean_char_logprob",
    "mean_over_seeds",
    "pick_prompts",
    "read_answer",
    "repeated_ngrams",
    "repetition_study",
    "sample_answers",
    "sample_texts",
    "self_consistency",
    "vocabulary",
    "word_share",
    "words",
]
