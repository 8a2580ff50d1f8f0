"""Model families built from roadmap_lib's attention, layers and positional modules.

``gpt`` (GPT-2 architecture), ``llama`` (RMSNorm, RoPE, SwiGLU, GQA), ``bert`` (masked-LM and
classification heads), ``encoder_decoder`` (the original post-norm Transformer), ``t5`` and ``bart``;
``hf`` and ``hf_seq2seq`` move weights to and from transformers.
"""

from .bart import Bart, BartConfig
from .bert import (
    BertConfig,
    BertEncoder,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from .encoder_decoder import Transformer, TransformerConfig
from .gpt import GPT, GPTConfig
from .llama import Llama, LlamaConfig
from .t5 import T5, T5Config

__all__ = [
    "Bart",
    "BartConfig",
    "BertConfig",
    "BertEncoder",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "GPT",
    "GPTConfig",
    "Llama",
    "LlamaConfig",
    "T5",
    "T5Config",
    "Transformer",
    "TransformerConfig",
]
