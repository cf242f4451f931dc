"""Yang et al. 2025a's comparison on the zoo: learned vs vanilla task vectors vs function vectors, in three settings.

For one task of every symbolic zoo family (task 0), each method's vector is made from its own
prompts and scored on shared test prompts (the ``shared`` split of :class:`~tvlens.tasks.Splits`):

* ``last`` — injected at the last position of the zero-shot query (TVP mode);
* ``early`` — at a fixed early position (the query token ``x``, position 1 of ``BOS x →``; Yang et al. 2025a's
  ``P = 4`` setting), layer ``early_layer``;
* ``few_shot`` — added at the last position of a ``few_shots``-shot prompt (the vector helps an ICL
  prompt that is too short to pin the task down).

Vanilla TVs use Yang et al. 2025a's ``add`` form (mean ICL state minus mean zero-shot state), read at the same
position they are injected at; the FV is Todd's; the LTV is trained in each setting's own base and
position. Layers: the vanilla TV's best layer on development prompts for ``last`` (shared by all
methods, so they differ only in the vector), ``early_layer`` for ``early``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tvlens import zoo
from tvlens._progress import progress_bar
from tvlens.evaluate import evaluate
from tvlens.models.hooked import HookedModel
from tvlens.studies.table import StudyTable
from tvlens.tasks.base import Task
from tvlens.tasks.splits import Splits
from tvlens.vectors.function import default_top_k, function_vector
from tvlens.vectors.learned import LearnConfig, learn_task_vector
from tvlens.vectors.task_vector import TaskVector
from tvlens.vectors.vanilla import vanilla_task_vector

SETTINGS = ("last", "early", "few_shot")
SYMBOLIC_ZOO = ("perm-mix", "perm-mix-2", "perm-mix-32", "token-offset")


def method_table(
    models: Sequence[str] | dict[str, tuple[HookedModel, Task]] = SYMBOLIC_ZOO,
    *,
    settings: Sequence[str] = SETTINGS,
    task_id: int = 0,
    n_shots: int = 16,
    few_shots: int = 2,
    early_position: int = 1,
    early_layer: int = 1,
    n_test: int = 300,
    seed: int = 0,
    lr: float = LearnConfig.lr,
    epochs: int = LearnConfig.epochs,
    top_k: int | None = None,
    progress: bool = True,
) -> StudyTable:
    """The Yang et al. 2025a table: rows ``{model, setting, layer, method, accuracy, stderr, n}``.

    Args:
        models: zoo names, or ``{label: (model, task family)}``.
        settings: any of :data:`SETTINGS`.
        task_id: which task of each family.
        n_shots: demonstrations of the prompts vectors are made from (and of ICL's reference row).
        few_shots: demonstrations of the ``few_shot`` setting's prompts.
        early_position: where the ``early`` setting injects (a position of the zero-shot prompt).
        early_layer: the layer of the ``early`` setting.
        lr: LTV learning rate (the zoo's Yang et al. 2025a setting).
        epochs: LTV epochs.
        top_k: FV heads (default: 10 % of the heads, at least 2).
        progress: a tqdm bar over the models' extraction and settings.
    """
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f"settings={list(settings)!r}: unknown {unknown}; expected a subset of {list(SETTINGS)}")
    if isinstance(models, dict):
        pairs = dict(models)
    else:
        pairs = {name: (zoo.load(name), zoo.task(name)) for name in models}
    records: list[dict[str, Any]] = []
    bar = progress_bar(total=len(pairs) * (1 + len(settings)), desc="learned vs extracted", progress=progress)
    for label, (model, family) in pairs.items():
        if family.metric.name != "accuracy":
            raise ValueError(f"models: {label!r} is scored by {family.metric.name}; the learned-vs-extracted table "
                             "is for token tasks scored by accuracy")
        task = family.single(task_id)
        test = Splits(seed).sample(task, "shared", n_test, n_shots)
        few = Splits(seed).sample(task, "shared", n_test, few_shots)
        k = top_k or default_top_k(model)

        def row(setting: str, layer: int | None, method: str, result: Any) -> None:
            records.append({"model": label, "setting": setting, "layer": layer, "method": method,  # noqa: B023
                            **result.row()})

        def score(tv: TaskVector, base: str = "zero_shot", batch: Any = test) -> Any:
            return evaluate(model, task, "injected", tv, batch=batch, base=base, progress=False)  # noqa: B023

        row("reference", None, "zero_shot", evaluate(model, task, "zero_shot", batch=test, progress=False))
        row("reference", None, "icl", evaluate(model, task, "icl", batch=test, progress=False))
        if "few_shot" in settings:
            row("few_shot", None, "icl", evaluate(model, task, "icl", batch=few, progress=False))
        vtv, vres = vanilla_task_vector(model, task, n_shots=n_shots, seed=seed, progress=False)
        layer = vres.sweep.best_layer
        _, fv = function_vector(model, task, layer, top_k=k, n_shots=n_shots, seed=seed, progress=False)
        bar.update(1)

        def fv_at(at: int, positions: Any = "last") -> TaskVector:
            return TaskVector.single(fv.vector, at, positions, method="function")  # noqa: B023

        for setting in settings:
            if setting == "last":
                ltv, _ = learn_task_vector(model, task, layer, n_shots=n_shots, progress=False, lr=lr, epochs=epochs,
                                           seed=seed)
                row(setting, layer, "vanilla", score(vtv))
                row(setting, layer, "function", score(fv_at(layer)))
                row(setting, layer, "learned", score(ltv))
            elif setting == "early":
                early_vtv, _ = vanilla_task_vector(model, task, early_layer, position=early_position, n_shots=n_shots,
                                                   seed=seed, progress=False)
                ltv, _ = learn_task_vector(model, task, early_layer, positions=early_position, n_shots=n_shots,
                                           progress=False, lr=lr, epochs=epochs, seed=seed)
                row(setting, early_layer, "vanilla", score(early_vtv))
                row(setting, early_layer, "function", score(fv_at(early_layer, early_position)))
                row(setting, early_layer, "learned", score(ltv))
            else:
                ltv, _ = learn_task_vector(model, task, layer, base="icl", n_shots=few_shots, progress=False, lr=lr,
                                           epochs=epochs, seed=seed)
                row(setting, layer, "vanilla", score(vtv, "icl", few))
                row(setting, layer, "function", score(fv_at(layer), "icl", few))
                row(setting, layer, "learned", score(ltv, "icl", few))
            bar.update(1)
    bar.close()
    return StudyTable(records=records, name="Yang et al. 2025a: learned vs vanilla vs function vectors",
                      settings={"models": list(pairs), "task_id": task_id, "n_shots": n_shots, "few_shots": few_shots,
                                "early_position": early_position, "early_layer": early_layer, "n_test": n_test,
                                "seed": seed, "lr": lr, "epochs": epochs})


__all__ = ["SETTINGS", "SYMBOLIC_ZOO", "method_table"]
