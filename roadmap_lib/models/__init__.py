"""Model families built from roadmap_lib's attention, layers and positional modules.

``gpt`` (GPT-2 architecture) and ``llama`` (RMSNorm, RoPE, SwiGLU, GQA); ``hf`` moves weights to
and from transformers.
"""

from .gpt import GPT, GPTConfig
from .llama import Llama, LlamaConfig

__all__ = ["GPT", "GPTConfig", "Llama", "LlamaConfig"]
