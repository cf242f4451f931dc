"""The command line, driven in a subprocess as a user would."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tvlens.cli", *args], capture_output=True, text=True, timeout=300)


def test_demo_trains_and_reports(tmp_path):
    out = tmp_path / "demo.safetensors"
    proc = run("demo", "--steps", "40", "--layers", "1", "--d-model", "16", "--symbols", "8", "--perms", "2",
               "--shots", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "3-shot ICL accuracy" in proc.stdout and "zero-shot accuracy" in proc.stdout
    assert "TVP mode" in proc.stdout and "L0:" in proc.stdout
    assert out.is_file()


def test_bad_argument_is_one_line_and_non_zero():
    proc = run("demo", "--steps", "0")
    assert proc.returncode == 2
    assert "--steps: expected a positive integer, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_runtime_error_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run("demo", "--steps", "2", "--layers", "1", "--d-model", "16", "--out", str(blocker / "m.safetensors"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tvlens demo: error: --out={str(blocker / 'm.safetensors')!r}: {str(blocker)!r} is a file, not a directory"
    assert "Traceback" not in proc.stderr


def test_too_many_shots_is_a_clear_error():
    proc = run("demo", "--steps", "2", "--symbols", "4", "--shots", "6")
    assert proc.returncode == 2
    assert "n_shots=6 is too many" in proc.stderr.strip().splitlines()[-1]
