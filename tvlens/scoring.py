"""Score a model on ICL prompts: with demonstrations, without, and with a vector injected.

Three modes answer the three questions of task-vector research:

* ``"icl"`` — n-shot prompts: how well does the model learn in context?
* ``"zero_shot"`` — the queries alone: what does it do with no task information?
* ``"injected"`` — the zero-shot queries (or, with ``base="icl"``, the n-shot prompts) with a
  vector injected: how much of the ICL behaviour does the vector carry? (Yang et al. 2025b call
  zero-shot + vector the *TVP mode*.)

Metrics: for symbolic tasks, accuracy of the argmax over the **full vocabulary** (the primary
number, ``.mean``) and over the task's **label set** (``.label_accuracy``); for regression, the
squared error of the query prediction divided by the input dimension ``D`` (Saglam et al. 2025 and Yang et al. 2025b).
Every result carries its per-prompt values, so a mean comes with its standard error
``s / √n``.

**How the prompts run.** :class:`PromptScorer` runs a batch's prompts into a
:class:`~tvlens.models.engine.QueryEngine` once per view (zero-shot or n-shot), first edited layer
and positions, and every vector scored on them is a suffix run on it (the engine's cached path;
prompts that repeat — a zero-shot view holds one prompt per query input — run once). A vector the
stream edits cannot express (another hook point, per-prompt positions), or a model whose cached
path is not verified, runs the model's own forward with hooks (``path="full"`` asks for it
everywhere: the reference twin).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from tvlens._checks import check_int
from tvlens._progress import progress_bar
from tvlens._records import Records
from tvlens.interventions import (
    Intervention,
    as_hooked,
    check_provenance,
    engine_edits,
    flatten_interventions,
    inject,
    position_shift,
)
from tvlens.models.engine import QueryEngine, check_path
from tvlens.models.hooked import HookedModel
from tvlens.tasks.base import ICLBatch, Task, check_base
from tvlens.tasks.splits import Splits

EvalMode = Literal["icl", "zero_shot", "injected"]
_MODES = ("icl", "zero_shot", "injected")


def mean_and_stderr(values: Tensor) -> tuple[float, float]:
    """Mean and standard error ``std / √n`` (0 for a single value)."""
    values = values.double()
    n = values.numel()
    if n == 0:
        raise ValueError("mean_and_stderr: no values")
    std = values.std(unbiased=True).item() if n > 1 else 0.0
    return values.mean().item(), std / n**0.5


@dataclass(frozen=True, eq=False)
class EvalResult(Records):
    """Scores of one evaluation.

    Attributes:
        mode: ``"icl"``, ``"zero_shot"`` or ``"injected"``.
        metric: ``"accuracy"`` (symbolic; higher is better) or ``"mse_per_dim"`` (regression; lower is better).
        values: per-prompt values of the metric ``[n_prompts]``.
        n_shots: demonstrations in the prompts that were scored (0 for zero-shot).
        label_values: per-prompt accuracy restricted to the label set (symbolic only).
        nll_values: per-prompt ``-log p(answer)`` in nats (symbolic only).
        exact_match_values: per-prompt exact match of the generated answer, whole (text tasks scored with
            ``whole_answers``; :mod:`tvlens.tasks.answers`).
        f1_values: per-prompt token F1 of the generated answer (the same).
        generated: the answer each prompt generated, as read (:func:`~tvlens.tasks.answers.read_answer`).
    """

    mode: str
    metric: str
    values: Float[Tensor, " n_prompts"]
    n_shots: int
    label_values: Float[Tensor, " n_prompts"] | None = None
    nll_values: Float[Tensor, " n_prompts"] | None = None
    exact_match_values: Float[Tensor, " n_prompts"] | None = None
    f1_values: Float[Tensor, " n_prompts"] | None = None
    generated: tuple[str, ...] | None = None

    @classmethod
    def from_scores(cls, mode: str, scored: ICLBatch, scores: dict[str, Tensor],
                    generated: tuple[str, ...] | None = None) -> EvalResult:
        """The result of ``mode`` from the per-prompt ``scores`` of the ``scored`` prompts (their metric's
        value, and the label accuracy, NLL, exact match and F1 where they were measured)."""
        metric = scored.metric.name
        return cls(mode=mode, metric=metric, values=scores[metric], n_shots=scored.n_shots,
                   label_values=scores.get("label_accuracy"), nll_values=scores.get("nll"),
                   exact_match_values=scores.get("exact_match"), f1_values=scores.get("f1"), generated=generated)

    @property
    def mean(self) -> float:
        return mean_and_stderr(self.values)[0]

    @property
    def stderr(self) -> float:
        return mean_and_stderr(self.values)[1]

    @property
    def nll(self) -> float | None:
        """Mean cross-entropy of the answer in nats (symbolic tasks)."""
        return _mean_or_none(self.nll_values)

    @property
    def label_accuracy(self) -> float | None:
        """Accuracy with the argmax restricted to the task's labels (symbolic tasks)."""
        return _mean_or_none(self.label_values)

    @property
    def exact_match(self) -> float | None:
        """Share of prompts whose generated answer is the answer, whole (``None`` unless measured)."""
        return _mean_or_none(self.exact_match_values)

    @property
    def f1(self) -> float | None:
        """Mean token F1 of the generated answers (``None`` unless measured)."""
        return _mean_or_none(self.f1_values)

    def to_dict(self) -> dict[str, Any]:
        """Summary numbers (no per-prompt values)."""
        return {
            "mode": self.mode,
            "metric": self.metric,
            "mean": self.mean,
            "stderr": self.stderr,
            "n": self.values.numel(),
            "n_shots": self.n_shots,
            "label_accuracy": self.label_accuracy,
            "nll": self.nll,
            "exact_match": self.exact_match,
            "f1": self.f1,
        }

    def row(self) -> dict[str, Any]:
        """The result as a table row: ``{<metric>: mean, "stderr", "n"}`` (what every study table records)."""
        return {self.metric: self.mean, "stderr": self.stderr, "n": self.values.numel()}

    def __repr__(self) -> str:
        n = self.values.numel()
        return f"EvalResult(mode={self.mode!r}, {self.metric}={self.mean:.4f} ± {self.stderr:.4f}, n={n})"

    def to_records(self) -> list[dict[str, Any]]:
        """One row per prompt: ``{mode, prompt, <metric>, label_accuracy, nll}`` (the last two for token tasks; with
        ``exact_match``, ``f1`` and the ``generated`` answer where whole answers were scored)."""
        rows = []
        for i, value in enumerate(self.values.tolist()):
            row = {"mode": self.mode, "n_shots": self.n_shots, "prompt": i, self.metric: value}
            if self.label_values is not None:
                row["label_accuracy"] = float(self.label_values[i])
            if self.nll_values is not None:
                row["nll"] = float(self.nll_values[i])
            if self.exact_match_values is not None and self.f1_values is not None and self.generated is not None:
                row.update(exact_match=float(self.exact_match_values[i]), f1=float(self.f1_values[i]),
                           generated=self.generated[i])
            rows.append(row)
        return rows


def _mean_or_none(values: Tensor | None) -> float | None:
    """The mean of per-prompt ``values`` (``None`` when they were not measured)."""
    return None if values is None else values.double().mean().item()


def score_batch(
    model: HookedModel,
    batch: ICLBatch,
    interventions: Sequence[Intervention] = (),
) -> dict[str, Float[Tensor, " batch"]]:
    """Per-prompt scores of one batch at its query positions (no gradient).

    Raises:
        ValueError: the logits at a query are not finite (e.g. a vector whose scale overflows the dtype).

    Returns:
        The per-prompt scores of the batch's metric (:meth:`tvlens.tasks.Metric.scores`): for
        symbolic tasks ``{"accuracy", "nll"}`` plus ``"label_accuracy"`` when the batch has a label
        set; for regression ``{"mse_per_dim"}`` (squared error / D).
    """
    with torch.no_grad(), inject(model, *interventions):
        logits = model(batch.inputs.to(model.device), attention_mask=batch.attention_mask)
    return scores_at_query(batch, batch.at_query(logits), len(interventions))


def scores_at_query(batch: ICLBatch, query: Float[Tensor, "batch d_vocab"], n_vectors: int = 0
                    ) -> dict[str, Float[Tensor, " batch"]]:
    """Per-prompt scores of ``batch`` from the logits at its queries (:meth:`tvlens.tasks.Metric.scores`).

    Raises:
        ValueError: a query's logits are not finite (``n_vectors``: how many vectors were injected, for the
            message).
    """
    query = query.float()
    bad = ~torch.isfinite(query).all(-1)
    if bool(bad.any()):  # an argmax over NaN would score these prompts as plain wrong answers, silently
        raise ValueError(f"the logits at the query are NaN or inf for {int(bad.sum())} of {len(batch)} prompts "
                         f"(dtype {query.dtype}"
                         + (f"; with {n_vectors} injected vector(s): is a vector or its scale too large?)"
                            if n_vectors else ")"))
    scores = batch.metric.scores(query, batch.targets.to(query.device), batch.d_input, batch.label_set)
    return {key: value.cpu() for key, value in scores.items()}


def scored_view(batch: ICLBatch, mode: str, base: str = "zero_shot") -> ICLBatch:
    """The prompts ``mode`` scores: the zero-shot view, the n-shot prompts, or (``"injected"``) the view ``base``
    the vector goes into."""
    return batch.view("zero_shot" if mode == "zero_shot" else "icl" if mode == "icl" else base)


class PromptScorer:
    """Per-prompt scores of one batch under many questions — zero-shot, ICL, each vector and its control — with
    each view of the prompts run into a query engine once (see the module docstring).

    Args:
        model: the model.
        batch: the prompts (their zero-shot view is read for ``"zero_shot"`` and, by default, ``"injected"``).
        path: the engine's path: ``"auto"`` (cached wherever it is exact), ``"cached"`` or ``"full"``.
    """

    def __init__(self, model: HookedModel | Any, batch: ICLBatch, path: str = "auto") -> None:
        self.model, self.batch, self.path = as_hooked(model), batch, check_path(path)
        self._engines: dict[Any, QueryEngine] = {}

    def scores(self, mode: str, interventions: Sequence[Intervention] = (), base: str = "zero_shot",
               query_at: int | Tensor | None = None) -> dict[str, Float[Tensor, " batch"]]:
        """Per-prompt scores of ``mode`` (:func:`scores_at_query`) with ``interventions`` in the prompts
        ``mode`` scores (:func:`scored_view`); no gradient. ``query_at``: move the scored prompts so that their
        query sits at this position first (:func:`~tvlens.interventions.position_shift`; a model without learned
        absolute positions is unchanged)."""
        prompts = scored_view(self.batch, mode, base)
        if query_at is not None:  # the move first: an intervention at the same site replaces the moved stream
            interventions = [*position_shift(self.model, len(prompts), prompts.inputs.shape[1],
                                             prompts.attention_mask, query_at), *interventions]
        edits, hooks = engine_edits(self.model, *interventions)
        n_layers = self.model.n_layers
        start = min([n_layers - 1, *(edit.layer for edit in edits)])
        positions = tuple(dict.fromkeys(["last", *(edit.position for edit in edits)]))
        key = (prompts.n_shots, prompts is self.batch, start, positions)
        if hooks:  # the hooks belong to this vector: an engine of its own (the full forward)
            engine = QueryEngine(self.model, prompts.inputs, prompts.attention_mask, start=start,
                                 positions=positions, path=self.path, hooks=hooks)
        else:
            if key not in self._engines:
                self._engines[key] = QueryEngine(self.model, prompts.inputs, prompts.attention_mask, start=start,
                                                 positions=positions, path=self.path)
            engine = self._engines[key]
        with torch.no_grad():
            logits = engine.run(edits)
        return scores_at_query(prompts, logits, len(interventions))

    def evaluate(self, mode: str, vector: Intervention | Iterable[Intervention] | Any | None = None,
                 base: str = "zero_shot", query_at: int | Tensor | None = None) -> EvalResult:
        """:func:`evaluate` of ``mode`` (and ``vector``) on this batch (``query_at``: :meth:`scores`)."""
        interventions = [] if vector is None else flatten_interventions([vector])
        return EvalResult.from_scores(mode, scored_view(self.batch, mode, base), self.scores(mode, interventions,
                                                                                            base, query_at))


def check_task(model: HookedModel, task: Any, argument: str = "task") -> None:
    """Refuse (one line, before any work) a task whose prompts the model cannot read as the task means them: a
    token family whose vocabulary is not the model's (a 16-symbol permutation task on a 32-symbol model would run
    and score 0 % with no warning), a regression family whose input width is not the model's read-in, word-pair
    tasks whose tokenizer has ids beyond the model's vocabulary, or token prompts on a regression model."""
    name = type(task).__name__
    d_input = getattr(task, "d_input", None)  # the width of a regression family's inputs
    tokenizer = getattr(task, "tokenizer", None)
    if d_input is not None or model.d_input is not None:
        if d_input != model.d_input:
            has = f"inputs of width {d_input}" if d_input is not None else "token prompts"
            wants = f"inputs of width {model.d_input}" if model.d_input is not None else "token prompts"
            raise ValueError(f"{argument}={name}: has {has} but the model reads {wants}; expected the task family "
                             "the model was trained on")
    elif tokenizer is not None:
        if len(tokenizer) > model.d_vocab:
            raise ValueError(f"{argument}={name}: its tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                             f"{model.d_vocab}; expected the model's own tokenizer")
    elif getattr(task, "d_vocab", None) is not None and task.d_vocab != model.d_vocab:
        raise ValueError(f"{argument}={name}: its vocabulary has {task.d_vocab} tokens but the model's has "
                         f"{model.d_vocab}; expected the task family the model was trained on (e.g. tvlens.zoo.task)")


def evaluate(
    model: HookedModel,
    task: Task,
    mode: EvalMode = "icl",
    vector: Intervention | Iterable[Intervention] | Any | None = None,
    *,
    n_prompts: int = 256,
    n_shots: int | None = None,
    seed: int = 0,
    split: str = "shared",
    batch_size: int = 128,
    base: Literal["zero_shot", "icl"] = "zero_shot",
    batch: ICLBatch | None = None,
    path: str = "auto",
    query_at: int | Tensor | None = None,
    whole_answers: bool = False,
    progress: bool = True,
) -> EvalResult:
    """Score ``model`` on held-out prompts of ``task``.

    Args:
        model: the model (a :class:`HookedModel` or a raw TransformerLens model).
        task: the task family to draw prompts from.
        mode: ``"icl"``, ``"zero_shot"`` or ``"injected"``.
        vector: for ``"injected"``: an :class:`Intervention`, a list of them, or an object with
            ``interventions()`` (a task vector).
        n_prompts: number of prompts.
        n_shots: demonstrations per ICL prompt (default: the task's).
        seed: the user seed (:class:`~tvlens.tasks.Splits`): the prompts are ``split``'s draw for it, whose
            queries no vector made with this seed trained or chose on (a vector made with another seed is
            refused: each seed partitions the content its own way). Equal seeds give equal prompts across
            modes, so ICL, zero-shot and injected scores are paired.
        split: the named split scored (default ``"shared"``, the prompts every method is compared on).
        batch_size: prompts per forward.
        base: prompts the vector is injected into: the zero-shot queries (TVP mode) or the
            n-shot prompts.
        batch: score these prompts instead of sampling (``n_prompts``/``n_shots``/``seed``/``split`` unused).
        path: how the prompts run (:class:`PromptScorer`): ``"auto"`` (the query engine's cached path wherever it
            is exact), ``"cached"`` or ``"full"`` (the model's own forward with hooks).
        query_at: run the scored prompts with their query moved to this position (an int, or one per prompt;
            :func:`~tvlens.interventions.position_shift`): the baseline a state patched in from a longer prompt
            is compared with on a model with learned absolute positions (``None``: where they are).
        whole_answers: also generate each answer (greedy, the vector on the prompt as scored: ``when="prompt"``
            of :func:`~tvlens.generation.generate`) and score the string whole, as Todd et al. do: exact match and
            token F1 (:mod:`tvlens.tasks.answers`); word-pair (text) tasks only.
        progress: show a tqdm bar when scoring takes more than half a second.

    Returns:
        An :class:`EvalResult` with ``.mean``, ``.stderr`` and per-prompt ``.values``.
    """
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r}: expected one of {_MODES}")
    check_base(base)
    if mode == "injected" and vector is None:
        raise ValueError("mode='injected' needs a vector (an Intervention, a list of them, or a TaskVector)")
    if mode != "injected" and vector is not None:
        raise ValueError(f"vector is given but mode={mode!r}; use mode='injected' to inject it")
    check_int("batch_size", batch_size, 1)
    check_path(path)
    if whole_answers and getattr(task, "tokenizer", None) is None:
        raise ValueError(f"whole_answers=True: task={type(task).__name__} has no text answers; expected word-pair "
                         "tasks (tvlens.tasks.TextTasks)")
    if whole_answers and query_at is not None:
        raise ValueError("whole_answers=True with query_at: generation runs prompts where they are; expected "
                         "query_at=None")
    splits = Splits(seed) if batch is None else None
    if splits is not None:
        splits.check_split(split)
    hooked = as_hooked(model)
    if batch is None:
        check_task(hooked, task)
    interventions = flatten_interventions([vector]) if vector is not None else []
    if vector is not None:
        check_provenance(hooked, [vector], task)
    if batch is None:
        if vector is not None and splits.block(split) is not None:
            splits.check_made_with(vector, task)
        batch = splits.sample(task, split, n_prompts, n_shots)
    scored = scored_view(batch, mode, base)
    per_example = [iv for iv in interventions if iv.per_example or isinstance(iv.positions, Tensor)]
    for iv in per_example:
        rows = iv.vector.shape[0] if iv.per_example else iv.positions.shape[0]
        if rows != len(scored):
            raise ValueError(f"a per-example intervention has {rows} rows but {len(scored)} prompts are scored")

    chunks: list[dict[str, Tensor]] = []
    generated: list[str] = []
    # every chunk generates as many tokens as the longest answer of the whole batch has: scores do not hang on
    # batch_size
    longest = _longest_answer(task.tokenizer, scored_view(batch, mode, base)) if whole_answers else None
    starts = range(0, len(scored), batch_size)
    for start in progress_bar(starts, desc=f"evaluate {mode}", progress=progress and len(starts) > 1):
        rows = slice(start, start + batch_size)
        chunk_interventions = [iv.select(rows) for iv in interventions]
        at = query_at[rows] if isinstance(query_at, Tensor) and query_at.ndim else query_at
        chunk = batch.select(rows)
        chunks.append(PromptScorer(hooked, chunk, path).scores(mode, chunk_interventions, base, at))
        if whole_answers:
            chunks[-1].update(whole_answer_scores(hooked, task.tokenizer, scored_view(chunk, mode, base),
                                                  chunk_interventions, path, generated, longest))
    scores = {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}
    return EvalResult.from_scores(mode, scored, scores, tuple(generated) if whole_answers else None)


def _longest_answer(tokenizer: Any, prompts: ICLBatch) -> int:
    """Tokens in the longest answer of ``prompts`` (word-pair prompts remember their answers)."""
    if prompts.examples is None:
        raise ValueError("prompts: expected word-pair prompts (they remember their answers)")
    return max(len(tokenizer(" " + pairs[-1][1], add_special_tokens=False)["input_ids"]) for pairs in prompts.examples)


def whole_answer_scores(model: HookedModel, tokenizer: Any, prompts: ICLBatch, interventions: Sequence[Intervention],
                        path: str = "auto", generated: list[str] | None = None, longest: int | None = None
                        ) -> dict[str, Float[Tensor, " batch"]]:
    """Per-prompt exact match and token F1 of the answers ``model`` generates for ``prompts`` (greedy, with
    ``interventions`` on the prompts; as many new tokens as the longest answer has, and two more), read and
    scored as Todd et al. do (:mod:`tvlens.tasks.answers`); the answers read are appended to ``generated``.
    ``longest``: the answer tokens to allow for (default: the longest answer of ``prompts``; a caller scoring a
    batch in chunks passes the whole batch's, so a prompt's score does not depend on its chunk)."""
    from tvlens.generation import generate
    from tvlens.tasks.answers import exact_match, read_answer, token_f1

    longest_here = _longest_answer(tokenizer, prompts)
    answers = [pairs[-1][1] for pairs in prompts.examples]
    new = max(longest_here, longest or 0) + 2
    if model.capabilities.learned_positions:
        width = int(prompts.inputs.shape[1] if prompts.attention_mask is None else prompts.attention_mask.sum(1).max())
        new = max(1, min(new, model.cfg.n_ctx - width))
    out = generate(model, prompts.inputs, list(interventions), attention_mask=prompts.attention_mask,
                   max_new_tokens=new, when="prompt", path=path)
    read = [read_answer(tokenizer.decode(row, skip_special_tokens=True)) for row in out.tokens.tolist()]
    if generated is not None:
        generated.extend(read)
    return {"exact_match": torch.tensor([exact_match(r, a) for r, a in zip(read, answers)], dtype=torch.float64),
            "f1": torch.tensor([token_f1(r, a) for r, a in zip(read, answers)], dtype=torch.float64)}
