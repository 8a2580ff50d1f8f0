"""State-space models: S4D, long convolutions by FFT, and Mamba's selective scan.

A linear state-space model maps an input ``u_t`` to an output ``y_t`` through a state ``x_t``:

    x_t = Ā x_{t-1} + B̄ u_t,     y_t = Re(C x_t)        (discretised from x' = A x + B u, step Δ)

With ``Ā``, ``B̄``, ``C`` fixed in time (S4, S4D; Gu et al. 2022) unrolling the recurrence gives a
convolution ``y = K * u`` with kernel ``K_l = Re(C Ā^l B̄)``: train with the convolution (by FFT,
``O(L log L)``), generate with the recurrence (a fixed-size state). S4D keeps ``A`` diagonal, so
``Ā^l`` is a power of a complex number per mode.

Mamba (Gu & Dao 2023) makes ``Δ``, ``B`` and ``C`` functions of the input (*selective*): the
convolution view is lost, but ``x_t = Ā_t x_{t-1} + B̄_t u_t`` is still a linear recurrence, and
``(a, b) ∘ (a', b') = (a a', a' b + b')`` is associative, so a *parallel scan* computes all states
in ``log2 L`` steps. :func:`selective_scan` does both; ``mode="sequential"`` is transformers'
CPU loop, ``mode="parallel"`` the scan.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# -- long convolutions -------------------------------------------------------------------------


def _check_conv(u: torch.Tensor, kernel: torch.Tensor) -> None:
    if u.ndim != 3 or kernel.ndim != 2 or kernel.shape[0] != u.shape[1]:
        raise ValueError(f"u, kernel: expected (batch, channels, L) and (channels, Lk), got "
                         f"{tuple(u.shape)} and {tuple(kernel.shape)}")


def causal_conv_fft(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``y_t = Σ_{s≤t} kernel[:, t-s] u_s`` by FFT (Hyena's and S4's long convolution).

    u: ``(batch, channels, L)``; kernel: ``(channels, Lk)``, ``Lk <= L`` (shorter = zero-padded).
    Zero-padding to ``2L`` turns the FFT's circular convolution into a linear one.
    """
    _check_conv(u, kernel)
    L = u.shape[-1]
    if kernel.shape[-1] > L:
        raise ValueError(f"kernel: expected at most L={L} taps, got {kernel.shape[-1]}")
    n = 2 * L
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(kernel, n=n), n=n)
    return y[..., :L].to(u.dtype)


def causal_conv_direct(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The same convolution computed directly (``F.conv1d``, ``O(L · Lk)``): the reference."""
    _check_conv(u, kernel)
    lk = kernel.shape[-1]
    weight = kernel.flip(-1).unsqueeze(1)  # conv1d correlates; flipping makes it a convolution
    return F.conv1d(F.pad(u, (lk - 1, 0)), weight, groups=u.shape[1])


# -- S4D ---------------------------------------------------------------------------------------


def _s4d_discrete(log_dt, a_real_log, a_imag, c):
    A = -torch.exp(a_real_log) + 1j * a_imag  # (H, N) complex, negative real part: stable
    dtA = A * torch.exp(log_dt)[:, None]
    a_bar = torch.exp(dtA)
    b_bar = (a_bar - 1) / A  # zero-order hold with B = 1 (S4D folds B into C)
    return a_bar, b_bar, c, dtA


def s4d_kernel(log_dt, a_real_log, a_imag, c, L: int) -> torch.Tensor:
    """``(H, L)`` real kernel ``K_l = 2 Re(Σ_n C_n B̄_n Ā_n^l)`` (modes come in conjugate pairs,
    hence the 2). log_dt: ``(H,)``; a_real_log, a_imag: ``(H, N)``; c: ``(H, N)`` complex."""
    _, b_bar, c, dtA = _s4d_discrete(log_dt, a_real_log, a_imag, c)
    lags = torch.arange(L, device=dtA.device, dtype=dtA.real.dtype)
    # Ā^l = exp(l·Δ·A), written as magnitude and angle: a complex exp is several times slower on CPU
    powers = torch.polar(torch.exp(dtA.real[..., None] * lags), dtA.imag[..., None] * lags)  # (H, N, L)
    return 2 * torch.einsum("hn,hnl->hl", c * b_bar, powers).real


def s4d_recurrent(u, log_dt, a_real_log, a_imag, c) -> tuple[torch.Tensor, torch.Tensor]:
    """The same model run as a recurrence: ``(y (batch, H, L), last state (batch, H, N))``."""
    a_bar, b_bar, c, _ = _s4d_discrete(log_dt, a_real_log, a_imag, c)
    x = torch.zeros(u.shape[0], *a_bar.shape, dtype=a_bar.dtype, device=u.device)
    ys = []
    for t in range(u.shape[-1]):
        x = a_bar * x + b_bar * u[:, :, t, None]
        ys.append(2 * (c * x).sum(-1).real)
    return torch.stack(ys, dim=-1).to(u.dtype), x


class S4D(nn.Module):
    """A diagonal SSM layer over ``channels`` independent channels, ``state`` complex modes each
    (S4D-Lin initialisation: ``A_n = -1/2 + iπn``), plus a skip ``D``.

    forward: ``(batch, L, channels)`` → ``(batch, L, channels)``, by FFT convolution; ``step``-free
    :meth:`recurrent` gives the same output one token at a time.
    """

    def __init__(self, channels: int, state: int = 32, dt_min: float = 1e-3, dt_max: float = 1e-1) -> None:
        super().__init__()
        self.log_dt = nn.Parameter(torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.a_real_log = nn.Parameter(torch.full((channels, state), math.log(0.5)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(state, dtype=torch.float32).repeat(channels, 1))
        c = torch.randn(channels, state, dtype=torch.cfloat) * 0.5**0.5
        self.c = nn.Parameter(torch.view_as_real(c))
        self.D = nn.Parameter(torch.randn(channels))

    def _params(self):
        return self.log_dt, self.a_real_log, self.a_imag, torch.view_as_complex(self.c)

    def kernel(self, L: int) -> torch.Tensor:
        return s4d_kernel(*self._params(), L)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.D.shape[0]:
            raise ValueError(f"x: expected (batch, L, {self.D.shape[0]}), got {tuple(x.shape)}")
        u = x.transpose(1, 2)
        y = causal_conv_fft(u, self.kernel(u.shape[-1])) + self.D[:, None] * u
        return y.transpose(1, 2)

    def recurrent(self, x: torch.Tensor) -> torch.Tensor:
        u = x.transpose(1, 2)
        y, _ = s4d_recurrent(u, *self._params())
        return (y + self.D[:, None] * u).transpose(1, 2)


# -- the selective scan ------------------------------------------------------------------------


def _parallel_states(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All ``h_t = a_t h_{t-1} + b_t`` (h_0 = 0) along dim 2 by a Hillis–Steele scan: at step
    ``s`` each position combines with the one ``2^s`` before it, ``ceil(log2 L)`` steps."""
    L, off = a.shape[2], 1
    while off < L:
        a_prev = torch.cat([torch.ones_like(a[:, :, :off]), a[:, :, :-off]], dim=2)
        b_prev = torch.cat([torch.zeros_like(b[:, :, :off]), b[:, :, :-off]], dim=2)
        b = a * b_prev + b
        a = a * a_prev
        off *= 2
    return b


def selective_scan(u, delta, A, B, C, D=None, z=None, *, mode: str = "sequential",
                   return_last_state: bool = False):
    """Mamba's selective scan in transformers' layout.

    u, delta: ``(batch, d, L)`` (delta already positive, i.e. after softplus and bias);
    A: ``(d, n)``; B, C: ``(batch, n, L)``; D: ``(d,)``; z: ``(batch, d, L)`` gate.
    Returns ``y (batch, d, L)`` (and the last state ``(batch, d, n)``):
    ``h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t``, ``y_t = C_t · h_t + D u_t``, times ``silu(z_t)``.
    """
    if mode not in ("sequential", "parallel"):
        raise ValueError(f"mode: expected 'sequential' or 'parallel', got {mode!r}")
    if u.ndim != 3 or delta.shape != u.shape:
        raise ValueError(f"u, delta: expected two (batch, d, L) tensors of one shape, got "
                         f"{tuple(u.shape)} and {tuple(delta.shape)}")
    b, d, L = u.shape
    if A.ndim != 2 or A.shape[0] != d:
        raise ValueError(f"A: expected (d={d}, n), got {tuple(A.shape)}")
    n = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.shape != (b, n, L):
            raise ValueError(f"{name}: expected (batch, n, L) = {(b, n, L)}, got {tuple(t.shape)}")
    dtype = u.dtype
    if mode == "sequential":  # one small step per token; unbind keeps the backward pass cheap
        h = torch.zeros(b, d, n, dtype=torch.float32 if dtype != torch.float64 else dtype, device=u.device)
        ys = []
        for dt_t, u_t, B_t, C_t in zip(delta.unbind(-1), u.unbind(-1), B.unbind(-1), C.unbind(-1)):
            h = torch.exp(A * dt_t[..., None]) * h + (dt_t * u_t.float())[..., None] * B_t[:, None, :].float()
            ys.append(torch.matmul(h.to(dtype), C_t.unsqueeze(-1))[:, :, 0])
        y = torch.stack(ys, dim=-1)
    else:
        dA = torch.exp(A[None, :, None, :] * delta[..., None])  # (b, d, L, n)
        dBu = delta[..., None] * B.transpose(1, 2)[:, None].float() * u[..., None].float()
        states = _parallel_states(dA, dBu)  # (b, d, L, n)
        y = (states.to(dtype) * C.transpose(1, 2)[:, None]).sum(-1)
        h = states[:, :, -1]
    if D is not None:
        y = y + u * D[None, :, None]
    if z is not None:
        y = y * F.silu(z)
    return (y, h) if return_last_state else y


__all__ = ["S4D", "causal_conv_direct", "causal_conv_fft", "s4d_kernel", "s4d_recurrent", "selective_scan"]
