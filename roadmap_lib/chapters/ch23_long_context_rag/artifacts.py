"""Chapter 23's shipped artifacts.

- ``23-dense-retriever``: the dense encoder (seed 0) and the retrieval scores of 3 seeds;
- ``23-long-context``: the character Llama trained on 64-character windows (seed 0) and its loss
  by position at 1x/2x/4x the length under each RoPE rescaling, for 3 seeds;
- ``23-closed-book``: the chapter-07 character GPT's closed-book answers;
- ``23-needle``: a character Llama of the same size trained on windows with a planted key (seed 0)
  and its needle-in-a-haystack grid (length x depth x RoPE scaling), for 3 seeds.

Both train for minutes: too long for the chapter, which loads seed 0, re-measures it, and reads
the other seeds from the results files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib.chapters.ch23_long_context_rag import longctx, needle, rag
from roadmap_lib.checkpoint import load_model, save_model
from roadmap_lib.data import load_text
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.retrieval import HashedBagEncoder, jargon_entries
from roadmap_lib.zoo import Artifact, check

ENCODER_FILE = "23_dense_encoder.safetensors"
RESULTS_FILE = "23_retrieval.json"
SEEDS = (0, 1, 2)
TRAIN = {"steps": 300, "batch_size": 128, "dim": 64, "num_buckets": 8192}
EVAL = {"n": 200, "min_words": 30, "seed": 0}
#: Retrieval metrics count queries out of 200 (steps of 0.005); HNSW's graph is built in a fixed
#: order, so a re-measure on the shipped weights should give the same counts: allow one query.
TOL = 0.0051


def corpus():
    """``(docs, eval set)`` the artifact and the chapter use."""
    docs = jargon_entries(load_text())
    return docs, rag.make_eval_set(docs, rag.eval_docs(docs, **EVAL))


def round_trip(encoder: HashedBagEncoder, path: Path) -> HashedBagEncoder:
    """Save ``encoder`` in float16 to ``path`` and load it back as float32 (what ships is what is scored)."""
    save_model(encoder.half(), path, config={"num_buckets": encoder.num_buckets, "dim": encoder.dim})
    return load_encoder(path)


def load_encoder(path: Path) -> HashedBagEncoder:
    from roadmap_lib.checkpoint import read_model_metadata

    config, _ = read_model_metadata(path)
    enc = HashedBagEncoder(**config).half()
    load_model(enc, path)
    return enc.float().eval()


def _build(root: Path) -> None:
    docs, ev = corpus()
    record = {"description": "Retrieval on Jargon File entries: recall@1/10 and MRR@10 by method, query set "
                             "and encoder seed; the seed-0 encoder ships in " + ENCODER_FILE,
              "command": "python -m roadmap_lib build 23-dense-retriever", "train": TRAIN, "eval": EVAL,
              "torch": torch.__version__, "seeds": {}, "losses": {}}
    with cpu_threads(1):
        for seed in SEEDS:
            t = time.time()
            enc, losses, passages = rag.train_dense(docs, ev.doc_ids, seed=seed, **TRAIN)
            path = root / (ENCODER_FILE if seed == 0 else f".seed{seed}.safetensors")
            enc = round_trip(enc, path)
            if seed:
                path.unlink()
            record["seeds"][str(seed)] = rag.evaluate(rag.Retrievers(docs, enc, passages), ev)
            record["losses"][str(seed)] = losses[::10]
            record.setdefault("train_seconds", {})[str(seed)] = round(time.time() - t, 1)
    atomic_write_text(root / RESULTS_FILE, json.dumps(record, indent=1) + "\n")


def _verify(root: Path):
    docs, ev = corpus()
    info = json.loads((root / RESULTS_FILE).read_text(encoding="utf-8"))["seeds"]["0"]
    enc = load_encoder(root / ENCODER_FILE)
    from roadmap_lib.retrieval import featurize

    passages = [featurize(str(d), enc.num_buckets) for d in docs]
    with cpu_threads(1):
        got = rag.evaluate(rag.Retrievers(docs, enc, passages), ev)
    checks = []
    for qs in rag.QUERY_SETS:
        for method in ("dense", "hybrid (RRF)"):
            for metric in ("recall@1", "recall@10"):
                checks.append(check(f"{qs} / {method} / {metric}", got[qs][method][metric],
                                    info[qs][method][metric], TOL))
    return checks


LLAMA_FILE = "23_rope_char_llama.safetensors"
LONG_FILE = "23_long_context.json"
LONG_CFG = longctx.LongCtxConfig()
BIN = 8  # the results file keeps loss per position averaged over bins of 8 positions
#: A re-measure runs the same float32 forward on the same windows; other CPUs may round differently.
LONG_TOL = 2e-3


def load_llama(path: Path):
    """The shipped seed-0 character Llama (float16 on disk) as a float32 model in eval mode."""
    from roadmap_lib.checkpoint import read_model_metadata

    config, _ = read_model_metadata(path)
    model = longctx.new_model(config["vocab_size"], LONG_CFG).half()
    load_model(model, path)
    return model.float().eval()


def round_trip_llama(model, path: Path, vocab_size: int, keep: bool):
    """Save a character Llama in float16 to ``path`` and load it back as float32 (what ships is what
    is scored); the file is deleted unless ``keep``."""
    save_model(model.half(), path, config={"vocab_size": vocab_size})
    model = load_llama(path)
    if not keep:
        path.unlink()
    return model


def _build_long(root: Path) -> None:
    from roadmap_lib.longcontext import bin_mean

    record = {"description": "Loss (nats/char) by position of a character Llama trained on 64-char Jargon "
                             "File windows, read at 1x/2x/4x with plain RoPE, PI (linear), NTK and YaRN; "
                             f"curves are means over bins of {BIN} positions; seed 0 ships in {LLAMA_FILE}",
              "command": "python -m roadmap_lib build 23-long-context",
              "experiment": longctx.config_dict(LONG_CFG), "torch": torch.__version__,
              "summary": {}, "curves": {}, "train_seconds": {}}
    with cpu_threads(1):
        for seed in SEEDS:
            t = time.time()
            model, d = longctx.train_model(LONG_CFG, seed)
            model = round_trip_llama(model, root / (LLAMA_FILE if seed == 0 else f".llama{seed}.safetensors"),
                                     len(d.vocab), keep=seed == 0)
            curve = longctx.curves(model, d, LONG_CFG)
            record["summary"][str(seed)] = longctx.summary(curve, LONG_CFG.train_len)
            record["curves"][str(seed)] = {m: {f: bin_mean(torch.tensor(c), BIN).tolist()
                                               for f, c in by_f.items()} for m, by_f in curve.items()}
            record["train_seconds"][str(seed)] = round(time.time() - t, 1)
    atomic_write_text(root / LONG_FILE, json.dumps(record, indent=1) + "\n")


def _verify_long(root: Path):
    info = json.loads((root / LONG_FILE).read_text(encoding="utf-8"))["summary"]["0"]
    model = load_llama(root / LLAMA_FILE)
    with cpu_threads(1):
        got = longctx.summary(longctx.curves(model, longctx.data(LONG_CFG), LONG_CFG), LONG_CFG.train_len)
    return [check(f"{m} at {f}x, loss over {part} positions", got[m][int(f)][part], want, LONG_TOL)
            for m, by_f in info.items() for f, row in by_f.items() for part, want in row.items()]


CLOSED_FILE = "23_closed_book.json"
CLOSED_NEW_CHARS = 80
CLOSED_VERIFY = 3  # verify regenerates the answers to the first 3 questions


def _build_closed(root: Path) -> None:
    from roadmap_lib.zoo import load_char_gpt

    docs, ev = corpus()
    model, vocab, _ = load_char_gpt()
    t = time.time()
    with cpu_threads(1):
        answers = rag.closed_book(model, vocab, [docs[i].title for i in ev.doc_ids], CLOSED_NEW_CHARS)
    record = {"description": "Closed-book answers of the chapter-07 character GPT (gpt-char-jargon) to the "
                             "chapter's 200 'What is X?' questions: greedy continuation of ':X: ', first "
                             "definition sentence", "command": "python -m roadmap_lib build 23-closed-book",
              "new_chars": CLOSED_NEW_CHARS, "seconds": round(time.time() - t, 1), "answers": answers,
              "exact_match": sum(map(rag.exact_match, answers, ev.answers)) / len(answers),
              "f1": sum(map(rag.answer_f1, answers, ev.answers)) / len(answers)}
    atomic_write_text(root / CLOSED_FILE, json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def _verify_closed(root: Path):
    from roadmap_lib.zoo import load_char_gpt

    docs, ev = corpus()
    info = json.loads((root / CLOSED_FILE).read_text(encoding="utf-8"))
    model, vocab, _ = load_char_gpt()
    titles = [docs[i].title for i in ev.doc_ids[:CLOSED_VERIFY]]
    with cpu_threads(1):
        got = rag.closed_book(model, vocab, titles, info["new_chars"])
    same = sum(a == b for a, b in zip(got, info["answers"]))
    f1 = sum(map(rag.answer_f1, info["answers"], ev.answers)) / len(ev.answers)
    return [check(f"closed-book answers regenerated identically (of {CLOSED_VERIFY})", same, CLOSED_VERIFY, 0),
            check("closed-book F1 of the recorded answers", f1, info["f1"], 1e-12)]


NEEDLE_MODEL = "23_needle_llama.safetensors"
NEEDLE_FILE = "23_needle.json"
NEEDLE_CFG = needle.NeedleConfig()
#: Found rates count windows out of 32 (steps of 1/32): a re-measure on the shipped weights on
#: another CPU may flip the top choice of a character that is a near tie; allow one window per cell.
NEEDLE_TOL = 1 / 32 + 1e-9


def needle_seed(root: Path, seed: int) -> dict:
    """Train one seed, round-trip it through float16 (what ships is what is scored; seed 0 is kept
    as ``NEEDLE_MODEL``) and score its grid."""
    with cpu_threads(1):
        t, cpu = time.time(), time.process_time()
        model, d, log = needle.train_needle(NEEDLE_CFG, seed)
        seconds = round(time.time() - t, 1)
        model = round_trip_llama(model, root / (NEEDLE_MODEL if seed == 0 else f".needle{seed}.safetensors"),
                                 len(d.vocab), keep=seed == 0)
        grid = needle.grid(model, d, NEEDLE_CFG)
        return {"grid": grid, "train_seconds": seconds, "cpu_seconds": round(time.process_time() - cpu, 1),
                "log": [{k: round(v, 4) for k, v in row.items() if k in ("step", "loss", "val_loss")}
                        for row in log if "val_loss" in row]}


def needle_record(per_seed: dict) -> dict:
    """The results file from ``{seed: needle_seed(root, seed)}``; ``train_seconds`` (wall clock) and
    ``cpu_seconds`` (the seed's whole run: training, saving, scoring) are lifted to the top level."""
    per_seed = {s: dict(r) for s, r in per_seed.items()}
    timing = {key: {str(s): per_seed[s].pop(key) for s in sorted(per_seed)} for key in ("train_seconds", "cpu_seconds")}
    return {"description": f"Needle in a haystack: fraction of {NEEDLE_CFG.windows} windows (and mean key loss, nats) in which a "
                           "character Llama trained on 64-char Jargon File windows with a planted "
                           "' the key is NNNNN. ' predicts all 5 key digits after the final ' the key is ', "
                           "by scaling method, window length and needle depth; seed 0 ships in " + NEEDLE_MODEL,
            "command": "python -m roadmap_lib build 23-needle", "experiment": needle.config_dict(NEEDLE_CFG),
            "torch": torch.__version__, **timing, "seeds": {str(s): per_seed[s] for s in sorted(per_seed)}}


def _build_needle(root: Path) -> None:
    record = needle_record({seed: needle_seed(root, seed) for seed in SEEDS})
    atomic_write_text(root / NEEDLE_FILE, json.dumps(record, indent=1) + "\n")


def _verify_needle(root: Path):
    info = json.loads((root / NEEDLE_FILE).read_text(encoding="utf-8"))["seeds"]["0"]["grid"]
    model = load_llama(root / NEEDLE_MODEL)
    with cpu_threads(1):
        got = needle.grid(model, needle.data(), NEEDLE_CFG)
    checks = []
    for m, by_len in info["found"].items():
        for length, rates in by_len.items():
            for depth, want, have, loss_want, loss_have in zip(
                    NEEDLE_CFG.depths, rates, got["found"][m][length], info["loss"][m][length],
                    got["loss"][m][length]):
                checks.append(check(f"{m} at {length} chars, depth {depth}: keys found", have, want, NEEDLE_TOL))
                checks.append(check(f"{m} at {length} chars, depth {depth}: key loss", loss_have, loss_want,
                                    LONG_TOL))
    return checks


ARTIFACTS = [
    Artifact("23-dense-retriever", "23", "hashed-trigram bi-encoder trained with InfoNCE on Jargon "
             "File entries (seed 0) and retrieval scores of BM25, dense, HNSW, RRF and re-ranking "
             "for 3 seeds", (ENCODER_FILE, RESULTS_FILE), _build, _verify),
    Artifact("23-long-context", "23", "character Llama trained on 64-character windows (seed 0) and "
             "its loss by position at 1x/2x/4x under plain RoPE, PI, NTK and YaRN, 3 seeds",
             (LLAMA_FILE, LONG_FILE), _build_long, _verify_long),
    Artifact("23-closed-book", "23", "closed-book answers of the character GPT to chapter 23's 200 "
             "questions, with their exact match and F1", (CLOSED_FILE,), _build_closed, _verify_closed,
             needs=("gpt-char-jargon",)),
    Artifact("23-needle", "23", "character Llama trained on 64-character windows with a planted key "
             "(seed 0) and its needle-in-a-haystack found rates by length, depth and RoPE scaling, 3 seeds",
             (NEEDLE_MODEL, NEEDLE_FILE), _build_needle, _verify_needle),
]
