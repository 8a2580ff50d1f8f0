"""Chapter 22's translation row (roadmap_lib.chapters.ch22_applications.translate): the zoo model
decoded through the core loader reproduces chapter 05's recorded BLEU; the dictionary baseline;
BLEU and chrF from per-sentence statistics equal the corpus metrics."""

import pytest

from roadmap_lib.chapters.ch22_applications import translate as T
from roadmap_lib.data import load_task
from roadmap_lib.metrics import corpus_bleu, corpus_chrf


@pytest.mark.slow
def test_greedy_translation_reproduces_chapter_05s_recorded_bleu():
    """Greedy decoding of the 200 test sentences chapter 05 records (about 5 s on one thread)."""
    model, vocab, record = T.load_zetan()
    n = record["experiment_config"]["eval_sentences"]
    rows = load_task("translation", "test")[:n]
    hyps = T.translate(model, vocab, [r["src"] for r in rows], batch_size=64)
    assert corpus_bleu(hyps, [r["tgt"] for r in rows]).score == pytest.approx(record["test_bleu_greedy"], abs=1e-9)


def test_dictionary_learns_a_one_to_one_lexicon():
    pairs = [("the cat sleeps", "kato la dormi"), ("the dog sleeps", "hundo la dormi"), ("the cat runs", "kato la kuri"),
             ("a cat runs", "kato un kuri"), ("a dog runs", "hundo un kuri"), ("a dog sleeps", "hundo un dormi")]
    d = T.DictionaryTranslator(pairs)
    assert d.lexicon == {"the": "la", "cat": "kato", "sleeps": "dormi", "dog": "hundo", "a": "un", "runs": "kuri"}
    assert d("the dog runs") == "la hundo kuri"
    assert d("the bird runs") == "la kuri"  # an unseen word is dropped
    with pytest.raises(ValueError, match="pairs: expected at least one"):
        T.DictionaryTranslator([])


def test_statistics_sum_to_the_corpus_metrics():
    rows = load_task("translation", "val")[:40]
    d = T.DictionaryTranslator([(r["src"], r["tgt"]) for r in load_task("translation", "train")[:2000]])
    hyps, refs = [d(r["src"]) for r in rows], [r["tgt"] for r in rows]
    hyps[3] = refs[3]  # one perfect sentence, so that some higher-order n-grams match
    bleu, chrf = T.segment_statistics(hyps, refs)
    assert bleu.shape == (40, 10) and chrf.shape == (40, 18)
    assert T.corpus_bleu_of(bleu) == pytest.approx(corpus_bleu(hyps, refs).score, abs=1e-9)
    assert T.corpus_chrf_of(chrf) == pytest.approx(corpus_chrf(hyps, refs), abs=1e-9)
    with pytest.raises(ValueError, match="references: expected 40 \\(one per hypothesis\\), got 39"):
        T.segment_statistics(hyps, refs[:39])
