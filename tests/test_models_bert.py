"""BERT against transformers' BertForMaskedLM / BertForSequenceClassification, same random weights."""

import pytest
import torch
from transformers import BertConfig as HFBertConfig
from transformers import BertForMaskedLM as HFMaskedLM
from transformers import BertForSequenceClassification as HFClassifier
from transformers import BertForTokenClassification as HFTagger

from roadmap_lib.models import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from roadmap_lib.models.hf import bert_from_hf, bert_to_hf


def _config(**kw):
    cfg = dict(vocab_size=71, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=96, max_position_embeddings=40, initializer_range=0.2, num_labels=3)
    return HFBertConfig(**{**cfg, **kw})


def _perturb(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 71, (3, 40), generator=g)
    types = torch.randint(0, 2, (3, 40), generator=g)
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, 30:] = 0  # padding in one row
    return ids, types, mask


@pytest.mark.parametrize("cls", [HFMaskedLM, HFClassifier, HFTagger])
def test_logits_match_transformers(cls):
    torch.manual_seed(0)
    hf = _perturb(cls(_config()))
    ours = bert_from_hf(hf)
    ids, types, mask = _inputs()
    with torch.no_grad():
        got = ours(ids, types, mask)
        want = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
    if cls in (HFMaskedLM, HFTagger):  # padded positions' outputs are not meaningful; compare real tokens
        got, want = got[mask.bool()], want[mask.bool()]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "cls", [BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification])
def test_roundtrip(cls):
    torch.manual_seed(0)
    ours = cls(BertConfig(vocab_size=71, context_length=40, d_model=32, n_layers=2, n_heads=4,
                          dropout=0.0, num_labels=3)).eval()
    hf = bert_to_hf(ours)
    ids, types, mask = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, types), hf(input_ids=ids, token_type_ids=types).logits,
                                   atol=1e-5, rtol=0)
    back = bert_from_hf(hf)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k


def test_mlm_head_tied_and_context_error():
    m = BertForMaskedLM(BertConfig(vocab_size=20, context_length=8, d_model=16, n_layers=1, n_heads=2))
    assert m.mlm_out.weight is m.bert.tok_emb.weight
    with pytest.raises(ValueError, match="exceeds the model's context length 8"):
        m(torch.zeros(1, 9, dtype=torch.long))
