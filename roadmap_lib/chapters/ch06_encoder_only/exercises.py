"""The checks of chapter 06's exercises, with the common mistakes each one recognises.

Each ``check_*`` builds its own cases and reference answers (from the chapter's and the core
modules), so the notebook's namespace holds no reference a student could call, forbids calling
that reference, and declares the usual wrong answers in plain words as small wrong functions: when
an answer returns what one of them returns, the message names that mistake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from roadmap_lib.chapters.ch06_encoder_only.finetune import token_labels
from roadmap_lib.chapters.ch06_encoder_only.pretrain import CLS, MASK, PAD, SEP
from roadmap_lib.exercises import ExerciseError, _ok, check_close, check_function
from roadmap_lib.metrics import token_f1
from roadmap_lib.objectives import distillation_loss, mlm_mask

# ---- exercise 06.1: token targets -----------------------------------------------------------------


def _labels(n_words, changed, context, *, shift=1, words_end=None, outside=-100, skip_minus_one=True):
    labels = torch.full((context,), outside, dtype=torch.long)
    labels[0] = -100
    labels[1:(n_words + 1 if words_end is None else words_end)] = 0
    for k in changed:
        if k >= 0 or not skip_minus_one:
            labels[k + shift] = 1
    return labels


TOKEN_LABELS_MISTAKES = {
    "the shift of one for [CLS] is forgotten: word i is token i + 1, not token i":
        lambda n, ks, c: _labels(n, ks, c, shift=0),
    "the index -1 is not skipped: it marks nothing, but here it labels [CLS] (token 0) with 1":
        lambda n, ks, c: _labels(n, ks, c, skip_minus_one=False),
    "[SEP] is labelled 0 like a word: the words are tokens 1 to n_words, [SEP] is -100":
        lambda n, ks, c: _labels(n, ks, c, words_end=n + 2),
    "[SEP] and the padding are labelled 0: every token after the words is -100":
        lambda n, ks, c: _labels(n, ks, c, outside=0),
}


def check_token_labels(fn) -> None:
    """Exercise 06.1: ``fn(n_words, changed, context)`` is the per-token target of the token task."""
    check_function(fn, [((n, ks, 32), token_labels(n, *ks, context=32))
                        for n, ks in ((5, [0, 4]), (12, [-1]), (30, [3, 29]), (2, [1]), (7, []))],
                   forbid=[token_labels], mistakes=TOKEN_LABELS_MISTAKES)


# ---- exercise 06.2: F1 of the "changed" class -----------------------------------------------------


def _counts(pred, gold, *, ignore=True):
    counted = gold != -100 if ignore else torch.ones_like(gold, dtype=torch.bool)
    tp = ((pred == 1) & (gold == 1) & counted).sum().item()
    fp = ((pred == 1) & (gold != 1) & counted).sum().item()
    fn = ((pred != 1) & (gold == 1) & counted).sum().item()
    return tp, fp, fn


def _f1_not_ignoring(pred, gold):
    tp, fp, fn = _counts(pred, gold, ignore=False)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _arithmetic_mean(pred, gold):
    tp, fp, fn = _counts(pred, gold)
    return (tp / (tp + fp) + tp / (tp + fn)) / 2


def _accuracy(pred, gold):
    counted = gold != -100
    return ((pred == gold) & counted).sum().item() / counted.sum().item()


F1_MISTAKES = {
    "the positions where gold is -100 are counted (a 1 predicted there is a false positive): ignore them":
        _f1_not_ignoring,
    "precision and recall are averaged, (P + R) / 2: F1 is their harmonic mean, 2PR / (P + R)":
        _arithmetic_mean,
    "it is the accuracy over the counted positions, not the F1 of class 1":
        _accuracy,
}


def check_f1(fn) -> None:
    """Exercise 06.2: ``fn(pred, gold)`` is the F1 of class 1 where ``gold != -100``."""
    g = torch.Generator().manual_seed(3)
    gold = torch.randint(0, 2, (6, 20), generator=g).masked_fill(torch.rand(6, 20, generator=g) < 0.3, -100)
    pred = torch.randint(0, 2, (6, 20), generator=g)
    check_function(fn, [((pred, gold), token_f1(pred, gold)),
                        ((torch.zeros(3, 4, dtype=torch.long), torch.ones(3, 4, dtype=torch.long)), 0.0)],
                   forbid=[token_f1], mistakes=F1_MISTAKES)


# ---- exercise 06.3: the distillation loss ---------------------------------------------------------


def _distil(zs, zt, y, T, alpha, *, t_squared=True, reverse=False, hard_T=1.0, swap=False, rows="mean"):
    log_s, log_t = torch.log_softmax(zs / T, -1), torch.log_softmax(zt / T, -1)
    kl_rows = (log_s.exp() * (log_s - log_t)).sum(-1) if reverse else (log_t.exp() * (log_t - log_s)).sum(-1)
    kl = kl_rows.sum() if rows == "sum" else kl_rows.mean()
    soft = (T * T if t_squared else 1.0) * kl
    hard = F.cross_entropy(zs / hard_T, y)
    return (1 - alpha) * soft + alpha * hard if swap else alpha * soft + (1 - alpha) * hard


DISTILLATION_MISTAKES = {
    "the T² factor in front of the KL term is missing":
        lambda zs, zt, y, T, a: _distil(zs, zt, y, T, a, t_squared=False),
    "the KL runs the wrong way, KL(student ‖ teacher): the teacher's distribution comes first":
        lambda zs, zt, y, T, a: _distil(zs, zt, y, T, a, reverse=True),
    "the cross-entropy uses the softened logits z_s / T: the hard term takes the student's logits as they are":
        lambda zs, zt, y, T, a: _distil(zs, zt, y, T, a, hard_T=T),
    "alpha and 1 − alpha are swapped: alpha weights the KL term":
        lambda zs, zt, y, T, a: _distil(zs, zt, y, T, a, swap=True),
    "the KL is summed over the rows instead of averaged":
        lambda zs, zt, y, T, a: _distil(zs, zt, y, T, a, rows="sum"),
}


def check_distillation_loss(fn) -> None:
    """Exercise 06.3: ``fn(student_logits, teacher_logits, labels, T, alpha)`` is the distillation loss."""
    g = torch.Generator().manual_seed(4)
    zs, zt = torch.randn(8, 3, generator=g), 3 * torch.randn(8, 3, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    check_function(fn, [((zs, zt, y, 2.0, 0.7), distillation_loss(zs, zt, y, 2.0, 0.7)),
                        ((zs, zt, y, 1.0, 1.0), distillation_loss(zs, zt, y, 1.0, 1.0))],
                   atol=1e-5, forbid=[distillation_loss], mistakes=DISTILLATION_MISTAKES)


# ---- exercise 06.4: predict, then measure: what the masked LM sees and scores ---------------------


def measure_mlm_shares(ids: torch.Tensor, vocab_size: int, seed: int = 1) -> dict[str, float]:
    """BERT's masking (``roadmap_lib.objectives.mlm_mask``, as in pretraining) applied once to ``ids``
    (sentences of word ids with [CLS], [SEP], padding); returns, as shares of the word tokens:
    ``"loss"``, the words that carry the masked-LM loss (label not -100), and ``"changed"``, the
    words whose input token differs from the original."""
    inputs, labels = mlm_mask(ids, vocab_size=vocab_size, mask_id=MASK, special_ids=(PAD, CLS, SEP),
                              generator=torch.Generator().manual_seed(seed))
    words = (ids != PAD) & (ids != CLS) & (ids != SEP)
    n = words.sum().item()
    return {"loss": ((labels != -100) & words).sum().item() / n,
            "changed": ((inputs != ids) & words).sum().item() / n}


def _near(x, target, tol=0.004):
    return abs(x - target) < tol


#: ``description -> predicate(prediction)``: a prediction that makes the mistake satisfies it.
MLM_SHARE_MISTAKES = {
    "a share lies between 0 and 1: these are fractions of the words, not percentages":
        lambda p: p["loss"] > 1 or p["changed"] > 1,
    "the loss is on every chosen word (the 10 % given a random word and the 10 % kept as well), not only "
    "on the [MASK]ed ones":
        lambda p: _near(p["loss"], 0.15 * 0.8),
    "not every chosen word is changed: 10 % of the chosen words keep their own word":
        lambda p: _near(p["changed"], 0.15),
    "the 10 % of chosen words given a random word are changed too, not only the 80 % that become [MASK]":
        lambda p: _near(p["changed"], 0.15 * 0.8),
    "the shares are of all the words, not of the 15 % chosen ones":
        lambda p: _near(p["loss"], 1.0, 0.02) or _near(p["changed"], 0.9, 0.02),
}


def check_mlm_shares(prediction, ids: torch.Tensor, vocab_size: int) -> None:
    """Exercise 06.4: ``prediction`` is ``{"loss": share, "changed": share}`` of the words of ``ids``;
    compared, within 0.005, with :func:`measure_mlm_shares` on ``ids``."""
    if not isinstance(prediction, dict) or set(prediction) != {"loss", "changed"} or not all(
            isinstance(v, (int, float)) and v >= 0 for v in prediction.values()):
        raise ExerciseError(f'the prediction should be {{"loss": share, "changed": share}} with shares >= 0, '
                            f"got {prediction!r}")
    measured = measure_mlm_shares(ids, vocab_size)
    for words, makes_it in MLM_SHARE_MISTAKES.items():
        if makes_it(prediction):
            raise ExerciseError(f"likely mistake: {words}. Your prediction: {prediction}; measured: "
                                f"{ {k: round(v, 4) for k, v in measured.items()} }")
    for key in ("loss", "changed"):
        check_close(prediction[key], measured[key], name=f'share of words, "{key}"', atol=0.005, rtol=0)
    _ok(f"measured on {int(((ids != PAD) & (ids != CLS) & (ids != SEP)).sum()):,} words: "
        f"{measured['loss']:.4f} carry the loss, {measured['changed']:.4f} are changed in the input.")
