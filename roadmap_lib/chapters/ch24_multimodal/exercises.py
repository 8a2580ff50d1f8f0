"""The checks of chapter 24's exercises, with the common mistakes each one recognises.

Each check builds its own cases and reference answers (so the notebook's namespace holds no
reference a student could call) and names, as small wrong implementations, the usual mistakes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from roadmap_lib.exercises import check_close, check_function, check_true
from roadmap_lib.measure import count_parameters
from roadmap_lib.models.clip import clip_loss
from roadmap_lib.models.vit import ViTConfig, ViTEncoder
from roadmap_lib.vision import patchify

# ---- exercise 24.1: cutting an image into patches ------------------------------------------------


def _patches(images, patch, order="chw", grid="rows"):
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 1, 3, 5) if grid == "rows" else x.permute(0, 4, 2, 1, 3, 5)
    if order == "hwc":  # channel last inside each patch
        x = x.permute(0, 1, 2, 4, 5, 3)
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


PATCHIFY_MISTAKES = {
    "inside each patch the channel comes last (pixels as (row, col, channel)); a Conv2d weight is "
    "(channel, row, col), so the channel must come first": lambda x, p: _patches(x, p, order="hwc"),
    "the patches are listed column by column; the grid is read row by row (left to right, then down)":
        lambda x, p: _patches(x, p, grid="cols"),
    "a plain reshape (batch, N, C·p·p) mixes pixels of different patches: the patch rows and "
    "columns must be split out and permuted first":
        lambda x, p: x.reshape(x.shape[0], -1, x.shape[1] * p * p),
}


def patchify_cases():
    cases = []
    for seed, shape, p in [(0, (1, 1, 4, 4), 2), (1, (2, 3, 8, 16), 4), (2, (1, 2, 6, 9), 3)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
        cases.append(((x, p), _patches(x, p)))
    return cases


def check_patchify(fn) -> None:
    """Exercise 24.1: ``fn(images, patch)`` -> (batch, n_patches, C·p·p) as roadmap_lib.vision.patchify."""
    check_function(fn, patchify_cases(), mistakes=PATCHIFY_MISTAKES, forbid=(patchify,))


# ---- exercise 24.2: the symmetric contrastive loss -----------------------------------------------


def _ce_rows(logits):
    return F.cross_entropy(logits, torch.arange(logits.shape[0]))


CLIP_LOSS_MISTAKES = {
    "only the image -> caption direction (rows): CLIP averages it with caption -> image (columns)":
        lambda logits: _ce_rows(logits),
    "only the caption -> image direction (columns): CLIP averages it with image -> caption (rows)":
        lambda logits: _ce_rows(logits.T),
    "the two directions are added, not averaged": lambda logits: _ce_rows(logits) + _ce_rows(logits.T),
    "the softmax runs over the whole matrix at once instead of over each row and each column":
        lambda logits: -torch.log_softmax(logits.flatten(), 0).view_as(logits).diagonal().mean(),
}


def clip_loss_cases():
    cases = []
    for seed, n in [(0, 2), (1, 5), (2, 9)]:
        logits = 5 * torch.randn(n, n, generator=torch.Generator().manual_seed(seed))
        cases.append(((logits,), (_ce_rows(logits) + _ce_rows(logits.T)) / 2))
    return cases


def check_clip_loss(fn) -> None:
    """Exercise 24.2: ``fn(logits_per_image)`` is the symmetric InfoNCE loss (a scalar)."""
    check_function(fn, clip_loss_cases(), mistakes=CLIP_LOSS_MISTAKES, forbid=(clip_loss,))


# ---- exercise 24.3: predict, then measure: ViT-B/16's embedding ----------------------------------

VIT_B16 = {"image": 224, "patch": 16, "channels": 3, "d_model": 768}


def measured_vit_b16() -> dict:
    """Tokens per image and parameters of the embedding (patch projection, [CLS], positions) of
    ViT-B/16, counted on our ViTEncoder built with one block (the blocks are not counted)."""
    c = VIT_B16
    enc = ViTEncoder(ViTConfig(image_height=c["image"], image_width=c["image"], patch_size=c["patch"],
                               channels=c["channels"], d_model=c["d_model"], n_layers=1, n_heads=12))
    emb = count_parameters(enc.patch_embed) + enc.cls_token.numel() + enc.pos_emb.numel()
    return {"tokens": enc.pos_emb.shape[1], "embedding_params": emb}


def check_vit_b16(predicted: dict) -> None:
    """Exercise 24.3: ``predicted`` = {"tokens": ..., "embedding_params": ...}."""
    got = measured_vit_b16()
    for key in ("tokens", "embedding_params"):
        check_close(predicted.get(key), got[key], name=f"ViT-B/16 {key}", atol=0.5, rtol=0)


# ---- exercise 24.4: predict, then measure: classifier-free guidance ----------------------------


def _guided(eps_cond, eps_null, w):
    return eps_null + w * (eps_cond - eps_null)


GUIDANCE_MISTAKES = {
    "Ho & Salimans' own convention (1 + w)·eps_cond − w·eps_null, where w = 0 is the conditional "
    "model; in this chapter's convention w = 1 is the conditional model and w = 0 the null one":
        lambda c, u, w: (1 + w) * c - w * u,
    "the difference is taken the wrong way round (eps_null − eps_cond): that pushes the sample away "
    "from the class, toward the null prediction": lambda c, u, w: u + w * (u - c),
    "only eps_cond is scaled (w·eps_cond): the null prediction must be the starting point":
        lambda c, u, w: w * c,
}


def guidance_cases():
    cases = []
    for seed, shape, w in [(0, (2, 1, 8, 8), 3.0), (1, (3, 1, 4, 4), 1.0), (2, (1, 1, 8, 8), 0.0), (3, (4, 2), 0.5)]:
        g = torch.Generator().manual_seed(seed)
        c, u = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
        cases.append(((c, u, w), _guided(c, u, w)))
    return cases


def check_guided_eps(fn) -> None:
    """Exercise 24.4: ``fn(eps_cond, eps_null, w)`` is the classifier-free guided noise prediction,
    w = 0 the null model's, w = 1 the conditional model's."""
    check_function(fn, guidance_cases(), mistakes=GUIDANCE_MISTAKES)


def check_guidance_prediction(predicted: dict, measured: dict) -> None:
    """Exercise 24.4: ``predicted`` = {"w0": accuracy at guidance 0, "w3_beats_w1": bool}, against
    ``measured`` = {"w0": mean accuracy at guidance 0, "w3_beats_w1": bool} (the same judge). The
    prediction at w = 0 counts as right within 0.05."""
    if not isinstance(predicted, dict) or set(predicted) != {"w0", "w3_beats_w1"}:
        raise ValueError(f"predicted: expected a dict with keys 'w0' and 'w3_beats_w1', got {predicted!r}")
    check_close(predicted["w0"], measured["w0"], name="accuracy at guidance 0", atol=0.05, rtol=0)
    check_true(bool(predicted["w3_beats_w1"]) == bool(measured["w3_beats_w1"]),
               fail=f"you predicted that guidance 3 {'beats' if predicted['w3_beats_w1'] else 'does not beat'} "
                    f"guidance 1; the measurement says the opposite",
               success="guidance 3 against guidance 1: as predicted.")
