"""Compare every task-vector method on the *same* test prompts, in one tidy table.

``compare(model, task)`` makes each method's vector at each requested layer from its own
extraction/training prompts and scores all of them — plus zero-shot and ICL — on one shared set
of test prompts (the ``shared`` split of :class:`~tvlens.tasks.Splits`), so differences are paired and
standard errors comparable. Every method is given the same ``seed`` and draws its own prompts from
the other splits.
A family of tasks is first restricted to one task (``task_id``): a task vector is per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tvlens._records import Records
from tvlens.evaluate import EvalResult, evaluate
from tvlens.models.hooked import HookedModel
from tvlens.tasks.base import Task
from tvlens.tasks.metric import metric_named
from tvlens.tasks.splits import Splits
from tvlens.vectors.function import default_top_k, function_vector
from tvlens.vectors.head_weighted import head_weighted_task_vector
from tvlens.vectors.learned import LearnConfig, learn_task_vectors
from tvlens.vectors.task_vector import TaskVector
from tvlens.vectors.vanilla import vanilla_task_vector

METHODS = ("vanilla", "function", "learned", "head_weighted")


@dataclass
class Comparison(Records):
    """Rows ``{method, layer, <metric name>, stderr, n}`` (``accuracy`` or ``mse_per_dim``); ``method`` includes
    ``zero_shot`` and ``icl``."""

    records: list[dict[str, Any]]
    metric: str
    task: dict[str, Any]
    vectors: dict[tuple[str, int | None], TaskVector] = field(default_factory=dict, repr=False)

    def best(self, method: str) -> dict[str, Any]:
        """The best row of one method (highest accuracy or lowest error)."""
        rows = [r for r in self.records if r["method"] == method]
        if not rows:
            have = sorted({r["method"] for r in self.records})
            raise KeyError(f"method={method!r} is not in this comparison; have {have}")
        return rows[metric_named(self.metric).best([r[self.metric] for r in rows])]

    def to_records(self) -> list[dict[str, Any]]:
        """The rows (zero-shot, ICL, then every method at every layer)."""
        return [dict(row) for row in self.records]


def _row(method: str, layer: int | None, result: EvalResult) -> dict[str, Any]:
    return {"method": method, "layer": layer, **result.row()}


def compare(
    model: HookedModel,
    task: Task,
    methods: tuple[str, ...] | list[str] = METHODS,
    layers: list[int] | None = None,
    *,
    seed: int = 0,
    task_id: int = 0,
    n_test: int = 200,
    n_shots: int | None = None,
    learn_config: LearnConfig | None = None,
    top_k: int | None = None,
    progress: bool = True,
) -> Comparison:
    """Evaluate zero-shot, ICL and every method at every layer on the same test prompts.

    Args:
        methods: any of ``"vanilla"``, ``"function"``, ``"learned"``, ``"head_weighted"``.
        layers: layers to place single-layer vectors at (default: all). Head-weighted vectors use
            every layer at once and get one row with ``layer=None``.
        task_id: which task of a family (or which fixed function of a regression family).
        seed: the user seed: every method's prompts and the shared test prompts come from :class:`~tvlens.tasks.Splits`
            ``(seed)`` (it overrides ``learn_config.seed``).
        n_test: shared test prompts (the ``shared`` split).
        learn_config: settings of the learned vectors.
        top_k: heads of the function vector (default: 10 % of the heads, at least 2).
    """
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods={list(methods)!r}: unknown {unknown}; expected a subset of {list(METHODS)}")
    if getattr(task, "fixed", None) is None:
        task = task.single(task_id)
    layers = list(range(model.n_layers)) if layers is None else [model.check_layer(lay) for lay in layers]
    test = Splits(seed).sample(task, "shared", n_test, n_shots)
    records = [_row("zero_shot", None, evaluate(model, task, "zero_shot", batch=test, progress=False)),
               _row("icl", None, evaluate(model, task, "icl", batch=test, progress=False))]
    vectors: dict[tuple[str, int | None], TaskVector] = {}
    k = top_k or default_top_k(model)
    made: dict[str, Any] = {}  # what several layers share: the FV's heads, the learned vectors
    for method in methods:
        if method == "head_weighted":
            tv, _ = head_weighted_task_vector(model, task, n_shots=n_shots, progress=progress, seed=seed)
            vectors[(method, None)] = tv
            records.append(_row(method, None, evaluate(model, task, "injected", tv, batch=test, progress=False)))
            continue
        for layer in layers:
            if method == "vanilla":
                tv, _ = vanilla_task_vector(model, task, layer, n_shots=n_shots, seed=seed, progress=False)
            elif method == "function":
                if "tv" not in made:  # the heads and their mean outputs do not depend on the layer
                    made["tv"], made["result"] = function_vector(model, task, 0, top_k=k, n_shots=n_shots,
                                                                         seed=seed, progress=False)
                result = made["result"]
                tv = TaskVector.single(result.vector, layer, method="function", task=task.to_dict(),
                                       fingerprint=made["tv"].fingerprint,
                                       hyperparameters={**made["tv"].hyperparameters, "layer": layer})
            else:  # every layer's vector trained side by side, the first time one is needed
                if "learned" not in made:
                    made["learned"] = learn_task_vectors(model, task, list(dict.fromkeys(layers)), n_shots=n_shots,
                                                             config=learn_config, progress=progress, seed=seed)
                tv = made["learned"][layer][0]
            vectors[(method, layer)] = tv
            records.append(_row(method, layer, evaluate(model, task, "injected", tv, batch=test, progress=False)))
    return Comparison(records=records, metric=task.metric.name, task=task.to_dict(), vectors=vectors)
