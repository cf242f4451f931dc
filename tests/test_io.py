"""``tvlens._io``: what tvlens writes never replaces what a user owns, and what it reads back runs no code."""

from __future__ import annotations

import os
import pickle
import socket
import stat

import pytest
import torch
from safetensors.torch import save_file

from tvlens._io import atomic_write, atomic_write_text, check_output_file, safe_torch_load

from .planted import Payload


def test_a_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real" / "table.md"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new" and link.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.md"]  # no temporary file left


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "v.safetensors"
    link.symlink_to(tmp_path / "made.safetensors")
    atomic_write(link, lambda tmp: save_file({"x": torch.zeros(2)}, str(tmp)))
    assert link.is_symlink() and (tmp_path / "made.safetensors").is_file()


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "device", "link to a device"])
def test_special_files_are_refused_before_any_work(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        expected = "is a FIFO"
    elif kind == "socket":
        path = tmp_path / "s.sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        expected = "is a socket"
    elif kind == "directory":
        path = tmp_path / "d"
        path.mkdir()
        expected = "is a directory"
    else:
        path = "/dev/null"
        if kind == "link to a device":
            path = tmp_path / "null-link"
            path.symlink_to("/dev/null")
        expected = "is a character device"
    before = os.lstat(path)
    calls = []
    for check in (lambda: check_output_file(path, "--out"),
                  lambda: atomic_write(path, calls.append, "--out"),
                  lambda: atomic_write_text(path, "text", "--out")):
        with pytest.raises(ValueError, match=f"^--out='{path}': {expected}; expected a regular file path"):
            check()
    after = os.lstat(path)
    assert calls == [] and stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    if kind == "socket":
        server.close()


def test_dash_is_standard_output_for_text_only(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic_write_text("-", "| table |\n")
    assert capsys.readouterr().out == "| table |\n" and not (tmp_path / "-").exists()
    assert str(check_output_file("-", "--out", stdout=True)) == "-"
    with pytest.raises(ValueError, match="--out='-': standard output cannot take this binary file"):
        check_output_file("-", "--out")


def test_a_full_disk_is_an_os_error_naming_the_path(tmp_path):
    """safetensors raises its own error type on ENOSPC: it becomes one OSError naming the user's file."""
    from safetensors import SafetensorError

    path = tmp_path / "v.safetensors"
    path.write_bytes(b"old")

    def full(tmp):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                              "message: \"No space left on device\" })")

    with pytest.raises(OSError, match=r"^--out='.*v\.safetensors': cannot write it \(.*No space left on device"):
        atomic_write(path, full, "--out")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["v.safetensors"]

    def enospc(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=r"^--out='.*v\.safetensors': cannot write it \(No space left on device\)$"):
        atomic_write(path, enospc, "--out")
    assert path.read_bytes() == b"old"


def test_a_planted_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "entry.pt"
    torch.save({"key": "k", "value": Payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        safe_torch_load(path)
    assert not marker.exists()
    torch.save({"key": "k", "value": [torch.ones(2), {"a": 1.5}]}, path)  # plain data loads
    loaded = safe_torch_load(path)
    assert loaded["key"] == "k" and torch.equal(loaded["value"][0], torch.ones(2))


def test_an_output_that_is_or_lies_in_what_the_run_reads_is_refused(tmp_path):
    from tvlens._io import check_output_dir

    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    directory = tmp_path / "hf"
    directory.mkdir()
    reads = [("--model", model), ("--model", directory), ("--model", "perm-mix"), ("--tasks", None)]
    with pytest.raises(ValueError, match=r"^--out='.*model\.safetensors': is --model='.*model\.safetensors', which "
                                         r"this run reads; expected another path \(it would be overwritten\)$"):
        check_output_file(model, "--out", reads=reads)
    with pytest.raises(ValueError, match=r"lies in --model='.*hf'"):
        check_output_file(directory / "sub" / "config.json", "--out", reads=reads)
    with pytest.raises(ValueError, match=r"^--cache-dir='.*hf': lies in --model"):
        check_output_dir(directory, "--cache-dir", reads=reads)
    # beside them, or a name with nothing on disk (a zoo name): written as usual
    assert check_output_file(tmp_path / "table.md", "--out", reads=reads) == tmp_path / "table.md"
    assert check_output_file(tmp_path / "perm-mix", "--out", reads=[("--model", "perm-mix")])
    assert model.read_bytes() == b"weights"


def test_a_long_error_is_cut_at_a_word_and_says_so():
    from tvlens._io import first_line

    error = ValueError("Weights only load failed. This file can still be loaded, to do so you have two options\nmore")
    assert first_line(error) == "Weights only load failed. This file can still be loaded, to do so you have two options"
    assert first_line(error, 40) == "Weights only load failed. This file can…"
    assert first_line(ValueError("x" * 50), 10) == "x" * 9 + "…"
    assert first_line(ValueError("  ")) == "ValueError"
