"""roadmap_lib.alignment against trl's own loss code, on the same random log-probs.

trl (checked with 1.16) computes most losses inside a trainer method that also runs the model and
logs metrics. We call that method unbound, on a stand-in ``self`` carrying only the attributes it
reads, with a stand-in model whose fused LM head returns fixed per-token log-probs (what trl's
``add_fused_lm_head`` returns: log-probs of the labels, 0 where a label is -100). Where trl
exposes a function or a loss method (``nanstd``, ``selective_log_softmax``, ``cpo_loss``,
``odds_ratio_loss``, ``get_batch_logps``) we call it directly. Tolerances: 1e-6 in float64, 1e-5
in float32 (ORPO's loss casts to float32 inside).
"""

from __future__ import annotations

import contextlib
import os
import types
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO and CPO live in trl.experimental
pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

from trl.experimental.cpo import CPOTrainer
from trl.experimental.orpo import ORPOTrainer
from trl.trainer.dpo_trainer import DPOTrainer
from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.kto_trainer import KTOTrainer
from trl.trainer.reward_trainer import RewardTrainer
from trl.trainer.rloo_trainer import RLOOTrainer
from trl.trainer.utils import add_fused_lm_head, nanstd, selective_log_softmax

from roadmap_lib.alignment import (
    bradley_terry_loss,
    cpo_loss,
    dpo_loss,
    grpo_advantages,
    grpo_loss,
    kto_loss,
    kto_reference_point,
    orpo_loss,
    orpo_odds_ratio_loss,
    ppo_policy_loss,
    preference_metrics,
    rloo_advantages,
    sequence_logprobs,
    simpo_loss,
)

F64 = {"atol": 1e-6, "rtol": 0}
F32 = {"atol": 1e-5, "rtol": 0}


class _Accelerator:
    """One CPU process: gathering and reducing are the identity."""

    device = torch.device("cpu")
    num_processes, process_index, sync_gradients = 1, 0, True

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x

    def autocast(self):
        return contextlib.nullcontext()


def stand_in(**attributes) -> SimpleNamespace:
    """The ``self`` a trainer's loss method reads, besides its own hyper-parameters."""
    common = {"accelerator": _Accelerator(), "model": SimpleNamespace(training=True), "aux_loss_enabled": False,
              "_metrics": {"train": defaultdict(list), "eval": defaultdict(list)}, "_total_train_tokens": 0,
              "_tp_size": 1}
    return SimpleNamespace(**(common | attributes))


def fused_lm(per_token_by_input: dict[int, torch.Tensor]):
    """A model called as ``model(input_ids=..., labels=..., fused_lm_head=True)`` that returns the
    given per-token log-probs (batch, seq - 1) of whichever ``input_ids`` tensor it is called on,
    0 where the label is -100."""

    def model(input_ids, labels, fused_lm_head, **kwargs):
        assert fused_lm_head
        log_probs = per_token_by_input[id(input_ids)] * (labels[:, 1:] != -100)
        zeros = torch.zeros_like(log_probs)
        return SimpleNamespace(log_probs=log_probs, entropy=zeros, mean_logits=zeros,
                               is_top1=zeros.bool(), log_sum_sq_probs=zeros)

    return model


def random_completions(g, batch, seq, *, dtype=torch.float64):
    """Per-token log-probs (batch, seq - 1) and a completion mask (batch, seq): prompts of 2-4
    tokens, completions of 2 to the rest, right padding."""
    per_token = -torch.rand(batch, seq - 1, generator=g, dtype=dtype) * 3
    mask = torch.zeros(batch, seq, dtype=torch.long)
    for i in range(batch):
        start = int(torch.randint(2, 5, (1,), generator=g))
        end = int(torch.randint(start + 2, seq + 1, (1,), generator=g))
        mask[i, start:end] = 1
    return per_token, mask


def sums_and_means(per_token, mask):
    m = mask[:, 1:].to(per_token.dtype)
    total = (per_token * m).sum(-1)
    return total, total / m.sum(-1)


# ----------------------------------------------------------------------------------- log-probs


def test_sequence_logprobs_match_trls_fused_head_and_helpers():
    g = torch.Generator().manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=40, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(1, 40, (5, 12), generator=g)
    _, mask = random_completions(g, 5, 12)
    with torch.no_grad():
        ours = sequence_logprobs(hf, ids, mask)
        ours_mean = sequence_logprobs(hf, ids, mask, average=True)
        logits = hf(ids).logits
        labels = ids.masked_fill(mask == 0, -100)
        trl_sum = ORPOTrainer.get_batch_logps(logits, labels, average_log_prob=False)
        trl_mean = ORPOTrainer.get_batch_logps(logits, labels, average_log_prob=True)
        per_token = selective_log_softmax(logits[:, :-1], ids[:, 1:]) * mask[:, 1:]
        add_fused_lm_head(hf)
        fused = hf(input_ids=ids, labels=labels, fused_lm_head=True).log_probs.sum(-1)
    for name, theirs in [("get_batch_logps", trl_sum), ("selective_log_softmax", per_token.sum(-1)),
                         ("fused head", fused)]:
        torch.testing.assert_close(ours, theirs, **F32, msg=name)
    torch.testing.assert_close(ours_mean, trl_mean, **F32)


# ------------------------------------------------------------------------------------- DPO


def trl_dpo(loss_type, beta, label_smoothing, chosen, rejected, ref_chosen, ref_rejected, completion_mask):
    """DPOTrainer._compute_loss on per-token log-probs (chosen rows, then rejected rows)."""
    per_token = torch.cat([chosen, rejected])
    ids = torch.zeros(completion_mask.shape, dtype=torch.long)
    trainer = stand_in(ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
                       loss_types=[loss_type], loss_weights=[1.0], beta=beta, label_smoothing=label_smoothing,
                       use_weighting=False)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion_mask,
              "ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(trainer, fused_lm({id(ids): per_token}), inputs, False)
    return loss, trainer._metrics["train"]


@pytest.mark.parametrize("loss_type,beta,eps", [("sigmoid", 0.1, 0.0), ("sigmoid", 0.5, 0.0), ("ipo", 0.1, 0.0),
                                                ("ipo", 0.7, 0.0), ("hinge", 0.1, 0.0), ("hinge", 2.0, 0.0),
                                                ("robust", 0.1, 0.1), ("robust", 0.3, 0.3)])
def test_dpo_losses_match_trl(loss_type, beta, eps):
    g = torch.Generator().manual_seed(1)
    per_token, mask = random_completions(g, 16, 14)
    per_token.requires_grad_(True)
    ref_per_token = per_token.detach() + 0.3 * torch.randn(per_token.shape, generator=g, dtype=torch.float64)
    sums, means = sums_and_means(per_token, mask)
    ref_sums, ref_means = sums_and_means(ref_per_token, mask)
    c, r = sums.chunk(2)
    rc, rr = ref_sums.chunk(2)
    theirs, metrics = trl_dpo(loss_type, beta, eps, *per_token.chunk(2), rc, rr, mask)
    if loss_type == "ipo":  # trl divides each log-ratio by the completion's length: mean log-probs
        ours = dpo_loss(*means.chunk(2), *ref_means.chunk(2), beta=beta, loss_type="ipo")
    else:
        ours = dpo_loss(c, r, rc, rr, beta=beta, loss_type=loss_type, label_smoothing=eps)
    torch.testing.assert_close(ours, theirs, **F64)
    grad_ours, = torch.autograd.grad(ours, per_token, retain_graph=True)
    grad_theirs, = torch.autograd.grad(theirs, per_token)
    torch.testing.assert_close(grad_ours, grad_theirs, **F64)
    m = preference_metrics(c, r, rc, rr, beta=beta)
    for key, trl_key in [("chosen", "rewards/chosen"), ("rejected", "rewards/rejected"),
                         ("margin", "rewards/margins"), ("accuracy", "rewards/accuracies")]:
        assert m[key] == pytest.approx(metrics[trl_key][0], abs=1e-6), key


def cpo_stand_in(loss_type, beta, label_smoothing=0.0, simpo_gamma=0.5):
    return stand_in(alpha=0.0, loss_type=loss_type, beta=beta, label_smoothing=label_smoothing,
                    simpo_gamma=simpo_gamma)


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_conservative_dpo_matches_trls_smoothed_sigmoid(eps):
    # trl 1.16's DPOTrainer ignores label_smoothing for "sigmoid"; CPOTrainer's sigmoid loss is the
    # conservative one on its input difference, so fed the log-ratios it is conservative DPO.
    g = torch.Generator().manual_seed(2)
    c, r, rc, rr = (torch.randn(32, generator=g, dtype=torch.float64) * 5 for _ in range(4))
    theirs, _, _ = CPOTrainer.cpo_loss(cpo_stand_in("sigmoid", 0.3, eps), c - rc, r - rr)
    ours = dpo_loss(c, r, rc, rr, beta=0.3, label_smoothing=eps, reduction="none")
    torch.testing.assert_close(ours, theirs, **F64)


# ------------------------------------------------------------------------- reference-free losses


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo"])
def test_cpo_matches_trl(loss_type):
    g = torch.Generator().manual_seed(3)
    c, r = (-torch.rand(16, generator=g, dtype=torch.float64) * 40 for _ in range(2))
    nll = torch.tensor(1.7, dtype=torch.float64)
    losses, _, _ = CPOTrainer.cpo_loss(cpo_stand_in(loss_type, 0.2), c, r)
    zeros = torch.zeros_like(c)
    ours = dpo_loss(c, r, zeros, zeros, beta=0.2, loss_type=loss_type, reduction="none")
    torch.testing.assert_close(ours, losses, **F64)
    if loss_type == "sigmoid":  # trl's total: losses.mean() + cpo_alpha * nll
        torch.testing.assert_close(cpo_loss(c, r, nll, beta=0.2, alpha=0.7), losses.mean() + 0.7 * nll, **F64)


@pytest.mark.parametrize("beta,gamma,eps", [(2.0, 0.5, 0.0), (2.5, 1.4, 0.0), (10.0, 3.0, 0.1)])
def test_simpo_matches_trl(beta, gamma, eps):
    g = torch.Generator().manual_seed(4)
    c_mean, r_mean = (-torch.rand(16, generator=g, dtype=torch.float64) * 3 for _ in range(2))
    theirs, _, _ = CPOTrainer.cpo_loss(cpo_stand_in("simpo", beta, eps, gamma), c_mean, r_mean)
    ours = simpo_loss(c_mean, r_mean, beta=beta, gamma=gamma, label_smoothing=eps, reduction="none")
    torch.testing.assert_close(ours, theirs, **F64)


@pytest.mark.parametrize("lam", [0.1, 0.5])
def test_orpo_matches_trl(lam):
    g = torch.Generator().manual_seed(5)
    c_mean = -torch.rand(16, generator=g) * 4 - 1e-3  # float32: trl's odds_ratio_loss casts to it
    r_mean = -torch.rand(16, generator=g) * 4 - 1e-3
    c_mean[0], r_mean[0] = -1e-6, -30.0  # both ends of log(1 - exp(x))
    nll = torch.tensor(2.3)
    trainer = stand_in(beta=lam)
    losses, *_ = ORPOTrainer.odds_ratio_loss(trainer, c_mean, r_mean)
    torch.testing.assert_close(orpo_odds_ratio_loss(c_mean, r_mean, reduction="none"), -losses / lam, **F32)
    torch.testing.assert_close(orpo_loss(c_mean, r_mean, nll, lam=lam), nll - losses.mean(), **F32)


# ------------------------------------------------------------------------------------- KTO


@pytest.mark.parametrize("beta,weights,kl_shift", [(0.1, (1.0, 1.0), 0.5), (0.5, (1.0, 1.33), 0.5),
                                                   (0.2, (0.8, 1.0), -0.5)])
def test_kto_matches_trl(beta, weights, kl_shift):
    """``kl_shift`` < 0 makes the KL estimate negative, so both sides must clamp it at 0."""
    g = torch.Generator().manual_seed(6)
    per_token, mask = random_completions(g, 12, 10)
    kl_per_token, kl_mask = random_completions(g, 12, 11)
    ref_logps = sums_and_means(per_token, mask)[0] + torch.randn(12, generator=g, dtype=torch.float64)
    ref_kl_logps = sums_and_means(kl_per_token, kl_mask)[0] + kl_shift
    label = torch.tensor([True, False, True, True, False, False, True, False, False, True, True, False])
    ids, kl_ids = torch.zeros(mask.shape, dtype=torch.long), torch.zeros(kl_mask.shape, dtype=torch.long)
    trainer = stand_in(calculate_KL=True, precompute_ref_logps=True, loss_type="kto", beta=beta,
                       desirable_weight=weights[0], undesirable_weight=weights[1])
    trainer._compute_kl_logps = types.MethodType(KTOTrainer._compute_kl_logps, trainer)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": mask, "label": label,
              "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(kl_ids), "KL_completion_mask": kl_mask,
              "ref_logps": ref_logps, "ref_KL_logps": ref_kl_logps}
    theirs = KTOTrainer._compute_loss(trainer, fused_lm({id(ids): per_token, id(kl_ids): kl_per_token}), inputs, False)
    z0 = kto_reference_point(sums_and_means(kl_per_token, kl_mask)[0], ref_kl_logps)
    assert z0.item() == pytest.approx(trainer._metrics["train"]["kl"][0], abs=1e-12)
    assert (z0 == 0).item() == (kl_shift > 0)
    ours = kto_loss(sums_and_means(per_token, mask)[0], ref_logps, label, reference_point=z0, beta=beta,
                    desirable_weight=weights[0], undesirable_weight=weights[1])
    torch.testing.assert_close(ours, theirs, **F64)


# ------------------------------------------------------------------------------ reward model


@pytest.mark.parametrize("with_margin", [False, True])
def test_bradley_terry_matches_trls_reward_trainer(with_margin):
    g = torch.Generator().manual_seed(7)
    rewards = torch.randn(2 * 10, 1, generator=g, dtype=torch.float64) * 2  # chosen rows, then rejected
    ids = torch.zeros(20, 5, dtype=torch.long)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    margin = torch.rand(10, generator=g, dtype=torch.float64)
    if with_margin:
        inputs["margin"] = margin
    trainer = stand_in(args=SimpleNamespace(center_rewards_coefficient=None))
    theirs = RewardTrainer.compute_loss(trainer, lambda **kw: SimpleNamespace(logits=rewards), inputs)
    ours = bradley_terry_loss(*rewards.squeeze(-1).chunk(2), margin=margin if with_margin else None)
    torch.testing.assert_close(ours, theirs, **F64)


# ------------------------------------------------------------------------- GRPO and RLOO


def policy_rollout(g, batch, seq, dtype=torch.float64):
    """Per-token log-probs of a policy, of the policy that sampled (old) and of the reference, with
    ratios up to e^±0.4 so that some tokens fall outside the clip range."""
    logp = (-torch.rand(batch, seq, generator=g, dtype=dtype) * 3).requires_grad_(True)
    old = logp.detach() + (torch.rand(batch, seq, generator=g, dtype=dtype) - 0.5) * 0.8
    ref = logp.detach() + torch.randn(batch, seq, generator=g, dtype=dtype) * 0.3
    lengths = torch.randint(1, seq + 1, (batch,), generator=g)
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    return logp, old, ref, mask


def per_token_logps_returning(logp):
    def method(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        return logp, torch.zeros_like(logp), None

    return method


@pytest.mark.parametrize("beta,eps_low,eps_high", [(0.04, 0.2, 0.2), (0.0, 0.2, 0.28), (0.1, 0.1, 0.3)])
def test_grpo_loss_matches_trl(beta, eps_low, eps_high):
    g = torch.Generator().manual_seed(8)
    logp, old, ref, mask = policy_rollout(g, 8, 7)
    advantages = torch.randn(8, generator=g, dtype=torch.float64)
    trainer = stand_in(
        _get_per_token_logps_and_entropies=per_token_logps_returning(logp), top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, importance_sampling_level="token", beta=beta, loss_type="grpo",
        epsilon_low=eps_low, epsilon_high=eps_high, use_vllm=False, vllm_importance_sampling_correction=False,
        current_gradient_accumulation_steps=1, _entropy_bonus_enabled=False,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None))
    prompt = torch.zeros(8, 3, dtype=torch.long)
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt), "completion_ids": torch.zeros_like(mask),
              "completion_mask": mask, "advantages": advantages, "old_per_token_logps": old,
              "ref_per_token_logps": ref}
    theirs = GRPOTrainer._compute_loss(trainer, None, inputs)
    ours = grpo_loss(logp, old, ref, advantages, mask, clip_eps=eps_low, clip_eps_high=eps_high, beta=beta)
    torch.testing.assert_close(ours, theirs, **F64)
    grads = [torch.autograd.grad(x, logp, retain_graph=True)[0] for x in (ours, theirs)]
    torch.testing.assert_close(*grads, **F64)


def test_grpo_advantages_match_trls_formula():
    # trl computes them inline in _generate_and_score_completions (group "scale_rewards"):
    # (r - nanmean(group)) / (nanstd(group) + 1e-4), nanstd with Bessel's correction.
    g = torch.Generator().manual_seed(9)
    rewards = torch.randn(6 * 4, generator=g, dtype=torch.float64)
    rewards[8:12] = 1.0  # a group where every sample scores the same
    grouped = rewards.view(-1, 4)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(4)
    std = nanstd(grouped, dim=1).repeat_interleave(4)
    theirs = (rewards - mean) / (std + 1e-4)
    torch.testing.assert_close(grpo_advantages(grouped).flatten(), theirs, **F64)
    torch.testing.assert_close(grpo_advantages(grouped, scale=False).flatten(), rewards - mean, **F64)


def test_rloo_matches_trl():
    g = torch.Generator().manual_seed(10)
    # advantages: trl's inline formula, rewards - (group sum - rewards) / (k - 1)
    rewards = torch.randn(5, 4, generator=g, dtype=torch.float64)
    theirs = rewards - (rewards.sum(1, keepdim=True) - rewards) / 3
    torch.testing.assert_close(rloo_advantages(rewards), theirs, **F64)
    # loss: RLOOTrainer clips the ratio of whole-sequence probabilities
    logp, old_tok, _, mask = policy_rollout(g, 8, 6)
    old_logps = (old_tok * mask).sum(1)
    advantages = torch.randn(8, generator=g, dtype=torch.float64)
    trainer = stand_in(_get_per_token_logps_and_entropies=per_token_logps_returning(logp), epsilon_low=0.2,
                       epsilon_high=0.25)
    prompt = torch.zeros(8, 2, dtype=torch.long)
    inputs = {"prompt_ids": prompt, "prompt_mask": torch.ones_like(prompt), "completion_ids": torch.zeros_like(mask),
              "completion_mask": mask, "old_logps": old_logps, "advantages": advantages}
    theirs = RLOOTrainer._compute_loss(trainer, None, inputs)
    ours = ppo_policy_loss((logp * mask).sum(1), old_logps, advantages, clip_eps=0.2, clip_eps_high=0.25)
    torch.testing.assert_close(ours, theirs, **F64)
    grads = [torch.autograd.grad(x, logp, retain_graph=True)[0] for x in (ours, theirs)]
    torch.testing.assert_close(*grads, **F64)
