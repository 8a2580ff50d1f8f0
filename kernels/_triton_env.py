"""Where the Triton kernels run: compiled on a CUDA GPU, or through Triton's interpreter on a CPU.

Triton decides *when a kernel is defined* (at import of the module holding the ``@triton.jit``
function) whether it will be compiled or interpreted, from the environment variable
``TRITON_INTERPRET``. So on a machine without a GPU set it before the first import::

    import os
    os.environ["TRITON_INTERPRET"] = "1"      # before importing roadmap_lib.kernels
    from roadmap_lib.kernels import flash_attention

This module reads that choice once, at import, and touches nothing else: no GPU driver, no
compilation, no autotuning. The kernels' entry points call :func:`check_device` to fail with a clear
message (instead of a driver error deep inside Triton) when CPU tensors meet compiled kernels.

Known gap of the interpreter (triton 3.9): it stores bfloat16 as raw 16-bit integers and its
``tl.dot`` multiplies those bit patterns, returning values around 1e10 (triton-lang/triton#11584;
the fix was declined, "we just don't support it yet"). So under the interpreter the entry points
compute bfloat16 inputs in float32 and round the results back to bfloat16
(:func:`compute_dtype`); compiled on a GPU, bfloat16 goes through the kernels unchanged.
"""

from __future__ import annotations

import platform

import torch

try:
    import triton
except ImportError as error:  # macOS, Windows, Linux on ARM: Triton publishes no wheel there
    triton = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

#: True when Triton can be imported here, so the kernels in this package can be defined.
HAVE_TRITON: bool = triton is not None

#: Why the kernels cannot run here, in words a reader can act on ("" when they can).
MISSING_TRITON: str = "" if HAVE_TRITON else (
    f"Triton cannot be imported in this Python ({platform.system()} {platform.machine()}: "
    f"{_IMPORT_ERROR}). Triton publishes wheels for Linux on x86-64 only (there, `pip install "
    f"triton`); on macOS, Windows or ARM its kernels cannot run. The rest of the library works "
    f"without it, and the book's site shows the kernels' outputs from a Linux run."
)

#: True when the kernels in this package were defined for Triton's CPU interpreter.
INTERPRET: bool = HAVE_TRITON and bool(triton.knobs.runtime.interpret)


class TritonUnavailableError(ImportError):
    """Raised when a Triton kernel is called where Triton cannot be imported."""


def require_triton(what: str) -> None:
    """Raise :class:`TritonUnavailableError` naming ``what`` when Triton is missing."""
    if not HAVE_TRITON:
        raise TritonUnavailableError(f"{what} needs Triton. {MISSING_TRITON}")


def check_device(*tensors: torch.Tensor, names: tuple[str, ...] = ()) -> None:
    """Raise a clear error when the tensors cannot run through the kernels as they were defined."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        where = ", ".join(f"{n}: {t.device}" for n, t in zip(names or range(len(tensors)), tensors))
        raise ValueError(f"all inputs must be on one device, got {where}")
    device = next(iter(devices))
    if INTERPRET:
        if device.type != "cpu":
            raise RuntimeError(
                f"roadmap_lib.kernels was imported with TRITON_INTERPRET=1 (the CPU interpreter), but "
                f"the inputs are on {device}; move them to the CPU or restart without TRITON_INTERPRET"
            )
        return
    if device.type != "cuda":
        raise RuntimeError(
            f"the inputs are on {device}, but the Triton kernels were compiled for a GPU. To run them "
            f"on a CPU, set os.environ['TRITON_INTERPRET'] = '1' before importing roadmap_lib.kernels "
            f"(in a fresh Python process), or run `TRITON_INTERPRET=1 python ...`"
        )


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels read for inputs of ``dtype``: bfloat16 becomes float32 under the
    interpreter (its bfloat16 ``tl.dot`` is wrong, see the module docstring); all else unchanged."""
    if INTERPRET and dtype == torch.bfloat16:
        return torch.float32
    return dtype


def use_autotune() -> bool:
    """Autotune only when compiling for a real GPU; the interpreter uses fixed block sizes."""
    return not INTERPRET and torch.cuda.is_available()
