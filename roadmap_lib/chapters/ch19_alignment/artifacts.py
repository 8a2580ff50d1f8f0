"""Chapter 19's shipped results: preference pairs, the reward model, every method × 3 seeds.

``python -m roadmap_lib build alignment-results`` runs :func:`~.experiments.run_all` from the zoo's
character GPT and writes

- ``19_preference_pairs.safetensors``: the train and held-out pairs (token ids as uint8, the
  vocabulary has 138 characters) and their true rewards;
- ``19_reward_model.safetensors``: the Bradley–Terry reward model;
- ``19_alignment.json``: the reward model's accuracy, each method's held-out evaluation per seed,
  and the over-optimisation curve.

``verify`` re-measures the reward model's accuracy from the shipped files and re-runs DPO with
seed 0, comparing with the recorded numbers.

``python -m roadmap_lib build alignment-overoptimisation`` (after the above: it reads the shipped
pairs) fits a reward model to only 64 of the pairs and runs GRPO against it with no KL penalty, 3
seeds, writing ``19_overoptimisation.json``; its ``verify`` refits that reward model and re-runs
the first 20 iterations of seed 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from roadmap_lib import DATA_DIR
from roadmap_lib.alignment import RewardModel
from roadmap_lib.checkpoint import load_model, save_model
from roadmap_lib.fileio import atomic_path, atomic_write_text
from roadmap_lib.zoo import Artifact, check, load_char_gpt

from .experiments import (
    Pairs,
    Setup,
    overoptimisation,
    reward_model_accuracy,
    rm_accuracies,
    run_all,
    run_method,
    subset,
    weak_reward_model,
)

NAME, OVEROPT_NAME = "alignment-results", "alignment-overoptimisation"
RESULTS, PAIRS, REWARD_MODEL = "19_alignment.json", "19_preference_pairs.safetensors", "19_reward_model.safetensors"
OVEROPT = "19_overoptimisation.json"
#: The over-optimisation experiment: a reward model fitted to 64 pairs, then GRPO against it with
#: no KL penalty, 3 policy seeds, evaluated every 10 iterations.
OVEROPT_SETUP = {"n_pairs": 64, "epochs": 4, "steps": 80, "every": 10, "lr": 3e-4, "seeds": [0, 1, 2]}
#: Tolerances of the re-measurement: accuracies and rewards are means over a few hundred samples
#: drawn with fixed seeds, equal on one machine; across machines and BLAS builds a last-bit change
#: in a logit can flip a sampled character, hence a margin rather than equality.
TOL = {"accuracy": 0.02, "reward": 0.03, "kl": 0.15}


def save_pairs(path: Path, train: Pairs, test: Pairs) -> None:
    tensors = {}
    for split, pairs in (("train", train), ("test", test)):
        tensors.update({f"{split}.chosen": pairs.chosen.to(torch.uint8), f"{split}.rejected": pairs.rejected.to(torch.uint8),
                        f"{split}.chosen_reward": pairs.chosen_reward, f"{split}.rejected_reward": pairs.rejected_reward})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"prompt_len": str(train.prompt_len)})


def load_pairs(root: Path | None = None) -> tuple[Pairs, Pairs]:
    """``(train, test)`` preference pairs from the shipped file."""
    path = (Path(root) if root is not None else DATA_DIR) / PAIRS
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build {NAME}`")
    t = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        prompt_len = int(f.metadata()["prompt_len"])
    return tuple(Pairs(t[f"{s}.chosen"].long(), t[f"{s}.rejected"].long(), prompt_len, t[f"{s}.chosen_reward"],
                       t[f"{s}.rejected_reward"]) for s in ("train", "test"))


def load_reward_model(start: torch.nn.Module, root: Path | None = None) -> RewardModel:
    """The shipped reward model (eval mode) on a copy of ``start``'s architecture."""
    rm = RewardModel(start)
    load_model(rm, (Path(root) if root is not None else DATA_DIR) / REWARD_MODEL)
    return rm.eval()


def load_results(root: Path | None = None, *, name: str = RESULTS) -> dict:
    """The recorded results: ``RESULTS`` (every method) or ``OVEROPT`` (over-optimisation)."""
    path = (Path(root) if root is not None else DATA_DIR) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build "
                                f"{NAME if name == RESULTS else OVEROPT_NAME}`")
    return json.loads(path.read_text(encoding="utf-8"))


def build(root: Path) -> None:
    start, vocab, _ = load_char_gpt()
    results, prep = run_all(start, vocab, Setup())
    results["command"] = f"python -m roadmap_lib build {NAME}"
    save_pairs(root / PAIRS, prep["train"], prep["test"])
    save_model(prep["rm"], root / REWARD_MODEL, extra={"start": "gpt-char-jargon"})
    atomic_write_text(root / RESULTS, json.dumps(results, indent=1) + "\n")


def verify(root: Path):
    start, vocab, _ = load_char_gpt()
    recorded = load_results(root)
    train, test = load_pairs(root)
    rm = load_reward_model(start, root)
    acc = rm_accuracies(rm, train, test)
    setup = Setup(**recorded["setup"])
    dpo = run_method("dpo", start, vocab, {"train": train, "rm": rm}, setup, seed=recorded["seeds"][0])
    want = recorded["runs"]["dpo"][0]
    return [check("reward model held-out accuracy", acc["rm_test_accuracy"],
                  recorded["reward_model"]["test_accuracy"], TOL["accuracy"]),
            check("DPO seed 0 true reward", dpo["true_reward"], want["true_reward"], TOL["reward"]),
            check("DPO seed 0 KL (nats)", dpo["kl"], want["kl"], TOL["kl"])]


def _weak_rm(start, train: Pairs):
    return weak_reward_model(start, train, n_pairs=OVEROPT_SETUP["n_pairs"], epochs=OVEROPT_SETUP["epochs"])


def build_overoptimisation(root: Path) -> None:
    start, vocab, _ = load_char_gpt()
    train, test = load_pairs()  # the shipped pairs of alignment-results, built first
    rm = _weak_rm(start, train)
    o = OVEROPT_SETUP
    curves = [overoptimisation(start, vocab, {"rm": rm}, Setup(), steps=o["steps"], every=o["every"], seed=seed,
                               lr=o["lr"]) for seed in o["seeds"]]
    record = {"setup": o, "method": "grpo", "beta": 0.0, "command": f"python -m roadmap_lib build {OVEROPT_NAME}",
              "reward_model": {"pairs": o["n_pairs"], "train_accuracy": reward_model_accuracy(rm, subset(train, o["n_pairs"])),
                               "test_accuracy": reward_model_accuracy(rm, test)},
              "curves": curves}
    atomic_write_text(root / OVEROPT, json.dumps(record, indent=1) + "\n")


def verify_overoptimisation(root: Path):
    """Refit the small reward model and re-run the first 20 iterations of seed 0."""
    start, vocab, _ = load_char_gpt()
    recorded = load_results(root, name=OVEROPT)
    train, test = load_pairs()
    rm = _weak_rm(start, train)
    o = recorded["setup"]
    got = overoptimisation(start, vocab, {"rm": rm}, Setup(), steps=2 * o["every"], every=o["every"],
                           seed=o["seeds"][0], lr=o["lr"])
    want = recorded["curves"][0]
    checks = [check("small reward model held-out accuracy", reward_model_accuracy(rm, test),
                    recorded["reward_model"]["test_accuracy"], TOL["accuracy"])]
    for g, w in zip(got[1:], want[1:3]):
        checks += [check(f"seed 0 step {w['step']} true reward", g["true_reward"], w["true_reward"], TOL["reward"]),
                   check(f"seed 0 step {w['step']} KL (nats)", g["kl"], w["kl"], TOL["kl"])]
    return checks


ARTIFACTS = [Artifact(NAME, "19", "chapter 19: preference pairs, reward model and KL vs true reward of DPO, IPO, "
                      "KTO, ORPO, PPO and GRPO (3 seeds) on the zoo's character GPT",
                      (RESULTS, PAIRS, REWARD_MODEL), build, verify, needs=("gpt-char-jargon",)),
             Artifact(OVEROPT_NAME, "19", "chapter 19: true reward and reward-model score of GRPO against a reward "
                      "model fitted to 64 pairs, no KL penalty, 3 seeds (reward over-optimisation)",
                      (OVEROPT,), build_overoptimisation, verify_overoptimisation, needs=(NAME,))]
