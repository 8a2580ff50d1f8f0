"""Alignment (chapter 19): teach a pretrained LM what people prefer.

- :mod:`.logprobs`: log π(completion | prompt) of a causal LM, ours or a transformers one;
- :mod:`.reward`: Bradley–Terry reward models, a scalar reward head, process-reward aggregation;
- :mod:`.preference`: DPO and relatives (IPO, hinge/SLiC, robust, conservative), ORPO, SimPO, CPO, KTO;
- :mod:`.policy_gradient`: GAE, PPO's clipped objectives and KL penalties, GRPO, RLOO;
- :mod:`.online`: the loops that sample from the policy and use those losses: PPO with a value
  head, GRPO/RLOO with groups of samples, online DPO.

Every loss takes plain tensors (sequence or per-token log-probs, rewards, masks). Where trl has an
implementation (DPO and relatives, ORPO, SimPO, CPO, KTO, the reward loss, GRPO, RLOO) the tests
compare with it on the same tensors (``tests/test_alignment_trl.py``); GAE and PPO, which trl no
longer ships, are compared with the papers' formulas written out as loops.
"""

from .logprobs import (
    collate_completions,
    completion_token_logprobs,
    logprobs_from_logits,
    sequence_logprobs,
    token_logprobs,
)
from .online import (
    PPOConfig,
    Rollout,
    ValueModel,
    completion_logprobs,
    group_step,
    online_dpo_step,
    ppo_step,
    ppo_update,
    rollout,
)
from .policy_gradient import (
    clipped_surrogate,
    discounted_returns,
    gae,
    grpo_advantages,
    grpo_loss,
    kl_estimate,
    kl_penalized_rewards,
    masked_reduce,
    ppo_policy_loss,
    ppo_value_loss,
    reinforce_loss,
    rloo_advantages,
    whiten,
)
from .preference import (
    DPO_LOSS_TYPES,
    cpo_loss,
    dpo_loss,
    dpo_loss_fn,
    implicit_rewards,
    kto_loss,
    kto_reference_point,
    log1mexp,
    orpo_loss,
    orpo_odds_ratio_loss,
    preference_metrics,
    simpo_loss,
)
from .reward import (
    RewardModel,
    aggregate_step_rewards,
    bradley_terry_loss,
    last_token_index,
    last_token_pool,
    reward_accuracy,
)

__all__ = [
    "DPO_LOSS_TYPES",
    "PPOConfig",
    "RewardModel",
    "Rollout",
    "ValueModel",
    "aggregate_step_rewards",
    "bradley_terry_loss",
    "clipped_surrogate",
    "collate_completions",
    "completion_logprobs",
    "completion_token_logprobs",
    "cpo_loss",
    "discounted_returns",
    "dpo_loss",
    "dpo_loss_fn",
    "gae",
    "group_step",
    "grpo_advantages",
    "grpo_loss",
    "implicit_rewards",
    "kl_estimate",
    "kl_penalized_rewards",
    "kto_loss",
    "kto_reference_point",
    "last_token_index",
    "last_token_pool",
    "log1mexp",
    "logprobs_from_logits",
    "masked_reduce",
    "online_dpo_step",
    "orpo_loss",
    "orpo_odds_ratio_loss",
    "ppo_policy_loss",
    "ppo_step",
    "ppo_update",
    "ppo_value_loss",
    "preference_metrics",
    "reinforce_loss",
    "reward_accuracy",
    "rloo_advantages",
    "rollout",
    "sequence_logprobs",
    "simpo_loss",
    "token_logprobs",
    "whiten",
]
