"""Yang et al. 2025a's propagation claims on the shipped token-offset model.

The vector is token-offset task 0's LTV at layer 1, which carries the task to queries it never saw (perm-mix's
last-position LTV does not: docs/vectors.md). Heads are chosen on the dev split's queries and every score is on
held-out queries. The measured numbers are written into docs/propagation.md by docs/make_measured.py with the same
settings. These tests pin what this vector shows; whether a claim holds across tasks and seeds is the claims
ledger's (tests/studies/test_claims.py).
"""

from __future__ import annotations

import pytest

from tvlens import zoo
from tvlens.analysis import key_head_analysis, ov_decomposition
from tvlens.tasks import Splits
from tvlens.vectors import learn_task_vector


@pytest.fixture(scope="module")
def offset_ltv():
    model, task = zoo.load("token-offset"), zoo.task("token-offset").single(0)
    ltv, _ = learn_task_vector(model, task, 1, n_shots=16, progress=False)
    return model, task, ltv


def test_key_heads_hurt_the_vector_more_than_random_heads(offset_ltv):
    """Measured, seed 0: ablating the key heads costs the vector more accuracy than as many random non-key heads
    (Yang et al. 2025a's key-head claim shows on this vector); the control never holds a key head."""
    model, task, ltv = offset_ltv
    result = key_head_analysis(model, task, ltv, n_prompts=300, seed=0, n_random=20)
    s = result.summary()
    assert s["injected"] >= 0.85
    assert s["key_ablated"] <= s["injected"] - 0.1
    assert not set(result.key_heads) & {h for draw in result.random_heads for h in draw}  # the control excludes them
    gap = s["random_ablated"] - s["key_ablated"]
    assert gap > 2 * (s["random_ablated_stderr"] + s["key_ablated_stderr"])
    # saliency ranks heads like their exact ablation effect (positively, if loosely)
    assert result.saliency_agreement > 0.2


def test_ov_reinjection_on_the_zoo(offset_ltv):
    """Measured, seed 0: the OV path of θ alone carries part of the task (θ_OV scores above zero-shot, short of the
    vector: a share of its gain between 0.1 and 0.5); the later MLPs carry most of the answer effect (the exact
    per-prompt path split)."""
    model, task, ltv = offset_ltv
    result = ov_decomposition(model, task, ltv, batch=Splits(0).sample(task, "shared", 300, 16))
    s = result.summary()
    assert s["vector"] >= 0.85
    assert s["zero_shot"] + 0.05 < s["theta_ov"] < s["vector"] - 0.2
    assert 0.1 < result.ov_share < 0.5
    paths = result.path_shares()
    assert paths["mlp"] > 0.75 and paths["attention"] < 0.2
