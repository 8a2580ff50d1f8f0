"""Model families built from roadmap_lib's attention, layers and positional modules.

``gpt`` (GPT-2 architecture), ``llama`` (RMSNorm, RoPE, SwiGLU, GQA) and ``bert`` (masked-LM and
classification heads); ``hf`` moves weights to and from transformers.
"""

from .bert import BertConfig, BertEncoder, BertForMaskedLM, BertForSequenceClassification
from .gpt import GPT, GPTConfig
from .llama import Llama, LlamaConfig

__all__ = [
    "BertConfig",
    "BertEncoder",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "GPT",
    "GPTConfig",
    "Llama",
    "LlamaConfig",
]
