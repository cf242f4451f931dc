"""Vanilla task vector (Hendel et al. 2023; Yang et al. 2025a's "VTV"; Yang et al. 2025b's TVP mode).

Run n-shot prompts of one task and take the residual stream ``h^l_N`` entering block ``l`` at
the query position ``N``; average it over prompts::

    replace (Hendel):  θ_l = mean_i h^l_N(ICL_i)                 — put in place of the zero-shot state
    add     (Yang et al. 2025a):     θ_l = mean_i h^l_N(ICL_i) − mean_i h^l_N(zero-shot_i)   — added to it

Every layer's vector comes out of **one** batched forward (all ``hook_resid_pre`` cached at once).
Layer choice is a sweep: each layer's vector is scored on a *dev* split and the best layer is
reported on a separate *test* split, so no choice is made on the test prompts.

Averaging over prompts is Hendel et al.'s ``multi_context`` option. Their code's default,
``procedure="hendel"`` here, makes **one vector per prompt**: the last-token state of the prompt's
demonstrations followed by a *dummy* query (another input of the task; two dummies averaged),
put in **replace** mode into that prompt's own zero-shot query — at the *output* of block ``L``,
which is tvlens' site ``(layer=L, hook="resid_post")``, i.e. the stream entering block ``L + 1``
(tvlens' ``resid_pre`` of layer ``l`` is the output of block ``l − 1``). The layer ``L`` is chosen
among all block outputs on dev prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tvlens._checks import check_int
from tvlens._progress import progress_bar
from tvlens._records import Records
from tvlens.interventions import Intervention, query_position_ids
from tvlens.models.hooked import HookedModel
from tvlens.scoring import EvalResult, evaluate
from tvlens.tasks.base import ICLBatch, Task
from tvlens.tasks.metric import metric_named
from tvlens.tasks.splits import Splits
from tvlens.vectors.task_vector import TaskVector


def query_states(
    model: HookedModel,
    batch: ICLBatch,
    layers: list[int],
    hook: str = "resid_pre",
    batch_size: int = 256,
    position: int | str = "last",
) -> Float[Tensor, "n_layers batch *activation"]:
    """The activation at hook ``hook`` (the stream by default; e.g. ``"attn.hook_z"`` for head outputs) at
    each prompt's query position (or at absolute ``position``) at every requested layer, from one forward
    per chunk of prompts."""
    names = [model.hook_name(layer, hook) for layer in layers]
    out = []
    for start in range(0, len(batch), batch_size):
        chunk = batch.select(slice(start, start + batch_size))
        with torch.no_grad():
            cache = model.activations(chunk.inputs, names, attention_mask=chunk.attention_mask)
        out.append(torch.stack([chunk.at_query(cache[n]) if position == "last" else cache[n][:, int(position)]
                                for n in names]))
    return torch.cat(out, 1)


@dataclass
class LayerSweep(Records):
    """Scores of one method's vector at every layer: dev split (for the choice) and test (at the choice)."""

    layers: list[int]
    dev_mean: Float[Tensor, " n_layers"]
    dev_stderr: Float[Tensor, " n_layers"]
    best_layer: int
    test: EvalResult
    metric: str

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "dev_mean": self.dev_mean.tolist(), "dev_stderr": self.dev_stderr.tolist(),
                "best_layer": self.best_layer, "test": self.test.to_dict(), "metric": self.metric}

    def to_records(self) -> list[dict[str, Any]]:
        """One row per layer: dev score, whether it was chosen, and the chosen layer's test score."""
        return [{"layer": layer, "dev": float(self.dev_mean[i]), "dev_stderr": float(self.dev_stderr[i]),
                 "chosen": layer == self.best_layer, "test": self.test.mean if layer == self.best_layer else None,
                 "metric": self.metric} for i, layer in enumerate(self.layers)]


def source_position(batch: ICLBatch) -> Int[Tensor, " batch"]:
    """Where a state read at the ICL prompts' queries was computed: each ICL prompt's query position (counted from
    its first real token). On a model with learned absolute positions a replaced state carries it, so the
    zero-shot prompt it goes into — and that prompt's baseline — is scored moved there (``query_at``)."""
    icl = batch.view("icl")
    return query_position_ids(len(icl), icl.inputs.shape[1], icl.attention_mask)


def sweep_layers(
    model: HookedModel,
    task: Task,
    vectors: dict[int, TaskVector],
    *,
    n_shots: int | None,
    dev_prompts: int,
    test_prompts: int,
    seed: int,
    base: str = "zero_shot",
    position_matched: bool = False,
    progress: bool = True,
) -> LayerSweep:
    """Score each layer's vector on dev prompts, pick the best, report it on separate test prompts.
    ``position_matched``: the zero-shot prompts a state from the ICL prompts replaces into are moved to the ICL
    query's position (:func:`source_position`)."""
    layers, splits = sorted(vectors), Splits(seed)
    dev = splits.sample(task, "dev", dev_prompts, n_shots)
    results = [evaluate(model, task, "injected", vectors[layer], batch=dev, base=base, progress=False,
                        query_at=source_position(dev) if position_matched else None)
               for layer in progress_bar(layers, desc="layer sweep (dev)", progress=progress)]
    metric = results[0].metric
    means = torch.tensor([r.mean for r in results])
    best = metric_named(metric).best(means)
    test_batch = splits.sample(task, "test", test_prompts, n_shots)
    test = evaluate(model, task, "injected", vectors[layers[best]], batch=test_batch, base=base, progress=False,
                    query_at=source_position(test_batch) if position_matched else None)
    return LayerSweep(layers, means, torch.tensor([r.stderr for r in results]), layers[best], test, metric)


@dataclass
class VanillaResult(Records):
    """What :func:`vanilla_task_vector` measured.

    Attributes:
        vectors: ``[n_layers, d_model]`` the vector of every swept layer.
        sweep: dev scores per layer, the chosen layer and its test score (``None`` if one layer was given).
        mode: ``"add"`` or ``"replace"``.
    """

    vectors: Float[Tensor, "n_layers d_model"]
    layers: list[int]
    mode: str
    sweep: LayerSweep | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_records(self) -> list[dict[str, Any]]:
        """One row per layer: the vector's norm, and the sweep's scores when the layer was swept."""
        swept = {r["layer"]: r for r in self.sweep.to_records()} if self.sweep is not None else {}
        return [{"layer": layer, "mode": self.mode, "norm": float(self.vectors[i].norm()),
                 **{k: v for k, v in swept.get(layer, {}).items() if k != "layer"}}
                for i, layer in enumerate(self.layers)]


#: Hendel et al.'s layer index ``L`` is the output of block ``L``; the same site in tvlens' words.
HENDEL_LAYER_CONVENTION = ("Hendel's layer L = the output of block L = tvlens (layer=L, hook='resid_post') "
                           "= the stream entering block L+1 (tvlens resid_pre of layer L+1)")


def hendel_dummy_examples(task: Task, batch: ICLBatch, *, n_dummy: int = 2, seed: int = 0) -> list[tuple]:
    """For each prompt of ``batch`` (a text-task batch), ``n_dummy`` copies with its query replaced by
    other pairs of its task (never its own query input), row after row: ``[prompt 0 dummy 0, prompt 0
    dummy 1, …]``."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for t, pairs in zip(batch.task_ids.tolist(), batch.examples):
        pool = [pair for pair in task.tasks[t].pairs if pair[0] != pairs[-1][0]]
        examples += [pairs[:-1] + (pool[i],) for i in torch.randperm(len(pool), generator=generator)[:n_dummy]]
    return examples


def hendel_states(
    model: HookedModel,
    task: Task,
    batch: ICLBatch,
    layers: list[int],
    *,
    n_dummy: int = 2,
    seed: int = 0,
) -> Float[Tensor, "n_layers batch d_model"]:
    """Hendel et al.'s per-prompt task vector at every block output in ``layers``.

    For each prompt, its demonstrations are followed by ``n_dummy`` other inputs of its task in
    place of its query (never the query itself); the block outputs at the last token of those
    prompts are averaged over the dummies.

    Raises:
        ValueError: ``task`` does not build prompts from word pairs (a :class:`~tvlens.tasks.text.TextTasks`).
    """
    from tvlens.tasks.text import TextTasks

    if not isinstance(task, TextTasks) or batch.examples is None:
        raise ValueError("procedure='hendel' needs text tasks (TextTasks) whose prompts remember their word pairs; "
                         f"got {type(task).__name__}")
    check_int("n_dummy", n_dummy, 1)
    examples = hendel_dummy_examples(task, batch, n_dummy=n_dummy, seed=seed)
    dummy = task.build(examples, batch.task_ids.repeat_interleave(n_dummy), batch.n_shots)
    states = query_states(model, dummy, layers, hook="resid_post")  # [n_layers, batch · n_dummy, d]
    return states.reshape(len(layers), len(batch), n_dummy, -1).mean(2)


def _hendel_procedure(
    model: HookedModel, task: Task, layer: int | None, *, n_prompts: int, n_shots: int | None, dev_prompts: int,
    test_prompts: int, seed: int, progress: bool,
) -> tuple[TaskVector, VanillaResult]:
    """Hendel et al.'s default procedure (see the module docstring)."""
    layers, splits = (list(range(model.n_layers)) if layer is None else [model.check_layer(layer)]), Splits(seed)
    extraction = splits.sample(task, "train", n_prompts, n_shots)
    mean = hendel_states(model, task, extraction, layers, seed=splits.train).mean(1)  # [n_layers, d]

    def score(batch: ICLBatch, states: Tensor, i: int) -> EvalResult:
        per_prompt = Intervention(states[i], layers[i], hook="resid_post", mode="replace")
        return evaluate(model, task, "injected", per_prompt, batch=batch, progress=False,
                        query_at=source_position(batch))

    dev = splits.sample(task, "dev", dev_prompts, n_shots)
    dev_states = hendel_states(model, task, dev, layers, seed=splits.dev)
    sweep_bar = progress_bar(range(len(layers)), desc="layer sweep (dev)", progress=progress)
    results = [score(dev, dev_states, i) for i in sweep_bar]
    means = torch.tensor([r.mean for r in results])
    best = task.metric.best(means)  # Hendel: the most accurate block output on the dev prompts
    test = splits.sample(task, "test", test_prompts, n_shots)
    test_result = score(test, hendel_states(model, task, test, layers[best : best + 1], seed=splits.test), 0)
    sweep = LayerSweep(layers, means, torch.tensor([r.stderr for r in results]), layers[best], test_result,
                       results[0].metric)
    hyper = {"procedure": "hendel", "mode": "replace", "hook": "resid_post", "n_dummy": 2, "n_prompts": n_prompts,
             "n_shots": extraction.n_shots, "seed": seed, "layer": layers[best],
             "layer_convention": HENDEL_LAYER_CONVENTION}
    tv = TaskVector.single(mean[best], layers[best], hook="resid_post", mode="replace", method="vanilla",
                           task=task.to_dict(), fingerprint=model.fingerprint(), hyperparameters=hyper)
    tv.history.append(sweep.to_dict())
    result = VanillaResult(vectors=mean, layers=layers, mode="replace", sweep=sweep,
                           extra={"procedure": "hendel", "hook": "resid_post",
                                  "layer_convention": HENDEL_LAYER_CONVENTION})
    return tv, result


def vanilla_task_vector(
    model: HookedModel,
    task: Task,
    layer: int | None = None,
    *,
    procedure: str = "mean",
    mode: str | None = None,
    position: int | str = "last",
    n_prompts: int = 100,
    n_shots: int | None = None,
    dev_prompts: int = 100,
    test_prompts: int = 200,
    seed: int = 0,
    progress: bool = True,
) -> tuple[TaskVector, VanillaResult]:
    """Extract the vanilla task vector of ``task`` (use ``task.single(k)`` for one task of a family).

    Args:
        model: the model.
        task: the task whose n-shot prompts are averaged.
        layer: the layer; ``None`` sweeps every layer and picks the best on the dev split.
        procedure: ``"mean"`` (states averaged over prompts, Hendel's ``multi_context``; tvlens'
            default) or ``"hendel"`` (Hendel's default: a vector per prompt from dummy queries,
            replace mode at block outputs — text tasks; see the module docstring). With
            ``"hendel"``, ``mode`` and ``position`` do not apply, ``sweep.test`` scores the
            per-prompt vectors, and the returned vector is their mean over the extraction prompts
            at the chosen block output (``hook="resid_post"``).
        mode: ``"add"`` (difference to zero-shot, Yang et al. 2025a; the default) or ``"replace"`` (Hendel; always with
            ``procedure="hendel"``).
        position: ``"last"`` (the query) or a fixed non-negative position, read from the ICL prompts
            and injected at the same position of the zero-shot prompts (Yang et al. 2025a's ``P = 4`` setting).
        n_prompts: extraction prompts: the ``train`` split of :class:`~tvlens.tasks.Splits` ``(seed)``; the layer
            is chosen on its ``dev`` split and scored on its ``test`` split.
        n_shots: demonstrations per prompt.
        progress: a tqdm bar over the layer sweep.

    Returns:
        The vector at the chosen layer (last position) and a :class:`VanillaResult`.
    """
    if procedure not in ("mean", "hendel"):
        raise ValueError(f"procedure={procedure!r}: expected 'mean' or 'hendel'")
    if mode not in (None, "add", "replace"):
        raise ValueError(f"mode={mode!r}: expected 'add' or 'replace'")
    if procedure == "hendel":
        if mode not in (None, "replace"):
            raise ValueError(f"mode={mode!r}: procedure='hendel' replaces the state (mode='replace')")
        if position != "last":
            raise ValueError(f"position={position!r}: procedure='hendel' reads and writes the last position")
        return _hendel_procedure(model, task, layer, n_prompts=n_prompts, n_shots=n_shots, dev_prompts=dev_prompts,
                                 test_prompts=test_prompts, seed=seed, progress=progress)
    mode = mode or "add"
    if position != "last" and (not isinstance(position, int) or position < 0):
        raise ValueError(f"position={position!r}: expected 'last' or an int >= 0")
    layers = list(range(model.n_layers)) if layer is None else [model.check_layer(layer)]
    batch = Splits(seed).sample(task, "train", n_prompts, n_shots)
    if position != "last" and position >= batch.zero_shot.n_positions:
        raise ValueError(f"position={position} is beyond the zero-shot prompt ({batch.zero_shot.n_positions} tokens)")
    icl = query_states(model, batch, layers, position=position).mean(1)  # [n_layers, d]
    vectors = icl
    if mode == "add":
        vectors = icl - query_states(model, batch.zero_shot, layers, position=position).mean(1)

    hyper = {"mode": mode, "position": position, "n_prompts": n_prompts, "n_shots": batch.n_shots, "seed": seed}
    fingerprint, task_dict = model.fingerprint(), task.to_dict()

    def make(i: int) -> TaskVector:
        return TaskVector.single(vectors[i], layers[i], position, mode=mode, method="vanilla", task=task_dict,
                                 fingerprint=fingerprint, hyperparameters={**hyper, "layer": layers[i]})

    result = VanillaResult(vectors=vectors, layers=layers, mode=mode)
    if layer is not None:
        return make(0), result
    # a replaced state from the query carries the ICL prompt's position: scored at it (add mode: a difference)
    result.sweep = sweep_layers(model, task, {layers[i]: make(i) for i in range(len(layers))}, n_shots=n_shots,
                                dev_prompts=dev_prompts, test_prompts=test_prompts, seed=seed, progress=progress,
                                position_matched=mode == "replace" and position == "last")
    chosen = make(layers.index(result.sweep.best_layer))
    chosen.history.append(result.sweep.to_dict())
    return chosen, result


__all__ = ["HENDEL_LAYER_CONVENTION", "LayerSweep", "VanillaResult", "hendel_dummy_examples", "hendel_states",
           "query_states", "source_position", "sweep_layers", "vanilla_task_vector"]
