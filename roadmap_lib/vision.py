"""Images for transformers: patches, the scikit-learn digits, and generated two-shape scenes.

A Vision Transformer reads an image as a sequence of patches:

    image (batch, C, H, W) -> patches (batch, (H/p)·(W/p), C·p·p), row-major over the patch grid,
    each patch flattened channel first, then rows, then columns: the order of the weight of a
    ``Conv2d(C, D, kernel_size=p, stride=p)``, so a linear layer on these patches IS that convolution.

``load_digits`` reads the 1,797 8×8 handwritten digits that ship inside scikit-learn (the UCI
"optdigits" data, CC BY 4.0; nothing is downloaded). ``scene`` draws a small RGB image of two
coloured shapes side by side and ``caption`` describes it ("a red circle left of a blue square"):
the image–text pairs of a CLIP-style model.
"""

from __future__ import annotations

import itertools

import torch

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.15, 0.1), "green": (0.1, 0.85, 0.2), "blue": (0.15, 0.3, 1.0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
#: every (colour, shape) object, in a fixed order
OBJECTS: tuple[tuple[str, str], ...] = tuple(itertools.product(COLORS, SHAPES))
#: one cell of a scene holds one object; a scene is two cells side by side
CELL = 8


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor (batch, channels, height, width), "
                        f"got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name}: expected (batch, channels, height, width), got shape {tuple(images.shape)}")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(batch, C, H, W) -> (batch, (H/patch)·(W/patch), C·patch·patch); H and W divisible by patch."""
    _check_images(images)
    b, c, h, w = images.shape
    if not isinstance(patch, int) or patch < 1 or h % patch or w % patch:
        raise ValueError(f"patch: expected an int >= 1 dividing the height {h} and width {w}, got {patch!r}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpatchify(patches: torch.Tensor, patch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: (batch, N, C·p·p) -> (batch, C, H, W)."""
    if not isinstance(patches, torch.Tensor) or patches.ndim != 3:
        raise ValueError(f"patches: expected a tensor (batch, n_patches, dim), got "
                         f"{getattr(patches, 'shape', type(patches).__name__)}")
    gh, gw = height // patch, width // patch
    b, n, d = patches.shape
    if (n, d) != (gh * gw, channels * patch * patch) or height % patch or width % patch:
        raise ValueError(f"patches: expected (batch, {gh * gw}, {channels * patch * patch}) for a "
                         f"{channels}x{height}x{width} image and patch {patch}, got {tuple(patches.shape)}")
    x = patches.reshape(b, gh, gw, channels, patch, patch)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, channels, height, width)


# ---- the scikit-learn digits -------------------------------------------------------------------


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 digits: images (1797, 1, 8, 8) float32 in [0, 1] (grey levels 0..16 divided by
    16) and labels (1797,) int64 in 0..9, in scikit-learn's order."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    images = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(d.target, dtype=torch.int64)


def split(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of ``range(n)``: (train indices, test indices)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(n * test_fraction))
    return perm[n_test:], perm[:n_test]


# ---- generated scenes: two coloured shapes and a caption ---------------------------------------


def shape_mask(shape: str, size: int) -> torch.Tensor:
    """A (size, size) float mask of a filled circle, square or triangle (apex up)."""
    if shape not in SHAPES:
        raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")
    if not isinstance(size, int) or size < 3:
        raise ValueError(f"size: expected an int >= 3, got {size!r}")
    r = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = r[:, None].expand(size, size), r[None, :].expand(size, size)
    if shape == "square":
        return torch.ones(size, size)
    if shape == "circle":
        c = size / 2
        return (((x - c) ** 2 + (y - c) ** 2) <= c * c).float()
    return ((x - size / 2).abs() <= y / 2).float()  # triangle: width grows with the row


def scene(left: tuple[str, str], right: tuple[str, str], gen: torch.Generator | None = None,
          noise: float = 0.05) -> torch.Tensor:
    """A (3, 8, 16) image: the ``(colour, shape)`` object ``left`` in the left 8×8 cell and
    ``right`` in the right one, each of a random size (5 to 7 pixels) at a random offset, on a
    black background with Gaussian pixel noise of standard deviation ``noise``; values in [0, 1]."""
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    img = torch.zeros(3, CELL, 2 * CELL)
    for cell, (color, shape) in enumerate((left, right)):
        if color not in COLORS:
            raise ValueError(f"color: expected one of {tuple(COLORS)}, got {color!r}")
        size = int(torch.randint(5, CELL, (), generator=gen))
        oy, ox = (int(torch.randint(0, CELL - size + 1, (), generator=gen)) for _ in range(2))
        m = shape_mask(shape, size)
        rgb = torch.tensor(COLORS[color]).view(3, 1, 1)
        img[:, oy:oy + size, cell * CELL + ox:cell * CELL + ox + size] = rgb * m
    img = img + noise * torch.randn(img.shape, generator=gen)
    return img.clamp(0.0, 1.0)


def caption(left: tuple[str, str], right: tuple[str, str], relation: str = "left") -> str:
    """'a red circle left of a blue square'; ``relation='right'`` says the same scene the other
    way round: 'a blue square right of a red circle'."""
    if relation == "left":
        return f"a {left[0]} {left[1]} left of a {right[0]} {right[1]}"
    if relation == "right":
        return f"a {right[0]} {right[1]} right of a {left[0]} {left[1]}"
    raise ValueError(f"relation: expected 'left' or 'right', got {relation!r}")


def scene_pairs() -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Every scene layout: (left object, right object) with two different objects (72)."""
    return [(a, b) for a in OBJECTS for b in OBJECTS if a != b]


def make_scenes(pairs, n: int, seed: int, *, both_relations: bool = False,
                noise: float = 0.05) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """``n`` scenes drawn uniformly from ``pairs``: images (n, 3, 8, 16), captions, and the index
    of each scene's pair in ``pairs`` (n,). With ``both_relations`` half the captions (at random)
    use the 'right of' wording."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs: expected at least one (left, right) pair, got none")
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(0, len(pairs), (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    images = torch.stack([scene(*pairs[i], gen=gen, noise=noise) for i in which.tolist()])
    caps = [caption(*pairs[i], relation="right" if (both_relations and f) else "left")
            for i, f in zip(which.tolist(), flip.tolist())]
    return images, caps, which


__all__ = ["CELL", "COLORS", "OBJECTS", "SHAPES", "caption", "load_digits", "make_scenes", "patchify",
           "scene", "scene_pairs", "shape_mask", "split", "unpatchify"]
