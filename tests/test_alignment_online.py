"""roadmap_lib.alignment.online: the PPO, GRPO/RLOO and online-DPO loops on a tiny GPT.

The losses inside these loops are checked against trl in test_alignment_trl.py; here the loops
themselves: what a rollout records, that a group whose rewards are all equal teaches nothing, and
that each loop raises a reward that a policy can trivially maximise (the fraction of completion
tokens equal to one token id) while the KL from the reference grows from 0.
"""

import copy

import pytest
import torch

from roadmap_lib.alignment import (
    PPOConfig,
    ValueModel,
    completion_logprobs,
    dpo_loss,
    group_step,
    online_dpo_step,
    ppo_step,
    rollout,
    token_logprobs,
)
from roadmap_lib.models import GPT, GPTConfig

TARGET, VOCAB, T = 3, 8, 6


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, context_length=16, d_model=16, n_layers=1, n_heads=2)).eval()


def target_fraction(ids, prompt_len):
    return (ids[:, prompt_len:] == TARGET).float().mean(-1)


def prompts(n=8, seed=0):
    return torch.randint(0, VOCAB, (n, 3), generator=torch.Generator().manual_seed(seed))


def frozen(model):
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def test_rollout_records_the_sampling_policys_and_the_references_logprobs():
    policy, other = tiny_gpt(0), tiny_gpt(1)
    batch = rollout(policy, other, target_fraction, prompts(), T, generator=torch.Generator().manual_seed(0))
    assert batch.ids.shape == (8, 3 + T) and batch.completions.shape == (8, T)
    torch.testing.assert_close(batch.ids[:, :3], prompts())
    with torch.no_grad():
        torch.testing.assert_close(batch.logp, token_logprobs(policy(batch.ids), batch.ids)[:, 2:])
        torch.testing.assert_close(batch.ref_logp, completion_logprobs(other, batch.ids, 3))
    torch.testing.assert_close(batch.scores, target_fraction(batch.ids, 3))
    torch.testing.assert_close(batch.kl(), (batch.logp - batch.ref_logp).sum(-1))
    same = rollout(policy, policy, target_fraction, prompts(), T, generator=torch.Generator().manual_seed(0))
    assert (same.kl() == 0).all()
    torch.testing.assert_close(same.ids, batch.ids)  # the seed fixes the samples


def test_value_model_starts_at_zero_and_has_one_value_per_position():
    lm = tiny_gpt()
    vm = ValueModel(lm)
    ids = prompts()
    assert vm(ids).shape == ids.shape and (vm(ids) == 0).all()
    assert lm.lm_head.weight.shape == (VOCAB, 16)  # the LM it copied is untouched


def test_a_group_with_equal_rewards_teaches_nothing():
    policy = tiny_gpt()
    before = copy.deepcopy(policy.state_dict())
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for estimator in ("grpo", "rloo"):
        stats = group_step(policy, frozen(policy), lambda ids, p: torch.ones(ids.shape[0]), prompts(4), opt,
                           max_new_tokens=T, group_size=4, estimator=estimator, beta=0.0,
                           generator=torch.Generator().manual_seed(0))
        assert stats["loss"] == 0.0
    for k, v in policy.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_online_dpo_drops_ties_and_then_does_not_update():
    policy = tiny_gpt()
    before = copy.deepcopy(policy.state_dict())
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    stats = online_dpo_step(policy, frozen(policy), lambda ids, p: torch.zeros(ids.shape[0]), prompts(4), opt,
                            max_new_tokens=T, generator=torch.Generator().manual_seed(0))
    assert stats["pairs"] == 0 and stats["loss"] != stats["loss"]  # nan: nothing to learn from
    for k, v in policy.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_online_dpo_loss_is_dpo_on_the_reward_ordered_pairs():
    policy = tiny_gpt()
    ref = frozen(tiny_gpt(1))
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    g = torch.Generator().manual_seed(3)
    stats = online_dpo_step(policy, ref, target_fraction, prompts(8), opt, max_new_tokens=T, beta=0.2, generator=g)
    batch = rollout(policy, ref, target_fraction, prompts(8).repeat_interleave(2, 0), T,
                    generator=torch.Generator().manual_seed(3))
    s = batch.scores.view(-1, 2)
    keep = s[:, 0] != s[:, 1]
    win = torch.where(s[:, 0] > s[:, 1], 0, 1)
    pol, ref_ = batch.logp.sum(-1).view(-1, 2), batch.ref_logp.sum(-1).view(-1, 2)
    rows = torch.arange(8)
    want = dpo_loss(pol[rows, win][keep], pol[rows, 1 - win][keep], ref_[rows, win][keep],
                    ref_[rows, 1 - win][keep], beta=0.2)
    assert stats["pairs"] == keep.sum().item() > 0
    assert stats["loss"] == pytest.approx(want.item(), abs=1e-5)


def _train(step_fn, steps=25, seed=0):
    torch.manual_seed(seed)
    policy, ref = tiny_gpt(seed), frozen(tiny_gpt(seed))
    extra = {}
    params = list(policy.parameters())
    if step_fn is ppo_step:
        extra["value_model"] = ValueModel(policy)
        params += list(extra["value_model"].parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    start = rollout(policy, ref, target_fraction, prompts(64, seed=99), T, generator=torch.Generator().manual_seed(1))
    for step in range(steps):
        p = prompts(8, seed=step)
        if step_fn is ppo_step:
            ppo_step(policy, extra["value_model"], ref, target_fraction, p, opt, max_new_tokens=T,
                     config=PPOConfig(kl_coef=0.01), generator=g)
        elif step_fn is online_dpo_step:
            online_dpo_step(policy, ref, target_fraction, p, opt, max_new_tokens=T, beta=0.5, generator=g)
        else:
            group_step(policy, ref, target_fraction, p, opt, max_new_tokens=T, group_size=4, estimator=step_fn,
                       beta=0.01, generator=g)
    end = rollout(policy, ref, target_fraction, prompts(64, seed=99), T, generator=torch.Generator().manual_seed(1))
    return start, end


@pytest.mark.parametrize("step_fn", [ppo_step, "grpo", "rloo", online_dpo_step],
                         ids=["ppo", "grpo", "rloo", "online_dpo"])
def test_each_loop_raises_a_trivially_maximisable_reward(step_fn):
    start, end = _train(step_fn)
    # the start samples token 3 about 1/8 of the time (measured 0.13); after 25 steps at lr 1e-2
    # every loop samples it almost always (measured 0.99 to 1.0), and the policy has moved far from
    # the reference (measured 11.2 to 11.3 nats per 6-token completion)
    assert start.scores.mean() < 0.2
    assert end.scores.mean() > 0.95
    assert start.kl().abs().max() == 0 and end.kl().mean() > 8


def test_input_errors_name_the_argument():
    policy = tiny_gpt()
    opt = torch.optim.Adam(policy.parameters())
    with pytest.raises(ValueError, match="prompts: expected a \\(batch, prompt_len >= 1\\) int64"):
        rollout(policy, policy, target_fraction, prompts().float(), T)
    with pytest.raises(ValueError, match="max_new_tokens: expected an int >= 1, got 0"):
        rollout(policy, policy, target_fraction, prompts(), 0)
    with pytest.raises(ValueError, match=r"reward_fn: expected rewards of shape \(8,\), got \(8, 1\)"):
        rollout(policy, policy, lambda ids, p: torch.zeros(ids.shape[0], 1), prompts(), T)
    with pytest.raises(ValueError, match="group_size: expected an int >= 2"):
        group_step(policy, policy, target_fraction, prompts(), opt, max_new_tokens=T, group_size=1)
    with pytest.raises(ValueError, match="estimator: expected one of 'grpo', 'rloo', got 'ppo'"):
        group_step(policy, policy, target_fraction, prompts(), opt, max_new_tokens=T, estimator="ppo")
    with pytest.raises(ValueError, match="prompt_len: expected 1 <= prompt_len < 9"):
        completion_logprobs(policy, torch.zeros(2, 9, dtype=torch.long), 9)
    with pytest.raises(ValueError, match="epochs: expected an int >= 1, got 0"):
        PPOConfig(epochs=0)
    with pytest.raises(ValueError, match="clip_eps: expected a number in \\[0.0, 1.0\\), got 1.5"):
        PPOConfig(clip_eps=1.5)
    with pytest.raises(TypeError, match="lm: expected a causal LM with an nn.Linear `lm_head`"):
        ValueModel(torch.nn.Linear(2, 2))
