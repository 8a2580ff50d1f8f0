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
from roadmap_lib.diffusion import DiT, DiTConfig, cosine_schedule, diffusion_loss, linear_schedule, sample
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
#: classifier-free guidance scales of the sweep (0: the null prediction alone, 1: the conditional
#: prediction alone, above 1: past it, away from the null one)
GUIDANCE_SCALES = (0.0, 1.0, 2.0, 3.0, 5.0)
#: seeds of the starting noise in the guidance sweep (one trained model, three sets of samples)
SAMPLING_SEEDS = (0, 1, 2)

Judge = Callable[[torch.Tensor], torch.Tensor]  # images (n, 1, 8, 8) in [0, 1] -> predicted labels (n,)


#: the noise schedules a DiT can be trained with (the shipped one: "linear")
SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def schedule(name: str = "linear"):
    """The noise schedule ``name`` ("linear" or "cosine") over DIFFUSION_T steps."""
    if name not in SCHEDULES:
        raise ValueError(f"name: expected one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name](DIFFUSION_T)


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
              stop_after: int | None = None, config: DiTConfig = DIT_DIGITS,
              schedule_name: str = "linear") -> tuple[DiT, list[float]]:
    """Train a DiT on the training split of the digits (the split the ViT judge was trained on) with
    AdamW and a one-cycle schedule over ``steps``; returns (model, loss of every step). The seed sets
    the initialisation, the batches, the steps t, the noise and the dropped labels. ``stop_after``:
    run only the first that many steps of the same schedule (a short re-run of a recorded one)."""
    xtr, ytr, _, _ = digits_split()
    x0 = to_model_range(xtr)
    set_seed(seed)
    model = DiT(config)
    sched = schedule(schedule_name)
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
             return_trajectory: bool = False, schedule_name: str = "linear"):
    """Images in [0, 1] for ``labels`` (``model.config.null_label``: no label) by ``steps`` DDIM
    steps from seeded noise (on the schedule the model was trained with); with
    ``return_trajectory`` also every intermediate x, in [0, 1]."""
    with cpu_threads(1):
        out = sample(model, schedule(schedule_name), labels, (1, 8, 8), steps=steps, guidance=guidance,
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


def sample_quality(model: DiT, judges: dict[str, Judge], *, seed: int = 0, per_class: int = PER_CLASS,
                   samples: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """For every judge: accuracy on real test digits; on samples asked for each class (overall and
    per class); on null-class samples and on uniform-noise images scored against the same requested
    labels (both chance if nothing carries the label); and the share of null-class samples each
    judge puts in each class. ``samples``: the (conditional, null-class) images ``generate`` gives
    for ``requested_labels(per_class)`` and ``seed``, if already drawn (they are not drawn again)."""
    _, _, xte, yte = digits_split()
    labels = requested_labels(per_class)
    if samples is None:
        cond = generate(model, labels, seed=seed)
        null = generate(model, torch.full_like(labels, model.config.null_label), seed=seed)
    else:
        cond, null = samples
        if cond.shape != (len(labels), 1, 8, 8) or null.shape != cond.shape:
            raise ValueError(f"samples: expected two tensors of shape ({len(labels)}, 1, 8, 8), got "
                             f"{tuple(cond.shape)} and {tuple(null.shape)}")
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


def guided_accuracy(model: DiT, judges: dict[str, Judge], guidance: float, *, seed: int = 0,
                    per_class: int = PER_CLASS, schedule_name: str = "linear") -> dict:
    """For every judge, the accuracy on ``per_class`` samples asked for each class, drawn with
    classifier-free guidance ``guidance`` from the noise of ``seed``: overall and per class.
    At ``guidance = 1`` these are the samples (and numbers) of ``sample_quality``."""
    labels = requested_labels(per_class)
    images = generate(model, labels, seed=seed, guidance=guidance, schedule_name=schedule_name)
    out = {}
    for name, judge in judges.items():
        pc = per_class_accuracy(judge(images), labels)
        out[name] = {"accuracy": sum(pc) / len(pc), "per class": pc}
    return out


def guidance_sweep(model: DiT, judges: dict[str, Judge], scales=GUIDANCE_SCALES, seeds=SAMPLING_SEEDS,
                   per_class: int = PER_CLASS) -> dict:
    """``guided_accuracy`` at every scale for every sampling seed, and the null-class samples of
    each seed scored against the same requested labels (the chance reference). Returns
    {"accuracy": {judge: [[one per seed] per scale]}, "per class": {judge: [[mean over seeds, one per
    class] per scale]}, "null-class samples": {judge: [one per seed]}}."""
    if not scales or not seeds:
        raise ValueError(f"scales, seeds: expected non-empty sequences, got {scales!r}, {seeds!r}")
    runs = {(w, s): guided_accuracy(model, judges, w, seed=s, per_class=per_class) for w in scales for s in seeds}
    labels = requested_labels(per_class)
    null = {s: generate(model, torch.full_like(labels, model.config.null_label), seed=s) for s in seeds}
    out = {"accuracy": {}, "per class": {}, "null-class samples": {}}
    for name, judge in judges.items():
        out["accuracy"][name] = [[runs[w, s][name]["accuracy"] for s in seeds] for w in scales]
        out["per class"][name] = [[sum(runs[w, s][name]["per class"][k] for s in seeds) / len(seeds)
                                   for k in range(10)] for w in scales]
        out["null-class samples"][name] = [(judge(null[s]) == labels).float().mean().item() for s in seeds]
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


def schedule_comparison(judges: dict[str, Judge], seeds=(0, 1, 2), *, steps: int = 1500,
                        scales=(1.0, 3.0), trained: dict | None = None) -> dict:
    """Train a DiT per schedule ("linear", "cosine") and seed (everything else as the shipped one)
    and judge samples asked for each class (sampling seed 0) at each guidance scale. ``trained``:
    {(schedule, seed): model} already trained with this recipe (not trained again). Returns
    {"accuracy": {schedule: {judge: [[one per seed] per scale]}}, "loss": {schedule: [window means
    of each trained seed]}, "models": {(schedule, seed): model}}."""
    trained = dict(trained or {})
    out = {"accuracy": {}, "loss": {}, "models": {}}
    for name in SCHEDULES:
        out["loss"][name] = []
        for seed in seeds:
            if (name, seed) not in trained:
                model, losses = train_dit(steps=steps, seed=seed, schedule_name=name)
                trained[name, seed] = model
                out["loss"][name].append(window_means(losses))
            out["models"][name, seed] = trained[name, seed]
        runs = {(w, s): guided_accuracy(trained[name, s], judges, w, schedule_name=name) for w in scales for s in seeds}
        out["accuracy"][name] = {j: [[runs[w, s][j]["accuracy"] for s in seeds] for w in scales] for j in judges}
    return out
