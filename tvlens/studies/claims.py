"""The claims ledger: every paper claim tvlens can test, measured across tasks and seeds, with a verdict.

A finding measured on one task of one family with one seed says little about the claim behind it.
The ledger measures each claim's **effect** — a number that is positive when the claim holds, e.g.
"accuracy of the LTV minus accuracy of the vanilla TV" — on every zoo model where the claim applies,
for ``n_tasks`` tasks of the model's family × ``len(seeds)`` seeds (the seed draws every prompt split
and every learned vector; :class:`~tvlens.tasks.Splits`). Wherever something is chosen and then
measured (the vanilla TV's layer, key heads, early stopping), the choosing and the measuring use
disjoint splits.

**Interval.** Seeds of one task share the task, so they are not independent draws: the seeds are
averaged per task and the 95 % interval is Student's t over the task means,
``m ± t_{0.975, T−1} · s/√T``. A contrast of two models (e.g. hard vs easy tasks) uses Welch's
interval over the two models' task means.

**Verdict.** Each claim states the effect it needs (its ``margin``: ``0`` for "better than", more for
"much better" or "most of"). The verdict is read off the interval: **holds** when the whole
interval lies above the margin, **does not hold** when it lies at or below it, **mixed** when it
straddles it (tasks or seeds disagree, or too few to tell).

Regression families draw a fresh function for every prompt, so their "tasks" are ``n_tasks`` disjoint
groups of test prompts (independent functions) and their seeds re-learn the vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from tvlens import zoo
from tvlens._config import Config
from tvlens._records import Records
from tvlens.analysis.dynamics import injection_layer_maps
from tvlens.analysis.heads import key_head_analysis
from tvlens.analysis.ov import ov_decomposition
from tvlens.evaluate import evaluate
from tvlens.studies.formation import tvp_by_layer
from tvlens.studies.regression import fidelity_score, fidelity_vectors
from tvlens.tasks.splits import Splits
from tvlens.vectors.learned import learn_task_vector
from tvlens.vectors.task_vector import TaskVector
from tvlens.vectors.vanilla import vanilla_task_vector
from tvlens.zoo.specs import PERM_TVP_LAYER

# Student's t 0.975-quantiles for 1–30 degrees of freedom (beyond: the Cornish–Fisher expansion).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t_quantile(df: float) -> float:
    """Student's t 0.975-quantile for ``df ≥ 1`` degrees of freedom (linear between tabulated integers;
    for ``df > 30`` the Cornish–Fisher expansion around the normal quantile, exact to 1e-4)."""
    if not df >= 1:
        raise ValueError(f"df={df!r}: expected at least 1 degree of freedom")
    if df <= 30:
        low = int(math.floor(df))
        if low == df or low == 30:
            return _T975[low - 1]
        frac = df - low
        return (1 - frac) * _T975[low - 1] + frac * _T975[low]
    z = 1.959964
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def task_interval(values: Float[Tensor, "tasks seeds"]) -> tuple[float, float, float]:
    """``(mean, low, high)``: the 95 % t-interval over the per-task means (seeds averaged within a task)."""
    means = values.double().mean(1)
    n = means.numel()
    mean = float(means.mean())
    if n < 2:
        return mean, float("-inf"), float("inf")
    half = t_quantile(n - 1) * float(means.std()) / math.sqrt(n)
    return mean, mean - half, mean + half


def contrast_interval(
    high: Float[Tensor, "tasks_a seeds"], low: Float[Tensor, "tasks_b seeds"]
) -> tuple[float, float, float]:
    """``(difference, low, high)``: Welch's 95 % interval for ``mean(high) − mean(low)`` over task means."""
    a, b = high.double().mean(1), low.double().mean(1)
    if a.numel() < 2 or b.numel() < 2:
        diff = float(a.mean() - b.mean())
        return diff, float("-inf"), float("inf")
    va, vb = float(a.var()) / a.numel(), float(b.var()) / b.numel()
    diff, se = float(a.mean() - b.mean()), math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (a.numel() - 1) + vb**2 / (b.numel() - 1))
    half = t_quantile(max(1.0, df)) * se
    return diff, diff - half, diff + half


def verdict(low: float, high: float, margin: float) -> str:
    """``"holds"`` (interval above ``margin``), ``"does not hold"`` (at or below it) or ``"mixed"``."""
    if low > margin:
        return "holds"
    if high <= margin:
        return "does not hold"
    return "mixed"


@dataclass
class LedgerConfig(Config):
    """How the ledger measures.

    Attributes:
        n_tasks: tasks of each family (regression: groups of test prompts).
        seeds: user seeds (:class:`~tvlens.tasks.Splits`): every split and learned vector.
        n_prompts: test prompts per task and seed (and selection prompts where something is chosen).
        n_shots: demonstrations of the prompts vectors are made from.
        lr: learning rate of the learned vectors; ``epochs``: their epochs.
        dynamics_prompts: prompts the linear maps are fitted on (one map each).
        claims: the claims to measure (names of :data:`CLAIMS`; default all).
    """

    n_tasks: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    n_prompts: int = 200
    n_shots: int = 16
    lr: float = 0.05
    epochs: int = 15
    dynamics_prompts: int = 8
    claims: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n_tasks, int) or self.n_tasks < 1:
            raise ValueError(f"n_tasks={self.n_tasks!r}: expected an int >= 1")
        self.seeds = tuple(self.seeds)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r}: expected distinct seeds, at least one")
        if self.claims is not None:
            self.claims = (self.claims,) if isinstance(self.claims, str) else tuple(self.claims)
            if not self.claims:
                raise ValueError("claims=(): expected at least one claim name (None measures every claim)")
            unknown = [c for c in self.claims if c not in CLAIMS]
            if unknown:
                raise ValueError(f"claims: unknown {unknown}; expected names from {list(CLAIMS)}")


class Unit:
    """One model × task × seed, with everything the claims share computed once (vectors, test prompts).

    ``shared`` is one dict for the whole ledger: what several units of a model and seed share (the
    regression vectors, learned once per seed and read by every group of prompts) is kept there.
    """

    def __init__(self, name: str, task_id: int, seed: int, config: LedgerConfig, shared: dict[Any, Any] | None = None):
        self.name, self.task_id, self.seed, self.config = name, task_id, seed, config
        self.shared = {} if shared is None else shared
        # one load per zoo model for the whole ledger, not one per unit
        if ("model", name) not in self.shared:
            self.shared[("model", name)] = zoo.load(name)
        self.model = self.shared[("model", name)]
        self.family = zoo.task(name)
        self.task = self.family.single(task_id) if self.family.n_tasks else self.family
        self.splits = Splits(seed)
        self._memo: dict[Any, Any] = {}

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
        """The scoring prompts (the ``test`` split): nothing was chosen or learned on them."""
        return self.memo("test", lambda: self.splits.sample(self.task, "test", self.config.n_prompts,
                                                              self.config.n_shots))

    def score(self, mode: str, vector: Any = None) -> float:
        return evaluate(self.model, self.task, mode, vector, batch=self.test, progress=False).mean

    def vanilla(self) -> tuple[TaskVector, int]:
        """The vanilla TV, its layer chosen on the ``dev`` split."""
        def make() -> tuple[TaskVector, int]:
            tv, result = vanilla_task_vector(self.model, self.task, n_shots=self.config.n_shots, seed=self.seed)
            return tv, result.sweep.best_layer
        return self.memo("vanilla", make)

    def learned(self, layer: int, positions: Any = "last") -> TaskVector:
        """The LTV at ``layer`` (trained on the ``train`` split, early-stopped on ``dev``)."""
        return self._learn(layer, positions)[0]

    def _learn(self, layer: int, positions: Any = "last") -> tuple[TaskVector, Any]:
        return self.memo(("ltv", layer, positions), lambda: learn_task_vector(
            self.model, self.task, layer, positions=positions, n_shots=self.config.n_shots, lr=self.config.lr,
            epochs=self.config.epochs, seed=self.seed, progress=False))

    def learned_layer(self) -> int:
        """The layer whose LTV scores best on the ``dev`` split (its early-stopping score; scored on ``test``)."""
        dev = [self._learn(k)[1].val.mean for k in range(self.model.n_layers)]
        return self.task.metric.best(dev)

    def maps(self) -> Any:
        """Direct maps of LTVs injected at the first layer, the vanilla layer and the last layer."""
        def make() -> Any:
            layer = self.vanilla()[1]
            layers = sorted({0, layer, self.model.n_layers - 1})
            return injection_layer_maps(self.model, self.task, layers=layers,
                                        vectors={k: self.learned(k) for k in layers},
                                        n_prompts=self.config.dynamics_prompts, n_copies=2 * self.model.d_model + 64,
                                        seed=self.seed)
        return self.memo("maps", make)


@dataclass(frozen=True)
class Claim:
    """One paper claim and how the ledger measures it.

    Attributes:
        name: its key in :data:`CLAIMS`.
        statement: the claim, as the paper makes it.
        paper: who makes it.
        effect: what is measured per task and seed (positive when the claim holds).
        margin: the effect the claim needs (``0``: "better than").
        models: the zoo models it is measured on; for a contrast, the hardest first.
        measure: ``Unit → effect`` (for a contrast: ``Unit → value`` of that unit's model).
        contrast: one row per easier model ``m``: the effect is ``mean(models[0]) − mean(m)`` over the two
            models' task means.
    """

    name: str
    statement: str
    paper: str
    effect: str
    margin: float
    models: tuple[str, ...]
    measure: Callable[[Unit], float]
    contrast: bool = False


def _ltv_vs_vtv(u: Unit) -> float:
    tv, layer = u.vanilla()
    return u.score("injected", u.learned(layer)) - u.score("injected", tv)


def _ltv_vs_icl(u: Unit) -> float:
    return u.score("injected", u.learned(u.learned_layer())) - u.score("icl")


def _vtv_vs_zero(u: Unit) -> float:
    return u.score("injected", u.vanilla()[0]) - u.score("zero_shot")


def _early_share(u: Unit) -> float:
    zero, icl = u.score("zero_shot"), u.score("icl")
    early = u.score("injected", u.learned(1, positions=1))
    return (early - zero) / (icl - zero) if icl != zero else float("nan")


def _key_heads(u: Unit) -> float:
    layer = u.vanilla()[1]
    s = key_head_analysis(u.model, u.task, u.learned(layer), n_prompts=u.config.n_prompts, n_shots=u.config.n_shots,
                          seed=u.seed).summary()
    return s["random_ablated"] - s["key_ablated"]


def _theta_ov(u: Unit) -> float:
    layer = u.vanilla()[1]
    return ov_decomposition(u.model, u.task, u.learned(layer), batch=u.test).ov_share


def _linear_r2(u: Unit) -> float:
    maps = u.maps()
    return float(maps.maps[maps.layers.index(u.vanilla()[1])].r2.mean())


def _rotation(u: Unit) -> float:
    return u.maps().trend("cos_rotation")


def _tvp_at(name: str, u: Unit) -> float:
    other = Unit(name, u.task_id, u.seed, u.config, u.shared)
    profile = tvp_by_layer(other.model, other.task, n_prompts=u.config.n_prompts, n_shots=u.config.n_shots,
                           seed=u.splits.test)
    return float(profile.tvp[PERM_TVP_LAYER])


def _tvp_loss(u: Unit) -> float:
    return _tvp_at("perm-mix-tvp", u) - _tvp_at("perm-mix", u)


def _tv_layer(u: Unit) -> float:
    """Where the vector forms: the first layer whose TVP mode reaches half of ICL's gain (``n_layers`` if none)."""
    profile = tvp_by_layer(u.model, u.task, n_prompts=u.config.n_prompts, n_shots=u.config.n_shots,
                           seed=u.splits.test)
    formed = profile.formation_layer()
    return float(u.model.n_layers if formed is None else formed)


def _head_weighted(u: Unit) -> float:
    """``1 − error(head-weighted LTV) / error(FV)`` on this unit's group of test prompts."""
    config = u.config
    shots = zoo.spec(u.name).train.n_shots
    made = u.memo_shared("regression_vectors", lambda: fidelity_vectors(
        u.model, u.family, ("function", "head_weighted"), train_shots=shots, n_prompts=config.n_prompts, seed=u.seed))
    every = u.memo_shared("regression_test", lambda: u.splits.sample(u.family, "test",
                                                                     config.n_prompts * config.n_tasks, shots))
    group = every.select(slice(u.task_id * config.n_prompts, (u.task_id + 1) * config.n_prompts))
    errors = {m: fidelity_score(u.model, u.family, group, m, made).mean for m in ("function", "head_weighted")}
    return 1 - errors["head_weighted"] / errors["function"]


_SYMBOLIC = ("perm-mix", "perm-mix-32", "token-offset")
_REGRESSION = ("linear-regression", "sparse-linear-regression", "sinusoid-regression")

#: Every claim the ledger measures, in the order of its table.
CLAIMS: dict[str, Claim] = {c.name: c for c in [
    Claim("ltv_beats_vanilla", "A learned task vector beats the vanilla (extracted) task vector",
          "Yang et al. 2025a", "accuracy of the LTV minus the vanilla TV's, zero-shot queries, at the vanilla TV's "
          "layer (chosen on dev prompts)", 0.0, _SYMBOLIC, _ltv_vs_vtv),
    Claim("ltv_near_icl", "A learned task vector in the zero-shot query comes within a few points of ICL",
          "Yang et al. 2025a", "accuracy of the LTV (zero-shot query; its layer chosen on dev prompts) minus 16-shot "
          "ICL accuracy on the same test prompts", -0.05, _SYMBOLIC, _ltv_vs_icl),
    Claim("vanilla_beats_zero_shot", "The vanilla task vector beats the zero-shot query",
          "Hendel et al. 2023", "accuracy of the vanilla TV minus zero-shot accuracy", 0.0, _SYMBOLIC, _vtv_vs_zero),
    Claim("ltv_early_position", "A learned vector works at an early position (the query token)",
          "Yang et al. 2025a", "share of ICL's gain over zero-shot recovered by an LTV at layer 1, position 1", 0.5,
          _SYMBOLIC, _early_share),
    Claim("key_heads", "Ablating a few key heads hurts the injected vector far more than ablating random heads",
          "Yang et al. 2025a", "accuracy with 10 % random heads ablated minus with the key heads ablated (heads "
          "chosen on dev prompts, scored on test prompts)", 0.05, _SYMBOLIC, _key_heads),
    Claim("theta_ov", "θ_OV = Σ θ W_V W_O re-injected in place of θ recovers most of its effect",
          "Yang et al. 2025a", "share of the LTV's gain over zero-shot that θ_OV recovers", 0.5, _SYMBOLIC,
          _theta_ov),
    Claim("linear_propagation", "An injected vector propagates almost linearly to the final stream",
          "Yang et al. 2025a", "held-out R² of the per-prompt linear map from the LTV's layer to the final stream",
          0.9, _SYMBOLIC, _linear_r2),
    Claim("rotation_then_scaling", "Vectors injected early are rotated, vectors injected late mostly scaled",
          "Yang et al. 2025a", "cos(θ, Qθ) of the direct map of an LTV injected at the last layer minus one injected "
          "at layer 0", 0.0, _SYMBOLIC, _rotation),
    Claim("head_weighted_beats_fv", "The head-weighted learned vector carries regression functions far better "
          "than the function vector", "Saglam et al. 2025", "1 − error(head-weighted LTV) / error(FV), unshifted "
          "prompts of the training length (groups of fresh functions)", 0.5, _REGRESSION, _head_weighted),
    Claim("tvp_loss", "Training with the TVP-loss raises TVP-mode accuracy at its layer",
          "Yang et al. 2025b", f"TVP-mode accuracy at layer {PERM_TVP_LAYER} of perm-mix-tvp minus perm-mix "
          "(same tasks and prompts)", 0.0, ("perm-mix-tvp",), _tvp_loss),
    Claim("depth_vs_complexity", "The task vector forms deeper for more complex tasks",
          "Yang et al. 2025b", "formation layer (first layer whose TVP mode reaches half of ICL's gain) of the "
          "32-permutation mixture minus the 8- (or 2-) permutation mixture's (same-shaped models)", 0.0,
          ("perm-mix-32", "perm-mix", "perm-mix-2"), _tv_layer, contrast=True),
]}


@dataclass(frozen=True, eq=False)
class LedgerRow:
    """One claim on one model (or one contrast of two): the effect's interval and the verdict."""

    claim: str
    statement: str
    paper: str
    model: str
    effect: str
    margin: float
    mean: float
    low: float
    high: float
    verdict: str
    n_tasks: int
    n_seeds: int
    values: dict[str, Float[Tensor, "tasks seeds"]] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The row without its per-unit values."""
        return {k: getattr(self, k) for k in ("claim", "statement", "paper", "model", "effect", "margin", "mean",
                                              "low", "high", "verdict", "n_tasks", "n_seeds")}


@dataclass(frozen=True, eq=False)
class ClaimsLedger(Records):
    """Every measured claim: one :class:`LedgerRow` per claim and model, in :data:`CLAIMS` order."""

    rows: list[LedgerRow]
    config: LedgerConfig

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

    def to_markdown(self) -> str:
        """The ledger as a markdown table."""
        lines = ["| claim | paper | model | effect: mean [95 % interval] | needs | tasks × seeds | verdict |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.statement} | {r.paper} | {r.model} | {r.mean:+.3f} [{r.low:+.3f}, {r.high:+.3f}] | "
                         f"> {r.margin:g} | {r.n_tasks} × {r.n_seeds} | **{r.verdict}** |")
        return "\n".join(lines)


def _units(name: str, config: LedgerConfig) -> list[tuple[int, int]]:
    family = zoo.task(name)
    n_tasks = min(config.n_tasks, family.n_tasks) if family.n_tasks else config.n_tasks
    return [(t, s) for t in range(n_tasks) for s in config.seeds]


def claims_ledger(config: LedgerConfig | None = None, progress: bool = False) -> ClaimsLedger:
    """Measure every claim of :data:`CLAIMS` (or ``config.claims``) on its zoo models.

    Claims are measured model by model, unit by unit, so the vectors a unit learns (its vanilla TV,
    its LTVs) are shared by every claim that needs them.
    """
    config = config or LedgerConfig()
    names = config.claims or tuple(CLAIMS)
    claims = [CLAIMS[n] for n in names]
    models: list[str] = []
    for c in claims:
        models += [m for m in c.models if m not in models]
    total = sum(len(_units(m, config)) for c in claims for m in c.models)
    values: dict[tuple[str, str], list[float]] = {}
    units: dict[tuple[str, int, int], Unit] = {}
    shared: dict[Any, Any] = {}
    with tqdm(total=total, desc="claims ledger", disable=not progress, leave=False, delay=0.5) as bar:
        for model in models:  # model-major: a unit's vectors serve all its claims before it is dropped
            for task_id, seed in _units(model, config):
                for c in claims:
                    if model not in c.models:
                        continue
                    key = (model, task_id, seed)
                    if key not in units:
                        units.clear()  # one unit alive at a time: its vectors serve its claims, then go
                        units[key] = Unit(model, task_id, seed, config, shared)
                    values.setdefault((c.name, model), []).append(c.measure(units[key]))
                    bar.update(1)
    rows = []
    for c in claims:
        shaped = {m: torch.tensor(values[(c.name, m)], dtype=torch.float64).view(-1, len(config.seeds))
                  for m in c.models}
        if c.contrast:
            hard = c.models[0]
            groups = [(f"{hard} vs {easy}", {hard: shaped[hard], easy: shaped[easy]},
                       *contrast_interval(shaped[hard], shaped[easy])) for easy in c.models[1:]]
        else:
            groups = [(m, {m: v}, *task_interval(v)) for m, v in shaped.items()]
        for label, vals, mean, low, high in groups:
            n_tasks = min(v.shape[0] for v in vals.values())
            rows.append(LedgerRow(claim=c.name, statement=c.statement, paper=c.paper, model=label, effect=c.effect,
                                  margin=c.margin, mean=mean, low=low, high=high,
                                  verdict=verdict(low, high, c.margin), n_tasks=n_tasks, n_seeds=len(config.seeds),
                                  values=vals))
    return ClaimsLedger(rows=rows, config=config)


__all__ = ["CLAIMS", "Claim", "ClaimsLedger", "LedgerConfig", "LedgerRow", "Unit", "claims_ledger",
           "contrast_interval", "t_quantile", "task_interval", "verdict"]
