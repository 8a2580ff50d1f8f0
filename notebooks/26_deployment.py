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
# # 26. Deployment: a real server, measured under load, and models that leave the library
#
# **What you will learn**
#
# - what the big libraries are for (Transformers, PyTorch, JAX, DeepSpeed, vLLM, llama.cpp), and how
#   to move our weights into transformers' format and back;
# - how an inference server is built: an OpenAI-style `/v1/completions` endpoint, streaming by
#   server-sent events, a bounded queue, *dynamic batching* of concurrent requests, validation that
#   answers a bad request with a 400 naming the field, health and metrics, a graceful shutdown;
# - how to measure it: throughput, p50/p95/p99 latency and time to first token at increasing
#   concurrency, batched against unbatched, float32 against int8 against a smaller model;
# - exporting a model with its KV cache to ONNX, running it in ONNX Runtime with the same logits, and
#   what torch.export and torch.compile change;
# - four pitfalls, each shown with its symptom: a tokenizer that does not match the model, the
#   padding side in batched generation, dtype drift between export and runtime, unbounded queues.
#
# **What you need**: the character-level GPT of chapter 07 (we serve its checkpoint), the KV cache and
# continuous batching of chapter 15 (the server's batcher is built on them), int8 quantisation from
# chapter 14, and sampling from chapter 18.
#
# **Run time**: 110-155 s as measured on a busy shared 2-core machine (load average 8-20; less on an idle laptop);
# most of it is the ONNX export (a one-off trace of the model) and two short live load tests.

# %%
# %matplotlib inline
import asyncio
import json
import tempfile
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from ipywidgets import FloatSlider, IntSlider, interact

from roadmap_lib import set_seed
from roadmap_lib.chapters.ch26_deployment.exercises import check_little, check_percentile, check_stream_text
from roadmap_lib.chapters.ch26_deployment.experiments import (
    alone_greedy,
    burst_test,
    char_loss,
    first_divergence,
    left_padded_greedy,
    live_load_test,
    load_results,
    padded_batch_greedy,
    serve_load_table,
    simulate_queue,
)
from roadmap_lib.chapters.ch26_deployment.plots import plot_export, plot_latency, plot_queue, plot_throughput
from roadmap_lib.data import CharVocab, load_text
from roadmap_lib.export import CachedGPT, export_onnx, load_pretrained, onnx_forward, onnx_greedy, onnx_session, save_pretrained
from roadmap_lib.generation import greedy
from roadmap_lib.models.hf import gpt_to_hf
from roadmap_lib.serve import create_app, reference_completion, run_async, running_server, zoo_model

set_seed(0)
torch.set_num_threads(1)  # the book's convention: one thread, the same numbers on every machine
model, vocab = zoo_model("gpt-char-jargon")
text = load_text()
print(f"gpt-char-jargon: {model.num_parameters():,} parameters, context {model.config.context_length}, "
      f"{len(vocab.itos)} characters")

# %% [markdown]
# ## 1. The landscape, and moving weights between libraries
#
# A model is a set of tensors plus the code that reads them. Every library below reads tensors in its
# own layout and names, so "deploying" starts with moving weights into the format the runtime expects.
#
# | library | what it is for | when you reach for it |
# |---|---|---|
# | **PyTorch** {cite}`paszke2019pytorch` | tensors, autograd, eager execution; `torch.export` / `torch.compile` to capture graphs | research, training, the reference implementation everything else is checked against |
# | **Transformers** {cite}`wolf2020transformers` | model definitions + `from_pretrained`/`save_pretrained` for thousands of architectures, `generate`, tokenizers | the common exchange format for weights (config.json + safetensors); fine-tuning with peft/trl |
# | **JAX** {cite}`bradbury2018jax` | NumPy-like functions compiled by XLA; `grad`, `vmap`, `pjit` as function transformations | large-scale training on TPUs, functional research code |
# | **DeepSpeed** {cite}`rasley2020deepspeed` | ZeRO sharding of optimiser states, gradients and weights {cite}`rajbhandari2020zero`, offload, pipeline parallelism | training (and some inference) of models that do not fit one GPU |
# | **vLLM** {cite}`kwon2023vllm` | a serving engine: PagedAttention, continuous batching, an OpenAI-compatible HTTP server | high-throughput LLM serving on GPUs |
# | **llama.cpp** {cite}`gerganov2023llamacpp` | C/C++ inference with quantised GGUF files (4-8 bits), no Python | laptops, phones, CPUs and small GPUs; local inference |
# | **ONNX Runtime** {cite}`onnx2017` | runs an exported graph (the ONNX format) on many backends | a framework-free deployment of a fixed graph |
#
# Our GPT has the GPT-2 architecture, so `roadmap_lib.export.save_pretrained` converts it to a
# `GPT2LMHeadModel` (chapter 07's converter) and writes `config.json` and `model.safetensors`. Loading that
# folder with the standard `AutoModelForCausalLM.from_pretrained` must give the same logits, and its
# `generate` the same greedy text.

# %%
folder = Path(tempfile.mkdtemp()) / "gpt-char-jargon-hf"
save_pretrained(model, folder)
hf = load_pretrained(folder)
prompt_ids = vocab.encode("The hacker ethic is")[None]
with torch.no_grad():
    hf_gap = (hf(prompt_ids).logits - model(prompt_ids)).abs().max().item()
hf_text = vocab.decode(hf.generate(prompt_ids, max_new_tokens=40, do_sample=False, pad_token_id=0)[0, prompt_ids.shape[1]:].tolist())
our_text = vocab.decode(greedy(model, prompt_ids, 40, use_cache=True)[0, prompt_ids.shape[1]:].tolist())
print(sorted(p.name for p in folder.iterdir()))
print(f"{type(hf).__name__}: largest logit difference {hf_gap:.1e}")
print(f"transformers generate: {hf_text!r}\nour greedy:            {our_text!r}")
assert hf_gap < 1e-5 and hf_text == our_text

# %% [markdown]
# ## 2. A real server
#
# `roadmap_lib.serve` is a FastAPI application run by uvicorn, the same stack many production model
# servers use. Its parts, one module each:
#
# - **schemas**: the body of `POST /v1/completions` (`prompt`, `max_tokens`, `temperature`, `top_p`,
#   `seed`, `stream`), validated strictly: a wrong type, a value out of range, an unknown field is a 400
#   whose message starts with the field's name;
# - **batcher**: one task owns the model. A request becomes a *job* on a bounded `asyncio.Queue`; before
#   each decoding step the batcher admits waiting jobs into free slots (up to `max_batch`), prefills
#   them, then decodes one token for every running job in one ragged batch (chapter 15's continuous
#   batching {cite}`yu2022orca`, over its paged KV cache {cite}`kwon2023vllm`). When idle it waits up to
#   `max_wait_ms` after the first job, so that a burst starts as one batch;
# - **app**: the endpoints. A full queue answers 503 at once, instead of letting every client wait;
#   `/health` and `/metrics` (Prometheus text) report the queue, the batch sizes, the refusals;
# - **server**: `python -m roadmap_lib serve gpt-char-jargon` in a terminal, or `running_server(app)`,
#   which runs uvicorn in a thread on 127.0.0.1 and stops it gracefully when the `with` block ends.
#
# The model runs in a worker thread, so the event loop keeps accepting (and refusing) connections while
# a step runs. Eight requests sent at once; each answer must equal decoding that request alone, offline
# (greedy, or sampled with its own seed).

# %%
app = create_app(model, vocab, model_name="gpt-char-jargon", max_batch=8, max_wait_ms=20)
bodies = [{"prompt": p, "max_tokens": 16} for p in ["The hacker ", "A kludge is ", "Unix ", "bug: n. ", "foo ",
                                                     "The Jargon File "]]
bodies += [{"prompt": "A hacker is ", "max_tokens": 16, "temperature": 0.8, "top_p": 0.95, "seed": s} for s in (1, 2)]


async def send_all(url, bodies):
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(*[client.post("/v1/completions", json=b) for b in bodies])


with running_server(app) as (url, server):
    responses = run_async(send_all(url, bodies))
    health = httpx.get(f"{url}/health").json()
    metrics = httpx.get(f"{url}/metrics").text

print(json.dumps(responses[0].json(), indent=1)[:420], "...")
rows = ["| prompt | settings | completion | equals offline |", "|---|---|---|---|"]
matches = []
for b, r in zip(bodies, responses):
    got = r.json()["choices"][0]["text"]
    ref = reference_completion(model, vocab, b["prompt"], b["max_tokens"], temperature=b.get("temperature", 0.0),
                               top_p=b.get("top_p", 1.0), seed=b.get("seed"))
    matches.append(r.status_code == 200 and got == ref)
    settings = f"T={b['temperature']}, seed {b['seed']}" if "seed" in b else "greedy"
    rows.append(f"| `{b['prompt']}` | {settings} | `{got!r}` | {matches[-1]} |")
display(Markdown("\n".join(rows)))
mean_batch = float([ln for ln in metrics.splitlines() if ln.startswith("serve_mean_batch_size")][0].split()[1])
print(f"health: {health}\nmean batch size over the run: {mean_batch:.2f}")
assert all(matches)
assert mean_batch > 4  # most steps decoded several requests together

# %% [markdown]
# Every answer equals the request decoded alone: batching changes *when* a request's tokens are
# computed, never *which* tokens. The two sampled requests differ from each other only through their
# seeds. The metrics say most steps decoded several requests at once.
#
# **Streaming.** With `"stream": true` the answer is a stream of server-sent events, one `data: {json}`
# line per token and a final `data: [DONE]`: the client can show the first characters long before the
# last one is computed. The text of the chunks must equal the non-streamed answer.
#
# **Bad requests.** Each must come back as a 4xx whose message names what is wrong; the server keeps
# serving.

# %%
bad_bodies = {
    "not JSON": b"{prompt: hello",
    "no prompt": json.dumps({"max_tokens": 5}).encode(),
    "max_tokens = 0": json.dumps({"prompt": "Unix", "max_tokens": 0}).encode(),
    "too long for the context": json.dumps({"prompt": "Unix " * 10, "max_tokens": 30}).encode(),
    "a character the model never saw": json.dumps({"prompt": "naïve café ☕"}).encode(),
    "temperature as a string": json.dumps({"prompt": "Unix", "temperature": "0.7"}).encode(),
    "an unsupported field": json.dumps({"prompt": "Unix", "n": 3}).encode(),
}
app = create_app(model, vocab, model_name="gpt-char-jargon")
with running_server(app) as (url, server), httpx.Client(base_url=url, timeout=30) as client:
    plain = client.post("/v1/completions", json={"prompt": "The hacker ", "max_tokens": 30}).json()["choices"][0]["text"]
    with client.stream("POST", "/v1/completions", json={"prompt": "The hacker ", "max_tokens": 30, "stream": True}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    errors = {k: client.post("/v1/completions", content=v, headers={"content-type": "application/json"})
              for k, v in bad_bodies.items()}
    still_ok = client.get("/health").json()["status"]

print("\n".join(lines[:2]), "\n...\n" + "\n".join(lines[-2:]))
streamed = "".join(json.loads(ln[6:])["choices"][0]["text"] for ln in lines[:-1])
print(f"streamed {len(lines) - 2} token chunks; equal to the plain answer: {streamed == plain}")
display(Markdown("| request | status | message |\n|---|---|---|\n" + "\n".join(
    f"| {k} | {r.status_code} | {r.json()['error']['message'][:110]} |" for k, r in errors.items())))
assert streamed == plain and len(lines) == 30 + 2
assert all(r.status_code == 400 for r in errors.values()) and still_ok == "ok"

# %% [markdown]
# ## 3. Measured under load
#
# `benchmarks/serve_load.py` starts four servers as separate processes (one CPU thread each) and runs an
# async client against each at 1, 2, 4, 8 and 16 concurrent clients (a *closed loop*: each client sends
# its next request when the previous one is answered), streaming, 24 generated characters per request,
# prompts cut from the Jargon File at seeded places. It repeats the whole sweep in rounds that visit the
# servers in turn, and keeps every round. The servers:
#
# - **fp32 batched**: gpt-char-jargon with up to 8 sequences per step;
# - **fp32 unbatched**: the same with `--max-batch 1`, one request at a time;
# - **int8 batched**: its linear layers quantised to int8 (round to nearest, per channel; chapter 14);
# - **small batched**: the smaller model named in the file (the distilled student of chapter 11 when it
#   is built, otherwise chapter 15's draft model).
#
# Latency is wall-clock time from sending a request to its last token; time to first token (TTFT) is
# sending to the first streamed token. The machine's load is in the file too: on a shared machine every
# number is slower than on an idle one, the same for all servers since the rounds interleave them.

# %%
load = load_results("26_serve_load")
table = serve_load_table(load)
print(f"{load['settings']['rounds']} rounds, {load['machine']['cpu_count']} CPUs, load average "
      f"{load['machine']['loadavg_1min_before']:.1f} -> {load['machine']['loadavg_1min_after']:.1f}; "
      f"small model: {load['small_model']}")
fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
plot_throughput(table, ax=axes[0])
plot_latency(table, ax=axes[1])
plot_latency(table, ax=axes[2], metric="ttft")
plt.tight_layout()
plt.show()

head = "| server | clients | tokens/s (rounds' min-max) | p50 / p95 / p99 latency (ms) | p50 / p95 TTFT (ms) |\n|---|---|---|---|---|\n"
display(Markdown(head + "\n".join(
    f"| {cfg} | {r['concurrency']} | {r['throughput']:.0f} ({r['throughput_min']:.0f}-{r['throughput_max']:.0f}) | "
    f"{1000 * r['latency_p50']:.0f} / {1000 * r['latency_p95']:.0f} / {1000 * r['latency_p99']:.0f} | "
    f"{1000 * r['ttft_p50']:.0f} / {1000 * r['ttft_p95']:.0f} |"
    for cfg, rows in table.items() for r in rows if r["concurrency"] in (1, 4, 16))))

# %%
def level(cfg, c):
    return next(r for r in table[cfg] if r["concurrency"] == c)


b16, u16 = level("fp32 batched", 16), level("fp32 unbatched", 16)
b1, u1 = level("fp32 batched", 1), level("fp32 unbatched", 1)
print(f"16 clients: batched {b16['throughput']:.0f} tok/s (rounds {b16['throughput_min']:.0f}-{b16['throughput_max']:.0f}), "
      f"unbatched {u16['throughput']:.0f} ({u16['throughput_min']:.0f}-{u16['throughput_max']:.0f}): "
      f"x{b16['throughput'] / u16['throughput']:.1f}")
print(f" 1 client:  batched {b1['throughput']:.0f} ({b1['throughput_min']:.0f}-{b1['throughput_max']:.0f}), "
      f"unbatched {u1['throughput']:.0f} ({u1['throughput_min']:.0f}-{u1['throughput_max']:.0f})")
print(f"16 clients, p95 latency: batched {1000 * b16['latency_p95']:.0f} ms, unbatched {1000 * u16['latency_p95']:.0f} ms")
# batching wins at 16 clients by more than the spread between rounds
assert b16["throughput_min"] > u16["throughput_max"] and b16["latency_p95"] < u16["latency_p95"]
# one client: the same work, so the rounds' ranges overlap (no difference)
assert b1["throughput_min"] <= u1["throughput_max"] and u1["throughput_min"] <= b1["throughput_max"]
lost = sum(r["requests"] - r["ok"] for rows in table.values() for r in rows)
assert lost == 0  # every request of the sweep was answered

# %% [markdown]
# What the file says, for this model (0.8M parameters, 24 characters per request, one thread per server,
# on the machine and load recorded above):
#
# - **Batching is the throughput lever.** Unbatched, the server's throughput barely moves with the
#   number of clients: one request at a time, the others wait, and latency grows with the queue. Batched,
#   more clients fill each step; the gap at 16 clients is larger than the spread between the rounds
#   (the asserted claim). At one client the two servers do the same work: any gap there is noise.
# - **Latency is the price of waiting, not of batching.** At 16 clients the unbatched server's p95
#   latency is the time to serve most of the queue in front of a request; the batched one's is a few
#   batched steps, each a little slower than a single-sequence step.
# - **int8 and the smaller model** are compared in the next cell, with the same rule: a gap smaller
#   than the rounds' spread is no difference.

# %%
def compare(a, b, c=16):
    ra, rb = level(a, c), level(b, c)
    if ra["throughput_min"] > rb["throughput_max"]:
        verdict = f"{a} faster"
    elif rb["throughput_min"] > ra["throughput_max"]:
        verdict = f"{b} faster"
    else:
        verdict = "no difference (ranges overlap)"
    print(f"{c} clients: {a} {ra['throughput']:.0f} ({ra['throughput_min']:.0f}-{ra['throughput_max']:.0f}) vs "
          f"{b} {rb['throughput']:.0f} ({rb['throughput_min']:.0f}-{rb['throughput_max']:.0f}) tok/s: {verdict}")
    return verdict


int8_verdict = compare("int8 batched", "fp32 batched")
small_verdict = compare("small batched", "fp32 batched")
assert int8_verdict != "int8 batched faster"  # int8 saves memory here, not time
assert small_verdict == "small batched faster"  # a 1-layer model does a quarter of the layers' work
print("overload burst:", load["overload"])
assert load["overload"]["answered"] + load["overload"]["refused_503"] == load["overload"]["requests"]
assert load["overload"]["other"] == [] and load["overload"]["refused_503"] > 0

# %% [markdown]
# The int8 server stores its linear layers in a quarter of the bytes (chapter 14), but our
# `QuantizedLinear` dequantises them back to float for every product, so it is not a speed win here
# (the verdict above, with the rounds' ranges): int8 buys memory, and speed only where a kernel
# multiplies int8 directly. A smaller model is the
# honest speed lever: fewer layers, less work per token (its quality is chapter 11's and 15's subject).
#
# The last lines are the *overload* test: a burst of requests at once against a server whose queue holds
# only a few. Every request got an answer or a 503 refusal, none timed out or vanished: refusing early
# is what lets the accepted ones finish.
#
# **A live load test, small enough for this page.** The same server in this process, 16 requests of
# 12 characters from 8 clients, batched and unbatched, one run each (a demonstration, not a claim: the claims are the
# file's, over rounds).

# %%
live_prompts = [text[i:i + 16] for i in torch.randint(0, len(text) - 16, (16,), generator=torch.Generator().manual_seed(26)).tolist()]
live = {mb: live_load_test(model, vocab, live_prompts, concurrency=8, max_tokens=12, max_batch=mb) for mb in (8, 1)}
for mb, r in live.items():
    print(f"max_batch={mb}: {r['ok']}/{r['requests']} answered, {r['throughput_tok_s']:.0f} tok/s, mean batch {r['mean_batch']:.1f}, "
          f"mean latency {1000 * sum(r['latency_s']) / len(r['latency_s']):.0f} ms")
assert live[8]["mean_batch"] > 2 and live[1]["mean_batch"] == 1
assert live[8]["ok"] == live[1]["ok"] == 16

# %% [markdown]
# ## 4. Export: ONNX with a KV cache, torch.export, torch.compile
#
# An exported graph takes tensors and returns tensors; our `KVCache` objects are Python. So what is
# exported is `roadmap_lib.export.CachedGPT`, the model as a pure function of its cache:
#
# $$(\text{ids}_{B \times n},\ \text{past}_{L \times 2 \times B \times H \times p \times d}) \mapsto
#   (\text{logits}_{B \times n \times V},\ \text{present}_{L \times 2 \times B \times H \times (p+n) \times d})$$
#
# with batch $B$, new length $n$ and past length $p$ left dynamic, so one graph does both the prefill
# ($p = 0$, the prompt) and every decoding step ($n = 1$). Exporting traces the model once;
# ONNX Runtime then runs the file without PyTorch. `torch.onnx.export` has two tracers: the
# `torch.export`-based one (`dynamo=True`, the default, with symbolic shapes; the benchmark below
# times it) and the older TorchScript tracer (`dynamo=False`), which here takes seconds instead of
# a minute or more and gives a graph that behaves the same (the tests check both). We use it live.

# %%
onnx_path = export_onnx(model, Path(tempfile.mkdtemp()) / "gpt-char-jargon.onnx", dynamo=False)
session = onnx_session(onnx_path)
wrapper = CachedGPT(model)
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, len(vocab.itos), (2, 20), generator=g)
with torch.no_grad():
    want_prefill, past = wrapper(ids, wrapper.empty_past(2))
    want_step, _ = wrapper(ids[:, :1], past)
got_prefill, got_past = onnx_forward(session, ids, wrapper.empty_past(2))
got_step, _ = onnx_forward(session, ids[:, :1], got_past)
gap_prefill = (got_prefill - want_prefill).abs().max().item()
gap_step = (got_step - want_step).abs().max().item()
short = vocab.encode("The hacker ")[None]
onnx_text = vocab.decode(onnx_greedy(session, short, 40, wrapper.empty_past(1))[0, short.shape[1]:].tolist())
torch_text = vocab.decode(greedy(model, short, 40, use_cache=True)[0, short.shape[1]:].tolist())
print(f"{onnx_path.name}: {[i.name + str(i.shape) for i in session.get_inputs()]} -> {[o.name for o in session.get_outputs()]}")
print(f"largest logit difference, prefill {gap_prefill:.1e}, decode step with the cache {gap_step:.1e}")
print(f"ONNX Runtime greedy: {onnx_text!r}\nPyTorch greedy:      {torch_text!r}")
assert gap_prefill < 1e-4 and gap_step < 1e-4 and onnx_text == torch_text

# %% [markdown]
# The speed of each runtime comes from `benchmarks/export_latency.py`: one decoding step (batch 1, a cache
# of 32 tokens) in CPU time, the median of many calls, and the one-off cost of each way of getting there.

# %%
export_rec = load_results("26_export_latency")
plot_export(export_rec)
plt.show()
rts = export_rec["runtimes"]


def ms(seconds):
    return "" if seconds is None else f"{1000 * seconds:.2f}"


display(Markdown("| runtime | one-off setup (s, wall) | decode step (ms, CPU) | prefill of 32 (ms, CPU) | max logit gap |\n|---|---|---|---|---|\n" + "\n".join(
    f"| {n} | {r['setup_s']:.1f} | {ms(r['step_s'])} | {ms(r.get('prefill_s'))} | {r['max_abs_diff']:.1e} |"
    for n, r in rts.items() if "step_s" in r)))
print(f"ONNX file {rts['ONNX Runtime']['file_bytes'] / 2**20:.1f} MiB; machine load average during the benchmark "
      f"{export_rec['machine']['loadavg_1min']:.1f}")
assert rts["ONNX Runtime"]["max_abs_diff"] < 1e-4 and export_rec["onnx_greedy_32_equal"]
assert rts["ONNX Runtime"]["step_s"] < rts["torch.compile"]["step_s"] < rts["eager PyTorch"]["step_s"]
assert rts["torch.compile"]["setup_s"] > rts["ONNX Runtime"]["setup_s"]  # compiling costs more than exporting

# %% [markdown]
# On this tiny model a decoding step is mostly overhead: Python dispatching a few dozen small operators
# in eager PyTorch, against one call into ONNX Runtime's C++ loop over a fixed graph. That is why the
# exported graph is faster per step here; on large models the matrix products dominate and the gap
# shrinks. `torch.export` only *captures* the graph (its module still runs PyTorch's operators one by
# one, so its step costs what eager's does), and `torch.compile` pays a long one-off compilation,
# quoted in the table (wall-clock, on the loaded machine recorded in the file), for a step between the
# two. Compile once per process, or it costs more than it saves. (The ONNX file of this 0.8M-parameter
# model is the float32 weights plus a small graph: its size is in the benchmark file.)
#
# ## 5. Pitfalls, each with its symptom
#
# **A tokenizer that does not match the model.** Nothing crashes: ids are just numbers. Here the same
# text is encoded with a vocabulary built from a different text (the same characters, but sorted in
# another order would do as much harm): the model sees other characters than the ones written.

# %%
other_vocab = CharVocab("".join(sorted(set(text), key=lambda ch: (ord(ch) * 7919) % 1009)))  # the same characters, another order
val = text[-6000:]
right, wrong = char_loss(model, vocab.encode(val)), char_loss(model, other_vocab.encode(val))
garbled = vocab.decode(greedy(model, other_vocab.encode("The hacker ")[None], 30, use_cache=True)[0, 11:].tolist())
print(f"loss on held-out text: matching tokenizer {right:.2f} nats/char, mismatched {wrong:.2f}")
print(f"greedy from 'The hacker ' through the wrong tokenizer: {garbled!r}")
assert wrong > right + 2
# %% [markdown]
# The symptom is quality, not an error: the loss jumps by more than 2 nats per character and the text
# is nonsense. The fix is structural: ship the tokenizer *with* the weights (our zoo stores the
# vocabulary in the checkpoint's record; transformers saves `tokenizer.json` next to `model.safetensors`)
# and load both from the same place.
#
# **The padding side in batched generation.** A batch is a rectangle, so shorter prompts are padded. A
# decoder-only model continues from the *last* position of each row, so padding on the right puts pad
# tokens between a prompt and its continuation; padding on the left without a mask lets every row
# attend to its pads and shifts its positions. Five prompts of different lengths (written for this
# cell, lengths 3 to 16), each batch decoded greedily and compared with each prompt decoded alone;
# transformers' `generate` runs our model converted to GPT-2:

# %%
pad_prompts = [vocab.encode(p).tolist() for p in ["Unix", "The hacker ethic", "bug", "A kludge is", "foo bar baz"]]
pad_id = vocab.stoi[" "]  # a character vocabulary has no pad token: pad with spaces
alone = alone_greedy(model, pad_prompts, 12)
hf_model = gpt_to_hf(model).eval()
outputs = {
    "right padding + attention mask (transformers)": padded_batch_greedy(hf_model, pad_prompts, 12, side="right", pad_id=pad_id, attention_mask=True),
    "left padding, no attention mask (our GPT)": left_padded_greedy(model, pad_prompts, 12, pad_id=pad_id),
    "left padding + attention mask (transformers)": padded_batch_greedy(hf_model, pad_prompts, 12, side="left", pad_id=pad_id, attention_mask=True),
}
wrong_rows = {}
for name, out in outputs.items():
    wrong_rows[name] = [i for i, (o, a) in enumerate(zip(out, alone)) if o != a]
    print(f"{name:46s}: rows {wrong_rows[name]} differ from decoding alone; row 0: {vocab.decode(out[0])!r} (alone: {vocab.decode(alone[0])!r})")
assert wrong_rows["left padding + attention mask (transformers)"] == []
assert len(wrong_rows["right padding + attention mask (transformers)"]) >= 3
assert len(wrong_rows["left padding, no attention mask (our GPT)"]) >= 3
assert 1 not in wrong_rows["right padding + attention mask (transformers)"]  # the longest prompt has no padding

# %% [markdown]
# Only left padding *with* the attention mask (from which transformers also derives the position ids)
# reproduces every row (transformers even warns when it sees right padding, but only in the log). The longest prompt (row 1) has no padding, so it comes out right whatever the
# setup: that is why this bug survives tests that use one prompt, or prompts of one length. Our server avoids the question altogether: its ragged batches give each
# sequence its own length and positions (chapter 15).
#
# **Dtype drift between export and runtime.** A graph is exported for one dtype. Two ways it drifts:
# the runtime is fed another dtype (ONNX Runtime refuses, with a message about the input's *type*; our
# wrapper says which argument and why), or the model is run in a lower precision than the one that was
# validated, which changes the numbers without any error:

# %%
try:
    onnx_forward(session, short, wrapper.empty_past(1, torch.float64))
except TypeError as err:
    print("float64 cache into a float32 graph:", err)
with torch.no_grad():
    half = CachedGPT(zoo_model("gpt-char-jargon")[0].to(torch.bfloat16))
    drift = (half(ids, half.empty_past(2, torch.bfloat16))[0].float() - want_prefill).abs().max().item()
fp32_long = greedy(model, short, 48, use_cache=True)[0, short.shape[1]:].tolist()
bf16_long = greedy(half.model, short, 48, use_cache=True)[0, short.shape[1]:].tolist()
split = first_divergence(fp32_long, bf16_long)
print(f"bfloat16 vs float32: largest logit difference {drift:.2f}; greedy texts first differ at character {split}")
print(f"float32:  {vocab.decode(fp32_long)!r}\nbfloat16: {vocab.decode(bf16_long)!r}")
assert drift > 100 * max(gap_prefill, gap_step)

# %% [markdown]
# bfloat16 keeps 8 bits of mantissa, so logits move by a visible amount, far more than the export's
# own error; whether the greedy text changes, and where, depends on how close the top two characters
# are (the line above says what happened here). Check parity in the dtype you will *run*, not only the
# one you trained in.
#
# **Unbounded queues.** When requests arrive faster than the server can answer them, an unbounded queue
# grows without limit, and so does every request's wait (Little's law: the time in the system is the
# number in it divided by the rate they leave {cite}`little1961proof`). A bounded queue refuses the
# excess at once and keeps the wait of the accepted ones bounded: the clients that are refused can retry
# elsewhere, the ones accepted are served before they time out. A deterministic simulation: 12 requests
# per second offered to a server that completes 10.

# %%
unbounded = simulate_queue(12, 10, 60, max_queue=None)
bounded = simulate_queue(12, 10, 60, max_queue=8)
plot_queue(unbounded, bounded, 8)
plt.show()
print(f"after 60 s: unbounded queue, last request waited {unbounded['wait_s'][-1]:.1f} s; "
      f"bounded (8), longest wait {max(bounded['wait_s']):.2f} s with {bounded['refused']} of {bounded['offered']} refused")
assert unbounded["wait_s"][-1] > 10 * max(bounded["wait_s"])

# %% [markdown]
# Try other rates: at an arrival rate below the service rate neither queue grows; above it, the
# unbounded wait grows linearly in time (that is what "the server is slow today" often is). The figure
# above is the default setting.

# %% tags=["nbval-ignore-output", "remove-output"]
def explore_queue(arrival_rate=12.0, service_rate=10.0, max_queue=8):
    plot_queue(simulate_queue(arrival_rate, service_rate, 60, max_queue=None),
               simulate_queue(arrival_rate, service_rate, 60, max_queue=max_queue), max_queue)
    plt.show()


interact(explore_queue, arrival_rate=FloatSlider(12, min=2, max=30, step=1), service_rate=FloatSlider(10, min=2, max=30, step=1),
         max_queue=IntSlider(8, min=1, max=64));

# %% [markdown]
# And the real server: 40 requests at once, 48 characters each, against `max_batch=4`, `max_queue=2`.
# Every request gets an answer or a 503, none is lost.

# %%
burst = burst_test(model, vocab, live_prompts * 2 + live_prompts[:8], max_tokens=48, max_batch=4, max_queue=2)
print(burst)
assert burst["answered"] + burst["refused"] == 40 and burst["other"] == [] and burst["refused"] > 0

# %% [markdown]
# ## Summary
#
# - Moving weights is a format conversion checked by logits: our GPT saved as GPT-2 loads with
#   `AutoModelForCausalLM` and generates the same text.
# - A server is a queue, a batcher and validation around the model: concurrent requests were batched
#   (mean batch above 4) and every answer equalled the request decoded alone; bad requests got a 400
#   naming the field.
# - Under load, batching multiplied throughput at 16 clients beyond the rounds' spread, while the
#   unbatched server's latency grew with its queue; a bounded queue refused a burst's excess with 503s
#   and lost nothing.
# - The ONNX export carries the KV cache as an input and an output; ONNX Runtime matched PyTorch within
#   1e-4 and generated the same text.
# - Pitfalls are silent: a mismatched tokenizer, right padding, a lower precision change the output
#   without an error; an unbounded queue turns overload into unbounded waits.
#
# ## Exercises

# %% [markdown]
# ```{exercise-start}
# :label: ex-26-sse
# :nonumber:
# ```
# **Exercise 26.1 (read a stream).** Write `stream_text(lines) -> str`: given the lines of an
# OpenAI-style completion stream (as `response.iter_lines()` yields them), return the generated text.
# Lines are `data: {json}` (the text is in `choices[0]["text"]`), empty lines between events, comment
# lines starting with `:` (keep-alives), and `data: [DONE]`, which ends the stream.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Only some lines are JSON. And a space is a character the model generated.
# ```

# %% [markdown]
# ```{solution-start} ex-26-sse
# :class: dropdown
# ```

# %%
def stream_text(lines):
    ### BEGIN SOLUTION
    out = []
    for line in lines:
        if not line.startswith("data: "):
            continue
        payload = line[len("data: "):]
        if payload == "[DONE]":
            break
        out.append(json.loads(payload)["choices"][0]["text"])
    return "".join(out)
    ### END SOLUTION


# %% [markdown]
# Skip what is not a `data:` line, stop at `[DONE]`, and join the texts as they are: stripping them
# would delete the spaces the model generated.
#
# ```{solution-end}
# ```

# %%
check_stream_text(stream_text)
assert stream_text(lines) == plain  # and on the stream the server sent in section 2

# %% [markdown]
# ```{exercise-start}
# :label: ex-26-percentile
# :nonumber:
# ```
# **Exercise 26.2 (tail latency).** Write `percentile(latencies, q)`: the *nearest-rank* `q`-th
# percentile of a 1-D tensor of latencies, the smallest latency with at least `q` % of the latencies at
# or below it. Return a 0-d tensor. (This is the convention of the benchmark's p50/p95/p99: a p99 is a
# latency some request really had {cite}`dean2013tail`.)
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Sort first. With $n$ values, the rank of the $q$-th percentile is $\lceil q n / 100 \rceil$,
# counted from 1.
# ```

# %% [markdown]
# ```{solution-start} ex-26-percentile
# :class: dropdown
# ```

# %%
import math


def percentile(latencies, q):
    ### BEGIN SOLUTION
    ordered = latencies.sort().values
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_percentile(percentile)

# %% [markdown]
# ```{exercise-start}
# :label: ex-26-little
# :nonumber:
# ```
# **Exercise 26.3 (predict, then measure: Little's law).** In a closed loop, each of `concurrency`
# clients always has exactly one request in the server. Write `predicted_latency(concurrency,
# requests_per_s)`: the mean latency (seconds) those clients must see when the server completes
# `requests_per_s` requests per second. Then the next cell measures both numbers on the live server and
# compares.
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{admonition} Hint
# :class: dropdown
# Little's law: (number in the system) = (rate of arrivals) × (time each spends in the system).
# ```

# %% [markdown]
# ```{solution-start} ex-26-little
# :class: dropdown
# ```

# %%
def predicted_latency(concurrency, requests_per_s):
    ### BEGIN SOLUTION
    return concurrency / requests_per_s
    ### END SOLUTION


# %% [markdown]
# ```{solution-end}
# ```

# %%
check_little(predicted_latency)
run = live[8]  # the batched live load test of section 3: 8 clients
measured_latency = sum(run["latency_s"]) / len(run["latency_s"])
prediction = predicted_latency(8, run["requests"] / run["seconds"])
print(f"predicted mean latency {1000 * prediction:.0f} ms, measured {1000 * measured_latency:.0f} ms")
assert abs(prediction - measured_latency) / measured_latency < 0.1  # measured within 2 % when written
