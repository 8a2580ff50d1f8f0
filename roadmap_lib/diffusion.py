"""Denoising diffusion (DDPM, Ho et al. 2020; DDIM, Song et al. 2021) and a small diffusion
transformer (DiT, Peebles & Xie 2023) with adaLN-Zero conditioning.

The forward process adds Gaussian noise in ``T`` steps with variances ``beta_1..beta_T``; with
``alpha_t = 1 - beta_t`` and ``alpha_bar_t = prod_{s<=t} alpha_s`` it has a closed form at any step:

    q(x_t | x_0) = N( sqrt(alpha_bar_t) · x_0 ,  (1 - alpha_bar_t) · I )
    x_t = sqrt(alpha_bar_t) · x_0 + sqrt(1 - alpha_bar_t) · eps,   eps ~ N(0, I)

A network ``eps_theta(x_t, t, y)`` learns to predict ``eps`` (the "simple" DDPM loss: the mean
squared error between predicted and true noise, ``t`` uniform). Sampling runs it backwards from pure
noise: ``ddpm_step`` draws from the Gaussian posterior q(x_{t-1} | x_t, x_0 = predicted x_0), T
steps; ``ddim_step`` jumps between any two steps (``eta = 0``: deterministic), which is what makes
50 steps enough. ``eta = 1`` between consecutive steps is the DDPM step (tests/test_diffusion.py).

Steps are 0-based here: ``t = 0..T-1``, ``alpha_bar[t]`` the product up to and including ``t``;
"step -1" is the clean image (alpha_bar = 1).

The DiT is a ViT on the noisy image's patches whose blocks are modulated by the condition
``c = embed(t) + embed(y)``: each block computes from ``c`` a shift, a scale and a gate for its
attention branch and for its MLP branch (adaptive LayerNorm); the gates start at zero ("adaLN-Zero"),
so every block starts as the identity and the final layer outputs zero. Label ``num_classes`` is the
"null" class: trained on a random fraction of the examples it makes the same model an unconditional
one, and classifier-free guidance mixes the two predictions. Differences from the paper's DiT, for
8×8 images: learned position embeddings (the paper uses fixed 2-D sin-cos ones) and no learned
variance (the model predicts the noise only).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionConfig, MultiHeadAttention
from .layers import FeedForward
from .vision import patchify, unpatchify

# ---- the noise schedule and the forward process ----------------------------------------------


@dataclass
class NoiseSchedule:
    """``betas`` (T,) in (0, 1); ``alphas = 1 - betas``; ``alpha_bar`` their running product."""

    betas: torch.Tensor

    def __post_init__(self) -> None:
        b = self.betas
        if not isinstance(b, torch.Tensor) or b.ndim != 1 or len(b) < 1:
            raise ValueError(f"betas: expected a 1-D tensor of length >= 1, got {getattr(b, 'shape', b)!r}")
        if not bool(((b > 0) & (b < 1)).all()):
            raise ValueError(f"betas: expected every value in (0, 1), got min {b.min().item()}, "
                             f"max {b.max().item()}")
        self.betas = b.double()
        self.alphas = 1.0 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)

    @property
    def T(self) -> int:
        return len(self.betas)

    def ab(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar at (possibly -1, meaning 1.0) integer steps ``t``, as float32."""
        padded = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar])
        return padded[t.long() + 1].float()


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """DDPM's linear betas. For T != 1000 the ends are scaled by 1000 / T (as in Nichol &
    Dhariwal's code) so that the last alpha_bar stays near zero."""
    _check_T(T)
    scale = 1000 / T
    if beta_end * scale >= 1:
        raise ValueError(f"T: expected T > {1000 * beta_end:g} for beta_end={beta_end} (the ends are scaled by "
                         f"1000 / T and every beta must stay below 1), got {T}")
    return NoiseSchedule(torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Nichol & Dhariwal's cosine schedule: alpha_bar(t) = f(t) / f(0), f(t) = cos²((t/T + s) /
    (1 + s) · π/2), the betas clipped at ``max_beta`` (the last one otherwise reaches 1)."""
    _check_T(T)
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    return NoiseSchedule((1 - f[1:] / f[:-1]).clamp(max=max_beta))


def _check_T(T) -> None:
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"T: expected an int >= 2, got {T!r}")


def _check_t(schedule: NoiseSchedule, t: torch.Tensor, batch: int, lowest: int = 0) -> None:
    if not isinstance(t, torch.Tensor) or t.shape != (batch,) or t.dtype.is_floating_point:
        raise ValueError(f"t: expected an integer tensor of shape ({batch},), got "
                         f"{getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")
    if len(t) and (int(t.min()) < lowest or int(t.max()) >= schedule.T):
        raise ValueError(f"t: expected steps in [{lowest}, {schedule.T - 1}], got min {int(t.min())}, "
                         f"max {int(t.max())}")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


def q_mean_std(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (shaped like ``x0``) and standard deviation (one per example, broadcastable) of
    q(x_t | x_0)."""
    _check_t(schedule, t, x0.shape[0])
    ab = _bcast(schedule.ab(t), x0)
    return ab.sqrt() * x0, (1 - ab).sqrt()


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) · x0 + sqrt(1 - alpha_bar_t) · noise."""
    if noise.shape != x0.shape:
        raise ValueError(f"noise: expected the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    mean, std = q_mean_std(schedule, x0, t)
    return mean + std * noise


def predict_x0(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Invert q_sample for x0 given (a prediction of) the noise."""
    ab = _bcast(schedule.ab(t), x_t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def diffusion_loss(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, labels: torch.Tensor, *,
                   generator: torch.Generator | None = None, p_uncond: float = 0.0,
                   null_label: int | None = None) -> torch.Tensor:
    """The DDPM "simple" loss: t uniform in 0..T-1, eps ~ N(0, I), mean((model(x_t, t, y) - eps)²).
    With ``p_uncond > 0`` that fraction of the labels (at random) is replaced by ``null_label``
    (classifier-free guidance training)."""
    if not 0.0 <= p_uncond < 1.0:
        raise ValueError(f"p_uncond: expected a probability in [0, 1), got {p_uncond!r}")
    if p_uncond > 0 and null_label is None:
        raise ValueError("null_label: expected the null class's id when p_uncond > 0, got None")
    b = x0.shape[0]
    t = torch.randint(0, schedule.T, (b,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    if p_uncond > 0:
        drop = torch.rand(b, generator=generator) < p_uncond
        labels = torch.where(drop, torch.full_like(labels, null_label), labels)
    return F.mse_loss(model(q_sample(schedule, x0, t, noise), t, labels), noise)


# ---- sampling ----------------------------------------------------------------------------------


def ddim_step(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor,
              t_prev: torch.Tensor, *, eta: float = 0.0, noise: torch.Tensor | None = None,
              clip: float | None = None) -> torch.Tensor:
    """One DDIM step from ``t`` to ``t_prev`` < t (``-1``: the clean image):

        x0^ = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)          (clipped to [-clip, clip] if given)
        sigma = eta · sqrt((1 - ab_prev) / (1 - ab_t) · (1 - ab_t / ab_prev))
        x_prev = sqrt(ab_prev) x0^ + sqrt(1 - ab_prev - sigma²) eps' + sigma · noise

    with eps' the noise consistent with the (clipped) x0^. ``eta = 0`` is deterministic."""
    _check_t(schedule, t, x_t.shape[0])
    _check_t(schedule, t_prev, x_t.shape[0], lowest=-1)
    if bool((t_prev >= t).any()):
        raise ValueError("t_prev: expected every t_prev < t")
    if eta < 0:
        raise ValueError(f"eta: expected a number >= 0, got {eta!r}")
    ab, ab_prev = _bcast(schedule.ab(t), x_t), _bcast(schedule.ab(t_prev), x_t)
    x0 = predict_x0(schedule, x_t, eps, t)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
    out = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        if noise is None:
            raise ValueError("noise: expected a tensor like x_t when eta > 0, got None")
        out = out + sigma * noise
    return out


def ddpm_step(schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor,
              noise: torch.Tensor) -> torch.Tensor:
    """One ancestral DDPM step t -> t-1: the mean of q(x_{t-1} | x_t, x0^),
    (x_t - beta_t / sqrt(1 - ab_t) · eps) / sqrt(alpha_t), plus sqrt(beta~_t) · noise with the
    posterior variance beta~_t = beta_t (1 - ab_{t-1}) / (1 - ab_t) (zero at t = 0)."""
    _check_t(schedule, t, x_t.shape[0])
    beta = _bcast(schedule.betas[t].float(), x_t)
    ab, ab_prev = _bcast(schedule.ab(t), x_t), _bcast(schedule.ab(t - 1), x_t)
    mean = (x_t - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()
    return mean + (beta * (1 - ab_prev) / (1 - ab)).sqrt() * noise


def sampling_steps(T: int, steps: int) -> list[int]:
    """``steps`` evenly spaced steps from T-1 down to 0 (DDIM's "uniform" spacing)."""
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps: expected an int in [1, {T}], got {steps!r}")
    return sorted({round(i * (T - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


@torch.no_grad()
def sample(model: nn.Module, schedule: NoiseSchedule, labels: torch.Tensor, shape: tuple[int, ...], *,
           steps: int = 50, eta: float = 0.0, guidance: float = 1.0, null_label: int | None = None,
           clip: float | None = 1.0, generator: torch.Generator | None = None,
           return_trajectory: bool = False):
    """Images (len(labels), *shape) from pure noise by DDIM over ``steps`` steps (``steps = T`` and
    ``eta = 1``: ancestral DDPM). ``guidance`` w != 1 mixes eps = eps(null) + w (eps(y) - eps(null))
    (classifier-free guidance; needs ``null_label``). With ``return_trajectory`` also the list of
    x after every step (the first entry is the starting noise)."""
    if guidance != 1.0 and null_label is None:
        raise ValueError("null_label: expected the null class's id for guidance != 1, got None")
    n = labels.shape[0]
    x = torch.randn((n, *shape), generator=generator)
    traj = [x]
    ts = sampling_steps(schedule.T, steps)
    model.eval()
    for i, step in enumerate(ts):
        t = torch.full((n,), step, dtype=torch.long)
        t_prev = torch.full((n,), ts[i + 1] if i + 1 < len(ts) else -1, dtype=torch.long)
        if guidance == 1.0:
            eps = model(x, t, labels)
        else:
            both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, null_label)]))
            cond, uncond = both.chunk(2)
            eps = uncond + guidance * (cond - uncond)
        noise = torch.randn(x.shape, generator=generator) if eta > 0 else None
        x = ddim_step(schedule, x, eps, t, t_prev, eta=eta, noise=noise, clip=clip)
        traj.append(x)
    return (x, traj) if return_trajectory else x


# ---- the diffusion transformer ------------------------------------------------------------------


@dataclass
class DiTConfig:
    image_size: int = 8
    patch_size: int = 2
    channels: int = 1
    d_model: int = 48
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int | None = None  # None: 4 * d_model
    num_classes: int = 10  # plus one null class, id num_classes
    freq_dim: int = 64  # sinusoidal timestep features before the timestep MLP

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "channels", "d_model", "n_layers", "n_heads", "num_classes",
                     "freq_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size: expected a divisor of image_size {self.image_size}, got {self.patch_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model {self.d_model}, got {self.n_heads}")
        if self.freq_dim % 2:
            raise ValueError(f"freq_dim: expected an even int, got {self.freq_dim}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def null_label(self) -> int:
        return self.num_classes

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(batch,) steps -> (batch, dim) [cos(t·f_0..f_{h-1}), sin(t·f_0..f_{h-1})], f_i =
    max_period^(-i/h), h = dim/2 (the DiT / ADM convention: cosines first)."""
    if dim % 2:
        raise ValueError(f"dim: expected an even int, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x · (1 + scale) + shift, one (shift, scale) per example, the same for every token."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """A pre-norm encoder block whose two LayerNorms (without parameters of their own) take their
    shift and scale from the condition, and whose two residual branches are gated by it."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        d = config.d_model
        self.attn = MultiHeadAttention(AttentionConfig(d_model=d, n_heads=config.n_heads))
        self.mlp = FeedForward(d, config.d_ff, activation="gelu_tanh")
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.adaLN_modulation[1].weight)  # adaLN-Zero: the gates start at 0
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        d = x.shape[-1]
        x = x + gate1[:, None] * self.attn(modulate(F.layer_norm(x, (d,), eps=1e-6), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(F.layer_norm(x, (d,), eps=1e-6), shift2, scale2))


class DiT(nn.Module):
    """eps_theta(x_t, t, y): noisy images (batch, C, H, W), steps (batch,) and labels (batch,) in
    0..num_classes (num_classes = null) -> predicted noise (batch, C, H, W)."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = c = config
        d, patch_dim = c.d_model, c.channels * c.patch_size**2
        self.patch_embed = nn.Linear(patch_dim, d)
        self.pos_emb = nn.Parameter(torch.zeros(1, c.n_patches, d))
        self.t_embed = nn.Sequential(nn.Linear(c.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.y_embed = nn.Embedding(c.num_classes + 1, d)
        self.blocks = nn.ModuleList(DiTBlock(c) for _ in range(c.n_layers))
        self.final_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.final = nn.Linear(d, patch_dim)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.y_embed.weight, std=0.02)
        for layer in (self.t_embed[0], self.t_embed[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for layer in (self.final_modulation[1], self.final):  # the output starts at exactly 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def condition(self, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """c = MLP(sinusoid(t)) + embedding(y): (batch, d_model)."""
        return self.t_embed(timestep_embedding(t, self.config.freq_dim)) + self.y_embed(labels)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"x: expected (batch, {', '.join(map(str, want))}), got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        b = x.shape[0]
        for name, v in (("t", t), ("labels", labels)):
            if not isinstance(v, torch.Tensor) or v.shape != (b,) or v.dtype.is_floating_point:
                raise ValueError(f"{name}: expected an integer tensor of shape ({b},), got "
                                 f"{getattr(v, 'dtype', type(v).__name__)} {tuple(getattr(v, 'shape', ()))}")
        if b and (int(labels.min()) < 0 or int(labels.max()) > c.num_classes):
            raise ValueError(f"labels: expected ids in [0, {c.num_classes}] ({c.num_classes} = null), got "
                             f"min {int(labels.min())}, max {int(labels.max())}")
        cond = self.condition(t, labels)
        h = self.patch_embed(patchify(x, c.patch_size)) + self.pos_emb
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.final_modulation(cond).chunk(2, dim=-1)
        out = self.final(modulate(F.layer_norm(h, (c.d_model,), eps=1e-6), shift, scale))
        return unpatchify(out, c.patch_size, c.channels, c.image_size, c.image_size)


__all__ = ["DiT", "DiTBlock", "DiTConfig", "NoiseSchedule", "cosine_schedule", "ddim_step", "ddpm_step",
           "diffusion_loss", "linear_schedule", "modulate", "predict_x0", "q_mean_std", "q_sample", "sample",
           "sampling_steps", "timestep_embedding"]
