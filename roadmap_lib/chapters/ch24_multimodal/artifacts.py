"""Chapter 24's shipped results: three experiments, three seeds each, with their seed-0 checkpoints.

- ``python -m roadmap_lib build multimodal-vit-digits``: ``24_vit_digits.json`` (test accuracy of
  the digits ViT and of a CNN of the same size, 3 seeds of 300 steps, loss every 10th step) and
  ``24_vit_digits.safetensors`` (the ViT of seed 0, about 18k parameters);
- ``python -m roadmap_lib build multimodal-clip``: ``24_clip_scenes.json`` (for 3 CLIP seeds of 300
  steps: zero-shot accuracy and retrieval recall on seen and held-out layouts) and
  ``24_clip_scenes.safetensors`` (the CLIP of seed 0);
- ``python -m roadmap_lib build multimodal-sounds``: ``24_sounds.json`` (test accuracy of the
  spectrogram ViT and of the bag-of-frames baseline, 3 seeds of 400 steps, confusion matrices of
  seed 0) and ``24_vit_sounds.safetensors`` (the spectrogram ViT of seed 0);
- ``python -m roadmap_lib build multimodal-dit``: ``24_dit_digits.json`` (3 seeds of a class-
  conditioned diffusion transformer, 1,500 steps each: loss curves as 25-step means, and sample
  quality judged by the shipped digits ViT and by a logistic regression) and
  ``24_dit_digits.safetensors`` (the DiT of seed 0). Needs ``multimodal-vit-digits`` (the judge);
- ``python -m roadmap_lib build multimodal-dit-guidance``: ``24_dit_guidance.json`` (classifier-free
  guidance at sampling time on the shipped seed-0 DiT: both judges' accuracy on samples asked for
  each class at guidance 0, 1, 2, 3 and 5, for 3 seeds of the starting noise; no training). Needs
  ``multimodal-dit``;
- ``python -m roadmap_lib build multimodal-dit-schedules``: ``24_dit_schedules.json`` (the shipped
  DiT recipe trained with the linear and with the cosine noise schedule, 3 seeds each, judged at
  guidance 1 and 3; the linear seed 0 is the shipped checkpoint, not trained again) and
  ``24_dit_cosine.safetensors`` (the cosine DiT of seed 0). Needs ``multimodal-dit``.

Each ``verify`` reloads its checkpoint and re-measures the seed-0 numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from roadmap_lib import DATA_DIR
from roadmap_lib.checkpoint import load_model, save_model
from roadmap_lib.fileio import atomic_write_text
from roadmap_lib.models.clip import CLIP
from roadmap_lib.models.vit import ViTForImageClassification
from roadmap_lib.vision import scene_pairs
from roadmap_lib.zoo import Artifact, check

from . import diffusion_digits as dd
from .experiments import (
    AUDIO_VIT,
    VIT_DIGITS,
    accuracy,
    audio_experiment,
    caption_tokenizer,
    clip_config,
    digits_split,
    held_out_pairs,
    retrieval,
    sound_data,
    train_clip,
    vit_vs_cnn,
    zero_shot,
)

DIGITS, CLIP_NAME, SOUNDS = "multimodal-vit-digits", "multimodal-clip", "multimodal-sounds"
DIGITS_JSON, VIT_CKPT = "24_vit_digits.json", "24_vit_digits.safetensors"
CLIP_JSON, CLIP_CKPT = "24_clip_scenes.json", "24_clip_scenes.safetensors"
SOUNDS_JSON, AUDIO_CKPT = "24_sounds.json", "24_vit_sounds.safetensors"
DIT, DIT_JSON, DIT_CKPT = "multimodal-dit", "24_dit_digits.json", "24_dit_digits.safetensors"
GUIDE, GUIDE_JSON = "multimodal-dit-guidance", "24_dit_guidance.json"
SCHED, SCHED_JSON, COSINE_CKPT = "multimodal-dit-schedules", "24_dit_schedules.json", "24_dit_cosine.safetensors"
_OWNER = {DIGITS_JSON: DIGITS, CLIP_JSON: CLIP_NAME, SOUNDS_JSON: SOUNDS, DIT_JSON: DIT, GUIDE_JSON: GUIDE,
          SCHED_JSON: SCHED}
SCHED_SCALES = (1.0, 3.0)
SEEDS = (0, 1, 2)
STEPS, AUDIO_STEPS, DIT_STEPS = 300, 400, 1500
#: Accuracies are over a few hundred fixed examples: equal on one machine; the margin covers a
#: last-bit change of a logit on another BLAS flipping a near-tie.
TOL = 0.01
#: Sample accuracies are over 200 samples made by 50 DDIM steps: a last-bit difference can grow
#: along the chain and flip a few of them on another BLAS (on this machine they are equal).
DIT_TOL = 0.03


def _root(root: Path | None) -> Path:
    return Path(root) if root is not None else DATA_DIR


def seen_pairs() -> list:
    held = held_out_pairs()
    return [p for p in scene_pairs() if p not in held]


def clip_metrics(model: CLIP) -> dict:
    return {"zero_shot_seen": zero_shot(model, seen_pairs()), "zero_shot_held_out": zero_shot(model, held_out_pairs()),
            "retrieval_seen": retrieval(model, seen_pairs()), "retrieval_held_out": retrieval(model, held_out_pairs())}


def load_results(name: str, root: Path | None = None) -> dict:
    """One of the recorded results files: DIGITS_JSON, CLIP_JSON, SOUNDS_JSON, DIT_JSON or GUIDE_JSON."""
    if name not in _OWNER:
        raise ValueError(f"name: expected one of {sorted(_OWNER)}, got {name!r}")
    path = _root(root) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not built: run `python -m roadmap_lib build {_OWNER[name]}`")
    return json.loads(path.read_text(encoding="utf-8"))


def load_vit(root: Path | None = None) -> ViTForImageClassification:
    model = ViTForImageClassification(VIT_DIGITS)
    load_model(model, _root(root) / VIT_CKPT)
    return model.eval()


def load_clip(root: Path | None = None) -> CLIP:
    model = CLIP(clip_config(caption_tokenizer().vocab_size))
    load_model(model, _root(root) / CLIP_CKPT)
    return model.eval()


def load_audio_vit(root: Path | None = None) -> ViTForImageClassification:
    model = ViTForImageClassification(AUDIO_VIT)
    load_model(model, _root(root) / AUDIO_CKPT)
    return model.eval()


def load_dit(root: Path | None = None):
    model = dd.DiT(dd.DIT_DIGITS)
    load_model(model, _root(root) / DIT_CKPT)
    return model.eval()


def load_cosine_dit(root: Path | None = None):
    model = dd.DiT(dd.DIT_DIGITS)
    load_model(model, _root(root) / COSINE_CKPT)
    return model.eval()


def judges(root: Path | None = None) -> dict:
    """The two judges of generated digits: the shipped ViT (from ``root``) and a logistic regression."""
    return {"ViT": dd.model_judge(load_vit(root)), "logistic regression": dd.logistic_judge()}


def _write(root: Path, name: str, results: dict, t0: float) -> None:
    results = {"command": f"python -m roadmap_lib build {_OWNER[name]}", **results,
               "build_seconds": round(time.time() - t0, 1)}
    atomic_write_text(root / name, json.dumps(results, indent=1) + "\n")


def build_digits(root: Path) -> None:
    t0 = time.time()
    sweep = vit_vs_cnn(SEEDS, steps=STEPS)
    save_model(sweep["vit_model"], root / VIT_CKPT, config=VIT_DIGITS.to_dict())
    _write(root, DIGITS_JSON, {"seeds": list(SEEDS), "steps": STEPS, "vit": sweep["vit"], "cnn": sweep["cnn"],
                               "vit_params": sweep["vit_params"], "cnn_params": sweep["cnn_params"],
                               "logs": {k: [r["loss"] for r in v][::10] for k, v in sweep["logs"].items()}}, t0)


def verify_digits(root: Path):
    _, _, xte, yte = digits_split()
    return [check("digits ViT seed 0 test accuracy", accuracy(load_vit(root), xte, yte),
                  load_results(DIGITS_JSON, root)["vit"][0], TOL)]


def build_clip(root: Path) -> None:
    t0 = time.time()
    runs = []
    for seed in SEEDS:
        model, log = train_clip(steps=STEPS, seed=seed)
        runs.append({"seed": seed, **clip_metrics(model), "loss": [r["loss"] for r in log][::10],
                     "final_scale": log[-1]["scale"]})
        if seed == SEEDS[0]:
            save_model(model, root / CLIP_CKPT)
    _write(root, CLIP_JSON, {"seeds": list(SEEDS), "steps": STEPS, "runs": runs}, t0)


def verify_clip(root: Path):
    got, want = clip_metrics(load_clip(root)), load_results(CLIP_JSON, root)["runs"][0]
    return [check(f"CLIP seed 0 {key} {metric}", got[key][metric], want[key][metric], TOL)
            for key, metric in (("zero_shot_seen", "accuracy"), ("zero_shot_held_out", "accuracy"),
                                ("zero_shot_held_out", "swapped"), ("retrieval_held_out", "image->text R@1"),
                                ("retrieval_seen", "text->image R@1"))]


def build_sounds(root: Path) -> None:
    t0 = time.time()
    audio = audio_experiment(SEEDS, steps=AUDIO_STEPS)
    save_model(audio.pop("vit_model"), root / AUDIO_CKPT, config=AUDIO_VIT.to_dict())
    audio.pop("bag_model")
    _write(root, SOUNDS_JSON, {"seeds": list(SEEDS), "steps": AUDIO_STEPS, **audio}, t0)


def verify_sounds(root: Path):
    d = sound_data()
    return [check("sounds ViT seed 0 test accuracy", accuracy(load_audio_vit(root), d["x_test"], d["y_test"]),
                  load_results(SOUNDS_JSON, root)["vit"][0], TOL)]


def build_dit(root: Path) -> None:
    t0 = time.time()
    # root is a staging folder inside the data folder, which holds the judge (built first: `needs`)
    judge_root = root.parent if (root.parent / VIT_CKPT).is_file() else None
    out = dd.dit_experiment(judges(judge_root), SEEDS, steps=DIT_STEPS)
    save_model(out.pop("model"), root / DIT_CKPT, config=dd.DIT_DIGITS.to_dict())
    _write(root, DIT_JSON, {"seeds": list(SEEDS), "steps": DIT_STEPS, "diffusion_T": dd.DIFFUSION_T,
                            "loss_window": dd.LOSS_WINDOW, "per_class": dd.PER_CLASS,
                            "params": sum(p.numel() for p in dd.DiT(dd.DIT_DIGITS).parameters()), **out}, t0)


def verify_dit(root: Path):
    got = dd.sample_quality(load_dit(root), judges(root))
    want = load_results(DIT_JSON, root)["runs"][0]["quality"]
    return [check(f"DiT seed 0: {judge} accuracy on {what}", got[judge][what], want[judge][what], DIT_TOL)
            for judge in want for what in ("conditional samples", "null-class samples")]


def build_guidance(root: Path) -> None:
    t0 = time.time()
    # root is a staging folder inside the data folder, which holds the DiT and the judge (`needs`)
    src = root.parent if (root.parent / DIT_CKPT).is_file() else None
    sweep = dd.guidance_sweep(load_dit(src), judges(src))
    real = {name: load_results(DIT_JSON, src)["runs"][0]["quality"][name]["real test"] for name in sweep["accuracy"]}
    _write(root, GUIDE_JSON, {"model": f"{DIT_CKPT} (the seed-0 DiT of {DIT})", "scales": list(dd.GUIDANCE_SCALES),
                              "sampling_seeds": list(dd.SAMPLING_SEEDS), "per_class": dd.PER_CLASS,
                              "ddim_steps": 50, "real test": real, **sweep}, t0)


def verify_guidance(root: Path):
    want = load_results(GUIDE_JSON, root)
    model, js = load_dit(root), judges(root)
    out = []
    for w in (0.0, 3.0):
        got = dd.guided_accuracy(model, js, w, seed=want["sampling_seeds"][0], per_class=want["per_class"])
        i = want["scales"].index(w)
        out += [check(f"DiT guidance {w:g}, sampling seed {want['sampling_seeds'][0]}: {judge} accuracy",
                      got[judge]["accuracy"], want["accuracy"][judge][i][0], DIT_TOL) for judge in js]
    return out


def build_schedules(root: Path) -> None:
    t0 = time.time()
    src = root.parent if (root.parent / DIT_CKPT).is_file() else None
    out = dd.schedule_comparison(judges(src), SEEDS, steps=DIT_STEPS, scales=SCHED_SCALES,
                                 trained={("linear", SEEDS[0]): load_dit(src)})
    save_model(out.pop("models")["cosine", SEEDS[0]], root / COSINE_CKPT, config=dd.DIT_DIGITS.to_dict())
    _write(root, SCHED_JSON, {"seeds": list(SEEDS), "steps": DIT_STEPS, "diffusion_T": dd.DIFFUSION_T,
                              "scales": list(SCHED_SCALES), "sampling_seed": 0, "per_class": dd.PER_CLASS,
                              "note": f"linear seed {SEEDS[0]} is the shipped {DIT_CKPT} (not trained again: "
                                      "its loss curve is in " + DIT_JSON + ")", **out}, t0)


def verify_schedules(root: Path):
    want = load_results(SCHED_JSON, root)
    model, js = load_cosine_dit(root), judges(root)
    out = []
    for i, w in enumerate(want["scales"]):
        got = dd.guided_accuracy(model, js, w, per_class=want["per_class"], schedule_name="cosine")
        out += [check(f"cosine DiT seed 0, guidance {w:g}: {judge} accuracy", got[judge]["accuracy"],
                      want["accuracy"]["cosine"][judge][i][0], DIT_TOL) for judge in js]
    return out


ARTIFACTS = [
    Artifact(DIGITS, "24", "chapter 24: a ViT and a CNN of the same size on the 8x8 digits, 3 seeds; "
             "the seed-0 ViT", (DIGITS_JSON, VIT_CKPT), build_digits, verify_digits),
    Artifact(CLIP_NAME, "24", "chapter 24: CLIP on generated two-shape scenes, 3 seeds, zero-shot and "
             "retrieval on seen and held-out layouts; the seed-0 model", (CLIP_JSON, CLIP_CKPT), build_clip,
             verify_clip),
    Artifact(SOUNDS, "24", "chapter 24: a spectrogram ViT and a bag-of-frames baseline on generated "
             "sounds, 3 seeds; the seed-0 ViT", (SOUNDS_JSON, AUDIO_CKPT), build_sounds, verify_sounds),
    Artifact(DIT, "24", "chapter 24: a class-conditioned diffusion transformer (DiT, adaLN-Zero) on the "
             "8x8 digits, 3 seeds, samples judged by the digits ViT and a logistic regression; the seed-0 "
             "DiT", (DIT_JSON, DIT_CKPT), build_dit, verify_dit, needs=(DIGITS,)),
    Artifact(GUIDE, "24", "chapter 24: classifier-free guidance at sampling time on the shipped DiT, "
             "scales 0-5 x 3 sampling seeds, judged by the digits ViT and a logistic regression",
             (GUIDE_JSON,), build_guidance, verify_guidance, needs=(DIGITS, DIT)),
    Artifact(SCHED, "24", "chapter 24: the DiT recipe with the linear and the cosine noise schedule, 3 seeds "
             "each, judged at guidance 1 and 3; the seed-0 cosine DiT", (SCHED_JSON, COSINE_CKPT), build_schedules,
             verify_schedules, needs=(DIGITS, DIT)),
]
