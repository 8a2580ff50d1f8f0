"""Triton kernels of the book (chapter 13), installed as ``roadmap_lib.kernels``.

On a CPU the kernels run through Triton's interpreter, which must be switched on *before* this
package is first imported::

    import os
    os.environ["TRITON_INTERPRET"] = "1"
    from roadmap_lib.kernels import flash_attention

Importing compiles nothing and touches no GPU driver.

* ``flash_attention``, ``FlashAttention`` — FlashAttention-2 forward and backward (flash.py)
* ``flash_attention_varlen`` — the same kernels on packed variable-length sequences (flash.py)
* ``softmax`` — the warm-up fused softmax kernel, forward and backward (fused_softmax.py)
* ``reference`` — naive and tiled attention and the online softmax in plain PyTorch (reference.py)
* ``kernel_source`` — the source of a kernel function, read from its file (works without Triton)
* ``skip_cells_without_triton`` — in a notebook, cells starting ``# needs Triton`` print why they
  are skipped where Triton is missing (chapter 13)

Where Triton cannot be installed (macOS, Windows, Linux on ARM) the package still imports:
``HAVE_TRITON`` is False, ``MISSING_TRITON`` says why, ``reference`` and ``kernel_source`` work, and
calling a kernel raises :class:`TritonUnavailableError` with that message.
"""

from ._notebook import skip_cells_without_triton
from ._source import kernel_source
from ._triton_env import HAVE_TRITON, INTERPRET, MISSING_TRITON, TritonUnavailableError, require_triton

if HAVE_TRITON:
    from .flash import FlashAttention, flash_attention, flash_attention_varlen
    from .fused_softmax import softmax
else:
    class FlashAttention:
        """Unavailable here: Triton is not installed (see ``MISSING_TRITON``)."""

        @staticmethod
        def apply(*args, **kwargs):
            require_triton("roadmap_lib.kernels.FlashAttention")

    def flash_attention(*args, **kwargs):
        """Unavailable here: Triton is not installed (see ``MISSING_TRITON``)."""
        require_triton("roadmap_lib.kernels.flash_attention")

    def flash_attention_varlen(*args, **kwargs):
        """Unavailable here: Triton is not installed (see ``MISSING_TRITON``)."""
        require_triton("roadmap_lib.kernels.flash_attention_varlen")

    def softmax(*args, **kwargs):
        """Unavailable here: Triton is not installed (see ``MISSING_TRITON``)."""
        require_triton("roadmap_lib.kernels.softmax")


__all__ = [
    "HAVE_TRITON", "INTERPRET", "MISSING_TRITON", "TritonUnavailableError", "FlashAttention",
    "flash_attention", "flash_attention_varlen", "kernel_source", "require_triton",
    "skip_cells_without_triton", "softmax",
]
