"""Parameter-efficient fine-tuning and compression (chapter 16): train a few new parameters next to
a frozen model, or make the model smaller.

- :mod:`~roadmap_lib.peft.lora`: LoRA, rsLoRA and DoRA on linear layers picked by name;
- :mod:`~roadmap_lib.peft.qlora`: QLoRA, LoRA on a base frozen in NF4, and merging into it;
- :mod:`~roadmap_lib.peft.ia3`: IA³ vectors rescaling keys, values and the FFN activation;
- :mod:`~roadmap_lib.peft.adapters`: Houlsby bottleneck adapters after a sublayer;
- :mod:`~roadmap_lib.peft.prompt`: prompt tuning and prefix tuning;
- :mod:`~roadmap_lib.peft.convert`: adapter weights to and from peft's state dicts;
- :mod:`~roadmap_lib.peft.pruning`: magnitude, structured (heads, neurons) and 2:4 pruning;
- :mod:`~roadmap_lib.peft.soups`: model soups.

Each works on our models and on transformers' (``GPT2LMHeadModel``, ``LlamaForCausalLM``, ...)
and is tested against the ``peft`` library on the same weights (``tests/test_peft_*.py``). This
package is ``roadmap_lib.peft``; the ``peft`` distribution stays ``import peft``, which only the
tests use. LoRA wraps any layer with ``in_features``, ``out_features`` and ``dequantize()`` or
``dequantized_weight()`` (see :mod:`~roadmap_lib.peft._targets`); :mod:`~roadmap_lib.peft.qlora`
uses that hook with :mod:`roadmap_lib.quantization`'s NF4 layers.
"""

from roadmap_lib.peft._targets import (
    AdapterLayer,
    adapter_layers,
    find_modules,
    mark_only_adapters_trainable,
    merge_adapters,
    trainable_summary,
    unload,
    unmerge_adapters,
)
from roadmap_lib.peft.adapters import AdapterAfter, BottleneckAdapter, apply_adapters
from roadmap_lib.peft.convert import (
    adapter_grads,
    adapter_state_dict,
    from_peft_state_dict,
    load_adapter_state_dict,
    peft_config_kwargs,
    to_peft_state_dict,
)
from roadmap_lib.peft.ia3 import IA3Linear, apply_ia3, ia3_layers
from roadmap_lib.peft.lora import LoRAConfig, LoRALinear, apply_lora, lora_layers, lora_scaling
from roadmap_lib.peft.prompt import PrefixTuning, PromptTuning
from roadmap_lib.peft.pruning import (
    apply_masks,
    head_masks,
    magnitude_masks,
    neuron_masks,
    semi_structured_masks,
    sparsity,
)
from roadmap_lib.peft.qlora import apply_qlora, frozen_base_nbytes, merge_qlora
from roadmap_lib.peft.soups import average_state_dicts, greedy_soup, uniform_soup

__all__ = [
    "AdapterAfter",
    "AdapterLayer",
    "BottleneckAdapter",
    "IA3Linear",
    "LoRAConfig",
    "LoRALinear",
    "PrefixTuning",
    "PromptTuning",
    "adapter_grads",
    "adapter_layers",
    "adapter_state_dict",
    "apply_adapters",
    "apply_ia3",
    "apply_lora",
    "apply_masks",
    "apply_qlora",
    "average_state_dicts",
    "find_modules",
    "from_peft_state_dict",
    "frozen_base_nbytes",
    "greedy_soup",
    "head_masks",
    "ia3_layers",
    "load_adapter_state_dict",
    "lora_layers",
    "lora_scaling",
    "magnitude_masks",
    "mark_only_adapters_trainable",
    "merge_adapters",
    "merge_qlora",
    "neuron_masks",
    "peft_config_kwargs",
    "semi_structured_masks",
    "sparsity",
    "to_peft_state_dict",
    "trainable_summary",
    "uniform_soup",
    "unload",
    "unmerge_adapters",
]
