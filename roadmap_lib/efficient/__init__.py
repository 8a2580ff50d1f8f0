"""Efficient sequence mixers and sparse layers (chapter 12).

- :mod:`.sparse`: sliding-window, dilated, Longformer and BigBird patterns, computed block-sparsely;
- :mod:`.linear`: kernelised (linear) attention in parallel, chunked and recurrent forms, FAVOR+;
- :mod:`.ssm`: S4D (convolution = recurrence), FFT long convolution, Mamba's selective scan
  (sequential and parallel);
- :mod:`.mamba`: the Mamba block and language model, converting to and from transformers;
- :mod:`.moe`: top-k routing, capacity and token dropping, load-balancing and z losses, a sparse MoE
  block with transformers' Mixtral layout.
"""

from .linear import (
    elu_feature,
    favor_attention,
    favor_features,
    linear_attention,
    linear_attention_chunked,
    linear_attention_recurrent,
    orthogonal_gaussian,
)
from .mamba import MambaConfig, MambaLM, MambaMixer, from_hf_mamba, to_hf_mamba
from .moe import (
    SparseMoE,
    expert_capacity,
    expert_utilisation,
    load_balancing_loss,
    router_z_loss,
    top_k_route,
)
from .sparse import SparsePattern, block_sparse_attention, dense_masked_attention
from .ssm import (
    S4D,
    causal_conv_direct,
    causal_conv_fft,
    s4d_kernel,
    s4d_recurrent,
    selective_scan,
)

__all__ = [
    "S4D", "MambaConfig", "MambaLM", "MambaMixer", "SparseMoE", "SparsePattern",
    "block_sparse_attention", "causal_conv_direct", "causal_conv_fft", "dense_masked_attention",
    "elu_feature", "expert_capacity", "expert_utilisation", "favor_attention", "favor_features",
    "from_hf_mamba", "linear_attention", "linear_attention_chunked", "linear_attention_recurrent",
    "load_balancing_loss", "orthogonal_gaussian", "router_z_loss", "s4d_kernel", "s4d_recurrent",
    "selective_scan", "to_hf_mamba", "top_k_route",
]
