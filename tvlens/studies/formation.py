"""Where task vectors form (Yang et al. 2025b): TVP-mode scores by layer, over training, with the TVP-loss, and
against task complexity.

**TVP mode** (task-vector prompting): the zero-shot query, with the stream at its last position
at layer ``l`` *replaced* by a task vector from an ICL prompt — each prompt's own state ``h^l_N``
(``source="prompt"``, Yang et al. 2025b: the paper's TVP mode), the state of the same demonstrations asking
about another input (``source="other_query"``), the readings below built to exclude the scored query's answer, or
the mean state of its task over other prompts (``source="task_mean"``, Hendel's vanilla task vector). A layer where
TVP mode reaches ICL's score holds the task in one vector: the vector has *formed* there.

The readings differ where it matters. A prompt's own state at a late layer may already hold *its query's
answer*, so ``"prompt"`` reaches ICL there by construction; ``"other_query"`` does not carry the scored
query's answer, but it can carry *its own* query's (then TVP mode falls *below* zero-shot): it is not
answer-free either. The studies (:func:`tvp_loss_comparison`, :func:`depth_vs_complexity`) read the paper's TVP mode
first (``"prompt"``) and the other readings beside it (``sources``).

Two readings are built to exclude the scored query's answer: Hendel et al.'s *dummy queries*
(``source="dummy_queries"``: the same demonstrations asking about :data:`DUMMY_QUERIES` symbols that are neither
demonstrated nor the query, states averaged, as their code does) and the *end of the demonstrations*
(``source="demonstrations"``: the state at the ``;`` after the last demonstration, which cannot see the query).
Every reading with a query of its own reports ``source_answer``: how often TVP mode gives that query's answer. As
measured, the averaged dummy-query state still carries the dummies' answers; the end of the demonstrations carries
no answer (:data:`ANSWER_FREE`).

**Layers** are block outputs, as Yang et al. 2025b index them: layer ``l`` is the stream after ``l`` blocks, from
``l = 0`` (the embeddings, a point the paper does not have) to ``l = n_layers`` (the last block's output: there the
prompt's own state gives ICL's prediction by construction, since the logits read only it). The training monitor
(the metrics history of the zoo cards) records layers ``0 … n_layers − 1`` beside ICL itself.

* :func:`tvp_by_layer` — the profile ``[n_layers + 1]`` with ICL and zero-shot as reference lines.
* :func:`formation_over_training` — the same profile at every evaluation of training, read from
  the metrics history the trainer records (every zoo model carries it), → a ``[step, layer]`` table;
  :func:`formation_from_checkpoints` recomputes it from saved checkpoints.
* :func:`tvp_loss_comparison` — two models side by side per layer (``perm-mix`` vs ``perm-mix-tvp``),
  with the layer the TVP-loss pins the vector to.
* :func:`depth_vs_complexity` — profiles of tasks of rising complexity on same-shaped models, and
  the layer where each forms.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from tvlens import zoo
from tvlens._records import Records
from tvlens.interventions import Intervention
from tvlens.models.hooked import HookedModel
from tvlens.scoring import mean_and_stderr, score_batch
from tvlens.tasks.base import ICLBatch, Task
from tvlens.tasks.metric import metric_named
from tvlens.tasks.splits import Splits
from tvlens.tasks.symbolic import SymbolicTask
from tvlens.training.train import read_checkpoint, tvp_and_icl_many
from tvlens.vectors.vanilla import query_states

Source = Literal["prompt", "other_query", "dummy_queries", "demonstrations", "task_mean"]
#: How the studies name each reading in their profiles' labels (``"perm-mix · other query"``).
READINGS: dict[str, str] = {"other_query": "other query", "dummy_queries": "dummy queries",
                            "demonstrations": "end of demonstrations", "prompt": "own prompt", "task_mean": "task mean"}
#: The readings that exclude the scored query's answer *as measured*: only the state at the end of the demonstrations
#: (it cannot see the query, and on perm-mix TVP mode gives the last demonstration's answer at most 0.04 of the time).
#: Hendel et al.'s dummy queries are not among them: the averaged state carries the dummies' own answers (on perm-mix
#: TVP mode gives one of them 0.27 / 0.38 of the time at layers 2 / 3, each counted at half). ``LayerProfile.
#: source_answer`` gives the rate; ``tests/studies/test_formation.py`` checks every reading listed here stays below
#: :data:`ANSWER_FREE_AT_MOST` at every layer of perm-mix, and that the dummy queries do not.
ANSWER_FREE: tuple[str, ...] = ("demonstrations",)
ANSWER_FREE_AT_MOST = 0.2
#: Dummy queries per prompt whose states are averaged (Hendel et al.'s code averages 2).
DUMMY_QUERIES = 2
#: The studies' readings: the paper's (each prompt's own state, which can hold its query's answer) first, then another
#: query's state, the dummy queries' and the end of the demonstrations', each with the rate at which TVP mode gives
#: their own answer.
STUDY_SOURCES: tuple[Source, ...] = ("prompt", "other_query", "dummy_queries", "demonstrations")


def _profiles(models: Mapping[str, tuple[HookedModel, Task]], sources: Sequence[str], **options: Any
              ) -> dict[str, LayerProfile]:
    """``{label: profile}`` of every model under every reading; with one reading the labels are the models'."""
    sources = (sources,) if isinstance(sources, str) else tuple(sources)
    unknown = [x for x in sources if x not in READINGS]
    if not sources or unknown:
        raise ValueError(f"sources={sources!r}: expected one or more of {list(READINGS)}")

    def label(name: str, source: str) -> str:
        return name if len(sources) == 1 else f"{name} · {READINGS[source]}"
    made = {name: tvp_profiles(model, task, sources=sources, labels=[label(name, x) for x in sources], **options)
            for name, (model, task) in models.items()}
    return {label(name, source): made[name][source] for source in sources for name in models}


def _symbolic(task: Task, source: str) -> SymbolicTask:
    """``task`` if it builds the ``source`` reading's prompts (a symbolic family), else a one-line error."""
    if not isinstance(task, SymbolicTask):
        raise ValueError(f"source={source!r} needs a symbolic task family (BOS x → y ; … ; xq →); got "
                         f"{type(task).__name__}")
    return task


def blind_reading(task: Task) -> Source:
    """The reading of ``task``'s prompts that cannot hold the scored query's answer: the end of the demonstrations on
    a symbolic family (it cannot see the query), else another query's prompt (a regression family has no position
    between its demonstrations and its query)."""
    return "demonstrations" if isinstance(task, SymbolicTask) else "other_query"


def _formation_layer(tvp: Tensor, icl: float, zero: float, metric: str, share: float) -> int | None:
    """First layer whose TVP gain over zero-shot reaches ``share`` of ICL's gain (``None`` if none does)."""
    gain = (icl - zero) * metric_named(metric).sign
    if gain <= 0:
        return None
    reached = ((tvp.double() - zero) * metric_named(metric).sign >= share * gain).nonzero().flatten()
    return int(reached[0]) if reached.numel() else None


@dataclass(frozen=True, eq=False)
class LayerProfile(Records):
    """TVP-mode scores at every layer, with ICL and zero-shot on the same prompts.

    Attributes:
        tvp, tvp_stderr: ``[n_layers + 1]`` mean and standard error of the TVP-mode metric at each layer (the stream
            after that many blocks, the last block's output included).
        icl, icl_stderr, zero_shot, zero_shot_stderr: the reference lines.
        metric: ``"accuracy"`` (higher is better) or ``"mse_per_dim"`` (lower is better).
        source: the reading (a key of :data:`READINGS`).
        n_prompts: number of prompts.
        n_shots: demonstrations per prompt.
        seed: seed of the prompts.
        label: what was profiled (a zoo name, a task description).
        source_answer: ``[n_layers + 1]`` for a reading with a query of its own (``"other_query"``, ``"dummy_queries"``,
            ``"demonstrations"``): the same predictions scored against *that* answer — ``f(x′)``, the mean over the
            dummy queries' answers, or the last demonstration's ``y_n`` (for accuracy: how often TVP mode answers
            the query the state was read at, not the scored one); ``None`` for ``"prompt"`` and ``"task_mean"``.
    """

    tvp: Float[Tensor, " n_layers"]
    tvp_stderr: Float[Tensor, " n_layers"]
    icl: float
    icl_stderr: float
    zero_shot: float
    zero_shot_stderr: float
    metric: str
    source: str
    n_prompts: int
    n_shots: int
    seed: int
    label: str = ""
    source_answer: Float[Tensor, " n_layers"] | None = None

    @property
    def best_layer(self) -> int:
        """The layer with the best TVP score before the last block's output (where the paper's reading, each prompt's
        own state, gives ICL's prediction by construction)."""
        return int((self.tvp[:-1] * metric_named(self.metric).sign).argmax())

    def formation_layer(self, share: float = 0.5) -> int | None:
        """First layer whose TVP gain over zero-shot reaches ``share`` of ICL's gain over zero-shot."""
        if not 0 < share <= 1:
            raise ValueError(f"share={share!r}: expected 0 < share <= 1")
        return _formation_layer(self.tvp, self.icl, self.zero_shot, self.metric, share)

    def to_records(self) -> list[dict[str, Any]]:
        """One row per layer: ``{label, layer, tvp, tvp_stderr, icl, zero_shot}`` (and ``source_answer`` for the
        other query's reading)."""
        return [{"label": self.label, "layer": layer, "tvp": float(self.tvp[layer]),
                 "tvp_stderr": float(self.tvp_stderr[layer]), "icl": self.icl, "zero_shot": self.zero_shot,
                 **({} if self.source_answer is None else {"source_answer": float(self.source_answer[layer])})}
                for layer in range(self.tvp.shape[0])]


def tvp_by_layer(
    model: HookedModel,
    task: Task,
    *,
    n_prompts: int = 256,
    n_shots: int | None = None,
    seed: int = 0,
    split: str = "shared",
    source: Source = "prompt",
    label: str = "",
) -> LayerProfile:
    """TVP-mode score at every layer (see the module docstring), ICL and zero-shot on the same prompts.

    Args:
        model: the model.
        task: the task family it is profiled on.
        n_prompts: prompts profiled.
        n_shots: demonstrations per prompt.
        seed: the user seed: the prompts are ``split``'s draw of :class:`~tvlens.tasks.Splits` ``(seed)``.
        split: the named split profiled (default ``"shared"``, held-out queries).
        source: ``"prompt"`` (each prompt's own ICL state: at the last layers it holds the query's answer, so
            TVP equals ICL there by construction), ``"other_query"`` (the state of the same prompt asking about another
            input, :meth:`Task.with_other_query`: it can carry that input's answer), ``"dummy_queries"`` (the mean
            state of the same demonstrations asking about inputs neither demonstrated nor the query),
            ``"demonstrations"`` (the state at the end of the demonstrations) or ``"task_mean"`` (the mean state
            of its task over ``n_prompts`` other prompts, the ``dev`` split;
            needs a family of discrete tasks).
    """
    return tvp_profiles(model, task, n_prompts=n_prompts, n_shots=n_shots, seed=seed, split=split, sources=(source,),
                        labels=(label,))[source]


def tvp_profiles(
    model: HookedModel,
    task: Task,
    *,
    n_prompts: int = 256,
    n_shots: int | None = None,
    seed: int = 0,
    split: str = "shared",
    sources: Sequence[Source] = STUDY_SOURCES,
    labels: Sequence[str] | None = None,
    batch: ICLBatch | None = None,
) -> dict[str, LayerProfile]:
    """:func:`tvp_by_layer` under each of ``sources``, on the same prompts: ``{source: profile}``, each equal to
    its own ``tvp_by_layer`` call. The prompts' ICL forward (the ICL score, the prompt's own states) and the
    zero-shot engine are shared, so the readings cost one forward each beyond the first.

    Args:
        sources: the readings (keys of :data:`READINGS`), distinct.
        labels: one label per source (default: none).
        batch: the prompts to profile, an n-shot batch of ``task`` (default: ``split``'s draw of ``n_prompts`` for
            ``seed``; the readings' other queries are still seeded by ``seed`` and ``split``).
    """
    sources = tuple(sources)
    unknown = [x for x in sources if x not in READINGS]
    if not sources or unknown or len(set(sources)) != len(sources):
        given = f"source={sources[0]!r}" if len(sources) == 1 else f"sources={sources!r}"
        raise ValueError(f"{given}: expected one of {list(READINGS)}"
                         + ("" if len(sources) == 1 else " (distinct, at least one)"))
    labels = ("",) * len(sources) if labels is None else tuple(labels)
    if len(labels) != len(sources):
        raise ValueError(f"labels={labels!r}: expected one label per source ({len(sources)})")
    splits = Splits(seed)
    if batch is None:
        batch = splits.sample(task, split, n_prompts, n_shots)
    elif batch.zero_shot is None:
        raise ValueError("batch: expected an n-shot batch with its zero-shot view (from task.sample)")
    metric = batch.metric.name
    per_source: dict[str, list[Tensor]] = {}
    icl_scores = None
    source_answer: dict[str, Tensor] = {}  # a reading's predictions scored against its own query's answer
    read = [x for x in sources if x != "task_mean"]
    if read:
        built = {"prompt": lambda: None,
                 "other_query": lambda: task.with_other_query(batch, splits.of(split)),
                 "dummy_queries": lambda: _symbolic(task, "dummy_queries").with_dummy_queries(
                     batch, DUMMY_QUERIES, splits.of(split)),
                 "demonstrations": lambda: _symbolic(task, "demonstrations").demonstrations_only(batch)}
        scores, icl_scores = tvp_and_icl_many(model, batch, [built[x]() for x in read], through_final=True)
        per_source.update({x: [layer[metric] for layer in s] for x, s in zip(read, scores)})
        source_answer.update({x: torch.tensor([layer["source_answer"].double().mean().item() for layer in s])
                              for x, s in zip(read, scores) if "source_answer" in s[0]})
    if "task_mean" in sources:
        if bool((batch.task_ids < 0).any()):
            raise ValueError("source='task_mean' needs a family of discrete tasks; this task draws a fresh "
                             "function per prompt (use source='prompt')")
        extraction = splits.sample(task, "dev", n_prompts, n_shots)
        last = model.n_layers - 1  # the final stream: the last block's output
        states = torch.cat([query_states(model, extraction, list(range(model.n_layers))),
                            query_states(model, extraction, [last], hook="resid_post")])  # [layers + 1, prompts, d]
        missing = sorted(set(batch.task_ids.tolist()) - set(extraction.task_ids.tolist()))
        if missing:
            raise ValueError(f"tasks {missing} have no extraction prompt; raise n_prompts")
        means = torch.stack([states[:, extraction.task_ids == t].mean(1) for t in batch.task_ids.tolist()], 1)
        per_source["task_mean"] = [
            score_batch(model, batch.zero_shot, [Intervention(means[layer], min(layer, last), mode="replace",
                                                              hook="resid_pre" if layer <= last else "resid_post")])[
                metric] for layer in range(model.n_layers + 1)]
    icl = mean_and_stderr((score_batch(model, batch) if icl_scores is None else icl_scores)[metric])
    zero = mean_and_stderr(score_batch(model, batch.zero_shot)[metric])
    out = {}
    for source, label in zip(sources, labels):
        stats = [mean_and_stderr(values) for values in per_source[source]]
        out[source] = LayerProfile(
            tvp=torch.tensor([m for m, _ in stats]), tvp_stderr=torch.tensor([s for _, s in stats]), icl=icl[0],
            icl_stderr=icl[1], zero_shot=zero[0], zero_shot_stderr=zero[1], metric=metric, source=source,
            n_prompts=len(batch), n_shots=batch.n_shots, seed=seed, label=label,
            source_answer=source_answer.get(source))
    return out


@dataclass(frozen=True, eq=False)
class FormationTable(Records):
    """TVP-mode scores over training: the ``[step, layer]`` table of Yang et al. 2025b's heatmap.

    Attributes:
        steps: ``[n_evals]`` training steps.
        tvp, tvp_stderr: ``[n_evals, n_layers]``.
        icl, zero_shot: ``[n_evals]`` reference scores at each step.
        metric: ``"accuracy"`` or ``"mse_per_dim"``.
        label: the model.
    """

    steps: Tensor
    tvp: Float[Tensor, "n_evals n_layers"]
    tvp_stderr: Float[Tensor, "n_evals n_layers"]
    icl: Float[Tensor, " n_evals"]
    zero_shot: Float[Tensor, " n_evals"]
    metric: str
    label: str = ""

    def _learned(self, min_icl_share: float) -> list[bool]:
        """Steps at which ICL's gain over zero-shot is at least ``min_icl_share`` of its largest gain in the
        table: before that, "half of ICL's gain" is half of noise."""
        gains = (self.icl - self.zero_shot) * metric_named(self.metric).sign
        best = float(gains.max())
        return [best > 0 and float(g) >= min_icl_share * best for g in gains]

    def formation_layers(self, share: float = 0.5, min_icl_share: float = 0.5) -> list[int | None]:
        """At each step, the first layer whose TVP gain reaches ``share`` of ICL's gain (``None``: not yet, or
        ICL itself has not reached ``min_icl_share`` of its final gain)."""
        learned = self._learned(min_icl_share)
        return [_formation_layer(self.tvp[i], float(self.icl[i]), float(self.zero_shot[i]), self.metric, share)
                if learned[i] else None for i in range(self.steps.shape[0])]

    def first_step_formed(self, layer: int, share: float = 0.5, min_icl_share: float = 0.5) -> int | None:
        """The first step at which ``layer``'s TVP gain reaches ``share`` of ICL's gain (counting only steps
        where ICL has reached ``min_icl_share`` of its largest gain)."""
        sign, learned = metric_named(self.metric).sign, self._learned(min_icl_share)
        for i in range(self.steps.shape[0]):
            gain = (float(self.icl[i]) - float(self.zero_shot[i])) * sign
            if learned[i] and (float(self.tvp[i, layer]) - float(self.zero_shot[i])) * sign >= share * gain:
                return int(self.steps[i])
        return None

    def to_records(self) -> list[dict[str, Any]]:
        """One row per (evaluation step, layer): TVP score, with ICL and zero-shot at that step."""
        return [{"label": self.label, "step": int(self.steps[i]), "layer": layer, "tvp": float(self.tvp[i, layer]),
                 "tvp_stderr": float(self.tvp_stderr[i, layer]), "icl": float(self.icl[i]),
                 "zero_shot": float(self.zero_shot[i]), "metric": self.metric}
                for i in range(self.steps.shape[0]) for layer in range(self.tvp.shape[1])]


def formation_over_training(source: str | Sequence[Mapping[str, Any]], label: str | None = None) -> FormationTable:
    """The ``[step, layer]`` TVP table from a training history.

    Args:
        source: a zoo model's name (its shipped history) or a history: the records of
            :class:`~tvlens.training.Trainer` (``TrainResult.history``), each with ``step``,
            ``tvp``, ``tvp_stderr``, ``icl`` and ``zero_shot``.
    """
    if isinstance(source, str):
        history, label = zoo.info(source)["history"], label or source
    else:
        history = list(source)
    if not history:
        raise ValueError("source: the training history is empty (train with eval_every > 0)")
    missing = [key for key in ("step", "tvp", "tvp_stderr", "icl", "zero_shot", "metric") if key not in history[0]]
    if missing:
        raise ValueError(f"source: history records lack {missing}; expected Trainer.evaluate records")
    return FormationTable(
        steps=torch.tensor([r["step"] for r in history]),
        tvp=torch.tensor([r["tvp"] for r in history], dtype=torch.float64),
        tvp_stderr=torch.tensor([r["tvp_stderr"] for r in history], dtype=torch.float64),
        icl=torch.tensor([r["icl"] for r in history], dtype=torch.float64),
        zero_shot=torch.tensor([r["zero_shot"] for r in history], dtype=torch.float64),
        metric=history[0]["metric"], label=label or "",
    )


def formation_from_checkpoints(
    model: HookedModel,
    task: Task,
    checkpoints: Sequence[str | os.PathLike],
    *,
    n_prompts: int = 256,
    n_shots: int | None = None,
    seed: int = 0,
    split: str = "monitor",
    label: str = "",
) -> FormationTable:
    """Recompute the ``[step, layer]`` table on checkpoints written by ``Trainer.save_checkpoint``.

    Each checkpoint's weights are loaded into ``model`` in turn; the model's own weights are put back
    afterwards (also after an error). The prompts are ``split``'s draw for the user ``seed``: by default the
    ``monitor`` split the trainer evaluates on, so the training seed reproduces the recorded history.
    """
    if not checkpoints:
        raise ValueError("checkpoints: expected at least one checkpoint path")
    original = model.tl_state_dict()  # already detached copies
    rows = []
    try:
        for path in checkpoints:
            state = read_checkpoint(path)
            model.load_tl_state_dict(state["weights"])
            rows.append((int(state["step"]), tvp_by_layer(model, task, n_prompts=n_prompts, n_shots=n_shots,
                                                          seed=seed, split=split)))
    finally:
        model.load_tl_state_dict(original)
    rows.sort(key=lambda r: r[0])
    monitored = slice(0, model.n_layers)  # the layers the training monitor records (its history's table)
    return FormationTable(
        steps=torch.tensor([s for s, _ in rows]),
        tvp=torch.stack([p.tvp[monitored] for _, p in rows]).double(),
        tvp_stderr=torch.stack([p.tvp_stderr[monitored] for _, p in rows]).double(),
        icl=torch.tensor([p.icl for _, p in rows], dtype=torch.float64),
        zero_shot=torch.tensor([p.zero_shot for _, p in rows], dtype=torch.float64),
        metric=rows[0][1].metric, label=label,
    )


@dataclass(frozen=True, eq=False)
class TVPLossComparison(Records):
    """Per-layer TVP profiles of models trained without and with the TVP-loss.

    Attributes:
        profiles: ``{label: LayerProfile}`` (same prompts for every model; ``"model · reading"`` labels when
            several readings are measured).
        tvp_layer: the layer the TVP-loss pins the vector to (``None`` if unknown).
    """

    profiles: dict[str, LayerProfile]
    tvp_layer: int | None

    def to_records(self) -> list[dict[str, Any]]:
        return [{**row, "tvp_layer": self.tvp_layer} for p in self.profiles.values() for row in p.to_records()]


def tvp_loss_comparison(
    models: Mapping[str, HookedModel] | None = None,
    task: Task | None = None,
    tvp_layer: int | None = None,
    *,
    n_prompts: int = 256,
    n_shots: int | None = None,
    seed: int = 0,
    sources: Source | Sequence[Source] = STUDY_SOURCES,
) -> TVPLossComparison:
    """TVP accuracy and ICL accuracy per layer for each model (default: zoo ``perm-mix`` vs ``perm-mix-tvp``),
    under each reading of ``sources`` (default :data:`STUDY_SOURCES`: the prompt's own state — the paper's TVP mode
    and the TVP-loss's training objective — then the readings with a query of their own)."""
    if models is None:
        models = {name: zoo.load(name) for name in ("perm-mix", "perm-mix-tvp")}
        task = task or zoo.task("perm-mix")
        tvp_layer = zoo.spec("perm-mix-tvp").train.tvp_layer if tvp_layer is None else tvp_layer
    if task is None:
        raise ValueError("task: give the task the models were trained on")
    profiles = _profiles({label: (model, task) for label, model in models.items()}, sources, n_prompts=n_prompts,
                         n_shots=n_shots, seed=seed)
    return TVPLossComparison(profiles=profiles, tvp_layer=tvp_layer)


@dataclass(frozen=True, eq=False)
class ComplexityResult(Records):
    """TVP profiles of tasks of rising complexity on same-shaped models.

    Attributes:
        profiles: ``{label: LayerProfile}`` in order of complexity (easiest first).
        complexity: ``{label: a number that orders the tasks}`` (e.g. the number of permutations).
        share: the share of ICL's gain that defines the formation layer.
    """

    profiles: dict[str, LayerProfile]
    complexity: dict[str, float]
    share: float = 0.5

    @property
    def best_layers(self) -> dict[str, int]:
        return {label: p.best_layer for label, p in self.profiles.items()}

    @property
    def formation_layers(self) -> dict[str, int | None]:
        return {label: p.formation_layer(self.share) for label, p in self.profiles.items()}

    def to_records(self) -> list[dict[str, Any]]:
        return [{**row, "complexity": self.complexity[label], "best_layer": p.best_layer,
                 "formation_layer": p.formation_layer(self.share)}
                for label, p in self.profiles.items() for row in p.to_records()]


#: The default ladder: zoo models of the same shape on permutation mixtures of rising size.
COMPLEXITY_LADDER = {"perm-mix-2": 2, "perm-mix": 8, "perm-mix-32": 32}


def depth_vs_complexity(
    models: Mapping[str, tuple[HookedModel, Task]] | None = None,
    complexity: Mapping[str, float] | None = None,
    *,
    n_prompts: int = 256,
    n_shots: int | None = None,
    seed: int = 0,
    share: float = 0.5,
    source: Source = "prompt",
) -> ComplexityResult:
    """Where the vector forms, per task of rising complexity (default: the zoo's permutation ladder).

    Args:
        models: ``{label: (model, task)}``, same-shaped models, easiest task first.
        complexity: ``{label: number}`` ordering the tasks (default: their position in ``models``).
        share: a layer has *formed* the vector when its TVP gain reaches this share of ICL's.
        source: the TVP reading (default: the prompt's own state, the paper's TVP mode; any of :data:`READINGS`).
    """
    if models is None:
        models = {name: (zoo.load(name), zoo.task(name)) for name in COMPLEXITY_LADDER}
        complexity = complexity or COMPLEXITY_LADDER
    shapes = {(m.n_layers, m.d_model, m.n_heads) for m, _ in models.values()}
    if len(shapes) != 1:
        raise ValueError(f"models: depth vs complexity needs models of one shape; got (n_layers, d_model, n_heads) "
                         f"{sorted(shapes)}")
    complexity = dict(complexity or {label: i for i, label in enumerate(models)})
    missing = [label for label in models if label not in complexity]
    if missing:
        raise ValueError(f"complexity: no value for {missing}")
    profiles = _profiles(models, (source,), n_prompts=n_prompts, n_shots=n_shots, seed=seed)
    return ComplexityResult(profiles=profiles, complexity=complexity, share=share)


__all__ = [
    "ANSWER_FREE",
    "ANSWER_FREE_AT_MOST",
    "COMPLEXITY_LADDER",
    "DUMMY_QUERIES",
    "READINGS",
    "ComplexityResult",
    "FormationTable",
    "LayerProfile",
    "TVPLossComparison",
    "blind_reading",
    "depth_vs_complexity",
    "formation_from_checkpoints",
    "formation_over_training",
    "tvp_by_layer",
    "tvp_profiles",
    "tvp_loss_comparison",
]
