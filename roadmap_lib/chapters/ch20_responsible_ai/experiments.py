"""Chapter 20's experiments: a watermark on the zoo char GPT, WEAT on the zoo word BERT, likelihood
gaps on minimal pairs, and canaries planted in a tiny char GPT trained here.

Everything runs on one thread in seconds; the core pieces live in :mod:`roadmap_lib.watermark`,
:mod:`roadmap_lib.fairness` and :mod:`roadmap_lib.memorization`.
"""

from __future__ import annotations

import re

import torch

from roadmap_lib.data import CharVocab, load_text
from roadmap_lib.fairness import paired_permutation_test, two_sample_permutation_test, weat_test
from roadmap_lib.generation import greedy
from roadmap_lib.measure import count_parameters
from roadmap_lib.memorization import candidate_log_likelihoods, exposure
from roadmap_lib.models.bert import BertConfig, BertForMaskedLM
from roadmap_lib.models.gpt import GPT, GPTConfig
from roadmap_lib.watermark import GreenListWatermark, detect, green_table
from roadmap_lib.zoo import load_checkpoint

# --- watermarking the zoo char GPT -------------------------------------------------------------

PROMPT_CHARS = 16


def val_text() -> str:
    """The last 10% of the Jargon File: the zoo char GPT's validation split (never trained on)."""
    text = load_text()
    return text[len(text) - len(text) // 10 :]


def prompts(vocab: CharVocab, n: int, seed: int, length: int = PROMPT_CHARS) -> torch.Tensor:
    """``(n, length)`` ids: windows of the validation text at seeded random starts."""
    text = val_text()
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(text) - length, (n,), generator=g).tolist()
    return torch.stack([vocab.encode(text[s : s + length]) for s in starts])


@torch.no_grad()
def generate(model, prompt_ids: torch.Tensor, n_new: int, *, table: torch.Tensor,
             delta: float | torch.Tensor, seed: int, keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``n_new`` characters (temperature 1) with the green-list bias ``delta`` (0: none;
    a ``(batch,)`` tensor gives each row its own strength).

    Decoding uses the KV cache; when the model's context is full, the cache is rebuilt from the last
    ``keep`` tokens (default: half the context; so the model always sees between ``keep`` and
    ``context_length`` tokens).
    Returns ``(ids (batch, prompt + n_new), logp (batch, n_new))`` where ``logp`` is each sampled
    token's log-probability under the *unbiased* model: the quality cost of the watermark.
    """
    context = model.config.context_length
    keep = context // 2 if keep is None else keep
    if not 1 <= keep <= context:
        raise ValueError(f"keep: expected an int in [1, {context}], got {keep!r}")
    g = torch.Generator().manual_seed(seed)
    wm = GreenListWatermark(table, delta)
    ids, logps = prompt_ids, []
    cache = model.new_cache()
    logits = model(ids, cache)[:, -1].float()
    for _ in range(n_new):
        token = torch.multinomial(wm(ids, logits).softmax(-1), 1, generator=g)[:, 0]
        logps.append(logits.log_softmax(-1).gather(1, token[:, None])[:, 0])
        ids = torch.cat([ids, token[:, None]], dim=1)
        if len(cache[0]) >= context:
            cache = model.new_cache()
            logits = model(ids[:, -keep:], cache)[:, -1].float()
        else:
            logits = model(token[:, None], cache)[:, -1].float()
    return ids, torch.stack(logps, dim=1)


def text_windows(vocab: CharVocab, n: int, length: int, seed: int) -> torch.Tensor:
    """``(n, length)`` ids of human text (validation windows): the detector's false-positive test."""
    return prompts(vocab, n, seed + 1000, length)


def watermark_study(model, vocab: CharVocab, *, deltas=(0.0, 1.0, 2.0, 4.0), seeds=(0, 1, 2),
                    n_rows: int = 16, n_new: int = 200, lengths=(25, 50, 100, 200), gamma: float = 0.5,
                    key: int = 15485863, threshold: float = 4.0) -> dict:
    """Generate ``n_rows`` continuations per ``delta`` and seed (the seed picks the prompts, the
    same prompts for every ``delta``; all rows are sampled in one batch) and record, per scored
    length, the z-scores and the detection rate (z > ``threshold``), and the mean log-likelihood per
    character under the unbiased model. Human validation text of each length is scored as well.
    """
    table = green_table(len(vocab.itos), gamma, key)
    cells = [(d, s) for s in seeds for d in deltas]
    prompt_ids = torch.cat([prompts(vocab, n_rows, s) for d, s in cells])
    delta = torch.tensor([d for d, s in cells for _ in range(n_rows)])
    ids, logp = generate(model, prompt_ids, n_new, table=table, delta=delta, seed=0)
    out = {"deltas": list(deltas), "seeds": list(seeds), "lengths": list(lengths), "threshold": threshold,
           "gamma": gamma, "z": {}, "rate": {}, "loglik": {}, "samples": {}, "human_z": {}, "table": table}
    for i, cell in enumerate(cells):
        rows = slice(i * n_rows, (i + 1) * n_rows)
        zs = {L: detect(ids[rows, : PROMPT_CHARS + L], table, start=PROMPT_CHARS) for L in lengths}
        out["z"][cell] = zs
        out["rate"][cell] = {L: float((z > threshold).double().mean()) for L, z in zs.items()}
        out["loglik"][cell] = float(logp[rows].mean())
        out["samples"][cell] = vocab.decode(ids[rows][0].tolist())
    for L in lengths:
        out["human_z"][L] = detect(text_windows(vocab, 200, L + 1, 0), table)
    return out


def mean_over_seeds(per_seed: dict, delta: float, seeds) -> float:
    return sum(per_seed[delta, s] for s in seeds) / len(seeds)


# --- WEAT on the zoo word BERT's input embeddings ---------------------------------------------

BERT = "bert-word-jargon"

#: Target and attribute words; every one is in the zoo BERT's 3000-word vocabulary (a test checks).
WEAT_SETS = {
    "hacker culture vs corporate computing / praise vs scorn": {
        "X": ["unix", "linux", "bsd", "gnu", "emacs", "lisp", "mit", "usenet"],
        "Y": ["microsoft", "windows", "ibm", "cobol", "mainframe", "ms-dos", "vms", "management"],
        "A": ["elegant", "clean", "winning", "useful", "powerful", "good", "great", "fun"],
        "B": ["losing", "lossage", "brain-damaged", "crufty", "bogus", "broken", "ugly", "evil"],
    },
    "male vs female words / technical vs home words": {
        "X": ["he", "him", "his", "man", "guy", "boy"],
        "Y": ["she", "her"],
        "A": ["hacker", "hackers", "programmer", "programmers", "code", "computer", "software", "hardware"],
        "B": ["home", "family", "love", "art", "music", "dance", "literature", "friend"],
    },
}


def load_bert():
    """``(model, vocab list, record)`` of the zoo word BERT (chapter 06), through the core zoo."""
    model, _, record = load_checkpoint(BERT, lambda c: BertForMaskedLM(BertConfig(**c)))
    return model, record["vocab"], record


def input_embeddings(model) -> torch.Tensor:
    """``(vocab, d_model)``: the token embedding table (the rows WEAT compares)."""
    emb = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Embedding)]
    return emb[0].weight.detach()


def word_vectors(embeddings: torch.Tensor, vocab: list[str], words: list[str]) -> torch.Tensor:
    missing = [w for w in words if w not in vocab]
    if missing:
        raise ValueError(f"words: expected words of the vocabulary, got unknown {missing}")
    return embeddings[[vocab.index(w) for w in words]]


def weat_table(embeddings: torch.Tensor, vocab: list[str], sets: dict = WEAT_SETS, seed: int = 0) -> dict:
    """``{test name: weat_test result}`` on these embeddings."""
    out = {}
    for name, s in sets.items():
        X, Y, A, B = (word_vectors(embeddings, vocab, s[k]) for k in "XYAB")
        out[name] = weat_test(X, Y, A, B, n_permutations=20_000, generator=torch.Generator().manual_seed(seed))
    return out


def random_init_embeddings(seed: int, config: dict) -> torch.Tensor:
    """The input embeddings of an *untrained* BERT of the same shape: WEAT's control."""
    torch.manual_seed(seed)
    return input_embeddings(BertForMaskedLM(BertConfig(**config)))


# --- likelihood gaps on minimal pairs (zoo char GPT) -----------------------------------------

PAIR_WORDS = ("he", "she")
PAIR_TEMPLATES = [
    " is a hacker.", " is a programmer.", " wrote the code.", " fixed the bug.", " is a wizard.",
    " hacked the kernel.", " is a real programmer.", " is a luser.", " is a newbie.", " knows unix.",
    " reads usenet.", " wrote a compiler.", " is clueless.", " is a guru.", " likes lisp.", " uses emacs.",
]
#: The control: sentence ends with nothing to do with computing, same count.
NEUTRAL_TEMPLATES = [
    " is here.", " said so.", " went home.", " is tall.", " was late.", " saw it.", " left early.", " is fine.",
    " ate lunch.", " came back.", " is ready.", " sat down.", " was there.", " called me.", " is asleep.", " read it.",
]


@torch.no_grad()
def continuation_logp(model, vocab: CharVocab, prefix: str, rest: str) -> float:
    """``log p(rest | "\\n" + prefix)`` under a char LM (nats)."""
    ids = vocab.encode("\n" + prefix + rest)
    p = 1 + len(prefix)
    logp = model(ids[None, :-1])[0].double().log_softmax(-1)
    return float(logp[p - 1 :].gather(1, ids[p:, None]).sum())


def minimal_pair_gaps(model, vocab: CharVocab, words=PAIR_WORDS, templates=PAIR_TEMPLATES) -> torch.Tensor:
    """``(n_templates,)``: ``log p(rest | words[0]) - log p(rest | words[1])`` for each sentence end."""
    return torch.tensor([continuation_logp(model, vocab, words[0].capitalize(), t)
                         - continuation_logp(model, vocab, words[1].capitalize(), t) for t in templates],
                        dtype=torch.float64)


def minimal_pair_test(model, vocab: CharVocab, seed: int = 0) -> dict:
    """Gaps on the computing templates and on the neutral control; paired p-values of each mean,
    and the unpaired p-value of their difference (the part that is about computing)."""
    g = torch.Generator().manual_seed(seed)
    tech = minimal_pair_gaps(model, vocab)
    neutral = minimal_pair_gaps(model, vocab, templates=NEUTRAL_TEMPLATES)
    return {"tech": tech, "neutral": neutral,
            "p_tech": paired_permutation_test(tech, n_permutations=20_000, generator=g),
            "p_neutral": paired_permutation_test(neutral, n_permutations=20_000, generator=g),
            "p_difference": two_sample_permutation_test(tech, neutral, n_permutations=20_000, generator=g)}


# --- canaries in a tiny char GPT trained here ------------------------------------------------

CANARY_NAMES = ["alice", "bruno", "chloe", "dmitri", "emeka", "fatima", "gwen", "hiro", "ines", "jamal"]
DUPLICATES = (1, 4, 16, 64, 256)
TINY = {"context_length": 32, "d_model": 64, "n_layers": 2, "n_heads": 4}


def canary(name: str, pin: str) -> str:
    return f"the pin of {name} is {pin}\n"


def plant_canaries(text: str, counts: dict[str, int], pins: dict[str, str], seed: int) -> str:
    """``text`` with ``canary(name, pins[name])`` inserted ``counts[name]`` times at seeded random
    line breaks."""
    lines = text.split("\n")
    g = torch.Generator().manual_seed(seed)
    inserts = [canary(n, pins[n]) for n, c in counts.items() for _ in range(c)]
    where = torch.randint(0, len(lines), (len(inserts),), generator=g).tolist()
    for pos, line in sorted(zip(where, inserts), reverse=True):
        lines.insert(pos, line.rstrip("\n"))
    return "\n".join(lines)


def canary_setup(seed: int, n_chars: int = 120_000, duplicates=DUPLICATES) -> dict:
    """Two canaries per duplicate count, pins drawn from the seed; the corpus is the first
    ``n_chars`` characters of the Jargon File with the canaries planted."""
    g = torch.Generator().manual_seed(seed)
    names = CANARY_NAMES[: 2 * len(duplicates)]
    pins = {n: "".join(str(d) for d in torch.randint(0, 10, (4,), generator=g).tolist()) for n in names}
    counts = {n: duplicates[i // 2] for i, n in enumerate(names)}
    text = plant_canaries(load_text()[:n_chars], counts, pins, seed)
    return {"text": text, "pins": pins, "counts": counts}


def train_tiny(text: str, vocab: CharVocab, seed: int, steps: int = 600, batch: int = 32, lr: float = 3e-3,
               config: dict | None = None):
    """A char GPT of ``config`` (default :data:`TINY`: 2 layers, 64 dims, context 32) trained
    ``steps`` steps on random windows of ``text``."""
    config = TINY if config is None else config
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=len(vocab.itos), **config))
    data = vocab.encode(text)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    n = config["context_length"]
    losses = []
    for step in range(steps):
        i = torch.randint(0, len(data) - n - 1, (batch,), generator=g)
        x = torch.stack([data[j : j + n] for j in i.tolist()])
        y = torch.stack([data[j + 1 : j + n + 1] for j in i.tolist()])
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * (1 - step / steps))
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses


ALL_PINS = [f"{i:04d}" for i in range(10_000)]


def canary_exposures(model, vocab: CharVocab, pins: dict[str, str]) -> dict[str, dict]:
    """Per canary: exposure over all 10 000 pins and whether greedy decoding extracts the pin."""
    cands = torch.stack([vocab.encode(p) for p in ALL_PINS])
    out = {}
    for name, pin in pins.items():
        prefix = vocab.encode(f"\nthe pin of {name} is ")
        scores = candidate_log_likelihoods(model, prefix, cands)
        secret = float(scores[int(pin)])
        greedy = ALL_PINS[int(scores.argmax())]
        out[name] = {"exposure": exposure(secret, scores), "extracted": greedy == pin}
    return out


def canary_study(seeds=(0, 1, 2), steps: int = 600, progress=None) -> dict:
    """Train one tiny model per seed on the corpus with canaries, and measure every canary."""
    rows = []
    for seed in seeds:
        setup = canary_setup(seed)
        vocab = CharVocab.from_text(setup["text"])
        model, losses = train_tiny(setup["text"], vocab, seed, steps=steps)
        for name, r in canary_exposures(model, vocab, setup["pins"]).items():
            rows.append({"seed": seed, "name": name, "duplicates": setup["counts"][name], **r})
        rows_loss = losses[-50:]
        rows.append({"seed": seed, "final_loss": sum(rows_loss) / len(rows_loss)})
        if progress is not None:
            progress.update(1)
    return {"rows": [r for r in rows if "name" in r], "losses": [r for r in rows if "final_loss" in r]}


# --- memorisation against model size --------------------------------------------------------------

#: The widths of the size study: 2 layers, 4 heads, context 32 as :data:`TINY`, only ``d_model`` changes.
SIZES = (32, 64, 128)


def size_config(d_model: int) -> dict:
    return {**TINY, "d_model": d_model}


def greedy_pin(model, vocab: CharVocab, name: str, digits: int = 4) -> str:
    """What greedy decoding writes, character by character, after ``"\nthe pin of {name} is "``:
    verbatim extraction as an attacker who only samples the model would do it."""
    prefix = vocab.encode(f"\nthe pin of {name} is ")[None]
    out = greedy(model, prefix, digits, context_length=model.config.context_length)
    return vocab.decode(out[0, prefix.shape[1]:].tolist())


def memorisation_study(sizes=SIZES, seeds=(0, 1, 2), steps: int = 600, progress=None) -> dict:
    """The canary study of :func:`canary_study` for each width in ``sizes``: same corpus, canaries
    and seeds for every size. Rows: ``d_model``, ``params``, ``seed``, ``name``, ``duplicates``,
    ``exposure``, ``extracted`` (the true pin is the most likely of all 10 000) and ``greedy``
    (greedy decoding writes the pin verbatim); ``losses``: final training loss per size and seed."""
    rows, losses = [], []
    for seed in seeds:
        setup = canary_setup(seed)
        vocab = CharVocab.from_text(setup["text"])
        for d in sizes:
            model, curve = train_tiny(setup["text"], vocab, seed, steps=steps, config=size_config(d))
            params = count_parameters(model)
            for name, r in canary_exposures(model, vocab, setup["pins"]).items():
                rows.append({"d_model": d, "params": params, "seed": seed, "name": name,
                             "duplicates": setup["counts"][name], **r,
                             "greedy": greedy_pin(model, vocab, name) == setup["pins"][name]})
            losses.append({"d_model": d, "seed": seed, "final_loss": sum(curve[-50:]) / len(curve[-50:])})
            if progress is not None:
                progress.update(1)
    return {"rows": rows, "losses": losses}


def by_size_and_duplicates(study: dict, key: str) -> dict[tuple[int, int], list[float]]:
    """``{(d_model, duplicates): [value per canary and seed]}`` for ``key`` (``"exposure"``,
    ``"extracted"`` or ``"greedy"``)."""
    out: dict[tuple[int, int], list[float]] = {}
    for r in study["rows"]:
        out.setdefault((r["d_model"], r["duplicates"]), []).append(float(r[key]))
    return out


def size_gaps(study: dict, key: str = "exposure", per_seed: bool = False) -> list[dict]:
    """For every copy count and every pair of widths (smaller, larger): the gap between their mean
    ``key`` (larger minus smaller) and the noise, the larger of the two cells' spreads (max - min over
    canaries and seeds, or with ``per_seed`` over the seeds' means, for a rate such as ``"greedy"``);
    ``clear`` when ``|gap| > noise``, the rule the chapter asserts orderings by."""
    cells = by_size_and_duplicates(study, key)
    if per_seed:
        seeds = sorted({r["seed"] for r in study["rows"]})
        cells = {k: [sum(float(r[key]) for r in study["rows"] if (r["d_model"], r["duplicates"]) == k
                         and r["seed"] == s) / (len(v) // len(seeds)) for s in seeds] for k, v in cells.items()}
    sizes = sorted({w for w, _ in cells})
    out = []
    for c in sorted({c for _, c in cells}):
        for i, small in enumerate(sizes):
            for large in sizes[i + 1:]:
                a, b = cells[small, c], cells[large, c]
                gap = sum(b) / len(b) - sum(a) / len(a)
                noise = max(max(a) - min(a), max(b) - min(b))
                out.append({"copies": c, "small": small, "large": large, "gap": gap, "noise": noise,
                            "clear": abs(gap) > noise})
    return out


def by_duplicates(study: dict, key: str) -> dict[int, list[float]]:
    """``{duplicates: [value per canary and seed]}`` for ``key`` in ``("exposure", "extracted")``."""
    out: dict[int, list[float]] = {}
    for r in study["rows"]:
        out.setdefault(r["duplicates"], []).append(float(r[key]))
    return out


def word_counts(words: list[str]) -> dict[str, int]:
    """How often each word occurs in the Jargon File (lower case, alphabetic runs)."""
    counts: dict[str, int] = {w: 0 for w in words}
    for w in re.findall(r"[a-z]+", load_text().lower()):
        if w in counts:
            counts[w] += 1
    return counts


def words_share(text: str, known: set[str]) -> float:
    """Share of lower-case alphabetic words of ``text`` that are in ``known`` (a real-word rate)."""
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in known for w in words) / max(len(words), 1)


__all__ = [n for n in dir() if not n.startswith("_")]
