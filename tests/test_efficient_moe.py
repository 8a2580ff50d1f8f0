"""Sparse MoE equals transformers' MixtralSparseMoeBlock; the load-balancing loss equals
transformers' load_balancing_loss_func; capacity drops what overflows."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.efficient.moe import (
    SparseMoE,
    capacity_keep,
    expert_capacity,
    expert_utilisation,
    load_balancing_loss,
    router_z_loss,
    top_k_route,
)


@pytest.fixture(scope="module")
def mixtral():
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    torch.manual_seed(0)
    block = MixtralSparseMoeBlock(MixtralConfig(hidden_size=24, intermediate_size=40, num_local_experts=6,
                                                num_experts_per_tok=2, router_jitter_noise=0.0))
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return block.eval()


def test_block_equals_mixtral(mixtral):
    ours = SparseMoE.from_hf(mixtral)
    x = torch.randn(3, 11, 24)
    with torch.no_grad():
        assert (ours(x) - mixtral(x)).abs().max() < 1e-5
        assert (ours.to_hf()(x) - mixtral(x)).abs().max() < 1e-5  # and back


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 60), E=st.integers(2, 9), k=st.integers(1, 3), seed=st.integers(0, 99))
def test_load_balancing_loss_equals_transformers(T, E, k, seed):
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    k = min(k, E)
    logits = torch.randn(T, E, generator=torch.Generator().manual_seed(seed))
    ours = load_balancing_loss(logits, k)
    theirs = load_balancing_loss_func((logits,), E, k)
    assert abs(float(ours) - float(theirs)) < 1e-5


def test_balance_extremes():
    E = 4
    uniform = torch.zeros(8, E)  # every expert equally likely: P_i = 1/E
    assert abs(float(load_balancing_loss(uniform, 1)) - 1.0) < 1e-6
    collapsed = torch.zeros(8, E)
    collapsed[:, 0] = 50.0  # all tokens to expert 0 with probability ~1
    assert abs(float(load_balancing_loss(collapsed, 1)) - E) < 1e-3


def test_z_loss():
    logits = torch.tensor([[0.0, 0.0], [3.0, -1.0]])
    want = (torch.log(torch.tensor(2.0)) ** 2 + torch.logsumexp(logits[1], 0) ** 2) / 2
    assert torch.allclose(router_z_loss(logits), want)


def test_capacity_drops_overflow_first_choice_first():
    experts = torch.tensor([[0, 1], [0, 2], [0, 1], [3, 0]])  # expert 0 wanted 4 times
    keep = capacity_keep(experts, 4, capacity=2)
    # first choices in token order: tokens 0, 1 take expert 0's two slots; token 2 and token 3's 2nd choice drop
    assert keep.tolist() == [[True, True], [True, True], [False, True], [True, False]]
    assert expert_capacity(tokens=16, n_experts=4, k=2, capacity_factor=1.25) == 10
    util = expert_utilisation(experts, 4, keep)
    assert torch.allclose(util, torch.tensor([2, 2, 1, 1]) / 8)


def test_capacity_block_passes_dropped_tokens_as_zero():
    torch.manual_seed(0)
    moe = SparseMoE(16, 32, n_experts=4, k=1, capacity_factor=0.5)
    x = torch.randn(1, 32, 16)
    with torch.no_grad():
        out = moe(x)
    dropped = ~moe.kept[:, 0]
    assert dropped.sum() >= 16  # capacity 4 per expert: at most 16 of 32 tokens fit
    assert out[0, dropped].abs().max() == 0 and out[0, ~dropped].abs().min() > 0


def test_route_weights():
    w, idx = top_k_route(torch.tensor([[1.0, 3.0, 2.0]]), 2)
    assert idx.tolist() == [[1, 2]]
    p = torch.softmax(torch.tensor([3.0, 2.0]), 0)
    assert torch.allclose(w[0], p)


def test_bad_input():
    with pytest.raises(ValueError, match=r"k: expected an int in \[1, 4\]"):
        top_k_route(torch.randn(3, 4), 5)
    with pytest.raises(ValueError, match="k: expected"):
        SparseMoE(8, 16, n_experts=2, k=3)
    with pytest.raises(ValueError, match="capacity_factor"):
        expert_capacity(10, 2, 1, 0)
    with pytest.raises(ValueError, match="x: expected"):
        SparseMoE(8, 16, n_experts=2)(torch.randn(4, 8))
    with pytest.raises(ValueError, match="router_logits"):
        load_balancing_loss(torch.randn(4), 1)
