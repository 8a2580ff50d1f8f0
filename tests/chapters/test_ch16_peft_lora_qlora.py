"""Chapter 16's drivers: each method trains what it should, starts where it should, the memory
measurement sees checkpointing and 8-bit states, the sweep's summary and figures."""

import json

import matplotlib
import pytest
import torch

from roadmap_lib.chapters.ch16_peft_lora_qlora import artifacts, study
from roadmap_lib.chapters.ch16_peft_lora_qlora.experiments import (
    ALL,
    METHODS,
    QV,
    Checkpointed,
    Method,
    prepare,
    run_one,
    step_memory,
    use_checkpointing,
)
from roadmap_lib.chapters.ch16_peft_lora_qlora.plots import (
    plot_curves,
    plot_memory,
    plot_tradeoff,
    seed_spread,
    table_markdown,
)
from roadmap_lib.zoo import load_char_gpt

matplotlib.use("Agg")
D, FF, BLOCKS = 128, 512, 4
SIZES = {"q_proj": (D, D), "k_proj": (D, D), "v_proj": (D, D), "o_proj": (D, D), "up_proj": (D, FF),
         "down_proj": (FF, D)}
IDS = torch.randint(0, 138, (2, 20), generator=torch.Generator().manual_seed(0))


def expected_trainable(m: Method) -> int:
    """Counted from the architecture, independently of the library."""
    if m.kind == "full":
        return 819200
    if m.kind in ("lora", "dora", "qlora"):
        per = sum(m.r * (i + o) + (o if m.kind == "dora" else 0)
                  for i, o in (SIZES[t] for t in m.targets))
        return BLOCKS * per
    if m.kind == "ia3":
        return BLOCKS * (D + D + FF)
    return m.n_virtual * D


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_trains_the_parameters_it_should(name):
    model, _ = prepare(name)
    got = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert got == expected_trainable(METHODS[name])


@pytest.mark.parametrize("name", ["lora r=4 qv", "dora r=4 qv", "ia3", "full"])
def test_adapters_start_as_the_base_model(name):
    base, _, _ = load_char_gpt()
    model, _ = prepare(name)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), base(IDS), atol=1e-5, rtol=0)


def test_qlora_and_prompt_start_elsewhere():
    """QLoRA's base is NF4 (a rounding away); prompt tuning prepends its 16 virtual tokens."""
    base, _, _ = load_char_gpt()
    q, _ = prepare("qlora r=4 qv")
    p, loss_fn = prepare("prompt n=16")
    with torch.no_grad():
        y, yq, yp = base(IDS), q(IDS), p(IDS)
    assert 1e-3 < (yq - y).abs().max() < 2.0
    assert yp.shape == (2, 36, 138)
    loss = loss_fn(p, IDS, IDS)  # scores the 20 real positions only
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_run_one_is_deterministic_and_learns():
    a = run_one("lora r=1 qv", seed=0, steps=20)
    b = run_one("lora r=1 qv", seed=0, steps=20)
    assert a["val_loss"] == b["val_loss"] and a["train_loss"] == b["train_loss"]
    assert a["trainable"] == BLOCKS * 2 * (D + D)
    assert sum(a["train_loss"][-5:]) < sum(a["train_loss"][:5])


def test_checkpointing_keeps_the_gradients():
    model, loss_fn = prepare("lora r=4 all")
    ckpt, _ = prepare("lora r=4 all")
    use_checkpointing(ckpt)
    assert all(isinstance(b, Checkpointed) for b in ckpt.blocks)
    loss_fn(model, IDS, IDS).backward()
    loss_fn(ckpt, IDS, IDS).backward()
    for (n, p), q in zip(model.named_parameters(), ckpt.parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=0, msg=n)


def test_step_memory_sees_checkpointing_and_8bit_states():
    """At 16 windows the activations set the peak (at 4, the gradients plus AdamW's moments do, and
    checkpointing cannot lower it): checkpointing must cut it by more than half (measured 16.7 MiB
    against 38.9)."""
    plain = step_memory("full", batch=16)
    ckpt = step_memory("full", batch=16, checkpointing=True)
    eight = step_memory("full", batch=4, optimizer="adamw8bit")
    assert ckpt["peak_step_bytes"] < 0.5 * plain["peak_step_bytes"]
    # float32 AdamW: 8 bytes per parameter (+ step counters); 8-bit: about 2
    assert abs(plain["optimizer_state_bytes"] / 819200 - 8) < 0.01
    assert 2 < eight["optimizer_state_bytes"] / 819200 < 2.2
    assert plain["weight_bytes"] == 819200 * 4
    with pytest.raises(ValueError, match="optimizer"):
        step_memory("full", optimizer="sgd")


def test_prepare_rejects_unknown_kind():
    with pytest.raises(ValueError, match="method.kind"):
        prepare(Method("x", "bitfit", 1e-3))
    with pytest.raises(KeyError):
        prepare("no such method")


def fake_record():
    runs = [{"method": m, "seed": s, "steps": 3, "trainable": expected_trainable(METHODS[m]),
             "val_loss": 1.0 + 0.1 * i + 0.01 * s, "seconds_per_step": 0.01,
             "train_loss": [2.0, 1.5, 1.2]} for i, m in enumerate(METHODS) for s in (0, 1, 2)]
    return {"steps": 3, "seeds": [0, 1, 2], "base_val_loss": 4.0, "runs": runs}


def test_summary_table_and_figures():
    rows = study.summary(fake_record())
    assert [r["method"] for r in rows] == list(METHODS)
    assert rows[1]["mean"] == pytest.approx(1.11) and rows[1]["std"] == pytest.approx(0.01)
    assert seed_spread(rows) == pytest.approx(0.01)
    c = study.compare(rows, "ia3", "full")  # means 2.01 and 1.01, sd 0.01 each over 3 seeds
    assert c["gap"] == pytest.approx(1.0) and c["se"] == pytest.approx((2 * 0.01**2 / 3) ** 0.5)
    assert c["real"] and not study.compare(rows, "full", "full")["real"]
    with pytest.raises(ValueError, match="b: expected one of"):
        study.compare(rows, "full", "bitfit")
    md = table_markdown(rows, 819200)
    assert md.count("\n") == len(METHODS) + 1 and "| full | 819,200 | 100.00 |" in md
    plot_tradeoff(rows, 4.0, highlight="ia3")
    plot_curves(fake_record(), "ia3", window=2)
    with pytest.raises(ValueError, match="method"):
        plot_curves(fake_record(), "nope")
    mem = {"full": {"plain": {"weight_bytes": 1, "peak_step_bytes": 2}}}
    plot_memory(mem)


def test_study_build_writes_a_record(tmp_path):
    path = tmp_path / study.RESULTS
    record = study.build(path, methods=("ia3",), seeds=(0,), steps=3)
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    assert record["command"] == "python -m roadmap_lib build 16-peft-sweep"
    assert len(record["runs"]) == 1 and record["base_val_loss"] > 3
    with pytest.raises(ValueError, match="jobs"):
        study.build(path, jobs=0)


def test_artifact_is_registered_with_its_file():
    (art,) = artifacts.ARTIFACTS
    assert art.name == "16-peft-sweep" and art.files == (study.RESULTS,)
    assert artifacts.LIVE_METHOD in METHODS and set(QV) < set(ALL)
