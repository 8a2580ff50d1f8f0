"""The checks of chapter 16's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (a ``LoRALinear`` that merges itself;
the library's ``quantize_blockwise``, which the answer may not call) and declares, as small wrong
implementations, the mistakes it names in plain words ("likely mistake: ...").
Exercise 16.1 is a "predict, then measure" exercise: its check compares a prediction with a
measurement and needs no declared mistakes.
"""

from __future__ import annotations

import torch

from roadmap_lib.exercises import check_function
from roadmap_lib.optim import quantize_blockwise
from roadmap_lib.peft import LoRALinear
from roadmap_lib.quantization import dynamic_code_book

# ---- exercise 16.2: merge and unmerge by hand ----------------------------------------------------


def _scale(alpha, r, rslora):
    return alpha / r**0.5 if rslora else alpha / r


MERGE_MISTAKES = {
    "the scale alpha / r is missing: the update is s B A": lambda w, a, b, alpha, r, rs: w + b @ a,
    "rsLoRA is ignored: with rslora=True the scale is alpha / sqrt(r)":
        lambda w, a, b, alpha, r, rs: w + alpha / r * (b @ a),
    "the scale is upside down: s = alpha / r, not r / alpha":
        lambda w, a, b, alpha, r, rs: w + (r**0.5 if rs else r) / alpha * (b @ a),
    "the factors are multiplied in the wrong order: B A (b @ a) is (out, in); a @ b does not fit":
        lambda w, a, b, alpha, r, rs: w + _scale(alpha, r, rs) * (a @ b),
}

UNMERGE_MISTAKES = {
    "unmerge adds the update again: it must subtract s B A":
        lambda w, a, b, alpha, r, rs: w + _scale(alpha, r, rs) * (b @ a),
    "unmerge subtracts B A without the scale s": lambda w, a, b, alpha, r, rs: w - b @ a,
    "rsLoRA is ignored in unmerge: with rslora=True the scale is alpha / sqrt(r)":
        lambda w, a, b, alpha, r, rs: w - alpha / r * (b @ a),
}


def _lora_cases():
    gen = torch.Generator().manual_seed(5)
    merge_cases, unmerge_cases = [], []
    for rank, alpha, rs in [(4, 8.0, False), (16, 8.0, True), (8, 32.0, True)]:
        ref = LoRALinear(torch.nn.Linear(48, 32), r=rank, alpha=alpha, use_rslora=rs)
        with torch.no_grad():
            for p in (ref.base.weight, ref.lora_A, ref.lora_B):
                p.copy_(torch.randn(p.shape, generator=gen))
        w0 = ref.base.weight.detach().clone()
        a, b = ref.lora_A.detach().clone(), ref.lora_B.detach().clone()
        ref.merge()
        merged = ref.base.weight.detach().clone()
        merge_cases.append(((w0, a, b, alpha, rank, rs), merged))
        unmerge_cases.append(((merged, a, b, alpha, rank, rs), w0))
    return merge_cases, unmerge_cases


def check_merge_lora(merge_fn, unmerge_fn) -> None:
    """Exercise 16.2: ``merge_fn(w, a, b, alpha, r, rslora)`` against a ``LoRALinear`` that merges
    itself, and ``unmerge_fn`` (same arguments) taking the merged weight back."""
    merge_cases, unmerge_cases = _lora_cases()
    check_function(merge_fn, merge_cases, name="merge_lora", mistakes=MERGE_MISTAKES)
    check_function(unmerge_fn, unmerge_cases, name="unmerge_lora", mistakes=UNMERGE_MISTAKES)


# ---- exercise 16.3: an 8-bit optimiser state -----------------------------------------------------


def _blockwise(x, book, block, *, absolute=True, per_block=True, pad=True, safe=True, cut=True):
    flat = x.reshape(-1).float()
    n_pad = -flat.numel() % block if pad else 0
    blocks = torch.nn.functional.pad(flat, (0, n_pad)).reshape(-1, block)
    if per_block:
        absmax = (blocks.abs() if absolute else blocks).amax(dim=1)
    else:
        absmax = flat.abs().amax().expand(blocks.shape[0]).clone()
    div = torch.where(absmax > 0, absmax, torch.ones_like(absmax)) if safe else absmax
    nearest = ((blocks / div.unsqueeze(1)).reshape(-1, 1) - book.reshape(1, -1)).abs().argmin(dim=1)
    codes = nearest[: flat.numel()].reshape(x.shape) if cut else nearest
    return codes.to(torch.uint8), absmax


BLOCKWISE_MISTAKES = {
    "each block is divided by its largest value, not its largest ABSOLUTE value":
        lambda x, book, block: _blockwise(x, book, block, absolute=False),
    "one absmax for the whole tensor: every block of `block` values gets its own":
        lambda x, book, block: _blockwise(x, book, block, per_block=False),
    "the last block is not padded with zeros: x's size need not be a multiple of the block":
        lambda x, book, block: _blockwise(x, book, block, pad=False),
    "an all-zero block divides 0 by 0: use 1 as its absmax when dividing":
        lambda x, book, block: _blockwise(x, book, block, safe=False),
    "the padding's codes are kept: cut them off and give the codes x's shape":
        lambda x, book, block: _blockwise(x, book, block, cut=False),
}


def check_quantize_state(fn) -> None:
    """Exercise 16.3: ``fn(x, code_book, block) -> (codes, absmax)``, dtypes included, against the
    library's ``quantize_blockwise`` with the dynamic code book."""
    book = dynamic_code_book()
    gen = torch.Generator().manual_seed(5)
    cases = []
    for shape, block, scale in [((64, 48), 256, 1e-3), ((33, 7), 64, 1.0), ((1000,), 128, 1e-6)]:
        x = torch.randn(*shape, generator=gen) * scale
        x.view(-1)[:block] = 0.0  # an all-zero first block
        x.view(-1)[block + 3] = 4 * scale  # a block whose largest magnitude is positive ...
        x.view(-1)[2 * block + 5] = -9 * scale  # ... and one whose largest magnitude is negative
        cases.append(((x, book, block), quantize_blockwise(x, book, block)))
    check_function(fn, cases, name="quantize_state", outputs=("codes", "absmax"), check_dtype=True,
                   mistakes=BLOCKWISE_MISTAKES, forbid=[quantize_blockwise])
