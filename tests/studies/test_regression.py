"""Regression fidelity on the zoo (seed 000's claims; measured numbers in docs/studies.md)."""

from __future__ import annotations

import pytest

from tvlens import zoo
from tvlens.studies import regression_fidelity, shifted


@pytest.fixture(scope="module")
def table():
    return regression_fidelity("linear-regression", lengths=[2, 20, 40, 60], n_prompts=200)


def test_head_weighted_beats_the_function_vector_at_every_length(table):
    """Seed 000: the head-weighted LTV keeps the function (error ≤ FV's), at and beyond the training length."""
    for shift in ("none", "skewed", "noisy"):
        for n in (20, 40):
            hw = table.select(shift=shift, n_shots=n, method="head_weighted")[0]
            fv = table.select(shift=shift, n_shots=n, method="function")[0]
            assert hw["mse_per_dim"] < fv["mse_per_dim"] - 3 * (hw["stderr"] + fv["stderr"]), (shift, n)


def test_table_shape_and_notes(table):
    assert table.settings["train_shots"] == 20 and table.settings["max_shots"] == 40
    assert {r["n_shots"] for r in table.records} == {2, 20, 40}
    assert any("n_shots=60" in note and "context" in note for note in table.notes)
    # orthogonal queries exist only for n < D = 5
    assert {r["n_shots"] for r in table.select(shift="orthogonal")} == {2}
    assert all(r["beyond_training"] == (r["n_shots"] > 20) for r in table.records)
    cells = {(r["shift"], r["n_shots"]) for r in table.records}
    assert len(table.records) == 6 * len(cells)


def test_more_demonstrations_help_icl_within_the_training_length(table):
    short = table.value("mse_per_dim", shift="none", n_shots=2, method="icl")
    trained = table.value("mse_per_dim", shift="none", n_shots=20, method="icl")
    zero = table.value("mse_per_dim", shift="none", n_shots=20, method="zero_shot")
    assert trained < 0.1 * short and trained < 0.1 * zero


def test_errors():
    with pytest.raises(TypeError, match="needs a regression task"):
        regression_fidelity(zoo.load("perm-mix"), zoo.task("perm-mix"))
    with pytest.raises(ValueError, match="unknown methods/shifts"):
        regression_fidelity("linear-regression", methods=["icl", "magic"])
    with pytest.raises(ValueError, match="shift='rotated'"):
        shifted(zoo.task("linear-regression"), "rotated")
