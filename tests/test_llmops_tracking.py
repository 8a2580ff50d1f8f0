"""roadmap_lib.llmops.tracking: runs go into a local SQLite MLflow store and come back.

Creating a store runs MLflow's database migrations (a few seconds), so both tests share one store
and are marked slow."""

from __future__ import annotations

import mlflow
import pytest

from roadmap_lib.llmops.tracking import LocalTracking

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow") / "store"


def test_log_and_read_back(tmp_path, store_root):
    before = mlflow.get_tracking_uri()
    store = LocalTracking(store_root)
    exp = store.experiment("demo")
    assert store.experiment("demo") == exp  # found, not created twice
    note = tmp_path / "note.txt"
    note.write_text("hello")
    ids = {}
    for lr, loss in [(0.1, 0.9), (0.01, 0.4), (0.001, 0.6)]:
        ids[lr] = store.log_run(exp, f"lr {lr}", params={"lr": lr, "opt": "adamw"}, metrics={"val_loss": loss},
                                history={"train_loss": [(s, loss + 1 / s) for s in range(1, 1201)]},
                                artifacts=[note], tags={"kind": "test"})
    best = store.best_run(exp, "val_loss")
    assert best.info.run_id == ids[0.01] and best.data.params == {"lr": "0.01", "opt": "adamw"}
    assert best.info.status == "FINISHED" and best.data.tags["kind"] == "test"
    worst = store.best_run(exp, "val_loss", lower_is_better=False)
    assert worst.info.run_id == ids[0.1]
    assert store.best_run(exp, "val_loss", filter_string="params.lr != '0.01'").info.run_id == ids[0.001]
    history = store.history(ids[0.1], "train_loss")
    assert len(history) == 1200 and history[0] == (1, pytest.approx(1.9))  # more than one log_batch
    assert store.artifact_names(ids[0.1]) == ["note.txt"]
    assert len(store.runs(exp)) == 3
    assert (store_root / "mlflow.db").is_file()
    assert mlflow.get_tracking_uri() == before  # nothing global was set
    # a second client on the same file sees the same runs
    assert len(LocalTracking(store_root).runs(exp)) == 3


def test_errors(tmp_path, store_root):
    store = LocalTracking(store_root)
    exp = store.experiment("errors")
    with pytest.raises(LookupError, match="val_loss"):
        store.best_run(exp, "val_loss")
    with pytest.raises(ValueError, match="name"):
        store.experiment("")
    with pytest.raises(FileNotFoundError, match="artifacts"):
        store.log_run(exp, "r", artifacts=[tmp_path / "missing.txt"])
    assert store.runs(exp)[0].info.status == "FAILED"  # a failed log marks its run


def test_registry_versions_carry_their_hash_and_the_alias_moves(store_root):
    import torch

    from roadmap_lib.llmops.gate import state_dict_sha256

    store = LocalTracking(store_root)
    exp = store.experiment("registry")
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    digests = []
    versions = []
    for k in range(2):
        run = store.log_run(exp, f"candidate {k}", metrics={"nll": 1.0 - k / 10})
        digests.append(state_dict_sha256({"w": weights["w"] + k}))
        versions.append(store.register_version("lm", run, sha256=digests[-1], tags={"gate": "pass"}))
    assert versions == ["1", "2"]
    with pytest.raises(LookupError, match="no version called 'production'"):
        store.version_for("lm")
    store.promote("lm", versions[0])
    assert store.version_for("lm").tags["sha256"] == digests[0]
    store.promote("lm", versions[1])  # the alias moves
    got = store.version_for("lm")
    assert str(got.version) == "2" and got.tags == {"sha256": digests[1], "gate": "pass"}
    with pytest.raises(ValueError, match="sha256: expected 64"):
        store.register_version("lm", run, sha256="abc")
