"""Weights both ways between our encoder-decoders and transformers' ``T5ForConditionalGeneration``
and ``BartForConditionalGeneration``.

Each family has one table of (our name, their name) pairs built from the config; loading goes one
way through it and saving the other, so the two cannot drift apart. Nothing is downloaded: pass a
model you built (random weights) or one from your local cache.
"""

from __future__ import annotations

import torch
from torch import nn

from .bart import Bart, BartConfig
from .t5 import FEED_FORWARD, T5, T5Config

_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


def _load(model: nn.Module, pairs: list[tuple[str, str]], sd: dict[str, torch.Tensor]) -> None:
    """Fill our ``model`` from their state dict ``sd`` through the (ours, theirs) name pairs."""
    missing = [t for _, t in pairs if t not in sd]
    if missing:
        raise ValueError(f"hf_model: its state dict lacks {missing[:5]} ({len(missing)} keys)")
    ours: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    for o, t in pairs:  # one of our tensors may be several of theirs (tied embeddings): all equal
        if o in ours and not torch.equal(ours[o], sd[t]):
            raise ValueError(
                f"hf_model: {t} differs from {source[o]}; our model has one {o} for both"
            )
        ours[o], source[o] = sd[t], t
    model.load_state_dict(ours, strict=True)


def _fill_hf(hf: nn.Module, model: nn.Module, pairs: list[tuple[str, str]]) -> nn.Module:
    """Copy our weights into the transformers model ``hf`` and check that every one of its
    weights came from us."""
    sd = model.state_dict()
    theirs = {t: sd[o].clone() for o, t in pairs}
    head = theirs.pop("lm_head.weight")
    hf.load_state_dict(theirs, strict=False)
    embedding = hf.get_input_embeddings().weight
    if model.config.tie_word_embeddings:
        hf.lm_head.weight = embedding
    elif hf.lm_head.weight.data_ptr() == embedding.data_ptr():
        hf.lm_head.weight = nn.Parameter(
            head
        )  # transformers 5 ties T5's head whatever the config says
    else:
        hf.lm_head.weight.data.copy_(head)
    got = hf.state_dict()
    unset = [k for k in got if k != "lm_head.weight" and k not in theirs]
    wrong = [k for k, v in theirs.items() if not torch.equal(got[k], v)]
    if unset or wrong or not torch.equal(got["lm_head.weight"], head):
        raise RuntimeError(
            f"conversion: transformers weights not set {unset[:5]}, not equal {wrong[:5]}"
        )
    return hf.eval()


# --- T5 ---------------------------------------------------------------------------------------


def _t5_pairs(c: T5Config) -> list[tuple[str, str]]:
    _, gated = FEED_FORWARD[c.feed_forward]
    ffn = [("ffn.down_proj", "wo")] + (
        [("ffn.gate_proj", "wi_0"), ("ffn.up_proj", "wi_1")] if gated else [("ffn.up_proj", "wi")]
    )
    pairs = [
        ("shared.weight", "shared.weight"),
        ("shared.weight", "encoder.embed_tokens.weight"),
        ("shared.weight", "decoder.embed_tokens.weight"),
        ("lm_head.weight", "lm_head.weight"),
        ("encoder_norm.weight", "encoder.final_layer_norm.weight"),
        ("decoder_norm.weight", "decoder.final_layer_norm.weight"),
    ]
    for side, n_layers in (("encoder", c.n_layers), ("decoder", c.n_decoder_layers)):
        pairs.append(
            (
                f"{side}_bias.relative_attention_bias.weight",
                f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            )
        )
        for i in range(n_layers):
            ours, theirs = f"{side}.{i}", f"{side}.block.{i}.layer"
            sub = [("attn", "0.SelfAttention", "attn_norm", "0")]
            if side == "decoder":
                sub.append(("cross_attn", "1.EncDecAttention", "cross_norm", "1"))
            for o, t, o_norm, t_norm in sub:
                pairs += [(f"{ours}.{o}.{p}.weight", f"{theirs}.{t}.{p[0]}.weight") for p in _ATTN]
                pairs.append((f"{ours}.{o_norm}.weight", f"{theirs}.{t_norm}.layer_norm.weight"))
            ff = len(sub)
            pairs += [
                (f"{ours}.{o}.weight", f"{theirs}.{ff}.DenseReluDense.{t}.weight") for o, t in ffn
            ]
            pairs.append((f"{ours}.ffn_norm.weight", f"{theirs}.{ff}.layer_norm.weight"))
    return pairs


#: transformers' names for T5's dense activations -> ours (gelu_new: the tanh approximation)
_T5_ACT = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
           "silu": "silu"}


def _t5_feed_forward(config) -> str:
    """Our ``feed_forward`` for what transformers' T5 builds: ``dense_act_fn``, ``is_gated_act``.

    transformers derives both from ``feed_forward_proj`` when the config is made ('gated-gelu'
    means a gated tanh GELU), but builds the model from them, so they are what we must match.
    """
    act = getattr(config, "dense_act_fn", None)
    gated = getattr(config, "is_gated_act", None)
    if act is None or gated is None:  # a config object without the derived fields
        act_info = config.feed_forward_proj.split("-")
        act, gated = act_info[-1], act_info[0] == "gated"
        act = "gelu_new" if config.feed_forward_proj == "gated-gelu" else act
    ours = {v: k for k, v in FEED_FORWARD.items()}.get((_T5_ACT.get(act), bool(gated)))
    if ours is None:
        supported = ", ".join(
            f"{k!r} ({'gated ' if g else ''}{a})" for k, (a, g) in sorted(FEED_FORWARD.items())
        )
        raise ValueError(
            f"config.dense_act_fn={act!r}, is_gated_act={gated!r} (from feed_forward_proj="
            f"{config.feed_forward_proj!r}): our T5 has no such feed-forward; supported: {supported}"
        )
    return ours


def t5_config_from_hf(config) -> T5Config:
    """Our T5Config for a transformers ``T5Config``; raises ``ValueError`` for what we lack."""
    if config.model_type != "t5":
        raise ValueError(f"config: expected a T5Config, got model_type={config.model_type!r}")
    feed_forward = _t5_feed_forward(config)
    start = getattr(config, "decoder_start_token_id", None)
    return T5Config(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        d_kv=config.d_kv,
        d_ff=config.d_ff,
        n_layers=config.num_layers,
        n_decoder_layers=config.num_decoder_layers,
        n_heads=config.num_heads,
        num_buckets=config.relative_attention_num_buckets,
        max_distance=config.relative_attention_max_distance,
        feed_forward=feed_forward,
        norm_eps=config.layer_norm_epsilon,
        dropout=config.dropout_rate,
        # transformers 5 always ties and says whether to rescale in scale_decoder_outputs
        tie_word_embeddings=bool(
            getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
        ),
        pad_token_id=config.pad_token_id,
        eos_token_id=config.eos_token_id,
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
    hf = T5ForConditionalGeneration(
        HFT5Config(
            vocab_size=c.vocab_size,
            d_model=c.d_model,
            d_kv=c.d_kv,
            d_ff=c.d_ff,
            num_layers=c.n_layers,
            num_decoder_layers=c.n_decoder_layers,
            num_heads=c.n_heads,
            relative_attention_num_buckets=c.num_buckets,
            relative_attention_max_distance=c.max_distance,
            feed_forward_proj=c.feed_forward,
            layer_norm_epsilon=c.norm_eps,
            dropout_rate=c.dropout,
            tie_word_embeddings=c.tie_word_embeddings,
            pad_token_id=c.pad_token_id,
            eos_token_id=c.eos_token_id,
            decoder_start_token_id=c.decoder_start_token_id,
        )
    )
    return _fill_hf(hf, model, _t5_pairs(c))


# --- BART -------------------------------------------------------------------------------------

#: transformers' activation names -> ours (gelu_new is the tanh approximation)
_BART_ACT = {
    "gelu": "gelu",
    "relu": "relu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "silu": "silu",
}


def _bart_pairs(c: BartConfig) -> list[tuple[str, str]]:
    pairs = [
        ("shared.weight", "model.shared.weight"),
        ("shared.weight", "model.encoder.embed_tokens.weight"),
        ("shared.weight", "model.decoder.embed_tokens.weight"),
        ("lm_head.weight", "lm_head.weight"),
        ("final_logits_bias", "final_logits_bias"),
    ]
    sub = {
        "encoder": [("attn", "self_attn", "attn_norm", "self_attn_layer_norm")],
        "decoder": [
            ("attn", "self_attn", "attn_norm", "self_attn_layer_norm"),
            ("cross_attn", "encoder_attn", "cross_norm", "encoder_attn_layer_norm"),
        ],
    }
    for side, n_layers in (("encoder", c.encoder_layers), ("decoder", c.decoder_layers)):
        theirs = f"model.{side}"
        pairs.append((f"{side}_positions.weight", f"{theirs}.embed_positions.weight"))
        pairs += [
            (f"{side}_emb_norm.{w}", f"{theirs}.layernorm_embedding.{w}")
            for w in ("weight", "bias")
        ]
        for i in range(n_layers):
            named = [
                (f"{o}.{p}", f"{t}.{p.replace('o_proj', 'out_proj')}")
                for o, t, _, _ in sub[side]
                for p in _ATTN
            ]
            named += [(o, t) for _, _, o, t in sub[side]]
            named += [
                ("ffn.up_proj", "fc1"),
                ("ffn.down_proj", "fc2"),
                ("ffn_norm", "final_layer_norm"),
            ]
            pairs += [
                (f"{side}.{i}.{o}.{w}", f"{theirs}.layers.{i}.{t}.{w}")
                for o, t in named
                for w in ("weight", "bias")
            ]
    return pairs


def bart_config_from_hf(config) -> BartConfig:
    """Our BartConfig for a transformers ``BartConfig``; raises ``ValueError`` for what we lack.

    mBART's switches (``normalize_before``, ``add_final_layer_norm``, ...) are not read by
    transformers' BART either; layer-drop and the dropouts only act in training.
    """
    if config.model_type != "bart":
        raise ValueError(f"config: expected a BartConfig, got model_type={config.model_type!r}")
    if config.activation_function not in _BART_ACT:
        raise ValueError(
            f"config.activation_function: expected one of {sorted(_BART_ACT)}, "
            f"got {config.activation_function!r}"
        )
    for enc, dec in (("encoder_attention_heads", "decoder_attention_heads"),
                     ("encoder_ffn_dim", "decoder_ffn_dim")):
        if getattr(config, enc) != getattr(config, dec):
            raise ValueError(
                f"config.{enc}={getattr(config, enc)}, config.{dec}={getattr(config, dec)}: our BART "
                "has the same attention heads and ffn dim in the encoder and the decoder"
            )
    return BartConfig(
        vocab_size=config.vocab_size,
        context_length=config.max_position_embeddings,
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        n_heads=config.encoder_attention_heads,
        d_ff=config.encoder_ffn_dim,
        activation=_BART_ACT[config.activation_function],
        dropout=config.dropout,
        attn_dropout=config.attention_dropout,
        scale_embedding=bool(config.scale_embedding),
        tie_word_embeddings=config.tie_word_embeddings,
        pad_token_id=config.pad_token_id,
        eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
    )


def bart_from_hf(hf_model: nn.Module) -> Bart:
    """Our :class:`Bart` with the weights of a transformers ``BartForConditionalGeneration``."""
    model = Bart(bart_config_from_hf(hf_model.config))
    _load(model, _bart_pairs(model.config), hf_model.state_dict())
    return model.eval()


def bart_to_hf(model: Bart) -> nn.Module:
    """A transformers ``BartForConditionalGeneration`` with our BART's weights.

    ``forced_eos_token_id`` is left unset, so that ``generate`` decodes like our greedy search.
    """
    from transformers import BartConfig as HFBartConfig
    from transformers import BartForConditionalGeneration

    c = model.config
    if c.norm_eps != 1e-5:
        raise ValueError(
            f"model: transformers' BART uses LayerNorm eps 1e-5, got norm_eps={c.norm_eps}"
        )
    ours_to_hf_act = {v: k for k, v in reversed(_BART_ACT.items())}
    hf = BartForConditionalGeneration(
        HFBartConfig(
            vocab_size=c.vocab_size,
            max_position_embeddings=c.context_length,
            d_model=c.d_model,
            encoder_layers=c.encoder_layers,
            decoder_layers=c.decoder_layers,
            encoder_attention_heads=c.n_heads,
            decoder_attention_heads=c.n_heads,
            encoder_ffn_dim=c.d_ff,
            decoder_ffn_dim=c.d_ff,
            activation_function=ours_to_hf_act[c.activation],
            dropout=c.dropout,
            attention_dropout=c.attn_dropout,
            activation_dropout=0.0,
            scale_embedding=c.scale_embedding,
            tie_word_embeddings=c.tie_word_embeddings,
            pad_token_id=c.pad_token_id,
            eos_token_id=c.eos_token_id,
            decoder_start_token_id=c.decoder_start_token_id,
            forced_eos_token_id=None,
        )
    )
    return _fill_hf(hf, model, _bart_pairs(c))


__all__ = [
    "bart_config_from_hf",
    "bart_from_hf",
    "bart_to_hf",
    "t5_config_from_hf",
    "t5_from_hf",
    "t5_to_hf",
]
