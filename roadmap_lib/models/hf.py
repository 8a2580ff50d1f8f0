"""Weights both ways between our models and transformers' (``GPT2LMHeadModel``, ``LlamaForCausalLM``,
``BertForMaskedLM``, ``BertForSequenceClassification``).

The per-layer mapping (names, GPT-2's transposed ``Conv1D`` and fused q|k|v) is
:mod:`roadmap_lib.hf_layers`'; here are the embeddings, the final norm, the head and the configs.
Nothing is downloaded: pass a model you built (random weights) or one from your local cache
(:func:`load_local_pretrained`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..hf_layers import hf_state_dict, state_dict_from_hf
from .bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from .gpt import GPT, GPTConfig
from .llama import Llama, LlamaConfig


def _per_layer(sd: dict[str, torch.Tensor], prefix: str) -> dict[int, dict[str, torch.Tensor]]:
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in sd.items():
        if name.startswith(prefix):
            idx, rest = name[len(prefix):].split(".", 1)
            layers.setdefault(int(idx), {})[rest] = t
    return layers


# --- GPT-2 ------------------------------------------------------------------------------------


#: transformers' names for the tanh approximation of GELU, the one our GPT uses (same function)
_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_fast", "gelu_accurate")


def _refuse(config, field: str, supported, why: str) -> None:
    """Raise unless ``config.<field>`` (read as transformers does) is one of ``supported``."""
    got = getattr(config, field, supported[0])
    if got not in supported:
        allowed = " or ".join(repr(v) for v in supported if v is not None)
        raise ValueError(f"config.{field}: got {got!r}; {why} (supported: {allowed})")


def gpt_config_from_hf(config) -> GPTConfig:
    """Our GPTConfig for a transformers ``GPT2Config``; raises ``ValueError`` for what we lack.

    Every field ``GPT2LMHeadModel`` reads is mapped, refused, or (the attention-scale variants
    ``scale_attn_weights=False`` and ``scale_attn_by_inverse_layer_idx=True``) left to
    :func:`gpt_from_hf`, which folds the scale into the query weights.
    """
    if config.model_type != "gpt2":
        raise ValueError(f"config: expected a GPT2Config, got model_type={config.model_type!r}")
    if config.activation_function not in _TANH_GELU:
        raise ValueError(f"config.activation_function: expected 'gelu_new' or another name of the tanh "
                         f"GELU our GPT uses ({', '.join(_TANH_GELU[1:])}), "
                         f"got {config.activation_function!r}")
    _refuse(config, "add_cross_attention", (False,), "our GPT has no cross-attention")
    # reorder_and_upcast_attn only changes the order and precision of the score computation:
    # the same numbers in float32, which is what our models compute in
    return GPTConfig(
        vocab_size=config.vocab_size, context_length=config.n_positions, d_model=config.n_embd,
        n_layers=config.n_layer, n_heads=config.n_head, d_ff=config.n_inner,
        dropout=0.0, norm_eps=config.layer_norm_epsilon, tie_embeddings=config.tie_word_embeddings,
    )


def _gpt2_query_scale(config, layer: int) -> float:
    """What GPT-2's layer ``layer`` multiplies q·k by, divided by our 1/sqrt(head_dim)."""
    scale = 1.0 if config.scale_attn_weights else (config.n_embd // config.n_head) ** 0.5
    return scale / (layer + 1) if config.scale_attn_by_inverse_layer_idx else scale


def gpt_from_hf(hf_model: nn.Module) -> GPT:
    """Our :class:`GPT` with the weights of a transformers ``GPT2LMHeadModel``.

    Our attention always scales q·k by 1/sqrt(head_dim). GPT-2 variants that scale otherwise
    (``scale_attn_weights=False``: by 1; ``scale_attn_by_inverse_layer_idx=True``: by a further
    1/(layer + 1)) are converted by multiplying each layer's query weights and bias by the ratio:
    (c q)·k / sqrt(d) = (c / sqrt(d)) q·k, the same logits. :func:`gpt_to_hf` then gives a standard
    GPT-2 carrying those folded weights.
    """
    config = hf_model.config
    model = GPT(gpt_config_from_hf(config))
    sd = hf_model.state_dict()
    if "lm_head.weight" not in sd:
        raise ValueError(f"hf_model: expected a GPT2LMHeadModel, got {type(hf_model).__name__} "
                         "(no lm_head.weight)")
    ours = {"wte.weight": sd["transformer.wte.weight"], "wpe.weight": sd["transformer.wpe.weight"],
            "ln_f.weight": sd["transformer.ln_f.weight"], "ln_f.bias": sd["transformer.ln_f.bias"],
            "lm_head.weight": sd["lm_head.weight"]}
    for i, layer in _per_layer(sd, "transformer.h.").items():
        block = state_dict_from_hf(layer, "gpt2")
        c = _gpt2_query_scale(config, i)
        if c != 1.0:
            for name in ("attn.q_proj.weight", "attn.q_proj.bias"):
                block[name] = block[name].float() * c  # in our model's float32
        ours.update({f"blocks.{i}.{k}": v for k, v in block.items()})
    model.load_state_dict(ours, strict=True)
    return model.eval()


def gpt_to_hf(model: GPT) -> nn.Module:
    """A transformers ``GPT2LMHeadModel`` with our GPT's weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    if not c.bias:
        raise ValueError("model: GPT-2 has biases; a GPTConfig(bias=False) model has no counterpart")
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.context_length, n_embd=c.d_model, n_layer=c.n_layers,
        n_head=c.n_heads, n_inner=c.d_ff, layer_norm_epsilon=c.norm_eps, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=c.tie_embeddings,
        # GPT-2's defaults (50256) name a token our smaller vocabularies do not have
        bos_token_id=None, eos_token_id=None,
    ))
    sd = model.state_dict()
    theirs = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"],
              "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"],
              "lm_head.weight": sd["lm_head.weight"]}
    for i, block in enumerate(model.blocks):
        theirs.update({f"transformer.h.{i}.{k}": v for k, v in hf_state_dict(block, "gpt2").items()})
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    # GPT-2 keeps a non-persistent causal-mask buffer in some versions; weights must all be there
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"gpt_to_hf: missing {missing}, unexpected {unexpected}")
    return hf.eval()


# --- Llama ------------------------------------------------------------------------------------


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if params.get("rope_type", "default") != "default":
        raise ValueError(f"config.rope_parameters: our Llama has plain RoPE, rope_type 'default' "
                         f"(supported: rope_type 'default' with any rope_theta), got {params}")
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def llama_config_from_hf(config) -> LlamaConfig:
    """Our LlamaConfig for a transformers ``LlamaConfig``; raises ``ValueError`` for what we lack.

    ``pretraining_tp`` is accepted: transformers 5 no longer splits the matmuls by it.
    """
    if config.model_type != "llama":
        raise ValueError(f"config: expected a LlamaConfig, got model_type={config.model_type!r}")
    _refuse(config, "attention_bias", (False,), "our Llama has no biases")
    _refuse(config, "mlp_bias", (False,), "our Llama has no biases")
    if config.hidden_act not in ("silu", "swish"):  # two names of torch's SiLU
        raise ValueError(f"config.hidden_act: expected 'silu' (or its other name 'swish') for our "
                         f"SwiGLU feed-forward, got {config.hidden_act!r}")
    return LlamaConfig(
        vocab_size=config.vocab_size, context_length=config.max_position_embeddings,
        d_model=config.hidden_size, n_layers=config.num_hidden_layers,
        n_heads=config.num_attention_heads, n_kv_heads=config.num_key_value_heads,
        head_dim=config.head_dim, d_ff=config.intermediate_size, rope_base=_rope_theta(config),
        norm_eps=config.rms_norm_eps, tie_embeddings=config.tie_word_embeddings,
    )


def llama_from_hf(hf_model: nn.Module) -> Llama:
    """Our :class:`Llama` with the weights of a transformers ``LlamaForCausalLM``."""
    model = Llama(llama_config_from_hf(hf_model.config))
    sd = hf_model.state_dict()
    ours = {"embed.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"],
            "lm_head.weight": sd["lm_head.weight"]}
    for i, layer in _per_layer(sd, "model.layers.").items():
        ours.update({f"blocks.{i}.{k}": v for k, v in state_dict_from_hf(layer, "llama").items()})
    model.load_state_dict(ours, strict=True)
    return model.eval()


def llama_to_hf(model: Llama) -> nn.Module:
    """A transformers ``LlamaForCausalLM`` with our Llama's weights."""
    from transformers import LlamaConfig as HFLlamaConfig
    from transformers import LlamaForCausalLM

    c = model.config
    hf = LlamaForCausalLM(HFLlamaConfig(
        vocab_size=c.vocab_size, max_position_embeddings=c.context_length, hidden_size=c.d_model,
        num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads,
        head_dim=c.head_dim, intermediate_size=c.d_ff, rms_norm_eps=c.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_base},
        tie_word_embeddings=c.tie_embeddings, attention_bias=False, mlp_bias=False,
    ))
    sd = model.state_dict()
    theirs = {"model.embed_tokens.weight": sd["embed.weight"], "model.norm.weight": sd["norm.weight"],
              "lm_head.weight": sd["lm_head.weight"]}
    for i, block in enumerate(model.blocks):
        theirs.update({f"model.layers.{i}.{k}": v for k, v in hf_state_dict(block, "llama").items()})
    hf.load_state_dict(theirs, strict=True)
    return hf.eval()


# --- BERT -------------------------------------------------------------------------------------

_BERT_EMB = [("tok_emb.weight", "word_embeddings.weight"), ("pos_emb.weight", "position_embeddings.weight"),
             ("type_emb.weight", "token_type_embeddings.weight"), ("emb_norm.weight", "LayerNorm.weight"),
             ("emb_norm.bias", "LayerNorm.bias")]
_BERT_MLM = [("mlm_dense.weight", "transform.dense.weight"), ("mlm_dense.bias", "transform.dense.bias"),
             ("mlm_norm.weight", "transform.LayerNorm.weight"), ("mlm_norm.bias", "transform.LayerNorm.bias"),
             ("mlm_out.weight", "decoder.weight"), ("mlm_out.bias", "bias")]
_BERT_TOKEN = [("classifier.weight", "classifier.weight"), ("classifier.bias", "classifier.bias")]
_BERT_CLS = [("pooler.weight", "bert.pooler.dense.weight"), ("pooler.bias", "bert.pooler.dense.bias"),
             *_BERT_TOKEN]


def bert_config_from_hf(config) -> BertConfig:
    """Our BertConfig for a transformers ``BertConfig``; raises ``ValueError`` for what we lack."""
    if config.model_type != "bert":
        raise ValueError(f"config: expected a BertConfig, got model_type={config.model_type!r}")
    if config.hidden_act != "gelu":
        raise ValueError(f"config.hidden_act: expected 'gelu' (exact, erf) for our BERT, "
                         f"got {config.hidden_act!r}")
    _refuse(config, "is_decoder", (False,), "our BERT is a bidirectional encoder, not a causal decoder")
    _refuse(config, "add_cross_attention", (False,), "our BERT has no cross-attention")
    # transformers 5 dropped relative position embeddings and ignores this field; a checkpoint that
    # sets it was trained with positions that neither it nor we compute
    _refuse(config, "position_embedding_type", ("absolute", None),
            "our BERT has learned absolute position embeddings only")
    return BertConfig(
        vocab_size=config.vocab_size, context_length=config.max_position_embeddings,
        d_model=config.hidden_size, n_layers=config.num_hidden_layers,
        n_heads=config.num_attention_heads, d_ff=config.intermediate_size,
        type_vocab_size=config.type_vocab_size, norm_eps=config.layer_norm_eps,
        dropout=config.hidden_dropout_prob, num_labels=config.num_labels,
    )


def _bert_encoder_from_hf(sd) -> dict[str, torch.Tensor]:
    ours = {f"bert.{o}": sd[f"bert.embeddings.{t}"] for o, t in _BERT_EMB}
    for i, layer in _per_layer(sd, "bert.encoder.layer.").items():
        ours.update({f"bert.blocks.{i}.{k}": v for k, v in state_dict_from_hf(layer, "bert").items()})
    return ours


def bert_from_hf(hf_model: nn.Module) -> BertForMaskedLM | BertForSequenceClassification:
    """Our BERT (masked-LM or classifier, following the transformers class) with its weights."""
    kind = type(hf_model).__name__
    heads = ("BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification")
    if kind not in heads:
        raise ValueError(f"hf_model: expected {', '.join(heads[:-1])} or {heads[-1]}, got {kind}")
    config = bert_config_from_hf(hf_model.config)
    sd = hf_model.state_dict()
    ours = _bert_encoder_from_hf(sd)
    if kind == "BertForMaskedLM":
        _refuse(hf_model.config, "tie_word_embeddings", (True,),
                "our BertForMaskedLM ties its output layer to the word embeddings")
        model = BertForMaskedLM(config)
        ours.update({o: sd[f"cls.predictions.{t}"] for o, t in _BERT_MLM})
    elif kind == "BertForSequenceClassification":
        model = BertForSequenceClassification(config)
        ours.update({o: sd[t] for o, t in _BERT_CLS})
    else:
        model = BertForTokenClassification(config)
        ours.update({o: sd[t] for o, t in _BERT_TOKEN})
    model.load_state_dict(ours, strict=True)
    return model.eval()


def bert_to_hf(model: BertForMaskedLM | BertForSequenceClassification) -> nn.Module:
    """The transformers counterpart of our BERT, with our weights."""
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM as HFMaskedLM
    from transformers import BertForSequenceClassification as HFClassifier
    from transformers import BertForTokenClassification as HFTagger

    if not isinstance(model, (BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification)):
        raise TypeError(f"model: expected one of our BERT models, got {type(model).__name__}")
    c = model.config
    hf_config = HFBertConfig(
        vocab_size=c.vocab_size, max_position_embeddings=c.context_length, hidden_size=c.d_model,
        num_hidden_layers=c.n_layers, num_attention_heads=c.n_heads, intermediate_size=c.d_ff,
        type_vocab_size=c.type_vocab_size, layer_norm_eps=c.norm_eps, hidden_dropout_prob=c.dropout,
        attention_probs_dropout_prob=c.dropout, num_labels=c.num_labels, hidden_act="gelu",
    )
    sd = model.state_dict()
    theirs = {f"bert.embeddings.{t}": sd[f"bert.{o}"] for o, t in _BERT_EMB}
    for i, block in enumerate(model.bert.blocks):
        theirs.update({f"bert.encoder.layer.{i}.{k}": v for k, v in hf_state_dict(block, "bert").items()})
    if isinstance(model, BertForMaskedLM):
        hf = HFMaskedLM(hf_config)
        theirs.update({f"cls.predictions.{t}": sd[o] for o, t in _BERT_MLM})
        theirs["cls.predictions.decoder.bias"] = sd["mlm_out.bias"]  # the same tensor in transformers
    elif isinstance(model, BertForSequenceClassification):
        hf = HFClassifier(hf_config)
        theirs.update({t: sd[o] for o, t in _BERT_CLS})
    else:
        hf = HFTagger(hf_config)
        theirs.update({t: sd[o] for o, t in _BERT_TOKEN})
    hf.load_state_dict(theirs, strict=True)
    return hf.eval()


def load_local_pretrained(name: str = "gpt2") -> GPT | Llama:
    """Optional: convert a published checkpoint that is *already* in your Hugging Face cache.

    Never downloads (``local_files_only=True``); raises ``OSError`` when it is not cached.
    E.g. ``load_local_pretrained("gpt2")`` after ``huggingface-cli download gpt2`` on a machine
    with network access.
    """
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(name, local_files_only=True, dtype=torch.float32)
    if hf.config.model_type == "gpt2":
        return gpt_from_hf(hf)
    if hf.config.model_type == "llama":
        return llama_from_hf(hf)
    raise ValueError(f"name: {name!r} is a {hf.config.model_type!r} model; expected gpt2 or llama")


__all__ = [
    "bert_config_from_hf",
    "bert_from_hf",
    "bert_to_hf",
    "gpt_config_from_hf",
    "gpt_from_hf",
    "gpt_to_hf",
    "llama_config_from_hf",
    "llama_from_hf",
    "llama_to_hf",
    "load_local_pretrained",
]
