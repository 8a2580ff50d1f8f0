"""Chapter 24, section 6: a class-conditioned diffusion transformer on the 8x8 digits.

The DiT (roadmap_lib.diffusion) learns to predict the noise added to the training digits (pixels
mapped to [-1, 1]), with one label in ten replaced by the null class so that the same model also
generates without a label. Samples come from 50 deterministic DDIM steps. Their quality is judged
by classifiers of the *real* digits: the fraction of samples asked for class k that a judge reads as
k, against the judge's accuracy on real test digits (the ceiling), on samples of the null class
(asked for nothing: chance, about 0.1, though they may look like digits) and on uniform noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from roadmap_lib import set_seed
from roadmap_lib.diffusion import DiT, DiTConfig, diffusion_loss, linear_schedule, sample
from roadmap_lib.measure import cpu_threads

from .experiments import digits_split

DIT_DIGITS = DiTConfig(image_size=8, patch_size=2, channels=1, d_model=48, n_layers=3, n_heads=4, d_ff=96,
                       num_classes=10, freq_dim=64)
#: diffusion steps of the training process (a linear schedule, its ends scaled by 1000 / T)
DIFFUSION_T = 200
#: loss curves are stored as means over windows of this many steps (one step's loss is noisy:
#: its t and noise are random)
LOSS_WINDOW = 25
#: samples drawn per class to judge a model
PER_CLASS = 20

Judge = Callable[[torch.Tensor], torch.Tensor]  # images (n, 1, 8, 8) in [0, 1] -> predicted labels (n,)


def schedule():
    return linear_schedule(DIFFUSION_T)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return images * 2 - 1


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return (x.clamp(-1, 1) + 1) / 2


def window_means(values: list[float], window: int = LOSS_WINDOW) -> list[float]:
    """Means of consecutive windows of ``window`` values (a last partial window is dropped)."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected an int >= 1, got {window!r}")
    return [sum(values[i:i + window]) / window for i in range(0, len(values) - window + 1, window)]


def train_dit(*, steps: int, seed: int, lr: float = 2e-3, batch: int = 64, p_uncond: float = 0.1,
              stop_after: int | None = None, config: DiTConfig = DIT_DIGITS) -> tuple[DiT, list[float]]:
    """Train a DiT on the training split of the digits (the split the ViT judge was trained on) with
    AdamW and a one-cycle schedule over ``steps``; returns (model, loss of every step). The seed sets
    the initialisation, the batches, the steps t, the noise and the dropped labels. ``stop_after``:
    run only the first that many steps of the same schedule (a short re-run of a recorded one)."""
    xtr, ytr, _, _ = digits_split()
    x0 = to_model_range(xtr)
    set_seed(seed)
    model = DiT(config)
    sched = schedule()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    lr_sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    losses = []
    model.train()
    with cpu_threads(1):
        for _ in range(steps if stop_after is None else min(steps, stop_after)):
            idx = torch.randint(0, len(x0), (batch,), generator=gen)
            loss = diffusion_loss(model, sched, x0[idx], ytr[idx], generator=gen, p_uncond=p_uncond,
                                  null_label=config.null_label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_sched.step()
            losses.append(loss.item())
    model.eval()
    return model, losses


def generate(model: DiT, labels: torch.Tensor, *, seed: int = 0, steps: int = 50, guidance: float = 1.0,
             return_trajectory: bool = False):
    """Images in [0, 1] for ``labels`` (``model.config.null_label``: no label) by ``steps`` DDIM
    steps from seeded noise; with ``return_trajectory`` also every intermediate x, in [0, 1]."""
    with cpu_threads(1):
        out = sample(model, schedule(), labels, (1, 8, 8), steps=steps, guidance=guidance,
                     null_label=model.config.null_label, generator=torch.Generator().manual_seed(seed),
                     return_trajectory=return_trajectory)
    if return_trajectory:
        return to_image_range(out[0]), [to_image_range(x) for x in out[1]]
    return to_image_range(out)


def requested_labels(per_class: int = PER_CLASS, num_classes: int = 10) -> torch.Tensor:
    """0,0,...,1,1,...: ``per_class`` of each class."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def logistic_judge() -> Judge:
    """Multinomial logistic regression (scikit-learn, lbfgs) on the 64 pixels of the training split:
    a second judge, stronger than the small shipped ViT."""
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, _, _ = digits_split()
    clf = LogisticRegression(max_iter=3000).fit(xtr.flatten(1).numpy(), ytr.numpy())
    return lambda images: torch.as_tensor(clf.predict(images.flatten(1).numpy()))


def model_judge(model: torch.nn.Module) -> Judge:
    """A classifier of images (n, 1, 8, 8) -> logits, as a judge."""
    def judge(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), cpu_threads(1):
            return model(images).argmax(-1)
    return judge


def per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> list[float]:
    if pred.shape != labels.shape:
        raise ValueError(f"pred: expected the shape of labels {tuple(labels.shape)}, got {tuple(pred.shape)}")
    return [(pred[labels == k] == k).float().mean().item() for k in range(num_classes)]


def sample_quality(model: DiT, judges: dict[str, Judge], *, seed: int = 0, per_class: int = PER_CLASS) -> dict:
    """For every judge: accuracy on real test digits; on samples asked for each class (overall and
    per class); on null-class samples and on uniform-noise images scored against the same requested
    labels (both chance if nothing carries the label); and the share of null-class samples each
    judge puts in each class."""
    _, _, xte, yte = digits_split()
    labels = requested_labels(per_class)
    cond = generate(model, labels, seed=seed)
    null = generate(model, torch.full_like(labels, model.config.null_label), seed=seed)
    noise = torch.rand(cond.shape, generator=torch.Generator().manual_seed(seed))
    out = {}
    for name, judge in judges.items():
        pc = per_class_accuracy(judge(cond), labels)
        null_pred = judge(null)
        out[name] = {"real test": (judge(xte) == yte).float().mean().item(),
                     "conditional samples": sum(pc) / len(pc), "per class": pc,
                     "null-class samples": (null_pred == labels).float().mean().item(),
                     "uniform noise": (judge(noise) == labels).float().mean().item(),
                     "null-class prediction shares": (torch.bincount(null_pred, minlength=10) / len(labels)).tolist()}
    return out


def dit_experiment(judges: dict[str, Judge], seeds=(0, 1, 2), steps: int = 1500) -> dict:
    """Train a DiT per seed and judge its samples; the loss curves as window means."""
    out = {"runs": []}
    for seed in seeds:
        model, losses = train_dit(steps=steps, seed=seed)
        out["runs"].append({"seed": seed, "loss": window_means(losses), "quality": sample_quality(model, judges)})
        if seed == seeds[0]:
            out["model"] = model
    return out
