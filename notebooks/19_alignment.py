# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 19. Alignment: reward models, PPO, GRPO and DPO on a small preference task
#
# **What you will learn**
#
# - how a preference ("this completion is better than that one") becomes a training signal: the
#   Bradley–Terry model {cite}`bradley1952rank` and a learned **reward model**
#   {cite}`christiano2017deep,stiennon2020learning`;
# - RLHF as InstructGPT ran it {cite}`ziegler2019fine,ouyang2022training`: sample from the policy,
#   score with the reward model, subtract a KL penalty to the frozen start, and update with PPO
#   {cite}`schulman2017proximal` (a value head and GAE {cite}`schulman2016gae`); and the value-free
#   group methods GRPO {cite}`shao2024deepseekmath` and RLOO {cite}`ahmadian2024basics`;
# - DPO {cite}`rafailov2023dpo`, which skips the reward model and the sampling, and its relatives IPO
#   {cite}`azar2024ipo`, KTO {cite}`ethayarajh2024kto` and ORPO {cite}`hong2024orpo`, plus online DPO
#   {cite}`guo2024online`;
# - how to compare them honestly: the true reward reached against the KL spent to reach it, over 3
#   seeds, and what happens when a learned reward is optimised too hard {cite}`gao2023scaling`;
# - outcome rewards (the final answer is right) against process rewards (every step is right)
#   {cite}`uesato2022process,lightman2024verify`, used to pick the best of $n$ multi-step solutions.
#
# **What you need**: the character-level GPT of chapter 07 (the start of every method here),
# sampling from chapter 18 (temperature 1, a KV cache), and cross-entropy from chapter 04.
#
# **Run time**: about 60–90 s on a laptop CPU: one live DPO run that reproduces a recorded one, the
# reward model's accuracy, the process-versus-outcome selection experiment (3 seeds, a few seconds),
# and the exercise that trains DPO at two values of β. The full comparison
# (6 methods × 3 seeds and a long over-optimisation run, several minutes) is a shipped results
# file, rebuilt by `python -m roadmap_lib build alignment-results`.

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from ipywidgets import FloatLogSlider, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch19_alignment.artifacts import (
    OVEROPT,
    TOL,
    load_pairs,
    load_results,
    load_reward_model,
)
from roadmap_lib.chapters.ch19_alignment.exercises import check_dpo_loss, check_leave_one_out
from roadmap_lib.chapters.ch19_alignment.experiments import (
    Setup,
    reward_model_accuracy,
    run_method,
    summary,
)
from roadmap_lib.chapters.ch19_alignment.plots import (
    curve_stats,
    plot_dpo_family,
    plot_kl_vs_reward,
    plot_overoptimisation,
    plot_overoptimisation_seeds,
    table_markdown,
)
from roadmap_lib.chapters.ch19_alignment.task import (
    COMPLETION_LEN,
    PROMPT_LEN,
    prompts,
    real_word_fraction,
    true_reward_fn,
)
from roadmap_lib.exercises import check_true
from roadmap_lib.generation import sample
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)  # a model this small runs as fast on one thread, and steadily on a busy CPU
# %matplotlib inline

# %% [markdown]
# ## 1. A preference task we can grade exactly
#
# Real alignment data is people choosing between two answers. We need a preference that a program
# can state exactly, so that every method can be graded by the same rule its training labels came
# from. Our start model is the zoo's character GPT, trained on the Jargon File; it writes
# plausible-looking text full of invented words. The preference: **prefer completions made of real
# words**. A completion's *true reward* is the fraction of its non-space characters that belong to
# words of the corpus vocabulary (letter runs seen at least 3 times in the Jargon File); digits,
# punctuation and misspellings count against it.

# %%
start, vocab, _ = load_char_gpt()
for text in ["the hacker wrote", "the hackre wrot", "{kludge}: 42"]:
    print(f"{text!r:22} true reward {real_word_fraction(text):.3f}")

# %% [markdown]
# A task is a prompt of 16 characters of held-out text, starting at a word; a completion is the
# next 16 characters the model samples (temperature 1). Here are the start model's completions of
# the first four held-out prompts (seed 0), with their true rewards:

# %%
test_prompts = prompts(vocab, 4, split="test", seed=0)
out = sample(start, test_prompts, COMPLETION_LEN, generator=torch.Generator().manual_seed(0), use_cache=True)
truth = true_reward_fn(vocab)
for row, r in zip(out, truth(out, PROMPT_LEN)):
    print(f"{vocab.decode(row[:PROMPT_LEN].tolist())!r:20} -> {vocab.decode(row[PROMPT_LEN:].tolist())!r:20} "
          f"true reward {r:.2f}")

# %% [markdown]
# About half of what it writes are real words: room to improve, and a ceiling (1.0) far away.
#
# ## 2. From preferences to a reward model
#
# The preference data is what a labelling team would produce: the start model wrote two completions
# for each of 1024 training prompts, and the ground truth marked the better one **chosen**, the other
# **rejected** (ties dropped). The shipped file holds these pairs (built by the command above), and a
# held-out set made the same way from test prompts. The first three training pairs:

# %%
results = load_results()
train_pairs, test_pairs = load_pairs()
for i in range(3):
    c, r = train_pairs.chosen[i], train_pairs.rejected[i]
    print(f"prompt {vocab.decode(c[:PROMPT_LEN].tolist())!r}\n  chosen   {vocab.decode(c[PROMPT_LEN:].tolist())!r} "
          f"({train_pairs.chosen_reward[i]:.2f})\n  rejected {vocab.decode(r[PROMPT_LEN:].tolist())!r} "
          f"({train_pairs.rejected_reward[i]:.2f})")
print(f"{len(train_pairs)} training pairs, {len(test_pairs)} held-out pairs")

# %% [markdown]
# **Bradley–Terry.** Model the probability that a rater prefers $y_w$ to $y_l$ as
# $\sigma(r(x, y_w) - r(x, y_l))$ for some score $r$; fitting $r$ by maximum likelihood is the loss
#
# $$\mathcal L_{RM} = -\log \sigma\big(r_\phi(x, y_w) - r_\phi(x, y_l)\big).$$
#
# The reward model $r_\phi$ is the start GPT with its vocabulary head swapped for one linear unit,
# read at the last token (`roadmap_lib.alignment.RewardModel`, the layout of transformers'
# `...ForSequenceClassification`), trained for one epoch on the training pairs. Its quality is the
# fraction of *held-out* pairs it orders like the ground truth:

# %%
rm = load_reward_model(start)
rm_test_acc = reward_model_accuracy(rm, test_pairs)
print(f"reward model accuracy on held-out pairs: {rm_test_acc:.3f} "
      f"(recorded {results['reward_model']['test_accuracy']:.3f}; chance 0.5)")
assert abs(rm_test_acc - results["reward_model"]["test_accuracy"]) <= TOL["accuracy"]
n_test = len(test_pairs)
chance_sd = 0.5 / n_test**0.5  # std of a coin's accuracy on this many pairs
assert rm_test_acc > 0.5 + 3 * chance_sd, "the reward model should beat a coin by more than 3 standard deviations"
assert abs(rm_test_acc - 2 / 3) < 0.03  # "about two pairs in three", below

# %% [markdown]
# The reward model orders about two held-out pairs in three correctly: far better than a coin, far
# from perfect. Spelling is a hard property to read off one 128-number summary of 32 characters. This is the reward the RL methods below will optimise.
#
# ## 3. RLHF: PPO against the learned reward
#
# RLHF treats the completion as an episode and each character as an action. The reward is the
# reward model's score at the end, minus a penalty for drifting from the start model $\pi_{ref}$ on
# every token (InstructGPT's recipe):
#
# $$r_t = -\beta \big(\log \pi_\theta(y_t \mid x, y_{<t}) - \log \pi_{ref}(y_t \mid x, y_{<t})\big)
#   + [t = T]\, r_\phi(x, y).$$
#
# A value head $V$ (a second copy of the GPT with a scalar head) estimates the return from each
# position, GAE turns rewards and values into advantages $A_t$, and PPO maximises the clipped
# surrogate $\min(\rho_t A_t, \operatorname{clip}(\rho_t, 1-\epsilon, 1+\epsilon) A_t)$ with
# $\rho_t = \pi_\theta / \pi_{old}$ for a couple of epochs on each batch of samples. One iteration is
# `roadmap_lib.alignment.ppo_step`; read it top to bottom in `roadmap_lib/alignment/online.py`:
# `rollout` (sample, score, record log-probs) then `ppo_update`.
#
# **GRPO** drops the value head: it samples a *group* of completions per prompt and uses each one's
# reward standardised within its group as the advantage of all its tokens, with the KL to
# $\pi_{ref}$ added to the loss instead of the reward. **RLOO** subtracts the mean of the *other*
# samples of the group (an unbiased baseline). Both are `roadmap_lib.alignment.group_step`. Their
# loss pieces are checked against trl in `tests/test_alignment_trl.py`, and each loop is tested to
# drive a trivially maximisable reward to its ceiling in `tests/test_alignment_online.py`.
#
# ## 4. DPO: the reward model was inside the policy all along
#
# The KL-regularised objective $\max_\pi \mathbb E[r(x,y)] - \beta\, \mathrm{KL}(\pi \| \pi_{ref})$
# has a closed-form optimum, $\pi^*(y \mid x) \propto \pi_{ref}(y \mid x)\, e^{r(x,y)/\beta}$. Solve it
# for $r$, $r(x, y) = \beta \log \frac{\pi^*(y|x)}{\pi_{ref}(y|x)} + \text{const}(x)$, put that into
# the Bradley–Terry loss, and the constant cancels between $y_w$ and $y_l$:
#
# $$\mathcal L_{DPO} = -\log \sigma\Big(\beta \log \tfrac{\pi_\theta(y_w|x)}{\pi_{ref}(y_w|x)}
#    - \beta \log \tfrac{\pi_\theta(y_l|x)}{\pi_{ref}(y_l|x)}\Big).$$
#
# No reward model, no sampling: a classification loss on the preference pairs, where
# $\beta \log \pi_\theta / \pi_{ref}$ plays the reward (the *implicit reward*). IPO replaces the
# log-sigmoid by a squared distance to a target margin $1/(2\beta)$ (so it stops pushing), KTO scores
# single completions as desirable or not around a reference point, and ORPO adds an odds-ratio term
# to plain fine-tuning on the chosen completions, with no reference model at all. Our losses are
# compared with trl's (`DPOTrainer`, `KTOTrainer`, `ORPOTrainer`, ...) on the same log-probs, values
# and gradients, in `tests/test_alignment_trl.py`.

# %% [markdown]
# ## 5. A live run that reproduces a recorded one
#
# The shipped results were made by running each method from the start model with 3 seeds. Here is
# one of them again, live: DPO with β = 0.1, seed 0, 40 steps of 32 pairs (Adam, learning rate 1e-4),
# then the held-out evaluation: 128 test prompts, one sample each, scored by the ground truth, the
# reward model, the win rate against the start model's sample of the same prompt (ties count ½),
# and the KL from the start model (the mean over samples of $\sum_t \log \pi_\theta - \log
# \pi_{ref}$, in nats per completion).

# %%
setup = Setup(**results["setup"])
prep = {"train": train_pairs, "rm": rm}
live = run_method("dpo", start, vocab, prep, setup, seed=0)
recorded = results["runs"]["dpo"][0]
for key in ("true_reward", "win_rate", "proxy_reward", "kl"):
    print(f"{key:13} live {live[key]:.4f}   recorded {recorded[key]:.4f}")
assert abs(live["true_reward"] - recorded["true_reward"]) <= TOL["reward"]
assert abs(live["kl"] - recorded["kl"]) <= TOL["kl"]

# %% [markdown]
# The tolerances (`TOL`: 0.03 in reward, 0.15 nats in KL) allow for another machine's arithmetic
# flipping a sampled character; on the machine that built the file the numbers are equal.
#
# ## 6. Six methods, three seeds: true reward against KL
#
# Every method starts from the same model and uses the same optimiser and learning rate; the
# offline methods (DPO, IPO, KTO, ORPO) train 40 steps on the preference pairs, the online ones
# (PPO, GRPO) run 25 iterations of 32 samples each against the **learned reward model**, as RLHF
# does, since the ground truth is only known through the labels. β = 0.1 throughout (ORPO's λ).

# %%
display(Markdown(table_markdown(results)))
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
plot_kl_vs_reward(results, axes[0], metric="true_reward")
plot_kl_vs_reward(results, axes[1], metric="win_rate")
plt.tight_layout()
plt.show()

# %%
stats = summary(results)
start_reward = results["start"]["true_reward"]
noise = max(m["true_reward"][1] for m in stats.values())  # the largest std over seeds of any method


def differs(a, b, key="true_reward"):
    """A gap of means counts only if it exceeds twice the larger of the two seed stds."""
    (ma, sa), (mb, sb) = stats[a][key], stats[b][key]
    return abs(ma - mb) > 2 * max(sa, sb)


gains = {m: stats[m]["true_reward"][0] - start_reward for m in stats}
print(f"seed noise (largest std of true reward): {noise:.3f}")
print("gain in true reward over the start:", {m: round(g, 3) for m, g in gains.items()})
# every method but ORPO gains more than 3x the noise; ORPO gains less than that
assert all(gains[m] > 3 * noise for m in ("dpo", "ipo", "kto", "ppo", "grpo"))
assert gains["orpo"] < 3 * noise
assert min(stats, key=lambda m: stats[m]["kl"][0]) == "orpo"
# DPO and KTO: the highest true reward, no difference between them, and the largest KL
top = sorted(stats, key=lambda m: -stats[m]["true_reward"][0])[:2]
assert set(top) == {"dpo", "kto"} and not differs("dpo", "kto")
assert min(stats["dpo"]["kl"][0], stats["kto"]["kl"][0]) > max(stats[m]["kl"][0] for m in ("ipo", "orpo", "ppo", "grpo"))
# PPO on the learned reward: less true reward than DPO (beyond noise), and less KL
assert differs("dpo", "ppo") and stats["ppo"]["true_reward"][0] < stats["dpo"]["true_reward"][0]
assert differs("dpo", "ppo", "kl") and stats["ppo"]["kl"][0] < stats["dpo"]["kl"][0]
# IPO and PPO: no difference in true reward, but IPO gets there with about half the KL
assert not differs("ipo", "ppo") and differs("ipo", "ppo", "kl")
assert stats["ipo"]["kl"][0] < 0.6 * stats["ppo"]["kl"][0]
# PPO and GRPO: no difference in true reward
assert not differs("ppo", "grpo") and stats["grpo"]["kl"][0] < 0.35 * stats["ppo"]["kl"][0]
# the start against itself: within two standard deviations of a fair coin over 128 prompts
assert abs(results["start"]["win_rate"] - 0.5) < 2 * 0.5 / setup.eval_prompts**0.5

# %% [markdown]
# What the table and the figure say, for this regime (a 0.8M-parameter character model, 16-character
# completions, 40 offline steps or 25 online iterations, β = 0.1, 3 seeds; a gap counts only if it
# exceeds twice the larger seed std, otherwise it is reported as no difference):
#
# - Every method but ORPO raised the held-out true reward well above the start's. ORPO, whose
#   preference term is a small addition (λ = 0.1) to fine-tuning on the chosen completions, barely
#   moved in 40 steps and stayed closest to the start.
# - DPO and KTO reached the highest true reward, with no difference between them; they also moved
#   furthest from the start (the largest KL). Learning from the labels directly, they never see the
#   reward model's mistakes.
# - PPO and GRPO only know the preference through the reward model. PPO ended with less true reward
#   than DPO and less KL; PPO and GRPO show no difference in true reward, GRPO at a third of the KL.
# - IPO matched PPO's true reward (no difference) with about half of PPO's KL: its target margin
#   stops pushing a pair once it is met.
# - The start model against fresh samples of itself does not win exactly one half (the table's first
#   row): that is the noise of a win rate over 128 prompts; read the other win rates against it.
#
# A fair comparison in alignment is a point on these axes, not a single number: true reward bought
# with KL. A smaller β lets DPO travel further from the start (exercise 19.3).
#
# ## 7. Optimising a learned reward too hard
#
# The reward model is right on only part of the held-out pairs; where it is wrong, a policy that
# maximises it gains nothing real. The shipped file holds one long GRPO run (seed 0) against the
# reward model with **no KL penalty** (β = 0) and a 3× larger learning rate, evaluated every 10
# iterations.

# %%
plot_overoptimisation(results)
plt.show()
curve = results["overoptimisation"]["curve"]
for c in curve:
    print(f"step {c['step']:3}: KL {c['kl']:6.2f}  true reward {c['true_reward']:.3f}  "
          f"reward-model score {c['proxy_reward']:.3f}")

# %%
true_curve = torch.tensor([c["true_reward"] for c in curve])
proxy_curve = torch.tensor([c["proxy_reward"] for c in curve])
# on this run the two rose together: their rank correlation along the curve ...
ranks = lambda x: x.argsort().argsort().double()
rho = torch.corrcoef(torch.stack([ranks(true_curve), ranks(proxy_curve)]))[0, 1].item()
print(f"rank correlation of true and proxy reward along the run: {rho:.3f}")
assert rho > 0.95
# ... and the true reward at the end is far above the start's, and close to its best along the run
assert true_curve[-1] > true_curve[0] + 0.4 and true_curve[-1] >= true_curve.max() - 0.01
assert max(c["kl"] for c in curve) > 20

# %% [markdown]
# **With this reward model we did not see over-optimisation.** Along 100 iterations, out to a KL of
# more than 20 nats, the true reward rose with the reward model's score instead of turning down:
# on this task, what this reward model over-rewards is also mostly what the rule rewards.
#
# **A worse reward model.** Fit one to only the first 64 training pairs, four times over: it
# memorises them and orders held-out pairs little better than a coin. Then run the same GRPO
# against it (no KL penalty, 3 seeds, the shipped file `19_overoptimisation.json`, built by
# `python -m roadmap_lib build alignment-overoptimisation`):

# %%
overopt = load_results(name=OVEROPT)
print(f"small reward model: train accuracy {overopt['reward_model']['train_accuracy']:.3f} on its "
      f"{overopt['reward_model']['pairs']} pairs, held-out accuracy {overopt['reward_model']['test_accuracy']:.3f} "
      f"(the full one: {results['reward_model']['test_accuracy']:.3f})")
plot_overoptimisation_seeds(overopt)
plt.show()
steps, true_mean, true_std = curve_stats(overopt["curves"], "true_reward")
_, proxy_mean, proxy_std = curve_stats(overopt["curves"], "proxy_reward")
_, kl_mean, _ = curve_stats(overopt["curves"], "kl")
peak = int(true_mean.argmax())
for i in range(len(steps)):
    print(f"iteration {steps[i]:3}: true reward {true_mean[i]:.3f} ± {true_std[i]:.3f}   "
          f"reward-model score {proxy_mean[i]:.3f} ± {proxy_std[i]:.3f}   KL {kl_mean[i]:5.2f}")

# %%
# the small reward model is worse on held-out pairs than the full one, by more than a coin's noise
assert overopt["reward_model"]["test_accuracy"] < results["reward_model"]["test_accuracy"] - 2 * chance_sd
# its score climbs in every seed: the mean gain is more than twice the seed std at the end ...
assert proxy_mean[-1] - proxy_mean[0] > 2 * proxy_std[-1]
# ... while the true reward at the end is no different from the start's (gap < twice the seed std)
assert abs(true_mean[-1] - true_mean[0]) < 2 * true_std[-1]
# seed 0 (the first, not picked) rose and then fell back: its last value is 0.1 below its peak
seed0 = [c["true_reward"] for c in overopt["curves"][0]]
assert 0 < seed0.index(max(seed0)) < len(seed0) - 1 and seed0[-1] < max(seed0) - 0.1
# with the full reward model, the run above was far higher at the same iteration
full_at_end = next(c["true_reward"] for c in curve if c["step"] == int(steps[-1]))
assert full_at_end > true_mean[-1] + 2 * true_std[-1]

# %% [markdown]
# This is reward over-optimisation (Goodhart's law) in a small form. Against the reward model fitted
# to 64 pairs, the policy raised that model's score steadily in all three seeds, but the true reward
# did not follow: after 80 iterations it is no different from the start's across seeds, with a
# large spread, and in seed 0 it rose for 40 iterations and then fell back. Against the reward model
# fitted to all the pairs, the same 80 iterations raised the true reward far above that. The policy
# climbs whatever the reward model rewards; where that agrees with the rule, the true reward rises,
# and where it does not, the policy finds what the reward model over-rewards. That is the reason
# for the KL penalty, for stopping on a held-out signal, and for better reward models.
# {cite}`gao2023scaling` measure how the true reward turns down as the KL grows on far larger
# models; our runs are 3 seeds of a 0.8M-parameter character model, and the turn-down itself
# appeared in one of them.
#
# **Explore** how β shapes the DPO-family losses as a function of the margin
# $h = \log\frac{\pi_\theta(y_w)}{\pi_{ref}(y_w)} - \log\frac{\pi_\theta(y_l)}{\pi_{ref}(y_l)}$ (a
# pair's loss; the figure below is β = 0.1). DPO's loss keeps falling as $h$ grows, so it always
# rewards pushing the two apart; IPO's has its minimum at $h = 1/(2\beta)$; the hinge loss is flat
# past $h = 1/\beta$.

# %%
plot_dpo_family(0.1)
plt.show()


# %% tags=["nbval-ignore-output", "remove-output"]
def explore(beta=0.1):
    plot_dpo_family(beta)
    plt.show()


interact(explore, beta=FloatLogSlider(value=0.1, base=10, min=-2, max=0, step=0.1));

# %% [markdown]
# ## 8. Process rewards versus outcome rewards
#
# So far a completion got one score at its end. For a multi-step solution there is a choice
# {cite}`uesato2022process,lightman2024verify`: an **outcome reward** (is the final answer right?)
# or a **process reward** (is every step right?). They disagree on a right answer reached by a wrong
# path, and what a reward counts as a success is what a policy trained on it, or a selection made
# with it, will produce more of.
#
# The task is the multi-step sum of `roadmap_lib.reasoning`: add 5 to 8 digits mod 10, writing the
# running sum after each addition, then the answer: `3+5+2+7=` is answered `8,0,7#7.`. The
# solutions come from a **scripted solver**, not a trained model
# (`roadmap_lib/chapters/ch19_alignment/process_rewards.py`), so that every step's truth is known:
# at each step, with probability 0.12, it writes a value off by 1 or 2; then with probability 0.6 it
# carries that wrong value on (the answer goes wrong, unless a later slip cancels it) and with
# probability 0.4 it carries the right value on (a wrong step, a right answer). The rewards, in
# `roadmap_lib.alignment.process`:
#
# - **outcome reward**: 1 if the final answer is right; it needs the answer key;
# - **process reward (exact)**: 1 if every step follows from the line before it (step $k$ is the
#   previous written value plus the $k$-th digit, mod 10) and the answer repeats the last step; it
#   needs only the problem;
# - **learned PRM**: a small MLP (128 hidden units) that reads one step at a time (previous value,
#   digit added, value written) and outputs the probability that it is right, trained on the
#   labelled steps of 400 solutions to other problems; a solution's score is the product of its
#   step probabilities, as Lightman et al. score theirs (`aggregate_step_rewards(..., how="prod")`);
# - **majority vote** {cite}`wang2023selfconsistency`: no reward at all, the most frequent answer.
#
# Each is used for **best-of-n**: sample $n$ solutions per problem, keep the one the reward scores
# highest (the first on ties). We measure, over 200 test problems and 3 seeds, the share of selected
# solutions with the right final answer and the share whose every step is right. The first
# solution of each of the first three test problems of seed 0, with their labels:

# %%
from roadmap_lib.alignment.process import outcome_reward, process_reward, step_labels
from roadmap_lib.chapters.ch19_alignment.plots import plot_selection
from roadmap_lib.chapters.ch19_alignment.process_rewards import (
    SELECTORS,
    demo_solutions,
    run_selection,
    selection_stats,
)
from roadmap_lib.reasoning import prompt as sum_prompt

demo = demo_solutions(seed=0, k=3)
for digits, text in demo:
    print(f"{sum_prompt(digits) + text:24} outcome {outcome_reward(digits, text):.0f}  process "
          f"{process_reward(digits, text):.0f}  step labels {[int(x) for x in step_labels(digits, text)]}")
# what the text below says about them: the first has two wrong steps (the 4th and 6th) and a wrong answer
assert [i for i, ok in enumerate(step_labels(*demo[0]), 1) if not ok] == [4, 6] and outcome_reward(*demo[0]) == 0
assert all(process_reward(*d) == 1 for d in demo[1:])

# %% [markdown]
# The first solution slipped twice and got the answer wrong. Its fifth step counts as right: the
# labels judge each step from the line before it (5 = 7 + 8 mod 10, from the wrong 7), so a process
# reward marks where the reasoning went wrong, not every step downstream of it. The other two are
# right at every step. Now best-of-n with each selector, n = 1 to 16, 3 seeds (a few seconds):

# %%
sel_runs = [run_selection(seed) for seed in range(3)]
plot_selection(sel_runs)
plt.show()
ns = sel_runs[0]["ns"]
sel = {(s, m): selection_stats(sel_runs, s, m) for s in SELECTORS for m in ("answer_accuracy", "path_correct")}
for s in SELECTORS:
    for m in ("answer_accuracy", "path_correct"):
        mean, std = sel[s, m]
        print(f"{s:9} {m:16} " + "  ".join(f"n={n}: {a:.3f}±{b:.3f}" for n, a, b in zip(ns, mean, std)))
single = {k: torch.tensor([r["single"][k] for r in sel_runs]).mean().item() for k in sel_runs[0]["single"]}
prm_acc = torch.tensor([r["prm_step_accuracy"] for r in sel_runs])
print("one sample per problem (mean of 3 seeds):", {k: round(v, 3) for k, v in single.items()})
print(f"learned PRM's step accuracy on test steps: {prm_acc.mean():.3f} ± {prm_acc.std():.3f}")

# %%
i8, i16 = ns.index(8), ns.index(16)


def sel_differs(a, b, metric, i):
    """As in section 6: a gap of means counts only if it exceeds twice the larger seed std."""
    (ma, sa), (mb, sb) = sel[a, metric], sel[b, metric]
    return abs(ma[i] - mb[i]) > 2 * max(sa[i], sb[i])


# one sample: about 70 % right answers, and a quarter or so of them came by a wrong path
assert 0.65 < single["answer_right"] < 0.75
assert 0.2 < single["right_answer_wrong_path"] / single["answer_right"] < 0.33
out_acc, out_path = sel["outcome", "answer_accuracy"][0], sel["outcome", "path_correct"][0]
# outcome selection: every answer right by n = 8, but the share of sound solutions stops rising ...
assert out_acc[i8] > 0.99 and out_path[i16] < 0.8
assert abs(out_path[i16] - out_path[i8]) < 2 * sel["outcome", "path_correct"][1][i8:].max()
# ... at the share of sound paths among one sample's right answers: the filter sees only answers
assert abs(out_path[i16] - single["path_right"] / single["answer_right"]) < 0.05
# the exact process reward selects a sound solution for every problem from n = 8 on
assert sel["process", "path_correct"][0][i8] > 0.99
# the learned PRM is good but not perfect on single steps (about 97 %) ...
assert 0.95 < prm_acc.mean() < 0.99
# ... selects more sound solutions than the outcome reward at n = 8, beyond the noise ...
assert sel_differs("prm", "outcome", "path_correct", i8) and sel["prm", "path_correct"][0][i8] > out_path[i8]
# ... no difference from majority voting in final answers at n = 8, but from n = 8 to n = 16 its
# final-answer accuracy falls (beyond the noise) and majority voting beats it at n = 16
prm_answers, prm_answers_std = sel["prm", "answer_accuracy"]
assert not sel_differs("prm", "majority", "answer_accuracy", i8)
assert prm_answers[i8] - prm_answers[i16] > 2 * max(prm_answers_std[i8], prm_answers_std[i16])
assert sel_differs("prm", "majority", "answer_accuracy", i16) and prm_answers[i16] < sel["majority", "answer_accuracy"][0][i16]

# %% [markdown]
# What the measurements say, for this regime (a scripted solver that slips on 12 % of steps, sums of
# 5 to 8 digits mod 10, 200 problems, 3 seeds; a gap counts only beyond twice the larger seed std):
#
# - **One sample** is right in its final answer about 70 % of the time, and about a quarter of those
#   right answers came by a wrong path: a step written wrong and not used, or two slips that cancel.
# - **Selecting by the outcome reward** makes every final answer right from $n = 8$ on, but the share
#   of selected solutions that are right at every step stops rising below 0.8: it stays at the share
#   of sound paths among a single sample's right answers. The outcome filter cannot see the path, so
#   more candidates buy right answers, not sound reasoning. A policy trained on this reward is paid
#   the same for the wrong paths.
# - **The exact process reward** selects a sound solution for every problem from $n = 8$ on, without
#   the answer key, and with it the right answer.
# - **The learned PRM**, right on about 97 % of single steps, selects more sound solutions than the
#   outcome reward at $n = 8$ (beyond the noise), and at $n = 8$ it shows no difference from
#   **majority voting** in final answers. But from $n = 8$ to $n = 16$ its final-answer accuracy
#   *falls* (beyond the noise), and majority voting beats it at $n = 16$: the more candidates there
#   are, the more likely one of them has a wrong step that the PRM scores high, and best-of-n picks
#   exactly that one. It is the pressure on a learned reward's mistakes of section 7, applied by
#   selection instead of training.
#   Lightman et al. found the opposite ordering, PRM above majority voting, with a PRM trained on
#   800,000 human step labels for a large model on competition mathematics; with our 400 labelled
#   solutions and a scripted solver whose slips are independent (which is what majority voting
#   needs), it did not hold. The measurement says what a PRM must be to help: right on the steps
#   where the candidates go wrong, not only on average.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-19-implicit
# :nonumber:
# ```
# **Exercise 19.1 (DPO from four numbers).** Write `my_dpo_loss(pc, pr, rc, rr, beta)`: the mean DPO
# loss over a batch, from the policy's sequence log-probs of the chosen and rejected completions
# (`pc`, `pr`, each `(batch,)`) and the reference's (`rc`, `rr`). Use `torch.nn.functional.logsigmoid`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The margin is β times the difference of the two log-ratios (policy minus reference), chosen minus rejected; the loss is the mean of $-\log\sigma$(margin).
# ```

# %% [markdown]
# ```{solution-start} ex-19-implicit
# :class: dropdown
# ```

# %%
def my_dpo_loss(pc, pr, rc, rr, beta):
    ### BEGIN SOLUTION
    margin = beta * ((pc - rc) - (pr - rr))
    return -torch.nn.functional.logsigmoid(margin).mean()
    ### END SOLUTION


# %% [markdown]
# The implicit rewards are $\beta(\log\pi - \log\pi_{ref})$ of each completion
# (`roadmap_lib.alignment.implicit_rewards`); the loss is the Bradley–Terry loss on their difference.
#
# ```{solution-end}
# ```

# %%
check_dpo_loss(my_dpo_loss)

# %% [markdown]
# ```{exercise-start}
# :label: ex-19-rloo
# :nonumber:
# ```
# **Exercise 19.2 (RLOO's baseline).** GRPO and RLOO sample $k$ completions per prompt. Write
# `leave_one_out(rewards)` for rewards of shape `(prompts, k)`: each sample's reward minus the mean
# reward of the *other* $k - 1$ samples of its prompt. Why is this baseline allowed to depend on the
# group, but not on the sample itself?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The mean of the *other* samples is the row sum minus the sample itself, divided by $k - 1$; broadcasting with `keepdim=True` does it for every sample at once.
# ```

# %% [markdown]
# ```{solution-start} ex-19-rloo
# :class: dropdown
# ```

# %%
def leave_one_out(rewards):
    ### BEGIN SOLUTION
    k = rewards.shape[1]
    return rewards - (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)
    ### END SOLUTION


# %% [markdown]
# A baseline $b$ may be subtracted from the reward in the policy gradient
# $\mathbb E[(r - b)\nabla \log \pi(y)]$ without bias as long as $b$ does not depend on $y$:
# $\mathbb E[b\, \nabla \log \pi(y)] = b \nabla \sum_y \pi(y) = 0$. The other samples were drawn
# independently of $y$, so their mean qualifies; a mean that includes $y$'s own reward does not.
#
# ```{solution-end}
# ```

# %%
check_leave_one_out(leave_one_out)

# %% [markdown]
# ```{exercise-start}
# :label: ex-19-beta
# :nonumber:
# ```
# **Exercise 19.3 (predict, then measure: β and the KL reached).** DPO's β is the strength of the KL
# regularisation in the objective it is derived from. Train DPO from the start model exactly as in
# section 5 (seed 0, same pairs, but 10 steps and 64 evaluation prompts to save time) with β = 0.02
# and with β = 0.5. *Before running the
# measuring cell*, predict which of the two ends further from the start model (larger KL), and set
# `larger_kl_beta` to `0.02` or `0.5`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# β multiplies the KL term in the objective DPO is derived from: a smaller β makes staying close to the reference cheaper or more expensive?
# ```

# %% [markdown]
# ```{solution-start} ex-19-beta
# :class: dropdown
# ```

# %%
### BEGIN SOLUTION
larger_kl_beta = 0.02
### END SOLUTION

# %% [markdown]
# The smaller β goes further. For one pair, $-\log\sigma(\beta h)$ keeps a slope of about $\beta/2$
# while $\beta h$ is small, so with small β the loss keeps asking for a larger margin $h$ (and Adam
# normalises away the small size of that gradient); with large β, $\sigma(\beta h) \to 1$ after a
# margin of a few $1/\beta$ nats and the gradient fades: the pair is "learned" and stops pulling
# the policy away from the reference. That is β's role in the objective DPO is derived from: the
# price of KL.
#
# ```{solution-end}
# ```

# %%
quick = Setup(**{**results["setup"], "eval_prompts": 64})  # half the evaluation prompts, to save time
measured = {beta: run_method("dpo", start, vocab, prep, quick, seed=0, beta=beta, steps=10) for beta in (0.02, 0.5)}
for beta, m in measured.items():
    print(f"β = {beta}: KL {m['kl']:.3f} nats, true reward {m['true_reward']:.3f}, win rate {m['win_rate']:.3f}")
further = max(measured, key=lambda b: measured[b]["kl"])
check_true(larger_kl_beta == further,
           fail=f"you predicted β = {larger_kl_beta} ends further from the start; the measurement says β = {further}",
           success=f"β = {further} ends further from the start model, as you predicted")
