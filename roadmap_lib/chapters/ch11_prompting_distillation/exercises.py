"""The checks of chapter 11's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (the notebook has no reference in
scope, so a student cannot pass by calling it) and declares the usual mistakes as small wrong
implementations, named in plain words when an answer matches one of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from roadmap_lib.exercises import check_close, check_equal, check_function
from roadmap_lib.objectives import soft_target_loss

# ---- exercise 11.1: the soft-target loss ---------------------------------------------------------


def _kl(p_log, q_log):  # KL(p || q) per row, from log-probabilities
    return (p_log.exp() * (p_log - q_log)).sum(-1)


SOFT_TARGET_MISTAKES = {
    "the T² factor is missing (the gradients then shrink like 1/T² as T grows)":
        lambda s, t, T: _kl(F.log_softmax(t / T, -1), F.log_softmax(s / T, -1)).mean(),
    "the KL runs the wrong way: KL(student || teacher) instead of KL(teacher || student)":
        lambda s, t, T: T * T * _kl(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)).mean(),
    "the temperature divides only the teacher's logits (the student's must be softened too)":
        lambda s, t, T: T * T * _kl(F.log_softmax(t / T, -1), F.log_softmax(s, -1)).mean(),
    "the KL is averaged over classes too (kl_div's reduction='mean'), not summed over them":
        lambda s, t, T: T * T * _kl(F.log_softmax(t / T, -1), F.log_softmax(s / T, -1)).mean() / s.shape[-1],
    "T multiplies instead of dividing the logits":
        lambda s, t, T: T * T * _kl(F.log_softmax(t * T, -1), F.log_softmax(s * T, -1)).mean(),
    "it is the cross-entropy with the soft targets, not the KL (their difference is the teacher's "
    "entropy, a constant for the student but not zero)":
        lambda s, t, T: T * T * -(F.softmax(t / T, -1) * F.log_softmax(s / T, -1)).sum(-1).mean(),
}


def soft_target_cases() -> list[tuple[tuple, torch.Tensor]]:
    cases = []
    for seed, shape, T in [(0, (4, 5), 2.0), (1, (3, 7, 11), 4.0), (2, (6, 3), 1.5)]:
        g = torch.Generator().manual_seed(seed)
        s, t = torch.randn(*shape, generator=g) * 2, torch.randn(*shape, generator=g) * 2
        cases.append(((s, t, T), soft_target_loss(s, t, T)))
    return cases


def check_soft_target_loss(fn) -> None:
    """Exercise 11.1: ``fn(student_logits, teacher_logits, T)`` is T² KL(teacher_T || student_T),
    averaged over every position (leading dimensions)."""
    check_function(fn, soft_target_cases(), mistakes=SOFT_TARGET_MISTAKES, forbid=(soft_target_loss,))


# ---- exercise 11.2: predict, then measure the gradient scale --------------------------------------


def measured_gradient_ratio(T_low: float = 2.0, T_high: float = 8.0, seed: int = 0) -> float:
    """``|grad at T_low| / |grad at T_high|`` of the *unscaled* KL (no T² factor) with respect to the
    student's logits, on fixed random logits (64 rows, 32 classes, unit scale)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(64, 32, generator=g).requires_grad_()
    t = torch.randn(64, 32, generator=g)
    norms = []
    for T in (T_low, T_high):
        (grad,) = torch.autograd.grad(soft_target_loss(s, t, T) / (T * T), s)
        norms.append(grad.norm())
    return float(norms[0] / norms[1])


def check_gradient_ratio(predicted, measured) -> None:
    """Exercise 11.2: the prediction should be within 25 % of the measured ratio, and
    ``measured`` must be the instrument's reading, not a copy of the prediction."""
    check_close(measured, measured_gradient_ratio(), name="your measured ratio", rtol=1e-3)
    check_close(predicted, measured_gradient_ratio(), name="your predicted ratio", rtol=0.25)


# ---- exercise 11.3: student-teacher agreement ------------------------------------------------------


def _agreement(s, t, labels):
    keep = labels != -100
    return (s.argmax(-1) == t.argmax(-1))[keep].float().mean()


AGREEMENT_MISTAKES = {
    "the -100 positions (nothing to predict there) are counted":
        lambda s, t, labels: (s.argmax(-1) == t.argmax(-1)).float().mean(),
    "it compares the student's guesses with the labels (accuracy), not with the teacher's":
        lambda s, t, labels: (s.argmax(-1) == labels)[labels != -100].float().mean(),
    "the argmax is taken over the wrong dimension (positions, not the vocabulary)":
        lambda s, t, labels: (s.argmax(-2) == t.argmax(-2)).float().mean(),
}


def agreement_cases() -> list[tuple[tuple, torch.Tensor]]:
    cases = []
    for seed, (b, n, v) in [(0, (2, 6, 5)), (1, (3, 4, 9)), (2, (1, 9, 4))]:
        g = torch.Generator().manual_seed(seed)
        t = torch.randn(b, n, v, generator=g)
        s = t + 1.2 * torch.randn(b, n, v, generator=g)  # a student that mostly agrees
        labels = torch.randint(0, v, (b, n), generator=g)
        labels[:, : n // 3] = -100
        cases.append(((s, t, labels), _agreement(s, t, labels)))
    return cases


def check_agreement(fn) -> None:
    """Exercise 11.3: ``fn(student_logits, teacher_logits, labels)`` is the fraction of positions
    with a label (not -100) where the student's most likely token is the teacher's."""
    check_function(fn, agreement_cases(), mistakes=AGREEMENT_MISTAKES)


# ---- exercise 11.4: self-consistency, the vote ----------------------------------------------------


def _vote_row(row: list[int]) -> int:
    counts: dict[int, int] = {}
    for a in row:
        if a != -1:
            counts[a] = counts.get(a, 0) + 1
    if not counts:
        return -1
    best = max(counts.values())
    return next(a for a in row if a != -1 and counts[a] == best)


def _vote(answers: torch.Tensor) -> torch.Tensor:
    return torch.tensor([_vote_row(r) for r in answers.tolist()], dtype=torch.long)


VOTE_MISTAKES = {
    "-1 (no answer) is counted as an answer, so unparseable chains can win the vote":
        lambda a: torch.tensor([max(r, key=r.count) if r else -1 for r in a.tolist()]),
    "ties go to the smallest answer (torch.mode's rule), not to the one sampled first":
        lambda a: torch.tensor([min((x for x in set(r) if x != -1 and r.count(x) == max(
            r.count(y) for y in set(r) if y != -1)), default=-1) for r in a.tolist()]),
    "only the first chain is used (that is k = 1, not a vote)":
        lambda a: a[:, 0].clone(),
}


def vote_cases() -> list[tuple[tuple, torch.Tensor]]:
    rows = [[0, 1, 1], [0, -1, -1], [5, 2, 2, 5], [1, 0, 1], [-1, -1, -1], [3, 7, 7, 3, -1, -1, -1]]
    cases = []
    for r in rows:
        a = torch.tensor([r])
        cases.append(((a,), _vote(a)))
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-1, 3, (12, 5), generator=g)
    cases.append(((a,), _vote(a)))
    return cases


def check_majority_vote(fn) -> None:
    """Exercise 11.4: ``fn(answers)`` for a ``(problems, k)`` long tensor of sampled answers, -1
    where a chain had no answer, is the ``(problems,)`` majority answer: -1 is not a vote, a tie
    goes to the answer sampled first, and a row of -1 gives -1."""
    check_function(fn, vote_cases(), mistakes=VOTE_MISTAKES)


# ---- exercise 11.5: which families fit the demonstrations? ----------------------------------------

_FIXED = {"reverse": lambda w: w[::-1], "sort": lambda w: "".join(sorted(w)),
          "shift": lambda w: "".join("abcdef"[("abcdef".index(c) + 1) % 6] for c in w)}


def _is_substitution(demos) -> bool:
    forward, backward = {}, {}
    for x, y in demos:
        for a, b in zip(x, y):
            if forward.setdefault(a, b) != b or backward.setdefault(b, a) != a:
                return False
    return True


def _families(demos) -> list[str]:
    out = [f for f, fn in _FIXED.items() if all(fn(x) == y for x, y in demos)]
    return out + (["substitute"] if _is_substitution(demos) else [])


def _many_to_one_allowed(demos):
    out = [f for f, fn in _FIXED.items() if all(fn(x) == y for x, y in demos)]
    forward = {}
    ok = all(forward.setdefault(a, b) == b for x, y in demos for a, b in zip(x, y))
    return out + (["substitute"] if ok else [])


FAMILY_MISTAKES = {
    "a substitution must be one-to-one: two letters cannot go to the same letter (only the "
    "letter-to-one-letter direction is checked)": _many_to_one_allowed,
    "with no demonstrations every family is consistent (nothing rules any out), not none":
        lambda demos: _families(demos) if demos else [],
    "only the first demonstration is checked": lambda demos: _families(demos[:1]),
    "the substitution is treated as a fixed map, like the other three (it is drawn per episode: any "
    "one-to-one map is possible)": lambda demos: [f for f, fn in _FIXED.items() if all(fn(x) == y for x, y in demos)],
}


def family_cases() -> list[tuple[tuple, list[str]]]:
    import random

    rng = random.Random(11)
    letters = "abcdef"
    cases = [([],), ([("bdae", "eadb")],), ([("abde", "abde")],), ([("bdae", "abde"), ("cfab", "abcf")],),
             ([("abcd", "bcde")],), ([("abcd", "eeff")],), ([("abcd", "bcda")],), ([("fabc", "cbaf")],),
             ([("abcd", "cdef"), ("efab", "abcd")],), ([("abcd", "dcba"), ("bcde", "edcb"), ("acef", "feca")],),
             ([("abcd", "cdef"), ("abef", "cdab")],)]
    for _ in range(10):  # random demonstrations, of real mappings and of random labels
        demos = []
        perm = rng.sample(letters, 6)
        for _ in range(rng.randint(1, 3)):
            w = "".join(rng.sample(letters, 4))
            y = rng.choice([w[::-1], "".join(sorted(w)), "".join(perm[letters.index(c)] for c in w),
                            "".join(rng.sample(letters, 4))])
            demos.append((w, y))
        cases.append((demos,))
    return [((demos,), _families(demos)) for (demos,) in cases]


def check_families_consistent(fn) -> None:
    """Exercise 11.5: ``fn(demos)`` lists, in the order reverse, sort, shift, substitute,
    the families with a mapping that maps every demonstration's input to its output."""
    check_equal(fn, family_cases(), mistakes=FAMILY_MISTAKES)


# ---- exercise 11.6: one step of beam search ---------------------------------------------------------


def _frontier(children, values, beam_width):
    kept = [(v, i, c) for i, (c, v) in enumerate(zip(children, values)) if v is not None]
    kept.sort(key=lambda t: (-t[0], t[1]))
    return [c for _, _, c in kept[:beam_width]]


FRONTIER_MISTAKES = {
    "pruned children (value None) are kept":
        lambda ch, vs, w: [c for _, _, c in sorted(((v if v is not None else float("-inf"), i, c)
                                                     for i, (c, v) in enumerate(zip(ch, vs))),
                                                    key=lambda t: (-t[0], t[1]))[:w]],
    "it keeps the lowest values (an ascending sort): a log-probability is better when larger":
        lambda ch, vs, w: [c for _, _, c in sorted(((v, i, c) for i, (c, v) in enumerate(zip(ch, vs))
                                                     if v is not None), key=lambda t: (t[0], t[1]))[:w]],
    "ties go to the child proposed last, not first":
        lambda ch, vs, w: [c for _, _, c in sorted(((v, i, c) for i, (c, v) in enumerate(zip(ch, vs))
                                                     if v is not None), key=lambda t: (-t[0], -t[1]))[:w]],
    "beam_width is ignored: every surviving child is kept":
        lambda ch, vs, w: _frontier(ch, vs, len(ch)),
}


def frontier_cases() -> list[tuple[tuple, list]]:
    import random

    cases = [(["a", "b", "c"], [-1.0, -0.5, -2.0], 2), (["a", "b", "c", "d"], [-1.0, None, -1.0, -3.0], 2),
             (["a", "b"], [None, None], 1), (["x", "y", "z"], [0.0, 0.0, 0.0], 1), (["p", "q", "r"], [-3.0, -1.0, -2.0], 5)]
    rng = random.Random(6)
    for _ in range(6):
        n = rng.randint(3, 8)
        vals = [None if rng.random() < 0.3 else -float(rng.randint(0, 4)) for _ in range(n)]
        cases.append(([f"s{i}" for i in range(n)], vals, rng.randint(1, 3)))
    return [((c, v, w), _frontier(c, v, w)) for c, v, w in cases]


def check_next_frontier(fn) -> None:
    """Exercise 11.6: ``fn(children, values, beam_width)`` keeps the ``beam_width`` children with the
    largest values, drops those whose value is None, and breaks ties by the order proposed."""
    check_equal(fn, frontier_cases(), mistakes=FRONTIER_MISTAKES)


__all__ = [
    "AGREEMENT_MISTAKES",
    "FAMILY_MISTAKES",
    "FRONTIER_MISTAKES",
    "SOFT_TARGET_MISTAKES",
    "VOTE_MISTAKES",
    "check_agreement",
    "check_families_consistent",
    "check_gradient_ratio",
    "check_majority_vote",
    "check_next_frontier",
    "check_soft_target_loss",
    "measured_gradient_ratio",
]
