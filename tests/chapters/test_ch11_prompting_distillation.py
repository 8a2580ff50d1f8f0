"""Chapter 11: the distillation drivers, the live measurements, the figures, the artifact's
registration, and the exercise checks (each declared mistake, written as a student would)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from roadmap_lib.chapters.ch11_prompting_distillation import analysis, distill, plots
from roadmap_lib.chapters.ch11_prompting_distillation import exercises as ex
from roadmap_lib.chapters.ch11_prompting_distillation.artifacts import ARTIFACTS
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.objectives import soft_target_loss
from roadmap_lib.training import evaluate


@pytest.fixture(scope="module")
def teacher_and_data():
    teacher, vocab = distill.teacher()
    return teacher, distill.corpus(vocab)


def test_artifact_registration():
    a, b, c, d = ARTIFACTS
    assert b.name == "11-cot" and set(b.files) == {"11_cot.json", "zoo/gpt-char-cot.safetensors"}
    assert c.name == "11-fewshot" and set(c.files) == {"11_fewshot.json", "zoo/gpt-char-fewshot.safetensors"}
    assert d.name == "11-tot" and d.files == ("11_tot.json",) and d.needs == ("11-cot",)
    assert a.name == "gpt-char-distilled" and a.needs == ("gpt-char-jargon",)
    assert set(a.files) == {"zoo/gpt-char-distilled.safetensors", "zoo/gpt-char-distilled.json",
                            "11_distillation.json"}


def test_sdpa_teacher_matches_the_shipped_one(teacher_and_data):
    from roadmap_lib.zoo import load_char_gpt
    fast, data = teacher_and_data
    slow, _, _ = load_char_gpt(distill.TEACHER)
    x, _ = data.get_batch("val", torch.Generator().manual_seed(0), batch_size=2)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), slow(x), atol=1e-4, rtol=1e-4)


def test_teacher_pool_keeps_the_real_prefix_and_is_seeded(teacher_and_data):
    teacher, data = teacher_and_data
    a = distill.teacher_pool(teacher, data, rows=3, chunk=2)
    assert a.shape == (3, distill.CONTEXT + 1)
    g = torch.Generator().manual_seed(distill.POOL_SEED)
    x, _ = data.get_batch("train", g, batch_size=2)
    assert torch.equal(a[:2, :distill.PREFIX], x[:, :distill.PREFIX])
    assert torch.equal(a, distill.teacher_pool(teacher, data, rows=3, chunk=2))


@pytest.mark.slow
def test_train_student_methods_are_seeded_and_differ(teacher_and_data):
    """Four 2-step trainings with the teacher in the loop (about 5 s alone, more on a busy machine)."""
    teacher, data = teacher_and_data
    pool = distill.teacher_pool(teacher, data, rows=4)
    losses = {}
    for method in distill.METHODS:
        model, _ = distill.train_student(method, 0, teacher, data, pool, steps=2)
        losses[method] = evaluate(model, distill._real_batches(data), batches=1, seed=0)
    again, _ = distill.train_student("soft", 0, teacher, data, pool, steps=2)
    assert evaluate(again, distill._real_batches(data), batches=1, seed=0) == losses["soft"]
    assert len(set(losses.values())) == 3
    with pytest.raises(ValueError, match="method"):
        distill.train_student("hard", 0, teacher, data, pool)
    with pytest.raises(ValueError, match="pool"):
        distill.train_student("sequence", 0, teacher, data, None)


def test_table_means_and_spreads():
    record = {"teacher": {"name": "t", "params": 10, "val_loss": 1.0}, "student": {"params": 2},
              "runs": [{"method": m, "seed": s, "val_loss": 2.0 + i + 0.1 * s}
                       for i, m in enumerate(distill.METHODS) for s in range(3)]}
    rows = distill.table(record)
    assert [r["model"] for r in rows] == ["teacher (t)", "student, scratch", "student, soft", "student, sequence"]
    assert rows[2]["mean"] == pytest.approx(3.1) and rows[2]["spread"] == pytest.approx(0.2)


def test_soft_targets_and_gradient_norms():
    logits = torch.tensor([3.0, 1.0, 0.0, -1.0])
    t = analysis.soft_targets(logits, [1.0, 4.0], top=2)
    assert t["ids"] == [0, 1]
    p1 = logits.softmax(-1)
    assert t["probs"][1.0] == pytest.approx(p1[:2].tolist()) and t["rest"][1.0] == pytest.approx(float(p1[2:].sum()))
    assert t["entropy"][4.0] > t["entropy"][1.0]
    with pytest.raises(ValueError, match="logits"):
        analysis.soft_targets(logits[None], [1.0])
    with pytest.raises(ValueError, match="temperatures"):
        analysis.soft_targets(logits, [0.0])
    with pytest.raises(ValueError, match="top"):
        analysis.soft_targets(logits, [1.0], top=5)
    n = analysis.gradient_norms([1.0, 8.0], rows=4, classes=5)
    assert n["unscaled"][0] == pytest.approx(n["scaled"][0])
    assert n["unscaled"][1] == pytest.approx(n["scaled"][1] / 64)


def test_plots_draw():
    t = analysis.soft_targets(torch.tensor([2.0, 1.0, 0.0]), [1.0, 2.0], top=2)
    assert plots.plot_soft_targets(t, ["a", "\n"], context="xy").get_ylabel()
    n = analysis.gradient_norms([1.0, 2.0], rows=2, classes=3)
    assert plots.plot_gradient_scale([1.0, 2.0], n).get_xscale() == "log"
    rows = [{"model": "teacher", "params": 800, "mean": 1.8, "losses": [1.8]},
            {"model": "student, soft", "params": 100, "mean": 2.3, "losses": [2.2, 2.3, 2.4]}]
    assert len(plots.plot_distillation(rows).patches) == 2
    plt.close("all")


# ---- exercises --------------------------------------------------------------------------------


def _log_softmax(x, T):
    return F.log_softmax(x.reshape(-1, x.shape[-1]) / T, -1)


def test_soft_target_check_accepts_a_right_answer_and_names_each_mistake():
    def right(s, t, T):
        lp, lq = _log_softmax(t, T), _log_softmax(s, T)
        return T * T * (lp.exp() * (lp - lq)).sum(-1).mean()

    ex.check_soft_target_loss(right)
    student_versions = {
        "the T² factor is missing": lambda s, t, T: right(s, t, T) / (T * T),
        "the KL runs the wrong way": lambda s, t, T: right(t, s, T),
        "the temperature divides only the teacher": lambda s, t, T: T * T * (
            _log_softmax(t, T).exp() * (_log_softmax(t, T) - _log_softmax(s, 1.0))).sum(-1).mean(),
        "averaged over classes too": lambda s, t, T: T * T * F.kl_div(
            _log_softmax(s, T), _log_softmax(t, T), log_target=True, reduction="none").mean(),
        "T multiplies instead of dividing": lambda s, t, T: right(s * T * T, t * T * T, T),
        "cross-entropy with the soft targets": lambda s, t, T: T * T * -(
            _log_softmax(t, T).exp() * _log_softmax(s, T)).sum(-1).mean(),
    }
    for words, wrong in student_versions.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_soft_target_loss(wrong)
        assert words in str(err.value), (words, str(err.value))


def test_soft_target_check_forbids_the_reference():
    with pytest.raises(ExerciseError):
        ex.check_soft_target_loss(lambda s, t, T: soft_target_loss(s, t, T))


def test_gradient_ratio_check():
    measured = ex.measured_gradient_ratio()
    assert 15.5 < measured < 18.5
    ex.check_gradient_ratio(16.0, measured)
    with pytest.raises(ExerciseError, match="predicted"):
        ex.check_gradient_ratio(4.0, measured)  # "the gradient falls like 1/T"
    with pytest.raises(ExerciseError, match="measured"):
        ex.check_gradient_ratio(16.0, 16.0)  # the prediction copied into the measurement


def test_agreement_check_names_each_mistake():
    def right(s, t, labels):
        return (s.argmax(-1) == t.argmax(-1))[labels != -100].float().mean()

    ex.check_agreement(right)
    student_versions = {
        "-100 positions": lambda s, t, labels: (s.argmax(-1) == t.argmax(-1)).float().mean(),
        "accuracy": lambda s, t, labels: (s.argmax(-1) == labels)[labels != -100].float().mean(),
        "wrong dimension": lambda s, t, labels: (s.argmax(1) == t.argmax(1)).float().mean(),
    }
    for words, wrong in student_versions.items():
        with pytest.raises(ExerciseError, match="likely mistake") as err:
            ex.check_agreement(wrong)
        assert words in str(err.value), (words, str(err.value))
