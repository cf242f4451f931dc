"""Named prompt splits: every prompt set an experiment draws, derived from one user seed.

A method extracts or trains on some prompts, chooses something (a layer, an epoch, heads) on
others and is scored on yet others. :class:`Splits` is the one rule that names them; every method,
study, the report and training take a ``seed`` and draw their prompts through it.

**Held out means held out.** Two prompt sets drawn with different random streams are not disjoint
when the content is small: a zero-shot query ``BOS x →`` of a 32-symbol family has 32 possible inputs,
so every stream holds all of them. A split therefore draws its *content* from its own block of a
seeded partition (:class:`~tvlens.tasks.ContentBlock`): symbolic families partition each task's query
symbols (demonstrations may use any symbol; a ``test`` query of a task was never its ``train`` or ``dev`` query),
text tasks partition each task's word pairs (a prompt's demonstrations and query all come from its
split's pairs, as Todd et al.'s datasets are split). Regression and formal-language families draw a
fresh function or string for every prompt from a continuous or astronomically large space: there the
random streams alone separate the splits (:attr:`Task.held_out_content` is ``None``).

| split | content block | what it is for |
|---|---|---|
| ``train`` | train (45 %) | extraction prompts (vanilla TV, function vector), LTV training |
| ``dev`` | dev (20 %) | choices: the vanilla TV's layer, early stopping, key heads, task-mean states |
| ``test`` | test (25 %) | a method's own held-out score; head-weighted LTV's head means |
| ``shared`` | test (25 %) | test prompts all methods are compared on (``compare``, studies, the report) |
| ``validation`` | validation (10 %) | Todd et al. 2024's validation prompts; head-weighted LTV's held-out score |
| ``aside`` | all content | the dynamics check's held-out perturbations, the report's example |
| ``training`` | all content | the prompt stream of meta-ICL training (the model learns the whole family) |
| ``monitor`` | all content | the fixed prompts training is evaluated on at every ``eval_every`` step |

(``test`` and ``shared`` both only score, so they share a block; the head-weighted LTV takes its head
means on ``test`` and is scored on ``validation``, a block of its own.)

**A partition per seed.** Each user seed draws its own partition of every task's content (seeded by
``SeedSequence((seed, "partition"))``, each task of a family shuffled apart): a 32-symbol family's ``test``
block holds 8 query symbols, and another seed scores other symbols, so results over seeds are not tied to one
block. The price is that a vector must be scored with the seed it was made with: another seed's ``test``
queries may be ones it was trained or chosen on. Every tvlens method records its seed
(:attr:`~tvlens.vectors.TaskVector.seeds`), and the functions that draw held-out prompts for a vector
(``evaluate``, the OV decomposition, linear dynamics, key heads) refuse a vector made with another seed
(:meth:`Splits.check_made_with`) on a family whose content is partitioned.

**Streams.** Each split's random stream is seeded by ``numpy.random.SeedSequence((seed, split))``:
streams of different user seeds never coincide (a ``seed + offset`` rule gives seed 2's ``train`` the
stream of seed 0's ``test``). The two exceptions are ``training``, ``seed + 7919``, and ``monitor``,
``seed + 10000``, kept so that the shipped zoo weights and their recorded training histories stay
reproducible by ``tvlens zoo train``; no split a method or study scores on uses a small offset.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from tvlens._checks import check_int
from tvlens.tasks.base import ContentBlock

#: The content blocks of a partition, their shares, and the block each split draws from (None: all content).
BLOCK_FRACTIONS: tuple[float, ...] = (0.45, 0.2, 0.25, 0.1)
BLOCKS: dict[str, int | None] = {"train": 0, "dev": 1, "test": 2, "shared": 2, "validation": 3, "aside": None,
                                 "training": None, "monitor": None}
#: The legacy offsets of the meta-ICL training stream and of training's evaluation prompts (the zoo's recipes
#: were trained and monitored on them).
LEGACY_OFFSETS: dict[str, int] = {"training": 7919, "monitor": 10_000}


def _stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for ``(seed, name)`` from numpy's ``SeedSequence`` (distinct pairs, distinct streams)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, zlib.crc32(name.encode())]).generate_state(
        2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


@dataclass(frozen=True)
class Splits:
    """The prompt streams and content blocks of every named split for one user ``seed``.

    Example::

        splits = Splits(seed)
        dev = splits.sample(task, "dev", 200, n_shots)      # dev stream, dev queries only
    """

    seed: int = 0
    names: ClassVar[tuple[str, ...]] = tuple(BLOCKS)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed={self.seed!r}: expected an int")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed={self.seed!r}: expected an int in [0, 2**63)")

    @property
    def train(self) -> int:
        """Seed of the ``train`` split's stream: extraction and training prompts."""
        return self.of("train")

    @property
    def dev(self) -> int:
        """Seed of the ``dev`` split's stream: prompts that choose (layer, epoch, heads, states)."""
        return self.of("dev")

    @property
    def test(self) -> int:
        """Seed of the ``test`` split's stream: a method's own held-out prompts; head-weighted head means."""
        return self.of("test")

    @property
    def validation(self) -> int:
        """Seed of the ``validation`` split's stream: Todd et al. 2024's validation prompts."""
        return self.of("validation")

    @property
    def aside(self) -> int:
        """Seed of the ``aside`` split's stream: the dynamics check's perturbations, the report's example prompt."""
        return self.of("aside")

    @property
    def shared(self) -> int:
        """Seed of the ``shared`` split's stream: the test prompts all methods are compared on."""
        return self.of("shared")

    @property
    def training(self) -> int:
        """Seed of the ``training`` split's stream: meta-ICL training's prompt stream."""
        return self.of("training")

    @property
    def monitor(self) -> int:
        """Seed of the ``monitor`` split's stream: the prompts training is evaluated on."""
        return self.of("monitor")

    def of(self, split: str) -> int:
        """The seed of ``split``'s random stream (one of :attr:`names`)."""
        self.check_split(split)
        return self.seed + LEGACY_OFFSETS[split] if split in LEGACY_OFFSETS else _stream_seed(self.seed, split)

    def block(self, split: str) -> ContentBlock | None:
        """The content block ``split`` draws from (``None``: all content)."""
        self.check_split(split)
        index = BLOCKS[split]
        return None if index is None else ContentBlock(index, BLOCK_FRACTIONS, self.partition)

    @property
    def partition(self) -> int:
        """Seed of this user seed's partition of every task's content into blocks (one for all its splits)."""
        return _stream_seed(self.seed, "partition")

    def check_made_with(self, vector: Any, task: Any, argument: str = "vector") -> None:
        """Refuse (one line) to draw held-out prompts of ``task`` for ``vector`` when it was made with another seed.

        Another seed's partition puts other content in the ``test`` block, possibly content the vector was trained
        or chosen on. Families without partitioned content (:attr:`Task.held_out_content` ``None``: regression,
        formal languages) and vectors that record no seed (a hand-made vector, a bare intervention) pass.
        """
        if getattr(task, "held_out_content", None) is None:
            return
        other = sorted(s for s in getattr(vector, "seeds", ()) if s != self.seed)
        if other:
            raise ValueError(f"seed={self.seed}: the {argument} was made with seed {other[0]}, whose partition of the "
                             f"{task.held_out_content} differs (held-out prompts of seed {self.seed} may hold ones it "
                             f"was trained or chosen on); expected seed={other[0]}")

    def sample(self, task: Any, split: str, n_prompts: int, n_shots: int | None = None) -> Any:
        """``task.sample(n_prompts, n_shots)`` on ``split``'s stream and content block."""
        return task.sample(n_prompts, n_shots, seed=self.of(split), block=self.block(split))

    def tasks(self, n_family: int, n: int) -> tuple[int, ...]:
        """Which tasks of a family of ``n_family`` a study measures when it asks for ``n``: all of them when ``n``
        covers the family, else ``n`` drawn without replacement by this seed (sorted), so a 32-task family is not
        read through its first tasks only."""
        check_int("n_family", n_family, 1)
        check_int("n", n, 1)
        if n >= n_family:
            return tuple(range(n_family))
        order = torch.randperm(n_family, generator=torch.Generator().manual_seed(_stream_seed(self.seed, "tasks")))
        return tuple(sorted(order[:n].tolist()))

    def to_dict(self) -> dict[str, int]:
        """Every split's stream seed."""
        return {name: self.of(name) for name in BLOCKS}

    @staticmethod
    def check_split(split: str) -> None:
        """Refuse a name that is not one of :attr:`names` (a one-line error naming it)."""
        if split not in BLOCKS:
            raise ValueError(f"split={split!r}: expected one of {list(BLOCKS)}")


__all__ = ["BLOCKS", "BLOCK_FRACTIONS", "Splits"]
