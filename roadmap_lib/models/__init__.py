"""Model families built from roadmap_lib's attention, layers and positional modules.

``gpt`` (GPT-2 architecture), ``llama`` (RMSNorm, RoPE, SwiGLU, GQA), ``bert`` (masked-LM and
classification heads) and ``encoder_decoder`` (the original post-norm Transformer); ``hf`` moves
weights to and from transformers.
"""

from .bert import BertConfig, BertEncoder, BertForMaskedLM, BertForSequenceClassification
from .encoder_decoder import Transformer, TransformerConfig
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
    "Transformer",
    "TransformerConfig",
]
