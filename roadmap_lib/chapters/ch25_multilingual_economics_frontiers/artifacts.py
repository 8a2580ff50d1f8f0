"""Chapter 25's shipped artifacts.

- ``25-parallel-sphinx``: the parallel sample (data/25_parallel_sphinx.json), extracted from the
  installed Sphinx's translation catalogues; verify re-extracts it and compares.
- ``25-transfer``: the cross-lingual transfer study (data/25_transfer.json), 3 seeds of 12
  classifiers and 11 tokenizers each, a few minutes on one thread; verify re-runs seed 0.
- ``25-induction-gpt``: the 2-layer GPT trained on repeated random sequences that the
  interpretability section opens up (data/zoo/25-induction-gpt.*); verify re-measures its loss.
- ``25-test-time``: the agents and test-time compute study (data/25_test_time.json) with chapter
  11's scratchpad model: greedy, vote, verifier and agent runs on every problem of 2-6 bits, 3
  sampling seeds x 16 samples; verify re-runs the greedy chain and agent, seed 0's chains and
  its first agent sample.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib import reasoning
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import agent_study as A
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import induction
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import multilingual_study as S
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.zoo import Artifact, check

TRANSFER = "25_transfer.json"
TEST_TIME = "25_test_time.json"
SEEDS = (0, 1, 2)


def _build_sample(root: Path) -> None:
    S.build_sample(root / S.FILE)


def _verify_sample(root: Path):
    import sphinx

    from roadmap_lib.multilingual import parallel_sample

    doc = json.loads((root / S.FILE).read_text(encoding="utf-8"))
    fresh = parallel_sample(S.LANGUAGES)
    same = float(fresh == doc["messages"])
    return [check("messages in the sample", len(fresh), len(doc["messages"]), 0),
            check(f"identical to a fresh extraction from Sphinx {sphinx.__version__} "
                  f"(recorded {doc['sphinx_version']})", same, 1.0, 0)]


def _sample_in(root: Path) -> list[dict]:
    """The parallel sample from ``root`` (verify) or, while building in a staging folder, data/."""
    from roadmap_lib import data_path

    return S.load_sample(root / S.FILE if (root / S.FILE).is_file() else data_path(S.FILE))


def _build_transfer(root: Path) -> None:
    sample = _sample_in(root)
    with cpu_threads(1):
        start = time.perf_counter()
        study = S.transfer_study(sample, SEEDS)
        seconds = time.perf_counter() - start
    info = {"name": "25-transfer",
            "description": "which part of Sphinx (builders, cmd, ext, domains) a message comes from: "
            "bag-of-subwords classifiers (32-dim mean embedding + linear, 150 full-batch Adam steps) "
            f"trained on English, tested in {len(S.ALL)} languages; byte-level BPEs of "
            f"{S.VOCAB} tokens trained on each split's training messages; 3 seeds (split and init)",
            "languages": S.ALL, "classes": S.CLASSES, **study, "seconds": round(seconds, 1),
            "command": "python -m roadmap_lib build 25-transfer", "torch": torch.__version__}
    atomic_write_text(root / TRANSFER, json.dumps(info, indent=1) + "\n")


def transfer_results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / TRANSFER).read_text(encoding="utf-8"))


def _verify_transfer(root: Path):
    """Re-run seed 0 (tokenizers and 12 classifiers, under a minute on one thread)."""
    info = transfer_results(root)
    with cpu_threads(1):
        got = S.transfer_study(_sample_in(root), (0,))
    checks = []
    for setting in ("shared", "separate"):
        for lang in ("en", "fr", "ja"):
            checks.append(check(f"{setting}, seed 0, accuracy in {lang}", got["accuracy"][setting][0][lang],
                                info["accuracy"][setting][0][lang], 1e-6))
    return checks


def _build_induction(root: Path) -> None:
    with cpu_threads(1):
        induction.build(root / "zoo")


def _verify_induction(root: Path):
    model, record = induction.load(root / "zoo")
    return [check("second-half loss (nats/token)", induction.second_half_loss(model),
                  record["second_half_loss"], 1e-6)]


def _cot_model(root: Path):
    """Chapter 11's model from ``root`` (verify) or, while building in a staging folder, data/."""
    return A.load_model(root if (root / A.CHECKPOINT).is_file() else None)


def _build_test_time(root: Path) -> None:
    with cpu_threads(1):
        start = time.perf_counter()
        record = A.study(_cot_model(root), progress=True)
        seconds = time.perf_counter() - start
    info = {"name": "25-test-time",
            "description": "chapter 11's scratchpad model (gpt-char-cot) on every parity problem of 2-6 bits: "
            "greedy chain, greedy agent, and per sampling seed 16 chains and 16 agent runs at temperature "
            f"{A.TEMPERATURE}; agent tools lookup and calc, at most {A.MAX_STEPS} model calls per run",
            "temperature": A.TEMPERATURE, "seeds": list(A.SEEDS), "n": max(A.NS), "max_steps": A.MAX_STEPS,
            "n_digits": list(A.N_DIGITS), **record, "seconds": round(seconds, 1),
            "command": "python -m roadmap_lib build 25-test-time", "torch": torch.__version__}
    atomic_write_text(root / TEST_TIME, json.dumps(info, separators=(",", ":")) + "\n")


def test_time_results(root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / TEST_TIME).read_text(encoding="utf-8"))


def _verify_test_time(root: Path):
    """Re-run the greedy chains, the greedy agent, seed 0's 16 sampled chains and its first agent
    sample (deterministic: the same batches with the same generators give the same runs)."""
    info, model, problems = test_time_results(root), _cot_model(root), A.all_problems()
    run0 = info["runs"][0]
    with cpu_threads(1):
        greedy, _ = A.chains(model, problems)
        agent = A.run_episodes(model, problems)
        sampled, _ = A.chains(model, problems, max(A.NS), A.TEMPERATURE, run0["seed"])
        first = A.run_episodes(model, problems, A.TEMPERATURE, A.sample_seed(run0["seed"], 0))
    return [check("greedy chains: answers", float([reasoning.parse_answer(t[0]) for t in greedy]
                                                  == info["greedy"]["answer"]), 1.0, 0),
            check("greedy agent: statuses and tokens", float(
                [A.failure_kind(e) for e in agent] == info["greedy agent"]["status"]
                and [A.episode_tokens(e) for e in agent] == info["greedy agent"]["tokens"]), 1.0, 0),
            check("seed 0: answers of its 16 sampled chains", float(
                [[reasoning.parse_answer(t) for t in ts] for ts in sampled] == run0["chains"]["answer"]), 1.0, 0),
            check("seed 0: statuses and tokens of its first agent sample", float(
                [A.failure_kind(e) for e in first] == [s[0] for s in run0["agent"]["status"]]
                and [A.episode_tokens(e) for e in first] == [t[0] for t in run0["agent"]["tokens"]]), 1.0, 0)]


ARTIFACTS = [
    Artifact("25-parallel-sphinx", "25", "parallel sample: Sphinx's UI messages in English and 9 "
             "translations (BSD-2-Clause), format codes stripped", (S.FILE,), _build_sample, _verify_sample),
    Artifact("25-transfer", "25", "cross-lingual transfer of a bag-of-subwords classifier, shared vs "
             "separate tokenizers, 3 seeds", (TRANSFER,), _build_transfer, _verify_transfer,
             needs=("25-parallel-sphinx",)),
    Artifact("25-induction-gpt", "25", "2-layer GPT trained to copy repeated random sequences (induction)",
             (f"zoo/{induction.NAME}.safetensors", f"zoo/{induction.NAME}.json"), _build_induction,
             _verify_induction, seed=induction.SEED),
    Artifact("25-test-time", "25", "agents and test-time compute on parity with gpt-char-cot: greedy, vote, "
             "verifier and agent runs, accuracy and token positions, 3 sampling seeds x 16 samples", (TEST_TIME,),
             _build_test_time, _verify_test_time, needs=("11-cot",)),
]
