"""Chapter 19 (alignment): a preference task on the zoo's character GPT, a reward model, and
DPO, IPO, KTO, ORPO, PPO and GRPO compared by true reward against KL from the start."""
