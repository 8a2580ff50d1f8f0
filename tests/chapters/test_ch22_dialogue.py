"""Chapter 22's dialogue row (roadmap_lib.chapters.ch22_applications.dialogue): the exchanges and
their split, the assistant-only loss (user characters carry no loss), the teacher-forced answers,
the retrieval baseline, and the scores."""

import pytest
import torch

from roadmap_lib.chapters.ch22_applications import dialogue as D
from roadmap_lib.data import CharVocab


@pytest.fixture(scope="module")
def vocab():
    return CharVocab("\n !:?abcdefghijklmnopqrstuvwxyz")


def test_exchange_layout_and_context():
    ex = D.Exchange("eve", "jazz", True, "name")
    assert ex.text() == "u:i am eve\na:hi eve\nu:i like jazz\na:ok jazz\nu:name?\na:eve\n"
    assert D.Exchange("eve", "jazz", False, "thing").turns()[0] == ("u", "i like jazz")
    assert D.Exchange("eve", "jazz", False, "thing").turns()[-1] == ("a", "jazz")
    longest = max((D.Exchange(n, t, f, q) for n in D.NAMES for t in D.THINGS for f in (True, False) for q in D.QUESTIONS),
                  key=lambda e: len(e.text()))
    assert len(longest.text()) - 1 <= D.CONTEXT  # the model's input is the text minus its last character


def test_split_holds_out_pairs_not_names():
    train, test = D.make_exchanges(0)
    assert (train, test) == D.make_exchanges(0)
    assert len(train) + len(D.NAMES) * len(D.THINGS) * 4 // 4 == len(D.NAMES) * len(D.THINGS) * 4
    assert len(test) == D.N_TEST
    train_pairs = {(e.name, e.thing) for e in train}
    assert not {(e.name, e.thing) for e in test} & train_pairs
    assert {e.name for e in test} <= {e.name for e in train} and {e.thing for e in test} <= {e.thing for e in train}


def test_user_characters_carry_no_loss(vocab):
    text = D.Exchange("bob", "tea", True, "thing").text()
    inputs, targets = D.encode_with_targets(vocab, text)
    assert len(inputs) == len(targets) == len(text) - 1
    counted = "".join(text[i + 1] for i, t in enumerate(targets) if t != D.IGNORE)
    assert counted == "hi bob\nok tea\ntea\n"  # assistant texts and their newlines, nothing else
    for i, t in enumerate(targets):
        if t != D.IGNORE:
            assert t == torch.as_tensor(vocab.encode(text[i + 1])).item()
    with pytest.raises(ValueError, match="text: expected an exchange ending in a newline"):
        D.encode_with_targets(vocab, text[:-1])


def test_loss_gradient_is_zero_at_user_positions(vocab):
    """The loss does not depend on what the model predicts where a user character comes next."""
    from roadmap_lib.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab.vocab_size, context_length=64, d_model=16, n_layers=1, n_heads=2))
    exs = [D.Exchange("bob", "tea", True, "name"), D.Exchange("ivy", "chess", False, "thing")]
    inputs, targets = D.batch(vocab, exs)
    logits = model(inputs).detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=D.IGNORE)
    loss.backward()
    user = targets == D.IGNORE
    assert logits.grad[user].abs().max() == 0 and logits.grad[~user].abs().max() > 0
    assert D.sft_loss(model, inputs, targets).item() == pytest.approx(loss.item(), rel=1e-6)


def test_scores_and_the_retrieval_baseline():
    ex = [D.Exchange("amy", "tea", True, "name"), D.Exchange("bob", "pie", False, "thing")]
    assert D.prompts(ex[0])[2] == ("u:i am amy\na:hi amy\nu:i like tea\na:ok tea\nu:name?\na:", "amy")
    s = D.turn_scores([["hi amy", "ok tea", "tea"], ["ok pie", "hi bob", "pie"]], ex)
    assert s.tolist() == [[1, 1, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="answers: expected one list per exchange"):
        D.turn_scores([["hi amy", "ok tea", "amy"]], ex)
    memory = [D.Exchange(n, t, f, q) for n, t in (("amy", "tea"), ("bob", "pie"), ("amy", "pie"))
              for f in (True, False) for q in D.QUESTIONS]
    assert D.turn_scores(D.nearest_turn(memory, ex), ex).min() == 1  # in memory: retrieval is exact


def test_fine_tuning_lowers_the_assistant_loss_and_answers_are_turns(vocab):
    """A tiny GPT (not the zoo's, for speed): 30 steps cut the assistant-only loss by a quarter, and every
    answer is one line."""
    from roadmap_lib.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab.vocab_size, context_length=64, d_model=32, n_layers=1, n_heads=2))
    train, test = D.make_exchanges(0)
    losses = D.train_sft(model, vocab, train, steps=30, batch_size=8, lr=3e-3, seed=0)
    assert sum(losses[-5:]) / 5 < 0.75 * losses[0]  # measured: about 0.65
    answers = D.answer_turns(model, vocab, test[:5])
    assert len(answers) == 5 and all(len(a) == 3 and all("\n" not in t for t in a) for a in answers)
