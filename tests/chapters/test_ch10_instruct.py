"""Chapter 10's instruction-tuning pieces: the templated instruction set, the response-only loss
mask, the teacher-forced exact match, and the summaries the chapter asserts on."""

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from roadmap_lib.chapters.ch10_pretraining_finetuning import instruct as I
from roadmap_lib.chapters.ch10_pretraining_finetuning import plots
from roadmap_lib.zoo import load_char_gpt

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def zoo_gpt():
    model, vocab, _ = load_char_gpt()
    return model, vocab


@pytest.fixture(scope="module")
def words():
    return I.word_splits()


def test_answers_of_every_family():
    got = {f: I.answer(f, "hack") for f in I.FAMILIES}
    assert got == {"reverse": "kcah", "uppercase": "HACK", "first letter": "h", "length": "4",
                   "last letter": "k", "repeat": "hack hack"}


def test_prompts_use_one_frame_and_every_template_names_the_word():
    for f, templates in I.TEMPLATES.items():
        assert len(templates) == 4 and len(set(templates)) == 4
        for t in range(4):
            p = I.prompt(f, t, "zorch")
            assert p.startswith("Q: ") and p.endswith("\nA: ") and "zorch" in p


def test_seen_and_held_out_families_partition_the_families():
    assert set(I.SEEN) | set(I.HELD_OUT_FAMILIES) == set(I.FAMILIES)
    assert not set(I.SEEN) & set(I.HELD_OUT_FAMILIES)
    assert all(I.HELD_OUT_TEMPLATE not in ts for ts in I.CONDITIONS.values())


def test_word_splits_are_disjoint_and_seeded(words):
    assert len(words["test"]) == I.N_TEST_WORDS and len(words["train"]) > 1000
    assert not set(words["train"]) & set(words["test"])
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 6 for w in words["train"] + words["test"])
    assert I.word_splits() == words


def test_every_example_fits_the_context(zoo_gpt, words):
    longest = max(len(I.prompt(f, t, w) + I.answer(f, w) + I.END)
                  for f in I.FAMILIES for t in range(4) for w in words["train"] + words["test"])
    assert longest <= zoo_gpt[0].config.context_length
    assert max(len(I.answer(f, w)) for f in I.FAMILIES for w in words["test"]) < I.MAX_ANSWER


def test_eval_sets_hold_what_they_say(words):
    seen_t = I.eval_examples("seen template", words["test"])
    held_t = I.eval_examples("held-out template", words["test"])
    held_f = I.eval_examples("held-out family", words["test"])
    assert {(f, t) for f, t, _ in seen_t} == {(f, 0) for f in I.SEEN}
    assert {(f, t) for f, t, _ in held_t} == {(f, I.HELD_OUT_TEMPLATE) for f in I.SEEN}
    assert {f for f, _, _ in held_f} == set(I.HELD_OUT_FAMILIES) and {t for _, t, _ in held_f} == {0, 1, 2, 3}
    assert len(held_f) == 8 * len(words["test"])


def test_bad_arguments_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match="family: expected one of .* got 'sort'"):
        I.answer("sort", "abc")
    with pytest.raises(ValueError, match=r"template: expected 0 \.\. 3, got 4"):
        I.prompt("reverse", 4, "abc")
    with pytest.raises(ValueError, match="eval_set: expected one of"):
        I.eval_examples("train", ["abc"])
    with pytest.raises(ValueError, match="condition: expected one of .* got 'many'"):
        I.tune("many", 0)
    with pytest.raises(ValueError, match=r"prompt_len: expected 1 \.\. 4 .* got 5"):
        I.mask_prompt_targets(torch.arange(5), 5)
    with pytest.raises(ValueError, match="ids: expected a 1-D tensor"):
        I.mask_prompt_targets(torch.zeros(2, 3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="n_test: expected"):
        I.word_splits(n_test=0)


@given(st.integers(2, 40).flatmap(lambda L: st.tuples(st.just(L), st.integers(1, L - 1))))
def test_mask_prompt_targets_scores_exactly_the_response(lp):
    L, p = lp
    ids = torch.arange(100, 100 + L)
    t = I.mask_prompt_targets(ids, p)
    assert t.shape == (L - 1,)
    assert (t[: p - 1] == -100).all()
    assert torch.equal(t[p - 1:], ids[p:])  # every response token is a target, none of the prompt's


def test_encoded_example_targets_decode_to_the_response(zoo_gpt):
    _, vocab = zoo_gpt
    x, y = I.encode_example(vocab, "reverse", 1, "hack")
    p = I.prompt("reverse", 1, "hack")
    assert vocab.decode(x.tolist()) == p + "kcah"
    assert (y[: len(p) - 1] == -100).all()
    assert vocab.decode(y[y != -100].tolist()) == "kcah\n"


def test_prompt_tokens_carry_no_loss(zoo_gpt):
    """The gradient of the fine-tuning loss with respect to the logits is zero at every prompt
    position and non-zero at every response position; the loss is the mean over response tokens."""
    model, vocab = zoo_gpt
    rows = [I.encode_example(vocab, f, t, w) for f, t, w in (("reverse", 0, "hack"), ("length", 2, "foo"),
                                                             ("uppercase", 1, "cruft"))]
    x, y = I.collate(rows)
    kept = {}

    class Spy(torch.nn.Module):
        def forward(self, ids):
            kept["logits"] = model(ids).detach().requires_grad_(True)
            return kept["logits"]

    loss = I.response_loss(Spy(), x, y)
    loss.backward()
    grad_norm = kept["logits"].grad.norm(dim=-1)
    assert (grad_norm[y == -100] == 0).all() and (grad_norm[y != -100] > 0).all()
    with torch.no_grad():
        logits = model(x)
    by_hand = torch.cat([F.cross_entropy(logits[i][y[i] != -100], y[i][y[i] != -100], reduction="none")
                         for i in range(len(rows))]).mean()
    assert torch.allclose(loss, by_hand, atol=1e-6)


def test_collate_pads_right_without_changing_real_logits(zoo_gpt):
    model, vocab = zoo_gpt
    a, b = I.encode_example(vocab, "reverse", 0, "hack"), I.encode_example(vocab, "repeat", 0, "kludge")
    x, _ = I.collate([a, b])
    with torch.no_grad():
        alone = model(a[0][None])[0]
        padded = model(x)[0, : len(a[0])]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_teacher_forced_exact_match_agrees_with_greedy_decoding(zoo_gpt, words):
    model, vocab = zoo_gpt
    ex = I.eval_examples("held-out family", words["test"])[::40]
    prompts = [I.prompt(*e) for e in ex]
    greedy = I.greedy_answers(model, vocab, prompts)
    assert I.greedy_matches(model, vocab, list(zip(prompts, greedy))) == [not g.endswith("...") for g in greedy]
    assert not any(I.greedy_matches(model, vocab, [(p, g + "x") for p, g in zip(prompts, greedy)]))


def test_conditions_draw_the_same_families_and_words(zoo_gpt, words):
    _, vocab = zoo_gpt
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    xa, _ = I.batch_sampler(vocab, words["train"], I.CONDITIONS["varied"], 8)("train", g1)
    xb, _ = I.batch_sampler(vocab, words["train"], I.CONDITIONS["one template"], 8)("train", g2)
    ra = [vocab.decode(r.tolist()) for r in xa]
    rb = [vocab.decode(r.tolist()) for r in xb]
    assert [r.split("\nA: ")[1].rstrip("\n") for r in ra] == [r.split("\nA: ")[1].rstrip("\n") for r in rb]
    starts = ["Q: " + I.TEMPLATES[f][0].split("{w}")[0] for f in I.SEEN]
    assert all(any(r.startswith(s) for s in starts) for r in rb)  # one template: always template 0
    assert not all(any(r.startswith(s) for s in starts) for r in ra)  # varied: other templates too


def test_untuned_model_scores_zero_on_the_held_out_template(zoo_gpt, words):
    model, vocab = zoo_gpt
    sc = I.score(model, vocab, words["test"][:3])
    assert set(sc) == set(I.EVAL_SETS) and sc["held-out template"]["exact"] == 0.0
    assert 0 <= sc["held-out family"]["answers_a_seen_family"] <= 1


def test_summarise_means_and_spread():
    def row(c, s, v):
        return {"condition": c, "seed": s, "scores": {e: {"exact": v} for e in I.EVAL_SETS}}
    out = I.summarise([row("varied", 0, 0.2), row("varied", 1, 0.4), row("one template", 0, 0.1)])
    assert out["varied"]["held-out template"] == {"mean": pytest.approx(0.3), "min": 0.2, "max": 0.4,
                                                  "values": [0.2, 0.4]}
    assert out["one template"]["seen template"]["mean"] == 0.1


def test_plot_instruct_draws_one_group_per_eval_set():
    def row(c, s, v):
        return {"condition": c, "seed": s, "scores": {e: {"exact": v} for e in I.EVAL_SETS}}
    rows = [row(I.BASE, None, 0.0)] + [row(c, s, 0.1 * s) for c in I.CONDITIONS for s in I.SEEDS]
    ax = plots.plot_instruct(rows)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(I.EVAL_SETS)
    assert len(ax.patches) == len(I.EVAL_SETS) * (1 + len(I.CONDITIONS))
    rows = [{**r, "scores": {e: {"exact": 0.1, "by_family": {"a": 0.1, "b": 0.2}} for e in I.EVAL_SETS}} for r in rows]
    ax = plots.plot_instruct_by_family(rows, "held-out family")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
