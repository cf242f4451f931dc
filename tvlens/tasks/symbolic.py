"""Symbolic ICL tasks: maps between abstract symbols, shown as ``BOS x1 → y1 ; x2 → y2 ; … ; xq →``.

The vocabulary is ``n_symbols`` symbols (token ids ``0 … n_symbols-1``) followed by three special
tokens: ``BOS``, ``→`` (arrow) and ``;`` (separator). A prompt with ``n`` demonstrations has
``4n + 3`` tokens; the answer ``y_i`` is predicted at the arrow after ``x_i``, the query's answer
at the last arrow. The zero-shot view of a prompt is ``BOS xq →``.

Inputs within one prompt are distinct by default, so the query never appears among the
demonstrations: the model cannot copy an answer, it has to infer which task the prompt shows.

Families:

* :class:`PermutationMixture` — K fixed random permutations of the symbols, each a task;
* :class:`TokenOffset` — ``y = x + k mod V``, one task per offset ``k`` (Yang et al. 2025b);
* :class:`ModularAffine` — ``y = a·x + b mod V``, one task per random pair ``(a, b)``.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from jaxtyping import Int
from torch import Tensor

from tvlens._checks import check_int
from tvlens.tasks.base import ContentBlock, ICLBatch, Task, register_task


@dataclass(frozen=True)
class SymbolicTask(Task):
    """Base of the symbol-to-symbol families.

    Attributes:
        n_symbols: number of symbols V.
        seed: fixes the family itself (which permutations / pairs), not the prompts.
        distinct_inputs: inputs of a prompt are drawn without replacement.
        fixed: if set, every prompt shows this one task (see :meth:`Task.single`).
    """

    kind: ClassVar[str] = "symbolic"
    query_tokens: ClassVar[int] = 2
    held_out_content: ClassVar[str | None] = "queries"

    n_symbols: int = 32
    seed: int = 0
    distinct_inputs: bool = True
    fixed: int | None = None

    def __post_init__(self) -> None:
        check_int("n_symbols", self.n_symbols, 2)

    # -- vocabulary -------------------------------------------------------------
    @property
    def bos(self) -> int:
        return self.n_symbols

    @property
    def arrow(self) -> int:
        return self.n_symbols + 1

    @property
    def sep(self) -> int:
        return self.n_symbols + 2

    @property
    def d_vocab(self) -> int:
        """Vocabulary size a model for this family needs: symbols plus BOS, → and ;."""
        return self.n_symbols + 3

    @property
    def label_set(self) -> Int[Tensor, " n_labels"]:
        return torch.arange(self.n_symbols)

    def decode(self, tokens: Int[Tensor, " pos"]) -> str:
        """Human-readable prompt, e.g. ``"<bos> 3 → 17 ; 5 →"``."""
        names = {self.bos: "<bos>", self.arrow: "→", self.sep: ";"}
        return " ".join(names.get(int(t), str(int(t))) for t in tokens)

    # -- sampling -----------------------------------------------------------------
    def max_shots(self) -> int | None:
        return self.n_symbols - 1 if self.distinct_inputs else None

    def prompt_length(self, n_shots: int) -> int:
        return 4 * n_shots + 3

    def with_other_query(self, batch: ICLBatch, seed: int = 0) -> ICLBatch:
        """The same demonstrations with the query symbol replaced by another symbol (uniform over the others,
        seeded by ``seed``); targets follow the new query."""
        if batch.inputs.is_floating_point() or batch.inputs.shape[1] != self.prompt_length(batch.n_shots):
            raise ValueError("with_other_query: expected a batch of this family's prompts (BOS x → y ; … ; xq →)")
        query = batch.inputs[:, -2]
        shift = torch.randint(1, self.n_symbols, query.shape, generator=torch.Generator().manual_seed(seed))
        inputs = batch.inputs.clone()
        inputs[:, -2] = (query + shift) % self.n_symbols
        targets = self.apply(batch.task_ids, inputs[:, -2:-1])[:, 0]
        answer_targets = batch.answer_targets.clone()
        answer_targets[:, -1] = targets
        return dataclasses.replace(batch, inputs=inputs, targets=targets, answer_targets=answer_targets,
                                   zero_shot=None)

    def with_dummy_queries(self, batch: ICLBatch, k: int = 2, seed: int = 0) -> tuple[ICLBatch, ...]:
        """``k`` copies of the prompts, each asking about a *dummy query*: a symbol that is neither one of the prompt's
        demonstrated inputs nor its query (``k`` distinct ones per prompt, seeded by ``seed``). Hendel et al. read the
        task vector from such prompts and average the states over the dummies (their code uses 2), so that no
        demonstrated pair can be retrieved and the scored query's answer is not in the prompt. The averaged state
        can still carry the dummies' own answers (measured on perm-mix: :data:`tvlens.studies.formation.ANSWER_FREE`
        leaves this reading out). Targets follow each dummy query."""
        if batch.inputs.is_floating_point() or batch.inputs.shape[1] != self.prompt_length(batch.n_shots):
            raise ValueError("with_dummy_queries: expected a batch of this family's prompts (BOS x → y ; … ; xq →)")
        check_int("k", k, 1)
        n = batch.n_shots
        used = torch.cat([batch.inputs[:, 1 : 4 * n + 1 : 4], batch.inputs[:, -2:-1]], 1)  # demonstrated x, query
        keys = torch.rand(len(batch), self.n_symbols, generator=torch.Generator().manual_seed(seed))
        keys.scatter_(1, used, 2.0)  # sorts last: never drawn
        free = int((keys < 2).sum(1).min())
        if free < k:
            raise ValueError(f"k={k}: a prompt has only {free} symbols that are neither demonstrated nor its query; "
                             f"expected at least k (fewer shots, or k <= {free})")
        dummies = keys.argsort(1)[:, :k]
        out = []
        for j in range(k):
            inputs = batch.inputs.clone()
            inputs[:, -2] = dummies[:, j]
            targets = self.apply(batch.task_ids, inputs[:, -2:-1])[:, 0]
            answer_targets = batch.answer_targets.clone()
            answer_targets[:, -1] = targets
            out.append(dataclasses.replace(batch, inputs=inputs, targets=targets, answer_targets=answer_targets,
                                           zero_shot=None))
        return tuple(out)

    def demonstrations_only(self, batch: ICLBatch) -> ICLBatch:
        """The prompts cut after the last demonstration's ``;`` (no query): the state at that position holds what
        the demonstrations say and cannot see the query. That ``;`` is the batch's query position, and its target is
        the last demonstration's answer ``y_n``, the answer such a state could carry instead (a state that predicts
        it reads the last pair, not the task)."""
        if batch.inputs.is_floating_point() or batch.inputs.shape[1] != self.prompt_length(batch.n_shots):
            raise ValueError("demonstrations_only: expected a batch of this family's prompts (BOS x → y ; … ; xq →)")
        if batch.n_shots < 1:
            raise ValueError("demonstrations_only: expected prompts with at least one demonstration; got n_shots=0")
        n = batch.n_shots
        last = batch.answer_targets[:, n - 1 : n]
        end = torch.full_like(last, 4 * n)  # the ``;`` closing demonstration n
        return dataclasses.replace(
            batch, inputs=batch.inputs[:, :-2], targets=last[:, 0].clone(),
            answer_positions=torch.cat([batch.answer_positions[:, :n], end], 1),
            answer_targets=torch.cat([batch.answer_targets[:, :n], last], 1),
            attention_mask=None if batch.attention_mask is None else batch.attention_mask[:, :-2], zero_shot=None,
            examples=None)

    def with_noisy_demonstrations(self, batch: ICLBatch, share: float, seed: int = 0) -> ICLBatch:
        """The same prompts with ``round(share · n_shots)`` demonstrations per prompt (chosen at random, seeded by
        ``seed``) given a wrong answer: another symbol, uniform over the rest. The query and its answer are unchanged.
        Training never shows a wrong pair, so these prompts are out of distribution (a shifted input distribution
        with the same task)."""
        if batch.inputs.is_floating_point() or batch.inputs.shape[1] != self.prompt_length(batch.n_shots):
            raise ValueError("with_noisy_demonstrations: expected a batch of this family's prompts (BOS x → y ; … ; "
                             "xq →)")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(f"share={share!r}: expected the share of demonstrations to corrupt, in [0, 1]")
        n, generator = batch.n_shots, torch.Generator().manual_seed(seed)
        k = round(share * n)
        chosen = torch.rand(len(batch), n, generator=generator).argsort(1)[:, :k]  # [batch, k] demonstrations
        columns = 3 + 4 * chosen  # their answers' columns
        inputs, answer_targets = batch.inputs.clone(), batch.answer_targets.clone()
        shift = torch.randint(1, self.n_symbols, chosen.shape, generator=generator)
        wrong = (inputs.gather(1, columns) + shift) % self.n_symbols
        inputs.scatter_(1, columns, wrong)
        answer_targets.scatter_(1, chosen, wrong)
        return dataclasses.replace(batch, inputs=inputs, answer_targets=answer_targets, examples=None)

    @abstractmethod
    def apply(self, task_ids: Int[Tensor, " batch"], x: Int[Tensor, "batch m"]) -> Int[Tensor, "batch m"]:
        """The answers ``y = f_task(x)`` of each prompt's task."""

    def _sample(self, n_prompts: int, n_shots: int, generator: torch.Generator, task_ids: Tensor | None,
                block: ContentBlock | None = None) -> ICLBatch:
        task_ids = self._task_ids(n_prompts, generator, task_ids)
        m = n_shots + 1
        if block is not None:  # the query from its task's block; demonstrations from any other symbol
            ids = task_ids.unique()  # each task its own block (salted shuffle), all of one size
            table = torch.stack([block.items(self.n_symbols, salt=t) for t in ids.tolist()]) if len(ids) else None
            pick = torch.randint(block.size(self.n_symbols), (n_prompts,), generator=generator)
            query = pick if table is None else table[torch.searchsorted(ids, task_ids), pick]
            if self.distinct_inputs:
                keys = torch.rand(n_prompts, self.n_symbols, generator=generator)
                keys[torch.arange(n_prompts), query] = 2.0  # sorts last: never a demonstration
                demos = keys.argsort(-1)[:, :n_shots]
            else:
                demos = torch.randint(self.n_symbols, (n_prompts, n_shots), generator=generator)
            x = torch.cat([demos, query[:, None]], 1)
        elif self.distinct_inputs:
            x = torch.rand(n_prompts, self.n_symbols, generator=generator).argsort(-1)[:, :m]
        else:
            x = torch.randint(self.n_symbols, (n_prompts, m), generator=generator)
        y = self.apply(task_ids, x)

        # Layout: BOS, then per demonstration (x, →, y, ;), then (xq, →).
        tokens = torch.empty(n_prompts, self.prompt_length(n_shots), dtype=torch.long)
        tokens[:, 0] = self.bos
        tokens[:, 1 : 4 * n_shots + 1 : 4] = x[:, :n_shots]
        tokens[:, 2 : 4 * n_shots + 2 : 4] = self.arrow
        tokens[:, 3 : 4 * n_shots + 3 : 4] = y[:, :n_shots]
        tokens[:, 4 : 4 * n_shots + 4 : 4] = self.sep
        tokens[:, -2] = x[:, -1]
        tokens[:, -1] = self.arrow
        answer_positions = (2 + 4 * torch.arange(m)).expand(n_prompts, m).clone()

        query = x[:, -1]
        zero_tokens = torch.stack([torch.full_like(query, self.bos), query, torch.full_like(query, self.arrow)], 1)
        zero_shot = ICLBatch(
            inputs=zero_tokens,
            targets=y[:, -1],
            answer_positions=torch.full((n_prompts, 1), 2, dtype=torch.long),
            answer_targets=y[:, -1:],
            task_ids=task_ids,
            n_shots=0,
            kind="symbolic",
            label_set=self.label_set,
        )
        return ICLBatch(
            inputs=tokens,
            targets=y[:, -1],
            answer_positions=answer_positions,
            answer_targets=y,
            task_ids=task_ids,
            n_shots=n_shots,
            kind="symbolic",
            label_set=self.label_set,
            zero_shot=zero_shot,
        )


@register_task
@dataclass(frozen=True)
class PermutationMixture(SymbolicTask):
    """A mixture of ``n_perms`` fixed random permutations of the symbols; each permutation is a task.

    ``f_k(x) = π_k(x)``. The permutations are drawn from ``seed``. With one demonstration the
    model can usually tell the permutations apart; zero-shot it can only guess among the
    ``n_perms`` images of ``xq``.
    """

    name: ClassVar[str] = "perm-mix"

    n_perms: int = 8
    _perms: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("n_perms", self.n_perms, 1)
        gen = torch.Generator().manual_seed(self.seed)
        perms = torch.stack([torch.randperm(self.n_symbols, generator=gen) for _ in range(self.n_perms)])
        object.__setattr__(self, "_perms", perms)

    @property
    def n_tasks(self) -> int:
        return self.n_perms

    @property
    def permutations(self) -> Int[Tensor, "n_perms n_symbols"]:
        return self._perms.clone()

    def apply(self, task_ids: Tensor, x: Tensor) -> Tensor:
        return self._perms[task_ids[:, None], x]



@register_task
@dataclass(frozen=True)
class TokenOffset(SymbolicTask):
    """Discrete token offset (Yang et al. 2025b): ``f_k(x) = (x + k) mod V`` for each ``k`` in ``offsets``."""

    name: ClassVar[str] = "token-offset"

    offsets: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "offsets", tuple(int(k) for k in self.offsets))
        if not self.offsets:
            raise ValueError("offsets=(): expected at least one offset")

    @property
    def n_tasks(self) -> int:
        return len(self.offsets)

    def apply(self, task_ids: Tensor, x: Tensor) -> Tensor:
        k = torch.tensor(self.offsets)[task_ids][:, None]
        return (x + k) % self.n_symbols


@register_task
@dataclass(frozen=True)
class ModularAffine(SymbolicTask):
    """``f_k(x) = (a_k·x + b_k) mod V`` with ``n_maps`` random pairs ``(a_k, b_k)``, ``a_k ≠ 0``, drawn from ``seed``.
    """

    name: ClassVar[str] = "modular-affine"

    n_maps: int = 8
    _coef: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("n_maps", self.n_maps, 1)
        gen = torch.Generator().manual_seed(self.seed)
        a = torch.randint(1, self.n_symbols, (self.n_maps,), generator=gen)
        b = torch.randint(0, self.n_symbols, (self.n_maps,), generator=gen)
        object.__setattr__(self, "_coef", torch.stack([a, b], 1))

    @property
    def n_tasks(self) -> int:
        return self.n_maps

    def apply(self, task_ids: Tensor, x: Tensor) -> Tensor:
        a, b = self._coef[task_ids, 0][:, None], self._coef[task_ids, 1][:, None]
        return (a * x + b) % self.n_symbols

