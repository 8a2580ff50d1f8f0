"""roadmap_lib.qa against transformers' BertForQuestionAnswering, and span decoding by brute force."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.models.hf import bert_from_hf
from roadmap_lib.qa import BertForQuestionAnswering, best_span, span_loss


def _hf_qa(seed=0):
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForQuestionAnswering as HFQA

    torch.manual_seed(seed)
    cfg = HFBertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=24, hidden_act="gelu", num_labels=2)
    return HFQA(cfg).eval()


def _ours_from(hf) -> BertForQuestionAnswering:
    """Our model with the transformers model's weights: the encoder through bert_from_hf (read as a
    token classifier, whose layout it shares), the head copied."""
    from transformers import BertForTokenClassification as HFTagger

    tagger = HFTagger(hf.config)
    sd = {k.replace("qa_outputs", "classifier"): v for k, v in hf.state_dict().items()}
    tagger.load_state_dict(sd, strict=True)
    ours = BertForQuestionAnswering(bert_from_hf(tagger).config)
    ours.bert.load_state_dict(bert_from_hf(tagger).bert.state_dict())
    ours.qa_outputs.load_state_dict(hf.qa_outputs.state_dict())
    return ours.eval()


@pytest.mark.slow
def test_logits_and_loss_match_transformers():
    """Parity on random weights (slow only as the first test that imports transformers: ~15 s)."""
    hf = _hf_qa()
    ours = _ours_from(hf)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 50, (3, 24), generator=g)
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    mask = torch.ones_like(ids)
    mask[2, 20:] = 0
    # positions: ordinary, at the edges, and out of range (ignored by both: clamped to seq)
    start = torch.tensor([7, 0, 30])
    end = torch.tensor([9, 23, -5])
    with torch.no_grad():
        out = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, start_positions=start, end_positions=end)
        s, e = ours(ids, types, mask)
    torch.testing.assert_close(s, out.start_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(e, out.end_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(span_loss(out.start_logits, out.end_logits, start, end), out.loss)


def test_span_loss_is_the_mean_of_two_cross_entropies():
    s = torch.tensor([[2.0, 0.0, 0.0]])
    e = torch.tensor([[0.0, 0.0, 1.0]])
    start, end = torch.tensor([0]), torch.tensor([2])
    ce = lambda x, k: -torch.log_softmax(x[0], -1)[k]
    torch.testing.assert_close(span_loss(s, e, start, end), (ce(s, 0) + ce(e, 2)) / 2)


def test_span_loss_ignores_an_answer_outside_the_sequence():
    s = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    e = torch.randn(2, 5, generator=torch.Generator().manual_seed(1))
    both = span_loss(s, e, torch.tensor([1, 9]), torch.tensor([2, 9]))
    torch.testing.assert_close(both, span_loss(s[:1], e[:1], torch.tensor([1]), torch.tensor([2])))


def _brute(s, e, max_len, allowed):
    best, arg = None, None
    for i, j in itertools.product(range(len(s)), repeat=2):  # row-major: earliest start, then end
        if i <= j < i + max_len and allowed[i] and allowed[j]:
            score = s[i] + e[j]
            if best is None or score > best:
                best, arg = score, (i, j)
    return arg


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 6), st.integers(0, 10_000))
def test_best_span_is_the_brute_force_maximum(seq, max_len, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(-3, 4, (2, seq), generator=g).float()  # small integers: ties happen
    e = torch.randint(-3, 4, (2, seq), generator=g).float()
    allowed = torch.rand(2, seq, generator=g) < 0.7
    allowed[:, seed % seq] = True
    start, end = best_span(s, e, max_answer_len=max_len, allowed=allowed)
    for r in range(2):
        want = _brute(s[r].tolist(), e[r].tolist(), max_len, allowed[r].tolist())
        assert (start[r].item(), end[r].item()) == want
        assert start[r] <= end[r] < start[r] + max_len


def test_best_span_never_ends_before_it_starts():
    # the best start is after the best end: the independent argmaxes (3, 1) are not a span
    s = torch.tensor([[0.0, 0.0, 0.0, 5.0]])
    e = torch.tensor([[0.0, 5.0, 0.0, 1.0]])
    assert [t.item() for t in best_span(s, e, max_answer_len=4)] == [3, 3]
    assert [t.item() for t in best_span(s, e, max_answer_len=4,
                                        allowed=torch.tensor([[True, True, True, False]]))] == [0, 1]


def test_best_span_bad_input():
    s = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"max_answer_len: expected an int >= 1, got 0"):
        best_span(s, s, max_answer_len=0)
    with pytest.raises(ValueError, match=r"end_logits: expected the shape of start_logits \(2, 4\), got \(2, 3\)"):
        best_span(s, torch.zeros(2, 3), max_answer_len=2)
    with pytest.raises(ValueError, match=r"start_logits: expected a \(batch, seq\) tensor, got \(4,\)"):
        best_span(torch.zeros(4), torch.zeros(4), max_answer_len=2)
    with pytest.raises(ValueError, match=r"allowed: row 1 allows no position"):
        best_span(s, s, max_answer_len=2, allowed=torch.tensor([[True] * 4, [False] * 4]))
    with pytest.raises(ValueError, match=r"allowed: expected a bool tensor of shape \(2, 4\)"):
        best_span(s, s, max_answer_len=2, allowed=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"start_positions: expected an integer tensor of shape \(2,\)"):
        span_loss(s, s, torch.tensor([0.0, 1.0]), torch.tensor([0, 1]))
