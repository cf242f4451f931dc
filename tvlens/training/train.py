"""Meta-ICL training from scratch, with the optional task-vector-prompting (TVP) loss of Yang et al. 2025b.

**Meta-ICL loss.** Each step draws a batch of prompts ``x1 y1 … xn yn xq`` of a task family and
averages the loss over *every* answer position (each ``y_i`` is predicted from the prefix
before it): cross-entropy for symbolic tasks, squared error for regression.

**TVP loss** (Yang et al. 2025b). Take the hidden state ``h^l_N`` entering block ``l`` at the query
position of the model's own ICL prompt, put it in place of the same state of the zero-shot
query ``xq`` (``replace`` at layer ``l``, last position) and score the zero-shot prediction::

    L = L_ICL + λ · L_TVP

Gradients flow through both passes unless ``tvp_detach=True``. This pins the task vector to
layer ``l``. The injection is :func:`tvlens.inject` — the same hook path as every analysis.

Training is seeded and deterministic on CPU (the prompt generator's state is checkpointed, so a
resumed run continues the same sequence), shows a tqdm bar, evaluates periodically (ICL,
zero-shot, and TVP mode at every layer) into a metrics history, and writes checkpoints
atomically.

Layering: training sits above :mod:`tvlens.interventions` and :mod:`tvlens.scoring` (the TVP loss uses
the one hook path of ``inject``) and below :mod:`tvlens.zoo`.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from tvlens._checks import check_int
from tvlens._config import Config
from tvlens._io import atomic_write, first_line, safe_torch_load
from tvlens._progress import progress_bar
from tvlens._records import Records
from tvlens.interventions import Intervention, inject
from tvlens.models.engine import QueryEngine, StreamEdit
from tvlens.models.hooked import HookedModel
from tvlens.positions import at_columns
from tvlens.scoring import mean_and_stderr, score_batch, scores_at_query
from tvlens.tasks.base import ICLBatch, Task
from tvlens.tasks.metric import metric_named
from tvlens.tasks.splits import Splits


@dataclass
class TrainConfig(Config):
    """Hyper-parameters of a meta-ICL training run.

    Attributes:
        steps: optimiser steps.
        batch_size: prompts per step.
        n_shots: demonstrations per training prompt (``None``: the task's default).
        lr: peak AdamW learning rate (linear warm-up, then cosine decay to 10 %).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up length.
        grad_clip: gradient-norm clip (``0`` = off).
        seed: seeds the training prompts (the ``training`` split of :class:`~tvlens.tasks.Splits`, ``seed + 7919``,
            which no evaluation draws from; nothing else is random).
        eval_every: evaluate every this many steps (``0`` = only at the end).
        eval_prompts: prompts per evaluation.
        tvp_layer: layer of the TVP loss (``None`` = plain meta-ICL training).
        tvp_weight: λ, weight of the TVP loss.
        tvp_detach: stop gradients through the ICL pass of the TVP loss.
        tvp_start: step from which the TVP loss is on (plain meta-ICL training before it).
        tvp_start_icl: switch the TVP loss on only once ICL has formed: after the first evaluation (at or after
            ``tvp_start``) whose ICL score reaches this (accuracy ≥ it, or error ≤ it); ``None``: on from
            ``tvp_start``. Needs ``eval_every > 0``. The step it switched on at is :attr:`Trainer.tvp_on_from` (and
            :attr:`TrainResult.tvp_on_from`); it is read from the history, so a resumed run keeps it.
        checkpoint_every: write a checkpoint every this many steps (``0`` = never).
    """

    steps: int = 2000
    batch_size: int = 64
    n_shots: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 250
    eval_prompts: int = 256
    tvp_layer: int | None = None
    tvp_weight: float = 0.0
    tvp_detach: bool = False
    tvp_start: int = 0
    tvp_start_icl: float | None = None
    checkpoint_every: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            check_int(f"TrainConfig.{name}", getattr(self, name), 1)
        for name in ("eval_every", "checkpoint_every", "warmup_steps"):
            check_int(f"TrainConfig.{name}", getattr(self, name), 0)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"TrainConfig.lr={self.lr!r}: expected a finite positive number")
        if self.tvp_weight < 0:
            raise ValueError(f"TrainConfig.tvp_weight={self.tvp_weight!r}: expected >= 0")
        if self.tvp_weight > 0 and self.tvp_layer is None:
            raise ValueError("TrainConfig.tvp_weight > 0 needs tvp_layer (the layer the vector is pinned to)")
        if self.tvp_start_icl is not None:
            value = self.tvp_start_icl
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"TrainConfig.tvp_start_icl={value!r}: expected a finite ICL score or None")
            if self.eval_every == 0:
                raise ValueError(f"TrainConfig.tvp_start_icl={value!r} needs eval_every > 0 (the ICL score is read "
                                 "at evaluations); got eval_every=0")


@dataclass
class TrainResult(Records):
    """What a run produced: the metrics history (one dict per evaluation) and per-step losses."""

    history: list[dict[str, Any]]
    losses: list[float]
    steps_done: int
    seconds: float
    tvp_on_from: int | None = None

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def to_records(self) -> list[dict[str, Any]]:
        """One row per evaluation of the history (per-layer TVP lists kept as lists)."""
        return [dict(row) for row in self.history]


def answer_loss(
    model: HookedModel, logits: Float[Tensor, "batch pos d_vocab"], batch: ICLBatch, query_only: bool = False
) -> Tensor:
    """Mean loss over the answer positions of ``batch`` (or only its query).

    The batch's metric's training loss: cross-entropy over the vocabulary for symbolic tasks, squared
    error of the read-out for regression.
    """
    positions = batch.answer_positions[:, -1:] if query_only else batch.answer_positions
    targets = batch.answer_targets[:, -1:] if query_only else batch.answer_targets
    rows = torch.arange(len(batch), device=logits.device)[:, None]
    at_answers = logits[rows, positions.to(logits.device)]  # [batch, n_answers, d_vocab]
    return batch.metric.training_loss(at_answers, targets.to(logits.device))


def tvp_by_layer(model: HookedModel, batch: ICLBatch, source: ICLBatch | None = None) -> list[dict[str, Tensor]]:
    """Per-prompt TVP-mode scores at every layer: the state ``h^l_N`` at the last position of each prompt of
    ``source`` (default: the prompt itself) replaces the zero-shot query's.

    Read from the prompt itself, the state at the last layers already holds that query's answer, so TVP
    mode equals ICL there by construction; a ``source`` whose prompts show the same demonstrations with
    another query (Hendel et al.'s dummy query) carries the task without the answer.

    Returns:
        Per layer, the per-prompt scores of :func:`tvlens.scoring.score_batch`.
    """
    return tvp_and_icl(model, batch, source)[0]


def tvp_and_icl(model: HookedModel, batch: ICLBatch, source: ICLBatch | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
    """:func:`tvp_by_layer` and the batch's ICL scores (:func:`~tvlens.scoring.score_batch`)."""
    if source is not None and len(source) != len(batch):
        raise ValueError(f"source has {len(source)} prompts; expected one per prompt of the batch ({len(batch)})")
    (scores,), icl = tvp_and_icl_many(model, batch, [source])
    return scores, icl


def tvp_and_icl_many(model: HookedModel, batch: ICLBatch,
                     sources: Sequence[ICLBatch | tuple[ICLBatch, ...] | None], through_final: bool = False
                     ) -> tuple[list[list[dict[str, Tensor]]], dict[str, Tensor]]:
    """:func:`tvp_by_layer` for each of ``sources`` (``None``: the prompt itself; a tuple of batches: the mean of
    their states, as Hendel et al. average the states of several dummy queries), and the batch's ICL scores.
    ``through_final``: also the final stream (layer ``n_layers``, the last block's output, as Yang et al. 2025b
    index block outputs; read from the prompt itself TVP equals ICL there, since the logits read only that state).

    A source with its own query (another query's prompt) also scores each layer's predictions against *that*
    query's answer, under the key ``"source_answer"`` (the metric's value: for accuracy, how often the prediction
    is the other query's answer ``f(x′)``; for a tuple, the mean over its batches): a reading that carries its own
    query's answer shows it there.

    Every forward is a query engine's (:class:`~tvlens.models.engine.QueryEngine`): the n-shot prompts run once
    and give the ICL logits and the query's state at every layer (read from the prompt itself, both come from
    that one run); each other source runs once for its states — a source that differs from the prompts only in
    their last columns (the same demonstrations with another query) as a suffix run on the prompts' engine; the
    zero-shot prompts run once into an engine, and each source's replacement at each layer is a suffix run on it."""
    if batch.zero_shot is None:
        raise ValueError("tvp_by_layer: the batch has no zero-shot view (pass an n-shot batch from task.sample)")
    members = [() if s is None else s if isinstance(s, tuple) else (s,) for s in sources]
    for i, group in enumerate(members):
        if isinstance(sources[i], tuple) and not group:
            raise ValueError(f"sources[{i}] is an empty tuple; expected one or more batches")
        for source in group:
            if len(source) != len(batch):
                raise ValueError(f"sources[{i}] has {len(source)} prompts; expected one per prompt of the batch "
                                 f"({len(batch)})")
    flat = [m for group in members for m in group]
    own_needed = any(s is None for s in sources) or any(m is batch for m in flat)
    # per source batch of its own (not the prompts): the last columns in which it differs from them, which the
    # batch's engine runs as its suffix (None: it differs earlier and runs a forward of its own)
    trailing = {id(m): _trailing_difference(batch, m) for m in flat if m is not batch}
    width = max([1, *(k for k in trailing.values() if k is not None)])
    positions = ("last", *range(-width, -1))
    entering = model.hook_name(0, "resid_pre")

    def states_of(source: ICLBatch) -> list[Tensor]:
        if source is batch:
            return own
        states: list[Tensor] = []
        if trailing[id(source)] is None:  # prompts of their own: a forward of their own
            QueryEngine(model, source.inputs, source.attention_mask).run(streams=states)
        else:  # the batch's prompts but for the last columns: those columns' embeddings on its engine
            embedded = model.activations(source.inputs, [entering], attention_mask=source.attention_mask)
            prompts.run([StreamEdit(0, at_columns(embedded[entering], prompts.columns[p]), p, "replace")
                         for p in positions], streams=states)
        return states

    with torch.no_grad():
        own: list[Tensor] = []
        prompts = QueryEngine(model, batch.inputs, batch.attention_mask, positions=positions)
        icl = scores_at_query(batch, prompts.run(streams=own if own_needed else None))
        zero = batch.zero_shot
        engine = QueryEngine(model, zero.inputs, zero.attention_mask)
        scores = []
        for group in members:
            per_member = [states_of(m) for m in group] if group else [own]
            states = per_member[0] if len(per_member) == 1 else [torch.stack(layer).mean(0)
                                                                  for layer in zip(*per_member)]
            answered = [m for m in group if m is not batch and not torch.equal(m.targets, batch.targets)]
            by_layer = []
            for layer in range(model.n_layers + through_final):
                logits = engine.run([StreamEdit(layer, states[layer], mode="replace")])
                layer_scores = scores_at_query(zero, logits, 1)
                if answered:  # the same predictions against the sources' own queries' answers
                    against = [scores_at_query(dataclasses.replace(zero, targets=m.targets), logits, 1)[
                        zero.metric.name] for m in answered]
                    layer_scores["source_answer"] = torch.stack(against).mean(0)
                by_layer.append(layer_scores)
            scores.append(by_layer)
    return scores, icl


def _trailing_difference(batch: ICLBatch, source: ICLBatch) -> int | None:
    """How many last columns hold every difference between ``source``'s prompts and ``batch``'s (2 for the same
    demonstrations asking about another query, Hendel et al.'s dummy query: the query and its separator), or
    ``None`` when they differ in shape or padding, or in a column that is padding in some prompt. Such a source
    is the batch's prompts with other embeddings in those columns, so it runs as a suffix on the batch's engine:
    the columns before them are not run again."""
    a, b = batch.inputs, source.inputs
    masks = batch.attention_mask, source.attention_mask
    if a.shape != b.shape or (masks[0] is None) != (masks[1] is None) or \
            (masks[0] is not None and not torch.equal(masks[0], masks[1])):
        return None
    differs = (a != b) if a.ndim == 2 else (a != b).any(-1)  # [prompts, pos]
    columns = differs.any(0).nonzero()
    if columns.numel() == 0:
        return 1
    width = a.shape[1] - int(columns.min())
    shortest = a.shape[1] if masks[0] is None else int(masks[0].sum(1).min())
    return width if width < shortest else None


def evaluate_training(model: HookedModel, task: Task, n_prompts: int, n_shots: int | None, seed: int) -> dict[str, Any]:
    """ICL, zero-shot and per-layer TVP scores on the fixed evaluation prompts of the user ``seed`` (the
    ``monitor`` split of :class:`~tvlens.tasks.Splits`), mean and standard error."""
    batch = Splits(seed).sample(task, "monitor", n_prompts, n_shots)
    tvp, icl = tvp_and_icl(model, batch)
    zero = score_batch(model, batch.zero_shot)
    record: dict[str, Any] = {"metric": batch.metric.name}
    for key in icl:  # accuracy and nll, or mse_per_dim
        suffix = "" if key == record["metric"] else f"_{key}"
        record[f"icl{suffix}"], record[f"icl{suffix}_stderr"] = mean_and_stderr(icl[key])
        record[f"zero_shot{suffix}"], record[f"zero_shot{suffix}_stderr"] = mean_and_stderr(zero[key])
        record[f"tvp{suffix}"] = [mean_and_stderr(layer[key])[0] for layer in tvp]
        record[f"tvp{suffix}_stderr"] = [mean_and_stderr(layer[key])[1] for layer in tvp]
    return record


def _lr_factor(step: int, config: TrainConfig) -> float:
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Meta-ICL (+ TVP) training of a :class:`HookedModel` on a :class:`Task`.

    Args:
        model: the model to train (its parameters are switched to ``requires_grad`` here).
        task: the task family.
        config: hyper-parameters.
        checkpoint_dir: where checkpoints go (``checkpoint_every > 0``).
    """

    def __init__(
        self, model: HookedModel, task: Task, config: TrainConfig, checkpoint_dir: str | os.PathLike | None = None
    ):
        if config.tvp_layer is not None:
            model.check_layer(config.tvp_layer, "tvp_layer")
        if config.checkpoint_every and checkpoint_dir is None:
            raise ValueError("TrainConfig.checkpoint_every > 0 needs a checkpoint_dir")
        self.model, self.task, self.config = model, task, config
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.params = model.trainable_parameters()
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: _lr_factor(s, config))
        # Training prompts come from a generator offset from the seed, so that evaluation seeds
        # (0, 1, …, the usual defaults) never replay the training stream.
        self.generator = torch.Generator().manual_seed(Splits(config.seed).training)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.losses: list[float] = []

    # -- one step ------------------------------------------------------------------
    def loss(self, batch: ICLBatch) -> tuple[Tensor, dict[str, float]]:
        """The training loss of one batch and its parts."""
        cfg, model = self.config, self.model
        on_from = self.tvp_on_from
        if on_from is None or self.step < on_from:
            logits = model(batch.inputs, attention_mask=batch.attention_mask)  # text prompts are left-padded
            icl = answer_loss(model, logits, batch)
            return icl, {"icl_loss": icl.item()}
        name = model.hook_name(cfg.tvp_layer, "resid_pre")
        logits, cache = model.run_with_cache(batch.inputs, [name], attention_mask=batch.attention_mask)
        icl = answer_loss(model, logits, batch)
        vector = batch.at_query(cache[name])
        if cfg.tvp_detach:
            vector = vector.detach()
        if batch.zero_shot is None:
            raise ValueError("the TVP loss needs the batch's zero-shot view (an n-shot batch from task.sample)")
        with inject(model, Intervention(vector, layer=cfg.tvp_layer, mode="replace")):
            # (zero-shot views can be left-padded, e.g. the unfinished string of a regular language)
            zero_logits = model(batch.zero_shot.inputs, attention_mask=batch.zero_shot.attention_mask)
        tvp = answer_loss(model, zero_logits, batch.zero_shot, query_only=True)
        return icl + cfg.tvp_weight * tvp, {"icl_loss": icl.item(), "tvp_loss": tvp.item()}

    @property
    def tvp_on_from(self) -> int | None:
        """The step from which the TVP loss is on (``None``: plain training, or ICL has not reached
        ``tvp_start_icl`` at an evaluation yet)."""
        cfg = self.config
        if cfg.tvp_layer is None or cfg.tvp_weight == 0:
            return None
        if cfg.tvp_start_icl is None:
            return cfg.tvp_start
        return next((r["step"] for r in self.history
                     if r["step"] >= cfg.tvp_start and self._reached(r, cfg.tvp_start_icl)), None)

    def train_step(self) -> dict[str, float]:
        """One optimiser step on a fresh batch (parameters must require grad, as inside :meth:`fit`)."""
        cfg = self.config
        if not self.model.training:  # (a bridge's train() walks every submodule: ~10 ms on a tiny model)
            self.model.train()
        batch = self.task.sample(cfg.batch_size, cfg.n_shots, generator=self.generator)
        loss, parts = self.loss(batch)
        if not torch.isfinite(loss.detach()).all():
            if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):  # not the learning rate
                raise ValueError(f"training: the loss is {loss.item()} at step {self.step + 1} because the model's "
                                 "weights are not finite (NaN or inf: a damaged model file or checkpoint); expected "
                                 "finite weights")
            if self.step == 0 and self.model.dtype == torch.float16 and self.model.device.type == "cpu":
                raise ValueError(f"training: the loss is {loss.item()} at step 1 in float16 on a CPU; expected "
                                 "float32 (or bfloat16) on a CPU")
            raise ValueError(f"training: the loss is {loss.item()} at step {self.step + 1} (lr={cfg.lr}); training "
                             "stopped — lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.losses.append(loss.item())
        return parts

    def evaluate(self) -> dict[str, Any]:
        """Evaluate now (the fixed ``monitor`` prompts of the seed) and append to the history."""
        self.model.eval()
        record = {"step": self.step, **evaluate_training(
            self.model, self.task, self.config.eval_prompts, self.config.n_shots, self.config.seed
        )}
        self.history.append(record)
        return record

    def fit(self, progress: bool = True, target: float | None = None) -> TrainResult:
        """Train until ``config.steps`` (continuing from the current step after a resume).

        Args:
            progress: show a tqdm bar.
            target: stop early once the ICL score at an evaluation reaches it (accuracy ≥ target
                for symbolic tasks, error ≤ target for regression).
        """
        cfg = self.config
        self.model.requires_grad_(False)
        for p in self.params:
            p.requires_grad_(True)
        # Bit-for-bit reproducible training: e.g. the 3.x embedding backward accumulates repeated token ids
        # in a thread-dependent order unless deterministic algorithms are on. The caller's setting is restored.
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        start_time = time.perf_counter()
        bar = progress_bar(total=cfg.steps, initial=self.step, desc="train", progress=progress, keep=True)
        try:
            while self.step < cfg.steps:
                parts = self.train_step()
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()}, refresh=False)
                done = self.step == cfg.steps
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or done:
                    record = self.evaluate()
                    bar.set_postfix(icl=f"{record['icl']:.3f}", zero=f"{record['zero_shot']:.3f}")
                    if target is not None and self._reached(record, target):
                        break
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint(self.checkpoint_dir / f"step{self.step:06d}.pt")
        finally:
            bar.close()
            torch.use_deterministic_algorithms(deterministic_before)
            self.model.requires_grad_(False)
            self.model.eval()
        return TrainResult(self.history, self.losses, self.step, time.perf_counter() - start_time, self.tvp_on_from)

    @staticmethod
    def _reached(record: dict[str, Any], target: float) -> bool:
        return record["icl"] == target or metric_named(record["metric"]).better(record["icl"], target)

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write weights, optimiser, scheduler, prompt-generator state and history to ``path`` atomically."""
        state = {
            "weights": self.model.tl_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "history": self.history,
            "losses": self.losses,
            "config": self.config.to_dict(),
            "task": self.task.to_dict(),
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Resume from a checkpoint written by :meth:`save_checkpoint` (same task and config).

        Everything is checked before anything changes: a checkpoint with a missing or ill-typed entry, another
        task or config, or weights, optimiser, scheduler or generator state this trainer cannot take raises a
        one-line ``ValueError`` naming the file, and the model and trainer are left exactly as they were."""
        state = read_checkpoint(path)
        where = f"checkpoint {str(path)!r}"
        kinds = {"task": dict, "config": dict, "optimizer": dict, "scheduler": dict, "generator": torch.Tensor,
                 "history": list, "losses": list}
        for key, kind in kinds.items():
            if not isinstance(state.get(key), kind):
                got = "missing" if key not in state else type(state[key]).__name__
                raise ValueError(f"{where}: its {key!r} is {got}; expected a {kind.__name__} (a file written by "
                                 "Trainer.save_checkpoint)")
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"{where}: step={step!r}; expected an int >= 0 (the steps it was trained)")
        if state["task"] != self.task.to_dict():
            raise ValueError(f"{where} was made for task {state['task']}, not {self.task.to_dict()}")
        saved_cfg = {k: v for k, v in state["config"].items() if k != "steps"}
        current = {k: v for k, v in self.config.to_dict().items() if k != "steps"}
        if json.dumps(saved_cfg, sort_keys=True, default=str) != json.dumps(current, sort_keys=True, default=str):
            raise ValueError(f"{where} was made with another TrainConfig: {state['config']}")
        # every part is applied, or none: what each replaces is kept until all have loaded
        before = ({k: v.detach().clone() for k, v in self.model.tl_state_dict().items()},
                  copy.deepcopy(self.optimizer.state_dict()), copy.deepcopy(self.scheduler.state_dict()),
                  self.generator.get_state())
        try:
            self.model.load_tl_state_dict(state["weights"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.generator.set_state(state["generator"])
        except Exception as error:
            self.model.load_tl_state_dict(before[0])
            self.optimizer.load_state_dict(before[1])
            self.scheduler.load_state_dict(before[2])
            self.generator.set_state(before[3])
            raise ValueError(f"{where}: cannot be loaded into this trainer ({first_line(error, 200)}); nothing was "
                             "changed") from None
        self.step = step
        self.history = list(state["history"])
        self.losses = list(state["losses"])


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by :meth:`Trainer.save_checkpoint`, read without running code from it.

    Checkpoints hold tensors, numbers, strings and plain containers only, so they are read with
    ``weights_only=True`` and no allow-listed class: a planted pickle that would call a function is refused.

    Raises:
        ValueError: the file is not a readable Trainer checkpoint (names the file and the cause).
    """
    try:
        state = safe_torch_load(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {str(path)!r}: no such file") from None
    except Exception as error:
        raise ValueError(f"checkpoint {str(path)!r}: not a readable Trainer checkpoint ({first_line(error, 160)})") \
            from None
    if not isinstance(state, dict) or "weights" not in state or "step" not in state:
        raise ValueError(f"checkpoint {str(path)!r}: not a Trainer checkpoint (no weights/step)")
    return state


def train(
    model: HookedModel,
    task: Task,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    target: float | None = None,
) -> TrainResult:
    """Meta-ICL-train ``model`` on ``task`` (see :class:`Trainer`); returns the metrics history."""
    trainer = Trainer(model, task, config or TrainConfig(), checkpoint_dir=checkpoint_dir)
    if resume_from is not None:
        trainer.load_checkpoint(resume_from)
    return trainer.fit(progress=progress, target=target)
