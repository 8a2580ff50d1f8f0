"""roadmap_lib.chapters.ch18_decoding_generation: text measures, the fact table, exact expected
accuracy, self-consistency statistics, the experiment drivers and figures, on a tiny random GPT."""

import matplotlib

matplotlib.use("Agg")

import re

import matplotlib.pyplot as plt
import pytest
import torch

from roadmap_lib.chapters.ch18_decoding_generation import experiments as ex
from roadmap_lib.chapters.ch18_decoding_generation import plots
from roadmap_lib.data import CharVocab
from roadmap_lib.models import GPT, GPTConfig

CORPUS = ("Some text about hackers and the hacker ethic goes here, long enough.\n\n"
          ":foo: n.\n\nA metasyntactic variable.\n\n:bar: vt.\n\nTo do a bar.\n\n"
          ":quux: /kwuhks/, n.\n\nAnother one.\n\n:zap:\n\nNo tag at all, and some more words.\n\n"
          "The standard the start of the standard program is here again, and more lines follow.\n")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vocab = CharVocab.from_text(CORPUS + '{}"0123456789-:,. abcdefghijklmnopqrstuvwxyz')
    model = GPT(GPTConfig(vocab_size=len(vocab.chars), context_length=64, d_model=32, n_layers=1,
                          n_heads=2)).eval()
    return model, vocab


def test_text_measures():
    assert ex.words("The cat sat on the ma") == ["the", "cat", "sat", "on", "the"]  # last run may be cut
    assert ex.word_share(["the cat zzq x"], {"the", "cat"}) == pytest.approx(2 / 3)
    assert ex.distinct_n(["a b a b a b end"], 2) == pytest.approx(2 / 5)  # ab ba ab ba ab: 2 distinct
    assert ex.distinct_n(["a b c", "d e f"], 2) == 1.0
    assert ex.repeated_ngrams("abcdabcd", 4) == pytest.approx(1 - 4 / 5)
    assert ex.repeated_ngrams("abcdefgh", 4) == 0.0


def test_pick_prompts_rule_and_disjoint_offsets():
    a, b = ex.pick_prompts(CORPUS, 2), ex.pick_prompts(CORPUS, 2, offset=3)
    assert all(len(p) == ex.PROMPT_CHARS and p[0].isalpha() for p in a + b)
    assert a[0] == CORPUS[:ex.PROMPT_CHARS]
    assert a != b


def test_fact_table_reads_entry_lines():
    facts = ex.fact_table(CORPUS, n=10, width=12)
    assert [(h, t) for h, t, _ in facts] == [("foo", "n."), ("bar", "vt."), ("zap", "")]  # quux has a guide
    for head, tag, prompt in facts:
        assert len(prompt) == 12 and prompt.endswith(f":{head}:")
        assert CORPUS[CORPUS.index(prompt) + 12:].startswith(ex.answer_text(tag))


def test_read_answer():
    assert ex.read_answer(" n.\n\nA thing") == "n."
    assert ex.read_answer("\nrest") == ""
    assert ex.read_answer(" /kwuhks/, n.\n") == "n."
    assert ex.read_answer(" /unfinished") == "/unfinished"


def test_expected_accuracy_is_the_probability_of_the_answer(tiny):
    model, vocab = tiny
    facts = ex.fact_table(CORPUS, n=10, width=12)
    per_fact = ex.answer_logits(model, vocab, facts)
    for (logits, target), (_, tag, prompt) in zip(per_fact, facts):
        assert vocab.decode(target) == ex.answer_text(tag)
        full = vocab.encode(prompt + ex.answer_text(tag))[None]
        with torch.no_grad():
            logp = model(full[:, :-1]).log_softmax(-1)[0, -len(target):]
        torch.testing.assert_close(logits.log_softmax(-1), logp)
    t = 0.7
    by_hand = sum(torch.exp(sum((lg / t).log_softmax(-1)[i, c] for i, c in enumerate(tg.tolist()))).item()
                  for lg, tg in per_fact) / len(per_fact)
    assert ex.expected_accuracy(per_fact, t) == pytest.approx(by_hand, rel=1e-5)
    greedy_right = [bool((lg.argmax(-1) == tg).all()) for lg, tg in per_fact]
    assert ex.expected_accuracy(per_fact, 0.0) == sum(greedy_right) / len(per_fact)


def test_self_consistency_statistics():
    facts = [("a", "n.", ""), ("b", "n.", ""), ("c", "vt.", ""), ("d", "adj.", "")]
    answers = [["n."] * 4, ["vt.", "n.", "adj.", "x"], ["n.", "n.", "n.", "vt."], ["adj.", "n.", "v.", "x"]]
    r = ex.self_consistency(answers, facts, threshold=0.5)
    # majority: n. (right, 1.0), vt. (wrong, .25), n. (wrong, .75), adj. (right, .25)
    assert r["accuracy"] == 0.5 and r["wrong_rate"] == 0.5
    assert r["agreement"] == [1.0, 0.25, 0.75, 0.25]
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["flagged"] == 0.5


def test_sample_answers_shapes_and_seed(tiny):
    model, vocab = tiny
    facts = ex.fact_table(CORPUS, n=10, width=12)
    a = ex.sample_answers(model, vocab, facts, k=3, seed=0, max_new_tokens=6)
    assert [len(x) for x in a] == [3, 3, 3]
    assert a == ex.sample_answers(model, vocab, facts, k=3, seed=0, max_new_tokens=6)
    with pytest.raises(ValueError, match="facts"):
        ex.sample_answers(model, vocab, [("a", "n.", "ab"), ("b", "n.", "abc")], k=1, seed=0)


def test_frontier_rows(tiny):
    model, vocab = tiny
    methods = {"temperature": ("temperature", [0.5, 1.0]), "min-p": ("min_p", [0.2])}
    rows = ex.frontier(model, vocab, ["the hacker", "a standard"], {"the"}, replicates=2,
                       samples_per_prompt=2, new_tokens=12, methods=methods)
    assert len(rows) == 3 * 2
    assert {(r["method"], r["value"]) for r in rows} == {("temperature", 0.5), ("temperature", 1.0), ("min-p", 0.2)}
    assert all(0 <= r["word_share"] <= 1 and 0 <= r["distinct2"] <= 1 for r in rows)
    means = ex.mean_over_seeds(rows, "word_share")
    assert set(means) == {("temperature", 0.5), ("temperature", 1.0), ("min-p", 0.2)}
    with pytest.raises(ValueError, match="prompts: expected strings of one length"):
        ex.frontier(model, vocab, ["the hacker", "a"], {"the"}, methods=methods)
    assert ex.frontier(model, vocab, ["the hacker", "a standard"], {"the"}, replicates=2, samples_per_prompt=2,
                       new_tokens=12, methods=methods) == rows


def test_repetition_study_greedy_matches_generate(tiny):
    model, vocab = tiny
    sets = [["the hacker"], ["a standard"]]
    rows = ex.repetition_study(model, vocab, sets, {"the"}, new_tokens=20, contrastive={"top_k": 2, "alpha": 0.5},
                               settings={"greedy": {}, "no-repeat 3": {"no_repeat_ngram_size": 3}})
    assert [r["setting"] for r in rows] == ["greedy"] * 2 + ["no-repeat 3"] * 2 + ["contrastive"] * 2
    assert rows[0]["sample"] == ex.greedy_texts(model, vocab, ["the hacker"], 20)[0]
    text = "the hacker" + rows[2]["sample"]  # the ban covers the prompt too
    grams = [text[i:i + 3] for i in range(len(text) - 2)]
    assert len(set(grams)) == len(grams)
    assert rows[2]["repeated"] == 0.0


def test_constrained_study_all_valid(tiny):
    model, vocab = tiny
    pattern = r"\d\d-\d\d\."
    rows = ex.constrained_study(model, vocab, "date: ", pattern, n=6, seeds=(0, 1), max_new_tokens=10)
    assert len(rows) == 4
    for r in rows:
        if r["constrained"]:
            assert r["valid"] == 1.0
            assert all(re.match(pattern, s) for s in r["samples"])
        assert r["logprob"] < 0


def test_plots_return_axes(tiny):
    model, vocab = tiny
    rows = [{"method": m, "value": v, "replicate": r, "word_share": 0.5 + 0.1 * r, "distinct2": 0.9}
            for m in ("temperature", "min-p") for v in (0.5, 1.0) for r in range(2)]
    assert plots.plot_frontier(rows, highlight=("min-p", 0.5)) is not None
    rep = [{"setting": s, "prompt_set": i, "repeated": 0.1 * i, "word_share": 0.9} for s in ("a", "b") for i in range(3)]
    assert plots.plot_repetition(rep) is not None
    assert plots.plot_accuracy_vs_temperature([0, 1], [0.5, 0.3], {1: [0.3, 0.31]}, 0.6) is not None
    sc = [{"agreement": [1.0, 0.4], "wrong": [False, True]}]
    assert plots.plot_agreement(sc) is not None
    ax = plots.plot_step(model, vocab, "the hacker", min_p=0.2, repetition_penalty=1.3)
    assert "can be drawn" in ax.get_title()
    plt.close("all")
