"""Scaling laws: parameter and FLOP counts, power-law fits, compute-optimal allocation.

Chapter 04 fits the quadratic cost of attention with :func:`fit_power_law`; chapter 09 measures
how a language model's loss falls with its size N and its training tokens D and fits the laws of
Kaplan et al. (2020) and Hoffmann et al. (2022, "Chinchilla"):

    counts    N (non-embedding parameters), C ≈ 6·N·D + 6·n_layers·n_ctx·d_model·D (Kaplan, Table 1)
    L(x)      = E + A / x**α                    (one variable: N or D)
    L(N, D)   = E + A / N**α + B / D**β           (fitted as Hoffmann et al.: Huber loss on log L,
                                                   L-BFGS from a grid of initialisations)
    N*(C), D*(C): the (N, D) that minimise L(N, D) under C = 6·N·D
    IsoFLOP   at a fixed C, the loss of each model size after C / (6 N) tokens; a parabola in log N
              has its minimum at the compute-optimal size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# --- power law y = c · x**p (chapter 04) -----------------------------------------------------


def _as_positive(name: str, values, min_points: int) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64)
    if t.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {tuple(t.shape)}")
    if t.numel() < min_points:
        raise ValueError(f"{name}: expected at least {min_points} points, got {t.numel()}")
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"{name}: expected finite positive values (laws are fitted on log axes), "
                         f"got min {t.min().item():.4g}")
    return t


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares fit of y = c · x**p on log-log axes; returns ``(p, c)``.

    ``x`` and ``y`` are sequences of the same length (at least 2) of positive numbers.
    """
    lx = torch.as_tensor(x, dtype=torch.float64)
    ly = torch.as_tensor(y, dtype=torch.float64)
    if lx.ndim != 1 or ly.shape != lx.shape:
        raise ValueError(f"x, y: expected two 1-D sequences of one length, got shapes "
                         f"{tuple(lx.shape)} and {tuple(ly.shape)}")
    if lx.numel() < 2:
        raise ValueError(f"x: expected at least 2 points, got {lx.numel()}")
    if (lx <= 0).any() or (ly <= 0).any():
        raise ValueError("x, y: expected positive values (a power law is fitted on log-log axes)")
    lx, ly = torch.log(lx), torch.log(ly)
    p = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    return p.item(), math.exp((ly.mean() - p * lx.mean()).item())


# --- counting parameters and FLOPs -----------------------------------------------------------


def _config_fields(config) -> tuple[int, int, int, int, int, bool]:
    try:
        d, L, V, T = config.d_model, config.n_layers, config.vocab_size, config.context_length
    except AttributeError as err:
        raise TypeError(f"config: expected a GPTConfig-like object, got {type(config).__name__}") from err
    d_ff = config.d_ff or 4 * d
    return d, L, V, T, d_ff, bool(getattr(config, "bias", True))


def gpt_param_counts(config) -> dict[str, int]:
    """Exact parameter counts of :class:`roadmap_lib.models.GPT` built from ``config``.

    ``embedding``: token and position tables (the tied lm_head adds nothing);
    ``non_embedding``: everything else (blocks and the final LayerNorm, biases included), the N of
    Kaplan et al.; ``kaplan``: their approximation 2·n_layers·d_model·(2·d_model + d_ff) = 12·L·d²;
    ``total``: what ``model.num_parameters()`` reports.
    """
    d, L, V, T, d_ff, bias = _config_fields(config)
    b = 1 if bias else 0
    attn = 4 * d * d + 4 * d * b
    ffn = 2 * d * d_ff + (d_ff + d) * b
    norms = 2 * 2 * d  # the blocks' two LayerNorms keep their bias whatever config.bias says
    non_embedding = L * (attn + ffn + norms) + (d + d * b)
    embedding = V * d + T * d + (0 if getattr(config, "tie_embeddings", True) else V * d)
    return {"embedding": embedding, "non_embedding": non_embedding,
            "kaplan": 2 * L * d * (2 * d + d_ff), "total": embedding + non_embedding}


def kaplan_flops(n_params: float, tokens: float, *, n_layers: int = 0, n_ctx: int = 0,
                 d_attn: int = 0) -> float:
    """Training FLOPs by Kaplan et al. (2020), Table 1: C = 6·N·D + 6·n_layers·n_ctx·d_attn·D.

    The second term is attention's score and weighted-sum work (forward 2·n_layers·n_ctx·d_attn
    per token, backward twice that); leave ``n_layers`` at 0 for the usual C ≈ 6·N·D.
    """
    for name, v in (("n_params", n_params), ("tokens", tokens)):
        if not v > 0:
            raise ValueError(f"{name}: expected a positive number, got {v!r}")
    return 6.0 * n_params * tokens + 6.0 * n_layers * n_ctx * d_attn * tokens


def gpt_matmul_flops(config, batch: int, seq: int, *, backward: bool = True) -> int:
    """Exact matrix-multiply FLOPs of one forward (and backward) pass of GPT on (batch, seq) ids.

    Counts what :class:`torch.utils.flop_counter.FlopCounterMode` counts: 2·m·n·k per matmul
    (projections, MLP, the full seq×seq score and weighted-sum products, the lm_head). Embedding
    lookups, LayerNorm, softmax and GELU are not matmuls and are not counted. The backward pass
    does two matmuls per forward one (input and weight gradients): 3× in total.
    """
    d, L, V, T, d_ff, _ = _config_fields(config)
    if batch < 1 or not 1 <= seq <= T:
        raise ValueError(f"batch, seq: expected batch >= 1 and 1 <= seq <= {T}, got {batch}, {seq}")
    tokens = batch * seq
    per_layer = 2 * tokens * (4 * d * d + 2 * d * d_ff) + 2 * 2 * batch * seq * seq * d
    forward = L * per_layer + 2 * tokens * d * V
    return forward * (3 if backward else 1)


# --- fitting L = E + A / x**α and L(N, D) = E + A / N**α + B / D**β -----------------------------


def _huber(r: torch.Tensor, delta: float) -> torch.Tensor:
    a = r.abs()
    return torch.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def _lbfgs(params: torch.Tensor, objective, steps: int = 150) -> tuple[torch.Tensor, float]:
    params = params.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([params], lr=1.0, max_iter=steps, tolerance_grad=1e-12,
                            tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective(params)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        value = objective(params).item()
    return params.detach(), value if math.isfinite(value) else math.inf


# Hoffmann et al.'s grid of initialisations (their section D.2)
_GRID_LOG_COEF = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
_GRID_EXPONENT = [0.0, 0.5, 1.0, 1.5, 2.0]
_GRID_LOG_E = [-1.0, -0.5, 0.0, 0.5, 1.0]


def _best_of_grid(grid: torch.Tensor, objective, starts: int) -> tuple[torch.Tensor, float]:
    """Evaluate ``objective`` on every grid row at once, run L-BFGS from the ``starts`` best."""
    if not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts: expected an int >= 1, got {starts!r}")
    with torch.no_grad():
        values = objective(grid)
    best = None
    for i in values.argsort()[:starts].tolist():
        p, v = _lbfgs(grid[i], objective)
        if best is None or v < best[1]:
            best = (p, v)
    return best


@dataclass(frozen=True)
class PowerLawFit:
    """L(x) = E + A / x**alpha."""

    E: float
    A: float
    alpha: float
    objective: float

    def __call__(self, x):
        x = torch.as_tensor(x, dtype=torch.float64)
        return self.E + self.A / x**self.alpha


@dataclass(frozen=True)
class ChinchillaFit:
    """L(N, D) = E + A / N**alpha + B / D**beta."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float

    def __call__(self, n, d):
        n = torch.as_tensor(n, dtype=torch.float64)
        d = torch.as_tensor(d, dtype=torch.float64)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def compute_optimal(self, flops) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N*, D*)`` minimising L under C = 6·N·D (Hoffmann et al., eq. 4):
        N* = G·(C/6)**(β/(α+β)), D* = (C/6)**(α/(α+β)) / G, G = (αA / (βB))**(1/(α+β))."""
        c = _as_positive("flops", torch.as_tensor(flops, dtype=torch.float64).reshape(-1), 1)
        a, b = self.alpha, self.beta
        g = (a * self.A / (b * self.B)) ** (1 / (a + b))
        return g * (c / 6) ** (b / (a + b)), (c / 6) ** (a / (a + b)) / g


def fit_saturating_power_law(x, loss, *, delta: float = 1e-3, starts: int = 4) -> PowerLawFit:
    """Fit L = E + A / x**α to ``loss`` measured at sizes ``x`` (at least 4 points).

    As Hoffmann et al.: minimise the Huber loss (``delta``) between log L̂ and log L, with
    log L̂ = logsumexp(a − α·log x, e), A = exp(a), E = exp(e), by L-BFGS. Hoffmann et al. start
    L-BFGS from every point of a grid; to stay fast on a laptop we evaluate the objective on the
    grid and start L-BFGS from its ``starts`` best points; the best end point wins.
    """
    x = _as_positive("x", x, 4)
    y = _as_positive("loss", loss, 4)
    if x.shape != y.shape:
        raise ValueError(f"x, loss: expected one length, got {x.numel()} and {y.numel()}")
    lx, ly = x.log(), y.log()

    def objective(p):  # p: (..., 3) = (a, alpha, e)
        pred = torch.logsumexp(torch.stack(torch.broadcast_tensors(
            p[..., 0:1] - p[..., 1:2] * lx, p[..., 2:3])), 0)
        return _huber(pred - ly, delta).sum(-1)

    grid = torch.cartesian_prod(*(torch.tensor(v, dtype=torch.float64) for v in
                                  (_GRID_LOG_COEF, _GRID_EXPONENT, _GRID_LOG_E)))
    p, v = _best_of_grid(grid, objective, starts)
    return PowerLawFit(E=math.exp(p[2]), A=math.exp(p[0]), alpha=p[1].item(), objective=v)


def fit_chinchilla(n, d, loss, *, delta: float = 1e-3, starts: int = 4) -> ChinchillaFit:
    """Fit L(N, D) = E + A / N**α + B / D**β to runs of size ``n`` trained on ``d`` tokens.

    Hoffmann et al. (2022), approach 3: Huber loss (δ = 1e-3) on log L with
    log L̂ = logsumexp(a − α log N, b − β log D, e), minimised by L-BFGS from the ``starts`` best
    points of their grid of initialisations (a, b in 0..25, α, β in 0..2, e in -1..1); the best
    end point wins. Needs at least 6 points and at least 2 distinct values
    of each of N and D.
    """
    n, d, y = _as_positive("n", n, 6), _as_positive("d", d, 6), _as_positive("loss", loss, 6)
    if not n.shape == d.shape == y.shape:
        raise ValueError(f"n, d, loss: expected one length, got {n.numel()}, {d.numel()}, {y.numel()}")
    for name, t in (("n", n), ("d", d)):
        if t.unique().numel() < 2:
            raise ValueError(f"{name}: expected at least 2 distinct values, got {t.unique().tolist()}")
    ln, ld, ly = n.log(), d.log(), y.log()

    def objective(p):  # p: (..., 5) = (a, b, alpha, beta, e)
        pred = torch.logsumexp(torch.stack(torch.broadcast_tensors(
            p[..., 0:1] - p[..., 2:3] * ln, p[..., 1:2] - p[..., 3:4] * ld, p[..., 4:5])), 0)
        return _huber(pred - ly, delta).sum(-1)

    grid = torch.cartesian_prod(*(torch.tensor(v, dtype=torch.float64) for v in
                                  (_GRID_LOG_COEF, _GRID_LOG_COEF, _GRID_EXPONENT, _GRID_EXPONENT,
                                   _GRID_LOG_E)))
    p, v = _best_of_grid(grid, objective, starts)
    return ChinchillaFit(E=math.exp(p[4]), A=math.exp(p[0]), B=math.exp(p[1]), alpha=p[2].item(),
                         beta=p[3].item(), objective=v)


# --- IsoFLOP profiles ----------------------------------------------------------------------------


def isoflop_profile(curves, flops: float) -> list[tuple[float, float]]:
    """``[(N, loss)]``: each model's loss after ``flops / (6 N)`` training tokens.

    ``curves`` is a list of ``(N, tokens, losses)``, one per model size, ``tokens`` increasing;
    the loss is interpolated linearly in log(tokens). A model whose curve does not reach (or
    starts after) that many tokens is left out.
    """
    if not flops > 0:
        raise ValueError(f"flops: expected a positive number, got {flops!r}")
    out = []
    for n, tokens, losses in curves:
        t = _as_positive("tokens", tokens, 2)
        ls = torch.as_tensor(losses, dtype=torch.float64)
        if ls.shape != t.shape:
            raise ValueError(f"tokens, losses: expected one length, got {t.numel()} and {ls.numel()}")
        if (t.diff() <= 0).any():
            raise ValueError("tokens: expected strictly increasing token counts")
        want = flops / (6.0 * n)
        if not t[0] <= want <= t[-1]:
            continue
        i = int(torch.searchsorted(t, torch.tensor(want, dtype=torch.float64)).clamp(1, t.numel() - 1))
        w = (math.log(want) - t[i - 1].log()) / (t[i].log() - t[i - 1].log())
        out.append((float(n), float(ls[i - 1] + w * (ls[i] - ls[i - 1]))))
    return out


def parabola_minimum(n, loss) -> float:
    """The N at the minimum of a parabola in log N fitted (least squares) to ``(n, loss)``.

    Needs at least 3 points; refuses a profile whose parabola opens downwards (no minimum).
    """
    n, y = _as_positive("n", n, 3), torch.as_tensor(loss, dtype=torch.float64)
    if y.shape != n.shape:
        raise ValueError(f"n, loss: expected one length, got {n.numel()} and {y.numel()}")
    x = n.log()
    X = torch.stack([x**2, x, torch.ones_like(x)], 1)
    c = torch.linalg.lstsq(X, y[:, None]).solution[:, 0]
    if c[0] <= 0:
        raise ValueError("loss: the fitted parabola opens downwards, so the profile has no minimum "
                         "in this range of sizes")
    return math.exp((-c[1] / (2 * c[0])).item())


__all__ = ["ChinchillaFit", "PowerLawFit", "fit_chinchilla", "fit_power_law",
           "fit_saturating_power_law", "gpt_matmul_flops", "gpt_param_counts", "isoflop_profile",
           "kaplan_flops", "parabola_minimum"]
