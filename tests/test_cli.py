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


def test_vector_learn_evaluate_and_analyze(tmp_path):
    """learn → evaluate → analyze ov|heads|dynamics, through files, as a user would."""
    vector = tmp_path / "ltv.safetensors"
    proc = run("vector", "learn", "--layer", "1", "--epochs", "5", "--out", str(vector), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert vector.is_file() and "learned task vector of perm-mix" in proc.stdout
    proc = run("evaluate", "--vector", str(vector), "--prompts", "64", "--quiet")
    assert proc.returncode == 0, proc.stderr
    scores = {line.split()[0]: float(line.split()[2]) for line in proc.stdout.splitlines()}
    assert set(scores) == {"zero_shot", "icl", "injected"} and scores["injected"] > scores["zero_shot"]
    for analysis, expected in (("ov", "ov_share"), ("heads", "key heads:"), ("dynamics", "W·θ at the final stream")):
        proc = run("analyze", analysis, "--vector", str(vector), "--prompts", "32", "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert expected in proc.stdout


def test_vector_extract_writes_a_loadable_vector(tmp_path):
    from tvlens import TaskVector, zoo

    out = tmp_path / "fv.safetensors"
    proc = run("vector", "extract", "function", "--layer", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    tv = TaskVector.load(out, model=zoo.load("perm-mix"))
    assert tv.method == "function" and tv.layers == [2]


def test_report_command_writes_html(tmp_path):
    out = tmp_path / "r.html"
    proc = run("report", "--models", "perm-mix", "--quick", "--no-studies", "--out", str(out), "--cache-dir",
               str(tmp_path / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "<html" in out.read_text()[:200] and "wrote" in proc.stdout


def test_every_subcommand_has_help():
    for args in (["vector", "learn"], ["vector", "extract"], ["evaluate"], ["analyze"], ["report"], ["zoo", "train"]):
        proc = run(*args, "--help")
        assert proc.returncode == 0 and "usage: tvlens" in proc.stdout, args


def test_command_errors_are_one_line(tmp_path):
    proc = run("analyze", "ov", "--vector", str(tmp_path / "missing.safetensors"))
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("report", "--models", "perm-mix,nope", "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 2 and "name='nope' is not a zoo model" in proc.stderr
    assert not (tmp_path / "r.html").exists()
    proc = run("vector", "learn", "--layer", "9", "--out", str(tmp_path / "v.safetensors"), "--quiet")
    assert proc.returncode == 2 and "layer=9 is out of range" in proc.stderr
