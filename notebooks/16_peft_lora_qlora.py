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
# # 16. Parameter-efficient fine-tuning: LoRA, DoRA, QLoRA, prompts and IA³
#
# **What you will learn**
#
# - LoRA {cite}`hu2022lora` on one linear layer by hand: a frozen $W$ plus a rank-$r$ update
#   $\frac{\alpha}{r} BA$ that starts at zero, merges into $W$ for free inference and comes back out
#   exactly; and that our LoRA gives the `peft` library's outputs on the same weights;
# - the whole family on one real adaptation, the character-level GPT of chapter 07 (English prose)
#   taught an invented language: full fine-tuning, LoRA at ranks 1, 4 and 16 on two sets of layers,
#   DoRA {cite}`liu2024dora`, QLoRA {cite}`dettmers2023qlora`, prompt tuning {cite}`lester2021prompt`
#   and IA³ {cite}`liu2022ia3`, three seeds each: trainable parameters against quality;
# - QLoRA's two halves: a base frozen in NF4 (about 4.13 bits per weight) with float LoRA factors on
#   top, and why merging the adapter into a 4-bit base is no longer exact;
# - where training memory goes, measured: activations (gradient checkpointing
#   {cite}`chen2016checkpointing`, bfloat16 autocast {cite}`micikevicius2018mixed`), gradients and
#   optimiser states (8-bit Adam {cite}`dettmers2022optimizers`);
# - pruning {cite}`han2015learning` and parameter averaging {cite}`wortsman2022soups` on the
#   fine-tuned model, briefly, with their measured effect.
#
# **What you need**: the decoder-only GPT of chapter 07 (we adapt its shipped checkpoint), AdamW from
# chapter 05 and NF4 from chapter 14.
#
# **Run time**: about 60 s on a laptop CPU, most of it two live fine-tuning runs (200 steps each) and
# the memory measurements. The three-seed sweep itself (33 runs) is a shipped results file, rebuilt by
# `python -m roadmap_lib build 16-peft-sweep`.

# %%
import copy
import math

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from ipywidgets import Dropdown, interact
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from transformers import GPT2Config, GPT2LMHeadModel

from roadmap_lib import data_path, set_seed
from roadmap_lib.chapters.ch16_peft_lora_qlora import study
from roadmap_lib.chapters.ch16_peft_lora_qlora.artifacts import LIVE_METHOD, LIVE_SEED
from roadmap_lib.chapters.ch16_peft_lora_qlora.exercises import (
    check_merge_lora,
    check_quantize_state,
)
from roadmap_lib.chapters.ch16_peft_lora_qlora.experiments import (
    METHODS,
    base_val_loss,
    finetune,
    step_memory,
    time_per_step,
    val_loss,
)
from roadmap_lib.chapters.ch16_peft_lora_qlora.plots import (
    plot_curves,
    plot_memory,
    plot_tradeoff,
    seed_spread,
    table_markdown,
)
from roadmap_lib.data import CharLMData, load_task
from roadmap_lib.exercises import check_close
from roadmap_lib.measure import count_parameters
from roadmap_lib.peft import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    apply_masks,
    from_peft_state_dict,
    frozen_base_nbytes,
    magnitude_masks,
    merge_qlora,
    sparsity,
    uniform_soup,
)
from roadmap_lib.quantization import model_nbytes
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)  # a model this small runs as fast on one thread, and steadily on a busy CPU
# %matplotlib inline

# %% [markdown]
# ## 1. LoRA on one linear layer
#
# Fine-tuning changes a pretrained weight $W_0$ (shape `(out, in)`) into $W_0 + \Delta W$. LoRA
# bets that the useful $\Delta W$ has low rank, as fine-tuning was found to have a low *intrinsic
# dimension* {cite}`li2018intrinsic,aghajanyan2021intrinsic`, and learns it as a product:
#
# $$ y = W_0 x + b + \frac{\alpha}{r}\, B A x, \qquad A \in \mathbb{R}^{r \times \text{in}},\;
#    B \in \mathbb{R}^{\text{out} \times r}. $$
#
# $W_0$ is frozen; only $A$ and $B$ train: $r(\text{in} + \text{out})$ numbers instead of
# $\text{in} \cdot \text{out}$. $A$ starts random and $B$ at zero, so the adapted layer starts
# *equal* to the pretrained one. After training, $W = W_0 + \frac{\alpha}{r} BA$ folds the update
# into the weight (**merge**): inference costs nothing extra. Subtracting it again (**unmerge**)
# gives $W_0$ back, up to float rounding. Here is all of it on one layer, by hand, next to
# `LoRALinear`:

# %%
gen = torch.Generator().manual_seed(0)
layer = torch.nn.Linear(128, 64)
lora = LoRALinear(copy.deepcopy(layer), r=4, alpha=8.0)
x = torch.randn(5, 128, generator=gen)
assert torch.equal(lora(x), layer(x))  # B = 0: the adapter starts as the identity change

with torch.no_grad():  # pretend training moved B
    lora.lora_B.copy_(torch.randn(64, 4, generator=gen) * 0.1)
by_hand = layer(x) + (8.0 / 4) * x @ lora.lora_A.T @ lora.lora_B.T
print("LoRALinear vs by hand:", (lora(x) - by_hand).abs().max().item())
assert torch.allclose(lora(x), by_hand, atol=1e-5)

before = lora(x)
lora.merge()  # W <- W + (alpha / r) B A: the wrapper now runs the base layer alone
merged_out = lora(x)
lora.unmerge()
w_back = (lora.base.weight - layer.weight).abs().max().item()
print(f"merged output vs unmerged: {(merged_out - before).abs().max().item():.2e}; "
      f"W after merge + unmerge vs W0: {w_back:.2e}")
assert torch.allclose(merged_out, before, atol=1e-5) and w_back < 1e-6
print(f"trainable: {count_parameters(lora, trainable_only=True)} = 4 x (128 + 64), "
      f"against {128 * 64} in W")

# %% [markdown]
# ## 2. The same outputs as `peft`
#
# Our `apply_lora` picks layers by name with `peft`'s rule and wraps them. On a randomly initialised
# transformers GPT-2 (built from a config, nothing downloaded) we add LoRA to `c_attn` with both
# libraries, give `peft`'s adapter random non-zero weights, copy them into ours
# (`from_peft_state_dict`) and compare the logits.

# %%
torch.manual_seed(0)
hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=64, n_layer=2, n_head=4,
                                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                bos_token_id=0, eos_token_id=0)).eval()
ours = apply_lora(copy.deepcopy(hf), LoRAConfig(["c_attn"], r=4, alpha=8.0))
theirs = get_peft_model(copy.deepcopy(hf), LoraConfig(target_modules=["c_attn"], r=4, lora_alpha=8,
                                                      fan_in_fan_out=True)).eval()
with torch.no_grad():
    for name, p in theirs.named_parameters():
        if "lora_" in name:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
from_peft_state_dict(ours, get_peft_model_state_dict(theirs), None)
ids = torch.randint(0, 50, (2, 16), generator=gen)
with torch.no_grad():
    gap = (ours(ids).logits - theirs(input_ids=ids).logits).abs().max().item()
    moved = (ours(ids).logits - hf(ids).logits).abs().max().item()
print(f"largest logit difference, ours vs peft: {gap:.1e} (the adapter itself moves them by {moved:.2f})")
assert gap < 1e-5 and moved > 0.1

# %% [markdown]
# (`tests/test_peft_*.py` run the same comparison for DoRA, rsLoRA {cite}`kalajdzievski2023rslora`,
# IA³, prompt and prefix tuning {cite}`li2021prefix`, on GPT-2 and Llama, gradients included.)
#
# ## 3. The experiment: teaching an English model an invented language
#
# The model is chapter 07's character-level GPT: 4 blocks, 128 dimensions, 0.8M parameters, trained on
# the English prose of the Jargon File. The new task is **Zetan**, the invented verb-final language of
# the translation task (`data/tasks/translation`): its sentences, one per line, become a new
# next-character corpus (the last 10 % held out). Zetan's words are syllables of consonants and
# vowels the English model has never seen in that order, so its loss starts high:

# %%
model, vocab, _ = load_char_gpt()
record = study.load(data_path(study.RESULTS))
base_now = base_val_loss()
print(f"before fine-tuning: {base_now:.3f} nats / char on Zetan (recorded: {record['base_val_loss']:.3f})")
assert abs(base_now - record["base_val_loss"]) < 1e-4
print("the first Zetan line of the training split:", load_task("translation", "train")[0]["tgt"])

# %% [markdown]
# Each method starts from the same shipped weights, sees the same batches (8 windows of 32
# characters, seeded) for the same 200 AdamW steps, with a learning rate picked per family on seed 0
# (`experiments.METHODS` lists them). Quality is the validation loss on 25 fixed held-out batches.
# The sweep, three seeds per method, is the shipped results file; its table:

# %%
rows = study.summary(record)
n_params = count_parameters(model)
display(Markdown(table_markdown(rows, n_params)))
noise = seed_spread(rows)
by = {r["method"]: r for r in rows}
print(f"noise: the median standard deviation across seeds is {noise:.3f} nats / char")
print(f"(the last column: seconds per step while the sweep was built, {record['jobs']} runs at a time "
      "on a shared machine; section 5 times a step in this run)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
plot_tradeoff(rows, record["base_val_loss"], ax=axes[0], highlight="lora r=4 qv")
plot_curves(record, "lora r=4 qv", ax=axes[1])
fig.tight_layout()
plt.show()

# %% [markdown]
# Which gaps are real? For two methods $a$ and $b$ the gap of their mean losses has a standard
# error $\sqrt{s_a^2/3 + s_b^2/3}$ from their spreads across the three seeds; we call a gap a
# difference only when it exceeds twice that, and *no difference* otherwise, whatever the means say.

# %%
pairs = [("full", "lora r=4 all"), ("lora r=4 all", "lora r=4 qv"), ("lora r=1 all", "lora r=4 qv"),
         ("lora r=4 qv", "lora r=1 qv"), ("lora r=16 qv", "lora r=4 qv"), ("lora r=4 all", "lora r=1 all"),
         ("lora r=16 all", "lora r=4 all"), ("qlora r=4 qv", "lora r=4 qv"), ("dora r=4 qv", "lora r=4 qv"),
         ("ia3", "lora r=4 all"), ("ia3", "lora r=4 qv"), ("prompt n=16", "lora r=1 qv")]
cmp = {(a, b): study.compare(rows, a, b) for a, b in pairs}
display(Markdown("\n".join(
    ["| a | b | mean(a) - mean(b) | standard error | verdict |", "|---|---|---:|---:|---|"]
    + [f"| {a} | {b} | {c['gap']:+.3f} | {c['se']:.3f} | {'difference' if c['real'] else 'no difference'} |"
       for (a, b), c in cmp.items()])))

# %%
def lower(a, b):
    """a's loss is lower than b's by more than twice the standard error."""
    return cmp[(a, b)]["real"] and cmp[(a, b)]["gap"] < 0

others = [r["mean"] for r in rows if r["method"] != "full"]
assert by["full"]["mean"] < min(others) and lower("full", "lora r=4 all")
assert lower("lora r=4 all", "lora r=4 qv") and lower("lora r=1 all", "lora r=4 qv")
assert lower("lora r=4 qv", "lora r=1 qv") and lower("lora r=4 all", "lora r=1 all")
assert not cmp[("lora r=16 qv", "lora r=4 qv")]["real"]
assert cmp[("lora r=16 all", "lora r=4 all")]["real"] and cmp[("lora r=16 all", "lora r=4 all")]["gap"] > 0
assert not cmp[("qlora r=4 qv", "lora r=4 qv")]["real"]
assert lower("dora r=4 qv", "lora r=4 qv")
assert not cmp[("ia3", "lora r=4 all")]["real"] and lower("ia3", "lora r=4 qv")
assert by["prompt n=16"]["mean"] > max(r["mean"] for r in rows if r["method"] != "prompt n=16")
assert by["prompt n=16"]["mean"] < record["base_val_loss"] - 1.0
# the parameter counts quoted below
assert (by["lora r=1 all"]["trainable"], by["lora r=4 qv"]["trainable"]) == (9216, 8192)
assert (by["ia3"]["trainable"], by["lora r=4 all"]["trainable"]) == (3072, 36864)
assert round(100 * by["ia3"]["trainable"] / n_params, 1) == 0.4

# %% [markdown]
# What the sweep shows, after 200 steps on this 0.8M-parameter character model, one learning rate
# per family (the rank and target sweeps share LoRA's), three seeds:
#
# - **Full fine-tuning wins clearly.** Learning a new language's spelling is a large change, and
#   200 steps of updating every weight get much further than any adapter. (The LoRA paper's setting,
#   adapting a large pretrained model to a task close to its pretraining, is kinder to low rank.)
# - **Where the rank goes matters more than how much.** LoRA on all six linear layers beats LoRA on
#   the query and value projections only, and rank 1 on all layers beats rank 4 on q and v with
#   about as many parameters (9,216 against 8,192).
# - **The rank curve flattens early** (the intrinsic-dimension picture): from $r = 1$ to $4$ helps
#   on both target sets; from 4 to 16 makes no difference on q, v, and on all layers $r = 16$ came
#   out *worse* than $r = 4$. We read the latter as an optimisation effect of the learning rate
#   picked at $r = 4$, not as rank hurting: this sweep tuned nothing per rank.
# - **QLoRA matches LoRA**: the NF4 base made no difference we can measure at $r = 4$ on q, v.
# - **DoRA beat LoRA** at the same rank and targets, by more than twice the standard error.
# - **IA³**, with 3,072 parameters (0.4 % of the model), did as well as LoRA $r = 4$ on all layers
#   with 36,864, and better than LoRA on q, v. Rescaling keys, values and the feed-forward
#   activation turned out to be an efficient lever here.
# - **Prompt tuning** improved on the base model but came last; Lester et al. found it competitive
#   only with models of billions of parameters {cite}`lester2021prompt`, and ours has 0.8 million.

# %% [markdown]
# ## 4. QLoRA live: an NF4 base, float adapters
#
# QLoRA quantises every linear layer of the base model to NF4 (chapter 14: 16 levels at normal
# quantiles, one absmax per 64 weights, itself stored in 8 bits) and keeps it frozen; LoRA's $A$
# and $B$ stay in float32 and are all that trains. The gradient still flows *through* the 4-bit
# layers, whose dequantised weight is a constant of the graph. (`tests/test_peft_qlora.py` checks
# ours against `peft`'s LoRA on bitsandbytes' NF4 `Linear4bit`, which runs on CPU tensors here: the
# same outputs and the same gradients for $A$ and $B$.) We re-run one cell of the sweep
# (QLoRA, $r = 4$ on the query and value projections, seed 0) here and compare with the file:

# %%
qmodel, loss_fn, zetan, live = finetune(LIVE_METHOD, LIVE_SEED)
recorded = next(r for r in record["runs"] if (r["method"], r["seed"]) == (LIVE_METHOD, LIVE_SEED))
print(f"{LIVE_METHOD}, seed {LIVE_SEED}: {live['val_loss']:.4f} now, {recorded['val_loss']:.4f} recorded")
assert abs(live["val_loss"] - recorded["val_loss"]) < 2e-3
trainable = {n for n, p in qmodel.named_parameters() if p.requires_grad}
assert all(n.endswith(("lora_A", "lora_B")) for n in trainable)
float_bytes, nf4_bytes = model_nbytes(model), model_nbytes(qmodel)
print(f"{len(trainable)} trainable tensors, {live['trainable']:,} numbers; the model stores "
      f"{nf4_bytes:,} bytes against {float_bytes:,} in float32 ({nf4_bytes / float_bytes:.2f}x), "
      f"of which {frozen_base_nbytes(qmodel):,} are the NF4 layers")
assert nf4_bytes / float_bytes < 0.2
float_linear = sum(model_nbytes(m) for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and n != "lm_head")
linear_ratio = float_linear / frozen_base_nbytes(qmodel)
print(f"the linear layers alone: {float_linear:,} bytes in float32, {linear_ratio:.2f}x fewer in NF4")
assert 7.0 < linear_ratio < 8.0  # 32 bits against 4.127 per weight, and float32 biases in both

# %% [markdown]
# The embedding and the output matrix (tied, 138 × 128) stay in float32; the linear layers of the
# blocks shrink about 7.5 times.
#
# **Merging into a 4-bit base is not exact.** $W_{\text{nf4}} + \frac{\alpha}{r}BA$ is not on the NF4
# grid. `merge_qlora` does what `peft` does for a 4-bit layer: dequantise, add the update, quantise
# again. The merged model is as small as the base, and its outputs move by a fresh rounding error.
# The alternative keeps a float copy of the merged weight (`dequantize=True`), exact but 7.5 times
# larger:

# %%
exact = merge_qlora(copy.deepcopy(qmodel), dequantize=True)
requantized = merge_qlora(copy.deepcopy(qmodel))
losses_merge = {"adapter unmerged": live["val_loss"], "merged, float": val_loss(exact, loss_fn, zetan),
                "merged, re-quantised to NF4": val_loss(requantized, loss_fn, zetan)}
for k, v in losses_merge.items():
    print(f"{k:>28}: {v:.4f} nats / char")
assert abs(losses_merge["merged, float"] - live["val_loss"]) < 1e-4
requant_cost = losses_merge["merged, re-quantised to NF4"] - live["val_loss"]
assert requant_cost > 1e-3

# %% [markdown]
# The float merge reproduces the adapter's loss; re-quantising costs a little (printed above), the
# price of keeping the merged model at 4 bits. Serving many adapters on one 4-bit base, one would
# keep them unmerged and switch them per request.
#
# ## 5. Where the memory of a training step goes
#
# A training step holds four things: the **weights**, the **activations** saved for the backward
# pass, the **gradients**, and the **optimiser state** (AdamW: two float32 moments per trainable
# parameter). We measure the peak bytes of tensors one step creates (forward, backward and the first
# AdamW step, which allocates the moments) with `measure.PeakTensorMemory` on a batch of 16
# windows of 32 characters, and vary one thing at a time:
#
# - **gradient checkpointing** keeps only each block's input and recomputes the block in the
#   backward pass;
# - **bfloat16 autocast** runs the matrix products in bfloat16, so the activations they save take
#   half the bytes (the weights stay float32);
# - **8-bit AdamW** (`roadmap_lib.optim.AdamW8bit`) stores each moment block-wise in 8 bits: an
#   absmax per 256 values and a code from a 256-value dynamic code book, about 2 bytes per parameter
#   instead of 8 (`tests/test_optim.py` checks it against `torch.optim.AdamW` and bitsandbytes'
#   `AdamW8bit`, which runs on CPU tensors here).

# %%
settings = {"plain": {}, "checkpointing": {"checkpointing": True}, "bf16 autocast": {"bf16": True},
            "8-bit AdamW": {"optimizer": "adamw8bit"},
            "all three": {"checkpointing": True, "bf16": True, "optimizer": "adamw8bit"}}
memory = {m: {s: step_memory(m, batch=16, **kw) for s, kw in settings.items()}
          for m in ("full", "lora r=4 qv", "qlora r=4 qv")}
mib = lambda b: f"{b / 2**20:.2f}"
lines = ["| method | setting | weights (MiB) | peak of one step (MiB) | optimiser state (MiB) |",
         "|---|---|---:|---:|---:|"]
for m, by_setting in memory.items():
    for s, r in by_setting.items():
        lines.append(f"| {m} | {s} | {mib(r['weight_bytes'])} | {mib(r['peak_step_bytes'])} | "
                     f"{mib(r['optimizer_state_bytes'])} |")
display(Markdown("\n".join(lines)))
plot_memory(memory, ax=plt.figure(figsize=(10, 4)).gca())
plt.show()

# %%
full, lora_m, qlora_m = memory["full"], memory["lora r=4 qv"], memory["qlora r=4 qv"]
peak = {s: full[s]["peak_step_bytes"] for s in settings}
state_ratio = full["plain"]["optimizer_state_bytes"] / full["8-bit AdamW"]["optimizer_state_bytes"]
print(f"full fine-tuning, peak of one step: checkpointing x{peak['checkpointing'] / peak['plain']:.2f}, "
      f"bf16 x{peak['bf16 autocast'] / peak['plain']:.2f}, all three x{peak['all three'] / peak['plain']:.2f}; "
      f"8-bit AdamW state {state_ratio:.2f}x smaller")
assert peak["checkpointing"] < 0.5 * peak["plain"]  # measured 0.42
assert peak["bf16 autocast"] < 0.7 * peak["plain"]  # measured 0.61
assert peak["all three"] < 0.3 * peak["plain"]  # measured 0.24
assert 3.7 < state_ratio < 4.0  # 8 bytes -> 2 bytes + an absmax per 256 values (+ small tensors)
# ... but the 8-bit state does not lower this step's peak, which comes in the backward pass
state_saved = full["plain"]["optimizer_state_bytes"] - full["8-bit AdamW"]["optimizer_state_bytes"]
assert abs(peak["plain"] - peak["8-bit AdamW"]) < state_saved / 2
# LoRA: no gradient and no AdamW state for the 0.8M frozen weights
assert full["plain"]["peak_step_bytes"] - lora_m["plain"]["peak_step_bytes"] > 6 * 2**20
# QLoRA: weights plus the step, smaller again (the step itself rebuilds float weights as it goes)
total = lambda r: r["weight_bytes"] + r["peak_step_bytes"]
assert total(qlora_m["plain"]) < total(lora_m["plain"]) - 2**20

# %% [markdown]
# On this model, with 16 windows of 32 characters, the **activations** dominate a step: gradient
# checkpointing cuts the peak by more than half, bfloat16 autocast by about 40 %, and together with
# 8-bit AdamW to a quarter. The 8-bit optimiser shrinks the moments about four times, but it does not lower
# this step's peak, which comes during the backward pass; what it saves is memory held *between*
# steps, which on a billion-parameter model is the largest item (8 bytes per parameter, twice the
# float32 weights). LoRA removes the gradients and optimiser state of the frozen weights; QLoRA
# shrinks the frozen weights themselves, about 7.5 times here. On a large model the weights and
# optimiser state dominate instead of the activations, and these savings multiply: that is the
# regime where QLoRA fine-tunes a 65B model on one 48 GB GPU {cite}`dettmers2023qlora`.
#
# **Speed.** One training step of a few methods, timed in this run on one thread (these are this
# machine's numbers, and a busy machine inflates them):

# %%
speed = {m: time_per_step(m) for m in ("full", "lora r=4 qv", "qlora r=4 qv")}
for m, s in speed.items():
    print(f"{m:>14}: {1000 * s:.1f} ms per step")

# %%
faster = "slower" if speed["qlora r=4 qv"] > speed["lora r=4 qv"] else "not slower"
display(Markdown(
    f"In this run a QLoRA step was {faster} than a LoRA step ({1000 * speed['qlora r=4 qv']:.0f} ms "
    f"against {1000 * speed['lora r=4 qv']:.0f} ms): every forward pass dequantises each NF4 layer "
    "(a table lookup per weight) before its matrix product, and here nothing hides that work. "
    "LoRA skips the weight gradients of the frozen layers, but still back-propagates through them "
    "to reach the earlier adapters."))

# %% [markdown]
#
# ## 6. Pruning and averaging, briefly
#
# Two more ways to change a trained model cheaply. **Magnitude pruning** {cite}`han2015learning`
# zeroes the smallest weights; **parameter averaging** {cite}`wortsman2022soups,wortsman2022robust`
# averages the weights of models that share a starting point. We fine-tune the full model on Zetan
# (seed 0, the sweep's recipe), then prune it, and average it with the English model it started
# from, and measure both languages.

# %%
ft, _, _, ft_record = finetune("full", 0)
english = CharLMData(context=32, batch_size=8, vocab=vocab)
base_model = load_char_gpt()[0]
soup = uniform_soup([base_model, ft])
results = {}
for name, m in [("English model", base_model), ("fine-tuned on Zetan", ft), ("average of the two", soup)]:
    results[name] = (val_loss(m, loss_fn, zetan), val_loss(m, loss_fn, english))
for frac in (0.3, 0.6):
    pruned = copy.deepcopy(ft)
    masks = magnitude_masks(pruned, frac)  # every linear layer but the output (tied to the input)
    with torch.no_grad():
        apply_masks(pruned, masks)
    zeros = sparsity({k: v for k, v in pruned.named_parameters() if k in masks})
    results[f"fine-tuned, {zeros:.0%} of its linear weights pruned"] = (
        val_loss(pruned, loss_fn, zetan), val_loss(pruned, loss_fn, english))
display(Markdown("\n".join(["| model | Zetan loss | English loss |", "|---|---:|---:|"]
                           + [f"| {k} | {z:.3f} | {e:.3f} |" for k, (z, e) in results.items()])))

# %%
z = {k: v[0] for k, v in results.items()}
e = {k: v[1] for k, v in results.items()}
prune30, prune60 = [k for k in results if "pruned" in k]
print(f"Zetan loss after pruning: {z[prune30] - z['fine-tuned on Zetan']:+.3f} and "
      f"{z[prune60] - z['fine-tuned on Zetan']:+.3f} nats / char")
assert z[prune30] - z["fine-tuned on Zetan"] < 0.02  # measured +0.004
assert z[prune60] - z["fine-tuned on Zetan"] > 0.1  # measured +0.27
assert z["average of the two"] < z["fine-tuned on Zetan"] + 0.3  # measured 0.80 against 0.64
assert e["average of the two"] < e["fine-tuned on Zetan"] - 2.0  # measured 3.31 against 5.91
q_english = val_loss(qmodel, loss_fn, english)
print(f"for comparison, the live QLoRA model: Zetan {live['val_loss']:.3f}, English {q_english:.3f}")
assert e["English model"] + 2.0 < q_english < e["fine-tuned on Zetan"]  # measured 5.16: it forgot too
assert e["fine-tuned on Zetan"] > math.log(len(vocab))  # worse than guessing uniformly

# %% [markdown]
# For this one fine-tuned model (seed 0, so a demonstration rather than a comparison):
#
# - full fine-tuning on Zetan **forgot English**: its English loss went from the base model's to
#   several nats per character, worse than guessing characters uniformly. This is catastrophic
#   forgetting (chapter 17). The live QLoRA model, which trained 1 % as many numbers and kept its
#   base weights, forgot English too, only somewhat less: a low-rank update on the attention is
#   enough to wreck the English predictions;
# - pruning the 30 % smallest weights of every linear layer barely changed the Zetan loss; at 60 %
#   it rose clearly. Unstructured zeros save nothing by themselves on a CPU: they pay off with
#   sparse storage or hardware that skips them (the 2:4 pattern, `semi_structured_masks`);
# - **averaging** the fine-tuned weights with the English model they started from (the two share
#   a starting point, so their average is a model too) kept most of the Zetan gain and won back
#   part of the English loss, the trade-off that WiSE-FT {cite}`wortsman2022robust` exploits.
#
#
# ## 7. Explore the sweep
#
# Pick a method: its seeds are highlighted on the trade-off plot, and its training curves drawn on
# the right. The figure in section 3 is this explorer's default.

# %% tags=["nbval-ignore-output", "remove-output"]
def explore(method="lora r=4 qv"):
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    plot_tradeoff(rows, record["base_val_loss"], ax=axes[0], highlight=method)
    plot_curves(record, method, ax=axes[1])
    fig.tight_layout()
    plt.show()


interact(explore, method=Dropdown(options=list(METHODS), value="lora r=4 qv"));

# %% [markdown]
# ## Summary
#
# - LoRA adds $\frac{\alpha}{r}BA$ next to a frozen weight: $r(\text{in} + \text{out})$ trainable
#   numbers per layer, zero change at the start, and a merge that makes inference free and an
#   unmerge that undoes it exactly. Ours gives `peft`'s outputs on the same weights.
# - QLoRA stores the frozen base in NF4 and trains float factors through it; in our sweep it matched
#   LoRA. Merging into the 4-bit base re-quantises and costs a small, measurable loss; merging into
#   a float copy is exact.
# - On this task (a new language for a 0.8M-parameter character model, 200 steps) full fine-tuning
#   won; among adapters, spreading a small rank over all layers beat a larger rank on two, DoRA beat
#   LoRA, IA³ matched the best LoRA with a tenth of its parameters, and prompt tuning came last.
# - A training step's memory is weights + activations + gradients + optimiser state. Gradient
#   checkpointing and bfloat16 shrink the activations, 8-bit AdamW the state (about four times),
#   LoRA the gradients and state of the frozen weights, QLoRA the frozen weights themselves.
# - Full fine-tuning forgot English; averaging with the base model recovered part of it; pruning 30 %
#   of the weights cost little.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-16-count
# :nonumber:
# ```
# **Exercise 16.1 (predict, then measure: trainable parameters).** Our char GPT has 4 blocks; each has
# `q_proj`, `k_proj`, `v_proj`, `o_proj` (128 → 128), `up_proj` (128 → 512) and `down_proj`
# (512 → 128). Before running the measuring cell, predict how many parameters train with
# (a) LoRA $r = 8$ on `["q_proj", "v_proj", "down_proj"]`, (b) the same with DoRA (which adds a
# magnitude per output row of each adapted layer), and (c) IA³ on `["k_proj", "v_proj",
# "down_proj"]` with `down_proj` as the feed-forward module (a vector per layer: the output size for
# k and v, the input size for the feed-forward one). Return them from `predict_trainable`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Count per adapted layer first: which of its shapes does each method's extra tensor take?
# ```

# %% [markdown]
# ```{solution-start} ex-16-count
# :class: dropdown
# ```

# %%
def predict_trainable():
    """Your prediction: {"lora": ..., "dora": ..., "ia3": ...}."""
    ### BEGIN SOLUTION
    blocks, d, ff, r = 4, 128, 512, 8
    lora = blocks * (r * (d + d) * 2 + r * (ff + d))  # q, v: 128 -> 128; down: 512 -> 128
    dora = lora + blocks * (d + d + d)  # a magnitude per output row: 128 each
    ia3 = blocks * (d + d + ff)  # k, v scale their 128 outputs; down its 512 inputs
    return {"lora": lora, "dora": dora, "ia3": ia3}
    ### END SOLUTION


predicted = predict_trainable()

# %% [markdown]
# A LoRA factor pair costs $r(\text{in} + \text{out})$, so the wide `down_proj` costs more than a
# square projection; DoRA adds one number per output row, IA³ one per scaled activation.
#
# ```{solution-end}
# ```

# %%
# The measuring instrument, used only now, after your prediction.
from roadmap_lib.peft import apply_ia3

targets = ["q_proj", "v_proj", "down_proj"]
measured = {
    "lora": count_parameters(apply_lora(load_char_gpt()[0], LoRAConfig(targets, r=8)), trainable_only=True),
    "dora": count_parameters(apply_lora(load_char_gpt()[0], LoRAConfig(targets, r=8, use_dora=True)),
                             trainable_only=True),
    "ia3": count_parameters(apply_ia3(load_char_gpt()[0], ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
                            trainable_only=True),
}
for k, n in measured.items():
    check_close(predicted[k], n, name=f"trainable parameters, {k}", atol=0.5, rtol=0)

# %% [markdown]
# ```{exercise-start}
# :label: ex-16-merge
# :nonumber:
# ```
# **Exercise 16.2 (merge and unmerge by hand).** Write `merge_lora(w, a, b, alpha, r, rslora=False)`
# returning the merged weight $W + sBA$ with $s = \alpha / r$ (rsLoRA: $s = \alpha / \sqrt{r}$), for
# `w` `(out, in)`, `a` `(r, in)`, `b` `(out, r)`; and `unmerge_lora` with the same arguments, which
# takes a merged weight back.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# The scale multiplies the product of the two factors; which order of `a` and `b` gives an `(out, in)` matrix?
# ```

# %% [markdown]
# ```{solution-start} ex-16-merge
# :class: dropdown
# ```

# %%
def merge_lora(w, a, b, alpha, r, rslora=False):
    ### BEGIN SOLUTION
    s = alpha / r**0.5 if rslora else alpha / r
    return w + s * (b @ a)
    ### END SOLUTION


def unmerge_lora(w, a, b, alpha, r, rslora=False):
    ### BEGIN SOLUTION
    s = alpha / r**0.5 if rslora else alpha / r
    return w - s * (b @ a)
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_merge_lora(merge_lora, unmerge_lora)  # against a LoRALinear that merges itself

# %% [markdown]
# ```{exercise-start}
# :label: ex-16-blockwise
# :nonumber:
# ```
# **Exercise 16.3 (an 8-bit optimiser state).** Write `quantize_state(x, code_book, block)`: read `x`
# flat, cut it into blocks of `block` values (the last one padded with zeros), divide each block by
# its largest absolute value (use 1 for an all-zero block), and store each value as the index of the
# nearest entry of the ascending `code_book` (256 values). Return `(codes, absmax)`: codes `uint8`
# with `x`'s shape, absmax float32 `(n_blocks,)`. Then measure how much smaller AdamW's two moments
# get for a `(512, 128)` weight.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Pad, reshape to `(n_blocks, block)`, normalise by a per-row maximum; the nearest code is an arg-min over the distances to all 256 codes.
# ```

# %% [markdown]
# ```{solution-start} ex-16-blockwise
# :class: dropdown
# ```

# %%
def quantize_state(x, code_book, block):
    ### BEGIN SOLUTION
    flat = x.reshape(-1).float()
    pad = -flat.numel() % block
    blocks = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, block)
    absmax = blocks.abs().amax(dim=1)
    normed = blocks / torch.where(absmax > 0, absmax, torch.ones_like(absmax)).unsqueeze(1)
    nearest = (normed.reshape(-1, 1) - code_book.reshape(1, -1)).abs().argmin(dim=1)
    return nearest[: flat.numel()].to(torch.uint8).reshape(x.shape), absmax
    ### END SOLUTION


# %% [markdown]
# Taking the arg-min of the distance to every code is the plainest way; the library compares each
# value with the 255 midpoints between neighbouring codes instead (`torch.bucketize`), which is
# faster and sends an exact tie to the lower code.
#
# ```{solution-end}
# ```

# %%
# Against the library's `quantize_blockwise` (which the answer may not call), dtypes included.
check_quantize_state(quantize_state)

# The measurement: a moment of a (512, 128) weight, in blocks of 256.
from roadmap_lib.quantization import dynamic_code_book

moment = torch.randn(512, 128, generator=torch.Generator().manual_seed(5)) * 1e-3
codes, absmax = quantize_state(moment, dynamic_code_book(), 256)
ratio = (2 * 4 * moment.numel()) / (2 * (codes.numel() + 4 * absmax.numel()))
print(f"two float32 moments: {2 * 4 * moment.numel():,} bytes; in 8 bits: "
      f"{2 * (codes.numel() + 4 * absmax.numel()):,} bytes ({ratio:.2f}x smaller)")
