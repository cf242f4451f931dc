"""The ledger's workbench: one model × task × seed (a *unit*) with everything its claims share made once.

A claim's measure (:mod:`tvlens.studies.ledger.catalog`) asks its workbench for the vanilla TV, the function
vector, the learned vectors, scores on the held-out test prompts and random controls; the workbench makes each
once (per unit, or per model and seed in the :class:`Store` the ledger's units share) and records which learned
vectors a claim used (their convergence is its row's).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from tvlens.analysis.dynamics import injection_layer_maps
from tvlens.interventions import Intervention, flatten_interventions
from tvlens.models import HookedModel
from tvlens.scoring import scored_view, whole_answer_scores
from tvlens.studies.ledger.config import LedgerConfig
from tvlens.subjects import Subject
from tvlens.subjects import subject as as_subject
from tvlens.tasks.base import Task
from tvlens.tasks.splits import Splits
from tvlens.vectors.bench import Bench
from tvlens.vectors.learned import LearnConfig, LearnResult, learn_task_vectors, learn_task_vectors_many
from tvlens.vectors.task_vector import TaskVector

#: A learned vector and its training record, as :func:`~tvlens.vectors.learn_task_vectors` returns them per layer.
Learned = tuple[TaskVector, LearnResult]


@dataclass
class Store:
    """What the workbenches of one ledger (or of one model's job on an executor's worker) share: each model is
    loaded once, and what several units of a model share is made once.

    Attributes:
        models: subject key → the loaded model and its task family.
        benches: ``(model, task, seed)`` → the unit's :class:`~tvlens.vectors.bench.Bench` (its vanilla TVs, FV and
            scorers; a sibling learning side by side with a unit reads its vanilla layer there).
        learned: ``(model, task, seed, request, positions, base)`` → per layer, the LTVs learned side by side with
            the model's other units (``request``: the layers asked for, or ``"vanilla"``: each unit at its own).
        tvp: ``(model, task, seed)`` → the model's TVP profiles per reading (``formation.tvp_profiles``).
        regression: ``(model, seed)`` → the regression vectors learned once per seed.
        groups: ``(model, seed, n_shots)`` → the test prompts a regression family's groups of prompts (its "tasks")
            are cut from.
    """

    models: dict[Any, tuple[HookedModel, Task]] = field(default_factory=dict)
    benches: dict[tuple[str, int, int], Bench] = field(default_factory=dict)
    learned: dict[tuple[Any, ...], dict[int, Learned]] = field(default_factory=dict)
    tvp: dict[tuple[str, int, int], dict[str, Any]] = field(default_factory=dict)
    regression: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    groups: dict[tuple[str, int, int], Any] = field(default_factory=dict)


class Workbench:
    """One model × task × seed (a unit), with everything the claims share computed once (vectors, test prompts).

    ``store`` is shared by the whole ledger (or by one model's job on an executor's worker): :class:`Store`.
    """

    def __init__(self, subject: Subject | str, task_id: int, seed: int, config: LedgerConfig,
                 store: Store | None = None, together: bool = False):
        subject = as_subject(subject) if isinstance(subject, str) else subject
        self.subject, self.name, self.task_id, self.seed, self.config = subject, subject.name, task_id, seed, config
        self.store = Store() if store is None else store
        #: learn the vectors of this model's other units (tasks × seeds) with this one's, side by side (every unit of
        #: the model runs in this process, in-process or in an executor's worker, and reads them from ``store``)
        self.together = together
        if subject.key not in self.store.models:  # one load per model for the whole ledger, not one per unit
            model = subject.load()
            self.store.models[subject.key] = model, subject.family(model)
        self.model, self.family = self.store.models[subject.key]
        self.task = self.family.single(task_id) if self.family.n_tasks else self.family
        #: demonstrations of the prompts vectors are made from and scored on
        self.n_shots = subject.n_shots(self.family, config.n_shots)
        self.splits = Splits(seed)
        self._memo: dict[Any, Any] = {}
        #: the learned vectors (memo keys) the claim being measured used: their convergence is its row's
        self.touched: set[Any] = set()

    def __repr__(self) -> str:
        return f"{self.name}, task {self.task_id}, seed {self.seed}"

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def test(self) -> Any:
        """The scoring prompts (the ``test`` split): their queries trained nothing and chose nothing."""
        return self.memo("test", lambda: self.prompts(self.n_shots))

    def prompts(self, n_shots: int) -> Any:
        """This unit's ``test`` prompts of ``n_shots`` demonstrations. A family of discrete tasks draws them for the
        unit's task; a family that draws a fresh function per prompt has no tasks, and its units are disjoint groups
        of fresh functions: this unit's group is cut from one draw of ``n_prompts × n_tasks`` per model, seed and
        length (:attr:`Store.groups`), so no two units score the same prompts."""
        config = self.config
        if self.family.n_tasks:
            return self.splits.sample(self.task, "test", config.n_prompts, n_shots)
        key = (self.name, self.seed, n_shots)
        if key not in self.store.groups:
            self.store.groups[key] = self.splits.sample(self.family, "test", config.n_prompts * config.n_tasks, n_shots)
        return self.store.groups[key].select(slice(self.task_id * config.n_prompts,
                                                   (self.task_id + 1) * config.n_prompts))

    def score(self, mode: str, vector: Any = None, batch: Any = None, base: str = "zero_shot",
              query_at: Any = None) -> float:
        """:func:`~tvlens.scoring.evaluate`'s mean score of ``mode`` on ``batch`` (default: the test prompts). The
        prompts are asked many questions (zero-shot, ICL, each vector and its control), so one
        :class:`~tvlens.scoring.PromptScorer` per batch runs them into its query engines once (:meth:`Bench.score
        <tvlens.vectors.bench.Bench.score>`). With ``config.whole_answers`` a word-pair unit scores the exact match
        of each whole generated answer (:func:`~tvlens.scoring.whole_answer_scores`) instead."""
        batch = self.test if batch is None else batch
        tokenizer = getattr(self.task, "tokenizer", None)
        moved = query_at is not None and self.model.capabilities.learned_positions
        if self.config.whole_answers and tokenizer is not None and not moved:  # the whole generated answer
            interventions = [] if vector is None else flatten_interventions([vector])
            return whole_answer_scores(self.model, tokenizer, scored_view(batch, mode, base),
                                       interventions)["exact_match"].mean().item()
        return self.bench.score(mode if vector is None else vector, batch, base, query_at).mean

    def _random(self, like: Tensor, site: Any, salt: Any, rows: bool = False) -> Tensor:
        """A random tensor with the norm of ``like`` (of each of its rows with ``rows``), seeded by the unit, the
        site and ``salt`` (a stable seed: Python's str hash changes per process)."""
        key = zlib.crc32(repr((self.name, self.task_id, self.seed, *site, salt)).encode())
        direction = torch.randn(like.shape, generator=torch.Generator().manual_seed(key), dtype=torch.float64)
        dims = {"dim": -1, "keepdim": True} if rows else {}
        return (direction / direction.norm(**dims) * like.double().norm(**dims)).to(like.dtype)

    def random_like(self, tv: TaskVector, salt: int = 0) -> TaskVector:
        """The control vector: at each of ``tv``'s sites a random direction with the norm of ``tv``'s tensor there
        (seeded by the unit and the site, so every claim sees the same control)."""
        vectors = {site: self._random(v, (site.layer, str(site.positions)), salt) for site, v in tv.vectors.items()}
        return TaskVector(vectors, mode=tv.mode, scale=tv.scale, method="random control")

    def random_interventions(self, interventions: Sequence[Intervention], salt: Any = 0) -> list[Intervention]:
        """The control of per-prompt interventions: each one's vector replaced by a random one with the norm of each
        of its rows (seeded by the unit, the intervention's layer and hook, and ``salt``)."""
        return [dataclasses.replace(iv, vector=self._random(iv.vector, (iv.layer, iv.hook), salt, rows=True))
                for iv in interventions]

    def vanilla(self, mode: str = "add") -> tuple[TaskVector, int]:
        """The vanilla TV, its layer chosen on the ``dev`` split."""
        return self._vanilla_of(self.task_id, self.seed, mode)

    def _vanilla_of(self, task_id: int, seed: int, mode: str = "add") -> tuple[TaskVector, int]:
        """The vanilla TV of this model's unit ``(task_id, seed)`` (:meth:`Bench.best_vanilla
        <tvlens.vectors.bench.Bench.best_vanilla>` of its bench: a sibling learning side by side with this unit
        reads it for its layer)."""
        return self._bench_of(task_id, seed).best_vanilla(mode)

    @property
    def bench(self) -> Bench:
        """This unit's :class:`~tvlens.vectors.bench.Bench` (its model, task, seed and shots): the methods' vectors
        that are not learned side by side with the model's other units."""
        return self._bench_of(self.task_id, self.seed)

    def _bench_of(self, task_id: int, seed: int) -> Bench:
        """The bench of this model's unit ``(task_id, seed)``, kept in the store."""
        key = (self.name, task_id, seed)
        if key not in self.store.benches:
            task = self.family.single(task_id) if self.family.n_tasks else self.family
            self.store.benches[key] = Bench(self.model, task, seed=seed, n_shots=self.n_shots, task_id=None,
                                            progress=False)
        return self.store.benches[key]

    def function(self, layer: int | None = None) -> TaskVector:
        """The function vector (Todd et al.; heads from the ``train`` split) at ``layer``; ``None``: at its own
        layer, the best of its own sweep on ``dev`` prompts (:attr:`Method.own_layer
        <tvlens.vectors.bench.Method.own_layer>`)."""
        return self.bench.vector("function", layer)

    def learned(self, layer: int | str, positions: Any = "last", base: str = "zero_shot") -> TaskVector:
        """The LTV at ``layer`` (trained on the ``train`` split, early-stopped on ``dev``); ``layer="vanilla"``: at
        the vanilla TV's layer (learned side by side with the model's other units, each at its own)."""
        if layer == "vanilla":
            at = self.vanilla()[1]
            return self._learn_layers([at], positions, base, at_vanilla=True)[at][0]
        return self._learn_layers([layer], positions, base)[layer][0]

    def _learn_layers(self, layers: list[int], positions: Any = "last", base: str = "zero_shot",
                      at_vanilla: bool = False) -> dict[int, Learned]:
        """The LTVs of ``layers`` (marked as used by the claim being measured). The claims read the last-position
        zero-shot LTV of every layer (the layer sweep, the maps), so the first time one is asked for, all layers'
        are trained side by side (one prefix per split); other settings train the layers asked for (each sibling
        at its own vanilla layer, with ``at_vanilla``)."""
        def key(k: int) -> tuple[Any, ...]:
            return ("ltv", k, positions, base)

        self.touched.update(key(k) for k in layers)
        every = positions == "last" and base == "zero_shot"
        missing = [k for k in (range(self.model.n_layers) if every else layers) if key(k) not in self._memo]
        if missing:
            shots = self.n_shots if base == "zero_shot" else FEW_SHOTS
            options = {"positions": positions, "base": base, "n_shots": shots, "lr": self.config.lr,
                       "epochs": self.config.epochs, "patience": self.config.patience, "progress": False}
            if not self.together:
                made = learn_task_vectors(self.model, self.task, missing, seed=self.seed, **options)
            else:
                made = self._learn_with_siblings(
                    (lambda t, s: [self._vanilla_of(t, s)[1]]) if at_vanilla else (lambda t, s: missing),
                    "vanilla" if at_vanilla else tuple(missing), options)
            self._memo.update({key(k): made[k] for k in missing})
        return {k: self._memo[key(k)] for k in layers}

    def _learn_with_siblings(self, layers_of: Callable[[int, int], list[int]], request: Any,
                             options: dict[str, Any]) -> dict[int, Learned]:
        """This unit's LTVs of ``request`` (its layers, or ``"vanilla"``), learned side by side with those of the
        model's other units (every task and seed of the ledger) that do not have them yet, each unit at
        ``layers_of(task_id, seed)`` (:func:`~tvlens.vectors.learn_task_vectors_many`, as many units at a time as
        keep the prefix caches under :data:`SIDE_BY_SIDE_BYTES`); each equals the unit's own
        ``learn_task_vectors`` call to float tolerance."""
        def key(task_id: int, seed: int) -> tuple[Any, ...]:  # a family without discrete tasks: one task for all
            return (self.name, task_id if self.family.n_tasks else 0, seed, request,
                    repr(options["positions"]), options["base"])

        mine = key(self.task_id, self.seed)
        if mine not in self.store.learned:
            units = dict.fromkeys((t if self.family.n_tasks else 0, s) for t in
                                  self.subject.task_ids(self.config.n_tasks, self.config.seeds[0])
                                  for s in self.config.seeds)
            todo = [(t, s) for t, s in units if key(t, s) not in self.store.learned]
            # the prompts the vectors learn on (the zero-shot or few-shot view): what their prefix caches hold
            view = self.splits.sample(self.task, "train", 8, options["n_shots"]).view(options["base"])
            per_job = (LearnConfig().n_train + 2 * LearnConfig().n_val) * view.inputs.shape[1] * \
                self.model.d_model * self.model.n_layers * 2 * self.model.W_E.element_size()
            size = max(1, SIDE_BY_SIDE_BYTES // per_job)
            for start in range(0, len(todo), size):
                chunk = todo[start : start + size]
                jobs = [(self.family.single(t) if self.family.n_tasks else self.family, s, layers_of(t, s))
                        for t, s in chunk]
                for (t, s), made in zip(chunk, learn_task_vectors_many(self.model, jobs, **options)):
                    self.store.learned[key(t, s)] = made
        return self.store.learned[mine]

    def site_gate(self) -> float:
        """The site test of the mechanism claims: the share of ICL's gain over zero-shot on the held-out test
        prompts that the learned vector at the vanilla TV's layer (the site they analyse, last position, added to
        the zero-shot query) recovers, ``(acc(LTV) − acc(zero-shot)) / (acc(ICL) − acc(zero-shot))``; ``0`` when
        ICL gains nothing. A vector that does nothing on held-out queries (one that memorised its training
        queries) scores about 0, one that carries the task about 1."""
        def make() -> float:
            zero, icl = self.score("zero_shot"), self.score("icl")
            if icl - zero <= 0:
                return 0.0
            return (self.score("injected", self.learned(self.vanilla()[1])) - zero) / (icl - zero)
        touched = set(self.touched)  # the gate's vector is not the claim's: its convergence is not the row's
        try:
            return self.memo("gate", make)
        finally:
            self.touched = touched

    def unconverged(self) -> int:
        """How many of the learned vectors the current claim used stopped for lack of budget."""
        return sum(not self._memo[key][1].converged for key in self.touched if key in self._memo)

    def learned_layer(self) -> int:
        """The layer whose LTV scores best on the ``dev`` split (its early-stopping score; scored on ``test``)."""
        learned = self._learn_layers(list(range(self.model.n_layers)))
        dev = [learned[k][1].val.mean for k in range(self.model.n_layers)]
        return self.task.metric.best(dev)

    def maps(self, control: bool = False) -> Any:
        """Direct maps of LTVs injected at the first layer, the vanilla layer and the last layer — or, with
        ``control``, of random vectors of the same norms at the same layers through the same maps."""
        layers = sorted({0, self.vanilla()[1], self.model.n_layers - 1})
        # memoised lookups, also on a cached map: they mark the vectors as used by the claim being measured
        vectors = {k: tv for k, (tv, _) in self._learn_layers(layers).items()}
        if control:
            vectors = {k: self.random_like(v) for k, v in vectors.items()}
        return self.memo(("maps", control), lambda: injection_layer_maps(
            self.model, self.task, layers=layers, vectors=vectors, n_prompts=self.config.dynamics_prompts,
            scales=MAP_SCALES, seed=self.seed, progress=False))


#: Demonstrations of the short ICL prompts an LTV is added to (Yang et al. 2025a's few-shot setting).
FEW_SHOTS = 2
#: The most memory the prefix caches of the units learned side by side may take (keys and values, every layer).
SIDE_BY_SIDE_BYTES = 2**30
#: Perturbations of the ledger's maps, relative to ‖θ‖: up to the vector's own size (5–20 % would test only
#: local linearity).
MAP_SCALES = (0.25, 0.5, 1.0)
