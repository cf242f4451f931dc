"""How a query is scored: one :class:`Metric` per kind of task.

Every measurement in tvlens ends the same way — logits at each prompt's query against the answer —
and every module asks the same few questions of it: the per-prompt score, a differentiable
objective to attribute or optimise, the training loss, and which direction is better. A task
carries its metric (:attr:`tvlens.tasks.Task.metric`, also on every :class:`~tvlens.tasks.ICLBatch`),
so no module above branches on the kind of task.

* :class:`Accuracy` — symbolic tasks (tokens): argmax over the full vocabulary equals the answer
  (``"accuracy"``, higher is better), plus the accuracy over the task's label set and the answer's
  ``−log p`` in nats. Objective ``J = log p(y)``; training loss cross-entropy.
* :class:`SquaredError` — regression tasks (a read-out scalar ``ŷ``): ``(ŷ − y)² / D`` with ``D``
  the input dimension (``"mse_per_dim"``, lower is better; Saglam et al. 2025, Yang et al. 2025b).
  Objective ``J = −(ŷ − y)²``; training loss squared error (Huber where a robust loss is asked for).

Formal-language tasks are next-symbol prediction over tokens and use :class:`Accuracy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor


class Metric(ABC):
    """The scoring rule of one kind of task.

    Attributes:
        name: the metric's name in results and records (``"accuracy"``, ``"mse_per_dim"``).
        label: how figures and tables name it.
        higher_is_better: the direction of improvement.
        loss: the training loss ``"auto"`` resolves to (``"ce"`` or ``"mse"``).
        robust_loss: the loss for fits that should shrug off outliers (``"ce"`` or ``"huber"``).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    higher_is_better: ClassVar[bool]
    loss: ClassVar[str]
    robust_loss: ClassVar[str]

    @abstractmethod
    def value(
        self, query: Float[Tensor, "batch d_vocab"], targets: Tensor, d_input: int | None,
    ) -> Float[Tensor, " batch"]:
        """Per-prompt values of the metric alone (what :meth:`scores` reports under :attr:`name`)."""

    def scores(
        self, query: Float[Tensor, "batch d_vocab"], targets: Tensor, d_input: int | None,
        label_set: Tensor | None = None,
    ) -> dict[str, Float[Tensor, " batch"]]:
        """Per-prompt values: the metric under :attr:`name`, and extra scores where the kind has them."""
        return {self.name: self.value(query, targets, d_input)}

    @abstractmethod
    def objective(self, query: Float[Tensor, "batch d_vocab"], targets: Tensor) -> Float[Tensor, " batch"]:
        """Differentiable per-prompt objective ``J`` (higher is better for every kind)."""

    @abstractmethod
    def answer_score(self, query: Float[Tensor, "batch d_vocab"], targets: Tensor) -> Float[Tensor, " batch"]:
        """The score a causal effect is measured in (Todd et al. 2024: the answer's probability; regression: ``J``)."""

    def training_loss(self, logits: Float[Tensor, "*batch d_vocab"], targets: Tensor, loss: str = "auto") -> Tensor:
        """Mean loss of predictions ``logits [..., d_vocab]`` against ``targets [...]``.

        Args:
            loss: ``"auto"`` (:attr:`loss`), ``"ce"``, ``"mse"`` or ``"huber"``.
        """
        loss = self.loss if loss == "auto" else loss
        if loss == "ce":  # half precision is raised to float32 for the log-softmax; float64 stays float64
            flat = logits.reshape(-1, logits.shape[-1])
            return F.cross_entropy(flat if flat.dtype == torch.float64 else flat.float(), targets.reshape(-1))
        prediction = logits[..., 0]
        if loss == "huber":
            return F.huber_loss(prediction, targets.to(prediction.dtype))
        if loss == "mse":
            return F.mse_loss(prediction, targets.to(prediction.dtype))
        raise ValueError(f"loss={loss!r}: expected 'auto', 'ce', 'mse' or 'huber'")

    @abstractmethod
    def answer_effect(
        self, read: Float[Tensor, "*batch d_model"], w_u: Float[Tensor, "d_model d_vocab"], targets: Tensor,
        label_set: Tensor | None,
    ) -> Float[Tensor, "*batch"]:
        """What a stream direction ``read [rows, …, d]`` does to the answer through ``W_U`` (linear in ``read``)."""

    @property
    def sign(self) -> int:
        """``+1`` when higher is better, ``−1`` when lower is."""
        return 1 if self.higher_is_better else -1

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def best(self, values: Tensor | list[float]) -> int:
        """Index of the best value (the first of ties)."""
        values = torch.as_tensor(values, dtype=torch.float64)
        return int((values * self.sign).argmax())

    def format(self, value: float, stderr: float | None = None) -> str:
        """``0.937 ± 0.012`` (accuracy) or ``0.0213 ± 0.0011`` (errors)."""
        digits = 3 if self.higher_is_better else 4
        return f"{value:.{digits}f}" + ("" if stderr is None else f" ± {stderr:.{digits}f}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, higher_is_better={self.higher_is_better})"


class Accuracy(Metric):
    """Argmax over the full vocabulary equals the answer token."""

    name, label, higher_is_better, loss, robust_loss = "accuracy", "accuracy", True, "ce", "ce"

    def value(self, query, targets, d_input):
        return (query.argmax(-1) == targets).float()

    def scores(self, query, targets, d_input, label_set=None):
        rows = torch.arange(query.shape[0], device=query.device)
        out = {"accuracy": self.value(query, targets, d_input), "nll": -query.log_softmax(-1)[rows, targets]}
        if label_set is not None:
            labels = label_set.to(query.device)
            out["label_accuracy"] = (labels[query[:, labels].argmax(-1)] == targets).float()
        return out

    def objective(self, query, targets):
        rows = torch.arange(query.shape[0], device=query.device)
        return query.double().log_softmax(-1)[rows, targets]

    def answer_score(self, query, targets):
        rows = torch.arange(query.shape[0], device=query.device)
        return query.softmax(-1)[rows, targets]

    def answer_effect(self, read, w_u, targets, label_set):
        """The target's logit minus the label set's mean logit (the vocabulary's mean without a label set).

        Only the needed unembedding columns are used: a full ``[..., d_vocab]`` logit tensor would be
        hundreds of MB for a real vocabulary."""
        target_columns = w_u[:, targets.to(read.device)].T  # [batch, d]
        target_columns = target_columns.view(target_columns.shape[0], *([1] * (read.ndim - 2)), -1)
        reference = w_u.mean(1) if label_set is None else w_u[:, label_set.to(read.device)].mean(1)
        return (read * target_columns).sum(-1) - read @ reference


class SquaredError(Metric):
    """Squared error of the read-out, divided by the input dimension ``D``."""

    name, label, higher_is_better, loss, robust_loss = "mse_per_dim", "squared error / D", False, "mse", "huber"

    def value(self, query, targets, d_input):
        if d_input is None:
            raise ValueError("SquaredError: d_input is needed (the error is divided by the input dimension)")
        return (query[:, 0] - targets) ** 2 / d_input

    def objective(self, query, targets):
        return -((query[:, 0].double() - targets.double()) ** 2)

    def answer_score(self, query, targets):
        return -((query[:, 0] - targets) ** 2)

    def answer_effect(self, read, w_u, targets, label_set):
        """The read-out itself (its change moves the prediction)."""
        return read @ w_u[:, 0]


#: The metric of each task kind.
METRICS: dict[str, Metric] = {"symbolic": Accuracy(), "regression": SquaredError()}


def metric_for(kind: str) -> Metric:
    """The metric of a task kind (``"symbolic"`` or ``"regression"``)."""
    if kind not in METRICS:
        raise ValueError(f"kind={kind!r}: expected one of {sorted(METRICS)}")
    return METRICS[kind]


def metric_named(name: str) -> Metric:
    """The metric whose results are named ``name`` (``"accuracy"`` or ``"mse_per_dim"``)."""
    for metric in METRICS.values():
        if metric.name == name:
            return metric
    raise ValueError(f"metric={name!r}: expected one of {[m.name for m in METRICS.values()]}")


__all__ = ["METRICS", "Accuracy", "Metric", "SquaredError", "metric_for", "metric_named"]
