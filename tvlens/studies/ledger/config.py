"""How the ledger measures: :class:`LedgerConfig`, read by every workbench and by the runner."""

from __future__ import annotations

from dataclasses import dataclass

from tvlens._checks import check_int
from tvlens._config import Config
from tvlens.studies.ledger.verdicts import ALPHA


@dataclass
class LedgerConfig(Config):
    """How the ledger measures.

    Attributes:
        n_tasks: tasks of each model's family (regression: groups of test prompts); a family with fewer has
            them all, a family with more a sample drawn by the first seed (:meth:`~tvlens.tasks.Splits.tasks`).
        seeds: user seeds (:class:`~tvlens.tasks.Splits`): every split and learned vector. The zoo's rows are
            replicated over independently trained models (:data:`~tvlens.zoo.specs.FAMILY_MODELS`), which vary
            every seed-dependent choice too, so one seed is the default; more seeds average within a task.
        n_prompts: test prompts per task and seed (and selection prompts where something is chosen).
        n_shots: demonstrations of the prompts vectors are made from (``None``: the shots a zoo model was trained
            on, else the family's default; :meth:`Subject.n_shots`).
        family_models: how many of each zoo family's trained models to measure (``None``: all of them,
            :data:`~tvlens.zoo.specs.FAMILY_MODELS`; ``1``: its first, a preview whose interval is over that one
            model's tasks). Training claims always read all their replicates.
        lr: learning rate of the learned vectors; ``epochs``: their budget; ``patience``: epochs without a
            better ``dev`` loss before they stop (converged).
        dynamics_prompts: prompts the linear maps are fitted on (one map each).
        claims: the claims to measure (names of :data:`CLAIMS`; default all).
        alpha: the family-wise error rate of the table (Holm).
        whole_answers: score word-pair (text) rows on the whole generated answer — its exact match, as Todd et
            al. read generations (:mod:`tvlens.tasks.answers`) — instead of its first token; a row whose prompts are
            moved to another position on a model with learned absolute positions (Hendel et al.'s, position-matched)
            keeps first tokens, since generation runs prompts where they are.
    """

    n_tasks: int = 8
    seeds: tuple[int, ...] = (0,)
    n_prompts: int = 200
    n_shots: int | None = None
    lr: float = 0.05
    epochs: int = 60
    patience: int = 3
    family_models: int | None = None
    dynamics_prompts: int = 8
    claims: tuple[str, ...] | None = None
    alpha: float = ALPHA
    whole_answers: bool = False

    def __post_init__(self) -> None:
        for name in ("n_tasks", "n_prompts", "epochs", "patience", "dynamics_prompts"):
            check_int(name, getattr(self, name), 1)
        for name in ("n_shots", "family_models"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        self.seeds = tuple(self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r}: expected distinct seeds, at least one")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha={self.alpha!r}: expected a probability in (0, 1)")
        if self.claims is not None:
            self.claims = (self.claims,) if isinstance(self.claims, str) else tuple(self.claims)
            if not self.claims:
                raise ValueError("claims=(): expected at least one claim name (None measures every claim)")
            from tvlens.studies.ledger.catalog import CLAIMS  # the catalogue reads the workbench, which reads this

            unknown = [c for c in self.claims if c not in CLAIMS]
            if unknown:
                raise ValueError(f"claims: unknown {unknown}; expected names from {list(CLAIMS)}")


__all__ = ["LedgerConfig"]
