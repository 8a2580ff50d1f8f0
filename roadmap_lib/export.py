"""Moving our models out of this library: to ONNX (with a KV cache), and to transformers' format.

**ONNX.** An exported graph takes tensors and returns tensors, nothing else: no Python objects such
as our :class:`~roadmap_lib.attention.KVCache`. :class:`CachedGPT` is the function that is exported,

    (ids (batch, new), past (n_layers, 2, batch, heads, past_len, head_dim))
        -> (logits (batch, new, vocab), present (n_layers, 2, batch, heads, past_len + new, head_dim))

with ``batch``, ``new`` and ``past_len`` dynamic. The same graph does the prefill (``past_len = 0``,
all the prompt) and every decoding step (``new = 1``, the cache fed back in). It runs our GPT's
own blocks; the only change is how the cache is handed in: a tensor, its length read from its
shape (a Python ``len()`` would freeze the length into the graph as a constant).
:func:`export_onnx` writes it with ``torch.onnx.export``, either through ``torch.export``
(``dynamo=True``, the default: a full graph capture with symbolic shapes) or through the older
TorchScript tracer (``dynamo=False``: seconds instead of a minute or more here, the same graph behaviour,
tested for both); :func:`onnx_session` opens it in onnxruntime on one thread, :func:`onnx_greedy`
decodes with it.

**transformers.** :func:`save_pretrained` converts one of our GPTs to a ``GPT2LMHeadModel``
(:func:`roadmap_lib.models.hf.gpt_to_hf`) and writes ``config.json`` + ``model.safetensors``;
``AutoModelForCausalLM.from_pretrained(folder)`` reads it back with the same logits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from .models.gpt import GPT


class _TensorCache:
    """One layer's cache for the exported graph: keys and values are plain tensors.

    ``len()`` returns 1 whatever the true length: attention only asks whether keys come before the
    queries (then it builds the causal mask from the key and query lengths, which stay symbolic);
    a mask with offset ``lk - lq = 0`` is the ordinary causal mask, so an empty past is right too.
    """

    def __init__(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k, self.v = k, v

    def __len__(self) -> int:
        return 1

    def update(self, k: torch.Tensor, v: torch.Tensor):
        self.k, self.v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        return self.k, self.v


class CachedGPT(nn.Module):
    """Our GPT as a pure tensor function with its KV cache as an input and an output (see above)."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        if not isinstance(model, GPT):
            raise TypeError(f"model: expected a roadmap_lib GPT, got {type(model).__name__}")
        self.model = model.eval()
        self.eval()
        c = model.config
        self.cache_shape = (c.n_layers, 2, c.n_heads, c.d_model // c.n_heads)

    def empty_past(self, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """An empty cache ``(n_layers, 2, batch, heads, 0, head_dim)`` for the prefill."""
        n_layers, two, heads, head_dim = self.cache_shape
        return torch.zeros(n_layers, two, batch, heads, 0, head_dim, dtype=dtype)

    def forward(self, ids: torch.Tensor, past: torch.Tensor):
        m = self.model
        past_len = past.shape[4]
        positions = torch.arange(past_len, past_len + ids.shape[1], device=ids.device)
        x = m.wte(ids) + m.wpe(positions)
        caches = [_TensorCache(past[i, 0], past[i, 1]) for i in range(len(m.blocks))]
        for block, cache in zip(m.blocks, caches):
            x = block(x, cache=cache)
        present = torch.stack([torch.stack([c.k, c.v]) for c in caches])
        return m.lm_head(m.ln_f(x)), present


def export_onnx(model: GPT, path: str | Path, *, optimize: bool = True, dynamo: bool = True) -> Path:
    """Export ``model`` as :class:`CachedGPT` to an ONNX file at ``path`` (inputs ``ids``,
    ``past``; outputs ``logits``, ``present``; dynamic batch, new and past lengths).
    ``dynamo=False`` uses the TorchScript tracer (``optimize`` then does not apply)."""
    wrapper = CachedGPT(model)
    ctx = model.config.context_length
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.zeros(2, 3, dtype=torch.long)
    past = torch.zeros(*wrapper.cache_shape[:2], 2, wrapper.cache_shape[2], 2,
                       wrapper.cache_shape[3])
    batch = torch.export.Dim("batch", min=1, max=1024)
    new = torch.export.Dim("new", min=1, max=ctx)
    past_len = torch.export.Dim("past_len", min=1, max=ctx - 1)
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            if not dynamo:
                torch.onnx.export(wrapper, (ids, past), str(path), dynamo=False,
                                  input_names=["ids", "past"], output_names=["logits", "present"],
                                  dynamic_axes={"ids": {0: "batch", 1: "new"}, "past": {2: "batch", 4: "past_len"},
                                                "logits": {0: "batch", 1: "new"},
                                                "present": {2: "batch", 4: "total_len"}})
                return path
            torch.onnx.export(wrapper, (ids, past), str(path), dynamo=True,
                              input_names=["ids", "past"], output_names=["logits", "present"],
                              dynamic_shapes={"ids": {0: batch, 1: new}, "past": {2: batch, 4: past_len}},
                              optimize=optimize, verbose=False)
    finally:
        quiet.setLevel(level)
    return path


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime ``InferenceSession`` on the CPU with ``threads`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_forward(session, ids: torch.Tensor, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the exported graph: ``(logits, present)`` as torch tensors.

    The graph's inputs have fixed dtypes (int64 ids, float32 cache): anything else is refused here
    with a clear message (onnxruntime's own error names the graph's input, not the cause)."""
    if ids.dtype != torch.long:
        raise TypeError(f"ids: expected int64 token ids, got {ids.dtype}")
    expected = session.get_inputs()[1].type
    got = {torch.float32: "tensor(float)", torch.float16: "tensor(float16)"}.get(past.dtype, str(past.dtype))
    if got != expected:
        raise TypeError(f"past: the graph was exported for {expected}, got {got} ({past.dtype})")
    logits, present = session.run(None, {"ids": ids.numpy(), "past": past.numpy()})
    return torch.from_numpy(logits), torch.from_numpy(present)


def onnx_greedy(session, ids: torch.Tensor, max_new_tokens: int, empty_past: torch.Tensor) -> torch.Tensor:
    """Greedy decoding with the exported graph and its KV cache: ``(batch, seq + new)``."""
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: expected an int >= 0, got {max_new_tokens!r}")
    logits, past = onnx_forward(session, ids, empty_past)
    for step in range(max_new_tokens):
        token = logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, token], dim=1)
        if step + 1 < max_new_tokens:  # the last token is never fed back
            logits, past = onnx_forward(session, token, past)
    return ids


def save_pretrained(model: GPT, folder: str | Path) -> Path:
    """Write ``model`` in transformers' format (``GPT2LMHeadModel``: ``config.json`` and
    ``model.safetensors``) so that ``AutoModelForCausalLM.from_pretrained(folder)`` loads it."""
    from .models.hf import gpt_to_hf

    folder = Path(folder)
    gpt_to_hf(model).save_pretrained(folder, safe_serialization=True)
    return folder


def load_pretrained(folder: str | Path) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained(folder)`` in eval mode, from local files only."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()


__all__ = ["CachedGPT", "export_onnx", "load_pretrained", "onnx_forward", "onnx_greedy",
           "onnx_session", "save_pretrained"]
