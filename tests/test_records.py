"""Every result object exports flat rows (``to_records``) and a DataFrame (``to_pandas``); every config's
``from_dict`` refuses unknown keys by name."""

from __future__ import annotations

import pytest
import torch

from tvlens import evaluate
from tvlens._records import Records
from tvlens.analysis import ablation_scan, frozen_decomposition, key_head_analysis, linear_dynamics, ov_decomposition
from tvlens.models import ModelConfig
from tvlens.report import ReportConfig
from tvlens.studies import tvp_by_layer
from tvlens.training import TrainConfig
from tvlens.vectors import (
    LearnConfig,
    compare,
    function_vector,
    head_weighted_task_vector,
    learn_task_vector,
    vanilla_task_vector,
)

_FLAT = (int, float, str, bool, type(None))


@pytest.fixture(scope="module")
def results():
    from tests.conftest import tiny_config
    from tvlens.models import HookedModel
    from tvlens.tasks import PermutationMixture

    model = HookedModel.from_config(tiny_config())
    family = PermutationMixture(n_symbols=16, n_perms=4, seed=0)
    task = family.single(0)
    small = {"n_prompts": 16, "n_shots": 3}
    out = {}
    out["eval"] = evaluate(model, task, "icl", progress=False, **small)
    _, out["vanilla"] = vanilla_task_vector(model, task, n_shots=3, n_prompts=16, dev_prompts=8, test_prompts=8)
    out["sweep"] = out["vanilla"].sweep
    _, out["function"] = function_vector(model, task, 1, top_k=2, n_prompts=8, n_corrupted=4, n_shots=3)
    ltv, out["learned"] = learn_task_vector(model, task, 1, n_shots=3, progress=False, epochs=2, n_train=16, n_val=8)
    _, out["head_weighted"] = head_weighted_task_vector(model, task, n_shots=3, progress=False, epochs=2, n_train=16,
                                                        n_val=8, n_head_prompts=8)
    out["compare"] = compare(model, task, methods=["vanilla"], layers=[1], n_test=8, n_shots=3, progress=False)
    out["ov"] = ov_decomposition(model, task, ltv, **small)
    prompts = task.sample(8, 3, seed=0)
    out["scan"] = ablation_scan(model, prompts.zero_shot, ltv)
    out["heads"] = key_head_analysis(model, task, ltv, n_random=20, **small)
    out["dynamics"] = linear_dynamics(model, task, ltv, n_prompts=2, n_copies=70, n_shots=3)
    out["map"] = out["dynamics"].direct
    out["profile"] = tvp_by_layer(model, family, n_prompts=16, n_shots=3)
    attn_only = HookedModel.from_config(tiny_config(attn_only=True), dtype=torch.float64)
    out["frozen"] = frozen_decomposition(attn_only, prompts.inputs, torch.randn(32, dtype=torch.float64), 1)
    return out


@pytest.mark.parametrize("name", ["eval", "vanilla", "sweep", "function", "learned", "head_weighted", "compare", "ov",
                                  "scan", "heads", "dynamics", "map", "profile", "frozen"])
def test_every_result_exports_flat_rows_and_a_dataframe(results, name):
    result = results[name]
    assert isinstance(result, Records)
    records = result.to_records()
    assert records and all(isinstance(row, dict) for row in records)
    assert all(isinstance(value, _FLAT) for row in records for value in row.values()), records[0]
    frame = result.to_pandas()
    assert len(frame) == len(records) and list(frame.columns)[:2] == list(records[0])[:2]


def test_rows_hold_the_results_numbers(results):
    heads = results["heads"]
    rows = {(r["layer"], r["head"]): r for r in heads.to_records()}
    layer, head = heads.key_heads[0]
    assert rows[(layer, head)]["key"] and rows[(layer, head)]["saliency"] == pytest.approx(float(heads.saliency[layer,
                                                                                                                head]))
    ev = results["eval"]
    assert [r["accuracy"] for r in ev.to_records()] == ev.values.tolist()
    learned = results["learned"]
    assert sum(r["best"] for r in learned.to_records()) == 1


@pytest.mark.parametrize("config", [LearnConfig, TrainConfig, ModelConfig, ReportConfig])
def test_every_config_refuses_unknown_keys(config):
    with pytest.raises(ValueError, match=rf"{config.__name__}.from_dict: unknown keys \['colour'\]"):
        config.from_dict({"colour": "red"})
