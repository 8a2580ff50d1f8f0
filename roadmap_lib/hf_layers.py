"""Move the weights of one transformer layer between transformers and :class:`TransformerBlock`.

Three families, three layouts of the same ideas:

- GPT-2 (``GPT2Block``): pre-norm LayerNorm, fused ``c_attn`` = [q | k | v], ``Conv1D`` weights
  stored as (in, out), i.e. transposed compared with ``nn.Linear``; GELU(tanh) MLP.
- BERT (``BertLayer``): post-norm LayerNorm (eps 1e-12), exact GELU.
- Llama (``LlamaDecoderLayer``): pre-norm RMSNorm, grouped-query attention without biases,
  RoPE in the half-split convention, SwiGLU MLP (gate_proj, up_proj, down_proj).

``block_from_hf(layer, config)`` builds our block and loads the layer's weights;
``hf_state_dict(block, family)`` goes the other way. Whole models are ``roadmap_lib.models``' job.
"""

from __future__ import annotations

import torch
from torch import nn

from roadmap_lib.attention import Rotary
from roadmap_lib.layers import BlockConfig, TransformerBlock

FAMILIES = ("gpt2", "bert", "llama")

# (our name, their name) for the tensors that only change their name
_RENAMES = {
    "gpt2": [
        ("attn_norm.weight", "ln_1.weight"), ("attn_norm.bias", "ln_1.bias"),
        ("ffn_norm.weight", "ln_2.weight"), ("ffn_norm.bias", "ln_2.bias"),
    ],
    "bert": [
        ("attn.q_proj.weight", "attention.self.query.weight"),
        ("attn.q_proj.bias", "attention.self.query.bias"),
        ("attn.k_proj.weight", "attention.self.key.weight"),
        ("attn.k_proj.bias", "attention.self.key.bias"),
        ("attn.v_proj.weight", "attention.self.value.weight"),
        ("attn.v_proj.bias", "attention.self.value.bias"),
        ("attn.o_proj.weight", "attention.output.dense.weight"),
        ("attn.o_proj.bias", "attention.output.dense.bias"),
        ("attn_norm.weight", "attention.output.LayerNorm.weight"),
        ("attn_norm.bias", "attention.output.LayerNorm.bias"),
        ("ffn.up_proj.weight", "intermediate.dense.weight"),
        ("ffn.up_proj.bias", "intermediate.dense.bias"),
        ("ffn.down_proj.weight", "output.dense.weight"),
        ("ffn.down_proj.bias", "output.dense.bias"),
        ("ffn_norm.weight", "output.LayerNorm.weight"),
        ("ffn_norm.bias", "output.LayerNorm.bias"),
    ],
    "llama": [
        ("attn_norm.weight", "input_layernorm.weight"),
        ("ffn_norm.weight", "post_attention_layernorm.weight"),
        *[(f"attn.{p}.{t}", f"self_attn.{p}.{t}")
          for p in ("q_proj", "k_proj", "v_proj", "o_proj") for t in ("weight", "bias")],
        *[(f"ffn.{p}.{t}", f"mlp.{p}.{t}")
          for p in ("gate_proj", "up_proj", "down_proj") for t in ("weight", "bias")],
    ],
}
# GPT-2's Conv1D tensors: (our name, their name), weights transposed on the way
_GPT2_CONV = [
    ("attn.o_proj", "attn.c_proj"), ("ffn.up_proj", "mlp.c_fc"), ("ffn.down_proj", "mlp.c_proj"),
]


def _family(config) -> str:
    family = getattr(config, "model_type", config)
    if family not in FAMILIES:
        raise ValueError(f"config: expected a model_type in {FAMILIES}, got {family!r}")
    return family


def block_config_from_hf(config) -> BlockConfig:
    """Our BlockConfig for one layer of a transformers GPT2Config, BertConfig or LlamaConfig."""
    family = _family(config)
    if family == "gpt2":
        if config.scale_attn_by_inverse_layer_idx or config.reorder_and_upcast_attn:
            raise ValueError("config: GPT-2 attention variants (scale_attn_by_inverse_layer_idx, "
                             "reorder_and_upcast_attn) are not supported")
        if not getattr(config, "scale_attn_weights", True):
            raise ValueError("config.scale_attn_weights: got False (scores not divided by "
                             "sqrt(head_dim)); one block supports only the standard scaled "
                             "attention (models.hf.gpt_from_hf converts whole models with it)")
        if config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"config.activation_function: expected 'gelu_new', "
                             f"got {config.activation_function!r}")
        return BlockConfig(
            d_model=config.n_embd, n_heads=config.n_head, d_ff=config.n_inner or 4 * config.n_embd,
            activation="gelu_tanh", norm="layernorm", norm_eps=config.layer_norm_epsilon,
            prenorm=True, bias=True, causal=True,
        )
    if family == "bert":
        if config.hidden_act != "gelu":
            raise ValueError(f"config.hidden_act: expected 'gelu', got {config.hidden_act!r}")
        return BlockConfig(
            d_model=config.hidden_size, n_heads=config.num_attention_heads,
            d_ff=config.intermediate_size, activation="gelu", norm="layernorm",
            norm_eps=config.layer_norm_eps, prenorm=False, bias=True, causal=False,
        )
    if config.hidden_act != "silu":
        raise ValueError(f"config.hidden_act: expected 'silu', got {config.hidden_act!r}")
    if config.attention_bias != config.mlp_bias:
        raise ValueError("config: attention_bias and mlp_bias must agree for one BlockConfig")
    return BlockConfig(
        d_model=config.hidden_size, n_heads=config.num_attention_heads,
        n_kv_heads=config.num_key_value_heads,
        head_dim=getattr(config, "head_dim", None), d_ff=config.intermediate_size,
        activation="silu", gated=True, norm="rmsnorm", norm_eps=config.rms_norm_eps,
        prenorm=True, bias=config.attention_bias, causal=True,
    )


def state_dict_from_hf(sd: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """A transformers layer's state dict, renamed (and for GPT-2 transposed and split) for ours."""
    family = _family(family)
    out = {ours: sd[theirs] for ours, theirs in _RENAMES[family] if theirs in sd}
    if family == "gpt2":
        for ours, theirs in _GPT2_CONV:
            out[f"{ours}.weight"] = sd[f"{theirs}.weight"].t().contiguous()
            out[f"{ours}.bias"] = sd[f"{theirs}.bias"]
        w, b = sd["attn.c_attn.weight"].t(), sd["attn.c_attn.bias"]
        for name, wi, bi in zip(("q", "k", "v"), w.chunk(3, 0), b.chunk(3, 0)):
            out[f"attn.{name}_proj.weight"] = wi.contiguous()
            out[f"attn.{name}_proj.bias"] = bi
    return out


def hf_state_dict(block: TransformerBlock, family: str) -> dict[str, torch.Tensor]:
    """Our block's weights named and laid out as the transformers layer of ``family`` wants."""
    family = _family(family)
    sd = block.state_dict()
    out = {theirs: sd[ours] for ours, theirs in _RENAMES[family] if ours in sd}
    if family == "gpt2":
        for ours, theirs in _GPT2_CONV:
            out[f"{theirs}.weight"] = sd[f"{ours}.weight"].t().contiguous()
            out[f"{theirs}.bias"] = sd[f"{ours}.bias"]
        qkv = [sd[f"attn.{n}_proj.weight"] for n in "qkv"]
        out["attn.c_attn.weight"] = torch.cat(qkv, 0).t().contiguous()
        out["attn.c_attn.bias"] = torch.cat([sd[f"attn.{n}_proj.bias"] for n in "qkv"], 0)
    return out


def block_from_hf(layer: nn.Module, config, rotary: Rotary | None = None) -> TransformerBlock:
    """Our TransformerBlock with the weights of a GPT2Block, BertLayer or LlamaDecoderLayer.

    For Llama pass ``rotary(q, k, positions)`` (half-split RoPE) or give it at call time.
    """
    block = TransformerBlock(block_config_from_hf(config), rotary=rotary)
    sd = state_dict_from_hf(layer.state_dict(), _family(config))
    block.load_state_dict(sd, strict=True)
    return block.to(next(layer.parameters()).dtype)


__all__ = ["FAMILIES", "block_config_from_hf", "block_from_hf", "hf_state_dict",
           "state_dict_from_hf"]
