"""Chapter 24's experiments: a ViT against a CNN on the digits, a CLIP-style model on generated
scenes, and the log-mel features of generated sounds. Every driver is seeded and runs on one
thread, so the notebook prints the same numbers on every run."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import nn

from roadmap_lib import set_seed
from roadmap_lib.audio import SOUND_CLASSES, log_mel, make_sounds
from roadmap_lib.measure import count_parameters, cpu_threads
from roadmap_lib.models.clip import CLIP, CLIPConfig, TextConfig, clip_loss, recall_at_k
from roadmap_lib.models.vit import ViTConfig, ViTForImageClassification
from roadmap_lib.tokenizers.word import WordTokenizer
from roadmap_lib.vision import (
    COLORS,
    SHAPES,
    caption,
    load_digits,
    make_scenes,
    scene,
    scene_pairs,
    split,
)

# ---- 1. ViT against a CNN on the 8x8 digits ----------------------------------------------------

VIT_DIGITS = ViTConfig(image_height=8, image_width=8, patch_size=2, channels=1, d_model=32, n_layers=2,
                       n_heads=4, d_ff=64, num_labels=10)


class SmallCNN(nn.Module):
    """Two 3x3 convolutions (ReLU, 2x2 max-pool after each), then a linear classifier."""

    def __init__(self, width: int = 24, channels: int = 1, num_labels: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.head = nn.Linear(2 * width * 4, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 8x8 -> 4x4
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 4x4 -> 2x2
        return self.head(x.flatten(1))


def digits_split(seed: int = 0):
    """(x_train, y_train, x_test, y_test): a seeded 70 / 30 split of the 1,797 digits."""
    images, labels = load_digits()
    tr, te = split(len(labels), 0.3, seed)
    return images[tr], labels[tr], images[te], labels[te]


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, seed: int,
                     lr: float = 3e-3, batch: int = 64, weight_decay: float = 0.01,
                     stop_after: int | None = None) -> list[dict]:
    """AdamW (one-cycle schedule over ``steps``) on cross-entropy with seeded minibatches; returns
    the log [{"step", "loss"}]. ``stop_after``: run only the first that many steps of the same
    schedule (a short re-run of a recorded one)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    log = []
    model.train()
    for step in range(steps if stop_after is None else min(steps, stop_after)):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        log.append({"step": step, "loss": loss.item()})
    model.eval()
    return log


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(-1) == y).float().mean().item()


def vit_vs_cnn(seeds=(0, 1, 2), steps: int = 300, lr: float = 1e-3) -> dict:
    """Train the digits ViT and a CNN of about the same size for ``steps`` steps on each seed (the
    seed sets the initialisation and the batches; the split is fixed); test accuracies per seed."""
    xtr, ytr, xte, yte = digits_split()
    out = {"vit": [], "cnn": [], "logs": {}}
    with cpu_threads(1):
        for seed in seeds:
            for name in ("vit", "cnn"):
                set_seed(seed)
                model = ViTForImageClassification(VIT_DIGITS) if name == "vit" else SmallCNN(width=30)
                out["logs"][f"{name} {seed}"] = train_classifier(model, xtr, ytr, steps=steps, seed=seed, lr=lr)
                out[name].append(accuracy(model, xte, yte))
                out[f"{name}_params"] = count_parameters(model)
                if name == "vit" and seed == seeds[0]:
                    out["vit_model"] = model
    return out


def mean_sd(values) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# ---- 2. CLIP on generated scenes -----------------------------------------------------------------

WORDS = ["a", "left", "right", "of", *COLORS, *SHAPES]


def caption_tokenizer() -> WordTokenizer:
    """One id per word of the captions, plus <eot> (end of text), read by the text tower."""
    return WordTokenizer(WORDS, special_tokens=("<unk>", "<eot>"))


def encode_captions(tok: WordTokenizer, captions: list[str]) -> torch.Tensor:
    """(n, 9): the 8 words of each caption, then <eot>."""
    eot = tok.word_id("<eot>")
    return torch.tensor([tok.encode(c) + [eot] for c in captions], dtype=torch.long)


def held_out_pairs(n: int = 12, seed: int = 0) -> list[tuple]:
    """``n`` scene layouts kept out of training, drawn at random (seeded) from the 72."""
    pairs = scene_pairs()
    perm = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    return [pairs[i] for i in sorted(perm[:n])]


def clip_config(vocab_size: int) -> CLIPConfig:
    vision = ViTConfig(image_height=8, image_width=16, patch_size=4, channels=3, d_model=48, n_layers=2,
                       n_heads=4, d_ff=96, num_labels=1)
    text = TextConfig(vocab_size=vocab_size, context_length=9, d_model=48, n_layers=2, n_heads=4, d_ff=96)
    return CLIPConfig(vision=vision, text=text, embed_dim=32)


def train_clip(steps: int = 300, seed: int = 0, batch: int = 96, lr: float = 3e-3,
               n_train: int = 4000) -> tuple[CLIP, list[dict]]:
    """Train on scenes of the 60 layouts not held out, captions in both wordings ("left of" and
    "right of"); a batch of ``batch`` pairs is ``batch``-way classification both ways."""
    tok = caption_tokenizer()
    seen = [p for p in scene_pairs() if p not in held_out_pairs()]
    images, caps, _ = make_scenes(seen, n_train, seed=1000 + seed, both_relations=True)
    ids = encode_captions(tok, caps)
    with cpu_threads(1):
        set_seed(seed)
        model = CLIP(clip_config(tok.vocab_size))
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
        log = []
        model.train()
        for step in range(steps):
            idx = torch.randperm(n_train, generator=gen)[:batch]
            loss = clip_loss(model(images[idx], ids[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            log.append({"step": step, "loss": loss.item(), "scale": model.scale().item()})
        model.eval()
    return model, log


@torch.no_grad()
def zero_shot(model: CLIP, pairs, n: int = 300, seed: int = 99) -> dict:
    """Zero-shot classification of ``n`` fresh scenes of ``pairs`` among all 72 layouts: each image
    gets the layout whose "left of" caption scores highest. Returns accuracy, and the accuracy of
    each attribute (left colour, left shape, right colour, right shape) of the chosen layout."""
    tok = caption_tokenizer()
    everything = scene_pairs()
    text = model.encode_text(encode_captions(tok, [caption(*p) for p in everything]))
    images, _, which = make_scenes(pairs, n, seed=seed)
    truth = [everything.index(list(pairs)[i]) for i in which.tolist()]
    pred = (model.encode_image(images) @ text.T).argmax(-1).tolist()
    out = {"accuracy": sum(p == t for p, t in zip(pred, truth)) / n,
           # the right objects on the wrong sides: the layout with left and right swapped
           "swapped": sum(everything[p] == everything[t][::-1] for p, t in zip(pred, truth)) / n}
    for k, name in enumerate(("left colour", "left shape", "right colour", "right shape")):
        out[name] = sum(everything[p][k // 2][k % 2] == everything[t][k // 2][k % 2]
                        for p, t in zip(pred, truth)) / n
    return out


@torch.no_grad()
def retrieval(model: CLIP, pairs, n_layouts: int = 12, repeats: int = 5, seed: int = 7, ks=(1, 5)) -> dict:
    """Recall@k both ways among ``n_layouts`` scenes of different layouts drawn from ``pairs`` with
    their "left of" captions (image -> caption: is the image's own caption among its k best?
    caption -> image the other way round), averaged over ``repeats`` seeded draws. A fixed pool
    size keeps seen and held-out layouts comparable: recall falls as the pool grows."""
    tok = caption_tokenizer()
    pairs = list(pairs)
    gen = torch.Generator().manual_seed(seed)
    out = {f"{d} R@{k}": 0.0 for k in ks for d in ("image->text", "text->image")}
    for r in range(repeats):
        chosen = [pairs[i] for i in torch.randperm(len(pairs), generator=gen)[:n_layouts].tolist()]
        images = torch.stack([scene(*p, gen=gen) for p in chosen])
        scores = model.encode_image(images) @ model.encode_text(
            encode_captions(tok, [caption(*p) for p in chosen])).T
        for k in ks:
            out[f"image->text R@{k}"] += recall_at_k(scores, k) / repeats
            out[f"text->image R@{k}"] += recall_at_k(scores.T, k) / repeats
    out["n"] = n_layouts
    return out


# ---- 3. sounds ----------------------------------------------------------------------------------------


def sound_features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 32, 48) Whisper log-mel features of ``n`` generated sounds (0.48 s each), labels (n,)."""
    waves, labels = make_sounds(n, seed)
    return log_mel(waves, n_mels=32).unsqueeze(1), labels


#: a ViT on (1, 32, 48) spectrograms: 4 x 6 patches of 8 mel bands x 8 frames (80 ms)
AUDIO_VIT = ViTConfig(image_height=32, image_width=48, patch_size=8, channels=1, d_model=32, n_layers=2,
                      n_heads=4, d_ff=64, num_labels=len(SOUND_CLASSES))


class BagOfFrames(nn.Module):
    """A baseline blind to time order: each band's mean and max over the frames -> MLP."""

    def __init__(self, n_mels: int = 32, hidden: int = 64, num_labels: int = len(SOUND_CLASSES)) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * n_mels, hidden), nn.ReLU(), nn.Linear(hidden, num_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = x.squeeze(1)  # (batch, mels, frames)
        return self.net(torch.cat([spec.mean(-1), spec.amax(-1)], dim=-1))


def sound_data(n_train: int = 2000, n_test: int = 400) -> dict:
    """Train and test features, standardised with the training set's mean and standard deviation
    (Whisper's features sit in a narrow band around 0.5; a ViT with small initial weights learns
    nothing from them in a few hundred steps until they are standardised)."""
    xtr, ytr = sound_features(n_train, seed=100)
    xte, yte = sound_features(n_test, seed=200)
    mu, sd = xtr.mean(), xtr.std()
    return {"x_train": (xtr - mu) / sd, "y_train": ytr, "x_test": (xte - mu) / sd, "y_test": yte,
            "mean": mu.item(), "std": sd.item()}


def confusion(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(true class, predicted class) counts."""
    with torch.no_grad():
        pred = model.eval()(x).argmax(-1)
    conf = torch.zeros(n_classes, n_classes, dtype=torch.long)
    conf.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    return conf


def audio_experiment(seeds=(0, 1, 2), steps: int = 400, lr: float = 3e-3) -> dict:
    """The spectrogram ViT and the bag-of-frames baseline on the same sounds, one run per seed
    (initialisation and batches); test accuracies, confusion matrices of seed ``seeds[0]``."""
    d = sound_data()
    out = {"vit": [], "bag": [], "classes": list(SOUND_CLASSES)}
    with cpu_threads(1):
        for seed in seeds:
            for name in ("vit", "bag"):
                set_seed(seed)
                model = ViTForImageClassification(AUDIO_VIT) if name == "vit" else BagOfFrames()
                train_classifier(model, d["x_train"], d["y_train"], steps=steps, seed=seed, lr=lr)
                out[name].append(accuracy(model, d["x_test"], d["y_test"]))
                out[f"{name}_params"] = count_parameters(model)
                if seed == seeds[0]:
                    out[f"{name}_confusion"] = confusion(model, d["x_test"], d["y_test"], len(SOUND_CLASSES)).tolist()
                    out[f"{name}_model"] = model
    return out
