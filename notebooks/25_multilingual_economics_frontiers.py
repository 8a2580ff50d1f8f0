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
# # 25. Frontiers: many languages, what it costs, and looking inside
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
#   shortcut instead of the mechanism we set out to find.
#
# **What you need**: tokenizers and BPE (chapter 02), the decoder-only GPT (chapter 07) and its
# decoding loop with a KV cache (chapters 15 and 18), scaling laws and the $6ND$ FLOP count
# (chapter 09); chapter 20's energy estimate is the small version of section 2.
#
# **Run time**: about 80 s measured on a busy shared 2-core machine, one thread (less on an idle
# laptop); the longer runs are shipped as results, see each section.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from ipywidgets import FloatLogSlider, FloatSlider, interact

from roadmap_lib import data_path, economics, interpret, multilingual, set_seed
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import costs
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import induction as I
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers import multilingual_study as S
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.artifacts import transfer_results
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.exercises import (
    check_gpu_hours,
    check_prediction,
    check_premium,
    check_recovered,
)
from roadmap_lib.chapters.ch25_multilingual_economics_frontiers.plots import (
    plot_attention,
    plot_costs,
    plot_logit_lens,
    plot_patching,
    plot_premium,
    plot_transfer,
)
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
# the corruption and the metric. Agents and test-time compute (best-of-n with a verifier, tool loops),
# planned for this chapter, are not here yet.

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
