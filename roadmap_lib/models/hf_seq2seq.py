"""Weights both ways between our encoder-decoders and transformers' ``T5ForConditionalGeneration``
and ``BartForConditionalGeneration``.

Each family has one table of (our name, their name) pairs built from the config; loading goes one
way through it and saving the other, so the two cannot drift apart. Nothing is downloaded: pass a
model you built (random weights) or one from your local cache.
"""

from __future__ import annotations

import torch
from torch import nn

from .t5 import FEED_FORWARD, T5, T5Config

_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


def _load(model: nn.Module, pairs: list[tuple[str, str]], sd: dict[str, torch.Tensor]) -> None:
    """Fill our ``model`` from their state dict ``sd`` through the (ours, theirs) name pairs."""
    missing = [t for _, t in pairs if t not in sd]
    if missing:
        raise ValueError(f"hf_model: its state dict lacks {missing[:5]} ({len(missing)} keys)")
    model.load_state_dict({o: sd[t] for o, t in pairs}, strict=True)


def _theirs(model: nn.Module, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    return {t: sd[o].clone() for o, t in pairs}


def _untie_head(hf: nn.Module, weight: torch.Tensor) -> None:
    """Give transformers' lm_head its own matrix (5.x ties it to the embedding even when the
    config says not to)."""
    if hf.lm_head.weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr():
        hf.lm_head.weight = nn.Parameter(weight.clone())
    else:
        hf.lm_head.weight.data.copy_(weight)


# --- T5 ---------------------------------------------------------------------------------------


def _t5_pairs(c: T5Config) -> list[tuple[str, str]]:
    _, gated = FEED_FORWARD[c.feed_forward]
    ffn = [("ffn.down_proj", "wo")] + (
        [("ffn.gate_proj", "wi_0"), ("ffn.up_proj", "wi_1")] if gated else [("ffn.up_proj", "wi")])
    pairs = [("shared.weight", "shared.weight"), ("shared.weight", "encoder.embed_tokens.weight"),
             ("shared.weight", "decoder.embed_tokens.weight"), ("lm_head.weight", "lm_head.weight"),
             ("encoder_norm.weight", "encoder.final_layer_norm.weight"),
             ("decoder_norm.weight", "decoder.final_layer_norm.weight")]
    for side, n_layers in (("encoder", c.n_layers), ("decoder", c.n_decoder_layers)):
        pairs.append((f"{side}_bias.relative_attention_bias.weight",
                      f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"))
        for i in range(n_layers):
            ours, theirs = f"{side}.{i}", f"{side}.block.{i}.layer"
            sub = [("attn", "0.SelfAttention", "attn_norm", "0")]
            if side == "decoder":
                sub.append(("cross_attn", "1.EncDecAttention", "cross_norm", "1"))
            for o, t, o_norm, t_norm in sub:
                pairs += [(f"{ours}.{o}.{p}.weight", f"{theirs}.{t}.{p[0]}.weight") for p in _ATTN]
                pairs.append((f"{ours}.{o_norm}.weight", f"{theirs}.{t_norm}.layer_norm.weight"))
            ff = len(sub)
            pairs += [(f"{ours}.{o}.weight", f"{theirs}.{ff}.DenseReluDense.{t}.weight") for o, t in ffn]
            pairs.append((f"{ours}.ffn_norm.weight", f"{theirs}.{ff}.layer_norm.weight"))
    return pairs


def t5_config_from_hf(config) -> T5Config:
    if config.model_type != "t5":
        raise ValueError(f"config: expected a T5Config, got model_type={config.model_type!r}")
    if config.feed_forward_proj not in FEED_FORWARD:
        raise ValueError(f"config.feed_forward_proj: expected one of {sorted(FEED_FORWARD)}, "
                         f"got {config.feed_forward_proj!r}")
    start = getattr(config, "decoder_start_token_id", None)
    return T5Config(
        vocab_size=config.vocab_size, d_model=config.d_model, d_kv=config.d_kv, d_ff=config.d_ff,
        n_layers=config.num_layers, n_decoder_layers=config.num_decoder_layers,
        n_heads=config.num_heads, num_buckets=config.relative_attention_num_buckets,
        max_distance=config.relative_attention_max_distance, feed_forward=config.feed_forward_proj,
        norm_eps=config.layer_norm_epsilon, dropout=config.dropout_rate,
        # transformers 5 always ties and says whether to rescale in scale_decoder_outputs
        tie_word_embeddings=bool(getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)),
        pad_token_id=config.pad_token_id, eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.pad_token_id if start is None else start,
    )


def t5_from_hf(hf_model: nn.Module) -> T5:
    """Our :class:`T5` with the weights of a transformers ``T5ForConditionalGeneration``."""
    model = T5(t5_config_from_hf(hf_model.config))
    _load(model, _t5_pairs(model.config), hf_model.state_dict())
    return model.eval()


def t5_to_hf(model: T5) -> nn.Module:
    """A transformers ``T5ForConditionalGeneration`` with our T5's weights."""
    from transformers import T5Config as HFT5Config
    from transformers import T5ForConditionalGeneration

    c = model.config
    hf = T5ForConditionalGeneration(HFT5Config(
        vocab_size=c.vocab_size, d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff, num_layers=c.n_layers,
        num_decoder_layers=c.n_decoder_layers, num_heads=c.n_heads,
        relative_attention_num_buckets=c.num_buckets, relative_attention_max_distance=c.max_distance,
        feed_forward_proj=c.feed_forward, layer_norm_epsilon=c.norm_eps, dropout_rate=c.dropout,
        tie_word_embeddings=c.tie_word_embeddings, pad_token_id=c.pad_token_id,
        eos_token_id=c.eos_token_id, decoder_start_token_id=c.decoder_start_token_id,
    ))
    theirs = _theirs(model, _t5_pairs(c))
    head = theirs.pop("lm_head.weight")
    hf.load_state_dict(theirs, strict=False)
    if c.tie_word_embeddings:
        hf.lm_head.weight = hf.shared.weight
    else:
        _untie_head(hf, head)
    _check_loaded(hf, theirs, head)
    return hf.eval()


def _check_loaded(hf: nn.Module, theirs: dict[str, torch.Tensor], head: torch.Tensor) -> None:
    """Every weight of ``hf`` came from ``theirs`` (or is the head); nothing was left at random."""
    sd = hf.state_dict()
    unset = [k for k in sd if k != "lm_head.weight" and k not in theirs]
    wrong = [k for k, v in theirs.items() if not torch.equal(sd[k], v)]
    if unset or wrong or not torch.equal(sd["lm_head.weight"], head):
        raise RuntimeError(f"conversion: transformers weights not set {unset[:5]}, not equal {wrong[:5]}")


__all__ = ["t5_config_from_hf", "t5_from_hf", "t5_to_hf"]
