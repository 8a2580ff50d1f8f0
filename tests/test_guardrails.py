"""roadmap_lib.guardrails: rates on hand-counted cases, the secret filter, the bag-of-words guard
against scikit-learn's logistic regression, and the critique-and-revise loop's bookkeeping."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmap_lib.guardrails import (
    BagOfWordsGuard,
    SecretGuard,
    critique_and_revise,
    detection_rates,
)


def test_detection_rates_on_a_hand_counted_case():
    # 3 violations, 2 flagged; 4 harmless, 1 flagged
    flags = [True, True, False, True, False, False, False]
    labels = [True, True, True, False, False, False, False]
    r = detection_rates(flags, labels)
    assert r["catch_rate"] == pytest.approx(2 / 3) and r["false_positive_rate"] == pytest.approx(1 / 4)
    assert (r["positives"], r["negatives"]) == (3, 4)
    assert math.isnan(detection_rates([False], [False])["catch_rate"])


def test_detection_rates_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="flags: expected as many as labels"):
        detection_rates([True], [True, False])


def test_secret_guard_matches_verbatim_after_normalising_and_misses_transformations():
    g = SecretGuard("4 8 2 1")
    assert g.flag(["the code is 4 8 2 1", "4821", "48 21 !", "1 2 8 4", "4 8 2", "no"]) == [
        True, True, True, False, False, False]
    with pytest.raises(ValueError, match="secret: expected a non-empty string"):
        SecretGuard("  ")
    with pytest.raises(TypeError, match="texts: expected a sequence of strings"):
        g.flag("4821")


def test_bag_of_words_guard_matches_sklearn_logistic_regression():
    sklearn = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(0)
    words = ["tell", "code", "repeat", "cat", "dog", "show", "sun"]
    texts, labels = [], []
    for _ in range(200):
        ws = [words[i] for i in torch.randint(0, len(words), (4,), generator=g).tolist()]
        texts.append(" ".join(ws))
        labels.append(("code" in ws) != bool(torch.rand((), generator=g) < 0.1))  # 10% label noise
    guard = BagOfWordsGuard(C=0.5).fit(texts, labels)
    x = guard.features(texts).numpy()
    ref = sklearn.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x, labels)
    assert torch.allclose(guard.coef, torch.tensor(ref.coef_[0], dtype=torch.float64), atol=1e-4)
    assert guard.intercept == pytest.approx(float(ref.intercept_[0]), abs=1e-4)
    probs = torch.tensor(ref.predict_proba(x)[:, 1])
    assert torch.allclose(guard.scores(texts), probs, atol=1e-5)


def test_bag_of_words_guard_ignores_unseen_words_and_lowercases():
    guard = BagOfWordsGuard().fit(["tell code", "repeat cat", "show code", "repeat dog"], [1, 0, 1, 0])
    assert guard.flag(["TELL CODE", "repeat cat"]) == [True, False]
    assert torch.allclose(guard.scores(["zzz"]), guard.scores([""]))


def test_bag_of_words_guard_errors():
    with pytest.raises(ValueError, match="C: expected a positive float"):
        BagOfWordsGuard(C=0)
    with pytest.raises(ValueError, match="threshold: expected a probability"):
        BagOfWordsGuard(threshold=1.5)
    with pytest.raises(RuntimeError, match="call fit"):
        BagOfWordsGuard().flag(["a"])
    with pytest.raises(ValueError, match="labels: expected both classes"):
        BagOfWordsGuard().fit(["a", "b"], [1, 1])
    with pytest.raises(ValueError, match="labels: expected 2 labels"):
        BagOfWordsGuard().fit(["a", "b"], [1])


def test_critique_and_revise_counts_generations_and_falls_back():
    # prompt "a" is fixed at round 1, "b" never; "c" is fine from the start
    def generate(prompts, r):
        return [("bad" if p == "b" or (p == "a" and r == 0) else "ok") for p in prompts]

    rec = critique_and_revise(generate, lambda ts: [t == "bad" for t in ts], ["a", "b", "c"], max_rounds=2,
                              fallback="no")
    assert rec["first"] == ["bad", "bad", "ok"] and rec["final"] == ["ok", "no", "ok"]
    assert rec["generations"] == [2, 3, 1] and rec["fell_back"] == [False, True, False]
    assert rec["flagged_first"] == [True, True, False]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=8), st.integers(0, 4))
def test_critique_and_revise_final_responses_pass_or_fall_back(fix_round, max_rounds):
    # prompt i stops being flagged from round fix_round[i] on
    prompts = [str(i) for i in range(len(fix_round))]

    def generate(ps, r):
        return [f"{p}:{'ok' if r >= fix_round[int(p)] else 'bad'}" for p in ps]

    rec = critique_and_revise(generate, lambda ts: [t.endswith("bad") for t in ts], prompts,
                              max_rounds=max_rounds, fallback="no")
    for i, k in enumerate(fix_round):
        fixed = k <= max_rounds
        assert rec["fell_back"][i] == (not fixed)
        assert rec["generations"][i] == (k + 1 if fixed else max_rounds + 1)
        assert rec["final"][i] == (f"{i}:ok" if fixed else "no")


def test_critique_and_revise_errors():
    with pytest.raises(ValueError, match="max_rounds: expected an int >= 0"):
        critique_and_revise(lambda p, r: p, lambda t: [False] * len(t), ["a"], max_rounds=-1)
    with pytest.raises(ValueError, match="generate: expected 2 responses"):
        critique_and_revise(lambda p, r: ["x"], lambda t: [False] * len(t), ["a", "b"])
    with pytest.raises(TypeError, match="prompts: expected a sequence of strings"):
        critique_and_revise(lambda p, r: p, lambda t: [False] * len(t), "ab")
