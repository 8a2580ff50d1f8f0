"""Chapter 19's experiment: one start, one preference task, seven ways to align.

The pipeline, all seeded and sized for one CPU thread:

1. **Preference data.** The zoo's character GPT (chapter 07) writes two completions of each train
   prompt; the ground truth (:func:`~.task.real_word_fraction`) labels the better one "chosen"
   (ties dropped). Held-out pairs come from test prompts the same way.
2. **Reward model.** A Bradley–Terry reward model (the GPT's body, a scalar head) trained on the
   train pairs; its held-out accuracy is the fraction of test pairs it orders like the ground truth.
3. **Methods**, each from the same start and with the same optimiser: offline on the fixed pairs
   (DPO, IPO, KTO, ORPO), and online against the *learned* reward model (PPO with a value head,
   GRPO), as in RLHF, where the true preference is only known through the reward model.
4. **Evaluation** on held-out prompts: the true reward of fresh samples, the proxy (reward-model)
   score, the win rate against the start model's samples of the same prompts under the ground
   truth, and the KL from the start (reference) model.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from tqdm.auto import tqdm

from roadmap_lib.alignment import (
    PPOConfig,
    RewardModel,
    ValueModel,
    bradley_terry_loss,
    completion_logprobs,
    dpo_loss,
    group_step,
    kto_loss,
    kto_reference_point,
    orpo_loss,
    ppo_step,
    reward_accuracy,
    rollout,
)
from roadmap_lib.data import CharVocab

from .task import COMPLETION_LEN, prompts, true_reward_fn

OFFLINE = ("dpo", "ipo", "kto", "orpo")
ONLINE = ("ppo", "grpo")
METHODS = OFFLINE + ONLINE


@dataclass(frozen=True)
class Setup:
    """Sizes of the experiment (defaults: what the shipped results were built with)."""

    pair_prompts: int = 1024     # train prompts -> preference pairs
    test_pair_prompts: int = 256  # held-out pairs for the reward model's accuracy
    eval_prompts: int = 128      # held-out prompts for the evaluation
    rm_epochs: int = 1           # one epoch: more overfit the pairs (train accuracy up, held-out not)
    rm_lr: float = 1e-3
    batch_pairs: int = 32
    offline_steps: int = 40
    online_steps: int = 25
    online_prompts: int = 32     # PPO rollouts per step; GRPO: prompts per step (× group)
    group_size: int = 4
    lr: float = 1e-4
    beta: float = 0.1            # DPO/IPO/KTO β; ORPO's λ; GRPO's KL β; PPO's kl_coef
    data_seed: int = 0


def _frozen(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _trainable(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@dataclass
class Pairs:
    """Preference pairs: chosen and rejected ids (n, prompt_len + T), the prompt length, and the
    true rewards of both (n,)."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    prompt_len: int
    chosen_reward: torch.Tensor
    rejected_reward: torch.Tensor

    def __len__(self) -> int:
        return self.chosen.shape[0]


def make_pairs(model: nn.Module, vocab: CharVocab, n_prompts: int, *, split: str, seed: int) -> Pairs:
    """Two samples per prompt from ``model``, ordered by the ground truth; ties dropped."""
    p = prompts(vocab, n_prompts, split=split, seed=seed)
    g = torch.Generator().manual_seed(seed)
    batch = rollout(model, model, true_reward_fn(vocab), p.repeat_interleave(2, 0), COMPLETION_LEN, generator=g)
    r = batch.scores.view(-1, 2)
    ids = batch.ids.view(n_prompts, 2, -1)
    keep = r[:, 0] != r[:, 1]
    first = (r[:, 0] > r[:, 1]).long()
    rows = torch.arange(n_prompts)
    chosen, rejected = ids[rows, 1 - first], ids[rows, first]  # first = 1: sample 0 won
    rc, rr = r[rows, 1 - first], r[rows, first]
    return Pairs(chosen[keep], rejected[keep], p.shape[1], rc[keep], rr[keep])


def train_reward_model(lm: nn.Module, train: Pairs, setup: Setup, *, seed: int = 0) -> tuple[RewardModel, list[float]]:
    """Bradley–Terry training on the pairs; returns the model (eval mode) and the loss per step."""
    torch.manual_seed(seed)
    rm = _trainable(RewardModel(lm))
    opt = torch.optim.AdamW(rm.parameters(), lr=setup.rm_lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(setup.rm_epochs):
        for idx in torch.randperm(len(train), generator=g).split(setup.batch_pairs):
            loss = bradley_terry_loss(rm(train.chosen[idx]), rm(train.rejected[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return rm.eval(), losses


@torch.no_grad()
def reward_model_accuracy(rm: RewardModel, pairs: Pairs) -> float:
    return reward_accuracy(rm(pairs.chosen), rm(pairs.rejected)).item()


def rm_reward_fn(rm: RewardModel):
    """The learned reward as a reward function ``(ids, prompt_len) -> (batch,)``."""

    @torch.no_grad()
    def reward(ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
        return rm(ids)

    return reward


@torch.no_grad()
def evaluate(policy: nn.Module, ref: nn.Module, rm: RewardModel, vocab: CharVocab, setup: Setup, *,
             seed: int = 1) -> dict[str, float]:
    """Held-out evaluation: mean true reward and proxy score of the policy's samples, the win rate
    of each sample over the reference's sample of the same prompt under the ground truth (ties
    count ½), and KL(π ‖ π_ref) per completion in nats (mean of Σ_t log π − log π_ref)."""
    p = prompts(vocab, setup.eval_prompts, split="test", seed=seed)
    truth = true_reward_fn(vocab)
    mine = rollout(policy, ref, truth, p, COMPLETION_LEN, generator=torch.Generator().manual_seed(seed))
    base = rollout(ref, ref, truth, p, COMPLETION_LEN, generator=torch.Generator().manual_seed(seed + 1))
    wins = (mine.scores > base.scores).float() + 0.5 * (mine.scores == base.scores).float()
    return {"true_reward": mine.scores.mean().item(), "proxy_reward": rm(mine.ids).mean().item(),
            "win_rate": wins.mean().item(), "kl": mine.kl().mean().item()}


def _seq_logps(model: nn.Module, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    return completion_logprobs(model, ids, prompt_len).sum(-1)


def offline_loss(method: str, policy: nn.Module, ref: nn.Module, chosen: torch.Tensor, rejected: torch.Tensor,
                 prompt_len: int, beta: float) -> torch.Tensor:
    """The loss of one offline method on a batch of pairs (chosen, rejected ids)."""
    if method == "orpo":
        tok_c = completion_logprobs(policy, chosen, prompt_len)
        tok_r = completion_logprobs(policy, rejected, prompt_len)
        return orpo_loss(tok_c.mean(-1), tok_r.mean(-1), -tok_c.mean(), lam=beta)
    pc, pr = _seq_logps(policy, chosen, prompt_len), _seq_logps(policy, rejected, prompt_len)
    with torch.no_grad():
        rc, rr = _seq_logps(ref, chosen, prompt_len), _seq_logps(ref, rejected, prompt_len)
    if method in ("dpo", "ipo"):
        return dpo_loss(pc, pr, rc, rr, beta=beta, loss_type="sigmoid" if method == "dpo" else "ipo")
    if method == "kto":
        # unpaired: chosen rows desirable, rejected rows undesirable; z0 from mismatched prompt/completion
        # pairs (each prompt with the next row's completion), as trl's KTO does
        mismatched = torch.cat([chosen[:, :prompt_len], chosen.roll(1, 0)[:, prompt_len:]], 1)
        with torch.no_grad():
            z0 = kto_reference_point(_seq_logps(policy, mismatched, prompt_len), _seq_logps(ref, mismatched, prompt_len))
        desirable = torch.cat([torch.ones_like(pc), torch.zeros_like(pr)]).bool()
        return kto_loss(torch.cat([pc, pr]), torch.cat([rc, rr]), desirable, reference_point=z0, beta=beta)
    raise ValueError(f"method: expected one of {', '.join(map(repr, OFFLINE))}, got {method!r}")


def train_offline(method: str, start: nn.Module, pairs: Pairs, setup: Setup, *, seed: int,
                  beta: float | None = None, steps: int | None = None) -> nn.Module:
    """``steps`` updates of ``method`` on batches of the preference pairs, from ``start``."""
    torch.manual_seed(seed)
    policy, ref = _trainable(start).train(), _frozen(start)
    opt = torch.optim.Adam(policy.parameters(), lr=setup.lr)
    g = torch.Generator().manual_seed(seed)
    beta = setup.beta if beta is None else beta
    for _ in range(setup.offline_steps if steps is None else steps):
        idx = torch.randperm(len(pairs), generator=g)[: setup.batch_pairs]
        loss = offline_loss(method, policy, ref, pairs.chosen[idx], pairs.rejected[idx], pairs.prompt_len, beta)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
    return policy.eval()


def train_online(method: str, start: nn.Module, reward_fn, vocab: CharVocab, setup: Setup, *, seed: int,
                 steps: int | None = None, beta: float | None = None, callback=None) -> nn.Module:
    """``steps`` iterations of PPO or GRPO against ``reward_fn`` (the learned reward model), from
    ``start``. ``callback(step, policy)`` runs after each iteration (e.g. to evaluate)."""
    if method not in ONLINE:
        raise ValueError(f"method: expected one of {', '.join(map(repr, ONLINE))}, got {method!r}")
    torch.manual_seed(seed)
    policy, ref = _trainable(start), _frozen(start)
    beta = setup.beta if beta is None else beta
    g = torch.Generator().manual_seed(seed)
    if method == "ppo":
        value_model = _trainable(ValueModel(start))
        opt = torch.optim.Adam([*policy.parameters(), *value_model.parameters()], lr=setup.lr)
        config = PPOConfig(kl_coef=beta)
    else:
        opt = torch.optim.Adam(policy.parameters(), lr=setup.lr)
    for step in range(setup.online_steps if steps is None else steps):
        if method == "ppo":
            p = prompts(vocab, setup.online_prompts, seed=10_000 * (seed + 1) + step)
            ppo_step(policy, value_model, ref, reward_fn, p, opt, max_new_tokens=COMPLETION_LEN, config=config,
                     generator=g)
        else:
            p = prompts(vocab, setup.online_prompts // setup.group_size, seed=10_000 * (seed + 1) + step)
            group_step(policy, ref, reward_fn, p, opt, max_new_tokens=COMPLETION_LEN, group_size=setup.group_size,
                       beta=beta, generator=g)
        if callback is not None:
            callback(step, policy)
    return policy.eval()


def prepare(start: nn.Module, vocab: CharVocab, setup: Setup = Setup()) -> dict:
    """Preference pairs (train, test) and the trained reward model, with its accuracy."""
    train = make_pairs(start, vocab, setup.pair_prompts, split="train", seed=setup.data_seed)
    test = make_pairs(start, vocab, setup.test_pair_prompts, split="test", seed=setup.data_seed + 1)
    rm, losses = train_reward_model(start, train, setup, seed=setup.data_seed)
    return {"train": train, "test": test, "rm": rm, "rm_losses": losses, **rm_accuracies(rm, train, test)}


def rm_accuracies(rm: RewardModel, train: Pairs, test: Pairs) -> dict[str, float]:
    return {"rm_train_accuracy": reward_model_accuracy(rm, train), "rm_test_accuracy": reward_model_accuracy(rm, test)}


def run_method(method: str, start: nn.Module, vocab: CharVocab, prep: dict, setup: Setup, *, seed: int,
               **kwargs) -> dict[str, float]:
    """Train one method with one seed and evaluate it; returns the evaluation and the seconds."""
    t = time.perf_counter()
    if method in OFFLINE:
        policy = train_offline(method, start, prep["train"], setup, seed=seed, **kwargs)
    else:
        policy = train_online(method, start, rm_reward_fn(prep["rm"]), vocab, setup, seed=seed, **kwargs)
    seconds = time.perf_counter() - t
    return {**evaluate(policy, start, prep["rm"], vocab, setup), "seconds": seconds}


def overoptimisation(start: nn.Module, vocab: CharVocab, prep: dict, setup: Setup, *, steps: int, every: int,
                     seed: int = 0, beta: float = 0.0, lr: float = 3e-4) -> list[dict[str, float]]:
    """GRPO against the learned reward with no KL penalty (β = 0) and a larger learning rate
    (``lr``) for ``steps`` iterations, evaluating true reward, proxy score and KL every ``every``
    iterations (step 0: the start)."""
    setup = replace(setup, lr=lr)
    curve = [{"step": 0, **evaluate(start, start, prep["rm"], vocab, setup)}]

    def callback(step: int, policy: nn.Module) -> None:
        if (step + 1) % every == 0:
            curve.append({"step": step + 1, **evaluate(policy, start, prep["rm"], vocab, setup)})

    train_online("grpo", start, rm_reward_fn(prep["rm"]), vocab, setup, seed=seed, steps=steps, beta=beta,
                 callback=callback)
    return curve


def subset(pairs: Pairs, n: int) -> Pairs:
    """The first ``n`` pairs."""
    if not isinstance(n, int) or not 1 <= n <= len(pairs):
        raise ValueError(f"n: expected an int in [1, {len(pairs)}], got {n!r}")
    return Pairs(pairs.chosen[:n], pairs.rejected[:n], pairs.prompt_len, pairs.chosen_reward[:n],
                 pairs.rejected_reward[:n])


def weak_reward_model(start: nn.Module, train: Pairs, *, n_pairs: int = 64, epochs: int = 4,
                      seed: int = 0) -> RewardModel:
    """A reward model fitted to only the first ``n_pairs`` training pairs, ``epochs`` times over
    (batches of 16): it memorises them and generalises worse than the full one."""
    rm, _ = train_reward_model(start, subset(train, n_pairs), Setup(rm_epochs=epochs, batch_pairs=16), seed=seed)
    return rm


def run_all(start: nn.Module, vocab: CharVocab, setup: Setup = Setup(), *, seeds=(0, 1, 2), methods=METHODS,
            hack_steps: int = 100, hack_every: int = 10, hack_lr: float = 3e-4) -> tuple[dict, dict]:
    """Everything the shipped results hold: reward model, every method × seed, the
    over-optimisation curve. Returns ``(results, prep)``: prep from :func:`prepare`."""
    t0 = time.perf_counter()
    prep = prepare(start, vocab, setup)
    base = evaluate(start, start, prep["rm"], vocab, setup)
    runs = {}
    for method in tqdm(methods, desc="methods"):
        runs[method] = [run_method(method, start, vocab, prep, setup, seed=s) for s in seeds]
    hack = overoptimisation(start, vocab, prep, setup, steps=hack_steps, every=hack_every, lr=hack_lr)
    results = {
        "setup": asdict(setup), "seeds": list(seeds),
        "pairs": {"train": len(prep["train"]), "test": len(prep["test"])},
        "reward_model": {"train_accuracy": prep["rm_train_accuracy"], "test_accuracy": prep["rm_test_accuracy"],
                         "final_loss": sum(prep["rm_losses"][-8:]) / len(prep["rm_losses"][-8:])},
        "start": base, "runs": runs, "overoptimisation": {"method": "grpo", "beta": 0.0, "lr": hack_lr, "curve": hack},
        "seconds": time.perf_counter() - t0,
    }
    return results, prep


def summary(results: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """``{method: {metric: (mean, std over seeds)}}`` from the results' runs."""
    out = {}
    for method, runs in results["runs"].items():
        out[method] = {}
        for key in ("true_reward", "proxy_reward", "win_rate", "kl"):
            x = torch.tensor([r[key] for r in runs], dtype=torch.float64)
            out[method][key] = (x.mean().item(), x.std().item() if len(x) > 1 else 0.0)
    return out


__all__ = ["METHODS", "OFFLINE", "ONLINE", "Pairs", "Setup", "evaluate", "make_pairs", "offline_loss",
           "overoptimisation", "prepare", "reward_model_accuracy", "rm_reward_fn", "run_all", "run_method",
           "subset", "summary", "train_offline", "train_online", "train_reward_model", "weak_reward_model"]
