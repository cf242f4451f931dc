"""Every zoo family through the three analyses — OV decomposition, key heads, linear dynamics — from the API
(the fast suite, few prompts) and from the command line (slow): a regression model's zero-shot prompt is one
token, the query engine's empty-prefix case, which once raised instead of answering."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from tvlens import TaskVector, zoo
from tvlens.analysis import key_head_analysis, linear_dynamics, ov_decomposition

#: One zoo model per task family: symbolic, regression (one-token zero-shot prompts), formal languages.
ONE_PER_FAMILY = ("perm-mix", "token-offset", "linear-regression", "sparse-linear-regression",
                  "sinusoid-regression", "hmm-mixture", "regular-languages")


def _vector(model, name):
    theta = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0)) * 0.5
    return TaskVector.single(theta, 1, fingerprint=model.fingerprint(), task=zoo.task(name).single(0).to_dict())


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_every_family_through_ov_heads_and_dynamics(name):
    model, task = zoo.load(name), zoo.task(name).single(0)
    vector = _vector(model, name)
    ov = ov_decomposition(model, task, vector, n_prompts=6, seed=0)
    assert torch.isfinite(ov.contribution_norm[1:]).all()
    heads = key_head_analysis(model, task, vector, n_prompts=6, seed=0)
    assert heads.key_heads and all(0 <= layer < model.n_layers for layer, _ in heads.key_heads)
    dynamics = linear_dynamics(model, task, vector, n_prompts=6, seed=0, progress=False)
    # held-out R² is at most 1 (it can fall below 0 on rows that neither fitted nor chose the map)
    assert dynamics.to_records() and all(math.isfinite(row["r2"]) and row["r2"] <= 1.0 + 1e-9
                                         for row in dynamics.to_records())


@pytest.mark.slow
@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_every_family_through_the_command_line(name, tmp_path):
    path = tmp_path / "v.safetensors"
    _vector(zoo.load(name), name).save(path)
    for analysis in ("ov", "heads", "dynamics"):
        proc = subprocess.run([sys.executable, "-m", "tvlens.cli", "analyze", analysis, "--model", name, "--vector",
                               str(path), "--prompts", "8", "--quiet"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (name, analysis, proc.stderr)
