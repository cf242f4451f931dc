"""The ledger's runner: plan which claim is measured on which model, run each model's units (in-process or on an
executor's workers), and turn the effects into rows with intervals, Holm levels and verdicts."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tvlens._progress import progress_bar
from tvlens.models import HookedModel
from tvlens.studies.ledger.catalog import CLAIMS, GATES, NEEDS, Claim
from tvlens.studies.ledger.config import LedgerConfig
from tvlens.studies.ledger.table import ClaimsLedger, LedgerRow
from tvlens.studies.ledger.unit import Store, Workbench
from tvlens.studies.ledger.verdicts import (
    NOT_APPLICABLE,
    NOT_MEASURED,
    NOT_TESTABLE,
    Estimate,
    contrast_estimate,
    decide,
    holm_adjusted,
    holm_levels,
    task_estimate,
)
from tvlens.subjects import OFFERS, Subject
from tvlens.subjects import subject as as_subject
from tvlens.tasks.text import TextTasks, check_enough_pairs


@dataclass(frozen=True)
class ModelJob:
    """One model's units (task × seed each) and the claims they measure: all an executor's worker needs
    (picklable). A model's units run together so that their vectors are learned side by side, as in-process."""

    subject: Subject
    units: tuple[tuple[int, int], ...]
    config: LedgerConfig
    claims: tuple[str, ...]


class ModelsFailed(RuntimeError):
    """Every model of a ledger failed: nothing was measured (the message names the first and its error)."""


#: The fewest distinct answers (first answer tokens) a task's test prompts may have for its rows to be decided:
#: below it a constant prediction scores on many prompts (a byte-level tokenizer whose every answer starts with
#: " ", antonyms with two answers) and an accuracy difference says nothing about task vectors.
MIN_DISTINCT_ANSWERS = 3


def _distinct_answers(unit: Workbench) -> int | None:
    """How many distinct answers the unit's test prompts have (``None`` for real-valued targets)."""
    if unit.subject.offers != "labels":
        return None
    return int(unit.test.targets.unique().numel())


@dataclass(frozen=True)
class UnitResult:
    """One unit's measurements: ``(effect, control, unconverged)`` per claim of its job, and how many distinct
    answers its test prompts have (``None``: real-valued)."""

    claims: list[tuple[float, float, int]]
    distinct: int | None = None
    #: per claim, its gate's value (:attr:`Claim.gate`), else ``None``
    gates: list[float | None] | None = None


def _measure(job: ModelJob, store: Store | None = None, done: Callable[[int], Any] | None = None
             ) -> list[UnitResult]:
    """Per unit of ``job`` (in its order), ``(effect, control, unconverged)`` of each of ``job.claims``. ``store``:
    the in-process ledger's (its models loaded once for the whole ledger); a worker's job makes its own, which
    holds the job's model (and any partner model) and the vectors its units share, and is dropped with it. Either
    way the units of the model learn their vectors side by side (they all run here and read them from it).
    ``done(n)`` is told after each unit how many measurements it made."""
    store = Store() if store is None else store
    out = []
    for task_id, seed in job.units:
        unit = Workbench(job.subject, task_id, seed, job.config, store, together=True)
        measured, gates = [], []
        for name in job.claims:
            unit.touched.clear()
            effect, control = (float(x) for x in CLAIMS[name].measure(unit))
            if not (math.isfinite(effect) and math.isfinite(control)):
                raise ValueError(f"claim {name!r} on {unit}: the effect is {effect} and the control {control}; "
                                 "expected finite numbers")
            measured.append((effect, control, unit.unconverged()))
            gate = CLAIMS[name].gate
            gates.append(None if gate is None else float(GATES[gate].value(unit)))
        out.append(UnitResult(measured, _distinct_answers(unit), gates))
        if done is not None:
            done(len(measured))
    return out


def _one_line(error: BaseException) -> str:
    """An error as one line: its text (whitespace runs joined), or its type when it has none."""
    if isinstance(error, BrokenProcessPool):
        return "its worker process died (killed, or out of memory)"
    text = " ".join(str(error.args[0] if isinstance(error, KeyError) and error.args else error).split())
    return text or type(error).__name__


def _run_jobs(jobs: list[ModelJob], executor: Executor | None, update: Callable[[int], Any]
              ) -> tuple[dict[int, list[UnitResult]], dict[int, str]]:
    """Run ``jobs`` (in this process, or on ``executor`` with the most work first): the results of the jobs that
    finished, and a one-line error for each that failed. A failure is warned about at once, naming the model; the
    other models go on. What was submitted is cancelled when this is left by an exception (Ctrl-C)."""
    results: dict[int, list[UnitResult]] = {}
    failed: dict[int, str] = {}

    def fail(i: int, error: BaseException) -> None:
        failed[i] = _one_line(error)
        warnings.warn(f"model {jobs[i].subject.name!r} failed: {failed[i]}; its rows read '{NOT_MEASURED}', the "
                      "other models go on", RuntimeWarning, stacklevel=3)

    if executor is None:
        store = Store()
        for i, job in enumerate(jobs):
            try:
                results[i] = _measure(job, store, update)
            except Exception as error:  # noqa: BLE001 - reported in the table; Ctrl-C still stops the run
                fail(i, error)
        return results, failed
    # the models with the most work first (Claim.cost), so that the last to finish are short
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].units) * sum(CLAIMS[c].cost for c in jobs[i].claims))
    futures: dict[Future, int] = {}
    try:
        for i in order:
            futures[executor.submit(_measure, jobs[i])] = i
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as error:  # noqa: BLE001 - as above
                fail(i, error)
            update(len(jobs[i].units) * len(jobs[i].claims))
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return results, failed


def _plan(claims: list[Claim], models: Sequence[Any] | None, tasks: Any, template: str, dtype: str,
          family_models: int | None = None
          ) -> tuple[dict[str, Subject], dict[str, tuple[str, ...]], list[tuple[Claim, str, str]]]:
    """The subjects (by name), the models each claim is measured on, and the (claim, label, reason) of each
    claim that does not apply to a given model. Without ``models``: every claim on its zoo models (the first
    ``family_models`` of each family's)."""
    if models is None:
        if tasks is not None:
            raise ValueError("tasks: the zoo ledger measures each zoo model on its own family; pass models to "
                             "measure word-pair tasks on your model")
        on = {c.name: tuple(dict.fromkeys(m for _, read in _zoo_rows(c, family_models) for m in read))
              for c in claims}
        return {m: as_subject(m) for m in dict.fromkeys(m for read in on.values() for m in read)}, on, []
    if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence):
        models = [models]
    if not models:
        raise ValueError("models=[]: expected at least one model (None measures every claim on the zoo)")
    subjects: dict[str, Subject] = {}
    for i, m in enumerate(models):
        s = m if isinstance(m, Subject) else as_subject(
            m, tasks, template=template, name=f"model {i}" if isinstance(m, HookedModel) else None, dtype=dtype,
            argument=f"models[{i}]")
        if s.name in subjects:
            raise ValueError(f"models[{i}]={s.name!r}: given twice; expected each model once")
        subjects[s.name] = s
    on: dict[str, tuple[str, ...]] = {}
    skipped: list[tuple[Claim, str, str]] = []
    for c in claims:
        on[c.name] = tuple(label for label, s in subjects.items() if s.offers == c.needs)
        for label, s in subjects.items():
            if s.offers != c.needs:
                has = "" if c.needs not in OFFERS else f"; this model is measured on {OFFERS[s.offers]}"
                skipped.append((c, label, f"needs {NEEDS[c.needs]}{has}"))
    return subjects, on, skipped


def claims_ledger(config: LedgerConfig | None = None, progress: bool = True, *, models: Sequence[Any] | None = None,
                  tasks: Any = None, template: str = "arrow", dtype: str = "float32",
                  executor: Executor | None = None) -> ClaimsLedger:
    """Measure every claim of :data:`CLAIMS` (or ``config.claims``) on the zoo, or on your models.

    Args:
        config: how to measure (:class:`LedgerConfig`).
        progress: a progress bar over the units.
        models: ``None`` (each claim on its zoo models), or the models to ask: zoo names, Hugging Face model
            directories, tvlens ``.safetensors`` files, loaded :class:`~tvlens.models.HookedModel` objects (labelled
            ``model i``) or subjects (:func:`~tvlens.subjects.subject`:
            each with its own tasks and label). Each claim is measured on every model that offers what it
            needs; the others get a ``not applicable`` row saying why.
        tasks: what the non-zoo models are measured on: word-pair tasks (built-in names, ``.csv`` files,
            :class:`~tvlens.tasks.WordPairs`; one task per dataset) or a :class:`~tvlens.tasks.Task` family.
        template: the word-pair prompt template (``"arrow"``, ``"hendel"``, ``"todd"``, ``"qa"`` or a string).
        dtype: what Hugging Face directories are loaded in (``"float32"``, ``"bfloat16"``, ``"float16"``,
            ``"float64"``).
        executor: a :class:`concurrent.futures.Executor` to run the models on — a ``ProcessPoolExecutor``,
            ``dask.distributed.Client(...).get_executor()``, a Ray wrapper (``docs/real-models.md``). ``None``: one
            model after the other in this process. A worker runs all the units (task × seed) of one model, so that
            their vectors are learned side by side as in-process, and loads the model once; the table is the same
            either way. Loaded models cannot be sent to workers (pass their directories).

    Units run model by model, so the vectors a unit learns (its vanilla TV, its LTVs) serve every claim that
    needs them.

    A model that fails (an error in its units, a worker that died) is warned about at once, naming it; the
    other models go on, and its rows read ``not measured`` with the error (:attr:`ClaimsLedger.errors`). A row
    over a task whose test prompts have fewer than :data:`MIN_DISTINCT_ANSWERS` distinct answers reads
    ``inconclusive`` (degenerate targets), whatever its interval.

    Raises:
        ModelsFailed: every model failed (a ``RuntimeError``; one line: the first model and its error; a unit's
            effect or control that is not a finite number names the claim and unit).
        ValueError: bad ``models`` / ``tasks``, or a ``ThreadPoolExecutor`` (one line, before any work).
    """
    config = config or LedgerConfig()
    names = config.claims or tuple(CLAIMS)
    claims = [CLAIMS[n] for n in names]
    subjects, on, skipped = _plan(claims, models, tasks, template, dtype, config.family_models)
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor: expected a concurrent.futures.Executor (or None), got {type(executor).__name__}")
    for s in subjects.values():  # word-pair tasks large enough for the prompts, before any model loads
        if s.words is not None:
            check_enough_pairs(s.words, config.n_shots or TextTasks.default_n_shots, "tasks")
    if isinstance(executor, ThreadPoolExecutor):
        raise ValueError("executor: a ThreadPoolExecutor runs the models in this process's threads, which share "
                         "torch's state (loading one model can break another); expected a ProcessPoolExecutor "
                         "(tvlens._parallel.process_pool) or None")
    if executor is not None:
        loaded = [label for label, s in subjects.items() if not s.picklable]
        if loaded:
            raise ValueError(f"models: {loaded} are loaded models, which an executor's workers cannot load; pass "
                             "their directories (or run without executor)")
    jobs = [ModelJob(s, tuple((t, seed) for t in s.task_ids(config.n_tasks, config.seeds[0]) for seed in config.seeds),
                     config, tuple(c.name for c in claims if label in on[c.name]))
            for label, s in subjects.items() if any(label in on[c.name] for c in claims)]
    total = sum(len(job.units) * len(job.claims) for job in jobs)
    with progress_bar(total=total, desc="claims ledger", progress=progress) as bar:
        results, failed = _run_jobs(jobs, executor, bar.update)
    if failed and not results:  # nothing was measured: the error itself
        i = min(failed)
        raise ModelsFailed(f"models: {jobs[i].subject.name!r} failed: {failed[i]}" + (
            f" (and {len(failed) - 1} other models)" if len(failed) > 1 else ""))
    errors = {jobs[i].subject.name: failed[i] for i in sorted(failed)}
    values: dict[tuple[str, str], list[tuple[float, float]]] = {}
    unconverged: dict[tuple[str, str], int] = {}
    gates: dict[tuple[str, str], list[float]] = {}  # (claim, model) → its units' gates (gated claims)
    degenerate: dict[str, str] = {}  # model → why its tasks' answers cannot decide an accuracy claim
    for i, per_unit in results.items():
        job = jobs[i]
        few = sorted({(t, m.distinct) for (t, _), m in zip(job.units, per_unit)
                      if m.distinct is not None and m.distinct < MIN_DISTINCT_ANSWERS})
        if few:
            degenerate[job.subject.name] = (
                f"degenerate targets: the test prompts of task(s) {', '.join(f'{t} ({n})' for t, n in few)} have "
                f"fewer than {MIN_DISTINCT_ANSWERS} distinct answers (first tokens), so a constant answer scores")
        for measured in per_unit:
            for k, (name, (effect, control, n)) in enumerate(zip(job.claims, measured.claims)):
                values.setdefault((name, job.subject.name), []).append((effect, control))
                unconverged[(name, job.subject.name)] = unconverged.get((name, job.subject.name), 0) + n
                if measured.gates is not None and measured.gates[k] is not None:
                    gates.setdefault((name, job.subject.name), []).append(measured.gates[k])
    groups: list[PendingRow] = []
    zoo_ledger = models is None
    for c in claims:
        measured_on = tuple(m for m in on[c.name] if m not in errors)
        shaped = {m: torch.tensor(values[(c.name, m)], dtype=torch.float64).view(-1, len(config.seeds), 2)
                  for m in measured_on}
        effect = {m: v[..., 0] - (v[..., 1] if c.control_rule == "subtract" else 0) for m, v in shaped.items()}
        control = {m: v[..., 1] for m, v in shaped.items()}
        n_tasks = {m: v.shape[0] for m, v in shaped.items()}
        for label, read in _rows(c, on[c.name], zoo_ledger):
            if any(m in errors for m in read):  # its rows read 'not measured' (below)
                continue
            if c.contrast:
                hard, easy = read
                groups.append(PendingRow(c, label, {m: effect[m] for m in read}, {m: control[m] for m in read},
                                         contrast_estimate(effect[hard], effect[easy]),
                                         contrast_estimate(control[hard], control[easy]).mean,
                                         sum(unconverged[(c.name, m)] for m in read),
                                         min(n_tasks[hard], n_tasks[easy])))
                continue
            # one model: the interval over its task means (seeds averaged within a task); several independently
            # trained models: over their model means, each averaged over its tasks × seeds (tasks nested in models)
            stacked = [by_model[read[0]] if len(read) == 1 else
                       torch.stack([by_model[m].reshape(-1) for m in read]) for by_model in (effect, control)]
            groups.append(PendingRow(c, label, {m: effect[m] for m in read}, {m: control[m] for m in read},
                                     task_estimate(stacked[0]), task_estimate(stacked[1]).mean,
                                     sum(unconverged[(c.name, m)] for m in read), n_tasks[read[0]], len(read)))
    gate_of = {id(g): (sum(v for m in g.values for v in gates[(g.claim.name, m)])
                       / sum(len(gates[(g.claim.name, m)]) for m in g.values)) if g.claim.gate else math.nan
               for g in groups}

    def shut(g: PendingRow) -> bool:
        return g.claim.gate is not None and gate_of[id(g)] < GATES[g.claim.gate].threshold

    # a row where a negative could not show is not decided, and is not one of the tests Holm adjusts for. The
    # primary hypotheses' rows are one family; each exploratory claim's rows (its models) are a family of their own
    testable = [g for g in groups if not shut(g)]
    families = [[g for g in testable if g.claim.primary]] + [
        [g for g in testable if g.claim is c] for c in claims if not c.primary]
    p_values = {id(g): g.estimate.p_value(g.claim.margin) for g in groups}
    p_equivalent = {id(g): g.estimate.p_equivalence(g.claim.delta) if g.claim.delta is not None else 1.0
                    for g in groups}
    levels: dict[int, float] = {}
    adjusted: dict[int, float] = {}
    adjusted_equivalent: dict[int, float] = {}
    for family in families:
        ids = [id(g) for g in family]
        levels.update(zip(ids, holm_levels([p_values[i] for i in ids], config.alpha)))
        adjusted.update(zip(ids, holm_adjusted([p_values[i] for i in ids])))
        adjusted_equivalent.update(zip(ids, holm_adjusted([p_equivalent[i] for i in ids])))
    rows = []
    for g in groups:
        c, estimate, p, gate = g.claim, g.estimate, p_values[id(g)], gate_of[id(g)]
        level = levels.get(id(g), config.alpha)  # not testable: outside every family, unadjusted
        low, high = estimate.interval(config.alpha)  # unadjusted: Holm's step-down gives no simultaneous intervals
        p_adjusted = adjusted.get(id(g), p)
        p_equivalence = adjusted_equivalent.get(id(g), p_equivalent[id(g)])
        decided, reason = _verdict(c, estimate, p_adjusted, p_equivalence, g.control_mean, config.alpha,
                                   "model" if g.n_models > 1 else "task")
        few = [degenerate[m] for m in g.values if m in degenerate]
        if shut(g):
            decided, reason = NOT_TESTABLE, GATES[c.gate].why.format(value=gate)
        elif few:  # whatever the interval: the answers cannot tell a task vector from a constant
            decided, reason = "inconclusive", f"{few[0]} on {', '.join(m for m in g.values if m in degenerate)}"
        rows.append(LedgerRow(claim=c.name, statement=c.statement, paper=c.paper, model=g.label, effect=c.effect,
                              margin=c.margin, mean=estimate.mean, low=low, high=high, control=g.control_mean,
                              verdict=decided, reason=reason, level=level, p_value=p, n_tasks=g.n_tasks,
                              n_seeds=len(config.seeds), unconverged=g.unconverged, values=g.values,
                              controls=g.controls, n_models=g.n_models, gate=gate, p_adjusted=p_adjusted,
                              p_equivalence=p_equivalence, mde=estimate.mde(level), primary=c.primary,
                              delta=math.nan if c.delta is None else c.delta))
    nan = math.nan
    rows += [LedgerRow(claim=c.name, statement=c.statement, paper=c.paper, model=label, effect=c.effect,
                       margin=c.margin, mean=nan, low=nan, high=nan, control=nan, verdict=NOT_APPLICABLE, reason=why,
                       level=nan, p_value=nan, n_tasks=0, n_seeds=len(config.seeds), unconverged=0, values={},
                       controls={}) for c, label, why in skipped]
    for c in claims:  # the rows a failed model leaves: what failed, in the claim's place
        for label, read in _rows(c, on[c.name], zoo_ledger) if errors else ():
            lost = [m for m in read if m in errors]
            rows += [LedgerRow(claim=c.name, statement=c.statement, paper=c.paper, model=label, effect=c.effect,
                               margin=c.margin, mean=nan, low=nan, high=nan, control=nan, verdict=NOT_MEASURED,
                               reason="; ".join(f"{m} failed: {errors[m]}" for m in lost), level=nan, p_value=nan,
                               n_tasks=0, n_seeds=len(config.seeds), unconverged=0, values={}, controls={})
                     ] if lost else []
    if skipped or errors:  # in claim order, each claim's rows in its order (the zoo's) or the models' (as given)
        order = {name: i for i, name in enumerate(names)}
        place = ({(c.name, label): i for c in claims for i, (label, _) in enumerate(_rows(c, on[c.name], True))}
                 if zoo_ledger else {(c.name, label): i for c in claims for i, label in enumerate(subjects)})
        rows.sort(key=lambda r: (order[r.claim], place[(r.claim, r.model)]))
    return ClaimsLedger(rows=rows, config=config, errors=errors)


def zoo_models_read(config: LedgerConfig) -> tuple[str, ...]:
    """Every zoo model the zoo ledger under ``config`` reads: its claims' rows (each family trimmed to
    ``config.family_models``, as :func:`claims_ledger` measures them) and their partners."""
    claims = [CLAIMS[name] for name in (config.claims or CLAIMS)]
    return tuple(dict.fromkeys(m for c in claims
                               for m in (*(m for _, read in _zoo_rows(c, config.family_models) for m in read),
                                         *c.partners)))


def _zoo_rows(claim: Claim, family_models: int | None = None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The claim's :attr:`~Claim.zoo_rows`, each family's row reading only its first ``family_models`` trained
    models (a contrast's pairs and a replicated claim's recipes read all theirs)."""
    if claim.contrast or claim.replicated or family_models is None:
        return claim.zoo_rows
    return tuple((label, read[:family_models]) for label, read in claim.zoo_rows)


def _rows(claim: Claim, measured_on: tuple[str, ...], zoo_ledger: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The claim's rows, ``(label, the models it reads)`` each: on the zoo its rows over ``measured_on``
    (:func:`_zoo_rows`); on a researcher's models one row per model (none where the claim applies to none)."""
    if not measured_on:
        return ()
    if zoo_ledger:
        return tuple((label, tuple(m for m in read if m in measured_on))
                     for label, read in _zoo_rows(claim) if any(m in measured_on for m in read))
    return tuple((m, (m,)) for m in measured_on)


@dataclass(frozen=True)
class PendingRow:
    """One row before the Holm adjustment: its effects, their estimate and what the row reports."""

    claim: Claim
    label: str
    values: dict[str, Tensor]
    controls: dict[str, Tensor]
    estimate: Estimate
    control_mean: float
    unconverged: int
    n_tasks: int
    n_models: int = 1


def _verdict(claim: Claim, estimate: Estimate, p_adjusted: float, p_equivalence: float, control_mean: float,
             alpha: float, unit: str) -> tuple[str, str]:
    """The row's verdict from its Holm-adjusted p-values (:func:`~tvlens.studies.ledger.verdicts.decide`; over
    ``unit``: tasks, or models), then the control."""
    decided, reason = decide(estimate, claim.margin, claim.delta, p_adjusted, p_equivalence, alpha, unit)
    if decided == "holds" and claim.control_rule == "must_fail" and control_mean > claim.margin:
        return "inconclusive", (f"the control shows it too ({control_mean:+.3f} > {claim.margin:g}): it follows from "
                                "the norm or the architecture, not the vector")
    return decided, reason


__all__ = ["MIN_DISTINCT_ANSWERS", "ModelJob", "ModelsFailed", "UnitResult", "claims_ledger"]
