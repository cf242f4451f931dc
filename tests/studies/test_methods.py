"""The Yang et al. 2025a table on the zoo (measured numbers in docs/studies.md)."""

from __future__ import annotations

import pytest

from tvlens.studies import method_table


@pytest.fixture(scope="module")
def table():
    return method_table(["perm-mix"], n_test=300)


def test_learned_vectors_beat_extracted_ones_in_every_setting(table):
    """Yang et al. 2025a: the LTV beats the vanilla TV and the FV at the last position, at an early position and
    on top of a short ICL prompt."""
    for setting in ("last", "early", "few_shot"):
        learned = table.select(setting=setting, method="learned")[0]
        for method in ("vanilla", "function"):
            other = table.select(setting=setting, method=method)[0]
            assert learned["accuracy"] > other["accuracy"] + 2 * (learned["stderr"] + other["stderr"]), (setting,
                                                                                                         method)


def test_a_learned_vector_reaches_icl_at_the_early_position(table):
    """At the early position the LTV still carries the task. (The extracted vectors' collapse there is not
    asserted: the prompt's state at position 1 has seen no demonstration — true by construction.)"""
    zero = table.value("accuracy", setting="reference", method="zero_shot")
    learned = table.select(setting="early", method="learned")[0]
    assert learned["accuracy"] >= 0.9 and learned["accuracy"] - zero > 10 * learned["stderr"]


def test_rows(table):
    assert {r["setting"] for r in table.records} == {"reference", "last", "early", "few_shot"}
    assert len(table.records) == 2 + 1 + 3 * 3
    assert "| model | setting |" in table.to_markdown()


def test_errors():
    with pytest.raises(ValueError, match="unknown \\['middle'\\]"):
        method_table(["perm-mix"], settings=["middle"])
    with pytest.raises(ValueError, match="is scored by mse_per_dim; the learned-vs-extracted table is for token tasks"):
        method_table(["linear-regression"])
