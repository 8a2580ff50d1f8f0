"""The chapter-05 translation experiment: batches, decoding, attention maps, the shipped checkpoint."""

import pytest
import torch

from roadmap_lib.chapters.ch05_encoder_decoder.translation import (
    BOS,
    EOS,
    PAD,
    ExperimentConfig,
    WordVocab,
    _BeamDecoder,
    alignment_map,
    beam_translate,
    cross_attention,
    encode_sources,
    greedy_translate,
    load,
    make_batch,
    verb_alignment,
)
from roadmap_lib.data import load_task
from roadmap_lib.generation import beam_search
from roadmap_lib.models.encoder_decoder import Transformer

ROWS = load_task("translation", "train")[:50]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vocab = WordVocab.from_rows(ROWS)
    model = Transformer(ExperimentConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64).model_config(len(vocab)))
    return model.eval(), vocab


def test_vocab_round_trip_and_batches(tiny):
    _, vocab = tiny
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert vocab.decode(vocab.encode(ROWS[0]["tgt"]) + [EOS, 7]) == ROWS[0]["tgt"]
    assert vocab.encode("zzz-not-a-word") == [3]
    (src, mask, tgt_in), tgt_out = make_batch(vocab, ROWS[:3])
    assert (mask == (src == PAD)).all() and (tgt_in[:, 0] == BOS).all()
    lengths = [len(r["tgt"].split()) for r in ROWS[:3]]
    for i, n in enumerate(lengths):
        assert tgt_out[i, n] == EOS and (tgt_out[i, n + 1:] == -100).all()
        assert (tgt_in[i, 1:n + 1] == tgt_out[i, :n]).all()


def test_greedy_matches_step_by_step_argmax(tiny):
    model, vocab = tiny
    sentences = [r["src"] for r in ROWS[:3]]
    batched = greedy_translate(model, vocab, sentences, max_new_tokens=8)
    for sentence, got in zip(sentences, batched):
        src, mask = encode_sources(vocab, [sentence])
        memory = model.encode(src, mask)
        ids = torch.tensor([[BOS]])
        for _ in range(8):  # no cache, no batching: the definition
            token = model.decode(ids, memory, mask)[0, -1].argmax()
            if token == EOS:
                break
            ids = torch.cat([ids, token.view(1, 1)], dim=1)
        assert got == vocab.decode(ids[0, 1:])


def test_beam_one_equals_greedy_and_beam_is_no_worse(tiny):
    model, vocab = tiny
    sentences = [r["src"] for r in ROWS[:4]]
    assert beam_translate(model, vocab, sentences, num_beams=1, max_new_tokens=8) == \
        greedy_translate(model, vocab, sentences, max_new_tokens=8)

    def logp(memory, mask, ids):  # log p(ids[1:] | ids[0] = <bos>, source), summed
        logits = model.decode(torch.tensor([ids[:-1]]), memory, mask)
        return torch.log_softmax(logits, -1)[0, torch.arange(len(ids) - 1), ids[1:]].sum().item()

    for sentence in sentences:  # with no length penalty, beam finds a sequence at least as likely
        src, mask = encode_sources(vocab, [sentence])
        memory = model.encode(src, mask)
        greedy_ids = [BOS]
        for _ in range(6):
            greedy_ids.append(model.decode(torch.tensor([greedy_ids]), memory, mask)[0, -1].argmax().item())
            if greedy_ids[-1] == EOS:
                break
        best = beam_search(_BeamDecoder(model, memory, mask), torch.tensor([[BOS]]), 6, num_beams=4,
                           length_penalty=0.0, eos_token_id=EOS)[0].tolist()
        assert logp(memory, mask, best) >= logp(memory, mask, greedy_ids) - 1e-5


def test_cross_attention_maps(tiny):
    model, vocab = tiny
    row = ROWS[0]
    maps = cross_attention(model, vocab, row["src"], row["tgt"])
    T, S = len(row["tgt"].split()) + 1, len(row["src"].split())
    assert maps.shape == (2, 2, T, S)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, T), atol=1e-5)
    # the hooks are gone and the model output is unchanged by having measured them
    assert all(not block.cross_attn._forward_hooks for block in model.decoder)


def test_shipped_checkpoint_learnt_the_task():
    # its recorded numbers are re-measured by tests/test_artifacts.py
    model, _, record = load()
    assert sum(p.numel() for p in model.parameters()) > 0 and not model.training
    assert record["test_bleu_greedy"] > 90  # the task is learnt


def test_alignment_map_and_verb_alignment(tiny):
    model, vocab = tiny
    weights, source, target = alignment_map(model, vocab, ROWS[0], layer=0)
    assert weights.shape == (len(target), len(source)) and target[-1] == "<eos>"
    assert torch.allclose(weights, cross_attention(model, vocab, ROWS[0]["src"], ROWS[0]["tgt"])[0].mean(0))
    assert 0.0 <= verb_alignment(model, vocab, ROWS[:10]) <= 1.0
    with pytest.raises(ValueError, match="exactly one English verb"):
        verb_alignment(model, vocab, [{"src": "the cat", "tgt": "x"}])
