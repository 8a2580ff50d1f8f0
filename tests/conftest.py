"""Shared test setup: the offline guard, and the repository root on sys.path for `tools`."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import offline_guard

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # mlflow's import would start a telemetry thread
os.environ.setdefault("MPLBACKEND", "Agg")
offline_guard.install()


# pytest-xdist workers are separate processes whose exit status the controller ignores: each worker
# writes its attempts to a folder the controller made for this run, and the controller fails the run.
_ATTEMPTS_DIR = "ROADMAP_OFFLINE_ATTEMPTS_DIR"


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        config._offline_parent_dir = os.environ.get(_ATTEMPTS_DIR)
        os.environ[_ATTEMPTS_DIR] = tempfile.mkdtemp(prefix="offline-attempts-")


def pytest_sessionfinish(session, exitstatus):
    # A library may catch the guard's exception and carry on; the attempt still fails the run.
    real = [a for a in offline_guard.attempts if "offline-guard-self-test" not in a]
    folder = os.environ.get(_ATTEMPTS_DIR)
    if hasattr(session.config, "workerinput"):
        if real and folder:
            Path(folder, f"{session.config.workerinput['workerid']}.txt").write_text("\n".join(real), "utf-8")
        return
    if folder:
        for path in sorted(Path(folder).glob("*.txt")):
            real += path.read_text("utf-8").splitlines()
        shutil.rmtree(folder, ignore_errors=True)
        parent = getattr(session.config, "_offline_parent_dir", None)
        if parent is None:
            os.environ.pop(_ATTEMPTS_DIR, None)
        else:
            os.environ[_ATTEMPTS_DIR] = parent
    if real:
        print("\nNetwork access was attempted during the tests:\n  " + "\n  ".join(sorted(set(real))),
              file=sys.stderr)
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
