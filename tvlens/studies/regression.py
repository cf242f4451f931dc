"""Regression fidelity (Saglam et al. 2025's benchmark): how much of a function a vector carries, by prompt length
and under distribution shift.

Every regression prompt shows a fresh function, so a vector that carries *the task* must be
read from the prompt itself. For a prompt of ``n`` demonstrations the table scores, on the same
test prompts, the squared error of the query prediction divided by ``D``:

* ``icl`` — the n-shot prompt; ``zero_shot`` — the query alone;
* ``vanilla`` — the query with its stream at layer ``l`` replaced by the n-shot prompt's own
  state there (TVP mode; ``l`` chosen on development prompts at the training length);
* ``function`` — the query plus the sum of the prompt's top-AIE heads' outputs (Todd's FV read
  per prompt), at the layer chosen on development prompts;
* ``learned`` — one LTV learned on the family (it can only carry what all functions share);
* ``head_weighted`` — Saglam et al. 2025's head-weighted LTV with each prompt's own heads (``ω`` learned once).

Vectors are made once on unshifted prompts of the training length and then read from the test
prompts of every length and shift (``none``, ``skewed`` inputs, ``noisy`` labels, ``orthogonal``
query; Saglam et al. 2025's shifts). Lengths beyond the training length but within the model's context are
scored too (``beyond_training``); lengths beyond the context cannot be and are listed in ``notes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from tvlens import zoo
from tvlens.interventions import Intervention
from tvlens.models.hooked import HookedModel
from tvlens.scoring import EvalResult, evaluate
from tvlens.studies.formation import tvp_by_layer
from tvlens.studies.table import StudyTable
from tvlens.tasks.base import ICLBatch
from tvlens.tasks.regression import RegressionTask
from tvlens.tasks.splits import Splits
from tvlens.vectors.bench import Bench
from tvlens.vectors.function import project_heads, prompt_head_z
from tvlens.vectors.vanilla import query_states

SHIFTS = ("none", "skewed", "noisy", "orthogonal")
FIDELITY_METHODS = ("icl", "zero_shot", "vanilla", "function", "learned", "head_weighted")
#: Methods whose vector is read per test prompt (from another prompt of its function).
PER_PROMPT = ("vanilla", "function", "head_weighted")


def shifted(task: RegressionTask, shift: str, noise_std: float = 0.5) -> RegressionTask:
    """The task under one of :data:`SHIFTS`."""
    changes = {"none": {}, "skewed": {"x_distribution": "skewed"}, "noisy": {"noise_std": noise_std},
               "orthogonal": {"orthogonal_query": True}}
    if shift not in changes:
        raise ValueError(f"shift={shift!r}: expected one of {SHIFTS}")
    return dataclasses.replace(task, **changes[shift])


def regression_fidelity(
    model: HookedModel | str,
    task: RegressionTask | None = None,
    *,
    train_shots: int | None = None,
    lengths: Sequence[int] | None = None,
    shifts: Sequence[str] = SHIFTS,
    methods: Sequence[str] = FIDELITY_METHODS,
    n_prompts: int = 200,
    seed: int = 0,
    progress: bool = True,
) -> StudyTable:
    """Squared error / D by prompt length, method and shift, in one tidy table.

    Args:
        model: a regression model, or the name of a regression zoo model (then ``task`` and
            ``train_shots`` come from its recipe).
        task: the regression family.
        train_shots: the training prompts' length (default: the task's default).
        lengths: demonstrations per test prompt (default: 1, ¼, ½, 1× the training length and the
            longest the model accepts).
        shifts: any of :data:`SHIFTS`.
        methods: any of :data:`FIDELITY_METHODS`.
        n_prompts: test prompts per cell (the ``shared`` split of :class:`~tvlens.tasks.Splits`; the same
            functions across methods).

    Returns:
        A :class:`StudyTable` with rows ``{shift, n_shots, beyond_training, method, mse_per_dim, stderr, n}``.
    """
    label = model if isinstance(model, str) else ""
    if isinstance(model, str):
        task = task or zoo.task(model)
        train_shots = train_shots or zoo.spec(model).train.n_shots
        model = zoo.load(model)
    if not isinstance(task, RegressionTask):
        raise TypeError(f"task: regression_fidelity needs a regression task, got {type(task).__name__}")
    unknown = [m for m in methods if m not in FIDELITY_METHODS] + [s for s in shifts if s not in SHIFTS]
    if unknown:
        raise ValueError(f"unknown methods/shifts {unknown}; expected methods from {FIDELITY_METHODS} and shifts "
                         f"from {SHIFTS}")
    train_shots = train_shots or task.default_n_shots
    max_shots = (model.capabilities.n_ctx - 1) // 2
    if train_shots > max_shots:
        raise ValueError(f"train_shots={train_shots} does not fit the model's context ({max_shots} demonstrations)")
    if lengths is None:
        lengths = sorted({1, max(1, train_shots // 4), max(1, train_shots // 2), train_shots, max_shots})
    notes = [f"n_shots={n}: beyond the model's context of {max_shots} demonstrations (n_ctx={model.capabilities.n_ctx})"
             for n in lengths if n > max_shots]
    lengths = [n for n in lengths if n <= max_shots]

    splits = Splits(seed)
    made = fidelity_vectors(model, task, methods, train_shots=train_shots, n_prompts=n_prompts, seed=seed,
                            progress=progress)
    records: list[dict[str, Any]] = []
    for shift in shifts:
        variant = shifted(task, shift)
        for n in lengths:
            if shift == "orthogonal" and n >= task.d_input:
                notes.append(f"shift='orthogonal', n_shots={n}: an orthogonal query needs n_shots < D={task.d_input}")
                continue
            test = splits.sample(variant, "shared", n_prompts, n)
            scored = [m for m in methods if not (n < 2 and m in PER_PROMPT)]
            notes += [f"n_shots={n}, {m}: a per-prompt vector is read from another prompt of the function, which "
                      "needs at least 2 demonstrations" for m in methods if m not in scored]
            for method, result in fidelity_scores(model, variant, test, scored, made).items():
                records.append({"shift": shift, "n_shots": n, "beyond_training": n > train_shots, "method": method,
                                **result.row()})
    settings = {"model": label, "task": task.to_dict(), "train_shots": train_shots, "max_shots": max_shots,
                "n_prompts": n_prompts, "seed": seed, "vanilla_layer": made.get("vanilla_layer"),
                "fv_layer": made.get("fv_layer"), "fv_heads": made.get("fv_heads")}
    return StudyTable(records=records, name="regression fidelity", settings=settings, notes=notes)


def _heads(outputs: torch.Tensor, heads: list[tuple[int, int]]) -> torch.Tensor:
    """Each prompt's summed outputs of ``heads`` at its query ``[batch, d_model]``, from every head's outputs
    ``[batch, layers, heads, d_model]`` (:func:`~tvlens.vectors.function.project_heads`)."""
    return sum(outputs[:, layer, head] for layer, head in heads)


def fidelity_vectors(
    model: HookedModel, task: RegressionTask, methods: Sequence[str], *, train_shots: int, n_prompts: int = 200,
    seed: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """Each method's vector (or layer and heads), made once on unshifted prompts of the training length.

    Layers and FV heads are chosen on the ``dev`` split of ``seed``; the LTV and the head weights ``ω``
    learn on their own splits (a :class:`~tvlens.vectors.bench.Bench` of the family makes the FV's heads, the LTV
    and ``ω`` as every other table does). Pass the result to :func:`fidelity_score`.
    """
    bench = Bench(model, task, seed=seed, n_shots=train_shots, task_id=None, head_source="prompt",
                  progress=progress)
    made: dict[str, Any] = {}
    if "vanilla" in methods or "learned" in methods:
        profile = tvp_by_layer(model, task, n_prompts=n_prompts, n_shots=train_shots, seed=seed, split="dev")
        made["vanilla_layer"] = profile.best_layer
    if "function" in methods:  # per-prompt FVs: the bench's heads, summed on each dev prompt, at the best layer
        fv = bench.function_result()[1]
        dev = Splits(seed).sample(task, "dev", n_prompts, train_shots)
        heads = _heads(project_heads(model, prompt_head_z(model, dev)), fv.top_heads)
        scores = [evaluate(model, task, "injected", Intervention(heads, layer), batch=dev, progress=False).mean
                  for layer in range(model.n_layers)]
        made["fv_heads"], made["fv_layer"] = fv.top_heads, task.metric.best(torch.tensor(scores))
    if "learned" in methods:
        made["ltv"] = bench.vector("learned", made["vanilla_layer"])
    if "head_weighted" in methods:
        made["hw"] = bench.head_weights()
    return made


def fidelity_score(model: HookedModel, task: RegressionTask, test: ICLBatch, method: str,
                   made: dict[str, Any]) -> EvalResult:
    """One method's score on ``test`` (vectors from :func:`fidelity_vectors`).

    ``vanilla``, ``function`` and ``head_weighted`` are per-prompt vectors read from *another* prompt of each test
    prompt's function — the same demonstrations but the last, whose input becomes the query
    (:meth:`~tvlens.tasks.RegressionTask.with_other_query`). Read at the scored prompt's own query, the state could
    hold ICL's own answer to it, and the vector would score ICL by construction."""
    return fidelity_scores(model, task, test, [method], made)[method]


def fidelity_scores(model: HookedModel, task: RegressionTask, test: ICLBatch, methods: Sequence[str],
                    made: dict[str, Any]) -> dict[str, EvalResult]:
    """:func:`fidelity_score` of each of ``methods`` on the same ``test`` prompts: ``{method: result}``. The other
    prompts the per-prompt vectors are read from are built once, and their heads' outputs run once for the
    ``function`` and ``head_weighted`` rows."""
    source = task.with_other_query(test) if any(m in PER_PROMPT for m in methods) else None
    # every head's output at each other prompt's query [prompts, layers, heads, d_model]: read by both head methods
    heads = project_heads(model, prompt_head_z(model, source)) if {"function", "head_weighted"} & set(methods) \
        else None
    out: dict[str, EvalResult] = {}
    for method in methods:
        if method in ("icl", "zero_shot"):
            out[method] = evaluate(model, task, method, batch=test, progress=False)
            continue
        if method == "vanilla":
            layer = made["vanilla_layer"]
            state = query_states(model, source, [layer])[0]
            vector: Any = Intervention(state, layer, mode="replace")
        elif method == "function":
            vector = Intervention(_heads(heads, made["fv_heads"]), made["fv_layer"])
        elif method == "learned":
            vector = made["ltv"]
        else:  # head_weighted: ω once, the heads from the other prompt of each test prompt's function
            hw = dataclasses.replace(made["hw"], source_shots=source.n_shots)
            vector = hw.interventions_for(model, source, heads=heads)
        out[method] = evaluate(model, task, "injected", vector, batch=test, progress=False)
    return out


__all__ = ["FIDELITY_METHODS", "SHIFTS", "fidelity_score", "fidelity_scores", "fidelity_vectors", "regression_fidelity",
           "shifted"]
