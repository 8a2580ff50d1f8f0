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
"""

from ._triton_env import INTERPRET
from .flash import FlashAttention, flash_attention, flash_attention_varlen
from .fused_softmax import softmax

__all__ = ["INTERPRET", "FlashAttention", "flash_attention", "flash_attention_varlen", "softmax"]
