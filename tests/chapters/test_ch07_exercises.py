"""Chapter 07's exercise checks: right answers pass, and each declared mistake, written the way a
student would write it (independently of the mistake functions in the module), is named."""

from __future__ import annotations

import pytest
import torch
from mistake_tables import assert_every_mistake_has_a_student, assert_named, student_cases

from roadmap_lib.chapters.ch07_decoder_only import exercises as ex
from roadmap_lib.exercises import ExerciseError


def loss(logits, ids, *, targets=lambda ids: ids[:, 1:], norm=torch.log_softmax, dim=-1, sign=-1.0, reduce="mean"):
    logp = norm(logits, dim=dim) if norm is not None else logits
    picked = torch.gather(logp, 2, targets(ids).unsqueeze(-1)).squeeze(-1)
    return sign * (picked.mean() if reduce == "mean" else picked.sum())


def top_p(logits, p, *, crossing=False, first=True, back=True, ordered=True, descending=True, fill=-float("inf")):
    probs = logits.softmax(-1)
    if ordered:
        sp, idx = probs.sort(-1, descending=descending)
    else:
        sp, idx = probs, torch.arange(probs.shape[-1]).repeat(probs.shape[0], 1)
    before = sp.cumsum(-1) - (0 if crossing else sp)
    drop = before >= p
    if first:
        drop[:, 0] = False
    if back:
        drop = drop.gather(-1, idx.argsort(-1))
    return torch.where(drop, torch.full_like(logits, fill), logits)


def params(v, c, d, n, *, tied=True, bias=1, ln=2, final=True, pos=True, hidden=4, proj=4):
    block = 2 * ln * d + proj * (d * d + bias * d) + d * hidden * d + bias * hidden * d + hidden * d * d + bias * d
    return v * d * (1 if tied else 2) + pos * c * d + n * block + final * ln * d


def sample(logits, t, gen, *, op="div", dim=-1, greedy=False, squeeze=True):
    scaled = logits / t if op == "div" else logits * t
    if greedy:
        return scaled.argmax(-1)
    out = torch.multinomial(torch.softmax(scaled, dim=dim), num_samples=1, generator=gen)
    return out.squeeze(1) if squeeze else out


def student_positions(p, n, c, cache, *, window=True, growing=True, start=0, cached_calls=lambda n: n - 1):
    """A student's count: the input length of every call, written out as a loop."""
    if cache:
        return p + cached_calls(n)
    total, length = 0, p + start
    for _ in range(n):
        total += min(length, c) if window else length
        if growing:
            length += 1
    return total


def test_right_answers_pass(capsys):
    ex.check_causal_lm_loss(loss)
    ex.check_top_p(top_p)
    ex.check_gpt_num_params(params)
    ex.check_sample_next(sample)
    ex.check_positions_processed(student_positions)  # its cases, then the measured saving
    assert capsys.readouterr().out.count("Correct") == 6


STUDENTS = {
    ex.check_causal_lm_loss: (ex.CAUSAL_LM_LOSS_MISTAKES, {
        "the targets are not shifted": lambda lg, ids: loss(lg, ids, targets=lambda i: i[:, :-1]),
        "over the positions (dim 1)": lambda lg, ids: loss(lg, ids, dim=1),
        "the minus sign is missing": lambda lg, ids: loss(lg, ids, sign=1.0),
        "summed, not averaged": lambda lg, ids: loss(lg, ids, reduce="sum"),
        "the raw logits are used": lambda lg, ids: loss(lg, ids, norm=None),
        "softmax instead of log_softmax": lambda lg, ids: loss(lg, ids, norm=torch.softmax),
    }),
    ex.check_top_p: (ex.TOP_P_MISTAKES, {
        "the token that crosses p is dropped": lambda x, p: top_p(x, p, crossing=True),
        "the most likely token is not always kept": lambda x, p: top_p(x, p, first=False),
        "the decision is not scattered back": lambda x, p: top_p(x, p, back=False),
        "accumulated in the vocabulary's order": lambda x, p: top_p(x, p, ordered=False),
        "sorted in ascending order": lambda x, p: top_p(x, p, descending=False),
        "get the logit 0, not -inf": lambda x, p: top_p(x, p, fill=0.0),
    }),
    ex.check_gpt_num_params: (ex.GPT_PARAMS_MISTAKES, {
        "the tied output head is counted again": lambda *a: params(*a, tied=False),
        "the biases of the linear layers are left out": lambda *a: params(*a, bias=0),
        "with a weight only": lambda *a: params(*a, ln=1),
        "the final LayerNorm is left out": lambda *a: params(*a, final=False),
        "the position embeddings are left out": lambda *a: params(*a, pos=False),
        "the feed-forward width is d, not 4d": lambda *a: params(*a, hidden=1),
        "the attention output projection is left out": lambda *a: params(*a, proj=3),
    }),
    ex.check_sample_next: (ex.SAMPLE_MISTAKES, {
        "multiplied by the temperature": lambda x, t, g: sample(x, t, g, op="mul"),
        "over the batch (dim 0)": lambda x, t, g: sample(x, t, g, dim=0),
        "the most likely token is taken (argmax)": lambda x, t, g: sample(x, t, g, greedy=True),
        "extra dimension is kept": lambda x, t, g: sample(x, t, g, squeeze=False),
    }),
    ex.check_positions_processed: (ex.POSITIONS_MISTAKES, {
        "the window is ignored": lambda p, n, c, cache: student_positions(p, n, c, cache, window=False),
        "every call is counted as the prompt alone":
            lambda p, n, c, cache: student_positions(p, n, c, cache, growing=False),
        "off by one": lambda p, n, c, cache: student_positions(p, n, c, cache, start=1),
        "the cache is ignored": lambda p, n, c, cache: student_positions(p, n, c, False),
        "one call too many": lambda p, n, c, cache: student_positions(p, n, c, cache, cached_calls=lambda n: n),
    }),
}


@pytest.mark.parametrize("check, words, fn", student_cases(STUDENTS))
def test_each_mistake_is_named(check, words, fn):
    assert_named(check, words, fn)


def test_every_declared_mistake_has_a_student_version():
    assert_every_mistake_has_a_student(STUDENTS)


def test_calling_the_library_filter_is_refused():
    from roadmap_lib.generation import top_p_filter

    with pytest.raises(ExerciseError, match="library's own `top_p_filter`"):
        ex.check_top_p(lambda x, p: top_p_filter(x, p))



def test_measured_positions_follows_greedy_and_rejects_bad_input():
    assert ex.measured_positions(4, 3, 16, False) == 4 + 5 + 6
    assert ex.measured_positions(4, 3, 16, True) == 4 + 1 + 1
    with pytest.raises(ValueError, match="prompt_len: expected at most context_length=8, got 9"):
        ex.measured_positions(9, 1, 8, False)
    with pytest.raises(ValueError, match="new_tokens: with use_cache=True"):
        ex.measured_positions(8, 2, 8, True)
    with pytest.raises(ValueError, match="new_tokens: expected a positive int, got 0"):
        ex.measured_positions(2, 0, 8, False)
