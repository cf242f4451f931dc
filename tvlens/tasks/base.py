"""ICL tasks and the batches of prompts they produce.

A **task family** (a :class:`Task`) is a distribution over tasks — permutations, offsets,
linear functions… A prompt draws one task and shows ``n_shots`` demonstrations of it followed
by a query: ``x1 y1 x2 y2 … xq``. The model must infer the task from the demonstrations
(in-context learning) and answer at the query position.

Every prompt comes with its **zero-shot view**: the same query with no demonstrations. The
gap between the two is what a task vector has to close.

An :class:`ICLBatch` holds the prompts of one draw, everything a caller needs to score them:
token ids (or input vectors), the query targets, all answer positions with their targets (the
meta-ICL training loss averages over every one of them), the label set, and the zero-shot view.
Sampling is seeded through a ``torch.Generator`` so a seed fixes the prompts.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tvlens._checks import check_int
from tvlens.positions import at_columns
from tvlens.tasks.metric import Metric, metric_for

TaskKind = Literal["symbolic", "regression"]


#: Where a vector is injected: the zero-shot query (TVP mode) or the ICL prompt itself.
BASES: tuple[str, ...] = ("zero_shot", "icl")


def check_base(base: object) -> str:
    """``base`` if it is one of :data:`BASES`, else a one-line ``ValueError``."""
    if base not in BASES:
        raise ValueError(f"base={base!r}: expected 'zero_shot' or 'icl'")
    return base  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class ICLBatch:
    """A batch of ICL prompts of one task family, all of the same length.

    Attributes:
        inputs: token ids ``[batch, pos]`` (symbolic) or vectors ``[batch, pos, d_input]`` (regression).
        targets: the query's answer per prompt: token id (long) or scalar ``y`` (float).
        answer_positions: ``[batch, n_answers]`` positions whose next-token/read-out prediction is
            an answer (every demonstration, then the query last).
        answer_targets: ``[batch, n_answers]`` the answer at each of those positions.
        task_ids: ``[batch]`` which task of the family each prompt shows (``-1`` when the family
            is continuous, e.g. a fresh linear function per prompt).
        n_shots: demonstrations per prompt.
        kind: ``"symbolic"`` or ``"regression"``.
        label_set: token ids the answers range over (symbolic), ``None`` for regression.
        zero_shot: the same queries with no demonstrations (``None`` on a zero-shot batch itself).
        attention_mask: ``[batch, pos]`` 1 for real tokens; ``None`` when nothing is padded.
        examples: per prompt, the ``(x, y)`` pairs it shows (demonstrations, then the query), for
            families that build prompts from text (``None`` otherwise).
    """

    inputs: Int[Tensor, "batch pos"] | Float[Tensor, "batch pos d_input"]
    targets: Int[Tensor, " batch"] | Float[Tensor, " batch"]
    answer_positions: Int[Tensor, "batch n_answers"]
    answer_targets: Int[Tensor, "batch n_answers"] | Float[Tensor, "batch n_answers"]
    task_ids: Int[Tensor, " batch"]
    n_shots: int
    kind: TaskKind
    label_set: Int[Tensor, " n_labels"] | None = None
    zero_shot: ICLBatch | None = None
    attention_mask: Int[Tensor, "batch pos"] | None = None
    examples: tuple[tuple[tuple[Any, Any], ...], ...] | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def n_positions(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def metric(self) -> Metric:
        """How the prompts' queries are scored (:mod:`tvlens.tasks.metric`)."""
        return metric_for(self.kind)

    @property
    def d_input(self) -> int | None:
        """Width of the input vectors (regression prompts), ``None`` for token prompts."""
        return int(self.inputs.shape[-1]) if self.inputs.is_floating_point() else None

    @property
    def query_positions(self) -> Int[Tensor, " batch"]:
        """Position of each prompt's query answer (its last answer position)."""
        return self.answer_positions[:, -1]

    def at_query(self, x: Tensor, *, copies: int = 1, dim: int = 1) -> Tensor:
        """Each row of ``x`` at its prompt's query: ``x[i, …, query_positions[i], …]`` with the position axis
        ``dim`` removed (``1`` for streams and logits ``[batch, pos, …]``; ``2`` for attention patterns
        ``[batch, heads, query_pos, key_pos]``).

        ``x`` may hold the batch ``copies`` times along its first axis, copy-major (as ``Tensor.repeat`` tiles
        it): row ``c · len(self) + i`` is read at prompt ``i``'s query. Every tensor tvlens reads at the queries
        of a batch is read here (through :func:`~tvlens.positions.at_columns`).
        """
        query = self.query_positions.to(x.device).repeat(copies)
        if x.shape[0] != query.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows; expected {len(self)} prompts × {copies} copies")
        return at_columns(x, query, dim)

    def view(self, base: str) -> ICLBatch:
        """The prompts a vector is injected into: ``base="zero_shot"`` their zero-shot view (the batch itself
        when it is a zero-shot batch), ``"icl"`` the prompts themselves.

        Raises:
            ValueError: ``base`` is neither, or the batch has demonstrations but no zero-shot view (e.g. one
                with shuffled labels).
        """
        check_base(base)
        if base == "icl":
            return self
        if self.zero_shot is not None:
            return self.zero_shot
        if self.n_shots == 0:
            return self
        raise ValueError(f"base='zero_shot': this {self.n_shots}-shot batch has no zero-shot view (a batch with "
                         "shuffled labels has none); pass the batch task.sample made, or base='icl'")

    def select(self, rows: slice | Tensor) -> ICLBatch:
        """The sub-batch of the given rows (and the same rows of its zero-shot view)."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("label_set", "n_shots", "kind"):
                continue
            if isinstance(value, Tensor):
                changes[f.name] = value[rows]
            elif isinstance(value, ICLBatch):
                changes[f.name] = value.select(rows)
        if self.examples is not None:
            index = range(len(self))[rows] if isinstance(rows, slice) else torch.as_tensor(rows).tolist()
            changes["examples"] = tuple(self.examples[i] for i in index)
        return dataclasses.replace(self, **changes)

    def with_shuffled_labels(self, generator: torch.Generator) -> ICLBatch:
        """The same prompts with the demonstrations' labels shuffled among themselves (Todd et al.'s
        corrupted prompts): every ``x_i`` keeps its place, the ``y``s are permuted within each prompt,
        the query and its target are unchanged. The zero-shot view is dropped."""
        if self.examples is not None:  # answers of several tokens: moving first tokens would leave fragments
            raise ValueError("this batch was built from text: shuffle whole answers with "
                             "task.with_shuffled_labels(batch, generator)")
        if self.n_shots < 2:
            raise ValueError(f"shuffling labels needs at least 2 demonstrations; the batch has n_shots={self.n_shots}")
        label_pos = self.answer_positions[:, :-1] + 1  # the y token follows its answer position
        order = torch.rand(label_pos.shape, generator=generator).argsort(-1)
        shuffled = torch.gather(label_pos, 1, order)
        rows = torch.arange(len(self))[:, None]
        inputs = self.inputs.clone()
        inputs[rows, label_pos] = self.inputs[rows, shuffled]
        targets = self.answer_targets.clone()
        targets[:, :-1] = torch.gather(self.answer_targets[:, :-1], 1, order)
        return dataclasses.replace(self, inputs=inputs, answer_targets=targets, zero_shot=None)

    def to(self, device: torch.device | str) -> ICLBatch:
        """A copy on ``device``."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (Tensor, ICLBatch)):
                changes[f.name] = value.to(device)
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ContentBlock:
    """One block of a seeded partition of a family's finite content (its query symbols, its word pairs).

    The content's ``n`` items are shuffled by ``seed`` and cut at the cumulative ``fractions`` into
    ``len(fractions)`` disjoint blocks; a prompt drawn with this block takes its held-out content from
    block ``index`` only. Blocks of one ``(fractions, seed)`` never share an item, whatever ``index``:
    that is what makes a split's scored queries disjoint from the ones another split trained or chose on.

    Attributes:
        index: which block.
        fractions: the blocks' shares of the content (positive, summing to 1).
        seed: fixes the shuffle (the same for every block of one partition).
    """

    index: int
    fractions: tuple[float, ...]
    seed: int

    def __post_init__(self) -> None:
        if not self.fractions or any(f <= 0 for f in self.fractions) or abs(sum(self.fractions) - 1) > 1e-9:
            raise ValueError(f"fractions={self.fractions!r}: expected positive shares summing to 1")
        if not 0 <= self.index < len(self.fractions):
            raise ValueError(f"index={self.index!r}: expected 0 <= index < {len(self.fractions)}")

    def items(self, n: int, salt: int = 0) -> Int[Tensor, " k"]:
        """The indices (into ``0 … n-1``) of this block; ``salt`` gives each task of a family its own shuffle.

        Raises:
            ValueError: ``n`` is too small for every block to hold at least one item.
        """
        start, stop = self._bounds(n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed((self.seed + 7_777_777 * salt) % 2**63))
        return order[start:stop].sort().values

    def size(self, n: int) -> int:
        """How many of ``n`` items this block holds (the same for every ``salt``)."""
        start, stop = self._bounds(n)
        return stop - start

    def _bounds(self, n: int) -> tuple[int, int]:
        """Where this block starts and stops in the shuffled ``0 … n-1``: the cumulative shares of ``n``, each block
        at least one item."""
        if n < len(self.fractions):
            raise ValueError(f"{n} items cannot be split into {len(self.fractions)} disjoint blocks; expected at "
                             f"least {len(self.fractions)}")
        cuts = [0]
        for share in self.fractions[:-1]:
            cuts.append(cuts[-1] + share)
        bounds = [min(n - (len(self.fractions) - i), max(i, round(c * n))) for i, c in enumerate(cuts)] + [n]
        return bounds[self.index], bounds[self.index + 1]


def make_generator(seed: int | None = None, generator: torch.Generator | None = None) -> torch.Generator:
    """The generator to sample with: the given one, or a fresh CPU generator seeded with ``seed`` (default 0)."""
    if generator is not None:
        if seed is not None:
            raise ValueError("pass either seed or generator, not both")
        return generator
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise TypeError(f"seed={seed!r}: expected an int")
    return torch.Generator().manual_seed(0 if seed is None else seed)


class Task(ABC):
    """A family of ICL tasks that can sample batches of prompts.

    Subclasses set :attr:`kind` and implement :meth:`_sample`. A task is described by plain
    fields so it can be saved with a model (:meth:`to_dict` / :func:`task_from_dict`).
    """

    kind: ClassVar[TaskKind]
    name: ClassVar[str]

    #: Default number of demonstrations per prompt.
    default_n_shots: int = 8

    #: What a :class:`ContentBlock` holds out in this family (``"queries"``, ``"word pairs"``), or ``None``
    #: when every prompt is a fresh draw from a continuous or astronomically large space (regression
    #: functions, formal-language strings): there a block is ignored and the random stream separates splits.
    held_out_content: ClassVar[str | None] = None

    def sample(
        self,
        n_prompts: int,
        n_shots: int | None = None,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        task_ids: Tensor | None = None,
        block: ContentBlock | None = None,
    ) -> ICLBatch:
        """Draw ``n_prompts`` prompts with ``n_shots`` demonstrations each, plus their zero-shot view.

        Args:
            n_prompts: batch size, ``>= 1``.
            n_shots: demonstrations per prompt (``>= 0``; default :attr:`default_n_shots`).
            seed: seeds a fresh generator (default 0) — same seed, same prompts.
            generator: sample from this generator instead (advances it).
            task_ids: for discrete families, force the task of each prompt ``[n_prompts]``.
            block: hold out content — draw the :attr:`held_out_content` from this block only
                (:class:`~tvlens.tasks.Splits` passes one per split). Ignored by families that draw
                fresh content for every prompt.
        """
        check_int("n_prompts", n_prompts, 1)
        n_shots = self.default_n_shots if n_shots is None else n_shots
        check_int("n_shots", n_shots, 0)
        max_shots = self.max_shots()
        if max_shots is not None and n_shots > max_shots:
            raise ValueError(f"n_shots={n_shots} is too many for this {type(self).__name__} (its smallest task or "
                             f"held-out content allows {max_shots}); expected n_shots <= {max_shots}")
        if task_ids is not None:
            task_ids = torch.as_tensor(task_ids, dtype=torch.long)
            if task_ids.shape != (n_prompts,):
                raise ValueError(f"task_ids has shape {tuple(task_ids.shape)}; expected ({n_prompts},)")
            n_tasks = self.n_tasks
            if n_tasks is None:
                raise ValueError(f"task_ids given but {type(self).__name__} is a continuous family")
            if task_ids.min() < 0 or task_ids.max() >= n_tasks:
                raise ValueError(f"task_ids must lie in [0, {n_tasks}); got {task_ids.tolist()}")
        if block is not None and self.held_out_content is not None:
            return self._sample(n_prompts, n_shots, make_generator(seed, generator), task_ids, block=block)
        return self._sample(n_prompts, n_shots, make_generator(seed, generator), task_ids)

    @abstractmethod
    def _sample(
        self, n_prompts: int, n_shots: int, generator: torch.Generator, task_ids: Tensor | None
    ) -> ICLBatch: ...

    @property
    def metric(self) -> Metric:
        """How this family's queries are scored (:mod:`tvlens.tasks.metric`)."""
        return metric_for(self.kind)

    @property
    def n_tasks(self) -> int | None:
        """Number of tasks in a discrete family; ``None`` for a continuous one."""
        return None

    def max_shots(self) -> int | None:
        """Most demonstrations a prompt can hold, if the family limits it."""
        return None

    @abstractmethod
    def prompt_length(self, n_shots: int) -> int:
        """Positions of a prompt with ``n_shots`` demonstrations."""

    #: Tokens after the demonstrations that belong to the query (``xq →`` = 2, regression ``xq`` = 1).
    query_tokens: ClassVar[int] = 1

    def shorter(self, batch: ICLBatch, n_shots: int) -> ICLBatch:
        """The same prompts keeping only their first ``n_shots`` demonstrations (and the query).

        Saglam et al. 2025 read each prompt's head outputs from such a shorter prompt. Answer positions and
        targets shrink accordingly; the zero-shot view is kept.
        """
        if not 1 <= n_shots <= batch.n_shots:
            raise ValueError(f"n_shots={n_shots}: expected 1 <= n_shots <= {batch.n_shots} (the batch's)")
        width = self.prompt_length(1) - self.prompt_length(0)
        keep = self.prompt_length(n_shots) - self.query_tokens
        inputs = torch.cat([batch.inputs[:, :keep], batch.inputs[:, -self.query_tokens :]], 1)
        positions = torch.cat([batch.answer_positions[:, :n_shots], batch.answer_positions[:, -1:]
                               - width * (batch.n_shots - n_shots)], 1)
        targets = torch.cat([batch.answer_targets[:, :n_shots], batch.answer_targets[:, -1:]], 1)
        return dataclasses.replace(batch, inputs=inputs, answer_positions=positions, answer_targets=targets,
                                   n_shots=n_shots)

    def with_shuffled_labels(self, batch: ICLBatch, generator: torch.Generator) -> ICLBatch:
        """Corrupted prompts for causal scores (Todd et al.): ``batch`` with its demonstrations' answers
        permuted within each prompt. One-token answers are permuted in place
        (:meth:`ICLBatch.with_shuffled_labels`); families whose answers are text override this to
        permute whole answers and tokenize again."""
        return batch.with_shuffled_labels(generator)

    def with_other_query(self, batch: ICLBatch, seed: int = 0) -> ICLBatch:
        """The same prompts, each asking about another input than its own query — the same task (the same
        demonstrations or the same function) without the scored query's answer in the prompt. What a state is
        read from when it must carry the task but not the answer (Hendel et al.'s dummy query). Families that
        can build one override this."""
        raise ValueError(f"{type(self).__name__} cannot build a prompt with another query")

    def single(self, which: int) -> Task:
        """The same family restricted to one task: task ``which`` of a discrete family, or, for a
        continuous family (regression), the one function drawn from seed ``which``.

        A task vector is made for one task (Hendel et al.): sample its prompts from ``task.single(k)``.
        """
        if not dataclasses.is_dataclass(self) or "fixed" not in {f.name for f in dataclasses.fields(self)}:
            raise TypeError(f"{type(self).__name__} cannot be restricted to a single task")
        check_int("which", which, 0)
        if self.n_tasks is not None and which >= self.n_tasks:
            n = self.n_tasks
            raise ValueError(f"which={which}: the family has {n} tasks; expected 0 <= which < {n}")
        return dataclasses.replace(self, fixed=which)

    def _task_ids(self, n_prompts: int, generator: torch.Generator, task_ids: Tensor | None) -> Tensor:
        """Task of each prompt: forced, the fixed one, or drawn uniformly."""
        if task_ids is not None:
            return task_ids
        fixed = getattr(self, "fixed", None)
        if fixed is not None:
            return torch.full((n_prompts,), fixed, dtype=torch.long)
        if self.n_tasks is None:
            raise ValueError(f"{type(self).__name__} is a continuous family: it has no task ids to draw")
        return torch.randint(self.n_tasks, (n_prompts,), generator=generator)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description: ``{"family": name, **fields}``."""
        fields = {}
        if dataclasses.is_dataclass(self):
            fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return {"family": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}


TASK_REGISTRY: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task family constructible by name (:func:`task_from_dict`).

    Raises:
        ValueError: another class is registered under the same name (a saved task would load as the wrong family).
    """
    other = TASK_REGISTRY.get(cls.name)
    if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"register_task: the name {cls.name!r} is taken by {other.__module__}.{other.__qualname__}; "
                         f"give {cls.__qualname__} another name")
    TASK_REGISTRY[cls.name] = cls
    return cls


def task_from_dict(data: dict[str, Any]) -> Task:
    """Inverse of :meth:`Task.to_dict`."""
    data = dict(data)
    family = data.pop("family", None)
    if family not in TASK_REGISTRY:
        raise ValueError(f"family={family!r}: expected one of {sorted(TASK_REGISTRY)}")
    return TASK_REGISTRY[family](**data)
