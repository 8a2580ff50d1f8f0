"""Linear (kernelised) attention and Performer's FAVOR+ random features.

Replace ``exp(q·k)`` by a product of feature maps ``φ(q)·φ(k)`` and attention becomes
(Katharopoulos et al. 2020)

    out_i = φ(q_i)ᵀ S_i / (φ(q_i)ᵀ z_i),   S_i = Σ_{j≤i} φ(k_j) v_jᵀ,   z_i = Σ_{j≤i} φ(k_j),

so a causal model carries a fixed-size state ``(S, z)`` instead of a growing KV cache. Three
equal ways to compute it:

- :func:`linear_attention` (parallel): ``(φ(Q) φ(K)ᵀ ⊙ mask) V``, quadratic, like training a
  Transformer;
- :func:`linear_attention_recurrent`: the state updated token by token, as in decoding;
- :func:`linear_attention_chunked`: quadratic inside chunks of ``chunk`` tokens, the state
  between them: linear in ``L`` and fast.

FAVOR+ (Choromanski et al. 2021) picks ``φ`` so that ``φ(q)·φ(k)`` is an unbiased estimate of
``exp(q·k/√d)``: positive random features ``exp(ωᵀx - |x|²/2)/√m`` with orthogonal ``ω``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def elu_feature(x: torch.Tensor) -> torch.Tensor:
    """``elu(x) + 1``: Katharopoulos et al.'s positive feature map."""
    return F.elu(x) + 1


def _check(q, k, v) -> None:
    if q.ndim != 4 or k.shape[:3] != q.shape[:3] or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k, v: expected (batch, heads, L, d) with one (batch, heads, L), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def linear_attention(q, k, v, *, causal: bool = True, feature=elu_feature, eps: float = 1e-6):
    """Parallel form. q, k: ``(batch, heads, L, d)``; v: ``(batch, heads, L, dv)`` → ``(batch, heads, L, dv)``."""
    _check(q, k, v)
    fq, fk = feature(q), feature(k)
    w = fq @ fk.transpose(-1, -2)  # (B, H, L, L), no softmax: the features are positive
    if causal:
        L = q.shape[2]
        w = w * torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    return (w @ v) / (w.sum(-1, keepdim=True) + eps)


def linear_attention_recurrent(q, k, v, *, feature=elu_feature, eps: float = 1e-6, state=None):
    """Causal recurrent form: one token at a time with state ``S (batch, heads, d, dv)`` and
    ``z (batch, heads, d)``. Returns ``(out, (S, z))``; pass ``state`` to continue a sequence."""
    _check(q, k, v)
    B, H, L, d = q.shape
    fq, fk = feature(q), feature(k)
    if state is None:
        S = q.new_zeros(B, H, d, v.shape[-1])
        z = q.new_zeros(B, H, d)
    else:
        S, z = state
    outs = []
    for t in range(L):
        S = S + fk[:, :, t, :, None] * v[:, :, t, None, :]
        z = z + fk[:, :, t]
        num = (fq[:, :, t, :, None] * S).sum(-2)
        den = (fq[:, :, t] * z).sum(-1, keepdim=True)
        outs.append(num / (den + eps))
    return torch.stack(outs, dim=2), (S, z)


def linear_attention_chunked(q, k, v, *, chunk: int = 64, feature=elu_feature, eps: float = 1e-6):
    """Causal form that is linear in ``L``: exact within chunks, a running state between them.
    ``L`` must be a multiple of ``chunk``."""
    _check(q, k, v)
    B, H, L, d = q.shape
    if not isinstance(chunk, int) or chunk < 1 or L % chunk:
        raise ValueError(f"chunk: expected a positive int dividing L={L}, got {chunk!r}")
    n = L // chunk
    fq = feature(q).view(B, H, n, chunk, d)
    fk = feature(k).view(B, H, n, chunk, d)
    vc = v.reshape(B, H, n, chunk, -1)
    kv = fk.transpose(-1, -2) @ vc  # (B, H, n, d, dv): each chunk's contribution to S
    S = torch.cumsum(kv, dim=2) - kv  # state before each chunk
    z = torch.cumsum(fk.sum(3), dim=2) - fk.sum(3)  # (B, H, n, d)
    w = (fq @ fk.transpose(-1, -2)) * torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    num = fq @ S + w @ vc
    den = (fq * z.unsqueeze(3)).sum(-1, keepdim=True) + w.sum(-1, keepdim=True)
    return (num / (den + eps)).reshape(B, H, L, -1)


# -- FAVOR+ ------------------------------------------------------------------------------------


def orthogonal_gaussian(m: int, d: int, generator: torch.Generator | None = None,
                        dtype=torch.float64) -> torch.Tensor:
    """``(m, d)`` random features: blocks of ``d`` orthogonal rows, each row's norm drawn like a
    Gaussian vector's (chi with ``d`` degrees of freedom)."""
    if m < 1 or d < 1:
        raise ValueError(f"m, d: expected positive ints, got {m}, {d}")
    blocks = []
    for _ in range(-(-m // d)):
        qmat, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=dtype))
        blocks.append(qmat.T)
    w = torch.cat(blocks)[:m]
    norms = torch.randn(m, d, generator=generator, dtype=dtype).norm(dim=1, keepdim=True)
    return w * norms


def favor_features(x: torch.Tensor, omega: torch.Tensor, *, is_query: bool) -> torch.Tensor:
    """Positive random features of ``x (…, L, d)`` for ``omega (m, d)``: ``(…, L, m)`` with
    ``φ(q)·φ(k) ≈ exp(q·k/√d)`` up to a factor that cancels in attention's normalisation.
    Queries are stabilised per row, keys by one maximum over the whole tensor."""
    x = x * x.shape[-1] ** -0.25
    proj = x @ omega.to(x.dtype).T
    sq = (x * x).sum(-1, keepdim=True) / 2
    logits = proj - sq
    stab = logits.amax(-1, keepdim=True) if is_query else logits.amax(dim=(-1, -2), keepdim=True)
    return torch.exp(logits - stab) / omega.shape[0] ** 0.5


def favor_attention(q, k, v, n_features: int, *, seed: int = 0, causal: bool = False):
    """Performer attention with ``n_features`` orthogonal random features, approximating
    ``softmax(q kᵀ/√d) v``. Shapes as :func:`linear_attention`."""
    _check(q, k, v)
    if not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features: expected a positive int, got {n_features!r}")
    g = torch.Generator().manual_seed(seed)
    omega = orthogonal_gaussian(n_features, q.shape[-1], g).to(q.device)
    fq = favor_features(q, omega, is_query=True)
    fk = favor_features(k, omega, is_query=False)
    return linear_attention(fq, fk, v, causal=causal, feature=lambda t: t, eps=0.0)


__all__ = ["elu_feature", "favor_attention", "favor_features", "linear_attention",
           "linear_attention_chunked", "linear_attention_recurrent", "orthogonal_gaussian"]
