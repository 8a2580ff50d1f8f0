"""The Vision Transformer (ViT, Dosovitskiy et al. 2021): an image read as a sequence of patches.

    image (batch, C, H, W) -> patches (batch, N, C·p·p)        (roadmap_lib.vision.patchify)
        -> linear "patch embedding" to d_model                 (= a Conv2d with kernel = stride = p)
        -> prepend a learned [CLS] vector, add learned position embeddings (1 + N of them)
        -> n_layers pre-norm encoder blocks (full self-attention, exact GELU) -> LayerNorm
    classification: hidden[:, 0] (the [CLS] position) -> linear -> class logits

Nothing in the encoder knows it is looking at an image: the only 2-D knowledge is in how the
patches are cut; the position embeddings have to *learn* which patches are neighbours.

``vit_to_hf`` / ``vit_from_hf`` convert weights both ways with transformers'
``ViTForImageClassification`` (built from a config, random weights); the logits agree to float
rounding (tests/test_models_vit.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..layers import BlockConfig, EncoderBlock, LayerNorm
from ..vision import patchify


@dataclass
class ViTConfig:
    image_height: int = 8
    image_width: int = 8
    patch_size: int = 2
    channels: int = 1
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None  # None: 4 * d_model
    num_labels: int = 10
    norm_eps: float = 1e-12  # transformers' ViT default
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_height", "image_width", "patch_size", "channels", "d_model", "n_layers",
                     "n_heads", "num_labels"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if self.image_height % self.patch_size or self.image_width % self.patch_size:
            raise ValueError(f"patch_size: expected a divisor of the image size "
                             f"{self.image_height}x{self.image_width}, got {self.patch_size}")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model

    @property
    def n_patches(self) -> int:
        return (self.image_height // self.patch_size) * (self.image_width // self.patch_size)

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size**2

    def block_config(self) -> BlockConfig:
        return BlockConfig(d_model=self.d_model, n_heads=self.n_heads, d_ff=self.d_ff, activation="gelu",
                           norm="layernorm", norm_eps=self.norm_eps, prenorm=True, bias=True,
                           dropout=self.dropout, attn_dropout=self.dropout, causal=False)

    def to_dict(self) -> dict:
        return asdict(self)


class ViTEncoder(nn.Module):
    """images (batch, C, H, W) -> hidden states (batch, 1 + n_patches, d_model), [CLS] first."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.patch_embed = nn.Linear(c.patch_dim, c.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos_emb = nn.Parameter(torch.zeros(1, 1 + c.n_patches, c.d_model))
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(c.block_config()) for _ in range(c.n_layers))
        self.norm = LayerNorm(c.d_model, c.norm_eps)
        for p in (self.cls_token, self.pos_emb):
            nn.init.trunc_normal_(p, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        c = self.config
        want = (c.channels, c.image_height, c.image_width)
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(f"images: expected (batch, {', '.join(map(str, want))}), got "
                             f"{tuple(getattr(images, 'shape', ()))}")
        x = self.patch_embed(patchify(images, c.patch_size))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.drop(x + self.pos_emb)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The attention weights of every layer: a list of (batch, heads, 1 + N, 1 + N)."""
        x, maps = self.embed(images), []
        for block in self.blocks:
            _, w = block.attn(block.attn_norm(x), return_weights=True)
            maps.append(w)
            x = block(x)
        return maps


class ViTForImageClassification(nn.Module):
    """images (batch, C, H, W) -> class logits (batch, num_labels), from the [CLS] position."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.vit = ViTEncoder(config)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.vit(images)[:, 0])


# ---- transformers' ViTForImageClassification, both ways -----------------------------------------

#: our block's parameter names -> transformers' (5.x) ViTLayer names
_LAYER = {
    "attn_norm": "layernorm_before", "ffn_norm": "layernorm_after",
    "attn.q_proj": "attention.q_proj", "attn.k_proj": "attention.k_proj",
    "attn.v_proj": "attention.v_proj", "attn.o_proj": "attention.o_proj",
    "ffn.up_proj": "mlp.fc1", "ffn.down_proj": "mlp.fc2",
}


def vit_config_to_hf(config: ViTConfig):
    """transformers' ``ViTConfig`` for ours (dropout off: we compare in eval mode)."""
    from transformers import ViTConfig as HFViTConfig

    return HFViTConfig(image_size=(config.image_height, config.image_width), patch_size=config.patch_size,
                       num_channels=config.channels, hidden_size=config.d_model,
                       num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
                       intermediate_size=config.d_ff, num_labels=config.num_labels, hidden_act="gelu",
                       layer_norm_eps=config.norm_eps, hidden_dropout_prob=config.dropout,
                       attention_probs_dropout_prob=config.dropout, qkv_bias=True)


def vit_config_from_hf(hf_config) -> ViTConfig:
    """Our ViTConfig for transformers' ``ViTConfig``; raises ``ValueError`` for what we lack."""
    if getattr(hf_config, "model_type", None) != "vit":
        raise ValueError(f"hf_config: expected a ViTConfig, got model_type="
                         f"{getattr(hf_config, 'model_type', None)!r}")
    if hf_config.hidden_act != "gelu":
        raise ValueError(f"hf_config.hidden_act: expected 'gelu' (exact GELU), got {hf_config.hidden_act!r}")
    if not getattr(hf_config, "qkv_bias", True):
        raise ValueError("hf_config.qkv_bias: expected True, our attention projections have biases")
    size = hf_config.image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return ViTConfig(image_height=h, image_width=w, patch_size=hf_config.patch_size,
                     channels=hf_config.num_channels, d_model=hf_config.hidden_size,
                     n_layers=hf_config.num_hidden_layers, n_heads=hf_config.num_attention_heads,
                     d_ff=hf_config.intermediate_size, num_labels=hf_config.num_labels,
                     norm_eps=hf_config.layer_norm_eps, dropout=hf_config.hidden_dropout_prob)


def vit_to_hf(model: ViTForImageClassification) -> dict[str, torch.Tensor]:
    """Our model's weights under transformers' ``ViTForImageClassification`` names."""
    if not isinstance(model, ViTForImageClassification):
        raise TypeError(f"model: expected a ViTForImageClassification, got {type(model).__name__}")
    c, sd = model.config, model.state_dict()
    p = c.patch_size
    out = {
        "vit.embeddings.cls_token": sd["vit.cls_token"],
        "vit.embeddings.position_embeddings": sd["vit.pos_emb"],
        # a linear layer on (C, p, p)-flattened patches is a Conv2d with kernel = stride = p
        "vit.embeddings.patch_embeddings.projection.weight":
            sd["vit.patch_embed.weight"].reshape(c.d_model, c.channels, p, p),
        "vit.embeddings.patch_embeddings.projection.bias": sd["vit.patch_embed.bias"],
        "vit.layernorm.weight": sd["vit.norm.weight"], "vit.layernorm.bias": sd["vit.norm.bias"],
        "classifier.weight": sd["classifier.weight"], "classifier.bias": sd["classifier.bias"],
    }
    for i in range(c.n_layers):
        for ours, theirs in _LAYER.items():
            for kind in ("weight", "bias"):
                out[f"vit.layers.{i}.{theirs}.{kind}"] = sd[f"vit.blocks.{i}.{ours}.{kind}"]
    return {k: v.detach().clone() for k, v in out.items()}


def vit_from_hf(hf_model) -> ViTForImageClassification:
    """Our ViTForImageClassification with the weights of transformers' one."""
    config = vit_config_from_hf(hf_model.config)
    model = ViTForImageClassification(config)
    names = vit_to_hf(model)  # our layout, their names: invert it
    theirs = hf_model.state_dict()
    missing = sorted(set(names) - set(theirs))
    if missing:
        raise ValueError(f"hf_model: its state dict lacks {missing[:3]} (a ViTForImageClassification "
                         f"of transformers >= 5 was expected)")
    ours_sd = model.state_dict()
    inverse = {"vit.cls_token": "vit.embeddings.cls_token", "vit.pos_emb": "vit.embeddings.position_embeddings",
               "vit.patch_embed.weight": "vit.embeddings.patch_embeddings.projection.weight",
               "vit.patch_embed.bias": "vit.embeddings.patch_embeddings.projection.bias",
               "vit.norm.weight": "vit.layernorm.weight", "vit.norm.bias": "vit.layernorm.bias",
               "classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"}
    for i in range(config.n_layers):
        for ours, their in _LAYER.items():
            for kind in ("weight", "bias"):
                inverse[f"vit.blocks.{i}.{ours}.{kind}"] = f"vit.layers.{i}.{their}.{kind}"
    new = {k: theirs[inverse[k]].reshape(ours_sd[k].shape) for k in ours_sd}
    model.load_state_dict(new)
    return model


__all__ = ["ViTConfig", "ViTEncoder", "ViTForImageClassification", "vit_config_from_hf",
           "vit_config_to_hf", "vit_from_hf", "vit_to_hf"]
