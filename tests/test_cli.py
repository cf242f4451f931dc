"""The command line, as a user drives it.

Most tests call ``tvlens.cli.main`` in this process (the ``cli`` fixture: same arguments, exit code, stdout and
stderr, without an interpreter start-up of seconds each); ``run`` starts ``python -m tvlens.cli`` in a subprocess, for
what only a fresh process shows (the entry point, imports, environment) and for the slow whole-pipeline tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tvlens.cli", *args], capture_output=True, text=True, timeout=300)


def test_demo_trains_and_reports(cli, tmp_path):
    out = tmp_path / "demo.safetensors"
    proc = cli("demo", "--steps", "40", "--layers", "1", "--d-model", "16", "--symbols", "8", "--perms", "2",
               "--shots", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "3-shot ICL accuracy" in proc.stdout and "zero-shot accuracy" in proc.stdout
    assert "TVP mode" in proc.stdout and "L0:" in proc.stdout
    assert out.is_file()


def test_bad_argument_is_one_line_and_non_zero(cli):
    proc = cli("demo", "--steps", "0")
    assert proc.returncode == 2
    assert "--steps: expected a positive integer, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_runtime_error_is_one_line(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = cli("demo", "--steps", "2", "--layers", "1", "--d-model", "16", "--out", str(blocker / "m.safetensors"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tvlens demo: error: --out={str(blocker / 'm.safetensors')!r}: {str(blocker)!r} is a file, not a directory"
    assert "Traceback" not in proc.stderr


def test_too_many_shots_is_a_clear_error(cli):
    proc = cli("demo", "--steps", "2", "--symbols", "4", "--shots", "6")
    assert proc.returncode == 2
    assert "n_shots=6 is too many" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_vector_learn_evaluate_and_analyze(tmp_path):
    """learn → evaluate → analyze ov|heads|dynamics, through files, as a user would."""
    vector = tmp_path / "ltv.safetensors"
    proc = run("vector", "learn", "--layer", "1", "--epochs", "5", "--out", str(vector), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert vector.is_file() and "learned task vector of perm-mix" in proc.stdout
    proc = run("evaluate", "--vector", str(vector), "--prompts", "64", "--quiet")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header == "perm-mix, task 0: 64 prompts of the 'shared' split, 16-shot ICL prompts"
    scores = {line.split()[0]: float(line.split()[2]) for line in rows}
    assert set(scores) == {"zero_shot", "icl", "injected"} and scores["icl"] > scores["zero_shot"] + 0.3
    # the printed scores are evaluate()'s on the seed's held-out split, the vector read back from its file (a
    # 5-epoch vector need not beat zero-shot on queries it never trained on: the check is the equality)
    from tvlens import TaskVector, evaluate, zoo

    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    tv = TaskVector.load(vector, model=model)
    for mode in scores:
        expected = evaluate(model, task, mode, tv if mode == "injected" else None, n_prompts=64, n_shots=16, seed=0,
                            progress=False)
        assert scores[mode] == pytest.approx(expected.mean, abs=1e-4)
    for analysis, expected in (("ov", "ov_share"), ("heads", "key heads:"), ("dynamics", "W·θ at the final stream")):
        proc = run("analyze", analysis, "--vector", str(vector), "--prompts", "32", "--quiet")
        assert proc.returncode == 0, proc.stderr
        assert expected in proc.stdout


def test_vector_extract_writes_a_loadable_vector(cli, tmp_path):
    from tvlens import TaskVector, zoo

    out = tmp_path / "fv.safetensors"
    proc = cli("vector", "extract", "function", "--layer", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    tv = TaskVector.load(out, model=zoo.load("perm-mix"))
    assert tv.method == "function" and tv.layers == [2]
    one_line_error(cli("vector", "extract", "learned", "--out", str(tmp_path / "l.safetensors")),
                   "method='learned': expected a method that is extracted at one layer, one of ['vanilla', 'function']")


@pytest.mark.slow
def test_report_command_writes_html(tmp_path):
    out = tmp_path / "r.html"
    proc = run("report", "--models", "perm-mix", "--quick", "--no-studies", "--out", str(out), "--cache-dir",
               str(tmp_path / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "<html" in out.read_text()[:200] and "wrote" in proc.stdout
    # a damaged cache entry: one warning line naming it, the stage recomputed, no traceback
    entry = sorted((tmp_path / "cache").glob("ov-*.pt"))[0]
    entry.write_bytes(entry.read_bytes()[:100])
    proc = run("report", "--models", "perm-mix", "--quick", "--no-studies", "--out", str(out), "--cache-dir",
               str(tmp_path / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"tvlens report: warning: ignoring the cache file {str(entry)!r}")
    assert "6 stages from the cache" in proc.stdout


def test_claims_prints_the_ledger_and_writes_it(cli, tmp_path):
    out = tmp_path / "ledger.md"
    proc = cli("claims", "--claims", "vanilla_beats_zero_shot", "--tasks", "2", "--prompts", "32",
               "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| The vanilla task vector")]
    assert [row.split(" | ")[3] for row in rows] == ["perm-mix", "perm-mix-32", "token-offset"]
    # each family over its three trained models, 2 tasks each, the default seed
    assert all(row.split(" | ")[8] == "3 models × 2 × 1" for row in rows), rows
    assert proc.stdout.startswith("Rows on zoo models were measured on small synthetic transformers") \
        and "exploratory, Holm-adjusted within its claim" in proc.stdout
    assert out.read_text().strip() == proc.stdout.strip()
    one_line_error(cli("claims", "--whole-answers"), "--whole-answers: the zoo's answers are one token each")
    to_stdout = cli("claims", "--claims", "vanilla_beats_zero_shot", "--tasks", "2", "--prompts",
                    "32", "--quiet", "--out", "-")
    assert to_stdout.returncode == 0 and to_stdout.stdout.strip() == proc.stdout.strip()  # printed once
    for args, message in ((("--claims", "magic"), "claims: unknown ['magic']"),
                          (("--seeds", "0,x"), "--seeds='0,x': expected comma-separated integers")):
        bad = cli("claims", *args, "--quiet")
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, tokenizer):
    """A tiny Qwen2-style model built offline, with a tokenizer trained on the built-in word pairs."""
    from tests.hf_models import build

    return str(build("qwen2", tmp_path_factory.mktemp("qwen") / "model", tokenizer))


@pytest.mark.slow
def test_claims_on_your_model(tiny_qwen2, tmp_path):
    """The ledger on a Hugging Face model directory from the command line: a row for every claim, each a verdict or
    the reason it does not apply, and the same table from two worker processes."""
    from tvlens.studies.ledger import CLAIMS

    args = ("claims", "--model", tiny_qwen2, "--tasks", "antonyms,country_capital", "--seeds", "0", "--prompts", "32",
            "--quiet")
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and f" | {tiny_qwen2} | " in line]
    assert [row.split(" | ")[0][2:] for row in rows] == [c.statement for c in CLAIMS.values()]
    for row in rows:
        verdict = row.rsplit(" | ", 1)[1]
        assert verdict.startswith(("**holds**", "**does not hold**", "**inconclusive** (", "**not applicable** (needs ",
                                   "**not testable here** (")), row
    # regression, the TVP-loss arms, the complexity series
    assert sum("**not applicable**" in row for row in rows) == sum(c.needs != "labels" for c in CLAIMS.values()) == 6
    pooled = run(*args, "--workers", "2")
    assert pooled.returncode == 0 and pooled.stdout == proc.stdout


def test_claims_model_arguments_are_checked_before_any_work(cli, tiny_qwen2, tmp_path, monkeypatch):
    from tvlens.models import HookedModel

    monkeypatch.setattr(HookedModel, "from_pretrained", lambda *a, **k: pytest.fail("loaded before the checks"))
    (tmp_path / "empty").mkdir()
    one_line_error(cli("claims", "--model", str(tmp_path / "empty"), "--tasks", "antonyms"),
                   f"--model={str(tmp_path / 'empty')!r}: a directory without config.json")
    one_line_error(cli("claims", "--model", tiny_qwen2, "--tasks", "antonyms,opposites"),
                   "--tasks: 'opposites' is not a built-in word-pair task nor a .csv file", "antonyms")
    one_line_error(cli("claims", "--model", "perm-mix", "--tasks", "antonyms"),
                   "--tasks=['antonyms']: zoo model 'perm-mix' has its own task family")
    one_line_error(cli("claims", "--model", tiny_qwen2, "--tasks", "3"), "--tasks: a Hugging Face model",
                   "needs word-pair tasks")
    one_line_error(cli("claims", "--tasks", "antonyms"), "--tasks='antonyms': word-pair tasks need --model DIR")
    one_line_error(cli("claims", "--tasks", "0"), "--tasks='0': expected a positive count")
    one_line_error(cli("claims", "--model", tiny_qwen2, "--tasks", "antonyms", "--template", "{y}{x}"),
                   "--template='{y}{x}'")
    one_line_error(cli("claims", "--model", str(tmp_path / "nowhere"), "--tasks", "antonyms"),
                   f"--model: {str(tmp_path / 'nowhere')!r} is not a zoo model")


def test_every_subcommand_has_help(cli):
    for args in (["vector", "learn"], ["vector", "extract"], ["evaluate"], ["analyze"], ["report"], ["zoo", "train"],
                 ["claims"]):
        proc = cli(*args, "--help")
        assert proc.returncode == 0 and "usage: tvlens" in proc.stdout, args


def test_command_errors_are_one_line(cli, tmp_path):
    proc = cli("analyze", "ov", "--vector", str(tmp_path / "missing.safetensors"))
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("report", "--models", "perm-mix,nope", "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 2 and "models: 'nope' is neither a zoo model" in proc.stderr
    assert "nor a Hugging Face model directory" in proc.stderr
    assert not (tmp_path / "r.html").exists()
    proc = cli("vector", "learn", "--layer", "9", "--out", str(tmp_path / "v.safetensors"), "--quiet")
    assert proc.returncode == 2 and "layer=9 is out of range" in proc.stderr


# -- first contact: nothing lost, no traceback, every bad file named --------------------------------------------------


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``tvlens ARGS`` in this process (no interpreter start-up: these tests are many and quick)."""
    import warnings

    from tvlens.cli import main

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets its own; undo it after

    def call(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        with warnings.catch_warnings():
            # as in a fresh process: each warning once, printed to stderr (not into pytest's record)
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
                warnings.formatwarning(message, category, filename, lineno, line))
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse: --help, or a bad argument
                code = exit_.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return call


def one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed with exit code 2 and one line on stderr that holds every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_zoo_train_never_writes_into_the_package_by_default(cli, tmp_path, monkeypatch):
    import hashlib

    from tvlens import zoo

    shipped = zoo.weights_path("perm-mix-2")
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    monkeypatch.setenv("TVLENS_ZOO_DIR", str(tmp_path / "zoo"))
    proc = cli("zoo", "train", "perm-mix-2", "--steps", "2")
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
    assert (tmp_path / "zoo" / "perm-mix-2.safetensors").is_file() and (tmp_path / "zoo" / "perm-mix-2.json").is_file()
    assert "the shipped weights are unchanged" in proc.stdout
    assert zoo.info("perm-mix-2", tmp_path / "zoo")["steps_done"] == 2
    one_line_error(cli("zoo", "train", "perm-mix-2", "--into-package", "--out", str(tmp_path)), "pick one")


def test_zoo_train_default_directory_is_the_users(monkeypatch, tmp_path):
    from tvlens import zoo

    monkeypatch.delenv("TVLENS_ZOO_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert zoo.user_dir() == tmp_path / "tvlens" / "zoo"
    monkeypatch.setenv("TVLENS_ZOO_DIR", str(tmp_path / "mine"))
    assert zoo.user_dir() == tmp_path / "mine" and zoo.user_dir() != zoo.WEIGHTS_DIR


def test_bad_vector_files_are_named_in_one_line(cli, tmp_path):
    import torch

    from tvlens import TaskVector, zoo

    model = zoo.load("perm-mix")
    vector = TaskVector.single(torch.randn(model.d_model), 1, fingerprint=model.fingerprint()).save(
        tmp_path / "v.safetensors")
    assert cli("evaluate", "--vector", str(vector), "--prompts", "8", "--quiet").returncode == 0
    seeded = TaskVector.single(torch.randn(model.d_model), 1, fingerprint=model.fingerprint(),
                               hyperparameters={"seed": 0}).save(tmp_path / "seeded.safetensors")
    for command in (["evaluate"], ["analyze", "ov"]):  # another seed's partition: refused before any scoring
        proc = cli(*command, "--vector", str(seeded), "--seed", "3", "--prompts", "8", "--quiet")
        one_line_error(proc, "--seed=3: the vector was made with seed 0", "expected --seed=0")
        assert proc.stdout == ""
    data = vector.read_bytes()
    cases = {
        "text.safetensors": b"not a safetensors file",
        "truncated.safetensors": data[: len(data) // 2],
        "empty.safetensors": b"",
        "damaged.safetensors": data[:-4] + bytes(b ^ 0xFF for b in data[-4:]),  # the tensor's bytes, not the header
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        proc = cli("evaluate", "--vector", str(tmp_path / name), "--prompts", "8", "--quiet")
        line = one_line_error(proc, repr(str(tmp_path / name)), "not a valid tvlens task-vector file")
        assert proc.stdout == "", (name, proc.stdout)  # refused before any scoring
        if name == "damaged.safetensors":
            assert "checksum" in line


def _vector_file(path, vector, layer, scale=1.0, drop=None):
    """A task-vector file written by hand (as another tool, or a damaged one, might write it)."""
    import json

    import torch
    from safetensors.torch import save_file

    meta = {"sites": [{"layer": layer, "hook": "resid_pre", "positions": "last"}], "mode": "add", "scale": scale,
            "method": "custom", "task": None, "fingerprint": None, "hyperparameters": {}, "history": []}
    meta.pop(drop, None)
    save_file({"site_0": torch.as_tensor(vector, dtype=torch.float32)}, str(path),
              metadata={"tvlens_task_vector": json.dumps(meta)})
    return path


def test_evaluate_refuses_a_bad_vector_before_scoring(cli, tmp_path):
    from tvlens import zoo

    d = zoo.load("perm-mix").d_model
    cases = [
        (_vector_file(tmp_path / "width.safetensors", [0.1] * 10, 1), f"d_model={d}"),
        (_vector_file(tmp_path / "layer.safetensors", [0.1] * d, 9), "layer=9 is out of range"),
        (_vector_file(tmp_path / "nan.safetensors", [float("nan")] * d, 1), "NaN or inf"),
        (_vector_file(tmp_path / "scale.safetensors", [1.0] * d, 1, scale=1e39), "scale=1e+39 overflows"),
        (_vector_file(tmp_path / "meta.safetensors", [0.1] * d, 1, drop="mode"), "metadata lacks 'mode'"),
    ]
    for path, expected in cases:
        proc = cli("evaluate", "--vector", str(path), "--prompts", "8", "--quiet")
        one_line_error(proc, expected)
        assert proc.stdout == "", (path.name, proc.stdout)


def test_outputs_are_checked_before_any_work(cli, tmp_path):
    import time

    directory = tmp_path / "existing"
    directory.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for args, fragment in (
        (["demo", "--out", str(directory)], "is a directory"),
        (["vector", "learn", "--out", str(directory)], "is a directory"),
        (["vector", "extract", "function", "--out", str(directory)], "is a directory"),
        (["report", "--out", str(directory)], "is a directory"),
        (["report", "--out", str(tmp_path / "r.html"), "--cache-dir", str(blocker)], "--cache-dir"),
        (["zoo", "train", "perm-mix", "--out", str(blocker)], "is a file"),
    ):
        start = time.perf_counter()
        proc = cli(*args)
        one_line_error(proc, fragment)
        assert "training" not in proc.stdout and time.perf_counter() - start < 60, args
    assert not (tmp_path / "r.html").exists()


def test_vector_learn_prints_the_layer_it_stores(cli, tmp_path):
    from tvlens import TaskVector, zoo

    out = tmp_path / "v.safetensors"
    proc = cli("vector", "learn", "--layer", "-1", "--epochs", "1", "--shots", "2", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    stored = TaskVector.load(out).layers[0]
    assert stored == zoo.load("perm-mix").n_layers - 1 and f"at layer {stored}," in proc.stdout


def test_evaluate_states_its_shots_and_defaults_to_the_training_prompts(cli):
    from tvlens import zoo

    proc = cli("evaluate", "--prompts", "8", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"{zoo.spec('perm-mix').train.n_shots}-shot ICL prompts" in proc.stdout
    proc = cli("evaluate", "--model", "linear-regression", "--prompts", "8", "--quiet")  # a continuous family
    assert proc.returncode == 0 and "20-shot ICL prompts" in proc.stdout and "mse_per_dim" in proc.stdout
    one_line_error(cli("evaluate", "--task-id", "8", "--quiet"), "--task-id=8: expected 0 … 7")


def test_evaluate_scores_the_split_asked_for(cli, monkeypatch):
    """--split picks the prompts scored (default the held-out 'shared' split); the printed scores are evaluate()'s on
    that split, and a name that is not a split is refused before the model is loaded."""
    import torch

    from tvlens import evaluate, zoo

    proc = cli("evaluate", "--prompts", "16", "--split", "aside", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "16 prompts of the 'aside' split" in proc.stdout
    model, task = zoo.load("perm-mix"), zoo.task("perm-mix").single(0)
    shots = zoo.spec("perm-mix").train.n_shots
    for mode in ("zero_shot", "icl"):
        result = evaluate(model, task, mode, n_prompts=16, n_shots=shots, split="aside", progress=False)
        (line,) = [row for row in proc.stdout.splitlines() if row.startswith(mode + " ")]
        assert f"{result.mean:.4f} ± {result.stderr:.4f}" in line, (line, result.mean)
    shared = evaluate(model, task, "zero_shot", n_prompts=16, n_shots=shots, progress=False)
    assert not torch.equal(shared.values, evaluate(model, task, "zero_shot", n_prompts=16, n_shots=shots,
                                                   split="aside", progress=False).values)  # other prompts
    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("loaded before the check"))
    one_line_error(cli("evaluate", "--split", "holdout", "--quiet"), "--split='holdout': expected one of ['train'")


def test_vector_of_another_model_needs_the_flag(cli, tmp_path):
    import torch

    from tvlens import TaskVector, zoo

    other = zoo.load("perm-mix-2")  # same architecture as perm-mix, other weights
    vector = TaskVector.single(torch.randn(other.d_model), 1, fingerprint=other.fingerprint()).save(
        tmp_path / "other.safetensors")
    one_line_error(cli("evaluate", "--vector", str(vector), "--prompts", "8", "--quiet"), "--allow-other-model")
    proc = cli("evaluate", "--vector", str(vector), "--prompts", "8", "--quiet", "--allow-other-model")
    assert proc.returncode == 0 and "injected" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("tvlens evaluate: warning:") and "strict=False" not in warnings[0]


def test_help_does_not_import_torch():
    """`tvlens --help` answers at once: torch and TransformerLens are imported by the commands that need them."""
    code = "import sys, tvlens.cli; print(sorted({'torch', 'transformer_lens', 'plotly'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
    assert run("--help").returncode == 0


def test_a_model_whose_vocabulary_is_smaller_than_its_tokenizers_is_one_line(cli, tmp_path):
    """A save_pretrained directory whose tokenizer makes ids the model does not have: a clear error, no IndexError."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from .hf_models import train_tokenizer

    tokenizer = train_tokenizer()
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=128, n_ctx=128, vocab_size=64,
                        bos_token_id=2, eos_token_id=2)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "small-vocab")
    tokenizer.save_pretrained(tmp_path / "small-vocab")
    proc = cli("report", "--models", str(tmp_path / "small-vocab"), "--quick", "--no-studies", "--no-cache",
               "--quiet", "--out", str(tmp_path / "r.html"))
    one_line_error(proc, "token id", "d_vocab=64")
    assert not (tmp_path / "r.html").exists()


# ----------------------------------------------------------------------------- fault trial, second round
def test_out_through_a_symlink_updates_the_target_and_keeps_the_link(cli, tmp_path):
    from tvlens import TaskVector

    target = tmp_path / "store" / "v.safetensors"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    proc = cli("vector", "learn", "--epochs", "1", "--shots", "2", "--out", str(link), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and TaskVector.load(target).layers == [1]


def test_out_to_a_device_or_fifo_is_refused_before_any_work(cli, tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for args, fragment in (
        (["vector", "learn", "--out", "/dev/full"], "--out='/dev/full': is a character device"),
        (["claims", "--claims", "key_heads", "--out", str(fifo)], "is a FIFO"),
        (["report", "--out", "/dev/null"], "is a character device"),
        (["demo", "--out", str(fifo)], "is a FIFO"),
    ):
        proc = cli(*args)
        one_line_error(proc, fragment)
        assert proc.stdout == "", args
    assert fifo.exists() and not fifo.is_file()


@pytest.mark.parametrize("lr", ["inf", "nan", "0", "-1"])
def test_a_learning_rate_that_cannot_train_is_one_line(cli, tmp_path, lr):
    out = tmp_path / "v.safetensors"
    proc = cli("vector", "learn", "--lr", lr, "--out", str(out), "--quiet")
    assert proc.returncode == 2 and "argument --lr: expected a finite positive number" in proc.stderr
    assert not out.exists()


def test_claims_and_seed_arguments_are_checked(cli):
    one_line_error(cli("claims", "--claims", ",", "--quiet"), "--claims=','", "expected comma-separated claim names")
    proc = cli("evaluate", "--seed", "99999999999999999999999", "--quiet")
    assert proc.returncode == 2 and "--seed" in proc.stderr and "expected an integer in [0, 4294967295]" in proc.stderr


def test_one_prompt_has_no_standard_error(cli):
    proc = cli("evaluate", "--prompts", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[1:]
    assert len(rows) == 2 and all("± n/a (one prompt) (n=1)" in row for row in rows), rows


def test_a_vector_for_another_task_is_warned_about(cli, tmp_path):
    vector = tmp_path / "v.safetensors"
    assert cli("vector", "learn", "--epochs", "1", "--shots", "2", "--out", str(vector), "--quiet").returncode == 0
    proc = cli("evaluate", "--vector", str(vector), "--task-id", "3", "--prompts", "8", "--quiet")
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("tvlens evaluate: warning: this task vector was made for the task") and "'fixed': 0" in line
    proc = cli("evaluate", "--vector", str(vector), "--task-id", "0", "--prompts", "8", "--quiet")
    assert proc.returncode == 0 and proc.stderr.strip() == ""


def test_misleading_inputs_get_messages_that_name_them(cli, tmp_path):
    (tmp_path / "dir.safetensors").mkdir()
    one_line_error(cli("evaluate", "--vector", str(tmp_path / "dir.safetensors"), "--quiet"), "is a directory")
    proc = cli("demo", "--symbols", "2", "--perms", "2", "--shots", "1", "--steps", "2", "--layers", "1",
               "--d-model", "16")
    assert proc.returncode == 0, proc.stderr


def _last_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A command with a progress bar (training) failed: its error is the one line after the bar."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"tvlens {proc.args[0]}: error: ") and all(f in line for f in fragments), line
    return line


def test_a_full_disk_keeps_the_trained_model_and_says_where(cli, tmp_path, monkeypatch):
    """The write at --out fails as a full disk does (safetensors' own error type): one line that names the
    path and the cause, and the trained model kept in the working directory."""
    from safetensors import SafetensorError

    from tvlens import zoo
    from tvlens.models import io as model_io
    from tvlens.models.io import load_model

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out" / "m.safetensors"
    real_save_file = model_io.save_file

    def full_at_out(state, filename, metadata=None):
        if "out" in filename:
            raise SafetensorError("Error while serializing: IoError(No space left on device)")
        return real_save_file(state, filename, metadata=metadata)

    monkeypatch.setattr(model_io, "save_file", full_at_out)
    proc = cli("demo", "--steps", "2", "--layers", "1", "--d-model", "16", "--symbols", "8", "--perms", "2",
               "--shots", "2", "--out", str(out))
    line = _last_error_line(proc, f"--out={str(out)!r}: cannot write it", "No space left on device",
                            "the trained model is kept at")
    kept = line.split("kept at ")[1].strip("'")
    assert load_model(kept).n_layers == 1 and not out.exists()
    proc = cli("zoo", "train", "perm-mix", "--steps", "1", "--out", str(tmp_path / "out"))
    line = _last_error_line(proc, "No space left on device", "the trained model is kept at")
    kept = line.split("kept at ")[1].strip("'")
    assert load_model(kept).n_layers == zoo.spec("perm-mix").model.n_layers


def test_hf_directories_with_missing_pieces_are_named(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tvlens.models.pretrained import boot_pretrained

    from .hf_models import train_tokenizer

    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=64, vocab_size=300)
    cases = {}
    cases["config only"] = tmp_path / "config-only"
    config.save_pretrained(cases["config only"])
    cases["bad json"] = tmp_path / "bad-json"
    cases["bad json"].mkdir()
    (cases["bad json"] / "config.json").write_text("{not json")
    cases["no tokenizer"] = tmp_path / "no-tokenizer"
    GPT2LMHeadModel(config).save_pretrained(cases["no tokenizer"])
    cases["unknown architecture"] = tmp_path / "unknown"
    GPT2LMHeadModel(config).save_pretrained(cases["unknown architecture"])
    train_tokenizer().save_pretrained(cases["unknown architecture"])
    text = (cases["unknown architecture"] / "config.json").read_text()
    (cases["unknown architecture"] / "config.json").write_text(
        text.replace('"GPT2LMHeadModel"', '"FrobnicatorForCausalLM"').replace('"gpt2"', '"frobnicator"'))
    import json

    for label, change in (("mismatched sizes", {"n_embd": 32}), ("negative width", {"n_embd": -64}),
                          ("no layers", {"n_layer": 0})):
        cases[label] = tmp_path / label.replace(" ", "-")
        GPT2LMHeadModel(config).save_pretrained(cases[label])
        train_tokenizer().save_pretrained(cases[label])
        settings = json.loads((cases[label] / "config.json").read_text())
        (cases[label] / "config.json").write_text(json.dumps({**settings, **change}))
    expected = {"config only": "no weights", "bad json": "config.json is not readable JSON",
                "no tokenizer": "no tokenizer files", "unknown architecture": "cannot load it",
                "mismatched sizes": "its weights do not fit its config.json (tensor shapes differ from the sizes "
                                    "config.json names)",
                "negative width": "config.json has n_embd=-64; expected a positive integer",
                "no layers": "config.json has n_layer=0; expected a positive integer"}
    for label, directory in cases.items():
        with pytest.raises((OSError, ValueError)) as info:
            boot_pretrained(directory)
        message = str(info.value)
        assert "\n" not in message and expected[label] in message and "huggingface-cli" not in message, (label, message)
        assert str(directory) in message, label


def test_out_never_replaces_what_the_run_reads(cli, tmp_path, tiny_qwen2, monkeypatch):
    """``--out`` naming the run's model file, a file in its model directory, its task CSV or the report's cache is
    refused with one line before any model loads, and the file stays byte for byte."""
    import hashlib
    import shutil

    from tvlens import zoo
    from tvlens.models import HookedModel

    model_file = tmp_path / "dm.safetensors"
    shutil.copyfile(zoo.weights_path("perm-mix"), model_file)
    model_dir = tmp_path / "qwen"
    shutil.copytree(tiny_qwen2, model_dir)
    csv = tmp_path / "mine.csv"
    csv.write_text("input,answer\n" + "".join(f"w{i},v{i}\n" for i in range(40)), encoding="utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "stage.pt").write_bytes(b"cached")
    link = tmp_path / "link.safetensors"
    link.symlink_to(model_file)

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    before = {p: digest(p) for p in (model_file, model_dir / "config.json", csv, cache / "stage.pt")}
    monkeypatch.setattr(HookedModel, "from_pretrained", lambda *a, **k: pytest.fail("loaded before the checks"))
    claims = ("claims", "--seeds", "0", "--prompts", "16", "--claims", "vanilla_beats_zero_shot", "--quiet")
    for args, fragment in (
        ([*claims, "--model", str(model_file), "--out", str(model_file)], f"is --model={str(model_file)!r}"),
        ([*claims, "--model", str(model_file), "--out", str(link)], f"is --model={str(model_file)!r}"),
        ([*claims, "--model", str(model_dir), "--tasks", f"antonyms,{csv}", "--out", str(csv)],
         f"is --tasks={str(csv)!r}"),
        ([*claims, "--model", str(model_dir), "--tasks", "antonyms", "--out", str(model_dir / "config.json")],
         f"lies in --model={str(model_dir)!r}"),
        (["report", "--models", str(model_dir), "--cache-dir", str(cache), "--out", str(cache / "stage.pt")],
         f"lies in --cache-dir={str(cache)!r}"),
        (["report", "--models", str(model_dir), "--cache-dir", str(model_dir / "cache")],
         f"--cache-dir={str(model_dir / 'cache')!r}: lies in --models={str(model_dir)!r}"),
    ):
        one_line_error(cli(*args), fragment, "which this run reads; expected another path")
    assert {p: digest(p) for p in before} == before
    assert not (model_dir / "cache").exists()


def test_a_shipped_zoo_model_is_never_a_vectors_output(cli, monkeypatch):
    from tvlens import zoo

    path = zoo.weights_path("perm-mix", zoo.WEIGHTS_DIR)
    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("loaded before the checks"))
    one_line_error(cli("vector", "learn", "--model", "perm-mix", "--out", str(path)), "is --model=", "perm-mix")


def test_claims_seeds_are_checked_before_any_model_loads(cli, monkeypatch):
    from tvlens import zoo

    monkeypatch.setattr(zoo, "load", lambda *a, **k: pytest.fail("loaded before the checks"))
    for seeds in ("-1", "0,4294967296", "a"):
        one_line_error(cli("claims", "--seeds", seeds, "--quiet"), f"--seeds={seeds!r}: expected comma-separated "
                       "integers in [0, 4294967295]")


def test_word_pair_files_too_small_for_the_splits_are_refused_before_any_model_loads(cli, tiny_qwen2, tmp_path,
                                                                                      monkeypatch):
    from tvlens.models import HookedModel

    monkeypatch.setattr(HookedModel, "from_pretrained", lambda *a, **k: pytest.fail("loaded before the checks"))
    small = tmp_path / "n20.csv"
    small.write_text("input,answer\n" + "".join(f"w{i},v{i}\n" for i in range(20)), encoding="utf-8")
    line = one_line_error(cli("claims", "--model", tiny_qwen2, "--tasks", f"antonyms,{small}", "--quiet"),
                          "--tasks: 'n20' has 20 distinct pairs; 5-shot prompts drawn from each held-out split",
                          "need at least 56 (add pairs, or lower the shots)")
    assert len(line) < 250
    line = one_line_error(cli("claims", "--model", tiny_qwen2, "--tasks", "antonyms", "--shots", "1000000", "--quiet"),
                          "'antonyms' has", "1000000-shot prompts", "need at least 10000005")
    assert len(line) < 250


def test_a_reader_that_leaves_early_is_not_an_error_message():
    """``tvlens zoo list | head -1``: no 'Broken pipe' line, no traceback."""
    proc = subprocess.run(f"{sys.executable} -m tvlens.cli zoo list | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.startswith("perm-mix") and proc.stderr == ""


def test_a_template_with_a_backslash_n_from_the_shell_is_a_line_break(cli, monkeypatch):
    import tvlens.tasks.text as text

    seen = []

    def record(template, argument="template"):
        seen.append((template, argument))
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(text, "check_template", record)
    proc = cli("claims", "--model", "perm-mix", "--template", "Q: {x}\\nA: {y}", "--quiet")
    assert proc.returncode == 130 and seen == [("Q: {x}\nA: {y}", "--template")]


def test_claims_prints_the_other_models_rows_when_one_fails(cli, monkeypatch, tmp_path):
    """A model that fails is named at once (a warning), the other models' rows are printed and written, and the run
    exits 2 with one error line naming the failed model."""
    import tvlens.studies.ledger.run as claims_module

    def measure(job, shared=None, done=None):
        if job.subject.name == "token-offset":
            raise ValueError("weights are NaN")
        return [claims_module.UnitResult([(0.5 + 0.01 * t, 0.0, 0)] * len(job.claims)) for t, _ in job.units]

    monkeypatch.setattr(claims_module, "_measure", measure)
    out = tmp_path / "table.md"
    proc = cli("claims", "--model", "perm-mix", "--model", "token-offset", "--claims", "vanilla_beats_zero_shot",
               "--seeds", "0", "--out", str(out), "--quiet")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["tvlens claims: warning: model 'token-offset' failed: weights are NaN; its rows read 'not "
                     "measured', the other models go on",
                     "tvlens claims: error: model 'token-offset' failed: weights are NaN"]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| The vanilla")]
    assert len(rows) == 2 and "| perm-mix |" in rows[0] and "**holds**" in rows[0]
    assert "| token-offset |" in rows[1] and "**not measured** (token-offset failed: weights are NaN)" in rows[1]
    assert out.read_text().strip() == proc.stdout.strip()


def test_every_model_command_takes_the_models_the_ledger_takes(cli, tiny_qwen2, tmp_path):
    """One resolver (tvlens.subjects): evaluate, vector extract/learn and analyze take a Hugging Face directory with
    --tasks (word-pair tasks, the shots of the one rule: 5), as claims does; their numbers are evaluate's own on
    the same model and prompts; a bad --task-id names the directory's task count, and --out may not be a file
    of the model directory."""
    from tvlens import evaluate
    from tvlens.models import HookedModel
    from tvlens.tasks.splits import Splits
    from tvlens.tasks.text import TextTasks, builtin_tasks

    proc = cli("evaluate", "--model", tiny_qwen2, "--tasks", "antonyms,country_capital", "--task-id", "1",
               "--prompts", "16", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "task 1: 16 prompts of the 'shared' split, 5-shot ICL prompts" in proc.stdout
    model = HookedModel.from_pretrained(tiny_qwen2)
    task = TextTasks((builtin_tasks()["antonyms"], builtin_tasks()["country_capital"]),
                     tokenizer=model.tokenizer).single(1)
    batch = Splits(0).sample(task, "shared", 16, 5)
    for mode in ("zero_shot", "icl"):
        line = next(x for x in proc.stdout.splitlines() if x.startswith(mode))
        assert f"{evaluate(model, task, mode, batch=batch).mean:.4f}" in line, line
    # a tvlens model file (here the zoo's own weights) is the zoo model: the same numbers at the same shots
    from tvlens import zoo

    as_file, as_name = (cli("evaluate", "--model", m, "--task-id", "2", "--shots", "8", "--prompts", "64", "--quiet")
                        for m in (str(zoo.weights_path("perm-mix")), "perm-mix"))
    assert as_file.stdout.split("\n", 1)[1] == as_name.stdout.split("\n", 1)[1] and "0.0000 ±" not in as_name.stdout
    out = tmp_path / "fv.safetensors"
    made = cli("vector", "extract", "function", "--model", tiny_qwen2, "--tasks", "antonyms", "--layer", "1",
               "--out", str(out), "--quiet")
    assert made.returncode == 0 and out.exists(), made.stderr
    used = cli("evaluate", "--model", tiny_qwen2, "--tasks", "antonyms", "--vector", str(out), "--prompts", "8",
               "--quiet")
    assert used.returncode == 0 and any(x.startswith("injected") for x in used.stdout.splitlines()), used.stderr
    one_line_error(cli("evaluate", "--model", tiny_qwen2, "--tasks", "antonyms", "--task-id", "1", "--quiet"),
                   f"--task-id=1: expected 0 … 0 ({tiny_qwen2} has 1 tasks)")
    one_line_error(cli("evaluate", "--model", tiny_qwen2, "--quiet"), "--tasks: a Hugging Face model")
    one_line_error(cli("vector", "extract", "vanilla", "--model", tiny_qwen2, "--tasks", "antonyms", "--out",
                       str(Path(tiny_qwen2) / "v.safetensors")), "lies in --model=")
