"""Packing with a document-causal mask gives each document the logits it has alone."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.models.gpt import GPT, GPTConfig
from roadmap_lib.packing import (
    IGNORE,
    document_causal_mask,
    pack_documents,
    packed_gpt_logits,
    packed_lm_loss,
    pad_documents,
)


def _docs(seed=0, n=9, vocab=17, max_len=12):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_len + 1, (n,), generator=g).tolist()
    return [torch.randint(1, vocab, (L,), generator=g).tolist() for L in lengths]


def _gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=17, context_length=24, d_model=32, n_layers=2, n_heads=4)).eval()


def test_packed_logits_equal_each_document_alone():
    docs, model = _docs(), _gpt()
    batch = pack_documents(docs, seq_len=24)
    assert batch.ids.shape[0] < len(docs)  # several documents share rows
    logits = packed_gpt_logits(model, batch)
    for d, doc in enumerate(docs):
        alone = model(torch.tensor([doc]))[0]
        r, cols = (batch.doc_ids == d).nonzero(as_tuple=True)
        assert r.unique().numel() == 1 and torch.equal(batch.ids[r, cols], torch.tensor(doc))
        torch.testing.assert_close(logits[r, cols], alone, atol=1e-5, rtol=0)


def test_packed_loss_equals_unpacked_loss_and_padding_loss():
    docs, model = _docs(1), _gpt(1)
    total = sum(F.cross_entropy(model(torch.tensor([d]))[0, :-1], torch.tensor(d[1:]), reduction="sum")
                for d in docs)
    n = sum(len(d) - 1 for d in docs)
    packed, padded = pack_documents(docs, seq_len=24), pad_documents(docs)
    assert packed.n_targets == padded.n_targets == n
    torch.testing.assert_close(packed_lm_loss(model, packed), total / n, atol=1e-6, rtol=0)
    torch.testing.assert_close(packed_lm_loss(model, padded), total / n, atol=1e-6, rtol=0)
    assert packed.pad_fraction < padded.pad_fraction


def test_without_the_mask_documents_leak():
    """The plain causal mask lets later documents see earlier ones: the logits change."""
    docs, model = _docs(2), _gpt(2)
    batch = pack_documents(docs, seq_len=24)
    leaky = model.lm_head(model.ln_f(_run_blocks(model, batch)))
    masked = packed_gpt_logits(model, batch)
    later = batch.positions != torch.arange(24)  # tokens of a document that does not start its row
    assert (leaky - masked)[later].abs().max() > 1e-3


def _run_blocks(model, batch):
    x = model.wte(batch.ids) + model.wpe(batch.positions)
    for block in model.blocks:
        x = block(x)
    return x


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=10), st.integers(8, 20))
def test_pack_layout_properties(lengths, seq_len):
    docs = [[i + 1] * L for i, L in enumerate(lengths)]
    b = pack_documents(docs, seq_len)
    # every token exactly once, documents contiguous with positions 0..L-1, targets inside documents
    assert int((b.doc_ids >= 0).sum()) == sum(lengths)
    for d, L in enumerate(lengths):
        r, c = (b.doc_ids == d).nonzero(as_tuple=True)
        assert r.unique().numel() == 1 and torch.equal(c, c[0] + torch.arange(L))
        assert torch.equal(b.positions[r, c], torch.arange(L))
        assert (b.labels[r, c][:-1] == d + 1).all() and b.labels[r[-1], c[-1]] == IGNORE
    # first fit: no row could have taken a document that opened a later row
    assert b.pad_fraction <= pad_documents(docs, seq_len=seq_len).pad_fraction
    mask = document_causal_mask(b.doc_ids)[:, 0]
    same = b.doc_ids[:, :, None] == b.doc_ids[:, None, :]
    assert not (mask & ~same).any()  # never across documents
    assert not mask.triu(1).any()  # never the future
    assert mask.diagonal(dim1=1, dim2=2).all()  # every query sees at least itself


def test_bad_input():
    with pytest.raises(ValueError, match="docs\\[1\\]: expected at most seq_len=4"):
        pack_documents([[1, 2], [1, 2, 3, 4, 5]], seq_len=4)
    with pytest.raises(ValueError, match="docs\\[0\\]: expected at least 1 token"):
        pad_documents([[]])
    with pytest.raises(ValueError, match="seq_len: expected an int >= 1"):
        pack_documents([[1]], seq_len=0)
    with pytest.raises(ValueError, match="doc_ids: expected a \\(rows, seq\\) integer tensor"):
        document_causal_mask(torch.zeros(3))
    with pytest.raises(ValueError, match="exceed the model's context length"):
        packed_gpt_logits(_gpt(), pack_documents([[1] * 30], seq_len=30))
    with pytest.raises(TypeError, match="model: expected a roadmap_lib GPT"):
        packed_gpt_logits(torch.nn.Linear(2, 2), pack_documents([[1]], seq_len=4))
