"""roadmap_lib.zoo: the registry, staged builds under the size cap, verification, the CLI."""

import json
from pathlib import Path

import pytest

from roadmap_lib import zoo
from roadmap_lib.__main__ import main


def _artifact(name="toy", payload=b"x" * 10, recorded=1.0, needs=(), max_bytes=zoo.MAX_BYTES,
              fail=False):
    def build(root: Path) -> None:
        if fail:
            raise RuntimeError("the recipe broke")
        (root / "toy" / f"{name}.bin").write_bytes(payload)
        (root / "toy" / f"{name}.json").write_text(json.dumps({"metric": len(payload)}))

    def verify(root: Path):
        got = json.loads((root / "toy" / f"{name}.json").read_text())["metric"]
        return [zoo.check("bytes", got, recorded, 0)]

    return zoo.Artifact(name, "99", "a toy", (f"toy/{name}.bin", f"toy/{name}.json"), build,
                        verify, needs=needs, max_bytes=max_bytes)


def test_build_installs_the_files_and_verify_remeasures(tmp_path):
    a = _artifact(recorded=10)
    paths = zoo.build(a, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == list(a.files)
    assert [c.ok for c in zoo.verify(a, tmp_path)] == [True]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]  # staging removed
    wrong = _artifact(recorded=11)
    [c] = zoo.verify(wrong, tmp_path)
    assert not c.ok and "MISMATCH" in str(c)


def test_oversized_or_failed_build_leaves_shipped_files_alone(tmp_path):
    zoo.build(_artifact(payload=b"old"), tmp_path)
    shipped = (tmp_path / "toy" / "toy.bin").read_bytes()
    with pytest.raises(RuntimeError, match="over the 5 byte limit; nothing in"):
        zoo.build(_artifact(payload=b"much too big", max_bytes=5), tmp_path)
    with pytest.raises(RuntimeError, match="the recipe broke"):
        zoo.build(_artifact(fail=True), tmp_path)
    assert (tmp_path / "toy" / "toy.bin").read_bytes() == shipped == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]  # no staging left behind


def test_verify_of_an_unbuilt_artifact_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m roadmap_lib build toy"):
        zoo.verify(_artifact(), tmp_path)


def test_registry_refuses_duplicates_and_unknown_needs_and_orders_builds():
    a, b = _artifact("a"), _artifact("b", needs=("a",))
    reg = zoo.registry([b, a])
    assert [x.name for x in zoo.build_order(reg, ["b"])] == ["a", "b"]
    with pytest.raises(ValueError, match="registered twice"):
        zoo.registry([a, a])
    with pytest.raises(ValueError, match="unknown artifacts"):
        zoo.registry([_artifact("c", needs=("nope",))])
    with pytest.raises(ValueError, match="cycle"):
        zoo.build_order({"a": _artifact("a", needs=("b",)), "b": _artifact("b", needs=("a",))}, ["a"])
    with pytest.raises(ValueError, match="paths inside data"):
        zoo.Artifact("x", "99", "", ("../escape",), lambda r: None, lambda r: [])


def test_cli_list_and_usage_errors(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "gpt-char-jargon" in out and "data/zoo/gpt-char-jargon.safetensors" in out
    assert main(["verify", "no-such-artifact"]) == 2
    assert "unknown artifact 'no-such-artifact'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["frobnicate"])
    assert err.value.code == 2


def test_load_checkpoint_rebuilds_model_and_vocabulary(tmp_path):
    import torch

    from roadmap_lib.checkpoint import save_model
    from roadmap_lib.data import CharVocab
    from roadmap_lib.models import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=5, context_length=8, d_model=16, n_layers=1, n_heads=2))
    save_model(model, tmp_path / "toy.safetensors", config=model.config.to_dict())
    (tmp_path / "toy.json").write_text(json.dumps({"vocab": list("abcde")}))
    back, vocab, record = zoo.load_checkpoint("toy", lambda c: GPT(GPTConfig(**c)),
                                              vocab_from_list=CharVocab, zoo_dir=tmp_path)
    assert not back.training and list(vocab.chars) == list("abcde") == record["vocab"]
    ids = torch.tensor([[0, 3, 1]])
    torch.testing.assert_close(back(ids), model.eval()(ids))
    with pytest.raises(ValueError, match="token ids would move"):  # a builder that sorts
        zoo.load_checkpoint("toy", lambda c: GPT(GPTConfig(**c)), zoo_dir=tmp_path,
                            vocab_from_list=lambda v: CharVocab(sorted(v, reverse=True)))
    with pytest.raises(FileNotFoundError, match="python -m roadmap_lib build nope"):
        zoo.load_checkpoint("nope", lambda c: None, zoo_dir=tmp_path)


def test_build_uses_a_shipped_dependency_unless_asked_to_rebuild_it(tmp_path, monkeypatch, capsys):
    import roadmap_lib.__main__ as cli

    base, top = _artifact("base", payload=b"b" * 4), _artifact("top", payload=b"t" * 6, needs=("base",))
    monkeypatch.setattr(cli, "artifacts", lambda: zoo.registry([base, top]))
    monkeypatch.setattr(zoo, "DATA_DIR", tmp_path)
    assert main(["build", "top"]) == 0  # base is missing: built first
    assert "building base" in capsys.readouterr().out and zoo.is_shipped(base) and zoo.is_shipped(top)
    stamp = (tmp_path / "toy" / "base.bin").stat().st_mtime_ns
    assert main(["build", "top"]) == 0  # base is shipped: used as it is
    out = capsys.readouterr().out
    assert "using the shipped base" in out and "building top" in out and "building base" not in out
    assert (tmp_path / "toy" / "base.bin").stat().st_mtime_ns == stamp
    assert main(["build", "top", "--with-needs"]) == 0
    assert "building base" in capsys.readouterr().out


def test_load_word_bert_reads_the_shipped_encoder_and_its_vocabulary():
    from roadmap_lib.models.bert import BertForMaskedLM

    model, vocab, record = zoo.load_word_bert()
    assert isinstance(model, BertForMaskedLM) and not model.training
    assert record["eval"]["loss"] > 0
    ids = vocab.encode("the [MASK] hacker")
    assert ids[1] == 4 and vocab.itos[4] == "[MASK]"  # the literal mask token, one of the five specials
    assert vocab.decode(vocab.encode("the hacker")) == "the hacker"
