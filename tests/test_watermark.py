"""The green-list watermark: table, processor, detector (closed form, null distribution)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.watermark import (
    GreenListWatermark,
    detect,
    effective_gamma,
    green_counts,
    green_table,
    z_scores,
)


def test_table_rows_have_exactly_the_green_count_and_depend_on_the_key():
    t = green_table(50, gamma=0.3, key=1)
    assert t.shape == (50, 50) and bool((t.sum(1) == 15).all())
    assert torch.equal(t, green_table(50, gamma=0.3, key=1))
    assert not torch.equal(t, green_table(50, gamma=0.3, key=2))
    assert effective_gamma(t) == pytest.approx(0.3)


def test_processor_adds_delta_on_the_green_list_of_the_last_token():
    t = green_table(10, 0.5, key=3)
    ids = torch.tensor([[1, 4], [2, 7]])
    scores = torch.randn(2, 10)
    out = GreenListWatermark(t, delta=1.5)(ids, scores)
    assert torch.allclose(out - scores, 1.5 * t[torch.tensor([4, 7])].float())


def test_z_score_equals_its_closed_form_on_a_hand_count():
    t = green_table(8, 0.25, key=0)
    ids = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 0, 1]])
    g = sum(bool(t[ids[0, i - 1], ids[0, i]]) for i in range(1, 10))
    green, n = green_counts(ids, t)
    assert int(green[0]) == g and n == 9
    assert float(detect(ids, t)[0]) == pytest.approx((g - 0.25 * 9) / math.sqrt(9 * 0.25 * 0.75))


def test_start_skips_the_prompt():
    t = green_table(8, 0.5, key=0)
    ids = torch.randint(0, 8, (3, 20), generator=torch.Generator().manual_seed(0))
    green, n = green_counts(ids, t, start=5)
    assert n == 15 and torch.equal(green, t[ids[:, 4:-1], ids[:, 5:]].sum(1))


def test_watermarked_sampling_is_detected():
    torch.manual_seed(0)
    t = green_table(30, 0.5, key=7)
    wm = GreenListWatermark(t, delta=4.0)
    ids = torch.zeros(8, 1, dtype=torch.long)
    for _ in range(100):
        logits = wm(ids, torch.zeros(8, 30))
        ids = torch.cat([ids, torch.multinomial(logits.softmax(-1), 1)], 1)
    assert float(detect(ids, t).min()) > 6


@settings(max_examples=10, deadline=None)
@given(key=st.integers(0, 10**6), gamma=st.sampled_from([0.25, 0.5, 0.75]), vocab=st.integers(20, 80))
def test_unwatermarked_z_is_standard_normal(key, gamma, vocab):
    # tokens independent of the (secret) key: z ~ N(0, 1) up to the binomial's discreteness
    t = green_table(vocab, gamma, key=key)
    ids = torch.randint(0, vocab, (4000, 200), generator=torch.Generator().manual_seed(key))
    z = detect(ids, t)
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.08
    assert abs(float((z > 1.645).double().mean()) - 0.05) < 0.02


@pytest.mark.parametrize("call, match", [
    (lambda: green_table(1), "vocab_size"),
    (lambda: green_table(10, gamma=1.5), "gamma"),
    (lambda: GreenListWatermark(torch.zeros(3, 4, dtype=torch.bool)), "table"),
    (lambda: GreenListWatermark(green_table(4), delta=-1), "delta"),
    (lambda: GreenListWatermark(green_table(4))(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 5)), "scores"),
    (lambda: green_counts(torch.zeros(2, 3), green_table(4)), "ids"),
    (lambda: green_counts(torch.zeros(2, 3, dtype=torch.long), green_table(4), start=3), "start"),
    (lambda: green_counts(torch.full((2, 3), 9), green_table(4)), "ids"),
    (lambda: z_scores(torch.zeros(2), 0, 0.5), "n"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
