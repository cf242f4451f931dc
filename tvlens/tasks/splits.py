"""Named prompt splits: every prompt set an experiment draws, derived from one user seed.

A method extracts or trains on some prompts, chooses something (a layer, an epoch, heads) on
others and is scored on yet others. :class:`Splits` is the one rule that names them; every method,
study, the report and training take a ``seed`` and draw their prompts through it, so equal seeds give
equal prompts everywhere and different splits never share a seed:

| split | seed | what it is for |
|---|---|---|
| ``train`` | ``seed`` | extraction prompts (vanilla TV, function vector), LTV training |
| ``dev`` | ``seed + 1`` | choices: the vanilla TV's layer, early stopping, task-mean states |
| ``test`` | ``seed + 2`` | a method's own held-out score; head-weighted LTV's head means |
| ``validation`` | ``seed + 3`` | Todd et al. 2024's validation prompts (function-vector means) |
| ``aside`` | ``seed + 7`` | set aside: the dynamics check's held-out perturbations, the report's example |
| ``shared`` | ``seed + 100`` | test prompts all methods are compared on (``compare``, studies, the report) |
| ``training`` | ``seed + 7919`` | the prompt stream of meta-ICL training (never an evaluation seed) |

(``test`` also seeds the head-weighted LTV's head means: no procedure both scores on ``test`` and
takes head means, so the two uses never meet.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

OFFSETS: dict[str, int] = {"train": 0, "dev": 1, "test": 2, "validation": 3, "aside": 7, "shared": 100,
                           "training": 7919}


@dataclass(frozen=True)
class Splits:
    """The seeds of every named prompt split for one user ``seed``.

    Example::

        splits = Splits(seed)
        dev = task.sample(200, n_shots, seed=splits.dev)
        same = splits.sample(task, "dev", 200, n_shots)
    """

    seed: int = 0
    names: ClassVar[tuple[str, ...]] = tuple(OFFSETS)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed={self.seed!r}: expected an int")

    @property
    def train(self) -> int:
        """Seed of the ``train`` split: extraction and training prompts."""
        return self.of("train")

    @property
    def dev(self) -> int:
        """Seed of the ``dev`` split: prompts that choose (layer, epoch, states)."""
        return self.of("dev")

    @property
    def test(self) -> int:
        """Seed of the ``test`` split: a method's own held-out prompts; head-weighted head means."""
        return self.of("test")

    @property
    def validation(self) -> int:
        """Seed of the ``validation`` split: Todd et al. 2024's validation prompts."""
        return self.of("validation")

    @property
    def aside(self) -> int:
        """Seed of the ``aside`` split: the dynamics check's held-out perturbations, the report's example prompt."""
        return self.of("aside")

    @property
    def shared(self) -> int:
        """Seed of the ``shared`` split: the test prompts all methods are compared on."""
        return self.of("shared")

    @property
    def training(self) -> int:
        """Seed of the ``training`` split: meta-ICL training's prompt stream."""
        return self.of("training")

    def of(self, split: str) -> int:
        """The seed of ``split`` (one of :attr:`names`)."""
        if split not in OFFSETS:
            raise ValueError(f"split={split!r}: expected one of {list(OFFSETS)}")
        return self.seed + OFFSETS[split]

    def sample(self, task: Any, split: str, n_prompts: int, n_shots: int | None = None) -> Any:
        """``task.sample(n_prompts, n_shots)`` on ``split``'s seed."""
        return task.sample(n_prompts, n_shots, seed=self.of(split))

    def to_dict(self) -> dict[str, int]:
        """Every split's seed."""
        return {name: self.of(name) for name in OFFSETS}


__all__ = ["OFFSETS", "Splits"]
