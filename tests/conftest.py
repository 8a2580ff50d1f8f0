"""Shared test setup: the offline guard, and the repository root on sys.path for `tools`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import offline_guard

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")
offline_guard.install()


def pytest_sessionfinish(session, exitstatus):
    # A library may catch the guard's exception and carry on; the attempt still fails the run.
    real = [a for a in offline_guard.attempts if "offline-guard-self-test" not in a]
    if real:
        print("\nNetwork access was attempted during the tests:\n  " + "\n  ".join(real), file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tests' models are tiny: extra threads only wait on each other (10-40x slower when the
    machine is busy, as under pytest-xdist), and one thread makes results repeatable."""
    from roadmap_lib.measure import cpu_threads

    with cpu_threads(1):
        yield


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def seq2seq_round_trip():
    """``check(ours, to_hf, from_hf)``: our encoder-decoder and its transformers twin give the same
    logits (within 1e-5), and converting there and back again gives every tensor back bit for bit."""

    import torch

    def check(ours, to_hf, from_hf):
        hf = to_hf(ours)
        g = torch.Generator().manual_seed(5)
        src, tgt = torch.randint(0, 40, (2, 12), generator=g), torch.randint(0, 40, (2, 9), generator=g)
        with torch.no_grad():
            torch.testing.assert_close(ours(src, tgt), hf(input_ids=src, decoder_input_ids=tgt).logits,
                                       atol=1e-5, rtol=0)
        back = from_hf(hf)
        assert back.config == ours.config
        for k, v in ours.state_dict().items():
            assert torch.equal(v, back.state_dict()[k]), k
        again = to_hf(back).state_dict()
        for k, v in hf.state_dict().items():
            assert torch.equal(v, again[k]), k

    return check
