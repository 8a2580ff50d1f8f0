"""Chapter 20: experiment drivers, documentation helpers, exercise checks and figures."""

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from roadmap_lib.chapters.ch20_responsible_ai import (
    docs,
    plots,
)
from roadmap_lib.chapters.ch20_responsible_ai import exercises as X
from roadmap_lib.chapters.ch20_responsible_ai import experiments as E
from roadmap_lib.chapters.ch20_responsible_ai.artifacts import ARTIFACTS, RESULTS
from roadmap_lib.data import CharVocab
from roadmap_lib.exercises import ExerciseError
from roadmap_lib.generation import decode_loop
from roadmap_lib.models.gpt import GPT, GPTConfig
from roadmap_lib.watermark import detect, green_table


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vocab = CharVocab("".join(sorted(set(E.val_text()))))
    model = GPT(GPTConfig(vocab_size=len(vocab.itos), context_length=32, d_model=16, n_layers=1, n_heads=2)).eval()
    return model, vocab


def test_generate_without_bias_matches_the_plain_sampling_loop(tiny):
    model, vocab = tiny
    table = green_table(len(vocab.itos), 0.5, key=1)
    prompt = E.prompts(vocab, 3, seed=0, length=4)
    ids, logp = E.generate(model, prompt, 10, table=table, delta=0.0, seed=5)
    g = torch.Generator().manual_seed(5)
    ref = decode_loop(model, prompt, 10, lambda _, lg: torch.multinomial(lg.softmax(-1), 1, generator=g)[:, 0])
    assert torch.equal(ids, ref)
    with torch.no_grad():
        full = model(ids[:, :-1]).log_softmax(-1)[:, 3:].gather(-1, ids[:, 4:, None])[..., 0]
    assert torch.allclose(logp, full, atol=1e-5)


def test_generate_rebuilds_the_cache_past_the_context(tiny):
    model, vocab = tiny
    table = green_table(len(vocab.itos), 0.5, key=1)
    ids, logp = E.generate(model, E.prompts(vocab, 2, seed=0, length=4), 70, table=table, delta=8.0, seed=0, keep=8)
    assert ids.shape == (2, 74) and logp.shape == (2, 70) and bool((logp <= 0).all())
    assert float(detect(ids, table, start=4).min()) > 3  # a strong bias is visible even on a random model


def test_watermark_study_shapes_and_false_positives(tiny):
    model, vocab = tiny
    s = E.watermark_study(model, vocab, deltas=(0.0, 6.0), seeds=(0, 1), n_rows=4, n_new=30, lengths=(10, 30))
    assert set(s["rate"]) == {(0.0, 0), (6.0, 0), (0.0, 1), (6.0, 1)}
    assert all(s["rate"][0.0, k][30] == 0 for k in (0, 1))
    assert s["rate"][6.0, 0][30] > s["rate"][0.0, 0][30]
    assert all(v < 0 for v in s["loglik"].values())  # a random model: no quality to lose
    assert s["human_z"][10].shape == (200,)


def test_weat_words_are_in_the_bert_vocabulary_and_tests_run():
    bert, vocab, record = E.load_bert()
    for sets in E.WEAT_SETS.values():
        for words in sets.values():
            assert all(w in vocab for w in words)
    emb = E.input_embeddings(bert)
    assert emb.shape == (len(vocab), record["model_config"]["d_model"])
    table = E.weat_table(emb, vocab)
    assert all(0 <= r["p_value"] <= 1 and r["exact"] for r in table.values())
    with pytest.raises(ValueError, match="words"):
        E.word_vectors(emb, vocab, ["no-such-word-here"])


def test_minimal_pairs_score_the_sentence_end_only(tiny):
    model, vocab = tiny
    ids = vocab.encode("\nHe is.")
    with torch.no_grad():
        logp = model(ids[None, :-1])[0].log_softmax(-1)
    want = sum(float(logp[i - 1, ids[i]]) for i in range(3, len(ids)))
    assert E.continuation_logp(model, vocab, "He", " is.") == pytest.approx(want, abs=1e-5)
    r = E.minimal_pair_test(model, vocab)
    assert r["tech"].shape == (len(E.PAIR_TEMPLATES),) and r["neutral"].shape == (len(E.NEUTRAL_TEMPLATES),)


def test_canaries_are_planted_the_stated_number_of_times():
    setup = E.canary_setup(0, n_chars=5000, duplicates=(1, 3))
    for name, pin in setup["pins"].items():
        assert setup["text"].count(E.canary(name, pin).strip()) == setup["counts"][name]
        assert len(pin) == 4 and pin.isdigit()


def test_memorisation_study_trains_each_width_on_the_same_canaries(monkeypatch):
    """Two widths, three steps, the 10 000-pin scoring stubbed out (the artifact's verify re-measures
    it for real): same canaries and seeds for both widths, and parameter counts grow with width."""
    monkeypatch.setattr(E, "canary_exposures", lambda model, vocab, pins: {
        n: {"exposure": float(model.config.d_model), "extracted": False} for n in pins})
    monkeypatch.setattr(E, "greedy_pin", lambda model, vocab, name: "none")
    study = E.memorisation_study((8, 16), (0,), steps=3)
    assert [r["d_model"] for r in study["rows"]] == [8] * 10 + [16] * 10
    assert study["rows"][0]["params"] < study["rows"][10]["params"]
    assert [r["name"] for r in study["rows"][:10]] == [r["name"] for r in study["rows"][10:]]
    assert len(study["losses"]) == 2
    assert E.by_size_and_duplicates(study, "exposure")[16, 256] == [16.0, 16.0]


def test_size_gaps_compare_means_with_the_spread():
    rows = [{"d_model": w, "duplicates": c, "exposure": v} for w, c, vs in [
        (8, 1, [1.0, 2.0]), (16, 1, [1.5, 2.5]), (8, 4, [1.0, 2.0]), (16, 4, [9.0, 10.0])] for v in vs]
    gaps = {g["copies"]: g for g in E.size_gaps({"rows": rows})}
    assert gaps[1]["gap"] == 0.5 and gaps[1]["noise"] == 1.0 and not gaps[1]["clear"]
    assert gaps[4]["gap"] == 8.0 and gaps[4]["clear"] and (gaps[4]["small"], gaps[4]["large"]) == (8, 16)
    rates = [{"d_model": w, "duplicates": 1, "seed": s, "greedy": g} for w, s, g in [
        (8, 0, False), (8, 0, False), (8, 1, False), (8, 1, True), (16, 0, True), (16, 0, True), (16, 1, True),
        (16, 1, True)]]
    (per_canary,), (per_seed,) = E.size_gaps({"rows": rates}, "greedy"), E.size_gaps({"rows": rates}, "greedy", True)
    assert per_canary["gap"] == 0.75 and per_canary["noise"] == 1.0 and not per_canary["clear"]
    assert per_seed["gap"] == 0.75 and per_seed["noise"] == 0.5 and per_seed["clear"]


def test_greedy_pin_decodes_after_the_canary_prefix():
    """An oracle that writes a fixed text position by position: greedy_pin reads the 4 characters
    after the prefix."""
    text = "\nthe pin of alice is 1234"
    vocab = CharVocab.from_text(text + "0123456789")

    class Oracle(torch.nn.Module):
        config = GPTConfig(vocab_size=len(vocab.itos), context_length=32)

        def forward(self, ids):
            target = vocab.encode(text[1:] + "9" * 32)[: ids.shape[1]]
            return torch.nn.functional.one_hot(target, len(vocab.itos)).float()[None].expand(len(ids), -1, -1) * 5

    assert E.greedy_pin(Oracle(), vocab, "alice") == "1234"


def test_exposure_of_a_canary_rises_when_trained_on_it():
    text = E.canary("alice", "1234") * 50 + "some other text here\n" * 20
    vocab = CharVocab.from_text(text + "0123456789")
    model, losses = E.train_tiny(text, vocab, seed=0, steps=60, batch=8)
    assert losses[-1] < losses[0]
    r = E.canary_exposures(model, vocab, {"alice": "1234"})
    assert r["alice"]["exposure"] > 10


def test_word_counts_and_share():
    counts = E.word_counts(["hacker", "zzzzqq"])
    assert counts["hacker"] > 100 and counts["zzzzqq"] == 0
    assert E.words_share("the hacker xqzv", {"the", "hacker"}) == pytest.approx(2 / 3)


# --- documentation ---------------------------------------------------------------------------


def test_energy_arithmetic_and_assumption_checks():
    e = docs.energy(3600, docs.EnergyAssumptions(watts_per_core=20, grams_co2_per_kwh=500, pue=1.5), cores=2)
    assert e["kwh"] == pytest.approx(3600 * 2 * 20 * 1.5 / 3.6e6)
    assert e["grams_co2"] == pytest.approx(e["kwh"] * 500)
    with pytest.raises(ValueError, match="pue"):
        docs.EnergyAssumptions(pue=0.5)
    with pytest.raises(ValueError, match="watts_per_core"):
        docs.EnergyAssumptions(watts_per_core=-1)
    with pytest.raises(ValueError, match="seconds"):
        docs.energy(-1)


def test_model_card_and_records_come_from_the_files():
    sheet = docs.datasheet_files()
    card = docs.model_card("gpt-char-jargon")
    assert sheet["zoo/gpt-char-jargon.safetensors"]["sha256"][:12] in card
    assert "python -m roadmap_lib build gpt-char-jargon" in card
    rows = {r["file"]: r for r in docs.build_records()}
    assert rows["zoo/gpt-char-jargon.json"]["seconds"] > 0


# --- exercises -------------------------------------------------------------------------------


def _z_right(ids, table):
    gamma = table[0].sum().item() / table.shape[1]
    green = table[ids[:, :-1], ids[:, 1:]].sum(1).double()
    n = ids.shape[1] - 1
    return (green - gamma * n) / math.sqrt(n * gamma * (1 - gamma))


def test_watermark_exercise_accepts_the_answer_and_names_mistakes(capsys):
    X.check_watermark_z(_z_right)

    def no_shift(ids, table):
        gamma = table[0].sum().item() / table.shape[1]
        green = table[ids, ids].sum(1).double()
        n = ids.shape[1]
        return (green - gamma * n) / math.sqrt(n * gamma * (1 - gamma))

    def poisson(ids, table):
        gamma = table[0].sum().item() / table.shape[1]
        green = table[ids[:, :-1], ids[:, 1:]].sum(1).double()
        return (green - gamma * (ids.shape[1] - 1)) / math.sqrt((ids.shape[1] - 1) * gamma)

    for wrong, words in [(no_shift, "predecessor"), (poisson, "variance")]:
        with pytest.raises(ExerciseError, match=words):
            X.check_watermark_z(wrong)


def test_association_exercise_names_mistakes():
    X.check_association(lambda W, A, B: X.association(W, A, B))
    with pytest.raises(ExerciseError, match="dot products"):
        X.check_association(lambda W, A, B: (W @ A.T).mean(1) - (W @ B.T).mean(1))
    with pytest.raises(ExerciseError, match="swapped"):
        X.check_association(lambda W, A, B: X.association(W, B, A))


def test_prediction_check():
    s = {"seeds": [0], "z": {(1.0, 0): {100: torch.tensor([3.0, 1.0, 2.5, 0.0])}}}
    X.check_prediction(0.4, 0.5, s, delta=1.0, length=100, threshold=2.0)
    with pytest.raises(ExerciseError):
        X.check_prediction(0.4, 0.25, s, delta=1.0, length=100, threshold=2.0)
    with pytest.raises(ValueError, match="prediction"):
        X.check_prediction(4.0, 0.5, s, delta=1.0, length=100, threshold=2.0)


# --- figures and artifact ----------------------------------------------------------------------


def test_plots_draw(tiny):
    model, vocab = tiny
    s = E.watermark_study(model, vocab, deltas=(0.0, 2.0), seeds=(0, 1, 2), n_rows=2, n_new=12, lengths=(6, 12))
    for ax in (plots.plot_detection(s), plots.plot_quality(s), plots.plot_z_hist(s, 2.0, 12)):
        assert ax.get_title()
    rows = [{"duplicates": d, "exposure": float(d), "extracted": d > 3} for d in (1, 4, 1, 4)]
    assert plots.plot_exposure(rows, 13.3).get_xlabel()
    study = {"rows": [{"d_model": w, "params": 1000 * w, "seed": s, "duplicates": c, "exposure": float(c),
                       "greedy": c > 2} for w in (8, 16) for s in (0, 1) for c in (1, 4) for _ in range(2)]}
    assert plots.plot_memorisation(study, max_bits=13.3).get_ylabel() == "exposure (bits)"
    ax = plots.plot_memorisation(study, "greedy")
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [[0.0, 1.0], [0.0, 1.0]]
    assert plots.plot_associations(torch.ones(2), -torch.ones(1), ["a", "b"], ["c"], "t").get_title() == "t"
    assert plots.plot_energy([{"file": "a", "grams_co2": 1.0}]).get_xlabel()
    matplotlib.pyplot.close("all")


def test_artifact_is_registered_with_its_file():
    (art,) = [a for a in ARTIFACTS if a.name == "20-canaries"]
    assert sorted(a.name for a in ARTIFACTS) == ["20-canaries", "20-injection", "20-memorisation"]
    assert art.name == "20-canaries" and art.files == (RESULTS,) and art.chapter == "20"
