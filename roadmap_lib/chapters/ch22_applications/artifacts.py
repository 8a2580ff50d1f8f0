"""Chapter 22's shipped artifacts: the fine-tuning runs of :func:`.experiments.run_study` and of
:func:`.extractive_qa.run_qa_study`.

Three seeds x (a sentence classifier + a tagger) of the zoo's word BERT on the *intruder* task,
300 steps each, take several minutes on one thread, so ``python -m roadmap_lib build
22-applications`` runs them once and records every seed's scores and test predictions.
``verify`` re-scores the stored predictions against the shipped test split (accuracy, span F1)
and repeats the build's short check run (seed 0's tagger, 60 steps: well under a minute) to compare
its span F1.

``python -m roadmap_lib build 22-qa`` fine-tunes the same BERT with a start/end span head on the
chapter's generated questions (3 seeds) and records each seed's test EM/F1 and predicted spans;
``verify`` re-scores the spans and repeats a 60-step run of seed 0.

``python -m roadmap_lib build 22-summarise`` embeds every source sentence of the summarisation
examples with the frozen word BERT (about half a minute) and fits the sentence scorers on 3
train/test splits (:func:`.summarise.run_study`); ``verify`` re-scores the stored picks and repeats
split 0.

``python -m roadmap_lib build 22-dialogue`` fine-tunes the zoo character GPT on templated
exchanges with the loss on the assistant's turns only (3 seeds, :func:`.dialogue.run_study`) and
records every test answer; ``verify`` re-scores them and repeats seed 0.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from roadmap_lib.chapters.ch22_applications import experiments as E
from roadmap_lib.chapters.ch22_applications import dialogue as DL
from roadmap_lib.chapters.ch22_applications import extractive_qa as Q
from roadmap_lib.chapters.ch22_applications import summarise as S
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.measure import cpu_threads
from roadmap_lib.zoo import Artifact, check, load_char_gpt

NAME = "22-applications"
RESULTS = "22_applications.json"
CHECK_STEPS = 60  # the short run that verify repeats


def _timed(run):
    """``run()`` on one thread; returns its result and the seconds it took."""
    with cpu_threads(1):
        start = time.perf_counter()
        out = run()
        return out, time.perf_counter() - start


def _write(root: Path, file: str, name: str, description: str, study: dict, seconds: float) -> None:
    info = {"name": name, "description": description, **study, "seconds": round(seconds, 1),
            "command": f"python -m roadmap_lib build {name}", "torch": torch.__version__}
    atomic_write_text(root / file, json.dumps(info) + "\n")


def _read(file: str, root: Path | None = None) -> dict:
    from roadmap_lib import DATA_DIR
    return json.loads(((root or DATA_DIR) / file).read_text(encoding="utf-8"))


def _build(root: Path) -> None:
    study, seconds = _timed(lambda: E.run_study(progress=True))
    with cpu_threads(1):
        short = E.run_study((0,), steps=CHECK_STEPS, progress=False)
    study["check_run"] = {"seed": 0, "steps": CHECK_STEPS, "tagger_f1": short["tagger"]["0"]["f1"],
                          "classifier_accuracy": short["classifier"]["0"]["accuracy"]}
    _write(root, RESULTS, NAME, "chapter 22: the zoo word BERT fine-tuned on the intruder task as a "
           "sentence classifier and as a BIO tagger, 3 seeds, scored on the test split", study, seconds)


def results(root: Path | None = None) -> dict:
    return _read(RESULTS, root)


def _verify(root: Path):
    """Re-score every seed's stored predictions (exact), and repeat the short check run: its scores
    may move a little where another CPU's float rounding changes a step."""
    from roadmap_lib.metrics import accuracy
    from roadmap_lib.tagging import span_scores

    info = results(root)
    te = E.Split("intruder", "test")
    gold = te.gold_tags()
    checks = []
    for seed in map(str, info["seeds"]):
        pred = torch.tensor(info["classifier"][seed]["pred"])
        checks.append(check(f"classifier accuracy, seed {seed} (re-scored)", accuracy(pred, te.labels),
                            info["classifier"][seed]["accuracy"], 1e-9))
        f1 = span_scores(E.flagged_to_tags(info["tagger"][seed]["flagged"], te.text), gold).f1
        checks.append(check(f"tagger span F1, seed {seed} (re-scored)", f1, info["tagger"][seed]["f1"], 1e-9))
    run = info["check_run"]
    with cpu_threads(1):
        got = E.run_study((run["seed"],), steps=run["steps"], progress=False)
    checks.append(check(f"tagger span F1, seed 0, {run['steps']} steps (retrained)", got["tagger"]["0"]["f1"],
                        run["tagger_f1"], 0.02))
    checks.append(check(f"classifier accuracy, seed 0, {run['steps']} steps (retrained)",
                        got["classifier"]["0"]["accuracy"], run["classifier_accuracy"], 0.01))
    return checks


QA_NAME = "22-qa"
QA_RESULTS = "22_qa.json"


def _build_qa(root: Path) -> None:
    study, seconds = _timed(lambda: Q.run_qa_study(progress=True))
    with cpu_threads(1):
        short = Q.run_qa_study((0,), steps=CHECK_STEPS, variants=("single",), progress=False)
    run = short["variants"]["single"]["runs"]["0"]
    study["check_run"] = {"variant": "single", "seed": 0, "steps": CHECK_STEPS, "em": run["em"], "f1": run["f1"]}
    _write(root, QA_RESULTS, QA_NAME, "chapter 22: the zoo word BERT with a start/end span head fine-tuned on "
           "generated extractive questions (context: one sentence, or with a distractor), 3 seeds each, test "
           "EM/F1 and predicted spans", study, seconds)


def qa_results(root: Path | None = None) -> dict:
    return _read(QA_RESULTS, root)


def _verify_qa(root: Path):
    """Re-score every run's stored spans (exact), and repeat the short check run (within 0.02)."""
    info = qa_results(root)
    checks = []
    for variant, rec in info["variants"].items():
        test = Q.qa_examples("test", distractor=Q.VARIANTS[variant])
        for seed, run in rec["runs"].items():
            em, f1 = Q.squad_scores(test, run["spans"])
            checks.append(check(f"QA ({variant}) exact match, seed {seed} (re-scored)", em.mean(), run["em"], 1e-6))
            checks.append(check(f"QA ({variant}) F1, seed {seed} (re-scored)", f1.mean(), run["f1"], 1e-6))
    run = info["check_run"]
    with cpu_threads(1):
        got = Q.run_qa_study((run["seed"],), steps=run["steps"], variants=(run["variant"],), progress=False)
    got = got["variants"][run["variant"]]["runs"][str(run["seed"])]
    checks.append(check(f"QA F1, seed 0, {run['steps']} steps (retrained)", got["f1"], run["f1"], 0.02))
    checks.append(check(f"QA exact match, seed 0, {run['steps']} steps (retrained)", got["em"], run["em"], 0.02))
    return checks


SUM_NAME = "22-summarise"
SUM_RESULTS = "22_summarise.json"
#: a re-run fits the same deterministic regression on the same float64 features; another CPU's
#: rounding may flip a near-tied pick, each worth about 1/263 of one example's ROUGE-L
SUM_TOL = 0.002


def _build_sum(root: Path) -> None:
    study, seconds = _timed(S.run_study)
    _write(root, SUM_RESULTS, SUM_NAME, "chapter 22: extractive summarisation of Jargon File entries (target: "
           "the definition sentence; source: the rest); per train/test split, the test examples, each trained "
           "scorer's chosen sentence and every system's mean ROUGE-L F1", study, seconds)


def summarise_results(root: Path | None = None) -> dict:
    return _read(SUM_RESULTS, root)


def _verify_sum(root: Path):
    """Re-score every split's stored picks (exact), and repeat split 0 (within ``SUM_TOL``)."""
    from roadmap_lib.chapters.ch22_applications.retrieve import corpus

    info = summarise_results(root)
    exs = S.examples(corpus())
    checks = [check("summarisation examples", len(exs), info["n_examples"], 0)]
    for seed, run in info["seeds"].items():
        test = [exs[i] for i in run["test"]]
        for system in S.SYSTEMS:
            got = S.scores(test, system, run["picks"].get(system)).mean().item()
            checks.append(check(f"{system} ROUGE-L, split {seed} (re-scored)", got, run["rougeL"][system], 1e-9))
    with cpu_threads(1):
        again = S.run_study((0,))["seeds"]["0"]["rougeL"]
    for system in ("position + length", "BERT scorer"):
        checks.append(check(f"{system} ROUGE-L, split 0 (refitted)", again[system],
                            info["seeds"]["0"]["rougeL"][system], SUM_TOL))
    return checks


DLG_NAME = "22-dialogue"
DLG_RESULTS = "22_dialogue.json"
#: a re-run repeats the same seeded steps; another CPU's rounding may change a few greedy answers
DLG_TOL = 0.02
#: steps of seed 0's fine-tuning that ``verify`` replays (its learning rate is constant, so the first
#: steps of a shorter run are the recorded run's)
DLG_REPLAY = 40


def _build_dialogue(root: Path) -> None:
    study, seconds = _timed(DL.run_study)
    _write(root, DLG_RESULTS, DLG_NAME, "chapter 22: the zoo character GPT fine-tuned on templated 3-turn "
           "exchanges, loss on assistant turns only, 3 seeds; every test exchange's assistant turns (teacher-forced, "
           "greedy), and the untuned model's", study, seconds)


def dialogue_results(root: Path | None = None) -> dict:
    return _read(DLG_RESULTS, root)


def _verify_dialogue(root: Path):
    """Re-score every seed's stored answers (exact), replay the first ``DLG_REPLAY`` steps of seed 0's
    fine-tuning against its recorded losses, and re-answer the test turns with the untuned model. The
    whole study (3 seeds of 150 steps and their answers) is ``build``'s."""
    info = dialogue_results(root)
    train, test = DL.make_exchanges(0)
    checks = [check("dialogue test exchanges", len(test), info["n_test"], 0)]
    for seed, run in info["seeds"].items():
        s = DL.turn_scores(run["answers"], test)
        checks.append(check(f"turn accuracy, seed {seed} (re-scored)", s.mean().item(), run["turn_accuracy"], 1e-12))
        checks.append(check(f"answer exact match, seed {seed} (re-scored)", s[:, 2].mean().item(), run["answer_em"], 1e-12))
    model, vocab, _ = load_char_gpt()
    with cpu_threads(1):
        untuned = DL.answer_turns(model, vocab, test)
        losses = DL.train_sft(model, vocab, train, steps=DLG_REPLAY + 1, seed=0)
    recorded = info["seeds"]["0"]["losses"][: DLG_REPLAY // 10 + 1]  # the record keeps every 10th step
    checks.append(check("seed 0: largest difference over the replayed steps (every 10th)",
                        max(abs(a - b) for a, b in zip(losses[::10], recorded)), 0.0, 1e-3))
    # the untuned model answers no turn right, so compare its greedy turns themselves with the recorded ones
    same = sum(a == b for got, want in zip(untuned, info["untuned"]) for a, b in zip(got, want))
    total = sum(len(want) for want in info["untuned"])
    checks.append(check("untuned model: share of re-answered turns equal to the recorded ones", same / total, 1.0,
                        DLG_TOL))
    return checks


ARTIFACTS = [
    Artifact(NAME, "22", "the zoo word BERT fine-tuned on the intruder task as a sentence classifier and as a "
             "BIO tagger, 3 seeds, with test predictions", (RESULTS,), _build, _verify, needs=("bert-word-jargon",)),
    Artifact(QA_NAME, "22", "the zoo word BERT with a start/end span head fine-tuned on generated extractive "
             "questions (the translation task's English sentences), 3 seeds, with test spans", (QA_RESULTS,),
             _build_qa, _verify_qa, needs=("bert-word-jargon", "tasks")),
    Artifact(SUM_NAME, "22", "extractive summarisation of Jargon File entries: sentence scorers (position, and the "
             "frozen zoo word BERT) against lead-k, 3 train/test splits, with every test pick", (SUM_RESULTS,),
             _build_sum, _verify_sum, needs=("bert-word-jargon",)),
    Artifact(DLG_NAME, "22", "the zoo character GPT fine-tuned on templated multi-turn exchanges (loss on assistant "
             "turns only), 3 seeds, with every test answer and the untuned model's", (DLG_RESULTS,),
             _build_dialogue, _verify_dialogue, needs=("gpt-char-jargon",)),
]
