"""Data, tensor and pipeline parallelism with the real engine: ``torch.distributed`` on CPU processes (gloo backend).

Three ways to spread training over several devices, run here on 2 CPU processes that talk through
gloo exactly as GPUs talk through NCCL:

- **Tensor parallelism** (Megatron-LM, Shoeybi et al. 2019) splits each weight matrix. A
  *column-parallel* linear keeps a slice of the output features (no communication); a
  *row-parallel* linear keeps the matching slice of the input features and sums the partial
  products with one all-reduce. An MLP is column-parallel up, row-parallel down: one all-reduce
  per MLP. Attention splits by heads the same way. Megatron's two conjugate operators: ``f``
  (identity forward, all-reduce backward) before the column-parallel layer and ``g`` (all-reduce
  forward, identity backward) after the row-parallel one.
- **Data parallelism** gives every process the whole model and a slice of the batch, and
  averages the gradients with an all-reduce after the backward pass.
- **Pipeline parallelism** (GPipe, Huang et al. 2019) splits the layers into stages and the batch
  into micro-batches; stage ``s`` works on micro-batch ``i`` while stage ``s + 1`` works on ``i - 1``.
  With ``p`` stages and ``m`` micro-batches, each stage idles for a *bubble* of ``p - 1`` of the
  ``m + p - 1`` slots of forward (and again of backward), a fraction ``(p-1)/(m+p-1)``.

:func:`launch` starts the processes (127.0.0.1, a free port), waits a bounded time, returns each
rank's result and always cleans up; workers are module-level functions so that ``spawn`` finds them.
"""

from __future__ import annotations

import datetime
import os
import queue
import socket
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from .attention import AttentionConfig, MultiHeadAttention, scaled_dot_product_attention
from .layers import FeedForward

# --------------------------------------------------------------------------------------------
# Launching
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, fn, args, kwargs, results, timeout: float) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout))
        try:
            results.put((rank, True, fn(rank, world_size, *args, **kwargs)))
        finally:
            dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - report any failure to the parent instead of hanging it
        results.put((rank, False, traceback.format_exc()))


def launch(fn, world_size: int = 2, args: tuple = (), kwargs: dict | None = None,
           timeout: float = 60.0) -> list:
    """Run ``fn(rank, world_size, *args, **kwargs)`` in ``world_size`` fresh processes joined in one gloo
    process group; return the results in rank order.

    Raises ``RuntimeError`` with the worker's traceback if a rank fails, ``TimeoutError`` if the
    ranks are not done within ``timeout`` seconds; every process is terminated in all cases.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size: expected an int >= 1, got {world_size!r}")
    if not timeout > 0:
        raise ValueError(f"timeout: expected seconds > 0, got {timeout!r}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_entry, args=(r, world_size, port, fn, args, kwargs or {}, results, timeout),
                         daemon=True) for r in range(world_size)]
    out: dict[int, object] = {}
    deadline = time.monotonic() + timeout
    finished = False
    try:
        for p in procs:
            p.start()
        while len(out) < world_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"launch: ranks {sorted(set(range(world_size)) - set(out))} "
                                   f"did not finish within {timeout} s")
            try:
                rank, ok, value = results.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                dead = [r for r, p in enumerate(procs) if not p.is_alive() and r not in out]
                if dead and results.empty():
                    time.sleep(0.2)
                    if results.empty():
                        raise RuntimeError(f"launch: ranks {dead} exited without a result "
                                           f"(exit codes {[procs[r].exitcode for r in dead]})")
                continue
            if not ok:
                raise RuntimeError(f"launch: rank {rank} failed:\n{value}")
            out[rank] = value
        finished = True
        return [out[r] for r in range(world_size)]
    finally:
        for p in procs:  # after a success the ranks are exiting; after a failure stop them now
            p.join(timeout=5 if finished else 0)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
        results.close()


# --------------------------------------------------------------------------------------------
# Tensor parallelism
# --------------------------------------------------------------------------------------------


class _CopyToParallel(torch.autograd.Function):
    """Megatron's ``f``: identity forward; all-reduce the gradient backward (every rank used x)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _ReduceFromParallel(torch.autograd.Function):
    """Megatron's ``g``: all-reduce (sum) the partial outputs forward; identity backward."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


def copy_to_parallel(x: torch.Tensor) -> torch.Tensor:
    return _CopyToParallel.apply(x)


def reduce_from_parallel(x: torch.Tensor) -> torch.Tensor:
    return _ReduceFromParallel.apply(x)


def _shard(n: int, rank: int, world: int, name: str, unit: int = 1) -> slice:
    if n % (world * unit):
        raise ValueError(f"{name}: {n} is not divisible into {world} equal shards of whole "
                         f"units of {unit}")
    size = n // world
    return slice(rank * size, (rank + 1) * size)


class ColumnParallelLinear(nn.Module):
    """This rank's slice of the *output* features of ``linear``: ``y[..., shard] = x W[shard]ᵀ + b[shard]``.

    ``rows`` picks the output features (default: the rank's contiguous ``1/world`` of them).
    """

    def __init__(self, linear: nn.Linear, rank: int, world: int, rows: slice | None = None):
        super().__init__()
        rows = _shard(linear.out_features, rank, world, "out_features") if rows is None else rows
        self.index = rows
        self.weight = nn.Parameter(linear.weight.detach()[rows].clone())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach()[rows].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


class RowParallelLinear(nn.Module):
    """This rank's slice of the *input* features of ``linear``; the partial products of all ranks
    are summed by an all-reduce, then the bias is added once."""

    def __init__(self, linear: nn.Linear, rank: int, world: int, cols: slice | None = None):
        super().__init__()
        cols = _shard(linear.in_features, rank, world, "in_features") if cols is None else cols
        self.index = cols
        self.weight = nn.Parameter(linear.weight.detach()[:, cols].clone())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def forward(self, x_shard: torch.Tensor) -> torch.Tensor:
        y = reduce_from_parallel(nn.functional.linear(x_shard, self.weight))
        return y if self.bias is None else y + self.bias


class TensorParallelMLP(nn.Module):
    """``down(act(up(x)))`` split over ranks: up column-parallel, down row-parallel (one all-reduce)."""

    def __init__(self, ffn: FeedForward, rank: int, world: int):
        super().__init__()
        if ffn.gate_proj is not None:
            self.gate_proj = ColumnParallelLinear(ffn.gate_proj, rank, world)
        else:
            self.gate_proj = None
        self.up_proj = ColumnParallelLinear(ffn.up_proj, rank, world)
        self.down_proj = RowParallelLinear(ffn.down_proj, rank, world)
        self.act = ffn.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = copy_to_parallel(x)
        h = self.up_proj(x)
        h = self.act(self.gate_proj(x)) * h if self.gate_proj is not None else self.act(h)
        return self.down_proj(h)


class TensorParallelAttention(nn.Module):
    """Causal multi-head self-attention split by heads: each rank owns ``n_heads / world`` heads
    (their query, key and value rows: column-parallel) and the matching input columns of the
    output projection (row-parallel)."""

    def __init__(self, attn: MultiHeadAttention, rank: int, world: int):
        super().__init__()
        c = attn.config
        if c.n_kv_heads != c.n_heads:
            raise ValueError("attn: only multi-head attention (n_kv_heads == n_heads) is split here")
        heads = _shard(c.n_heads, rank, world, "n_heads")
        self.n_local, self.head_dim = heads.stop - heads.start, c.head_dim
        feats = slice(heads.start * c.head_dim, heads.stop * c.head_dim)
        self.q_proj = ColumnParallelLinear(attn.q_proj, rank, world, feats)
        self.k_proj = ColumnParallelLinear(attn.k_proj, rank, world, feats)
        self.v_proj = ColumnParallelLinear(attn.v_proj, rank, world, feats)
        self.o_proj = RowParallelLinear(attn.o_proj, rank, world, feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = copy_to_parallel(x)

        def split(t):
            return t.view(b, n, self.n_local, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        out = scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, self.n_local * self.head_dim))


def _tp_case(module: nn.Module, parallel: nn.Module, x: torch.Tensor) -> dict:
    """Largest differences between ``parallel`` (this rank's shard) and the whole ``module``: in
    the output, the input's gradient and this rank's slice of every parameter gradient."""
    w = torch.randn(module(x).shape, generator=torch.Generator().manual_seed(7))
    x_full = x.clone().requires_grad_()
    y_full = module(x_full)
    (y_full * w).sum().backward()
    x_tp = x.clone().requires_grad_()
    y_tp = parallel(x_tp)
    (y_tp * w).sum().backward()
    grad_err = 0.0
    for name, shard in parallel.named_modules():
        if isinstance(shard, (ColumnParallelLinear, RowParallelLinear)):
            full = module.get_submodule(name)
            pairs = [(shard.weight.grad, full.weight.grad[shard.index] if
                      isinstance(shard, ColumnParallelLinear) else full.weight.grad[:, shard.index])]
            if shard.bias is not None:
                pairs.append((shard.bias.grad, full.bias.grad[shard.index] if
                              isinstance(shard, ColumnParallelLinear) else full.bias.grad))
            grad_err = max([grad_err] + [float((a - b).abs().max()) for a, b in pairs])
    return {"out": float((y_tp - y_full).detach().abs().max()),
                "input_grad": float((x_tp.grad - x_full.grad).abs().max()), "param_grad": grad_err}


def tp_worker(rank: int, world: int, seed: int = 0, d_model: int = 64, n_heads: int = 4,
              seq: int = 16, batch: int = 2) -> dict:
    """Check a tensor-parallel MLP and attention block against the whole module on this rank."""
    torch.manual_seed(seed)  # every rank builds the same full modules and input
    ffn = FeedForward(d_model, 4 * d_model, "gelu_tanh")
    attn = MultiHeadAttention(AttentionConfig(d_model, n_heads, causal=True))
    x = torch.randn(batch, seq, d_model)
    mlp = _tp_case(ffn, TensorParallelMLP(ffn, rank, world), x)
    att = _tp_case(attn, TensorParallelAttention(attn, rank, world), x)
    return {"mlp": mlp, "attention": att,
                "mlp_params": sum(p.numel() for p in TensorParallelMLP(ffn, rank, world).parameters()),
                "full_mlp_params": sum(p.numel() for p in ffn.parameters())}


# --------------------------------------------------------------------------------------------
# Pipeline parallelism (GPipe schedule)
# --------------------------------------------------------------------------------------------


def pipeline_model(seed: int = 0, d_model: int = 64, n_layers: int = 4) -> nn.Sequential:
    """The toy model the pipeline splits: ``n_layers`` residual MLP blocks and a linear head."""
    torch.manual_seed(seed)
    layers = [_ResidualMLP(d_model) for _ in range(n_layers)] + [nn.Linear(d_model, 1)]
    return nn.Sequential(*layers)


class _ResidualMLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.ffn = FeedForward(d, 4 * d, "gelu_tanh")

    def forward(self, x):
        return x + self.ffn(self.norm(x))


def split_stages(model: nn.Sequential, world: int) -> list[nn.Sequential]:
    """Cut ``model`` into ``world`` consecutive stages of (nearly) equal numbers of layers."""
    n = len(model)
    bounds = [round(i * n / world) for i in range(world + 1)]
    return [model[bounds[i]:bounds[i + 1]] for i in range(world)]


def pp_worker(rank: int, world: int, micro_batches: int, seed: int = 0, batch: int = 64,
              d_model: int = 64, n_layers: int = 4, check: bool = True) -> dict:
    """One GPipe step (all forwards, then all backwards) of stage ``rank``; returns its loss (last
    stage), its gradient error against the whole model in one process, and its timeline.

    Loss: mean squared error over the whole batch, so each micro-batch's mean is divided by
    ``micro_batches`` and the summed gradients equal the full batch's.
    """
    if batch % micro_batches:
        raise ValueError(f"micro_batches: expected a divisor of batch={batch}, got {micro_batches}")
    model = pipeline_model(seed, d_model, n_layers)
    g = torch.Generator().manual_seed(seed + 1)
    x, y = torch.randn(batch, d_model, generator=g), torch.randn(batch, 1, generator=g)
    stage = split_stages(model, world)[rank]
    first, last = rank == 0, rank == world - 1
    mb = batch // micro_batches
    timeline, inputs, outputs, losses = [], [], [], []
    dist.barrier()
    t0 = time.perf_counter()
    for i in range(micro_batches):  # forward of every micro-batch
        if first:
            h = x[i * mb:(i + 1) * mb]
        else:
            h = torch.empty(mb, d_model)
            dist.recv(h, src=rank - 1)
            h.requires_grad_()
        start = time.perf_counter() - t0
        out = stage(h)
        if last:
            out = nn.functional.mse_loss(out, y[i * mb:(i + 1) * mb]) / micro_batches
            losses.append(out.detach())
        timeline.append(("F", i, start, time.perf_counter() - t0))
        if not last:
            dist.send(out.detach(), dst=rank + 1)
        inputs.append(h)
        outputs.append(out)
    for i in range(micro_batches):  # backward of every micro-batch
        if last:
            grad = None
        else:
            grad = torch.empty(mb, d_model)
            dist.recv(grad, src=rank + 1)
        start = time.perf_counter() - t0
        outputs[i].backward(grad)
        timeline.append(("B", i, start, time.perf_counter() - t0))
        if not first:
            dist.send(inputs[i].grad, dst=rank - 1)
    total = time.perf_counter() - t0
    result = {"rank": rank, "timeline": timeline, "seconds": total,
                  "loss": float(sum(losses)) if last else None}
    if check:
        ref = pipeline_model(seed, d_model, n_layers)
        loss = nn.functional.mse_loss(ref(x), y)
        loss.backward()
        ref_stage = split_stages(ref, world)[rank]
        result["grad_err"] = max(float((a.grad - b.grad).abs().max())
                                 for a, b in zip(stage.parameters(), ref_stage.parameters()))
        result["ref_loss"] = float(loss.detach())
    return result


def bubble_fraction(timelines: list[list[tuple]]) -> float:
    """Measured share of idle time: ``1 - busy / (stages * span)`` over all stages' timelines,
    the span running from the first start to the last end."""
    start = min(t[2] for tl in timelines for t in tl)
    end = max(t[3] for tl in timelines for t in tl)
    busy = sum(t[3] - t[2] for tl in timelines for t in tl)
    return 1 - busy / (len(timelines) * (end - start))


def gpipe_bubble(stages: int, micro_batches: int) -> float:
    """GPipe's ideal bubble fraction with equal stage times and free communication."""
    return (stages - 1) / (micro_batches + stages - 1)


def pp_sweep_worker(rank: int, world: int, micro_batch_counts: tuple, repeats: int = 3,
                    **kw) -> list[dict]:
    """:func:`pp_worker` for each micro-batch count, ``repeats`` times (the first also checks
    gradients against the whole model), after one unrecorded warm-up step."""
    pp_worker(rank, world, micro_batch_counts[0], check=False, **kw)
    return [dict(pp_worker(rank, world, m, check=r == 0, **kw), micro_batches=m, repeat=r)
            for m in micro_batch_counts for r in range(repeats)]


# --------------------------------------------------------------------------------------------
# Data parallelism
# --------------------------------------------------------------------------------------------


def dp_worker(rank: int, world: int, seed: int = 0, batch: int = 64, d_model: int = 64,
              n_layers: int = 4) -> dict:
    """Data parallelism: every rank holds the whole model and ``1/world`` of the batch; after its
    backward the gradients are averaged with an all-reduce. Returns the largest difference from the
    full batch's gradients in one process, and the bytes this rank sent into the all-reduces."""
    if batch % world:
        raise ValueError(f"batch: expected a multiple of world={world}, got {batch}")
    model = pipeline_model(seed, d_model, n_layers)
    g = torch.Generator().manual_seed(seed + 1)
    x, y = torch.randn(batch, d_model, generator=g), torch.randn(batch, 1, generator=g)
    part = slice(rank * batch // world, (rank + 1) * batch // world)
    nn.functional.mse_loss(model(x[part]), y[part]).backward()
    sent = 0
    for p in model.parameters():  # one all-reduce per tensor (real systems bucket them)
        dist.all_reduce(p.grad)
        p.grad /= world
        sent += p.grad.numel() * p.grad.element_size()
    ref = pipeline_model(seed, d_model, n_layers)
    nn.functional.mse_loss(ref(x), y).backward()
    err = max(float((a.grad - b.grad).abs().max()) for a, b in zip(model.parameters(), ref.parameters()))
    return {"grad_err": err, "allreduce_bytes": sent}


def _ddp_model(seed: int, vocab: int, context: int, d_model: int, n_layers: int) -> nn.Module:
    from .models.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, context_length=context, d_model=d_model, n_layers=n_layers,
                         n_heads=4, attention_backend="sdpa"))


def ddp_worker(rank: int, world: int, steps: int = 5, seed: int = 0, global_batch: int = 8,
               context: int = 32, vocab: int = 65, d_model: int = 64, n_layers: int = 2,
               lr: float = 1e-3, dtypes: tuple[str, ...] = ("float32", "float64")) -> dict:
    """Data parallelism with the real engine: ``torch.nn.parallel.DistributedDataParallel`` on a
    small GPT, ``steps`` AdamW steps, each rank on its ``1/world`` of every global batch (DDP
    averages the gradients with bucketed all-reduces during the backward pass).

    Rank 0 then trains the same model in one process on the whole global batches. For each dtype
    in ``dtypes`` the result holds ``{dtype: {"losses", "sec_per_step"}}`` and on rank 0 also
    ``"param_err"`` (largest parameter difference from the single process), ``"single_losses"``
    and ``"single_sec_per_step"``.
    """
    from torch.nn.parallel import DistributedDataParallel

    if global_batch % world:
        raise ValueError(f"global_batch: expected a multiple of world={world}, got {global_batch}")
    bad = [d for d in dtypes if d not in ("float32", "float64")]
    if bad or not dtypes:
        raise ValueError(f"dtypes: expected names among ('float32', 'float64'), got {dtypes!r}")
    g = torch.Generator().manual_seed(seed + 1)
    # learnable sequences (each token is the previous one + 1, from a random start) so the loss falls
    start = torch.randint(0, vocab, (steps, global_batch, 1), generator=g)
    data = (start + torch.arange(context + 1)) % vocab
    part = slice(rank * global_batch // world, (rank + 1) * global_batch // world)

    def run(model, rows):
        opt = torch.optim.AdamW(model.parameters(), lr=lr, foreach=False)
        losses = []
        start = time.perf_counter()
        for batch in data:
            x, y = batch[rows, :-1], batch[rows, 1:]
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())  # mean over tokens
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, (time.perf_counter() - start) / steps

    out = {}
    for name in dtypes:
        dtype = getattr(torch, name)
        ddp = DistributedDataParallel(_ddp_model(seed, vocab, context, d_model, n_layers).to(dtype))
        losses, sec = run(ddp, part)
        out[name] = {"losses": losses, "sec_per_step": sec}
        if rank == 0:
            single = _ddp_model(seed, vocab, context, d_model, n_layers).to(dtype)
            ref_losses, ref_sec = run(single, slice(None))
            out[name].update(param_err=max(float((a - b).detach().abs().max()) for a, b in
                                           zip(ddp.module.parameters(), single.parameters())),
                             single_losses=ref_losses, single_sec_per_step=ref_sec)
    return out

def run_all_worker(rank: int, world: int, micro_batch_counts: tuple = (1, 2, 4, 8),
                   repeats: int = 3, **pp_kw) -> dict:
    """Data- and tensor-parallel checks and the pipeline sweep in one launch (one start-up)."""
    return {"dp": dp_worker(rank, world), "tp": tp_worker(rank, world),
                "pp": pp_sweep_worker(rank, world, micro_batch_counts, repeats, **pp_kw)}


__all__ = ["ColumnParallelLinear", "RowParallelLinear", "TensorParallelAttention",
           "TensorParallelMLP", "bubble_fraction", "copy_to_parallel", "ddp_worker", "dp_worker", "free_port", "gpipe_bubble",
           "launch", "pipeline_model", "pp_sweep_worker", "pp_worker", "reduce_from_parallel",
           "run_all_worker", "split_stages", "tp_worker"]
