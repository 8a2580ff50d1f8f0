"""roadmap_lib.objectives.prefix_lm_mask: the prefix LM's attention mask (chapter 10)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.attention import causal_mask
from roadmap_lib.layers import BlockConfig, TransformerBlock
from roadmap_lib.objectives import prefix_lm_mask


def explicit(prefix_lengths, seq_len):
    """The mask written out position by position."""
    out = torch.zeros(len(prefix_lengths), 1, seq_len, seq_len, dtype=torch.bool)
    for b, p in enumerate(prefix_lengths):
        for i in range(seq_len):
            for j in range(seq_len):
                in_prefix = i < p and j < p
                out[b, 0, i, j] = in_prefix or (i >= p and j <= i)
    return out


def test_matches_the_explicit_construction():
    lengths = [0, 1, 3, 5, 6]
    assert torch.equal(prefix_lm_mask(torch.tensor(lengths), 6), explicit(lengths, 6))


def test_ends_are_causal_and_bidirectional():
    m = prefix_lm_mask(torch.tensor([0, 7]), 7)
    assert torch.equal(m[0, 0], causal_mask(7))
    assert m[1, 0].all()


@settings(max_examples=60, deadline=None)
@given(seq_len=st.integers(1, 24), data=st.data())
def test_properties(seq_len, data):
    p = data.draw(st.integers(0, seq_len))
    m = prefix_lm_mask(torch.tensor([p]), seq_len)[0, 0]
    i = torch.arange(seq_len)[:, None]
    j = torch.arange(seq_len)[None, :]
    target = (i >= p).expand(seq_len, seq_len)
    assert not (m & target & (j > i)).any(), "a target position looks ahead"
    assert m[:p, :p].all(), "a prefix position does not see the whole prefix"
    assert not m[:p, p:].any(), "a prefix position sees a target"
    assert m.diagonal().all()  # every row attends to something (no empty softmax row)


def test_a_block_under_the_mask_leaks_nothing():
    """Behaviour through real attention: changing a target token changes no earlier position's
    output; changing a prefix token changes every position's output."""
    torch.manual_seed(0)
    block = TransformerBlock(BlockConfig(d_model=16, n_heads=2, causal=False)).eval()
    seq, p = 8, 3
    mask = prefix_lm_mask(torch.tensor([p]), seq)
    x = torch.randn(1, seq, 16)
    base = block(x, attn_mask=mask)
    y = x.clone()
    y[0, 5] += torch.randn(16)  # a target token (a random change: LayerNorm would undo a constant shift)
    out = block(y, attn_mask=mask)
    change = (out - base)[0].abs().amax(-1)
    assert (change[:5] == 0).all() and (change[5:] > 1e-4).all()
    z = x.clone()
    z[0, 2] += torch.randn(16)  # the last prefix token
    out = block(z, attn_mask=mask)
    assert ((out - base)[0].abs().amax(-1) > 1e-4).all()


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="seq_len: expected"):
        prefix_lm_mask(torch.tensor([1]), 0)
    with pytest.raises(ValueError, match="prefix_lengths: expected values in"):
        prefix_lm_mask(torch.tensor([9]), 8)
    with pytest.raises(ValueError, match="prefix_lengths: expected a \\(batch,\\) integer"):
        prefix_lm_mask(torch.tensor([1.5]), 8)
