"""Learned task vectors (LTV, Yang et al. 2025a): a free vector trained by gradient descent against a frozen model.

One vector ``θ ∈ R^d`` per (layer ``l``, position ``p``), initialised ``U(−init_scale, init_scale)``,
is **added** to ``h^l_p`` of the zero-shot prompt (or of an n-shot ICL prompt, ``base="icl"``). Only
``θ`` trains: cross-entropy of the answer over the full vocabulary (symbolic) or squared / Huber
error of the query prediction (regression); AdamW (lr 5e-3, weight decay 0.01); at most
``epochs`` passes over ``n_train`` prompts, early stopping with ``patience`` on a validation split
(Yang et al. 2025a's defaults: 600/400 prompts, ≤ 10 epochs, patience 2). The best-validation ``θ`` is kept.

Training runs on :class:`~tvlens.models.engine.QueryEngine`: on every architecture its cached path
covers, the prompts' columns before the first vector's position are computed once and each step
runs only the rest through layers ``≥ l`` (at the last position: the query alone) — the same loss
and gradient as the full forward, a fraction of the work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from tvlens._checks import check_int
from tvlens._config import Config
from tvlens._records import Records
from tvlens.evaluate import EvalResult, evaluate
from tvlens.models.engine import QueryEngine, StreamEdit
from tvlens.models.hooked import HookedModel
from tvlens.tasks.base import ICLBatch, Task, check_base
from tvlens.tasks.splits import Splits
from tvlens.vectors.task_vector import Site, TaskVector


@dataclass
class LearnConfig(Config):
    """Hyper-parameters of LTV training.

    The defaults train until the ``dev`` loss stops improving (``patience`` epochs without a new best), with
    ``epochs`` only a safety budget: on the zoo the kept epoch comes before the budget runs out, and a result
    whose budget did run out says so (:attr:`LearnResult.converged`).

    Attributes:
        lr, weight_decay: AdamW settings.
        epochs: most passes over the training prompts (a budget, not a schedule).
        batch_size: prompts per step.
        n_train, n_val: training / validation prompts (the ``train`` and ``dev`` splits of
            :class:`~tvlens.tasks.Splits`).
        patience: epochs without validation improvement before stopping.
        init_scale: ``θ ~ U(−init_scale, init_scale)``.
        loss: ``"auto"`` (cross-entropy for symbolic tasks, ``"mse"`` for regression), ``"ce"``,
            ``"mse"`` or ``"huber"``.
        seed: seeds the prompts, the initialisation and the minibatch order.
    """

    lr: float = 0.05
    weight_decay: float = 0.01
    epochs: int = 60
    batch_size: int = 32
    n_train: int = 600
    n_val: int = 400
    patience: int = 3
    init_scale: float = 0.1
    loss: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "n_train", "n_val", "patience"):
            check_int(f"LearnConfig.{name}", getattr(self, name), 1)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"LearnConfig.lr={self.lr!r}: expected a finite positive number")
        if self.loss not in ("auto", "ce", "mse", "huber"):
            raise ValueError(f"LearnConfig.loss={self.loss!r}: expected 'auto', 'ce', 'mse' or 'huber'")


@dataclass
class LearnResult(Records):
    """What :func:`learn_task_vector` did.

    Attributes:
        history: per-epoch losses.
        best_epoch: the epoch whose vector is kept (chosen on the ``dev`` split).
        val: the kept vector's score on the ``dev`` prompts — the ones early stopping chose it on, so an
            optimistic number.
        test: its score on the ``test`` split's prompts, which neither trained nor chose it.
        path: the query engine's path, ``"cached"`` or ``"full"``.
        converged: whether training stopped because the ``dev`` loss stopped improving (``patience`` epochs
            after the kept one), not because the epoch budget ran out.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    val: EvalResult
    test: EvalResult
    path: str
    extra: dict[str, Any] = field(default_factory=dict)
    converged: bool = True

    def to_records(self) -> list[dict[str, Any]]:
        """One row per epoch (``epoch``, ``train_loss``, ``val_loss``), marking the kept one."""
        return [{**row, "best": row["epoch"] == self.best_epoch, "path": self.path} for row in self.history]


def query_loss(logits: Tensor, batch: ICLBatch, rows: Tensor, loss: str) -> Tensor:
    """Training loss of the query predictions ``logits [rows, d_vocab]`` of ``batch``'s ``rows`` (the batch's
    metric decides what ``loss="auto"`` means: cross-entropy, or squared error for regression)."""
    return batch.metric.training_loss(logits, batch.targets[rows].to(logits.device), loss)


def _site_list(model: HookedModel, layer: int | list[int], positions: Any) -> list[Site]:
    layers = [layer] if isinstance(layer, int) else list(layer)
    if not layers:
        raise ValueError("layer=[]: expected at least one layer")
    if isinstance(positions, (list, tuple)):
        pos_list = list(positions)
    elif isinstance(positions, (int, str)) and positions not in ("all",):
        pos_list = [positions]
    else:
        raise ValueError(f"positions={positions!r}: learned vectors take 'last', an int or a list of ints "
                         "(one vector per position)")
    return [Site(model.check_layer(lay), "resid_pre", p) for lay in layers for p in pos_list]


def fit_early_stopping(
    parameters: list[Tensor],
    optimizer: torch.optim.Optimizer,
    batch_loss: Callable[[Tensor], Tensor],
    val_loss: Callable[[], float],
    n_train: int,
    config: LearnConfig,
    generator: torch.Generator,
    progress: bool = True,
    desc: str = "learn",
) -> tuple[list[dict[str, Any]], int, list[Tensor]]:
    """Minibatch epochs over ``n_train`` rows with early stopping on a validation loss.

    Each epoch visits the rows in a fresh order (from ``generator``) in batches of
    ``config.batch_size``; after it, ``val_loss()`` is compared with the best so far and training
    stops after ``config.patience`` epochs without improvement.

    Returns:
        The history (``{"epoch", "train_loss", "val_loss"}`` per epoch, epoch 0 = before training),
        the best epoch, and detached copies of ``parameters`` at that epoch.
    """
    history: list[dict[str, Any]] = [{"epoch": 0, "val_loss": val_loss()}]
    best_loss, best_epoch = history[0]["val_loss"], 0
    best = [p.detach().clone() for p in parameters]
    bad_epochs = 0
    bar = tqdm(range(1, config.epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        order = torch.randperm(n_train, generator=generator)
        losses = []
        for start in range(0, n_train, config.batch_size):
            loss = batch_loss(order[start : start + config.batch_size])
            if not torch.isfinite(loss.detach()).all():
                raise ValueError(f"{desc}: the training loss is {loss.item()} at epoch {epoch}, step "
                                 f"{len(losses) + 1} (lr={config.lr}); training stopped — lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        current = val_loss()
        if not math.isfinite(current):
            raise ValueError(f"{desc}: the validation loss is {current} after epoch {epoch} (lr={config.lr}); "
                             "training stopped — lower the learning rate")
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "val_loss": current})
        bar.set_postfix(val_loss=f"{current:.4f}")
        if current < best_loss - 1e-6:
            best_loss, best_epoch, bad_epochs = current, epoch, 0
            best = [p.detach().clone() for p in parameters]
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                break
    return history, best_epoch, best


def converged(history: list[dict[str, Any]], best_epoch: int, config: LearnConfig) -> bool:
    """Whether a run of :func:`fit_early_stopping` converged: ``patience`` epochs ran after the kept one
    without a better ``dev`` loss (training stopped for that reason, or the budget ended right then)."""
    return (len(history) - 1) - best_epoch >= config.patience


def learn_task_vector(
    model: HookedModel,
    task: Task,
    layer: int | list[int] = 0,
    positions: int | str | list[int] = "last",
    *,
    base: str = "zero_shot",
    n_shots: int | None = None,
    config: LearnConfig | None = None,
    path: str = "auto",
    progress: bool = True,
    **overrides: Any,
) -> tuple[TaskVector, LearnResult]:
    """Train a learned task vector for ``task`` (use ``task.single(k)`` for one task of a family).

    Args:
        model: the frozen model.
        task: the task.
        layer: one layer or a list (one vector per layer and position).
        positions: ``"last"``, an int (negative counts from the end) or a list of ints.
        base: ``"zero_shot"`` (Yang et al. 2025a's main setting) or ``"icl"`` (added to n-shot prompts).
        n_shots: demonstrations of the ICL prompts.
        config: a :class:`LearnConfig`; keyword ``overrides`` replace its fields.
        path: the query engine's path: ``"auto"`` (cached wherever it is exact), ``"cached"`` or ``"full"``.
        progress: tqdm bar over epochs.

    Returns:
        The vector (``mode="add"``) and a :class:`LearnResult`.
    """
    check_base(base)
    config = dataclasses.replace(config or LearnConfig(), **overrides)
    sites = _site_list(model, layer, positions)

    splits = Splits(config.seed)

    def prompts(n: int, split: str) -> tuple[ICLBatch, ICLBatch]:
        batch = splits.sample(task, split, n, n_shots)
        return batch, batch.view(base)

    train_full, train = prompts(config.n_train, "train")
    val_full, val = prompts(config.n_val, "dev")
    gen = torch.Generator().manual_seed(config.seed)
    theta = {s: ((torch.rand(model.d_model, generator=gen) * 2 - 1) * config.init_scale).to(model.dtype)
             .to(model.device).requires_grad_(True) for s in sites}
    optimizer = torch.optim.AdamW(list(theta.values()), lr=config.lr, weight_decay=config.weight_decay)
    start, where = min(s.layer for s in sites), list(dict.fromkeys(s.positions for s in sites))
    engines = {split: QueryEngine(model, batch.inputs, batch.attention_mask, start=start, positions=where, path=path)
               for split, batch in (("train", train), ("val", val))}

    def forward(split: str, rows: Tensor) -> Tensor:
        return engines[split].run([StreamEdit(s.layer, v, s.positions) for s, v in theta.items()], rows=rows)

    def val_loss() -> float:
        with torch.no_grad():
            total = 0.0
            for first in range(0, len(val), 256):
                rows = torch.arange(first, min(len(val), first + 256))
                loss = query_loss(forward("val", rows), val, rows, config.loss)
                total += loss.item() * len(rows)
        return total / len(val)

    sites_order = list(theta)
    history, best_epoch, best = fit_early_stopping(
        [theta[s] for s in sites_order], optimizer,
        lambda rows: query_loss(forward("train", rows), train, rows, config.loss),
        val_loss, len(train), config, gen, progress, "learn task vector",
    )
    best_vectors = dict(zip(sites_order, best))
    tv = TaskVector(best_vectors, mode="add", method="learned", task=task.to_dict(), fingerprint=model.fingerprint(),
                    hyperparameters={**config.to_dict(), "base": base, "n_shots": train_full.n_shots,
                                     "sites": [s.to_dict() for s in sites], "path": engines["train"].path},
                    history=history)
    val_eval = evaluate(model, task, "injected", tv, batch=val_full, base=base, progress=False)
    test_eval = evaluate(model, task, "injected", tv, batch=splits.sample(task, "test", config.n_val, n_shots),
                         base=base, progress=False)
    return tv, LearnResult(history=history, best_epoch=best_epoch, val=val_eval, test=test_eval,
                           path=engines["train"].path, converged=converged(history, best_epoch, config))
