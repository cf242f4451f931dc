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
from tvlens.models.hooked import HookedModel
from tvlens.studies.table import StudyTable
from tvlens.tasks.base import Task
from tvlens.vectors.bench import Bench
from tvlens.vectors.learned import LearnConfig

SETTINGS = ("last", "early", "few_shot")
#: The methods of Yang et al. 2025a's table (names of :data:`~tvlens.vectors.bench.METHODS`).
_COMPARED = ("vanilla", "function", "learned")
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
        bench = Bench(model, family, seed=seed, n_shots=n_shots, learn=LearnConfig(lr=lr, epochs=epochs),
                      top_k=top_k, task_id=task_id, progress=False)
        test, few = bench.prompts("shared", n_test), bench.prompts("shared", n_test, few_shots)

        def row(setting: str, layer: int | None, method: str, result: Any) -> None:
            records.append({"model": label, "setting": setting, "layer": layer, "method": method,  # noqa: B023
                            **result.row()})

        row("reference", None, "zero_shot", bench.score("zero_shot", test))
        row("reference", None, "icl", bench.score("icl", test))
        if "few_shot" in settings:
            row("few_shot", None, "icl", bench.score("icl", few))
        layer = bench.vanilla_layer
        bar.update(1)
        for setting in settings:
            # where each setting puts the vectors, and the prompts they are added to and scored on
            at, positions, base, batch, shots = {
                "last": (layer, "last", "zero_shot", test, n_shots),
                "early": (early_layer, early_position, "zero_shot", test, n_shots),
                "few_shot": (layer, "last", "icl", few, few_shots)}[setting]
            for method in _COMPARED:
                # the vanilla TV and the FV are read from n-shot prompts in every setting; the LTV trains in its own
                made = dict(positions=positions, base=base, n_shots=shots) if method == "learned" else \
                    dict(positions=positions)
                row(setting, at, method, bench.score(bench.vector(method, at, **made), batch, base))
            bar.update(1)
    bar.close()
    return StudyTable(records=records, name="Yang et al. 2025a: learned vs vanilla vs function vectors",
                      settings={"models": list(pairs), "task_id": task_id, "n_shots": n_shots, "few_shots": few_shots,
                                "early_position": early_position, "early_layer": early_layer, "n_test": n_test,
                                "seed": seed, "lr": lr, "epochs": epochs})


__all__ = ["SETTINGS", "SYMBOLIC_ZOO", "method_table"]
