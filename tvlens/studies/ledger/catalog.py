"""The claim catalogue: each paper claim the ledger tests, how one unit measures it, and the gates that say
where it can be decided.

A claim is a :class:`Claim` in :data:`CLAIMS`: its statement and paper, the effect a unit measures (``measure``:
a :class:`~tvlens.studies.ledger.unit.Workbench` → ``(effect, control)``), its margin, its control and how the
control enters the verdict, the models it is measured on, and its gate (:data:`GATES`). Adding a claim is one
measure function and one :class:`Claim` here; the runner (:mod:`tvlens.studies.ledger.run`) and the table
(:mod:`tvlens.studies.ledger.table`) read them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tvlens.analysis.heads import key_head_analysis
from tvlens.analysis.ov import ov_decomposition
from tvlens.scoring import evaluate
from tvlens.studies.formation import blind_reading, tvp_profiles
from tvlens.studies.ledger.unit import FEW_SHOTS, Workbench
from tvlens.studies.ledger.verdicts import GATE
from tvlens.studies.regression import fidelity_scores, fidelity_vectors
from tvlens.subjects import OFFERS
from tvlens.tasks.symbolic import SymbolicTask
from tvlens.vectors.task_vector import TaskVector
from tvlens.vectors.vanilla import source_position
from tvlens.zoo.specs import ARMS, FAMILY_MODELS, SPECS, arm_names

#: What a claim can need of the model(s) it is measured on (the reason a row gives when a model lacks it). A subject
#: offers ``labels`` or ``regression`` (:data:`~tvlens.subjects.OFFERS`); the two training needs — pairs of models
#: trained with and without the TVP-loss, and a series of models trained on tasks of rising complexity — are met
#: only by the zoo's own recipes (they are claims about training, not about one model): the ledger measures them
#: on the zoo, and on a researcher's model it gives a row saying what the claim needs instead of a silent gap.
NEEDS: dict[str, str] = {
    "labels": "a task family with discrete answers (a symbolic zoo family or word-pair tasks)",
    "regression": "a regression task family (a model that reads real-valued inputs, e.g. the zoo's "
                  "linear-regression)",
    "tvp_arms": "pairs of models trained with and without the TVP-loss from the same initial weights and prompts "
                "(the zoo's perm-mix, token-offset and linear-regression arm pairs, *-tvp-arm-s* and *-arm-s*: run the "
                "ledger without models)",
    "complexity_series": "models trained on tasks of rising complexity (the zoo's perm-mix-2, perm-mix and "
                         "perm-mix-32, token-offset-2 and token-offset, and its linear and sinusoid regression "
                         "models: run the ledger without models)",
}


@dataclass(frozen=True)
class Gate:
    """A test a model must pass for a claim to be decided on it: a negative needs a site where it could show.

    Attributes:
        name: its key in :data:`GATES`.
        value: ``Workbench → float``, averaged over a row's units.
        threshold: the row is decided when the mean value is at least this.
        why: the reason a failing row gives, formatted with the mean value (``{value}``).
    """

    name: str
    value: Callable[[Workbench], float]
    threshold: float
    why: str


#: What ``not testable here`` means, in the words of the table's caption and the report.
NOT_TESTABLE_MEANS = (f"a negative could not show on their model (a mechanism claim whose learned vector recovers "
                      f"less than {GATE:.0%} of ICL's gain on held-out queries at its site; a benefit claim whose "
                      "baseline leaves less to gain than its smallest effect of interest; the row gives its gate)")

#: The room a benefit claim's baseline must leave for the claim to be decided: its smallest effect of interest
#: (``tvp_loss_ood``'s δ; the long-prompt claim's δ is twice this, and so is its gate's threshold).
ROOM = 0.05


def _gates() -> dict[str, Gate]:
    """The gates, made after the measures they read are defined (see :data:`GATES`)."""
    return {g.name: g for g in [
        Gate("site", Workbench.site_gate, GATE, "gate {value:.2f}: the learned vector at its site recovers "
             f"{{value:.0%}} of ICL's gain on held-out queries, below the {GATE:.0%} a task vector needs there"),
        Gate("ood_room", _ood_room, ROOM, "gate {value:.2f}: the plain partners' ICL on the shifted prompts is "
             f"{{value:.0%}} short of perfect, less than the {ROOM:.0%} an effect of interest needs"),
        Gate("long_room", _long_room, 2 * ROOM, "gate {value:.2f}: only {value:.0%} of ICL's error on the long prompts "
             f"is error their training-length prefixes do not have, less than the {2 * ROOM:.0%} an effect of "
             "interest needs"),
    ]}


#: The paper column of a hypothesis no paper states (tvlens' own, measured beside a paper's claim).
TVLENS = "tvlens (no paper's claim)"

#: Where each paper made its claims: the ledger's verdicts on the zoo's small synthetic models test the claims
#: there, not on the models the papers used.
MADE_ON: dict[str, str] = {
    "Hendel et al. 2023": "LLMs",
    "Todd et al. 2024": "LLMs",
    "Yang et al. 2025a": "LLMs",
    "Saglam et al. 2025": "transformers trained on regression, and LLMs",
    "Yang et al. 2025b": "small transformers trained from scratch",
    TVLENS: "",
}


@dataclass(frozen=True)
class Claim:
    """One paper claim and how the ledger measures it.

    Attributes:
        name: its key in :data:`CLAIMS`.
        statement: the claim, as the paper makes it.
        paper: who makes it (a key of :data:`MADE_ON`, which says on what models it was made).
        effect: what is measured per task and seed (positive beyond ``margin`` when the claim holds).
        margin: the effect the claim needs (``0``: "better than").
        models: the zoo models it is measured on; for a contrast, the hardest first. A family name stands for its
            independently trained models (:data:`~tvlens.zoo.specs.FAMILY_MODELS`): its row's interval is over their
            model means (:attr:`zoo_rows`).
        measure: ``Workbench → (effect, control)`` (for a contrast: that unit's model's value and control).
        control: what the control is.
        control_rule: ``"subtract"``, ``"must_fail"`` or ``"shown"`` (see the module docstring).
        contrast: one row per pair ``(harder, easier)`` of :attr:`contrast_pairs`: the effect is
            ``mean(harder) − mean(easier)`` over the two models' task means.
        pairs: a contrast's pairs (default: ``models[0]`` against each other model).
        replicated: ``models`` are independently trained replicates (each measured against its paired partner by
            ``measure``): one row per recipe, its interval over that recipe's models (each model's mean over
            tasks × seeds).
        replicates: for a replicated claim, ``(row label, its models)`` per recipe (default: one row over
            ``models``).
        partners: zoo models ``measure`` reads besides ``models`` (a replicate's partner).
        needs: what the model it is measured on must offer (a key of :data:`NEEDS`): a
            ledger on a researcher's models measures the claim on each model that offers it and gives the others
            a ``not applicable`` row that says why.
        cost: the time one unit's measurement takes relative to a typical claim's (measured on the zoo, one
            thread): an executor starts the models with the most work first, so the last to finish are short.
            It orders the work and changes no number.
        gate: the test (a key of :data:`GATES`) a model must pass for the claim to be decided on it: ``"site"`` for
            a mechanism claim about a task vector (its heads, its OV image, its propagation, how it compares: the
            learned vector at its site must carry the task to held-out queries). Where the gate fails
            the row reads ``not testable here`` and says why; ``None``: always decided.
        primary: the paper's primary hypothesis (at most one per paper, declared here before any number is
            computed): the primaries' rows form one Holm family at the ledger's ``alpha``; every other claim is
            exploratory, Holm-adjusted within its own rows (its models).
        delta: the smallest effect of interest, in the effect's units: the effect is ``no effect`` when it lies
            within ``±delta`` of zero by two one-sided tests, and a row whose minimum detectable effect exceeds it
            could not decide an effect of that size. ``None``: the effect is a level (an R²), not a difference,
            and has no equivalence test.
    """

    name: str
    statement: str
    paper: str
    effect: str
    margin: float
    models: tuple[str, ...]
    measure: Callable[[Workbench], tuple[float, float]]
    control: str
    control_rule: str = "must_fail"
    contrast: bool = False
    pairs: tuple[tuple[str, str], ...] = ()
    replicated: bool = False
    replicates: tuple[tuple[str, tuple[str, ...]], ...] = ()
    partners: tuple[str, ...] = ()
    needs: str = "labels"
    cost: float = 1.0
    gate: str | None = None
    primary: bool = False
    delta: float | None = 0.05

    @property
    def contrast_pairs(self) -> tuple[tuple[str, str], ...]:
        """A contrast's rows: ``(harder, easier)`` pairs of :attr:`models`."""
        return self.pairs or tuple((self.models[0], m) for m in self.models[1:])

    @property
    def replicate_rows(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """A replicated claim's rows: ``(label, models)`` per recipe."""
        return self.replicates or ((" + ".join(self.models), self.models),)

    @property
    def zoo_rows(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The claim's rows on the zoo, ``(label, models)`` each: a contrast's :attr:`contrast_pairs` (``"hard vs
        easy"``), a replicated claim's recipes, else one row per family of :attr:`models` over its independently
        trained models (:data:`~tvlens.zoo.specs.FAMILY_MODELS`; a family trained once is its one model)."""
        if self.contrast:
            return tuple((f"{hard} vs {easy}", (hard, easy)) for hard, easy in self.contrast_pairs)
        if self.replicated:
            return self.replicate_rows
        return tuple((family, FAMILY_MODELS.get(family, (family,))) for family in self.models)

    @property
    def measured_models(self) -> tuple[str, ...]:
        """The zoo models the claim's units are measured on (each row's models, once)."""
        return tuple(dict.fromkeys(m for _, models in self.zoo_rows for m in models))

    @property
    def zoo_models(self) -> tuple[str, ...]:
        """Every zoo model the claim reads."""
        return (*self.measured_models, *self.partners)

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
        if self.contrast and self.replicated:
            raise ValueError(f"Claim {self.name!r}: contrast and replicated are exclusive (one row per pair of "
                             "models, or one row over replicates)")
        paired = {m for pair in self.pairs for m in pair}
        if self.pairs and (not self.contrast or paired != set(self.models)):
            raise ValueError(f"Claim {self.name!r}: pairs must pair a contrast's models, each in some pair; got "
                             f"{list(self.pairs)} for models {list(self.models)}")
        grouped = [m for _, models in self.replicates for m in models]
        if self.replicates and (not self.replicated or sorted(grouped) != sorted(self.models)):
            raise ValueError(f"Claim {self.name!r}: replicates must split a replicated claim's models, each once; "
                             f"got {grouped} for models {list(self.models)}")
        if self.delta is not None and not 0 < self.delta < math.inf:
            raise ValueError(f"Claim {self.name!r}: delta={self.delta!r}; expected a positive finite number or None")


def catalog(claims: list[Claim]) -> dict[str, Claim]:
    """The claims by name, in order: a name given twice, a paper :data:`MADE_ON` does not know, or a second primary
    hypothesis for one paper, is refused (one line)."""
    out: dict[str, Claim] = {}
    primary: dict[str, str] = {}
    for c in claims:
        if c.name in out:
            raise ValueError(f"claim {c.name!r} is given twice; expected each claim once")
        if c.paper not in MADE_ON:
            raise ValueError(f"claim {c.name!r}: paper={c.paper!r} is not in MADE_ON; expected one of {list(MADE_ON)} "
                             "(add where the paper made its claims)")
        if c.primary and c.paper in primary:
            raise ValueError(f"claim {c.name!r}: {c.paper} already has a primary hypothesis ({primary[c.paper]!r}); "
                             "expected at most one per paper")
        primary.update({c.paper: c.name} if c.primary else {})
        out[c.name] = c
    return out


def _ltv_vs_vtv(w: Workbench) -> tuple[float, float]:
    tv, layer = w.vanilla()
    ltv, vanilla = w.learned(layer), w.score("injected", tv)
    return w.score("injected", ltv) - vanilla, w.score("injected", w.random_like(ltv)) - vanilla


def _ltv_vs_icl(w: Workbench) -> tuple[float, float]:
    ltv, icl = w.learned(w.learned_layer()), w.score("icl")
    return w.score("injected", ltv) - icl, w.score("injected", w.random_like(ltv)) - icl


def _vtv_vs_zero(w: Workbench) -> tuple[float, float]:
    tv, zero = w.vanilla()[0], w.score("zero_shot")
    return w.score("injected", tv) - zero, w.score("injected", w.random_like(tv)) - zero


def _most_of_icl(w: Workbench, tv: TaskVector) -> tuple[float, float]:
    """Accuracy gained over zero-shot by ``tv`` minus half of ICL's gain (> 0: most of ICL's gain), and the same
    for a random vector of ``tv``'s norm."""
    zero, icl = w.score("zero_shot"), w.score("icl")
    half = 0.5 * (icl - zero)
    return w.score("injected", tv) - zero - half, w.score("injected", w.random_like(tv)) - zero - half


def _ltv_early_position(w: Workbench) -> tuple[float, float]:
    return _most_of_icl(w, w.learned(1, positions=1))


def _hendel_replace(w: Workbench) -> tuple[float, float]:
    """Hendel et al.'s reading, position-matched: the ICL prompts' state replaces the zero-shot query's, and the
    zero-shot prompt (the baseline too) is scored moved to the ICL query's position, where that state was computed
    (:func:`~tvlens.interventions.position_shift`; a model without learned absolute positions is unchanged)."""
    tv, at = w.vanilla(mode="replace")[0], source_position(w.test)
    zero, icl = w.score("zero_shot", query_at=at), w.score("icl")
    half = 0.5 * (icl - zero)
    return (w.score("injected", tv, query_at=at) - zero - half,
            w.score("injected", w.random_like(tv), query_at=at) - zero - half)


def _fv_vs_zero(w: Workbench) -> tuple[float, float]:
    """Todd et al.'s FV at its own layer (the best of the FV's own dev sweep), against the zero-shot query."""
    fv, zero = w.function(), w.score("zero_shot")
    return w.score("injected", fv) - zero, w.score("injected", w.random_like(fv)) - zero


def _ltv_vs_fv(w: Workbench) -> tuple[float, float]:
    layer = w.vanilla()[1]
    ltv, fv = w.learned(layer), w.score("injected", w.function(layer))
    return w.score("injected", ltv) - fv, w.score("injected", w.random_like(ltv)) - fv


def _ltv_on_icl(w: Workbench) -> tuple[float, float]:
    """An LTV trained on short ICL prompts, added to them: its gain over those prompts alone."""
    few = w.memo("few", lambda: w.splits.sample(w.task, "test", w.config.n_prompts, FEW_SHOTS))
    ltv, icl = w.learned("vanilla", base="icl"), w.score("icl", batch=few)
    return (w.score("injected", ltv, batch=few, base="icl") - icl,
            w.score("injected", w.random_like(ltv), batch=few, base="icl") - icl)


def _key_heads(w: Workbench) -> tuple[float, float]:
    layer = w.vanilla()[1]
    s = key_head_analysis(w.model, w.task, w.learned(layer), n_prompts=w.config.n_prompts, n_shots=w.n_shots,
                          seed=w.seed).summary()
    return s["random_ablated"] - s["key_ablated"], s["injected"] - s["random_ablated"]


def _theta_ov(w: Workbench) -> tuple[float, float]:
    """θ_OV in θ's place: accuracy gained over zero-shot minus half of θ's own gain (> 0: most of θ's effect);
    the control puts a random vector of ‖θ_OV‖ there instead."""
    ltv = w.learned(w.vanilla()[1])
    ov = ov_decomposition(w.model, w.task, ltv, batch=w.test)
    s = ov.summary()
    half = 0.5 * (s["vector"] - s["zero_shot"])
    (site,) = ltv.sites
    stand_in = TaskVector({site: ov.theta_ov.to(ltv.vectors[site].dtype)}, mode=ltv.mode, scale=ltv.scale)
    return s["theta_ov"] - s["zero_shot"] - half, w.score("injected", w.random_like(stand_in)) - s["zero_shot"] - half


def _map_row(maps: Any, layer: int) -> dict[str, Any]:
    return maps.to_records()[maps.layers.index(layer)]


def _linear_r2(w: Workbench) -> tuple[float, float]:
    layer = w.vanilla()[1]
    return _map_row(w.maps(), layer)["r2"], _map_row(w.maps(control=True), layer)["r2"]


def _through_origin(w: Workbench) -> tuple[float, float]:
    """R² of the linear map minus R² of the affine map ``W θ + b`` (same rows): ≈ 0 when the change is linear in θ,
    not only linear around it."""
    layer = w.vanilla()[1]
    rows = [_map_row(w.maps(control), layer) for control in (False, True)]
    return rows[0]["r2"] - rows[0]["r2_affine"], rows[1]["r2"] - rows[1]["r2_affine"]


def _rotation(w: Workbench) -> tuple[float, float]:
    return w.maps().trend("cos_rotation"), w.maps(control=True).trend("cos_rotation")


def _toward_labels(w: Workbench) -> tuple[float, float]:
    """The answer-margin gain of the direct map of a vector injected at layer 0 (> 0: rotated toward the labels)."""
    return _map_row(w.maps(), 0)["margin_gain"], _map_row(w.maps(control=True), 0)["margin_gain"]


#: The TVP readings the ledger makes: the paper's (each prompt's own state) and one that cannot hold the scored
#: query's answer (:func:`~tvlens.studies.formation.blind_reading`: on a symbolic family the end of the demonstrations,
#: the reading that carries no answer as measured, ``formation.ANSWER_FREE``; on a regression family the same
#: function's prompt with its last demonstration as the query).


def _tvp_profile(w: Workbench, name: str, source: str = "prompt") -> Any:
    """Model ``name``'s TVP profile read from ``source`` on this unit's test prompts (both readings are made in
    one pass, :func:`~tvlens.studies.formation.tvp_profiles`, and kept for the model's unit). A regression family's
    unit profiles its own group of prompts (fresh functions, :meth:`Workbench.prompts`), not the same prompts for every
    group."""
    key = (name, w.task_id, w.seed)
    if key not in w.store.tvp:
        other = Workbench(name, w.task_id, w.seed, w.config, w.store)
        w.store.tvp[key] = tvp_profiles(other.model, other.task, n_prompts=w.config.n_prompts,
                                        n_shots=other.n_shots, seed=w.seed, split="test",
                                        sources=("prompt", blind_reading(other.task)), batch=other.test)
    return w.store.tvp[key][source]


#: The TVP-loss arms: each model trained with the TVP-loss → its step-matched partner trained without, and → its
#: family (whose recipe gives the layer its loss pins the vector to); one ledger row per family, over its pairs.
_ARMS = {tvp: plain for family, r in ARMS.items() for tvp, plain in (arm_names(i, family) for i in range(r.replicates))}
_ARM_FAMILY = {arm_names(i, family)[0]: family for family, r in ARMS.items() for i in range(r.replicates)}


def _arm_rows(families: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """One replicated row per family: ``(label, its TVP-loss arms)``."""
    return tuple((f"{f}-tvp-arm-s0…s{ARMS[f].replicates - 1} vs {f}-arm-s0…s{ARMS[f].replicates - 1}",
                  tuple(arm_names(i, f)[0] for i in range(ARMS[f].replicates))) for f in families)


def _arm_pairs(families: tuple[str, ...]) -> str:
    return " or ".join(f"{ARMS[f].replicates} {f} pairs" for f in families)


#: The arm families with discrete answers (the out-of-distribution claim mislabels their demonstrations).
_LABELLED_ARMS = tuple(f for f in ARMS if isinstance(SPECS[f].task, SymbolicTask))
_LABELLED_ARM_MODELS = tuple(t for t in _ARMS if _ARM_FAMILY[t] in _LABELLED_ARMS)


def _gain(w: Workbench, with_loss: float, without: float) -> float:
    """How much better ``with_loss`` is than ``without`` in the unit's metric (its sign): accuracy up, or error
    down."""
    return (with_loss - without) * w.task.metric.sign


def _tvp_loss(w: Workbench) -> tuple[float, float]:
    """TVP mode at the layer the loss pins, read as the paper reads it (each prompt's own state), of this TVP-loss arm
    model against its plain partner's (:func:`_gain`: accuracy gained, or error lost); the control is the same read
    where the state cannot hold the scored answer (:func:`~tvlens.studies.formation.blind_reading`)."""
    layer, partner, blind = ARMS[_ARM_FAMILY[w.name]].layer, _ARMS[w.name], blind_reading(w.task)
    own = _gain(w, _tvp_profile(w, w.name).tvp[layer], _tvp_profile(w, partner).tvp[layer])
    control = _gain(w, _tvp_profile(w, w.name, blind).tvp[layer], _tvp_profile(w, partner, blind).tvp[layer])
    return float(own), float(control)


def _tvp_keeps_icl(w: Workbench) -> tuple[float, float]:
    """ICL of this TVP-loss arm model against its plain partner's on the same prompts (:func:`_gain`); the control is
    zero-shot's."""
    a, b = _tvp_profile(w, w.name), _tvp_profile(w, _ARMS[w.name])
    return float(_gain(w, a.icl, b.icl)), float(_gain(w, a.zero_shot, b.zero_shot))


#: The out-of-distribution prompts of the TVP-loss's robustness claim: this share of each test prompt's demonstrations
#: given a wrong answer (:meth:`~tvlens.tasks.symbolic.SymbolicTask.with_noisy_demonstrations`; training never shows
#: one). The zoo's learned absolute positions rule out the other shift, contexts longer than training.
OOD_NOISE = 0.25


def _noisy(w: Workbench) -> Any:
    """This unit's test prompts with :data:`OOD_NOISE` of their demonstrations mislabelled."""
    return w.memo("noisy", lambda: w.task.with_noisy_demonstrations(w.test, OOD_NOISE, seed=w.seed))


def _partner_on_noisy(w: Workbench) -> float:
    """ICL accuracy of this TVP-loss arm's plain partner on :func:`_noisy`."""
    return w.memo("partner noisy", lambda: Workbench(_ARMS[w.name], w.task_id, w.seed, w.config, w.store).score(
        "icl", batch=_noisy(w)))


def _tvp_ood(w: Workbench) -> tuple[float, float]:
    """ICL accuracy on this unit's test prompts with :data:`OOD_NOISE` of their demonstrations mislabelled, of this
    TVP-loss arm model minus its plain partner's; the control is the same difference on the clean prompts."""
    clean = _tvp_profile(w, w.name).icl - _tvp_profile(w, _ARMS[w.name]).icl
    return w.score("icl", batch=_noisy(w)) - _partner_on_noisy(w), float(clean)


def _ood_room(w: Workbench) -> float:
    """The out-of-distribution claim's positive control: ``1 −`` the plain partner's ICL accuracy on the shifted
    prompts, the most the TVP-loss could add there (about 0: the shift does not hurt, and no benefit can show)."""
    return 1 - _partner_on_noisy(w)


def _formation_depth(w: Workbench) -> tuple[float, float]:
    """Where the vector forms, as a share of the model's depth: the first layer whose TVP mode, read as the paper reads
    it (each prompt's own state), reaches half of ICL's gain (``n_layers`` if none), over ``n_layers``; the control is
    the same with the control reading (the end of the demonstrations, or another query's prompt)."""
    own, control = (_tvp_profile(w, w.name, x).formation_layer() for x in ("prompt", blind_reading(w.task)))
    n = w.model.n_layers
    return (n if own is None else own) / n, (n if control is None else control) / n


def _regression_unit(w: Workbench, shots: int) -> tuple[dict[str, Any], Any]:
    """The regression vectors (FV heads and the head-weighted LTV's ``ω``), learned once per model and seed on prompts
    of the training length, and this unit's group of test prompts of ``shots`` demonstrations
    (:meth:`Workbench.prompts`)."""
    if (w.name, w.seed) not in w.store.regression:  # learned once per seed, read by every group of prompts
        w.store.regression[(w.name, w.seed)] = fidelity_vectors(
            w.model, w.family, ("function", "head_weighted"), train_shots=w.n_shots, n_prompts=w.config.n_prompts,
            seed=w.seed, progress=False)
    return w.store.regression[(w.name, w.seed)], w.prompts(shots)


def _head_weighted(w: Workbench) -> tuple[float, float]:
    """``1 − error(head-weighted LTV) / error(FV)`` on this unit's group of test prompts, both reading their heads
    from another prompt of the same function (its last demonstration as the query: never the scored query, so
    the vectors cannot carry ICL's own answer); the control is ``1 − error(zero-shot) / error(FV)``."""
    made, group = _regression_unit(w, w.n_shots)
    errors = {m: result.mean for m, result in
              fidelity_scores(w.model, w.family, group, ("function", "head_weighted", "zero_shot"), made).items()}
    return 1 - errors["head_weighted"] / errors["function"], 1 - errors["zero_shot"] / errors["function"]


def _long_prompts(w: Workbench) -> tuple[dict[str, Any], Any]:
    """The regression vectors and this unit's group of prompts of the model's whole context (the most demonstrations
    it holds: beyond the training length)."""
    return _regression_unit(w, (w.model.capabilities.n_ctx - 1) // 2)


def _long_icl(w: Workbench) -> float:
    """ICL error on this unit's long prompts (:func:`_long_prompts`)."""
    return w.memo("long icl", lambda: evaluate(w.model, w.family, "icl", batch=_long_prompts(w)[1],
                                               progress=False).mean)


def _head_weighted_long(w: Workbench) -> tuple[float, float]:
    """Saglam et al.'s setting: prompts of the model's whole context (beyond the training length), with the
    head-weighted LTV added at every layer's output at the query, each prompt's heads read from its training-length
    prefix (its first demonstrations and its query, as their code reads them); ``1 − error(ICL + vector) /
    error(ICL)``. The control is the same with random vectors of the same norm at every layer and prompt."""
    made, group = _long_prompts(w)
    vector = dataclasses.replace(made["hw"], source_shots=w.n_shots).interventions_for(w.model, group)
    control = w.random_interventions(vector, "long prompts")
    icl = _long_icl(w)
    with_vector, with_random = (evaluate(w.model, w.family, "injected", v, batch=group, base="icl",
                                         progress=False).mean for v in (vector, control))
    return 1 - with_vector / icl, 1 - with_random / icl


def _long_room(w: Workbench) -> float:
    """The long-prompt claim's positive control: ``1 − error(ICL on the training-length prefixes) / error(ICL on the
    long prompts)``, the share of the long prompts' error that prompts of the training length do not have (about 0:
    the model extrapolates, and a vector has nothing to restore)."""
    group = _long_prompts(w)[1]
    prefix = evaluate(w.model, w.family, "icl", batch=w.family.shorter(group, w.n_shots), progress=False).mean
    return 1 - prefix / _long_icl(w)


#: The gates a claim can name (:attr:`Claim.gate`): ``site`` for the mechanism claims; ``ood_room`` and ``long_room``,
#: the positive controls of the benefit claims (their baseline must leave room for the benefit).
GATES: dict[str, Gate] = _gates()

_SYMBOLIC = ("perm-mix", "perm-mix-32", "token-offset")
_REGRESSION = ("linear-regression", "sparse-linear-regression", "sinusoid-regression")
_RANDOM = "a random vector of the same norm at the same site"

#: Every claim the ledger measures, in the order of its table.
CLAIMS: dict[str, Claim] = catalog([
    Claim("ltv_beats_vanilla", "A learned task vector beats the vanilla (extracted) task vector",
          "Yang et al. 2025a", "accuracy of the LTV minus the vanilla TV's, held-out zero-shot queries, at the vanilla "
          "TV's layer (chosen on dev prompts)", 0.0, _SYMBOLIC, _ltv_vs_vtv, f"{_RANDOM} (of the LTV's norm)",
          gate="site", primary=True),
    Claim("ltv_near_icl", "A learned task vector in the zero-shot query comes within a few points of ICL",
          "Yang et al. 2025a", "accuracy of the LTV (zero-shot query; its layer chosen on dev prompts) minus 16-shot "
          "ICL accuracy on the same held-out prompts", -0.05, _SYMBOLIC, _ltv_vs_icl, f"{_RANDOM} (of the LTV's norm)"),
    Claim("ltv_beats_fv", "A learned task vector beats the function vector", "Yang et al. 2025a",
          "accuracy of the LTV minus the FV's (Todd et al.'s heads, 10 % of the heads), at the vanilla TV's layer",
          0.0, _SYMBOLIC, _ltv_vs_fv, f"{_RANDOM} (of the LTV's norm)", gate="site"),
    Claim("vanilla_beats_zero_shot", "The vanilla task vector beats the zero-shot query",
          "Yang et al. 2025a", "accuracy of the vanilla TV added to the zero-shot query (Yang et al. 2025a's "
          "extracted baseline; Hendel et al.'s replacement is hendel_most_of_icl) minus zero-shot accuracy", 0.0,
          _SYMBOLIC, _vtv_vs_zero,
          f"{_RANDOM} (of the vanilla TV's norm)"),
    Claim("hendel_most_of_icl", "The task vector, patched in place of the query's state, recovers most of ICL",
          "Hendel et al. 2023", "accuracy gained over zero-shot by the vanilla TV in replace mode minus half of ICL's "
          "gain, both with the zero-shot prompt moved to the ICL query's position (position-matched)", 0.0, _SYMBOLIC,
          _hendel_replace, f"{_RANDOM} (of the TV's norm), replacing the state at the same position",
          gate="site", primary=True),
    Claim("fv_beats_zero_shot", "The function vector added to the zero-shot query beats it", "Todd et al. 2024",
          "accuracy of the FV (at its own layer: the best of the FV added at each layer, on dev prompts) minus "
          "zero-shot accuracy", 0.0, _SYMBOLIC, _fv_vs_zero,
          f"{_RANDOM} (of the FV's norm)", primary=True),
    Claim("ltv_early_position", "A learned vector works at an early position (the query token)",
          "Yang et al. 2025a", "accuracy gained over zero-shot by an LTV at layer 1, position 1, minus half of ICL's "
          "gain (> 0: most of ICL's gain)", 0.0, _SYMBOLIC, _ltv_early_position, f"{_RANDOM} (of the LTV's norm)",
          gate="site"),
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
          0.9, _SYMBOLIC, _linear_r2, "the same map's R² for a random vector of the LTV's norm",
          gate="site", delta=None),
    Claim("linear_through_origin", "The propagation is linear in θ, not only linear around it", TVLENS,
          "R² of the linear map through the origin minus R² of an affine map W θ + b, on the same held-out "
          "perturbations of the LTV (> −0.02: the offset a local linearisation needs is not needed)", -0.02,
          _SYMBOLIC, _through_origin, "the same difference for a random vector of the LTV's norm",
          gate="site", delta=0.02),
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
          "1 − error(zero-shot) / error(FV)", control_rule="shown", needs="regression", cost=3.0,
          primary=True, delta=0.1),
    Claim("head_weighted_long_prompts", "The head-weighted learned vector improves ICL on prompts beyond the "
          "training length", "Saglam et al. 2025", "1 − error(ICL + head-weighted LTV) / error(ICL) on prompts of the "
          "model's whole context (40 demonstrations; trained on 20), the vector added at every layer's output at the "
          "query with each prompt's heads read from its 20-demonstration prefix and query, as Saglam et al.'s code "
          "does (groups of fresh functions)", 0.0, ("linear-regression-long",), _head_weighted_long,
          "random vectors of the same norms added at the same sites", needs="regression", cost=3.0, delta=0.1,
          gate="long_room"),
    Claim("tvp_loss", "Training with the TVP-loss raises TVP-mode accuracy at its layer",
          "Yang et al. 2025b", "TVP mode at the layer the loss pins ("
          + ", ".join(f"{f}: {r.layer}" for f, r in ARMS.items()) + "; each prompt's own state, as the paper reads "
          "it) of a model trained with the TVP-loss, switched on once ICL had formed (symbolic: accuracy "
          f"{ARMS['perm-mix'].switch_on}; regression: error {ARMS['linear-regression'].switch_on}), against its "
          "step-matched partner trained without (same initial weights and prompts): accuracy gained, or error per "
          f"output dimension lost (interval over the {_arm_pairs(tuple(ARMS))})",
          0.0, tuple(_ARMS), _tvp_loss, "the same difference read where the state cannot hold the scored answer (the "
          "end of the demonstrations; regression: the same function's prompt asking about its last demonstration)",
          control_rule="shown", replicated=True, replicates=_arm_rows(tuple(ARMS)), partners=tuple(_ARMS.values()),
          needs="tvp_arms", primary=True),
    Claim("tvp_loss_keeps_icl", "Training with the TVP-loss keeps ICL accuracy", "Yang et al. 2025b",
          "ICL of a model trained with the TVP-loss against its step-matched partner's, on the same prompts: accuracy "
          f"gained, or error per output dimension lost (interval over the {_arm_pairs(tuple(ARMS))})", -0.02,
          tuple(_ARMS), _tvp_keeps_icl, "the same difference in zero-shot", control_rule="shown", replicated=True,
          replicates=_arm_rows(tuple(ARMS)), partners=tuple(_ARMS.values()), needs="tvp_arms"),
    Claim("tvp_loss_ood", "Training with the TVP-loss improves ICL on out-of-distribution prompts",
          "Yang et al. 2025b", f"ICL accuracy on held-out prompts with {OOD_NOISE:.0%} of their demonstrations given a "
          "wrong answer (a shift training never shows) of a model trained with the TVP-loss minus its step-matched "
          f"partner's (interval over the {_arm_pairs(_LABELLED_ARMS)})", 0.0,
          _LABELLED_ARM_MODELS, _tvp_ood,
          "the same difference on the clean prompts", control_rule="shown", replicated=True,
          replicates=_arm_rows(_LABELLED_ARMS),
          partners=tuple(_ARMS[t] for t in _LABELLED_ARM_MODELS), needs="tvp_arms", gate="ood_room"),
    Claim("depth_vs_complexity", "The task vector forms deeper for more complex tasks",
          "Yang et al. 2025b", "formation depth — the first layer whose TVP mode (each prompt's own state, as the "
          "paper reads it) reaches half of ICL's gain, over the model's layers — of the more complex task minus the "
          "simpler one's: 32 against 8 (or 2) permutations and 8 against 2 token offsets on same-shaped models, "
          "sinusoid (6 layers) against linear regression (3 layers)", 0.0,
          ("perm-mix-32", "perm-mix", "perm-mix-2", "token-offset", "token-offset-2", "sinusoid-regression",
           "linear-regression"), _formation_depth,
          "the same contrast read where the state cannot hold the scored answer (the end of the demonstrations; "
          "regression: the same function's prompt asking about its last demonstration)", control_rule="shown",
          contrast=True, pairs=(("perm-mix-32", "perm-mix"), ("perm-mix-32", "perm-mix-2"),
                                ("token-offset", "token-offset-2"), ("sinusoid-regression", "linear-regression")),
          needs="complexity_series", cost=0.5, delta=0.1),
])


__all__ = ["CLAIMS", "GATES", "MADE_ON", "NEEDS", "NOT_TESTABLE_MEANS", "ROOM", "TVLENS", "Claim", "Gate", "catalog"]
