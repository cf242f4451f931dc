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
from tvlens.models.hooked import HookedModel
from tvlens.scoring import EvalResult
from tvlens.tasks.base import Task
from tvlens.tasks.metric import metric_named
from tvlens.vectors.bench import METHODS, Bench, check_methods
from tvlens.vectors.learned import LearnConfig
from tvlens.vectors.task_vector import TaskVector


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
    methods: tuple[str, ...] | list[str] | None = None,
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
        methods: names from :data:`~tvlens.vectors.bench.METHODS` (default: every registered method).
        layers: layers to place single-layer vectors at (default: all). A method over every layer at once (the
            head-weighted vector) gets one row with ``layer=None``.
        task_id: which task of a family (or which fixed function of a regression family).
        seed: the user seed: every method's prompts and the shared test prompts come from :class:`~tvlens.tasks.Splits`
            ``(seed)`` (it overrides ``learn_config.seed``).
        n_test: shared test prompts (the ``shared`` split).
        learn_config: settings of the learned vectors.
        top_k: heads of the function vector (default: 10 % of the heads, at least 2).
    """
    methods = check_methods(tuple(METHODS) if methods is None else methods)
    layers = list(range(model.n_layers)) if layers is None else [model.check_layer(lay) for lay in layers]
    bench = Bench(model, task, seed=seed, n_shots=n_shots, learn=learn_config, top_k=top_k, task_id=task_id,
                  progress=progress)
    test = bench.prompts("shared", n_test)
    records = [_row(mode, None, bench.score(mode, test)) for mode in ("zero_shot", "icl")]
    vectors: dict[tuple[str, int | None], TaskVector] = {}
    for method in methods:
        made = bench.vectors(method, list(dict.fromkeys(layers)) if METHODS[method].per_layer else [None])
        for layer in (layers if METHODS[method].per_layer else [None]):
            vectors[(method, layer)] = made[layer]
            records.append(_row(method, layer, bench.score(made[layer], test)))
    return Comparison(records=records, metric=bench.task.metric.name, task=bench.task.to_dict(), vectors=vectors)
