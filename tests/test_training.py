"""Training loop and checkpoints: accumulation, clipping, early stopping, exact resume, clear errors."""


import pytest
import torch
from _tiny import VOCAB, Tiny

from roadmap_lib.training import TrainConfig, evaluate, train

DATA = torch.tensor([i % VOCAB for i in range(0, 3000, 7)])  # a learnable periodic sequence


def get_batch(split, g, batch=8, ctx=6):
    data = DATA[:300] if split == "train" else DATA[300:]
    starts = torch.randint(0, len(data) - ctx - 1, (batch,), generator=g)
    x = torch.stack([data[s : s + ctx] for s in starts])
    y = torch.stack([data[s + 1 : s + ctx + 1] for s in starts])
    return x, y


def _cfg(**kw):
    base = dict(max_steps=40, lr=3e-2, warmup_steps=5, eval_interval=10, eval_batches=2, progress=False)
    return TrainConfig(**{**base, **kw})


def _params(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_training_learns_and_logs():
    torch.manual_seed(0)
    model = Tiny()
    before = evaluate(model, get_batch, batches=2)
    res = train(model, get_batch, _cfg())
    assert res.step == 40 and len(res.log) == 40
    steps, vals = res.series("val_loss")
    assert steps == [10, 20, 30, 40]
    assert vals[-1] < 0.5 * before
    assert all("grad_norm" in r and "lr" in r for r in res.log)
    assert res.log[0]["lr"] == 0.0 and res.log[5]["lr"] == pytest.approx(3e-2)


def test_resume_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    a = Tiny()
    init = _params(a)
    full = train(a, get_batch, _cfg())

    b = Tiny()
    b.load_state_dict(init)
    ck = str(tmp_path / "run.safetensors")
    part = train(b, get_batch, _cfg(checkpoint_path=ck), stop_at=17)
    assert part.step == 17
    torch.manual_seed(999)  # disturb the global RNG: the checkpoint must restore it
    c = Tiny()
    resumed = train(c, get_batch, _cfg(checkpoint_path=ck), resume_from=ck)
    for k, v in a.state_dict().items():
        assert torch.equal(v, c.state_dict()[k]), k
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in full.log]
    assert resumed.series("val_loss") == full.series("val_loss")


def test_grad_accumulation_equals_big_batch():
    torch.manual_seed(0)
    a, b = Tiny(), Tiny()
    b.load_state_dict(a.state_dict())
    a.mlp[2].p = b.mlp[2].p = 0.0  # no dropout: the two runs see different masks otherwise

    big = lambda s, g: get_batch(s, g, batch=8)
    calls = {"n": 0}

    def halves(split, g):  # same 8 rows as `big`, delivered as two micro-batches of 4
        if calls["n"] % 2 == 0:
            halves.cache = get_batch(split, g, batch=8)
        x, y = halves.cache
        i = calls["n"] % 2
        calls["n"] += 1
        return x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]

    train(a, big, _cfg(max_steps=5, eval_interval=100, grad_clip=None))
    train(b, halves, _cfg(max_steps=5, eval_interval=100, grad_clip=None, grad_accum=2))
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-4, atol=1e-6)


def test_clipping_bounds_the_update():
    torch.manual_seed(0)
    m = Tiny()
    m.mlp[2].p = 0.0
    before = torch.cat([p.detach().flatten().clone() for p in m.parameters()])
    sgd = torch.optim.SGD(m.parameters(), lr=1.0)
    cfg = _cfg(max_steps=1, warmup_steps=0, min_lr_ratio=1.0, grad_clip=1e-3, eval_interval=100)
    res = train(m, get_batch, cfg, optimizer=sgd)
    after = torch.cat([p.detach().flatten() for p in m.parameters()])
    assert res.log[0]["grad_norm"] > 1e-2  # logged before clipping
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-3)  # the step is clipped


def test_early_stopping():
    torch.manual_seed(0)
    m = Tiny()
    # lr 0 after warmup: the val loss never improves after the first evaluation
    res = train(m, get_batch, _cfg(max_steps=200, lr=0.0, warmup_steps=0, eval_interval=5, patience=3))
    assert res.stopped_early and res.step == 20


def test_stops_at_target_val_loss():
    torch.manual_seed(0)
    full = train(Tiny(), get_batch, _cfg(max_steps=40, eval_interval=5))
    target = full.series("val_loss")[1][3]  # the loss reached at step 20
    torch.manual_seed(0)
    res = train(Tiny(), get_batch, _cfg(max_steps=40, eval_interval=5, target_val_loss=target))
    assert res.stopped_early and res.step == 20 and res.eval_seconds > 0


def test_config_validation():
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(grad_accum=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(max_steps=10, warmup_steps=20)
