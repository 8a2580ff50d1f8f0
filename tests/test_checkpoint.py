"""Safetensors checkpoints: round trips, tied tensors, metadata, clear errors, atomic writes."""

import pytest
import torch
from _tiny import Tiny

from roadmap_lib.checkpoint import (
    CheckpointError,
    load_model,
    load_training_state,
    read_model_metadata,
    save_model,
)
from roadmap_lib.optim import AdamW


def test_model_checkpoint_roundtrip_and_metadata(tmp_path):
    torch.manual_seed(0)
    m = Tiny()
    p = tmp_path / "m.safetensors"
    save_model(m, p, config={"dim": 16}, extra={"val_loss": 1.5})
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]  # no temp file left
    n = Tiny()
    assert load_model(n, p) == {"dim": 16}
    assert read_model_metadata(p) == ({"dim": 16}, {"val_loss": 1.5})
    for k, v in m.state_dict().items():
        assert torch.equal(v, n.state_dict()[k])
    assert n.head.weight is n.wte.weight  # still tied after loading


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path):
    p = tmp_path / "m.safetensors"
    save_model(Tiny(dim=16), p)
    with pytest.raises(CheckpointError, match=r"shape mismatches: head.weight: checkpoint \(13, 16\) vs model \(13, 8\)"):
        load_model(Tiny(dim=8), p)

    class Other(Tiny):
        def __init__(self):
            super().__init__()
            self.extra = torch.nn.Linear(2, 2)
            del self.mlp
            self.mlp = torch.nn.Identity()

    with pytest.raises(CheckpointError) as err:
        load_model(Other(), p)
    msg = str(err.value)
    assert "missing keys (in the model, not the file): extra.bias, extra.weight" in msg
    assert "unexpected keys (in the file, not the model): mlp.0.bias, mlp.0.weight" in msg


def test_corrupt_and_truncated_files(tmp_path):
    p = tmp_path / "m.safetensors"
    save_model(Tiny(), p)
    raw = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"\x07" * 64)
    for bad in ("trunc.safetensors", "junk.safetensors"):
        with pytest.raises(CheckpointError, match="not a readable safetensors file"):
            load_model(Tiny(), tmp_path / bad)
    with pytest.raises(FileNotFoundError):
        load_model(Tiny(), tmp_path / "nothing.safetensors")
    with pytest.raises(CheckpointError, match="expected a training checkpoint"):
        load_training_state(p, Tiny(), AdamW(Tiny().parameters()))


def test_failed_save_leaves_old_file_intact(tmp_path, monkeypatch):
    import roadmap_lib.checkpoint as ck

    p = tmp_path / "m.safetensors"
    save_model(Tiny(), p)
    before = p.read_bytes()

    def boom(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(Tiny(), p)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.safetensors"]


