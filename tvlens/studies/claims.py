"""The claims ledger: the papers' claims tvlens can test, measured across tasks and seeds, each beside its
control, with a verdict a referee would accept.

A finding measured on one task of one family with one seed says little about the claim behind it.
The ledger measures each claim's **effect** — a number that is positive when the claim holds, e.g.
"accuracy of the LTV minus accuracy of the vanilla TV" — on every zoo model where the claim applies,
for ``n_tasks`` tasks of the model's family × ``len(seeds)`` seeds (the seed draws every prompt stream
and every learned vector; :class:`~tvlens.tasks.Splits`).

**Held out.** Every score is on prompts whose queries trained nothing and chose nothing: the splits hold
out query symbols (:class:`~tvlens.tasks.Splits`), so an LTV is scored on queries it never saw and a
layer or head set is chosen on queries it is not scored on.

**Controls.** Each claim has a control measured on the same prompts — a random vector of the same norm
at the same site, random heads that exclude the key heads, the same maps for random vectors, the
reading of the state from another query. How it enters the verdict is the claim's ``control_rule``:
``"subtract"`` (the verdict is on effect − control: the claim *is* a comparison with the control),
``"must_fail"`` (the verdict can only be ``holds`` if the control's mean does not itself clear the margin;
if it does, the row is ``inconclusive``: the effect follows from the norm or the architecture, not the
vector) or ``"shown"`` (the effect already is a difference against the control).

**Intervals and verdicts** (:mod:`tvlens.studies.verdicts`): Student's t over the task means (seeds
averaged within a task), Welch for a contrast of two models, Holm's adjustment over the rows of the
table, and ``holds`` / ``does not hold`` / ``inconclusive`` with the reason. A learned vector whose
``dev`` loss was still improving when its epoch budget ran out is counted in the row's ``unconverged``.

**Training claims** ("the TVP-loss raises …") compare models trained two ways. One model per arm would
measure one training run, so these claims are measured on ``ARM_REPLICATES`` independently trained pairs
(``perm-mix-tvp-arm-s{i}`` against ``perm-mix-arm-s{i}``: the same steps, initial weights and prompt
stream, only the loss differs), and their interval is over the pairs (each pair's mean over tasks ×
seeds): the variance of training counts, not only that of the prompts.

Regression families draw a fresh function for every prompt, so their "tasks" are ``n_tasks`` disjoint
groups of test prompts (independent functions) and their seeds re-learn the vectors.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from tvlens._checks import check_int
from tvlens._config import Config
from tvlens._progress import progress_bar
from tvlens._records import Records
from tvlens.analysis.dynamics import injection_layer_maps
from tvlens.analysis.heads import key_head_analysis
from tvlens.analysis.ov import ov_decomposition
from tvlens.evaluate import PromptScorer
from tvlens.models import HookedModel
from tvlens.studies.formation import STUDY_SOURCES, tvp_profiles
from tvlens.studies.regression import fidelity_scores, fidelity_vectors
from tvlens.studies.subjects import NEEDS, OFFERS, Subject
from tvlens.studies.subjects import subject as as_subject
from tvlens.studies.verdicts import (
    ALPHA,
    GATE,
    NOT_APPLICABLE,
    NOT_MEASURED,
    NOT_TESTABLE,
    UNMEASURED,
    Estimate,
    contrast_estimate,
    contrast_interval,
    holm_levels,
    t_quantile,
    task_estimate,
    task_interval,
    verdict,
)
from tvlens.tasks.splits import Splits
from tvlens.tasks.text import TextTasks, check_enough_pairs
from tvlens.vectors.function import default_top_k, function_vector
from tvlens.vectors.learned import LearnConfig, learn_task_vectors, learn_task_vectors_many
from tvlens.vectors.task_vector import TaskVector
from tvlens.vectors.vanilla import vanilla_task_vector
from tvlens.zoo.specs import ARM_REPLICATES, PERM_TVP_LAYER, arm_names


@dataclass
class LedgerConfig(Config):
    """How the ledger measures.

    Attributes:
        n_tasks: tasks of each family (regression: groups of test prompts).
        seeds: user seeds (:class:`~tvlens.tasks.Splits`): every split and learned vector.
        n_prompts: test prompts per task and seed (and selection prompts where something is chosen).
        n_shots: demonstrations of the prompts vectors are made from (``None``: the shots a zoo model was trained
            on, else the family's default; :meth:`Subject.n_shots`).
        lr: learning rate of the learned vectors; ``epochs``: their budget; ``patience``: epochs without a
            better ``dev`` loss before they stop (converged).
        dynamics_prompts: prompts the linear maps are fitted on (one map each).
        claims: the claims to measure (names of :data:`CLAIMS`; default all).
        alpha: the family-wise error rate of the table (Holm).
    """

    n_tasks: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    n_prompts: int = 200
    n_shots: int | None = None
    lr: float = 0.05
    epochs: int = 60
    patience: int = 3
    dynamics_prompts: int = 8
    claims: tuple[str, ...] | None = None
    alpha: float = ALPHA

    def __post_init__(self) -> None:
        for name in ("n_tasks", "n_prompts", "epochs", "patience", "dynamics_prompts"):
            check_int(name, getattr(self, name), 1)
        if self.n_shots is not None:
            check_int("n_shots", self.n_shots, 1)
        self.seeds = tuple(self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r}: expected distinct seeds, at least one")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha={self.alpha!r}: expected a probability in (0, 1)")
        if self.claims is not None:
            self.claims = (self.claims,) if isinstance(self.claims, str) else tuple(self.claims)
            if not self.claims:
                raise ValueError("claims=(): expected at least one claim name (None measures every claim)")
            unknown = [c for c in self.claims if c not in CLAIMS]
            if unknown:
                raise ValueError(f"claims: unknown {unknown}; expected names from {list(CLAIMS)}")


class Unit:
    """One model × task × seed, with everything the claims share computed once (vectors, test prompts).

    ``shared`` is one dict for the whole ledger (or for one model's job on an executor's worker): each model is
    loaded once, and what several units of a model and seed share (the regression vectors, learned once per
    seed and read by every group of prompts) is kept there.
    """

    def __init__(self, subject: Subject | str, task_id: int, seed: int, config: LedgerConfig,
                 shared: dict[Any, Any] | None = None, together: bool = False):
        subject = as_subject(subject) if isinstance(subject, str) else subject
        self.subject, self.name, self.task_id, self.seed, self.config = subject, subject.name, task_id, seed, config
        self.shared = {} if shared is None else shared
        #: learn the vectors of this model's other units (tasks × seeds) with this one's, side by side (every unit of
        #: the model runs in this process, in-process or in an executor's worker, and reads them from ``shared``)
        self.together = together
        if ("model", subject.key) not in self.shared:  # one load per model for the whole ledger, not one per unit
            model = subject.load()
            self.shared[("model", subject.key)] = model, subject.family(model)
        self.model, self.family = self.shared[("model", subject.key)]
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

    def memo_shared(self, key: Any, make: Callable[[], Any]) -> Any:
        """Like :meth:`memo`, kept across the units of this model and seed."""
        key = (self.name, self.seed, key)
        if key not in self.shared:
            self.shared[key] = make()
        return self.shared[key]

    @property
    def test(self) -> Any:
        """The scoring prompts (the ``test`` split): their queries trained nothing and chose nothing."""
        return self.memo("test", lambda: self.splits.sample(self.task, "test", self.config.n_prompts, self.n_shots))

    def score(self, mode: str, vector: Any = None, batch: Any = None, base: str = "zero_shot") -> float:
        """:func:`~tvlens.evaluate.evaluate`'s mean score of ``mode`` on ``batch`` (default: the test prompts). The
        prompts are asked many questions (zero-shot, ICL, each vector and its control), so one
        :class:`~tvlens.evaluate.PromptScorer` per batch runs them into its query engines once."""
        batch = self.test if batch is None else batch
        key = ("scorer", id(batch))
        if key not in self._memo or self._memo[key].batch is not batch:  # the batch itself, not a later one at its id
            self._memo[key] = PromptScorer(self.model, batch)
        return self._memo[key].evaluate(mode, vector, base).mean

    def random_like(self, tv: TaskVector, salt: int = 0) -> TaskVector:
        """The control vector: at each of ``tv``'s sites a random direction with the norm of ``tv``'s tensor there
        (seeded by the unit and the site, so every claim sees the same control)."""
        vectors = {}
        for site, v in tv.vectors.items():
            # a stable seed (Python's str hash changes per process)
            key = zlib.crc32(repr((self.name, self.task_id, self.seed, site.layer, str(site.positions), salt)).encode())
            direction = torch.randn(v.shape, generator=torch.Generator().manual_seed(key), dtype=torch.float64)
            vectors[site] = (direction / direction.norm() * v.double().norm()).to(v.dtype)
        return TaskVector(vectors, mode=tv.mode, scale=tv.scale, method="random control")

    def vanilla(self, mode: str = "add") -> tuple[TaskVector, int]:
        """The vanilla TV, its layer chosen on the ``dev`` split."""
        return self._vanilla_of(self.task_id, self.seed, mode)

    def _vanilla_of(self, task_id: int, seed: int, mode: str = "add") -> tuple[TaskVector, int]:
        """The vanilla TV of this model's unit ``(task_id, seed)`` (kept in ``shared``: a sibling learning side by
        side with this unit reads it for its layer)."""
        key = ("vanilla", self.name, task_id, seed, mode)
        if key not in self.shared:
            task = self.family.single(task_id) if self.family.n_tasks else self.family
            tv, result = vanilla_task_vector(self.model, task, mode=mode, n_shots=self.n_shots, seed=seed,
                                             progress=False)
            self.shared[key] = tv, result.sweep.best_layer
        return self.shared[key]

    def function(self, layer: int) -> TaskVector:
        """The function vector (Todd et al.; heads from the ``train`` split) at ``layer``."""
        return self.memo(("fv", layer), lambda: function_vector(
            self.model, self.task, layer, top_k=default_top_k(self.model), n_shots=self.n_shots, seed=self.seed,
            progress=False)[0])

    def learned(self, layer: int | str, positions: Any = "last", base: str = "zero_shot") -> TaskVector:
        """The LTV at ``layer`` (trained on the ``train`` split, early-stopped on ``dev``); ``layer="vanilla"``: at
        the vanilla TV's layer (learned side by side with the model's other units, each at its own)."""
        if layer == "vanilla":
            at = self.vanilla()[1]
            return self._learn_layers([at], positions, base, at_vanilla=True)[at][0]
        return self._learn_layers([layer], positions, base)[layer][0]

    def _learn_layers(self, layers: list[int], positions: Any = "last", base: str = "zero_shot",
                      at_vanilla: bool = False) -> dict[int, tuple[TaskVector, Any]]:
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
                             options: dict[str, Any]) -> dict[int, tuple[TaskVector, Any]]:
        """This unit's LTVs of ``request`` (its layers, or ``"vanilla"``), learned side by side with those of the
        model's other units (every task and seed of the ledger) that do not have them yet, each unit at
        ``layers_of(task_id, seed)`` (:func:`~tvlens.vectors.learn_task_vectors_many`, as many units at a time as
        keep the prefix caches under :data:`SIDE_BY_SIDE_BYTES`); each equals the unit's own
        ``learn_task_vectors`` call to float tolerance."""
        def key(task_id: int, seed: int) -> tuple[Any, ...]:  # a family without discrete tasks: one task for all
            return ("ltv", self.name, task_id if self.family.n_tasks else 0, seed, request,
                    repr(options["positions"]), options["base"])

        mine = key(self.task_id, self.seed)
        if mine not in self.shared:
            units = dict.fromkeys((t if self.family.n_tasks else 0, s) for t in
                                  range(self.subject.n_tasks(self.config.n_tasks)) for s in self.config.seeds)
            todo = [(t, s) for t, s in units if key(t, s) not in self.shared]
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
                    self.shared[key(t, s)] = made
        return self.shared[mine]

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


@dataclass(frozen=True)
class Gate:
    """A test a model must pass for a claim to be decided on it: a negative needs a site where it could show.

    Attributes:
        name: its key in :data:`GATES`.
        value: ``Unit → float``, averaged over a row's units.
        threshold: the row is decided when the mean value is at least this.
        why: the reason a failing row gives, formatted with the mean value (``{value}``).
    """

    name: str
    value: Callable[[Unit], float]
    threshold: float
    why: str


def _position_free(u: Unit) -> float:
    """1 when patching a state from another prompt keeps the target's positions (no learned absolute position
    embedding: rotary or none), 0 when the state carries its own position (learned absolute positions)."""
    return 0.0 if u.model.capabilities.learned_positions else 1.0


#: What ``not testable here`` means, in the words of the table's caption and the report.
NOT_TESTABLE_MEANS = (f"a negative could not show on their model (a mechanism claim whose learned vector recovers "
                      f"less than {GATE:.0%} of ICL's gain on held-out queries at its site, or a replace-mode reading "
                      "on learned absolute positions; the row says which)")

#: The gates a claim can name (:attr:`Claim.gate`).
GATES: dict[str, Gate] = {g.name: g for g in [
    Gate("site", Unit.site_gate, GATE, "gate {value:.2f}: the learned vector at its site recovers {value:.0%} of "
         f"ICL's gain on held-out queries, below the {GATE:.0%} a task vector needs there"),
    Gate("positions", _position_free, 1.0, "the model has learned absolute positions: the ICL prompt's state put in "
         "place of the query's carries its own position embedding, so the comparison with zero-shot is confounded "
         "(position-matched replacement is not built yet)"),
]}


@dataclass(frozen=True)
class Claim:
    """One paper claim and how the ledger measures it.

    Attributes:
        name: its key in :data:`CLAIMS`.
        statement: the claim, as the paper makes it.
        paper: who makes it.
        effect: what is measured per task and seed (positive beyond ``margin`` when the claim holds).
        margin: the effect the claim needs (``0``: "better than").
        models: the zoo models it is measured on; for a contrast, the hardest first.
        measure: ``Unit → (effect, control)`` (for a contrast: that unit's model's value and control).
        control: what the control is.
        control_rule: ``"subtract"``, ``"must_fail"`` or ``"shown"`` (see the module docstring).
        contrast: one row per easier model ``m``: the effect is ``mean(models[0]) − mean(m)`` over the two
            models' task means.
        replicated: ``models`` are independently trained replicates of one recipe (each measured against its
            paired partner by ``measure``): one row, its interval over the models (each model's mean over
            tasks × seeds); ``label`` names the row.
        partners: zoo models ``measure`` reads besides ``models`` (a replicate's partner).
        needs: what the model it is measured on must offer (a key of :data:`~tvlens.studies.subjects.NEEDS`): a
            ledger on a researcher's models measures the claim on each model that offers it and gives the others
            a ``not applicable`` row that says why.
        cost: the time one unit's measurement takes relative to a typical claim's (measured on the zoo, one
            thread): an executor starts the models with the most work first, so the last to finish are short.
            It orders the work and changes no number.
        gate: the test (a key of :data:`GATES`) a model must pass for the claim to be decided on it: ``"site"`` for
            a mechanism claim about a task vector (its heads, its OV image, its propagation, how it compares: the
            learned vector at its site must carry the task to held-out queries), ``"positions"`` for a claim read
            in replace mode (the patched state must not carry another position's embedding). Where the gate fails
            the row reads ``not testable here`` and says why; ``None``: always decided.
    """

    name: str
    statement: str
    paper: str
    effect: str
    margin: float
    models: tuple[str, ...]
    measure: Callable[[Unit], tuple[float, float]]
    control: str
    control_rule: str = "must_fail"
    contrast: bool = False
    replicated: bool = False
    label: str = ""
    partners: tuple[str, ...] = ()
    needs: str = "labels"
    cost: float = 1.0
    gate: str | None = None

    @property
    def zoo_models(self) -> tuple[str, ...]:
        """Every zoo model the claim reads."""
        return (*self.models, *self.partners)

    def __post_init__(self) -> None:
        if self.control_rule not in ("subtract", "must_fail", "shown"):
            raise ValueError(f"Claim.control_rule={self.control_rule!r}: expected 'subtract', 'must_fail' or 'shown'")
        if self.needs not in NEEDS:
            raise ValueError(f"Claim {self.name!r}: needs={self.needs!r}; expected one of {list(NEEDS)}")
        if not 0 < self.cost < math.inf:
            raise ValueError(f"Claim {self.name!r}: cost={self.cost!r}; expected a positive finite number")
        if (self.contrast or self.replicated) == (self.needs in OFFERS):
            raise ValueError(f"Claim {self.name!r}: a claim over several trained models needs one of "
                             f"{[n for n in NEEDS if n not in OFFERS]}, a claim on one model one of {list(OFFERS)}")
        if self.gate is not None and self.gate not in GATES:
            raise ValueError(f"Claim {self.name!r}: gate={self.gate!r}; expected one of {list(GATES)} or None")
        if self.gate is not None and self.needs != "labels":
            raise ValueError(f"Claim {self.name!r}: a gate needs needs='labels' (gates read accuracies of one model)")
        if self.contrast and self.replicated:
            raise ValueError(f"Claim {self.name!r}: contrast and replicated are exclusive (one row per pair of "
                             "models, or one row over replicates)")


def _ltv_vs_vtv(u: Unit) -> tuple[float, float]:
    tv, layer = u.vanilla()
    ltv, vanilla = u.learned(layer), u.score("injected", tv)
    return u.score("injected", ltv) - vanilla, u.score("injected", u.random_like(ltv)) - vanilla


def _ltv_vs_icl(u: Unit) -> tuple[float, float]:
    ltv, icl = u.learned(u.learned_layer()), u.score("icl")
    return u.score("injected", ltv) - icl, u.score("injected", u.random_like(ltv)) - icl


def _vtv_vs_zero(u: Unit) -> tuple[float, float]:
    tv, zero = u.vanilla()[0], u.score("zero_shot")
    return u.score("injected", tv) - zero, u.score("injected", u.random_like(tv)) - zero


def _most_of_icl(u: Unit, tv: TaskVector) -> tuple[float, float]:
    """Accuracy gained over zero-shot by ``tv`` minus half of ICL's gain (> 0: most of ICL's gain), and the same
    for a random vector of ``tv``'s norm."""
    zero, icl = u.score("zero_shot"), u.score("icl")
    half = 0.5 * (icl - zero)
    return u.score("injected", tv) - zero - half, u.score("injected", u.random_like(tv)) - zero - half


def _early(u: Unit) -> tuple[float, float]:
    return _most_of_icl(u, u.learned(1, positions=1))


def _hendel(u: Unit) -> tuple[float, float]:
    return _most_of_icl(u, u.vanilla(mode="replace")[0])


def _fv_vs_zero(u: Unit) -> tuple[float, float]:
    fv, zero = u.function(u.vanilla()[1]), u.score("zero_shot")
    return u.score("injected", fv) - zero, u.score("injected", u.random_like(fv)) - zero


def _ltv_vs_fv(u: Unit) -> tuple[float, float]:
    layer = u.vanilla()[1]
    ltv, fv = u.learned(layer), u.score("injected", u.function(layer))
    return u.score("injected", ltv) - fv, u.score("injected", u.random_like(ltv)) - fv


def _ltv_on_icl(u: Unit) -> tuple[float, float]:
    """An LTV trained on short ICL prompts, added to them: its gain over those prompts alone."""
    few = u.memo("few", lambda: u.splits.sample(u.task, "test", u.config.n_prompts, FEW_SHOTS))
    ltv, icl = u.learned("vanilla", base="icl"), u.score("icl", batch=few)
    return (u.score("injected", ltv, batch=few, base="icl") - icl,
            u.score("injected", u.random_like(ltv), batch=few, base="icl") - icl)


def _key_heads(u: Unit) -> tuple[float, float]:
    layer = u.vanilla()[1]
    s = key_head_analysis(u.model, u.task, u.learned(layer), n_prompts=u.config.n_prompts, n_shots=u.n_shots,
                          seed=u.seed).summary()
    return s["random_ablated"] - s["key_ablated"], s["injected"] - s["random_ablated"]


def _theta_ov(u: Unit) -> tuple[float, float]:
    """θ_OV in θ's place: accuracy gained over zero-shot minus half of θ's own gain (> 0: most of θ's effect);
    the control puts a random vector of ‖θ_OV‖ there instead."""
    ltv = u.learned(u.vanilla()[1])
    ov = ov_decomposition(u.model, u.task, ltv, batch=u.test)
    s = ov.summary()
    half = 0.5 * (s["vector"] - s["zero_shot"])
    (site,) = ltv.sites
    stand_in = TaskVector({site: ov.theta_ov.to(ltv.vectors[site].dtype)}, mode=ltv.mode, scale=ltv.scale)
    return s["theta_ov"] - s["zero_shot"] - half, u.score("injected", u.random_like(stand_in)) - s["zero_shot"] - half


def _map_row(maps: Any, layer: int) -> dict[str, Any]:
    return maps.to_records()[maps.layers.index(layer)]


def _linear_r2(u: Unit) -> tuple[float, float]:
    layer = u.vanilla()[1]
    return _map_row(u.maps(), layer)["r2"], _map_row(u.maps(control=True), layer)["r2"]


def _through_origin(u: Unit) -> tuple[float, float]:
    """R² of the linear map minus R² of the affine map ``W θ + b`` (same rows): ≈ 0 when the change is linear in θ,
    not only linear around it."""
    layer = u.vanilla()[1]
    rows = [_map_row(u.maps(control), layer) for control in (False, True)]
    return rows[0]["r2"] - rows[0]["r2_affine"], rows[1]["r2"] - rows[1]["r2_affine"]


def _rotation(u: Unit) -> tuple[float, float]:
    return u.maps().trend("cos_rotation"), u.maps(control=True).trend("cos_rotation")


def _toward_labels(u: Unit) -> tuple[float, float]:
    """The answer-margin gain of the direct map of a vector injected at layer 0 (> 0: rotated toward the labels)."""
    return _map_row(u.maps(), 0)["margin_gain"], _map_row(u.maps(control=True), 0)["margin_gain"]


def _tvp_profile(u: Unit, name: str, source: str = "prompt") -> Any:
    """Model ``name``'s TVP profile read from ``source`` on this unit's test prompts (both readings are made in
    one pass, :func:`~tvlens.studies.formation.tvp_profiles`, and kept for the model's unit)."""
    def make() -> dict[str, Any]:
        other = Unit(name, u.task_id, u.seed, u.config, u.shared)
        return tvp_profiles(other.model, other.task, n_prompts=u.config.n_prompts, n_shots=other.n_shots,
                            seed=u.seed, split="test", sources=STUDY_SOURCES)
    return u.memo_shared(("tvp", name, u.task_id), make)[source]


#: The TVP-loss arms: each model trained with the TVP-loss → its step-matched partner trained without.
_ARMS = dict(arm_names(i) for i in range(ARM_REPLICATES))


def _tvp_loss(u: Unit) -> tuple[float, float]:
    """TVP at the pinned layer (read from another query's prompt) of this TVP-loss arm model minus its plain
    partner's; the control is the same difference with the answer-carrying same-prompt reading."""
    with_loss, without = _tvp_profile(u, u.name, "other_query"), _tvp_profile(u, _ARMS[u.name], "other_query")
    same = _tvp_profile(u, u.name), _tvp_profile(u, _ARMS[u.name])
    return (float(with_loss.tvp[PERM_TVP_LAYER] - without.tvp[PERM_TVP_LAYER]),
            float(same[0].tvp[PERM_TVP_LAYER] - same[1].tvp[PERM_TVP_LAYER]))


def _tvp_keeps_icl(u: Unit) -> tuple[float, float]:
    """ICL accuracy of this TVP-loss arm model minus its plain partner's on the same prompts; the control is
    zero-shot's difference."""
    a, b = _tvp_profile(u, u.name), _tvp_profile(u, _ARMS[u.name])
    return float(a.icl - b.icl), float(a.zero_shot - b.zero_shot)


def _tv_layer(u: Unit) -> tuple[float, float]:
    """Where the vector forms: the first layer whose TVP mode (read from the same demonstrations with another
    query) reaches half of ICL's gain (``n_layers`` if none); the control reads each prompt's own state."""
    profiles = _tvp_profile(u, u.name, "other_query"), _tvp_profile(u, u.name, "prompt")
    answer_free, own = (float(u.model.n_layers if layer is None else layer)
                        for layer in (p.formation_layer() for p in profiles))
    return answer_free, own


def _head_weighted(u: Unit) -> tuple[float, float]:
    """``1 − error(head-weighted LTV) / error(FV)`` on this unit's group of test prompts, both reading their heads
    from another prompt of the same function (its last demonstration as the query: never the scored query, so
    the vectors cannot carry ICL's own answer); the control is ``1 − error(zero-shot) / error(FV)``."""
    config, shots = u.config, u.n_shots
    made = u.memo_shared("regression_vectors", lambda: fidelity_vectors(
        u.model, u.family, ("function", "head_weighted"), train_shots=shots, n_prompts=config.n_prompts, seed=u.seed,
        progress=False))
    every = u.memo_shared("regression_test", lambda: u.splits.sample(u.family, "test",
                                                                     config.n_prompts * config.n_tasks, shots))
    group = every.select(slice(u.task_id * config.n_prompts, (u.task_id + 1) * config.n_prompts))
    errors = {m: result.mean for m, result in
              fidelity_scores(u.model, u.family, group, ("function", "head_weighted", "zero_shot"), made).items()}
    return 1 - errors["head_weighted"] / errors["function"], 1 - errors["zero_shot"] / errors["function"]


_SYMBOLIC = ("perm-mix", "perm-mix-32", "token-offset")
_REGRESSION = ("linear-regression", "sparse-linear-regression", "sinusoid-regression")
_RANDOM = "a random vector of the same norm at the same site"
_ARM_LABEL = f"perm-mix-tvp-arm-s0…s{ARM_REPLICATES - 1} vs perm-mix-arm-s0…s{ARM_REPLICATES - 1}"

#: Every claim the ledger measures, in the order of its table.
CLAIMS: dict[str, Claim] = {c.name: c for c in [
    Claim("ltv_beats_vanilla", "A learned task vector beats the vanilla (extracted) task vector",
          "Yang et al. 2025a", "accuracy of the LTV minus the vanilla TV's, held-out zero-shot queries, at the vanilla "
          "TV's layer (chosen on dev prompts)", 0.0, _SYMBOLIC, _ltv_vs_vtv, f"{_RANDOM} (of the LTV's norm)",
          gate="site"),
    Claim("ltv_near_icl", "A learned task vector in the zero-shot query comes within a few points of ICL",
          "Yang et al. 2025a", "accuracy of the LTV (zero-shot query; its layer chosen on dev prompts) minus 16-shot "
          "ICL accuracy on the same held-out prompts", -0.05, _SYMBOLIC, _ltv_vs_icl, f"{_RANDOM} (of the LTV's norm)"),
    Claim("ltv_beats_fv", "A learned task vector beats the function vector", "Yang et al. 2025a",
          "accuracy of the LTV minus the FV's (Todd et al.'s heads, 10 % of the heads), at the vanilla TV's layer",
          0.0, _SYMBOLIC, _ltv_vs_fv, f"{_RANDOM} (of the LTV's norm)", gate="site"),
    Claim("vanilla_beats_zero_shot", "The vanilla task vector beats the zero-shot query",
          "Hendel et al. 2023", "accuracy of the vanilla TV minus zero-shot accuracy", 0.0, _SYMBOLIC, _vtv_vs_zero,
          f"{_RANDOM} (of the vanilla TV's norm)"),
    Claim("hendel_most_of_icl", "The task vector, patched in place of the query's state, recovers most of ICL",
          "Hendel et al. 2023", "accuracy gained over zero-shot by the vanilla TV in replace mode minus half of ICL's "
          "gain", 0.0, _SYMBOLIC, _hendel, f"{_RANDOM} (of the TV's norm), replacing the state", gate="positions"),
    Claim("fv_beats_zero_shot", "The function vector added to the zero-shot query beats it", "Todd et al. 2024",
          "accuracy of the FV (at the vanilla TV's layer) minus zero-shot accuracy", 0.0, _SYMBOLIC, _fv_vs_zero,
          f"{_RANDOM} (of the FV's norm)"),
    Claim("ltv_early_position", "A learned vector works at an early position (the query token)",
          "Yang et al. 2025a", "accuracy gained over zero-shot by an LTV at layer 1, position 1, minus half of ICL's "
          "gain (> 0: most of ICL's gain)", 0.0, _SYMBOLIC, _early, f"{_RANDOM} (of the LTV's norm)", gate="site"),
    Claim("ltv_on_icl_prompts", "A learned vector added to short ICL prompts improves them", "Yang et al. 2025a",
          f"accuracy of {FEW_SHOTS}-shot prompts with an LTV trained on such prompts added minus without",
          0.0, _SYMBOLIC, _ltv_on_icl, f"{_RANDOM} (of the LTV's norm) added to the same prompts"),
    Claim("key_heads", "Ablating a few key heads hurts the injected vector far more than ablating random heads",
          "Yang et al. 2025a", "accuracy with as many random non-key heads ablated minus with the key heads ablated "
          "(10 % of the heads, chosen on dev prompts, scored on held-out prompts)", 0.05, _SYMBOLIC, _key_heads,
          "the accuracy the random heads' ablation itself costs", control_rule="shown", gate="site"),
    Claim("theta_ov", "θ_OV = Σ θ W_V W_O re-injected in place of θ recovers most of its effect",
          "Yang et al. 2025a", "accuracy gained over zero-shot by θ_OV in θ's place minus half of θ's own gain",
          0.0, _SYMBOLIC, _theta_ov, f"{_RANDOM} (of θ_OV's norm)", gate="site"),
    Claim("linear_propagation", "An injected vector propagates almost linearly to the final stream",
          "Yang et al. 2025a", "R² of the per-prompt linear map from the LTV's layer to the final stream, on "
          "perturbations of 25–100 % of ‖θ‖ that neither fitted the map nor chose its ridge penalty",
          0.9, _SYMBOLIC, _linear_r2, "the same map's R² for a random vector of the LTV's norm", gate="site"),
    Claim("linear_through_origin", "The propagation is linear in θ, not only linear around it", "Yang et al. 2025a",
          "R² of the linear map through the origin minus R² of an affine map W θ + b, on the same held-out "
          "perturbations of the LTV (> −0.02: the offset a local linearisation needs is not needed)", -0.02,
          _SYMBOLIC, _through_origin, "the same difference for a random vector of the LTV's norm", gate="site"),
    Claim("rotation_then_scaling", "Vectors injected early are rotated, vectors injected late mostly scaled",
          "Yang et al. 2025a", "rise of cos(θ, Qθ) of the direct map from an LTV injected at layer 0 to one at the "
          "last layer, minus the same rise for random vectors of the same norms", 0.0, _SYMBOLIC, _rotation,
          "random vectors of the LTVs' norms through the same maps (a late map crosses fewer blocks)",
          control_rule="subtract", gate="site"),
    Claim("rotation_toward_labels", "Early vectors are rotated toward the labels", "Yang et al. 2025a",
          "answer-margin gain from θ to Qθ of the direct map of an LTV injected at layer 0, minus a random vector's",
          0.0, _SYMBOLIC, _toward_labels, "a random vector of the LTV's norm through the same map",
          control_rule="subtract", gate="site"),
    Claim("head_weighted_beats_fv", "The head-weighted learned vector carries regression functions far better "
          "than the function vector", "Saglam et al. 2025", "1 − error(head-weighted LTV) / error(FV), both "
          "reading their heads from another prompt of the same function (its last demonstration as the query), "
          "unshifted prompts of the training length (groups of fresh functions)", 0.5, _REGRESSION, _head_weighted,
          "1 − error(zero-shot) / error(FV)", control_rule="shown", needs="regression", cost=3.0),
    Claim("tvp_loss", "Training with the TVP-loss raises TVP-mode accuracy at its layer",
          "Yang et al. 2025b", f"TVP-mode accuracy at layer {PERM_TVP_LAYER} (state read from the same demonstrations "
          f"with another query) of a model trained with the TVP-loss minus its step-matched partner trained without "
          f"(same initial weights and prompts; interval over {ARM_REPLICATES} pairs)", 0.0, tuple(_ARMS), _tvp_loss,
          "the same difference with each prompt's own (answer-carrying) state", control_rule="shown",
          replicated=True, label=_ARM_LABEL, partners=tuple(_ARMS.values()), needs="tvp_arms"),
    Claim("tvp_loss_keeps_icl", "Training with the TVP-loss keeps ICL accuracy", "Yang et al. 2025b",
          f"ICL accuracy of a model trained with the TVP-loss minus its step-matched partner's, on the same prompts "
          f"(interval over {ARM_REPLICATES} pairs)", -0.02, tuple(_ARMS), _tvp_keeps_icl,
          "the same difference in zero-shot accuracy", control_rule="shown", replicated=True, label=_ARM_LABEL,
          partners=tuple(_ARMS.values()), needs="tvp_arms"),
    Claim("depth_vs_complexity", "The task vector forms deeper for more complex tasks",
          "Yang et al. 2025b", "formation layer (first layer whose TVP mode, read from another query's prompt, reaches "
          "half of ICL's gain) of the 32-permutation mixture minus the 8- (or 2-) permutation mixture's", 0.0,
          ("perm-mix-32", "perm-mix", "perm-mix-2"), _tv_layer,
          "the same contrast read from each prompt's own state", control_rule="shown", contrast=True,
          needs="complexity_series", cost=0.5),
]}


@dataclass(frozen=True, eq=False)
class LedgerRow:
    """One claim on one model (or one contrast of two): the effect's interval, its control and the verdict.

    Attributes:
        mean, low, high: the effect (``control_rule="subtract"``: effect − control) and its Holm-adjusted
            interval.
        control: the control's mean (over task means).
        level: the row's Holm test level (its interval is at ``1 − level``).
        p_value: two-sided p-value of "effect = margin".
        verdict: ``holds``, ``does not hold``, ``inconclusive`` or ``not applicable``; ``reason`` says why it is
            inconclusive, or what the model lacks (a row not measured has NaN numbers and no values).
        unconverged: learned vectors behind the row whose ``dev`` loss was still improving at the budget.
        n_models: trained models the interval is over (a replicated training claim), else 1.
        values: per model ``[tasks, seeds]`` effects; ``controls``: the controls alike.
        gate: the mean of the claim's gate (:attr:`Claim.gate`) over the row's units (``not testable here`` below
            its threshold); NaN for a claim without a gate.
    """

    claim: str
    statement: str
    paper: str
    model: str
    effect: str
    margin: float
    mean: float
    low: float
    high: float
    control: float
    verdict: str
    reason: str
    level: float
    p_value: float
    n_tasks: int
    n_seeds: int
    unconverged: int
    values: dict[str, Float[Tensor, "tasks seeds"]] = field(repr=False)
    controls: dict[str, Float[Tensor, "tasks seeds"]] = field(repr=False)
    n_models: int = 1
    gate: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """The row without its per-unit values."""
        return {k: getattr(self, k) for k in ("claim", "statement", "paper", "model", "effect", "margin", "mean",
                                              "low", "high", "control", "verdict", "reason", "level", "p_value",
                                              "n_tasks", "n_seeds", "n_models", "unconverged", "gate")}

    @property
    def sample(self) -> str:
        """What the interval is over: ``tasks × seeds`` (``models × tasks × seeds`` for a training claim)."""
        models = f"{self.n_models} models × " if self.n_models > 1 else ""
        return f"{models}{self.n_tasks} × {self.n_seeds}"


@dataclass(frozen=True, eq=False)
class ClaimsLedger(Records):
    """Every measured claim: one :class:`LedgerRow` per claim and model, in :data:`CLAIMS` order."""

    rows: list[LedgerRow]
    config: LedgerConfig
    #: the models that failed (row label → the error, one line): their rows read ``not measured``
    errors: dict[str, str] = field(default_factory=dict)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat row per claim and model."""
        return [row.to_dict() for row in self.rows]

    def row(self, claim: str, model: str | None = None) -> LedgerRow:
        """The row of ``claim`` (on ``model``, where the claim is measured on several)."""
        found = [r for r in self.rows if r.claim == claim and (model is None or r.model == model)]
        if len(found) != 1:
            raise KeyError(f"claim={claim!r}, model={model!r}: {len(found)} rows match; rows are "
                           f"{[(r.claim, r.model) for r in self.rows]}")
        return found[0]

    def caption(self) -> str:
        """How to read the table: the intervals' adjustment and what a verdict means."""
        measured = [r for r in self.rows if r.verdict not in (*UNMEASURED, NOT_TESTABLE)]
        skipped = sum(r.verdict == NOT_APPLICABLE for r in self.rows)
        na = (f" {skipped} rows are not applicable: the model lacks what the claim needs (the row says what)."
              if skipped else "")
        untested = sum(r.verdict == NOT_TESTABLE for r in self.rows)
        if untested:
            na += (f" {untested} rows are {NOT_TESTABLE}: {NOT_TESTABLE_MEANS}. Their unadjusted interval is shown, "
                   "outside the Holm family.")
        if self.errors:
            na += (f" {len(self.errors)} model(s) failed ({', '.join(self.errors)}): their rows are not measured "
                   "(the row gives the error).")
        return (f"Effects on held-out queries over tasks × seeds (seeds averaged within a task); intervals are "
                f"Student-t (Welch for contrasts), Holm-adjusted over the {len(measured)} measured rows for a "
                f"family-wise error rate of {self.config.alpha:g} (each row's interval at its own Holm level). A claim "
                "holds when its interval clears the margin and its control does not; a row whose learned vectors did "
                f"not converge says so.{na}")

    def to_markdown(self) -> str:
        """The ledger as a markdown table, its caption first."""
        lines = [self.caption(), "",
                 "| claim | paper | model | effect: mean [adjusted interval] | control | needs | "
                 "(models ×) tasks × seeds | verdict |", "|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            why = f" ({r.reason})" if r.reason else ""
            if r.verdict in UNMEASURED:
                lines.append(f"| {r.statement} | {r.paper} | {r.model} | — | — | > {r.margin:g} | — | "
                             f"**{r.verdict}**{why} |")
                continue
            note = f"; {r.unconverged} vectors not converged" if r.unconverged else ""
            if CLAIMS[r.claim].gate == "site" and r.verdict != NOT_TESTABLE:  # a gated row says its site passed
                note += f"; gate {r.gate:.2f}"
            lines.append(f"| {r.statement} | {r.paper} | {r.model} | {r.mean:+.3f} [{r.low:+.3f}, {r.high:+.3f}] | "
                         f"{r.control:+.3f} | > {r.margin:g} | {r.sample} | "
                         f"**{r.verdict}**{why}{note} |")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Job:
    """One model's units (task × seed each) and the claims they measure: all an executor's worker needs
    (picklable). A model's units run together so that their vectors are learned side by side, as in-process."""

    subject: Subject
    units: tuple[tuple[int, int], ...]
    config: LedgerConfig
    claims: tuple[str, ...]


class ModelsFailed(RuntimeError):
    """Every model of a ledger failed: nothing was measured (the message names the first and its error)."""


#: The fewest distinct answers (first answer tokens) a task's test prompts may have for its rows to be decided:
#: below it a constant prediction scores on many prompts (a byte-level tokenizer whose every answer starts with
#: " ", antonyms with two answers) and an accuracy difference says nothing about task vectors.
MIN_DISTINCT_ANSWERS = 3


def _distinct_answers(unit: Unit) -> int | None:
    """How many distinct answers the unit's test prompts have (``None`` for real-valued targets)."""
    if unit.subject.offers != "labels":
        return None
    return int(unit.test.targets.unique().numel())


@dataclass(frozen=True)
class _Measured:
    """One unit's measurements: ``(effect, control, unconverged)`` per claim of its job, and how many distinct
    answers its test prompts have (``None``: real-valued)."""

    claims: list[tuple[float, float, int]]
    distinct: int | None = None
    #: per claim, its gate's value (:attr:`Claim.gate`), else ``None``
    gates: list[float | None] | None = None


def _measure(job: _Job, shared: dict[Any, Any] | None = None, done: Callable[[int], Any] | None = None
             ) -> list[_Measured]:
    """Per unit of ``job`` (in its order), ``(effect, control, unconverged)`` of each of ``job.claims``. ``shared``:
    the in-process ledger's dict (its models loaded once for the whole ledger); a worker's job makes its own, which
    holds the job's model (and any partner model) and the vectors its units share, and is dropped with it. Either
    way the units of the model learn their vectors side by side (they all run here and read them from it).
    ``done(n)`` is told after each unit how many measurements it made."""
    shared = {} if shared is None else shared
    out = []
    for task_id, seed in job.units:
        unit = Unit(job.subject, task_id, seed, job.config, shared, together=True)
        measured, gates = [], []
        for name in job.claims:
            unit.touched.clear()
            effect, control = (float(x) for x in CLAIMS[name].measure(unit))
            if not (math.isfinite(effect) and math.isfinite(control)):
                raise ValueError(f"claim {name!r} on {unit}: the effect is {effect} and the control {control}; "
                                 "expected finite numbers")
            measured.append((effect, control, unit.unconverged()))
            gate = CLAIMS[name].gate
            gates.append(None if gate is None else float(GATES[gate].value(unit)))
        out.append(_Measured(measured, _distinct_answers(unit), gates))
        if done is not None:
            done(len(measured))
    return out


def _one_line(error: BaseException) -> str:
    """An error as one line: its text (whitespace runs joined), or its type when it has none."""
    if isinstance(error, BrokenProcessPool):
        return "its worker process died (killed, or out of memory)"
    text = " ".join(str(error.args[0] if isinstance(error, KeyError) and error.args else error).split())
    return text or type(error).__name__


def _run_jobs(jobs: list[_Job], executor: Executor | None, update: Callable[[int], Any]
              ) -> tuple[dict[int, list[_Measured]], dict[int, str]]:
    """Run ``jobs`` (in this process, or on ``executor`` with the most work first): the results of the jobs that
    finished, and a one-line error for each that failed. A failure is warned about at once, naming the model; the
    other models go on. What was submitted is cancelled when this is left by an exception (Ctrl-C)."""
    results: dict[int, list[_Measured]] = {}
    failed: dict[int, str] = {}

    def fail(i: int, error: BaseException) -> None:
        failed[i] = _one_line(error)
        warnings.warn(f"model {jobs[i].subject.name!r} failed: {failed[i]}; its rows read '{NOT_MEASURED}', the "
                      "other models go on", RuntimeWarning, stacklevel=3)

    if executor is None:
        shared: dict[Any, Any] = {}
        for i, job in enumerate(jobs):
            try:
                results[i] = _measure(job, shared, update)
            except Exception as error:  # noqa: BLE001 - reported in the table; Ctrl-C still stops the run
                fail(i, error)
        return results, failed
    # the models with the most work first (Claim.cost), so that the last to finish are short
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].units) * sum(CLAIMS[c].cost for c in jobs[i].claims))
    futures: dict[Future, int] = {}
    try:
        for i in order:
            futures[executor.submit(_measure, jobs[i])] = i
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as error:  # noqa: BLE001 - as above
                fail(i, error)
            update(len(jobs[i].units) * len(jobs[i].claims))
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return results, failed


def _plan(claims: list[Claim], models: Sequence[Any] | None, tasks: Any, template: str, dtype: str
          ) -> tuple[dict[str, Subject], dict[str, tuple[str, ...]], list[tuple[Claim, str, str]]]:
    """The subjects (by row label), the labels each claim is measured on, and the (claim, label, reason) of each
    claim that does not apply to a given model. Without ``models``: every claim on its zoo models."""
    if models is None:
        if tasks is not None:
            raise ValueError("tasks: the zoo ledger measures each zoo model on its own family; pass models to "
                             "measure word-pair tasks on your model")
        labels = list(dict.fromkeys(m for c in claims for m in c.models))
        return {m: as_subject(m) for m in labels}, {c.name: c.models for c in claims}, []
    if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence):
        models = [models]
    if not models:
        raise ValueError("models=[]: expected at least one model (None measures every claim on the zoo)")
    subjects: dict[str, Subject] = {}
    for i, m in enumerate(models):
        s = m if isinstance(m, Subject) else as_subject(
            m, tasks, template=template, name=f"model {i}" if isinstance(m, HookedModel) else None, dtype=dtype,
            argument=f"models[{i}]")
        if s.name in subjects:
            raise ValueError(f"models[{i}]={s.name!r}: given twice; expected each model once")
        subjects[s.name] = s
    on: dict[str, tuple[str, ...]] = {}
    skipped: list[tuple[Claim, str, str]] = []
    for c in claims:
        on[c.name] = tuple(label for label, s in subjects.items() if s.offers == c.needs)
        for label, s in subjects.items():
            if s.offers != c.needs:
                has = "" if c.needs not in OFFERS else f"; this model is measured on {OFFERS[s.offers]}"
                skipped.append((c, label, f"needs {NEEDS[c.needs]}{has}"))
    return subjects, on, skipped


def claims_ledger(config: LedgerConfig | None = None, progress: bool = True, *, models: Sequence[Any] | None = None,
                  tasks: Any = None, template: str = "arrow", dtype: str = "float32",
                  executor: Executor | None = None) -> ClaimsLedger:
    """Measure every claim of :data:`CLAIMS` (or ``config.claims``) on the zoo, or on your models.

    Args:
        config: how to measure (:class:`LedgerConfig`).
        progress: a progress bar over the units.
        models: ``None`` (each claim on its zoo models), or the models to ask: zoo names, Hugging Face model
            directories, tvlens ``.safetensors`` files, loaded :class:`~tvlens.models.HookedModel` objects (labelled
            ``model i``) or subjects (:func:`~tvlens.studies.subjects.subject`:
            each with its own tasks and label). Each claim is measured on every model that offers what it
            needs; the others get a ``not applicable`` row saying why.
        tasks: what the non-zoo models are measured on: word-pair tasks (built-in names, ``.csv`` files,
            :class:`~tvlens.tasks.WordPairs`; one task per dataset) or a :class:`~tvlens.tasks.Task` family.
        template: the word-pair prompt template (``"arrow"``, ``"hendel"``, ``"todd"``, ``"qa"`` or a string).
        dtype: what Hugging Face directories are loaded in (``"float32"``, ``"bfloat16"``, ``"float16"``,
            ``"float64"``).
        executor: a :class:`concurrent.futures.Executor` to run the models on — a ``ProcessPoolExecutor``,
            ``dask.distributed.Client(...).get_executor()``, a Ray wrapper (``docs/real-models.md``). ``None``: one
            model after the other in this process. A worker runs all the units (task × seed) of one model, so that
            their vectors are learned side by side as in-process, and loads the model once; the table is the same
            either way. Loaded models cannot be sent to workers (pass their directories).

    Units run model by model, so the vectors a unit learns (its vanilla TV, its LTVs) serve every claim that
    needs them.

    A model that fails (an error in its units, a worker that died) is warned about at once, naming it; the
    other models go on, and its rows read ``not measured`` with the error (:attr:`ClaimsLedger.errors`). A row
    over a task whose test prompts have fewer than :data:`MIN_DISTINCT_ANSWERS` distinct answers reads
    ``inconclusive`` (degenerate targets), whatever its interval.

    Raises:
        ModelsFailed: every model failed (a ``RuntimeError``; one line: the first model and its error; a unit's
            effect or control that is not a finite number names the claim and unit).
        ValueError: bad ``models`` / ``tasks``, or a ``ThreadPoolExecutor`` (one line, before any work).
    """
    config = config or LedgerConfig()
    names = config.claims or tuple(CLAIMS)
    claims = [CLAIMS[n] for n in names]
    subjects, on, skipped = _plan(claims, models, tasks, template, dtype)
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor: expected a concurrent.futures.Executor (or None), got {type(executor).__name__}")
    for s in subjects.values():  # word-pair tasks large enough for the prompts, before any model loads
        if s.words is not None:
            check_enough_pairs(s.words, config.n_shots or TextTasks.default_n_shots, "tasks")
    if isinstance(executor, ThreadPoolExecutor):
        raise ValueError("executor: a ThreadPoolExecutor runs the models in this process's threads, which share "
                         "torch's state (loading one model can break another); expected a ProcessPoolExecutor "
                         "(tvlens._parallel.process_pool) or None")
    if executor is not None:
        loaded = [label for label, s in subjects.items() if not s.picklable]
        if loaded:
            raise ValueError(f"models: {loaded} are loaded models, which an executor's workers cannot load; pass "
                             "their directories (or run without executor)")
    jobs = [_Job(s, tuple((t, seed) for t in range(s.n_tasks(config.n_tasks)) for seed in config.seeds), config,
                 tuple(c.name for c in claims if label in on[c.name]))
            for label, s in subjects.items() if any(label in on[c.name] for c in claims)]
    total = sum(len(job.units) * len(job.claims) for job in jobs)
    with progress_bar(total=total, desc="claims ledger", progress=progress) as bar:
        results, failed = _run_jobs(jobs, executor, bar.update)
    if failed and not results:  # nothing was measured: the error itself
        i = min(failed)
        raise ModelsFailed(f"models: {jobs[i].subject.name!r} failed: {failed[i]}" + (
            f" (and {len(failed) - 1} other models)" if len(failed) > 1 else ""))
    errors = {jobs[i].subject.name: failed[i] for i in sorted(failed)}
    values: dict[tuple[str, str], list[tuple[float, float]]] = {}
    unconverged: dict[tuple[str, str], int] = {}
    gates: dict[tuple[str, str], list[float]] = {}  # (claim, model) → its units' gates (gated claims)
    degenerate: dict[str, str] = {}  # model → why its tasks' answers cannot decide an accuracy claim
    for i, per_unit in results.items():
        job = jobs[i]
        few = sorted({(t, m.distinct) for (t, _), m in zip(job.units, per_unit)
                      if m.distinct is not None and m.distinct < MIN_DISTINCT_ANSWERS})
        if few:
            degenerate[job.subject.name] = (
                f"degenerate targets: the test prompts of task(s) {', '.join(f'{t} ({n})' for t, n in few)} have "
                f"fewer than {MIN_DISTINCT_ANSWERS} distinct answers (first tokens), so a constant answer scores")
        for measured in per_unit:
            for k, (name, (effect, control, n)) in enumerate(zip(job.claims, measured.claims)):
                values.setdefault((name, job.subject.name), []).append((effect, control))
                unconverged[(name, job.subject.name)] = unconverged.get((name, job.subject.name), 0) + n
                if measured.gates is not None and measured.gates[k] is not None:
                    gates.setdefault((name, job.subject.name), []).append(measured.gates[k])
    groups: list[_Group] = []
    for c in claims:
        measured_on = tuple(m for m in on[c.name] if m not in errors)
        if not measured_on or (c.contrast or c.replicated) and any(m in errors for m in c.models):
            continue
        shaped = {m: torch.tensor(values[(c.name, m)], dtype=torch.float64).view(-1, len(config.seeds), 2)
                  for m in measured_on}
        effect = {m: v[..., 0] - (v[..., 1] if c.control_rule == "subtract" else 0) for m, v in shaped.items()}
        control = {m: v[..., 1] for m, v in shaped.items()}
        n_tasks = {m: v.shape[0] for m, v in shaped.items()}
        if c.contrast:
            hard = c.models[0]
            for easy in c.models[1:]:
                pair = (hard, easy)
                groups.append(_Group(c, f"{hard} vs {easy}", {m: effect[m] for m in pair},
                                     {m: control[m] for m in pair}, contrast_estimate(effect[hard], effect[easy]),
                                     contrast_estimate(control[hard], control[easy]).mean,
                                     sum(unconverged[(c.name, m)] for m in pair), min(n_tasks[hard], n_tasks[easy])))
        elif c.replicated:  # the interval over the trained models, each averaged over its tasks × seeds
            stacked = [torch.stack([by_model[m].reshape(-1) for m in c.models]) for by_model in (effect, control)]
            groups.append(_Group(c, c.label or " + ".join(c.models), effect, control, task_estimate(stacked[0]),
                                 task_estimate(stacked[1]).mean, sum(unconverged[(c.name, m)] for m in c.models),
                                 n_tasks[c.models[0]], len(c.models)))
        else:
            groups += [_Group(c, m, {m: effect[m]}, {m: control[m]}, task_estimate(effect[m]),
                              task_estimate(control[m]).mean, unconverged[(c.name, m)], n_tasks[m])
                       for m in measured_on]
    gate_of = {id(g): (sum(v for m in g.values for v in gates[(g.claim.name, m)])
                       / sum(len(gates[(g.claim.name, m)]) for m in g.values)) if g.claim.gate else math.nan
               for g in groups}

    def shut(g: _Group) -> bool:
        return g.claim.gate is not None and gate_of[id(g)] < GATES[g.claim.gate].threshold

    # a row where a negative could not show is not decided, and is not one of the tests Holm adjusts for
    testable = [g for g in groups if not shut(g)]
    p_values = {id(g): g.estimate.p_value(g.claim.margin) for g in groups}
    levels = dict(zip((id(g) for g in testable), holm_levels([p_values[id(g)] for g in testable], config.alpha)))
    rows = []
    for g in groups:
        c, estimate, p, gate = g.claim, g.estimate, p_values[id(g)], gate_of[id(g)]
        level = levels.get(id(g), config.alpha)  # not testable: the unadjusted interval, shown only
        low, high = estimate.interval(level)
        decided, reason = _verdict(c, estimate, low, high, g.control_mean, "model" if c.replicated else "task")
        few = [degenerate[m] for m in g.values if m in degenerate]
        if shut(g):
            decided, reason = NOT_TESTABLE, GATES[c.gate].why.format(value=gate)
        elif few:  # whatever the interval: the answers cannot tell a task vector from a constant
            decided, reason = "inconclusive", f"{few[0]} on {', '.join(m for m in g.values if m in degenerate)}"
        rows.append(LedgerRow(claim=c.name, statement=c.statement, paper=c.paper, model=g.label, effect=c.effect,
                              margin=c.margin, mean=estimate.mean, low=low, high=high, control=g.control_mean,
                              verdict=decided, reason=reason, level=level, p_value=p, n_tasks=g.n_tasks,
                              n_seeds=len(config.seeds), unconverged=g.unconverged, values=g.values,
                              controls=g.controls, n_models=g.n_models, gate=gate))
    nan = math.nan
    rows += [LedgerRow(claim=c.name, statement=c.statement, paper=c.paper, model=label, effect=c.effect,
                       margin=c.margin, mean=nan, low=nan, high=nan, control=nan, verdict=NOT_APPLICABLE, reason=why,
                       level=nan, p_value=nan, n_tasks=0, n_seeds=len(config.seeds), unconverged=0, values={},
                       controls={}) for c, label, why in skipped]
    present = {(r.claim, r.model) for r in rows}
    for c in claims:  # the rows a failed model leaves: what failed, in the claim's place
        if not errors or not on[c.name]:
            continue
        if c.contrast or c.replicated:
            lost = [m for m in c.models if m in errors]
            lost_rows = [(g, lost) for g in ([f"{c.models[0]} vs {m}" for m in c.models[1:]] if c.contrast
                                             else [c.label or " + ".join(c.models)])] if lost else []
        else:
            lost_rows = [(m, [m]) for m in on[c.name] if m in errors]
        rows += [LedgerRow(claim=c.name, statement=c.statement, paper=c.paper, model=label, effect=c.effect,
                           margin=c.margin, mean=nan, low=nan, high=nan, control=nan, verdict=NOT_MEASURED,
                           reason="; ".join(f"{m} failed: {errors[m]}" for m in lost), level=nan, p_value=nan,
                           n_tasks=0, n_seeds=len(config.seeds), unconverged=0, values={}, controls={})
                 for label, lost in lost_rows if (c.name, label) not in present]
    if skipped or errors:  # in claim order, each claim's rows in the order the models were given
        order, labels = {name: i for i, name in enumerate(names)}, {label: i for i, label in enumerate(subjects)}
        rows.sort(key=lambda r: (order[r.claim], labels.get(r.model, len(labels))))
    return ClaimsLedger(rows=rows, config=config, errors=errors)


@dataclass(frozen=True)
class _Group:
    """One row before the Holm adjustment: its effects, their estimate and what the row reports."""

    claim: Claim
    label: str
    values: dict[str, Tensor]
    controls: dict[str, Tensor]
    estimate: Estimate
    control_mean: float
    unconverged: int
    n_tasks: int
    n_models: int = 1


def _verdict(claim: Claim, estimate: Estimate, low: float, high: float, control_mean: float,
             unit: str) -> tuple[str, str]:
    """The row's verdict: the interval (over ``unit``: tasks, or models) against the margin, then the control."""
    decided, reason = verdict(low, high, claim.margin, estimate.n_tasks, zero_width=estimate.se == 0, unit=unit)
    if decided == "holds" and claim.control_rule == "must_fail" and control_mean > claim.margin:
        return "inconclusive", (f"the control shows it too ({control_mean:+.3f} > {claim.margin:g}): it follows from "
                                "the norm or the architecture, not the vector")
    return decided, reason


__all__ = ["CLAIMS", "GATES", "MIN_DISTINCT_ANSWERS", "NOT_APPLICABLE", "NOT_MEASURED", "NOT_TESTABLE_MEANS", "Claim",
           "ClaimsLedger", "Gate", "LedgerConfig", "LedgerRow", "ModelsFailed", "Unit", "claims_ledger",
           "contrast_interval", "t_quantile", "task_interval", "verdict"]
