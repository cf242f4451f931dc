"""Regression ICL tasks in the style of Garg et al. (Saglam et al. 2025 and Yang et al. 2025b).

Each prompt draws a fresh function ``f`` from the family and shows ``n`` pairs
``(x_i, y_i = f(x_i))`` with ``x_i ∈ R^D``. Tokens are vectors: ``x_i`` itself and ``y_i``
zero-padded to ``R^D`` (``[y_i, 0, …, 0]``), interleaved ``x1 y1 x2 y2 … xq`` — ``2n + 1``
positions. The model reads them through a linear read-in and predicts ``y_i`` from the stream
at the position of ``x_i`` through a linear read-out; the query's prediction is at the last
position. The zero-shot view is the single token ``xq``.

The metric is squared error divided by the dimension ``D`` (as in the seeds).

Distribution shifts of Saglam et al. 2025's fidelity benchmark are options of every family:

* ``x_distribution="skewed"`` — ``x ~ N(0, Σ)`` with eigenvalues ``∝ 1/i`` scaled to trace ``D``;
* ``noise_std > 0`` — the demonstrations' ``y`` carry Gaussian noise (the query target stays clean);
* ``orthogonal_query=True`` — the query is orthogonal to every demonstration input
  (needs ``n_shots < D``), rescaled to the norm it had.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from tvlens._checks import check_int
from tvlens.tasks.base import ICLBatch, Task, register_task

_X_DISTRIBUTIONS = ("gaussian", "skewed")


@dataclass(frozen=True)
class RegressionTask(Task):
    """Base of the function-regression families; subclasses draw and apply functions.

    Attributes:
        d_input: dimension D of the inputs.
        x_distribution: ``"gaussian"`` (``N(0, I)``) or ``"skewed"``.
        noise_std: standard deviation of the noise on demonstration labels.
        orthogonal_query: make the query orthogonal to the demonstrations' inputs.
        fixed: if set, every prompt shows the one function drawn from this seed (:meth:`Task.single`).
    """

    kind: ClassVar[str] = "regression"
    default_n_shots: ClassVar[int] = 10

    d_input: int = 8
    x_distribution: str = "gaussian"
    noise_std: float = 0.0
    orthogonal_query: bool = False
    fixed: int | None = None

    def __post_init__(self) -> None:
        check_int("d_input", self.d_input, 1)
        if self.x_distribution not in _X_DISTRIBUTIONS:
            raise ValueError(f"x_distribution={self.x_distribution!r}: expected one of {_X_DISTRIBUTIONS}")
        if not self.noise_std >= 0:
            raise ValueError(f"noise_std={self.noise_std!r}: expected a number >= 0")

    label_set: ClassVar[None] = None

    def prompt_length(self, n_shots: int) -> int:
        return 2 * n_shots + 1

    def max_shots(self) -> int | None:
        return self.d_input - 1 if self.orthogonal_query else None

    @abstractmethod
    def draw_functions(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Parameters of ``n`` random functions of the family (tensors with leading dim ``n``)."""

    @abstractmethod
    def apply(self, params: dict[str, Tensor], x: Float[Tensor, "batch m d"]) -> Float[Tensor, "batch m"]:
        """``y = f(x)`` for each prompt's function."""

    def _draw_x(self, n_prompts: int, m: int, generator: torch.Generator) -> Tensor:
        x = torch.randn(n_prompts, m, self.d_input, generator=generator)
        if self.x_distribution == "skewed":
            eig = 1.0 / torch.arange(1, self.d_input + 1, dtype=torch.float32)
            x = x * (eig * self.d_input / eig.sum()).sqrt()
        if self.orthogonal_query and m > 1:
            demos, query = x[:, :-1], x[:, -1]
            # Project the query off the span of the demonstration inputs (orthonormal basis by QR).
            basis, _ = torch.linalg.qr(demos.transpose(1, 2))  # [b, d, m-1]
            proj = query - torch.einsum("bdk,bk->bd", basis, torch.einsum("bdk,bd->bk", basis, query))
            proj = proj * (query.norm(dim=-1, keepdim=True) / proj.norm(dim=-1, keepdim=True).clamp_min(1e-12))
            x = torch.cat([demos, proj[:, None]], 1)
        return x

    def with_other_query(self, batch: ICLBatch, seed: int = 0) -> ICLBatch:
        """The same function asked about another input: the last demonstration becomes the query (its ``y`` and
        the original query are dropped), so the prompt has ``n_shots − 1`` demonstrations and never shows the
        scored query. ``seed`` is unused (the other query is the last demonstration's input)."""
        if batch.n_shots < 2 or batch.inputs.shape[1] != self.prompt_length(batch.n_shots):
            raise ValueError(f"with_other_query: expected a batch of this family's prompts with at least 2 "
                             f"demonstrations; got n_shots={batch.n_shots}")
        n = batch.n_shots
        query = batch.inputs[:, -3:-2]
        zero_shot = ICLBatch(inputs=query.clone(), targets=batch.answer_targets[:, n - 1],
                             answer_positions=torch.zeros(len(batch), 1, dtype=torch.long),
                             answer_targets=batch.answer_targets[:, n - 1 : n], task_ids=batch.task_ids, n_shots=0,
                             kind="regression")
        return dataclasses.replace(batch, inputs=batch.inputs[:, :-2], targets=batch.answer_targets[:, n - 1],
                                   answer_positions=batch.answer_positions[:, :n],
                                   answer_targets=batch.answer_targets[:, :n], n_shots=n - 1, zero_shot=zero_shot)

    def _sample(self, n_prompts: int, n_shots: int, generator: torch.Generator, task_ids: Tensor | None) -> ICLBatch:
        m = n_shots + 1
        if self.fixed is None:
            params = self.draw_functions(n_prompts, generator)
        else:  # one function for every prompt, drawn from its own seed
            one = self.draw_functions(1, torch.Generator().manual_seed(self.fixed))
            params = {k: v.expand(n_prompts, *v.shape[1:]) for k, v in one.items()}
        x = self._draw_x(n_prompts, m, generator)
        y_clean = self.apply(params, x)
        y = y_clean.clone()
        if self.noise_std > 0:
            y[:, :-1] += self.noise_std * torch.randn(n_prompts, n_shots, generator=generator)

        inputs = torch.zeros(n_prompts, self.prompt_length(n_shots), self.d_input)
        inputs[:, 0::2] = x
        inputs[:, 1::2, 0] = y[:, :-1]
        answer_positions = (2 * torch.arange(m)).expand(n_prompts, m).clone()
        no_task = torch.full((n_prompts,), -1 if self.fixed is None else self.fixed, dtype=torch.long)
        zero_shot = ICLBatch(
            inputs=x[:, -1:].clone(),
            targets=y_clean[:, -1],
            answer_positions=torch.zeros(n_prompts, 1, dtype=torch.long),
            answer_targets=y_clean[:, -1:],
            task_ids=no_task,
            n_shots=0,
            kind="regression",
        )
        return ICLBatch(
            inputs=inputs,
            targets=y_clean[:, -1],
            answer_positions=answer_positions,
            answer_targets=torch.cat([y[:, :-1], y_clean[:, -1:]], 1),
            task_ids=no_task,
            n_shots=n_shots,
            kind="regression",
            zero_shot=zero_shot,
        )


@register_task
@dataclass(frozen=True)
class LinearRegression(RegressionTask):
    """``f(x) = wᵀx`` with ``w ~ N(0, I_D)``."""

    name: ClassVar[str] = "linear-regression"

    def draw_functions(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        return {"w": torch.randn(n, self.d_input, generator=generator)}

    def apply(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return torch.einsum("bmd,bd->bm", x, params["w"])


@register_task
@dataclass(frozen=True)
class SparseLinearRegression(RegressionTask):
    """``f(x) = wᵀx`` with ``sparsity`` non-zero coordinates of ``w``, each ``N(0, 1)``."""

    name: ClassVar[str] = "sparse-linear-regression"

    sparsity: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.sparsity <= self.d_input:
            raise ValueError(f"sparsity={self.sparsity}: expected 1 <= sparsity <= d_input={self.d_input}")

    def draw_functions(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        w = torch.randn(n, self.d_input, generator=generator)
        keep = torch.rand(n, self.d_input, generator=generator).argsort(-1)[:, : self.sparsity]
        mask = torch.zeros(n, self.d_input).scatter_(1, keep, 1.0)
        return {"w": w * mask}

    apply = LinearRegression.apply  # the same map; only the draw of w differs


@register_task
@dataclass(frozen=True)
class SinusoidRegression(RegressionTask):
    """``f(x) = sin(wᵀx + φ)`` with ``w ~ N(0, (frequency² / D) I)`` and ``φ ~ U(0, 2π)``."""

    name: ClassVar[str] = "sinusoid-regression"

    frequency: float = 1.5

    def draw_functions(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        w = torch.randn(n, self.d_input, generator=generator) * (self.frequency / self.d_input**0.5)
        phase = torch.rand(n, generator=generator) * (2 * torch.pi)
        return {"w": w, "phase": phase}

    def apply(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return torch.sin(torch.einsum("bmd,bd->bm", x, params["w"]) + params["phase"][:, None])


@register_task
@dataclass(frozen=True)
class ReLUNetRegression(RegressionTask):
    """Two-layer ReLU network ``f(x) = Σ_i a_i relu(w_iᵀx)``, ``w_i ~ N(0, I)``, ``a_i ~ N(0, 2/hidden)`` (Garg)."""

    name: ClassVar[str] = "relu-net-regression"

    hidden: int = 100

    def draw_functions(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        w = torch.randn(n, self.hidden, self.d_input, generator=generator)
        a = torch.randn(n, self.hidden, generator=generator) * (2.0 / self.hidden) ** 0.5
        return {"w": w, "a": a}

    def apply(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        hidden = torch.relu(torch.einsum("bmd,bhd->bmh", x, params["w"]))
        return torch.einsum("bmh,bh->bm", hidden, params["a"])


@register_task
@dataclass(frozen=True)
class DecisionTreeRegression(RegressionTask):
    """Depth-``depth`` binary tree (Garg): node ``j`` tests ``x[c_j] > 0`` on a random coordinate ``c_j``.

    Leaf values are ``N(0, 1)``.
    """

    name: ClassVar[str] = "decision-tree-regression"

    depth: int = 4

    def draw_functions(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        n_nodes = 2**self.depth - 1
        coords = torch.randint(self.d_input, (n, n_nodes), generator=generator)
        leaves = torch.randn(n, 2**self.depth, generator=generator)
        return {"coords": coords, "leaves": leaves}

    def apply(self, params: dict[str, Any], x: Tensor) -> Tensor:
        b, m, _ = x.shape
        node = torch.zeros(b, m, dtype=torch.long)
        for _ in range(self.depth):
            coord = torch.gather(params["coords"], 1, node)  # [b, m]
            go_right = torch.gather(x, 2, coord[..., None])[..., 0] > 0
            node = 2 * node + 1 + go_right.long()
        leaf = node - (2**self.depth - 1)
        return torch.gather(params["leaves"], 1, leaf)
