"""Adapter weights both ways between our adapters and peft's ``get_peft_model_state_dict``.

peft names a LoRA layer's tensors ``base_model.model.<module>.lora_A.weight`` (r, in),
``...lora_B.weight`` (out, r) and, with DoRA, ``...lora_magnitude_vector`` (out,); an IA³
vector ``base_model.model.<module>.ia3_l``, shaped (out, 1), or (1, in) for a feed-forward
module; prompt and prefix tuning a single ``prompt_embeddings``, (n, d_model) and
(n, layers·2·kv_heads·head_dim). A and B keep ``nn.Linear``'s layout even on GPT-2's transposed
``Conv1D``, so they copy as they are.

``family`` says how our module names map to transformers':

- ``None``: our adapters wrap a transformers model directly; the names are the same.
- ``"gpt2"`` / ``"llama"``: our :class:`~roadmap_lib.models.GPT` / ``Llama`` (converted with
  :mod:`roadmap_lib.models.hf`) against ``GPT2LMHeadModel`` / ``LlamaForCausalLM``:
  ``blocks.i.attn.q_proj`` <-> ``transformer.h.i.attn.c_attn`` (part 1 of 3) or
  ``model.layers.i.self_attn.q_proj``, and so on.

GPT-2 fuses q, k, v into one ``c_attn``; peft puts one LoRA on it, ``ΔW = B A`` with B (3d, r).
That is exactly three LoRAs on our q, k, v that *share* A and split B in three row blocks, so
loading from peft copies A three times (and splits B, DoRA's magnitude and IA³'s vector). The way
back needs the three A's equal (true until they are trained apart: their gradients differ, the
fused A's gradient is their sum); otherwise the update has rank up to 3r and there is no rank-r
peft equivalent, so :func:`to_peft_state_dict` refuses (merge the adapter instead).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from roadmap_lib.peft._targets import adapter_layers
from roadmap_lib.peft.adapters import AdapterAfter
from roadmap_lib.peft.ia3 import IA3Linear
from roadmap_lib.peft.lora import LoRALinear
from roadmap_lib.peft.prompt import PrefixTuning, PromptTuning, from_flat_prefix, to_flat_prefix

PEFT_PREFIX = "base_model.model."
FAMILIES = (None, "gpt2", "llama")

# our per-block module -> (transformers' module, part, number of parts it is fused from)
_LAYERS = {"gpt2": "transformer.h", "llama": "model.layers"}
_SUBLAYERS = {
    "gpt2": {
        "attn.q_proj": ("attn.c_attn", 0, 3), "attn.k_proj": ("attn.c_attn", 1, 3),
        "attn.v_proj": ("attn.c_attn", 2, 3), "attn.o_proj": ("attn.c_proj", 0, 1),
        "ffn.up_proj": ("mlp.c_fc", 0, 1), "ffn.down_proj": ("mlp.c_proj", 0, 1),
    },
    "llama": {
        **{f"attn.{p}": (f"self_attn.{p}", 0, 1) for p in ("q_proj", "k_proj", "v_proj", "o_proj")},
        **{f"ffn.{p}": (f"mlp.{p}", 0, 1) for p in ("gate_proj", "up_proj", "down_proj")},
    },
}


def _check_family(family) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")


def hf_module_name(name: str, family: str | None) -> tuple[str, int, int]:
    """Our module's dotted name -> (transformers' name, part, parts): ``blocks.0.attn.k_proj``
    with ``"gpt2"`` -> ``("transformer.h.0.attn.c_attn", 1, 3)``."""
    _check_family(family)
    if family is None or name == "lm_head":
        return name, 0, 1
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if m is None or m[2] not in _SUBLAYERS[family]:
        raise ValueError(
            f"family: our module {name!r} has no counterpart in transformers' {family} models; "
            f"expected blocks.N.{{{', '.join(_SUBLAYERS[family])}}} or lm_head"
        )
    theirs, part, parts = _SUBLAYERS[family][m[2]]
    return f"{_LAYERS[family]}.{m[1]}.{theirs}", part, parts


# --------------------------------------------------------------------- our own state dict


def _adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    params = [p for layer in adapter_layers(model).values() for p in layer.adapter_parameters()]
    for m in model.modules():
        if isinstance(m, (PromptTuning, PrefixTuning)):
            params += [p for n, p in m.named_parameters() if not n.startswith("model.")]
    return params


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors, under their names in ``model`` (detached)."""
    ids = {id(p) for p in _adapter_parameters(model)}
    return {n: p.detach() for n, p in model.named_parameters() if id(p) in ids}


def adapter_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' gradients, keyed like :func:`adapter_state_dict` (zeros where none)."""
    ids = {id(p) for p in _adapter_parameters(model)}
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p))
            for n, p in model.named_parameters() if id(p) in ids}


def load_adapter_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (keys as :func:`adapter_state_dict` gives them) into the adapters."""
    params = {n: p for n, p in model.named_parameters()
              if id(p) in {id(q) for q in _adapter_parameters(model)}}
    _check_keys(set(state), set(params), "state")
    with torch.no_grad():
        for n, p in params.items():
            if state[n].shape != p.shape:
                raise ValueError(f"state[{n!r}]: expected shape {tuple(p.shape)}, "
                                 f"got {tuple(state[n].shape)}")
            p.copy_(state[n])


def _check_keys(got: set[str], want: set[str], what: str) -> None:
    missing, unexpected = sorted(want - got), sorted(got - want)
    if missing or unexpected:
        raise ValueError(f"{what}: keys do not match the model's adapters: missing {missing}, "
                         f"unexpected {unexpected}")


# ------------------------------------------------------------------------------ with peft


def _prompt_module(model: nn.Module):
    return model if isinstance(model, (PromptTuning, PrefixTuning)) else None


def _groups(model: nn.Module, family) -> tuple[type, dict[str, list[tuple[str, nn.Module]]]]:
    """The model's LoRA or IA³ layers grouped by the transformers module they map to, each group
    in part order."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(f"model: {type(model).__name__} has no LoRA, IA³, prompt or prefix "
                         "adapter to convert")
    kinds = {type(layer) for layer in layers.values()}
    if AdapterAfter in kinds:
        raise TypeError("model: peft has no bottleneck (Houlsby) adapter to convert to")
    if len(kinds) > 1:
        raise ValueError(f"model: expected one kind of adapter for peft, got "
                         f"{sorted(k.__name__ for k in kinds)}")
    groups: dict[str, list] = {}
    for name, layer in layers.items():
        theirs, part, parts = hf_module_name(name, family)
        groups.setdefault(theirs, [None] * parts)[part] = (name, layer)
    for theirs, members in groups.items():
        if any(m is None for m in members):
            have = [m[0] for m in members if m is not None]
            raise ValueError(
                f"model: transformers fuses {len(members)} projections into {theirs!r}; peft "
                f"adapts all of them or none, but only {have} have adapters "
                "(target q_proj, k_proj and v_proj together)"
            )
        first = members[0][1]
        for _, layer in members[1:]:
            if kinds == {LoRALinear}:
                same = (layer.r, layer.scaling, layer.use_dora) == (
                    first.r, first.scaling, first.use_dora)
            else:
                same = layer.feedforward == first.feedforward
            if not same:
                raise ValueError(f"model: the layers fused into {theirs!r} have different "
                                 "adapter settings")
    return kinds.pop(), groups


def to_peft_state_dict(model: nn.Module, family: str | None = None, *,
                       grads: bool = False) -> dict[str, torch.Tensor]:
    """Our adapters as peft's ``get_peft_model_state_dict`` names and shapes them.

    With ``grads``, the adapters' gradients instead of their values, named like peft's
    parameters' (the shared A of a fused layer gets the sum of the parts' gradients).
    """
    _check_family(family)
    ours = adapter_grads(model) if grads else adapter_state_dict(model)
    prompt = _prompt_module(model)
    if isinstance(prompt, PromptTuning):
        return {"prompt_embeddings": ours["prompt"].clone()}
    if isinstance(prompt, PrefixTuning):
        if prompt.prefix is None:
            if grads:
                raise ValueError("grads: a prefix computed by an MLP (projection_dim) converts "
                                 "only as values (peft saves the computed prefix)")
            with torch.no_grad():
                return {"prompt_embeddings": to_flat_prefix(prompt.get_prefix()).clone()}
        return {"prompt_embeddings": to_flat_prefix(ours["prefix"]).clone()}
    kind, groups = _groups(model, family)
    out = {}
    for theirs, members in groups.items():
        key = PEFT_PREFIX + theirs
        if kind is LoRALinear:
            a = [ours[f"{name}.lora_A"] for name, _ in members]
            if grads:
                a = [sum(a)]
            elif any(not torch.equal(a[0], x) for x in a[1:]):
                raise ValueError(
                    f"model: the LoRAs fused into {theirs!r} ({[n for n, _ in members]}) have "
                    "different A matrices; peft's single LoRA on the fused layer shares one A, "
                    "so this adapter has no rank-r peft equivalent (merge it instead)"
                )
            out[f"{key}.lora_A.weight"] = a[0].clone()
            out[f"{key}.lora_B.weight"] = torch.cat([ours[f"{n}.lora_B"] for n, _ in members])
            if members[0][1].use_dora:
                out[f"{key}.lora_magnitude_vector"] = torch.cat(
                    [ours[f"{n}.lora_magnitude"] for n, _ in members])
        else:
            vec = torch.cat([ours[f"{n}.ia3"] for n, _ in members])
            out[f"{key}.ia3_l"] = vec.view(1, -1) if members[0][1].feedforward else vec.view(-1, 1)
    return out


def from_peft_state_dict(model: nn.Module, state: dict[str, torch.Tensor],
                         family: str | None = None) -> None:
    """Load a peft adapter (``get_peft_model_state_dict`` keys) into our adapted ``model``, in
    place. Every key must be used and every adapter tensor filled, with matching shapes."""
    _check_family(family)
    if not isinstance(state, dict):
        raise TypeError(f"state: expected a dict of tensors, got {type(state).__name__}")
    prompt = _prompt_module(model)
    if prompt is not None:
        _check_keys(set(state), {"prompt_embeddings"}, "state")
        flat = state["prompt_embeddings"]
        with torch.no_grad():
            if isinstance(prompt, PromptTuning):
                if flat.shape != prompt.prompt.shape:
                    raise ValueError(f"state['prompt_embeddings']: expected shape "
                                     f"{tuple(prompt.prompt.shape)}, got {tuple(flat.shape)}")
                prompt.prompt.copy_(flat)
            elif prompt.prefix is None:
                raise ValueError("model: its prefix is computed by an MLP (projection_dim); "
                                 "peft saves only the computed prefix, load it into a "
                                 "PrefixTuning without projection_dim")
            else:
                prompt.prefix.copy_(from_flat_prefix(flat, prompt.shape))
        return
    kind, groups = _groups(model, family)
    ours: dict[str, torch.Tensor] = {}
    want = set()
    for theirs, members in groups.items():
        key = PEFT_PREFIX + theirs
        parts = len(members)
        if kind is LoRALinear:
            names = ["lora_A.weight", "lora_B.weight"]
            names += ["lora_magnitude_vector"] if members[0][1].use_dora else []
            want |= {f"{key}.{n}" for n in names}
            if not all(f"{key}.{n}" in state for n in names):
                continue  # reported below with every other missing key
            b = state[f"{key}.lora_B.weight"].chunk(parts)
            mag = (state[f"{key}.lora_magnitude_vector"].chunk(parts)
                   if members[0][1].use_dora else [None] * parts)
            for (name, _), bi, mi in zip(members, b, mag):
                ours[f"{name}.lora_A"] = state[f"{key}.lora_A.weight"]
                ours[f"{name}.lora_B"] = bi
                if mi is not None:
                    ours[f"{name}.lora_magnitude"] = mi
        else:
            want.add(f"{key}.ia3_l")
            if f"{key}.ia3_l" in state:
                for (name, _), vi in zip(members, state[f"{key}.ia3_l"].flatten().chunk(parts)):
                    ours[f"{name}.ia3"] = vi
    _check_keys(set(state), want, "state")
    load_adapter_state_dict(model, ours)


def peft_config_kwargs(model: nn.Module, family: str | None = None) -> dict:
    """Keyword arguments for the peft config that matches our adapted ``model``
    (``LoraConfig``, ``IA3Config``, ``PromptTuningConfig``, ``PrefixTuningConfig``)."""
    prompt = _prompt_module(model)
    if prompt is not None:
        kw = {"num_virtual_tokens": prompt.n}
        if isinstance(prompt, PrefixTuning) and prompt.prefix is None:
            kw |= {"prefix_projection": True, "encoder_hidden_size": prompt.proj[0].out_features}
        return kw
    kind, groups = _groups(model, family)
    first = next(iter(groups.values()))[0][1]
    if kind is IA3Linear:
        return {"target_modules": sorted(groups), "feedforward_modules": sorted(
            t for t, members in groups.items() if members[0][1].feedforward)}
    settings = {(m[0][1].r, m[0][1].alpha, m[0][1].use_rslora, m[0][1].use_dora)
                for m in groups.values()}
    if len(settings) > 1:
        raise ValueError(f"model: its LoRA layers differ in (r, alpha, rslora, dora): {settings}; "
                         "peft needs rank_pattern/alpha_pattern for that")
    dropout = first.dropout.p if isinstance(first.dropout, nn.Dropout) else 0.0
    return {"target_modules": sorted(groups), "r": first.r, "lora_alpha": first.alpha,
            "lora_dropout": dropout, "use_rslora": first.use_rslora, "use_dora": first.use_dora}


__all__ = [
    "FAMILIES",
    "PEFT_PREFIX",
    "adapter_grads",
    "adapter_state_dict",
    "from_peft_state_dict",
    "hf_module_name",
    "load_adapter_state_dict",
    "peft_config_kwargs",
    "to_peft_state_dict",
]
