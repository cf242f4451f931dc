"""Saved models: same numbers after a round trip, metadata, atomic writes, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from tvlens._io import atomic_write, atomic_write_text
from tvlens.models.io import load_model, read_metadata, save_model


def test_save_load_round_trip(tiny_model, tmp_path):
    path = save_model(tiny_model, tmp_path / "m.safetensors", {"task": {"family": "perm-mix"}})
    loaded = load_model(path)
    t = torch.randint(tiny_model.d_vocab, (2, 9))
    assert torch.equal(loaded(t), tiny_model(t))
    meta = read_metadata(path)
    assert meta["task"] == {"family": "perm-mix"} and meta["config"]["n_layers"] == 3
    assert "tvlens_version" in meta


def test_regression_model_round_trip(regression_model, tmp_path):
    path = save_model(regression_model, tmp_path / "r.safetensors")
    x = torch.randn(2, 5, 5)
    assert torch.equal(load_model(path)(x), regression_model(x))


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = atomic_write_text(tmp_path / "a.json", json.dumps({"v": 1}))

    def half_then_fail(tmp):
        tmp.write_text('{"v": 2, "trunc')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"], "no temporary file is left behind"


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such model file"):
        read_metadata(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match=r"not a valid tvlens model file: no .tvlens. metadata"):
        load_model(tmp_path / "other.safetensors")


def test_damaged_model_files_are_named(tmp_path):
    from tvlens import zoo

    data = zoo.weights_path("perm-mix").read_bytes()
    for name, content in (("text", b"not safetensors"), ("truncated", data[: len(data) // 3]), ("empty", b"")):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=rf"path='{path}': not a valid tvlens model file"):
            load_model(path)
