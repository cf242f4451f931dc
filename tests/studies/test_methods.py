"""The Yang et al. 2025a table on the zoo (measured numbers in docs/studies.md)."""

from __future__ import annotations

import pytest

from tvlens.studies import method_table


@pytest.fixture(scope="module")
def table():
    return method_table(["perm-mix", "token-offset"], n_test=300)


@pytest.mark.parametrize(("model", "setting"), [("token-offset", "last"), ("perm-mix", "early")])
def test_learned_vectors_beat_extracted_ones_on_held_out_queries(table, model, setting):
    """Yang et al. 2025a: the LTV beats the vanilla TV and the FV — measured on queries no vector saw, where it
    holds on token-offset at the last position and on perm-mix at the query token. (perm-mix's last-position LTV
    fits its 16 training queries and scores like zero-shot on new ones: docs/vectors.md.)"""
    learned = table.select(model=model, setting=setting, method="learned")[0]
    for method in ("vanilla", "function"):
        other = table.select(model=model, setting=setting, method=method)[0]
        assert learned["accuracy"] > other["accuracy"] + 2 * (learned["stderr"] + other["stderr"]), method


def test_a_learned_vector_carries_the_task_at_the_early_position(table):
    """At the early position perm-mix's LTV carries the task to new queries. (The extracted vectors' collapse there
    is not asserted: the prompt's state at position 1 has seen no demonstration — true by construction.)"""
    zero = table.value("accuracy", model="perm-mix", setting="reference", method="zero_shot")
    learned = table.select(model="perm-mix", setting="early", method="learned")[0]
    assert learned["accuracy"] >= 0.7 and learned["accuracy"] - zero > 10 * learned["stderr"]


def test_rows(table):
    assert {r["setting"] for r in table.records} == {"reference", "last", "early", "few_shot"}
    assert len(table.records) == 2 * (2 + 1 + 3 * 3)
    assert "| model | setting |" in table.to_markdown()


def test_errors():
    with pytest.raises(ValueError, match="unknown \\['middle'\\]"):
        method_table(["perm-mix"], settings=["middle"])
    with pytest.raises(ValueError, match="is scored by mse_per_dim; the learned-vs-extracted table is for token tasks"):
        method_table(["linear-regression"])
