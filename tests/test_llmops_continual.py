"""roadmap_lib.llmops.continual: replay batches and the L2 pull to the initial weights."""

from __future__ import annotations

import pytest
import torch

from roadmap_lib.llmops import diagonal_fisher, ewc, l2_to_init, replay_batches


def source(value):
    def get_batch(split, generator=None):
        x = torch.full((8, 5), value) + torch.randint(0, 1, (8, 5), generator=generator)
        return x, x + 1
    return get_batch


@pytest.mark.parametrize("fraction, k", [(0.0, 0), (0.125, 1), (0.5, 4), (1.0, 8)])
def test_replay_replaces_the_first_rows(fraction, k):
    x, y = replay_batches(source(1), source(7), fraction)("train", torch.Generator().manual_seed(0))
    assert (x[:k] == 7).all() and (x[k:] == 1).all()
    assert torch.equal(y, x + 1)  # targets move with their inputs


def test_no_replay_draws_exactly_the_new_batches():
    data = torch.arange(1000)

    def new(split, generator=None):
        i = torch.randint(0, 990, (4,), generator=generator)
        return data[i], data[i + 1]

    plain = [new("train", g)[0] for g in [torch.Generator().manual_seed(0)] for _ in range(3)]
    g = torch.Generator().manual_seed(0)
    mixed = replay_batches(new, source(7), 0.0)
    assert all(torch.equal(mixed("train", g)[0], p) for p in plain)


def test_replay_rejects_bad_input():
    with pytest.raises(ValueError, match="fraction"):
        replay_batches(source(1), source(2), 1.5)

    def other(split, generator=None):
        return torch.zeros(8, 6, dtype=torch.long), torch.zeros(8, 6, dtype=torch.long)

    with pytest.raises(ValueError, match="old: expected batches of shape"):
        replay_batches(source(1), other, 0.5)("train")


def test_l2_to_init_value_and_gradient():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    base = lambda m, x, y: ((m(x) - y) ** 2).mean()
    loss_fn = l2_to_init(base, model, strength=0.7)
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    assert loss_fn(model, x, y).item() == pytest.approx(base(model, x, y).item())  # no move, no penalty
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3)
    model.zero_grad()
    loss_fn(model, x, y).backward()
    pen_grad = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    base(model, x, y).backward()
    for p, p0, g in zip(model.parameters(), start, pen_grad):
        torch.testing.assert_close(g - p.grad, 0.7 * (p.detach() - p0))


def test_l2_to_init_rejects_bad_input():
    with pytest.raises(ValueError, match="strength"):
        l2_to_init(lambda m, x, y: 0, torch.nn.Linear(2, 2), -1.0)
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        l2_to_init(lambda m, x, y: 0, frozen, 1.0)


def _linear_task(seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(4, 3, generator=g) for _ in range(3)]
    ys = [torch.randn(4, 2, generator=g) for _ in range(3)]
    batches = iter(list(zip(xs, ys)))

    def get_batch(split, generator=None):
        return next(batches)

    return xs, ys, get_batch


def mse(model, x, y):
    return ((model(x) - y) ** 2).mean()


def test_diagonal_fisher_is_the_mean_squared_batch_gradient():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    xs, ys, get_batch = _linear_task()
    fisher = diagonal_fisher(model, get_batch, mse, batches=3)
    by_hand = [torch.zeros_like(p) for p in model.parameters()]
    for x, y in zip(xs, ys):
        grads = torch.autograd.grad(mse(model, x, y), list(model.parameters()))
        for f, gr in zip(by_hand, grads):
            f += gr**2 / 3
    for f, h in zip(fisher, by_hand):
        assert torch.allclose(f, h, atol=1e-7)
    assert all(p.grad is None for p in model.parameters()) and model.training


def test_ewc_with_unit_fisher_is_l2_to_init_and_weights_each_term():
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    ones = [torch.ones_like(p) for p in model.parameters()]
    zeros = [torch.zeros_like(p) for p in model.parameters()]
    by_ewc, by_l2, free = ewc(mse, model, ones, 0.3), l2_to_init(mse, model, 0.3), ewc(mse, model, zeros, 5.0)
    with torch.no_grad():
        model.weight.add_(0.5)
        model.bias.sub_(0.2)
    assert torch.allclose(by_ewc(model, x, y), by_l2(model, x, y))
    assert torch.allclose(free(model, x, y), mse(model, x, y))
    other = torch.nn.Linear(3, 2)
    only_bias = ewc(mse, other, [torch.zeros(2, 3), torch.ones(2)], 2.0)  # weights the bias alone
    with torch.no_grad():
        other.weight.add_(1.0)  # unweighted: no penalty
    assert torch.allclose(only_bias(other, x, y), mse(other, x, y))
    with torch.no_grad():
        other.bias.add_(0.5)  # weighted: (2 / 2) * 2 * 0.5^2 = 0.5
    assert torch.allclose(only_bias(other, x, y), mse(other, x, y) + 0.5)


def test_ewc_rejects_bad_input():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="fisher: expected one tensor per trainable parameter"):
        ewc(mse, model, [torch.ones(2, 3)], 1.0)
    with pytest.raises(ValueError, match="strength"):
        ewc(mse, model, [torch.ones(2, 3), torch.ones(2)], -1.0)
    with pytest.raises(ValueError, match="batches"):
        diagonal_fisher(model, lambda s, g=None: (torch.ones(1, 3), torch.ones(1, 2)), mse, batches=0)
