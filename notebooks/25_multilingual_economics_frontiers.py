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
# # 25. Frontiers: many languages, what it costs, looking inside, and agents
#
# **What you will learn**
#
# - what an English-trained tokenizer costs speakers of other languages, measured in tokens for the
#   same messages in ten languages {cite}`petrov2023language,rust2021good`, and how much a
#   multilingual BPE {cite}`sennrich2016bpe` of the same size closes the gap;
# - how far a classifier trained on English transfers to nine other languages through a shared
#   subword vocabulary, against separate per-language vocabularies (3 seeds, a deliberately tiny
#   model; {cite}`pires2019multilingual,conneau2020unsupervised` for what pretrained multilingual
#   encoders add);
# - how to turn parameters and tokens into FLOPs, accelerator-hours, money, energy and CO₂ with every
#   assumption an explicit parameter, checked against what published models report
#   {cite}`kaplan2020scaling,brown2020gpt3,touvron2023llama2,patterson2021carbon`, and what serving
#   costs per million tokens from a measured throughput;
# - how to look inside a trained decoder: attention maps and their limits {cite}`jain2019attention`,
#   linear probes {cite}`alain2017understanding,hewitt2019designing`, activation patching
#   {cite}`meng2022locating` and the logit lens {cite}`nostalgebraist2020logitlens`, on a model
#   trained to copy repeated sequences {cite}`olsson2022context`, and how they caught it using a
#   shortcut instead of the mechanism we set out to find;
# - how to run a model as an agent with tools, an allow-list, a step budget and time limits
#   {cite}`yao2023react,schick2023toolformer`, how it fails, and what accuracy each way of spending
#   test-time compute buys per token: greedy decoding, a vote or a verifier over sampled chains,
#   and sampled agent runs {cite}`snell2024scaling`.
#
# **What you need**: tokenizers and BPE (chapter 02), the decoder-only GPT (chapter 07) and its
# decoding loop with a KV cache (chapters 15 and 18), scaling laws and the $6ND$ FLOP count
# (chapter 09); chapter 20's energy estimate is the small version of section 2; chain of thought,
# self-consistency, the verifier and the tool loop on the parity task (chapter 11), whose model
# section 4 reuses.
#
# **Run time**: 75 to 105 s measured on a busy shared 2-core machine, one thread (less on an idle
# laptop); the longer runs are shipped as results, see each section.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from ipywidgets import FloatLogSlider, FloatSlider, interact

from roadmap_lib import data_path, economics, interpret, multilingual, reasoning, set_seed
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import agent_study as A
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import costs
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import induction as I
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import multilingual_study as S
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.artifacts import (
    test_time_results,
    transfer_results,
)
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.exercises import (
    check_gpu_hours,
    check_prediction,
    check_premium,
    check_recovered,
    check_run_tokens,
)
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.plots import (
    plot_attention,
    plot_costs,
    plot_logit_lens,
    plot_patching,
    plot_premium,
    plot_test_time,
    plot_transfer,
)
from roadmap_lib.measure import count_parameters
from roadmap_lib.tokenizers import load
from roadmap_lib.zoo import load_char_gpt

set_seed(0)
torch.set_num_threads(1)  # small models: as fast on one thread, and steady on a busy CPU

# %% [markdown]
# ## 1. Many languages
#
# ### A parallel sample that ships with Python
#
# To compare languages fairly we need the *same* text in each of them. Sphinx, the documentation
# tool this book is built with, ships its user-interface messages translated by volunteers into
# dozens of languages (`sphinx/locale/<lang>/LC_MESSAGES/sphinx.po`, BSD-2-Clause). The command
# `python -m roadmap_lib build 25-parallel-sphinx` extracts every message translated into all of
# French, Spanish, Brazilian Portuguese, Turkish, Greek, Japanese, Simplified Chinese, Korean and
# Hindi, strips format codes such as `%s` and `{name}` (`roadmap_lib.multilingual.strip_format`),
# and writes `data/25_parallel_sphinx.json`. These are short software messages, not prose: a
# narrow domain, which the results below should be read in.

# %%
sample = S.load_sample()
print(f"{len(sample)} messages in {len(S.ALL)} languages")
for row in (sample[0], sample[len(sample) // 2], sample[-1]):  # first, middle, last (sorted by English)
    print(" | ".join(row[lang] for lang in ("en", "fr", "tr", "ja", "hi")))
print("(double spaces and dangling words are where format codes were stripped)")

# %% [markdown]
# ### What a language pays in tokens
#
# A model bills, limits context and spends compute per *token*. If a Hindi sentence takes several
# times the tokens of its English translation, a Hindi speaker pays several times as much for the
# same request, fits less in the context, and waits longer {cite}`petrov2023language`. We measure the
# **token premium**: tokens for a language's messages divided by tokens for the same messages in
# English, on the 30% of messages held out from the split below, for three byte-level BPEs:
#
# - the Jargon File BPE of chapter 02 (4k tokens, English, a different domain);
# - a BPE trained on the English messages of the training split only (2k tokens, same domain);
# - a BPE trained on the training messages in all ten languages (2k tokens).

# %%
english_bpe = load(data_path("tokenizers/bpe_4k.json"))
table = S.premium_table(sample, english_bpe, seed=0)
premium = table["premium"]
names = list(premium)

fig, ax = plt.subplots(figsize=(10, 3.6))
plot_premium(premium, ax=ax)
plt.show()

rows = ["| tokenizer | " + " | ".join(S.ALL) + " |", "|---|" + "---|" * len(S.ALL)]
rows += [f"| {n} | " + " | ".join(f"{premium[n][lang]:.2f}" for lang in S.ALL) + " |" for n in names]
display(Markdown(f"Tokens relative to English on {table['n_test']} held-out messages:\n\n" + "\n".join(rows)))

# %%
jargon, same_domain, multi = (premium[n] for n in names)
assert jargon["hi"] > 8 and jargon["el"] > 6, "non-Latin scripts cost several times English"
assert 1.7 < jargon["fr"] < 2.1 and 1.7 < jargon["es"] < 2.1
assert all(same_domain[lang] > jargon[lang] for lang in S.LANGUAGES)
assert max(multi[lang] for lang in S.LANGUAGES) < 2.2 and multi["hi"] == max(multi.values())
assert all(multi[lang] < 1.35 for lang in ("es", "pt_BR", "ja", "zh_CN", "ko", "tr"))
assert all(3.5 < jargon[lang] < 5 for lang in ("ja", "ko"))

# English's own cost: tokens for the held-out English messages under each tokenizer
held_out = multilingual.split(sample, S.TEST_FRACTION, 0)[1]
english_tokens = {n: multilingual.fertility(t, held_out, ["en"])["en"]["tokens"] for n, t in table["tokenizers"].items()}
print("English tokens on the held-out messages:", english_tokens)
assert english_tokens[names[2]] > 1.2 * english_tokens[names[1]]

# %% [markdown]
# What the table says, for these messages:
#
# - With the **English tokenizers**, every other language pays more, and the scripts furthest from
#   English pay most: Hindi and Greek several times English, Japanese and Korean about four times,
#   French and Spanish about twice. A byte-level BPE never fails on an unseen script, it falls back to
#   bytes, and a Devanagari or Greek letter is two or three UTF-8 bytes.
# - Training the English BPE **in the domain** makes the other languages pay *more*, not less. A
#   likely reason (not tested here): its 2k tokens go to English software words that the
#   translations do not share, while the Jargon File BPE's 4k tokens of more varied English cover
#   more short Latin-script fragments.
# - A **multilingual BPE of the same size** (2k tokens for ten languages) brings most languages
#   within about a third of English; Hindi still pays about twice. The vocabulary is shared, and each
#   language gets only part of it: part of the price is paid by English, whose held-out messages
#   take more than 1.2 times the tokens they take with the same-domain English BPE of the same size
#   (the counts printed above).
#
# Per-word fertility (chapter 02) does not compare across these languages: Chinese and Japanese do
# not separate words with spaces. Tokens *per message* do, which is why the premium is per message.

# %% [markdown]
# ### Cross-lingual transfer, at a tiny scale
#
# Can a model trained on English data work in other languages? We label each message by the part of
# Sphinx it comes from (`builders`, `cmd`, `ext`, `domains`; the four largest, 280 messages), train a
# bag-of-subwords classifier (mean of 32-dimensional token embeddings, then a linear layer) on the
# English messages of the training split, and test it on the held-out messages in each language:
#
# - **shared**: one multilingual BPE and one embedding table for all languages;
# - **separate**: one BPE per language with disjoint token ids, so the embeddings trained on English
#   never see a token of another language;
# - **in-language**: the shared tokenizer, trained *and* tested in the same language (the ceiling).
#
# Three seeds, each a different split and initialisation. Training 3 × 12 classifiers and 3 × 11
# tokenizers takes a few minutes on one thread, so `python -m roadmap_lib build 25-transfer` ran it
# once and wrote `data/25_transfer.json`; the cell below re-runs one piece (seed 0, shared, trained
# on English) and checks that it reproduces the file.

# %%
study = transfer_results()
study["languages"] = S.ALL
rows_lab = S.labelled(sample)
train0, test0 = multilingual.split(rows_lab, S.TEST_FRACTION, 0)
shared0 = S.train_bpe(train0, S.ALL)
again = S.fit_and_score(lambda text, lang: shared0.encode(text), train0, test0, "en", shared0.vocab_size, 0)
assert all(abs(again[lang] - study["accuracy"]["shared"][0][lang]) < 1e-6 for lang in S.ALL)

fig, ax = plt.subplots(figsize=(10, 3.6))
plot_transfer(study, ax=ax)
plt.show()

per = {k: S.per_seed(study, k) for k in ("in-language", "shared", "separate")}
per["majority class"] = study["accuracy"]["majority"]
lines = ["| setting | seed 0 | seed 1 | seed 2 | mean |", "|---|---|---|---|---|"]
lines += [f"| {k} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {sum(vals) / 3:.3f} |" for k, vals in per.items()]
display(Markdown(f"Accuracy averaged over the nine non-English test languages ({study['n_test']} test "
                 f"messages, {study['n_train']} training messages per seed):\n\n" + "\n".join(lines)))

# %%
mean = {k: sum(v) / len(v) for k, v in per.items()}
gap = [s - p for s, p in zip(per["shared"], per["separate"])]
spread = max(gap) - min(gap)
print(f"shared - separate per seed: {', '.join(f'{g:+.3f}' for g in gap)} (spread {spread:.3f})")
assert min(gap) > 0 and sum(gap) / 3 > spread, "shared beats separate in every seed, by more than the spread"
assert mean["shared"] > mean["majority class"] + 0.08
assert mean["in-language"] > mean["shared"] + 0.15
latin, other_scripts = ["fr", "es", "pt_BR", "tr"], ["el", "ja", "zh_CN", "ko", "hi"]
by_script = [sum(S.per_seed(study, "shared", group)) / 3 for group in (latin, other_scripts)]
print(f"shared, mean accuracy: Latin-script languages {by_script[0]:.3f}, others {by_script[1]:.3f}")
assert by_script[1] >= by_script[0]
assert all(max(a[x] for x in S.LANGUAGES) - min(a[x] for x in S.LANGUAGES) < 1e-9
           for a in study["accuracy"]["separate"]), "separate: one accuracy for all nine languages of a seed"

# %% [markdown]
# For a bag of subwords trained on 196 English messages:
#
# - **Separate vocabularies transfer nothing.** The foreign tokens' embeddings never moved from their
#   tiny initial values, so the classifier answers the same class for every foreign message (the
#   accuracy is the same in all nine languages of a seed: the share of that class).
# - **A shared vocabulary transfers a little**: about 0.07 above separate vocabularies in the mean,
#   in every seed (the paired gap per seed is above). The bridge can only be tokens that occur in
#   the English training messages *and* in the translations: a token never seen in training keeps
#   its random initial embedding. Translations keep names such as `LaTeX`, `HTML` or option names in
#   Latin script, and the non-Latin-script languages gain no less than French, Spanish, Portuguese
#   and Turkish (mean accuracy over seeds, checked below the table).
# - **Far below the ceiling**: trained in the test language, the same classifier reaches about 0.66.
#
# This is transfer through *shared tokens*, not through meaning: nothing in this model knows that
# "fichier" means "file". Pretrained multilingual encoders get much more cross-lingual transfer,
# because pretraining on many languages aligns their representations
# {cite}`pires2019multilingual,conneau2020unsupervised`; our experiment shows the floor that a
# shared vocabulary alone provides.

# %% [markdown]
# ## 2. What it costs
#
# ### Training: FLOPs, hours, money, energy
#
# Training a dense transformer with $N$ parameters on $D$ tokens takes about $C = 6ND$ FLOPs
# (chapter 09, {cite}`kaplan2020scaling`). An accelerator with peak rate $P$ FLOP/s reaches only a
# share of it, the *model FLOPs utilisation* (MFU) {cite}`chowdhery2022palm`, so
#
# $$ \text{accelerator-hours} = \frac{6ND}{P \cdot \text{MFU} \cdot 3600}, \qquad
#    \text{cost} = \text{hours} \times \text{price per hour}, $$
#
# $$ \text{energy (kWh)} = \text{hours} \times \frac{\text{watts}}{1000} \times \text{PUE}, \qquad
#    \text{CO}_2 = \text{energy} \times \text{carbon intensity}. $$
#
# `roadmap_lib.economics` implements the chain with every assumption an argument. We check it
# against what two papers report: the total training compute of GPT-3 {cite}`brown2020gpt3`, and
# the GPU-hours of Llama 2 {cite}`touvron2023llama2`, from which we can back out the MFU the Llama 2
# run reached on A100s. Parameter counts are computed from the published configurations
# (`costs.published_params`, tested against transformers models built on the `meta` device).

# %%
gpu = costs.A100
rows, table_rows = [], []
for name, spec in costs.MODELS.items():
    n = costs.published_params(name)
    flops = economics.training_flops(n, spec["tokens"])
    row = {"name": name, "params": n, "tokens": spec["tokens"], "flops": flops}
    if "reported_gpu_hours" in spec:
        row["implied_mfu"] = flops / (spec["reported_gpu_hours"] * 3600 * gpu.peak_flops)
        row["hours"] = spec["reported_gpu_hours"]
    else:
        row["reported_flops"] = spec["reported_flops"]
        row["hours"] = economics.accelerator_hours(flops, gpu, mfu=0.4)
    row["cost"] = row["hours"] * gpu.price_per_hour
    row["kwh"] = economics.energy_kwh(row["hours"], gpu.watts, pue=1.1)
    rows.append(row)
    table_rows.append(f"| {name} | {n / 1e9:.2f} B | {spec['tokens']:.2g} | {flops:.3g} | "
                      + (f"{row['reported_flops']:.3g} (paper)" if "reported_flops" in row else
                         f"{row['hours']:,} h (paper) → MFU {row['implied_mfu']:.2f}") + " |")
display(Markdown("| model | parameters | tokens | 6ND FLOPs | reported |\n|---|---|---|---|---|\n"
                 + "\n".join(table_rows)))

# %%
gpt3, llama7, llama70 = rows
assert abs(gpt3["flops"] / gpt3["reported_flops"] - 1) < 0.01, "6ND matches GPT-3's reported compute within 1%"
assert 0.37 < llama7["implied_mfu"] < 0.41 and 0.41 < llama70["implied_mfu"] < 0.45

# %% [markdown]
# - $6ND$ with the parameters counted from GPT-3's published shape reproduces the paper's
#   3.64 × 10³ petaflop/s-days to within 1%: the paper used the same estimate.
# - Llama 2's reported GPU-hours correspond to an MFU of about 0.39 (7B) and 0.43 (70B) of the
#   A100's 312 TFLOP/s BF16 peak, a plausible utilisation for large dense training; the bigger model
#   used its GPUs better.
#
# The money and energy below use **assumptions, not measurements**: $2 per A100-hour, 400 W per
# GPU, PUE 1.1, and (for GPT-3, whose GPU-hours the paper does not give) an MFU of 0.4. Change them
# in the explorer. The carbon follows by multiplying by the grid's intensity; where the electricity
# comes from changes it by an order of magnitude {cite}`patterson2021carbon,strubell2019energy`.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 2.6))
plot_costs(rows, "cost", ax=axes[0], label="cost ($; $2 per A100-hour, assumed)")
plot_costs(rows, "kwh", ax=axes[1], label="energy (kWh; 400 W, PUE 1.1, assumed)")
plt.tight_layout()
plt.show()


# %%
def _explore_cost(mfu=0.4, price=2.0, grams_per_kwh=400.0, trillions_of_tokens=2.0):
    hw = economics.Hardware("A100", gpu.peak_flops, price, gpu.watts)
    r = economics.training_cost(costs.published_params("Llama 2 7B"), trillions_of_tokens * 1e12, hw,
                                mfu=mfu, pue=1.1, grams_co2_per_kwh=grams_per_kwh)
    print(f"Llama 2 7B on {trillions_of_tokens:g}T tokens: {r['hours']:,.0f} A100-hours, ${r['cost']:,.0f}, "
          f"{r['kwh']:,.0f} kWh, {r['kg_co2'] / 1000:,.1f} t CO2e")


_explore_cost()

# %% tags=["nbval-ignore-output", "remove-output"]
interact(_explore_cost, mfu=FloatSlider(0.4, min=0.05, max=0.8, step=0.05),
         price=FloatLogSlider(2.0, base=10, min=-1, max=1.5), grams_per_kwh=FloatSlider(400, min=0, max=900, step=25),
         trillions_of_tokens=FloatSlider(2.0, min=0.1, max=15, step=0.1));

# %% [markdown]
# ### Serving: cost per million tokens from a measured throughput
#
# Serving cost is the price of the machine per hour divided by the tokens it produces per hour, so it
# rests on a *measured* throughput. We measure greedy decoding with a KV cache of the zoo's char GPT
# (0.8M parameters, chapter 07) on this CPU, one thread, at three batch sizes. The absolute speeds
# depend on your machine; what we claim is the ratio.

# %%
char_gpt, vocab, _ = load_char_gpt()
throughput = {b: costs.decode_throughput(char_gpt, len(vocab.itos), b) for b in (1, 8, 32)}
core_price = 0.05  # an assumed price per CPU-core-hour, for illustration
for b, tps in throughput.items():
    print(f"batch {b:2d}: {tps:7.0f} tokens/s -> ${economics.serving_cost_per_million(tps, core_price):.3f} "
          f"per million tokens at ${core_price}/core-hour")
assert throughput[32] > 3 * throughput[1], "batching multiplies throughput"

# %% [markdown]
# Batching 32 requests shares every weight read among them, so throughput rises many-fold and the
# cost per token falls by the same factor (chapter 15 measured why). The same arithmetic at scale:
# a compute-bound A100 serving Llama 2 7B at the same MFU of 0.4 could at best produce
# `economics.serving_tokens_per_second` = $0.4 \cdot P / 2N$ tokens per second; small-batch decoding
# is memory bound and reaches far less, which is why providers batch and why their price per token
# depends on load.

# %%
best = economics.serving_tokens_per_second(llama7["params"], gpu, mfu=0.4)
print(f"compute-bound ceiling, Llama 2 7B on one A100 at MFU 0.4: {best:,.0f} tokens/s -> "
      f"${economics.serving_cost_per_million(best, gpu.price_per_hour):.3f} per million tokens at $2/hour")
print(f"with a token premium of {jargon['hi']:.1f} (Hindi, English tokenizer), the same Hindi message "
      f"costs {jargon['hi']:.1f} times as much")

# %% [markdown]
# ## 3. Looking inside a model
#
# A question about a trained model, "how does it do this?", can be answered with four tools of
# increasing strength, all in `roadmap_lib.interpret`: attention maps (where each head looks),
# linear probes (what is decodable where), the logit lens (what the model would predict if it
# stopped after a block), and activation patching (which internal state *causes* the output).
#
# The model: a 2-layer, 4-head GPT (d = 64, learned positions) trained on sequences of 16 random
# tokens (out of 48) followed by the same 16 tokens again. The first half cannot be predicted; the
# second half can, by copying. The textbook mechanism for this is an *induction head*
# {cite}`olsson2022context`: a head in layer 0 marks each position with the previous token, and a
# head in layer 1 looks for the earlier position whose previous token equals the current token, and
# copies what is there. `python -m roadmap_lib build 25-induction-gpt` trained it (1500 steps); its
# loss on the second half is essentially zero. Did it learn induction?

# %%
model, record = I.load()
print(f"second-half loss {record['second_half_loss']:.2e} nats/token (chance: {record['chance_loss']:.2f})")
clean, corrupt, query = I.patching_pair(32, source=6, seed=0)
maps = interpret.attention_maps(model, clean)
plot_attention(maps, example=0)
plt.tight_layout()
plt.show()

# %%
L = clean.shape[1]
to_copy_source = torch.stack([maps[:, :, :, p, p - I.HALF + 1] for p in range(I.HALF, L - 1)], -1).mean((1, 3))
to_previous = torch.stack([maps[:, :, :, p, p - 1] for p in range(1, L)], -1).mean((1, 3))
print("mean attention of second-half positions to 15 positions back (layers x heads):\n", to_copy_source)
print("mean attention to the previous position:\n", to_previous)
assert to_copy_source[0].mean() > 0.8 and to_previous.max() < 0.15
assert to_copy_source[1].max() < 0.1

# %% [markdown]
# The maps (example 0, the first sequence of seed 0) show the lower-right diagonal in **layer 0**:
# every second-half position attends 15 positions back, to the token that followed the earlier
# occurrence of the current one. No head attends to the previous position, so there is no
# previous-token head, and layer 1's heads put almost no weight 15 positions back. Attention maps show where
# heads look, not what the model needs {cite}`jain2019attention`: a diffuse map may still matter,
# a sharp one may be ignored. Two tests tell more.
#
# First, a causal test of the *rule*: a true induction head copies after any period; a head that
# attends "15 positions back" works only for period 16. We measure the loss on sequences that
# repeat after 12 and 15 tokens instead.

# %%
period = {h: I.period_loss(model, h) for h in (12, 15, 16)}
print({h: round(v, 3) for h, v in period.items()}, f"chance {record['chance_loss']:.2f}")
assert period[12] > record["chance_loss"] and period[15] > record["chance_loss"] and period[16] < 1e-3

# %% [markdown]
# Worse than chance at other periods: the model is confidently copying from the wrong place. It
# learned a **positional shortcut**, "copy from 15 positions back", which the learned position
# embeddings make easy because every training sequence had the same period. Nothing in the loss
# asked for induction. (Training with a random period would force the general mechanism; a fine
# exercise, but longer than this chapter's budget.)
#
# ### Activation patching: which states carry the answer
#
# To locate the computation, we run two inputs: the clean sequences, and the same with the token at
# position 6 (in the first half) replaced. At position 21 (= 6 + 16 − 1) the clean model predicts
# the token at 6; the corrupt model predicts something else. Then we rerun the corrupt input, each
# time copying the clean residual state at *one* (state, position) into it, and measure how much of
# the clean log-probability of the right answer comes back:
#
# $$ \text{recovered} = \frac{m_\text{patched} - m_\text{corrupt}}{m_\text{clean} - m_\text{corrupt}}, $$
#
# with $m$ the mean log-probability of the right token at position 21 over 32 sequences. The tests
# of `interpret` check that patching a run with itself changes nothing and that patching every
# position of a state reproduces the source run exactly.

# %%
source = 6


def metric(logits):
    return I.answer_logprob(logits, clean, query, source)


m_clean, m_corrupt = metric(model(clean)), metric(model(corrupt))
effect = interpret.recovered_fraction(interpret.patching_effect(model, clean, corrupt, metric), m_clean, m_corrupt)
print(f"log p(right token) clean {m_clean:.4f}, corrupt {m_corrupt:.2f}")
fig, ax = plt.subplots(figsize=(10, 2.6))
plot_patching(effect, query, source, ax=ax)
plt.show()

# %%
assert effect[0, source] > 0.95 and effect[1, query] > 0.95 and effect[2, query] > 0.95
assert effect[1, source].abs() < 0.05 and effect[1:, :query].abs().max() < 0.05

# %% [markdown]
# The heatmap is the whole story in two cells: at the **embeddings**, only the corrupted position 6
# matters (patching it back restores everything); **after block 0**, only the query position 21
# matters, and patching position 6 there does nothing, because position 21 has already read it.
# So layer 0 moved the answer from 6 to 21 in one step, and layer 1 is not needed for this task:
# exactly the positional shortcut, and not the two-step induction circuit.
#
# ### Logit lens and probes
#
# The logit lens reads each residual state through the final norm and unembedding. A linear probe
# asks a weaker question: is a label linearly *decodable* from a state, whether or not the model
# uses it {cite}`hewitt2019designing`.

# %%
lens = I.lens_probs(interpret.logit_lens(model, clean), clean)
probes = I.probe_study(model)
fig, ax = plt.subplots(figsize=(9, 3))
plot_logit_lens(lens, I.HALF, ax=ax)
plt.show()
states = ["embed", "after block 0", "after block 1"]
display(Markdown("| probe (held-out accuracy, second half) | " + " | ".join(states) + " |\n|---|---|---|---|\n"
                 + "\n".join(f"| {k} | " + " | ".join(f"{a:.2f}" for a in v) + " |" for k, v in probes.items())))

# %%
second = lens[:, I.HALF:]
assert second[0].mean() < 0.1 and second[1].mean() > 0.95
assert probes["next token"][0] < 0.1 and probes["next token"][1] > 0.95
assert probes["current token"][0] > 0.95 and probes["current token"][2] < 0.3

# %% [markdown]
# - The **logit lens** already predicts the right token after block 0 in the second half, as the
#   patching said.
# - The **probes** show the trade: the token to copy becomes decodable after block 0; the *current*
#   token, trivially decodable from the embeddings, fades as the stream is rewritten with what the
#   model needs. A probe that fails does not prove the information is gone (a nonlinear one might
#   succeed), and one that succeeds does not prove it is used: for that, patch.
#
# ### What this section leaves out
#
# The same tools scale to real models (patching over layers and token positions is how
# {cite}`meng2022locating` localised factual recall in GPT-2 XL), but the result is only as good as
# the corruption and the metric.

# %% [markdown]
# ## 4. Agents and test-time compute
#
# A reasoning model of the o1 kind {cite}`openai2024o1` answers better when it is allowed to think
# longer: it spends more compute *at inference*, and how to spend it best is a question of its own
# {cite}`snell2024scaling`. The ways to spend it fall in two families. **Search over samples**:
# draw several chains of thought and keep the majority answer (self-consistency,
# {cite}`wang2023selfconsistency`) or the one a verifier prefers {cite}`cobbe2021training,lightman2024verify`.
# **Acting**: let the model call tools in a loop, reading each result before its next step
# (ReAct {cite}`yao2023react`; Toolformer {cite}`schick2023toolformer` teaches a model where to
# insert the calls). Chapter 11 tried each on its own. Here we build the loop as a real agent, with
# the safety a loop needs, count how it fails, and put every method on one axis: accuracy against
# the compute it spent.
#
# **The task and the model** are chapter 11's: the parity of 2 to 6 named bits, and its shipped
# scratchpad GPT (`gpt-char-cot`), which writes `a1b0c1=` → `a1:1,b0:1,c1:0#0.` (each bit copied,
# then the parity so far). We score every method on **all 124 problems** of 2 to 6 bits, the whole
# problem space, so no sampling of test problems adds noise.
#
# ### An agent with two tools
#
# `roadmap_lib.agents.run_agent(generate, prompt, tools, parse, max_steps=..., timeout_s=...)` is
# the loop: the model writes one action; `parse` turns it into a tool call, a final answer, or
# nothing; the call runs only if its tool is in `tools` (the **allow-list**), on a worker thread
# with a **time limit**, and its result is appended to the text; repeat, at most `max_steps` model
# calls (the **step budget**). Every way an episode can end is a named status, so failures are
# counted, not guessed. For our model each action is short:
#
# - a bit's name (`a`, `,b`, ...) calls `lookup`, which writes that bit, read from the problem;
# - `:` calls `calc`, which writes the parity of the previous running parity and the bit just
#   looked up;
# - `#1.` is the final answer.
#
# The model is left with the *plan*: which name comes next, and when to stop. A 6-bit problem takes
# 13 model calls; the budget is 16. `run_agents` runs many episodes in lockstep, one batch per model
# call, the way a server batches agents. One trace, picked by a rule: the only problem on which
# the model's greedy chain is wrong.

# %%
cot_model = A.load_model()
problems = A.all_problems()
truth = [sum(p) % 2 for p in problems]
tt = test_time_results()
wrong = [i for i, (a, y) in enumerate(zip(tt["greedy"]["answer"], truth)) if a != y]  # from the shipped record
agent_runs = A.run_episodes(cot_model, problems)  # the greedy agent, all 124 problems in one batch
print(f"gpt-char-cot: {count_parameters(cot_model):,} parameters; greedy chain wrong on problems {wrong}")
i = wrong[0]
(chain,), = A.chains(cot_model, [problems[i]])[0]  # re-run live
print(f"greedy chain: {reasoning.tagged_prompt(problems[i])}{chain}   (true parity {truth[i]})")
for step in agent_runs[i].steps:
    print(f"  model wrote {step.output!r:6} -> {step.action}" + (f" -> {step.observation!r}" if step.observation else ""))
print(f"agent: {agent_runs[i].text}  status {agent_runs[i].status!r}, answer {agent_runs[i].answer}")

# %%
assert len(wrong) == 1 and reasoning.parse_answer(chain) != truth[i] and 100_000 < count_parameters(cot_model) < 110_000
assert [A.failure_kind(e) for e in agent_runs] == tt["greedy agent"]["status"], "the greedy agent no longer matches the record"
assert [A.episode_tokens(e) for e in agent_runs] == tt["greedy agent"]["tokens"]
assert agent_runs[i].status == "answered" and int(agent_runs[i].answer) == truth[i]
budget_12 = sum(e.status == "answered" and e.model_calls <= 12 and int(e.answer) == y for e, y in zip(agent_runs, truth))
print(f"greedy agent: {sum(int(e.answer) == y for e, y in zip(agent_runs, truth))}/124 right with a budget of "
      f"{A.MAX_STEPS} calls; a budget of 12 would leave {budget_12}/124")
assert all(e.status == "answered" and int(e.answer) == y for e, y in zip(agent_runs, truth))
assert budget_12 == 124 - 64

# %% [markdown]
# The greedy chain copies every bit right and then writes a wrong running parity at one step; in the
# agent loop the model writes only names and `:`, the tools fill in the bits and the parities, and
# the same model is right on all 124 problems (it was right on 123 alone). The step budget is a
# safety limit with a price: it must fit the longest legitimate plan. At 12 calls every 6-bit
# problem (13 calls) would end `"step budget"` one step from its answer, 60 of 124 left.
#
# ### How the agent fails
#
# Greedy, the agent never fails. To see its failure modes we **sample** the model at temperature
# 1.5 (why 1.5, below), 16 runs per problem and three sampling seeds
# (`python -m roadmap_lib build 25-test-time` ran them, with everything else in this section, and
# wrote `data/25_test_time.json`; the cell re-runs one batch, seed 0's first sample of all 124
# problems, and checks it against the file). How each run ended:

# %%
batch = A.run_episodes(cot_model, problems, A.TEMPERATURE, A.sample_seed(0, 0))
assert [A.failure_kind(e) for e in batch] == [s[0] for s in tt["runs"][0]["agent"]["status"]]
assert [A.episode_tokens(e) for e in batch] == [t[0] for t in tt["runs"][0]["agent"]["tokens"]]

table = A.status_table(tt)
runs_per_seed = len(problems) * tt["n"]
wrong_answers = [sum(s == "answered" and a != y for ans, st, y in zip(r["agent"]["answer"], r["agent"]["status"], truth)
                     for a, s in zip(ans, st)) for r in tt["runs"]]
kinds = ["answered", "malformed", "lookup: no such bit", "calc: missing operand", "refused", "timeout",
         "step budget", "silent"]
rows = ["| how the run ended | seed 0 | seed 1 | seed 2 |", "|---|---:|---:|---:|"]
rows += [f"| {k} | " + " | ".join(str(c) for c in table.get(k, [0, 0, 0])) + " |" for k in kinds]
rows += ["| of the answered: wrong answer | " + " | ".join(str(w) for w in wrong_answers) + " |"]
display(Markdown(f"Agent runs sampled at temperature {tt['temperature']}, {runs_per_seed} per seed:\n\n" + "\n".join(rows)))
for k in kinds[1:4]:  # one example of each failure: the first run of the re-run batch that ended that way
    ep = next((e for e in batch if A.failure_kind(e) == k), None)
    print(f"{k:>22}: " + (f"{ep.text!r}  {ep.detail}" if ep else "none in this batch"))

# %%
chain_wrong = [sum(a is not None and a != y for ans, y in zip(r["chains"]["answer"], truth) for a in ans)
               / sum(a is not None for ans in r["chains"]["answer"] for a in ans) for r in tt["runs"]]
agent_wrong = [w / c for w, c in zip(wrong_answers, table["answered"])]
print("wrong among answered: chains", [f"{x:.3f}" for x in chain_wrong], " agent runs", [f"{x:.3f}" for x in agent_wrong])
assert all(table[k][s] > table["lookup: no such bit"][s] > table["calc: missing operand"][s]
           for k in ["malformed"] for s in range(3)), "the order of the failure modes changed"
assert all(k not in table for k in ("refused", "timeout", "step budget", "silent"))
assert all(0.15 < m / runs_per_seed < 0.22 for m in table["malformed"])
assert max(agent_wrong) < 0.04 and min(chain_wrong) > 0.14

# %% [markdown]
# - **Malformed actions are the common failure** (about one run in five or six): at this
#   temperature the model often writes something that is none of the three actions. Then come
#   **look-ups of a bit the problem does not have** (a name past the last bit: the model lost its
#   place) and **a `:` with nothing looked up** (the calculator refuses it rather than guess). The
#   examples printed are the first of each kind in the re-run batch.
# - **The allow-list, the timeout and the step budget never fired**, and the table shows it rather
#   than assumes it: our parser can only name the two allowed tools, the tools return at once,
#   and every run that lost its way broke the format before it could loop 16 times. They are there
#   for the agent that *can* name any tool or loop politely forever; the tests of `agents` drive
#   each branch with a scripted fake model.
# - **The loud failures are the harmless ones**: a malformed run gives no answer, and a vote can
#   ignore it. The dangerous failures are quiet: runs that answered *wrongly*, by skipping or
#   repeating a name, or by a final answer that is not the last running parity. The tools make
#   them rare: among the runs that answered, fewer than 4% are
#   wrong, against more than 14% of the sampled chains that gave an answer (printed above).
#
# ### Accuracy against compute
#
# Now all the methods on one axis. **Compute** is counted in *token positions the model
# processes per problem*: for a chain, its prompt and the tokens it writes (one pass with a KV
# cache); for an agent run, the same summed over its model calls, each of which re-reads the whole
# text so far (our loop keeps no cache across calls). n samples cost n times one. The sampled
# methods use the first n of the 16 samples, n = 1 to 16, per seed:
#
# - **vote**: the majority answer of n sampled chains;
# - **verifier**: the first of the same n chains that `reasoning.chain_is_consistent` accepts (it
#   checks the arithmetic a chain shows, not the copying; chapter 11), else the first chain;
# - **agent**: the majority answer of n sampled agent runs, over the runs that answered;
# - and two single greedy runs: the **greedy chain** and the **greedy agent**.
#
# Why temperature 1.5: this model is confident, and at temperature 1 its sampled chains are nearly
# all right (the first number printed below), so there would be little for any method to fix. At
# 1.5 one chain in four is wrong: a deliberately noisy sampler, standing in for a less reliable
# model.

# %%
t1, _ = A.chains(cot_model, problems, 1, 1.0, 0)
t1_acc = sum(reasoning.parse_answer(t[0]) == y for t, y in zip(t1, truth)) / len(truth)
print(f"one sampled chain per problem at temperature 1.0: accuracy {t1_acc:.3f}")
methods = ("vote", "verifier", "agent")
curves = {m: [A.curve(tt, m, k) for k in range(len(tt["runs"]))] for m in methods}
singles = {"greedy chain": A.point(tt, "greedy"), "greedy agent": A.point(tt, "greedy agent")}
fig, ax = plt.subplots(figsize=(9, 4.2))
plot_test_time({"vote of n chains": curves["vote"], "verifier over n chains": curves["verifier"],
                "vote of n agent runs": curves["agent"]}, singles, ax=ax)
plt.show()


def _acc(m, n):  # accuracy of method m with n samples, one value per seed
    return [c[1][n - 1] for c in curves[m]]


def _cost(m, n):
    return sum(c[0][n - 1] for c in curves[m]) / len(curves[m])


lines = ["| method | n | tokens / problem | accuracy: mean (min-max over seeds) |", "|---|---:|---:|---|"]
lines += [f"| {name} | 1 | {x:.0f} | {y:.3f} |" for name, (x, y) in singles.items()]
lines += [f"| {m} | {n} | {_cost(m, n):.0f} | {sum(_acc(m, n)) / 3:.3f} ({min(_acc(m, n)):.3f}-{max(_acc(m, n)):.3f}) |"
          for m in methods for n in (1, 2, 4, 8, 16)]
display(Markdown("\n".join(lines)))

# %%
def _mean(xs):
    return sum(xs) / len(xs)


assert t1_acc > 0.95 and _mean(_acc("vote", 1)) < 0.8
gaps = {n: [v - o for v, o in zip(_acc("verifier", n), _acc("vote", n))] for n in A.NS}
print("verifier - vote, per seed:", {n: [round(g, 3) for g in gaps[n]] for n in (2, 3, 4, 8, 16)})
assert all(g > 0 for n in (2, 3, 4) for g in gaps[n]), "the verifier no longer leads at 2-4 chains in every seed"
late = [g for n in A.NS if n >= 8 for g in gaps[n]]
assert abs(_mean(late)) < max(late) - min(late), "at 8+ chains the gap is now larger than its spread"
greedy_x, greedy_y = singles["greedy chain"]
assert max(_mean(_acc(m, n)) for m in ("vote", "verifier") for n in A.NS) <= greedy_y
assert _mean(_acc("agent", 1)) <= _mean(_acc("vote", 1)), "one agent run is now more accurate than one chain"
assert _mean(_acc("agent", 1)) < _mean(_acc("vote", 6)) - 0.15 and _cost("agent", 1) > _cost("vote", 6)
assert min(_acc("agent", 16)) == 1.0 and min(_acc("agent", 8)) >= max(_acc("vote", 16) + _acc("verifier", 16))
assert 6 < _cost("agent", 1) / _cost("vote", 1) < 8 and singles["greedy agent"][1] == 1.0
assert 38 < greedy_x < 40 and 7 < singles["greedy agent"][0] / greedy_x < 8

# %% [markdown]
# What the figure says, for this regime (a 0.1M-parameter model, parity of 2 to 6 bits, sampling
# at temperature 1.5, three sampling seeds; the bands are the min-max over seeds):
#
# - **The verifier beats the vote when samples are few**: with 2 to 4 chains it is ahead in every
#   seed (the same chains, so the comparison is paired). It picks a chain whose arithmetic holds,
#   where the vote needs a majority. **From 8 chains on there is no difference**: the gap is
#   smaller than its spread across seeds, and both level off. When the verifier picks a wrong
#   chain, that chain's arithmetic is right, so its error is in the bits it copied or the names it
#   used, which the verifier does not check (chapter 11's warning).
# - **Per unit of compute the agent is the worst**: one agent run costs about 7 times a chain's
#   tokens (13 model calls for 6 bits, each re-reading the text), and one run is no more accurate
#   than one chain, because of the malformed runs. The vote of 6 chains costs fewer tokens than
#   one agent run and is far more accurate.
# - **But the agent has the highest ceiling**: its answered runs are rarely wrong, so its vote
#   reaches every one of the 124 problems in every seed at 16 runs, and from 8 runs on every seed
#   is at least as accurate as the best seed of either chain method at 16 chains. A vote fixes only
#   the problems on which most samples are right; the tools take the copying and the arithmetic
#   out of the model's job, so most of its samples are.
# - **The cheapest point is greedy**: the greedy chain, at about 39 tokens, is right on 123 of
#   124, which no vote or verifier over up to 16 sampled chains beats in the mean; the greedy agent
#   gets the last one for about 7.5 times the tokens. Sampling at a high temperature and buying the
#   accuracy back with samples is a bad trade *for a model this confident*. Test-time search pays
#   where greedy decoding fails and some samples succeed; how compute is best spent depends on how
#   hard a problem is for the model {cite}`snell2024scaling`.
#
# ### What it would cost
#
# Section 2's arithmetic turns token positions into money. Two price points: the price per token of
# section 2's char GPT on this CPU at batch 32, with the assumed core price (an overestimate for
# the smaller model here), and the compute-bound ceiling of Llama 2 7B on an A100 at MFU 0.4 and $2 an hour (section 2's `best`).
# Both count a re-read position like a generated one; on real hardware a prompt's positions go
# through in one batched pass and cost much less than generated ones, and a server that caches the
# prefix across calls would not re-read at all: the greedy agent would then process each position
# of its final text once (printed below the table).

# %%
per_token = {"this CPU, char GPT, batch 32": economics.serving_cost_per_million(throughput[32], core_price) / 1e6,
             "Llama 2 7B, A100 ceiling": economics.serving_cost_per_million(best, gpu.price_per_hour) / 1e6}
options = {"greedy chain": singles["greedy chain"], "verifier, 4 chains": (_cost("verifier", 4), _mean(_acc("verifier", 4))),
           "vote, 16 chains": (_cost("vote", 16), _mean(_acc("vote", 16))),
           "agent, 16 sampled runs": (_cost("agent", 16), _mean(_acc("agent", 16))),
           "greedy agent": singles["greedy agent"]}
cached = _mean([len(e.text) for e in agent_runs])
lines = ["| method | accuracy | tokens / problem | " + " | ".join(f"$ per million problems, {k}" for k in per_token) + " |",
         "|---|---:|---:|" + "---:|" * len(per_token)]
lines += [f"| {name} | {y:.3f} | {x:.0f} | " + " | ".join(f"{x * p * 1e6:,.2f}" for p in per_token.values()) + " |"
          for name, (x, y) in options.items()]
display(Markdown("\n".join(lines)))
print(f"greedy agent with the prefix cached across calls: {cached:.0f} positions per problem "
      f"(greedy chain: {greedy_x:.0f})")
assert abs(cached - greedy_x) < 1

# %% [markdown]
# The ratios carry over from our toy to any price: a vote of 16 costs 16 greedy chains, and the
# agent's 7.5-fold cost is almost all re-reading, which prefix caching removes (with the cache, the
# greedy agent processes as many positions as the greedy chain: the tools write the characters the
# model would have written). That is why serving stacks for agents cache prefixes, and why the
# unit matters: in model calls the agent is 13 times a chain, in cached positions it is the same.

# %% [markdown]
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-25-gpu-hours
# :nonumber:
# ```
# **Exercise 25.1 (accelerator-hours).** Write `gpu_hours(n_params, tokens, peak_flops, mfu)`: the
# accelerator-hours to train a dense transformer of `n_params` parameters on `tokens` tokens on
# accelerators of peak rate `peak_flops` (FLOP/s) running at model FLOPs utilisation `mfu` (a
# fraction). Use the $6ND$ estimate, and do not call `roadmap_lib.economics`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# FLOPs needed, divided by FLOPs actually done per second, gives seconds. Which of the four inputs
# makes the answer *larger* when it shrinks?
# ```

# %% [markdown]
# ```{solution-start} ex-25-gpu-hours
# :class: dropdown
# ```

# %%
def gpu_hours(n_params, tokens, peak_flops, mfu):
    ### BEGIN SOLUTION
    return 6 * n_params * tokens / (peak_flops * mfu) / 3600
    ### END SOLUTION


# %% [markdown]
# The achieved rate is `peak_flops * mfu`; a lower utilisation means more hours.
#
# ```{solution-end}
# ```

# %%
check_gpu_hours(gpu_hours)

# %% [markdown]
# ```{exercise-start}
# :label: ex-25-recovered
# :nonumber:
# ```
# **Exercise 25.2 (how much did the patch recover?).** Write `recovered(patched, clean, corrupt)`:
# `patched` is a tensor of metric values from patched runs, `clean` and `corrupt` the metric of the
# clean and corrupt runs (numbers). Return, elementwise, the share of the clean-corrupt gap that each
# patch recovers: 0 where the patch does nothing, 1 where it restores the clean run.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Check your formula at the two ends: what must it return when `patched == corrupt`, and when
# `patched == clean`?
# ```

# %% [markdown]
# ```{solution-start} ex-25-recovered
# :class: dropdown
# ```

# %%
def recovered(patched, clean, corrupt):
    ### BEGIN SOLUTION
    return (patched - corrupt) / (clean - corrupt)
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_recovered(recovered)

# %% [markdown]
# ```{exercise-start}
# :label: ex-25-premium
# :nonumber:
# ```
# **Exercise 25.3 (predict, then measure: the token premium of Korean).** First *predict*, without
# running anything: with chapter 02's English BPE, how many tokens does a Korean message take per
# token of its English original, over the first 100 messages of the sample? Korean is written in
# Hangul, three UTF-8 bytes per syllable block. Put your guess in `prediction`. Then write
# `premium(tokenizer, rows, lang)`, the total tokens of `rows` in `lang` divided by their total
# tokens in English (`row["en"]`), and measure.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# A Hangul block is rarely merged by a BPE that never saw Hangul: think bytes per block, and how
# many blocks a Korean word has compared with the English word's tokens. For the function: sum
# before dividing.
# ```

# %% [markdown]
# ```{solution-start} ex-25-premium
# :class: dropdown
# ```

# %%
prediction = 3.0  # your guess, before measuring


def premium(tokenizer, rows, lang):
    ### BEGIN SOLUTION
    other = sum(len(tokenizer.encode(r[lang])) for r in rows)
    return other / sum(len(tokenizer.encode(r["en"])) for r in rows)
    ### END SOLUTION


# %% [markdown]
# Each Hangul block costs up to three byte-tokens, while English words are often one or two tokens.
#
# ```{solution-end}
# ```

# %%
first100 = sample[:100]
check_premium(premium, english_bpe, first100)
check_prediction(prediction, premium(english_bpe, first100, "ko"), english_bpe, first100, "ko")

# %% [markdown]
# ```{exercise-start}
# :label: ex-25-run-tokens
# :nonumber:
# ```
# **Exercise 25.4 (what an agent run costs).** Write `run_tokens(episode)`: the token positions an
# agent run cost when every model call re-reads the whole text so far and then writes its output
# (section 4's unit). `episode` is a `roadmap_lib.agents.Episode`: `episode.prompt` is the prompt,
# `episode.steps` the model calls in order, each with `.output` (what the model wrote) and
# `.observation` (what the tool appended after it, or `None`). Runs that ended in a failure count
# too. Do not call `A.episode_tokens`.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Grow the text the way the loop did: what does a call read before it writes, and which two
# things does each step append to the text for the next call to read?
# ```

# %% [markdown]
# ```{solution-start} ex-25-run-tokens
# :class: dropdown
# ```

# %%
def run_tokens(episode):
    ### BEGIN SOLUTION
    text, total = episode.prompt, 0
    for step in episode.steps:
        total += len(text) + len(step.output)  # re-read everything so far, then write
        text += step.output + (step.observation or "")
    return total
    ### END SOLUTION


# %% [markdown]
# The sum grows with the square of the number of calls: the reason agents are served with the
# prefix cached, which brings the cost down to `len(episode.text)`.
#
# ```{solution-end}
# ```

# %%
check_run_tokens(run_tokens)

# %% [markdown]
# ## Summary
#
# - The same message costs other languages more tokens under an English tokenizer, several times
#   more for non-Latin scripts; a multilingual BPE of the same size narrows the gap and shifts part
#   of the cost onto English.
# - Through a shared vocabulary alone, a tiny English-trained classifier transfers a little to nine
#   languages, through strings the translations keep; separate vocabularies transfer nothing.
# - $6ND$, the MFU, the price, the power, the PUE and the grid: each is a parameter, and the chain
#   reproduces GPT-3's reported compute and backs out Llama 2's utilisation.
# - Attention maps suggested, patching proved: the copy model solved its task with one positional
#   head, not an induction circuit, and failed when the period changed.
# - An agent loop with two tools (look a bit up, compute a parity), an allow-list, a step budget and
#   time limits made chapter 11's 0.1M-parameter parity model right on all 124 problems greedily.
#   Sampled at temperature 1.5, its runs failed loudly (malformed actions, look-ups of missing
#   bits) more often than quietly; a verifier beat the vote with few samples, the agent cost about
#   7 times a chain per run but reached the highest accuracy, and the cheapest point was the greedy
#   chain. Most of the agent's cost is re-reading its own text, which prefix caching removes.
