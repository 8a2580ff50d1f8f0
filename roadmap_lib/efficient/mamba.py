"""The Mamba block and a Mamba language model, with weights that convert to and from transformers.

One Mamba block (Gu & Dao 2023), for ``x (batch, L, d_model)``:

1. ``in_proj`` to ``2 · d_inner``: a stream ``u`` and a gate ``z``;
2. a short causal depthwise convolution on ``u`` (``d_conv`` taps), then SiLU;
3. ``x_proj`` makes the input-dependent ``Δ`` (rank ``dt_rank``, widened by ``dt_proj``), ``B`` and
   ``C``; ``A = -exp(A_log)`` and ``D`` are fixed per channel;
4. the selective scan (:func:`~roadmap_lib.efficient.ssm.selective_scan`), gated by ``silu(z)``;
5. ``out_proj`` back to ``d_model``.

The language model is embeddings, pre-norm residual blocks (RMSNorm), a final norm and a tied
output layer. Parameter names match transformers' ``MambaForCausalLM``, so the conversion is a
renaming (:func:`to_hf_mamba`, :func:`from_hf_mamba`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import RMSNorm
from .ssm import selective_scan


@dataclass
class MambaConfig:
    vocab_size: int = 96
    d_model: int = 64
    n_layers: int = 2
    d_state: int = 16
    expand: int = 2
    d_conv: int = 4
    dt_rank: int | None = None  # None: ceil(d_model / 16), as transformers' "auto"
    eps: float = 1e-5
    scan: str = "parallel"  # or "sequential"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "d_state", "expand", "d_conv"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.dt_rank is None:
            self.dt_rank = math.ceil(self.d_model / 16)
        if self.scan not in ("parallel", "sequential"):
            raise ValueError(f"scan: expected 'parallel' or 'sequential', got {self.scan!r}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model


class MambaMixer(nn.Module):
    """The selective-SSM mixer. forward: ``(batch, L, d_model)`` → ``(batch, L, d_model)``."""

    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        di, n, r = cfg.d_inner, cfg.d_state, cfg.dt_rank
        self.in_proj = nn.Linear(cfg.d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, cfg.d_model, bias=False)
        with torch.no_grad():  # Δ between 1e-3 and 1e-1 at initialisation (inverse softplus of it)
            dt = torch.exp(torch.rand(di) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, x: torch.Tensor, scan: str | None = None) -> torch.Tensor:
        L = x.shape[1]
        u, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)  # (b, d_inner, L) each
        u = F.silu(self.conv1d(u)[..., :L])
        dt, B, C = torch.split(self.x_proj(u.transpose(1, 2)), [self.cfg.dt_rank, self.cfg.d_state,
                                                                self.cfg.d_state], dim=-1)
        delta = F.softplus(self.dt_proj.weight @ dt.transpose(1, 2) + self.dt_proj.bias.float()[:, None])
        A = -torch.exp(self.A_log.float())
        y = selective_scan(u, delta, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(), z,
                           mode=scan or self.cfg.scan)
        return self.out_proj(y.transpose(1, 2))


class MambaBlock(nn.Module):
    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, eps=cfg.eps)
        self.mixer = MambaMixer(cfg)

    def forward(self, x: torch.Tensor, scan: str | None = None) -> torch.Tensor:
        return x + self.mixer(self.norm(x), scan)


class MambaLM(nn.Module):
    """``input_ids (batch, L)`` → logits ``(batch, L, vocab_size)``."""

    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(MambaBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.d_model, eps=cfg.eps)

    def forward(self, idx: torch.Tensor, scan: str | None = None) -> torch.Tensor:
        if idx.ndim != 2:
            raise ValueError(f"idx: expected (batch, L) token ids, got shape {tuple(idx.shape)}")
        h = self.embeddings(idx)
        for layer in self.layers:
            h = layer(h, scan)
        return self.norm_f(h) @ self.embeddings.weight.T


def hf_config(cfg: MambaConfig):
    """The transformers ``MambaConfig`` of the same architecture."""
    from transformers import MambaConfig as HFMambaConfig

    return HFMambaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
                         state_size=cfg.d_state, expand=cfg.expand, conv_kernel=cfg.d_conv,
                         time_step_rank=cfg.dt_rank, layer_norm_epsilon=cfg.eps, use_bias=False,
                         use_conv_bias=True, tie_word_embeddings=True, use_mambapy=False,
                         use_associative_scan=False, pad_token_id=0, bos_token_id=0, eos_token_id=0)


def to_hf_mamba(model: MambaLM):
    """A transformers ``MambaForCausalLM`` with ``model``'s weights (names map one to one)."""
    from transformers import MambaForCausalLM

    hf = MambaForCausalLM(hf_config(model.cfg))
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    state["lm_head.weight"] = model.embeddings.weight.detach()
    hf.load_state_dict(state, strict=True)
    return hf.eval()


def from_hf_mamba(hf) -> MambaLM:
    """Our :class:`MambaLM` with the weights of a transformers ``MambaForCausalLM``."""
    c = hf.config
    if not getattr(c, "tie_word_embeddings", True) or c.use_bias or not c.use_conv_bias:
        raise ValueError("hf: expected tied embeddings, no linear biases and a conv bias "
                         f"(got tie={c.tie_word_embeddings}, use_bias={c.use_bias}, conv_bias={c.use_conv_bias})")
    cfg = MambaConfig(vocab_size=c.vocab_size, d_model=c.hidden_size, n_layers=c.num_hidden_layers,
                      d_state=c.state_size, expand=c.expand, d_conv=c.conv_kernel, dt_rank=int(c.time_step_rank),
                      eps=c.layer_norm_epsilon)
    model = MambaLM(cfg)
    state = {k.removeprefix("backbone."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    model.load_state_dict(state, strict=True)
    return model.eval()


def config_dict(cfg: MambaConfig) -> dict:
    return asdict(cfg)


__all__ = ["MambaBlock", "MambaConfig", "MambaLM", "MambaMixer", "config_dict", "from_hf_mamba",
           "hf_config", "to_hf_mamba"]
