"""From a claim's measured effects to an interval and a verdict a referee would accept.

A claim is measured as an **effect** per task and seed (positive when the claim holds). This module turns
those numbers into one row of the claims ledger:

* **Estimate.** Seeds of one task share the task, so they are averaged within it; the estimate is the mean
  of the ``T`` task means with standard error ``s/√T`` on ``T − 1`` degrees of freedom (Student's t). A
  contrast of two models uses Welch's standard error ``√(s_a²/T_a + s_b²/T_b)`` and the Welch–Satterthwaite
  degrees of freedom ``(v_a + v_b)² / (v_a²/(T_a−1) + v_b²/(T_b−1))`` — fractional, used as they are
  (``scipy.stats.t``; a table rounded to integers would be up to 40 % too wide below 2 df).
* **Many rows, one error rate (Holm).** The ledger tests ``m`` rows at once. Each row's two-sided p-value
  for "effect = margin" is ranked; the ``k``-th smallest is tested at ``α / (m − k + 1)`` until the first
  row that is not rejected, and every later row at that row's level (Holm 1979: the family-wise error rate
  stays at ``α``). Each row's interval is the t-interval at its own level, so it excludes the margin exactly
  when its test rejects.
* **Holm-adjusted p-values.** ``p̃_(k) = max_{j ≤ k} min(1, (m − j + 1) p_(j))``: a row is rejected by Holm's
  procedure exactly when ``p̃ < α``. Holm's step-down gives no simultaneous intervals, so the ledger shows each
  row's unadjusted ``1 − α`` t-interval beside its adjusted p-value, and decides by the adjusted p-value.
* **A smallest effect of interest δ and equivalence.** Each claim states ``δ`` (in its effect's units). "No
  effect" is tested by two one-sided tests (TOST): ``H₀: μ ≤ −δ`` and ``H₀: μ ≥ δ``, ``p = max(p₋, p₊)`` with
  ``p₋ = P(T > (x̄ + δ)/se)`` and ``p₊ = P(T > (δ − x̄)/se)``, Holm-adjusted in the same family.
* **Power.** A row's minimum detectable effect (MDE) is the smallest true difference from the margin its
  two-sided t-test at its Holm level detects with 80 % power, ``d`` solving
  ``P(|T'| > t_{1−level/2, df}) = 0.8`` for ``T'`` noncentral t with noncentrality ``d / se`` (scipy's ``nct``).
  A row whose MDE exceeds δ could not decide an effect of δ.
* **Verdict.** ``holds`` (adjusted p below α, the effect above the margin), ``does not hold`` (below it),
  ``no effect`` (the equivalence test rejects: the effect lies within ±δ of zero) or ``inconclusive`` with
  the reason: fewer than three tasks (a t-interval over two means is almost all width), a zero-width
  interval (every task gave the same number: a ceiling, a tie, an integer statistic — no variance to test
  against), or neither test rejects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float
from scipy import optimize, stats
from torch import Tensor

#: The family-wise error rate of the ledger.
ALPHA = 0.05
#: Fewer tasks than this give an inconclusive verdict whatever the interval.
MIN_TASKS = 3


def t_quantile(df: float, level: float = 0.975) -> float:
    """Student's t quantile at ``level`` for ``df > 0`` degrees of freedom (fractional allowed)."""
    if not df > 0 or not math.isfinite(df):
        raise ValueError(f"df={df!r}: expected a positive, finite number of degrees of freedom")
    if not 0 < level < 1:
        raise ValueError(f"level={level!r}: expected a probability in (0, 1)")
    return float(stats.t.ppf(level, df))


@dataclass(frozen=True)
class Estimate:
    """A mean effect with its standard error and degrees of freedom.

    Attributes:
        mean: the estimate.
        se: its standard error (``0`` when every task gave the same value; ``inf`` below two tasks).
        df: Student-t degrees of freedom (``nan`` below two tasks).
        n_tasks: the fewest tasks behind it (a contrast: the smaller model's).
    """

    mean: float
    se: float
    df: float
    n_tasks: int

    def p_value(self, margin: float) -> float:
        """Two-sided p-value of "the effect equals ``margin``" (``1`` where no test is possible)."""
        if not self.testable:
            return 1.0
        return float(2 * stats.t.sf(abs(self.mean - margin) / self.se, self.df))

    def p_equivalence(self, delta: float) -> float:
        """The TOST p-value of "the effect lies within ``±delta`` of zero" (``1`` where no test is possible)."""
        if not self.testable or not delta > 0:
            return 1.0
        below = stats.t.sf((self.mean + delta) / self.se, self.df)  # H0: effect <= -delta
        above = stats.t.sf((delta - self.mean) / self.se, self.df)  # H0: effect >= +delta
        return float(max(below, above))

    def mde(self, level: float = ALPHA, power: float = 0.8) -> float:
        """The minimum detectable effect: the smallest true difference from the margin that a two-sided t-test
        at ``level`` detects with probability ``power`` (noncentral t; ``inf`` where no test is possible). Where
        scipy's noncentral t cannot be evaluated (very few degrees of freedom at a very small level), the usual
        approximation ``(t_{1−level/2} + t_{power}) · se``."""
        if not self.testable:
            return math.inf
        crit = float(stats.t.ppf(1 - level / 2, self.df))
        approximate = (crit + float(stats.t.ppf(power, self.df))) * self.se

        def shortfall(d: float) -> float:
            nc = d / self.se
            return float(stats.nct.sf(crit, self.df, nc) + stats.nct.cdf(-crit, self.df, nc)) - power

        high = 2 * approximate
        with np.errstate(all="ignore"):
            ends = shortfall(0.0), shortfall(high)
            if not all(math.isfinite(e) for e in ends) or ends[0] > 0 or ends[1] < 0:
                return approximate
            try:
                return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10 * high))
            except ValueError:  # a NaN inside the bracket
                return approximate

    def interval(self, alpha: float = ALPHA) -> tuple[float, float]:
        """The two-sided ``1 − alpha`` t-interval ``mean ± t_{1−alpha/2, df} · se``."""
        if not self.se > 0 or not math.isfinite(self.se) or not self.df > 0:
            half = 0.0 if self.se == 0 else math.inf
            return self.mean - half, self.mean + half
        half = t_quantile(self.df, 1 - alpha / 2) * self.se
        return self.mean - half, self.mean + half

    @property
    def testable(self) -> bool:
        return self.n_tasks >= 2 and self.se > 0 and math.isfinite(self.se)


def task_estimate(values: Float[Tensor, "tasks seeds"]) -> Estimate:
    """The estimate over task means (seeds averaged within a task)."""
    means = values.double().mean(1)
    n = means.numel()
    if n < 2:
        return Estimate(float(means.mean()), math.inf, math.nan, n)
    return Estimate(float(means.mean()), float(means.std()) / math.sqrt(n), float(n - 1), n)


def contrast_estimate(high: Float[Tensor, "tasks_a seeds"], low: Float[Tensor, "tasks_b seeds"]) -> Estimate:
    """Welch's estimate of ``mean(high) − mean(low)`` over the two models' task means."""
    a, b = high.double().mean(1), low.double().mean(1)
    diff, n = float(a.mean() - b.mean()), min(a.numel(), b.numel())
    if n < 2:
        return Estimate(diff, math.inf, math.nan, n)
    va, vb = float(a.var()) / a.numel(), float(b.var()) / b.numel()
    if va + vb == 0:
        return Estimate(diff, 0.0, math.nan, n)
    df = (va + vb) ** 2 / (va**2 / (a.numel() - 1) + vb**2 / (b.numel() - 1))
    return Estimate(diff, math.sqrt(va + vb), df, n)


def task_interval(values: Float[Tensor, "tasks seeds"], alpha: float = ALPHA) -> tuple[float, float, float]:
    """``(mean, low, high)``: the ``1 − alpha`` t-interval over the per-task means (seeds averaged within a task)."""
    estimate = task_estimate(values)
    return (estimate.mean, *estimate.interval(alpha))


def contrast_interval(high: Float[Tensor, "tasks_a seeds"], low: Float[Tensor, "tasks_b seeds"],
                      alpha: float = ALPHA) -> tuple[float, float, float]:
    """``(difference, low, high)``: Welch's ``1 − alpha`` interval for ``mean(high) − mean(low)`` over task means."""
    estimate = contrast_estimate(high, low)
    return (estimate.mean, *estimate.interval(alpha))


def holm_levels(p_values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """Each row's test level under Holm's step-down procedure over all ``len(p_values)`` rows.

    The ``k``-th smallest p-value (``k = 1 … m``) is tested at ``alpha / (m − k + 1)`` while every smaller
    one was rejected; from the first row that is not rejected on, every row keeps that row's level (none of
    them is rejected either). Ties keep their input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    levels = [alpha] * m
    stopped: float | None = None
    for k, i in enumerate(order):
        level = alpha / (m - k) if stopped is None else stopped
        levels[i] = level
        if stopped is None and not p_values[i] < level:
            stopped = level
    return levels


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in input order: ``p̃_(k) = max_{j ≤ k} min(1, (m − j + 1) p_(j))`` over the
    ascending p-values (a row is rejected at family-wise level ``α`` exactly when ``p̃ < α``)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [1.0] * m, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p_values[i]))
        adjusted[i] = running
    return adjusted


#: The verdict of a row whose effect lies within ±δ of zero (the equivalence test rejects).
NO_EFFECT = "no effect"
#: The verdict of a claim that was not measured because the model lacks what it needs (its row says what).
NOT_APPLICABLE = "not applicable"
#: The verdict of a row whose claim's gate failed on its model, so a negative could not show there (a mechanism claim
#: whose site carries no task vector, :data:`GATE`; a benefit claim whose baseline leaves no room for the benefit): the
#: row's numbers are shown, not decided.
NOT_TESTABLE = "not testable here"
#: The share of ICL's gain over zero-shot a learned vector must recover on held-out queries at a mechanism claim's
#: site for the claim to be decided there.
GATE = 0.5
#: The verdict of a row whose model failed (its reason is the error): nothing was measured on it.
NOT_MEASURED = "not measured"
#: The verdicts of rows with no numbers (NaN mean and interval, no values).
UNMEASURED = (NOT_APPLICABLE, NOT_MEASURED)
#: Every verdict a ledger row can have.
VERDICTS = ("holds", "does not hold", NO_EFFECT, "inconclusive", NOT_TESTABLE, NOT_APPLICABLE, NOT_MEASURED)


def _undecidable(n_tasks: int, zero_width: bool, unit: str) -> tuple[str, str] | None:
    """``inconclusive`` and why, whatever the test says, for fewer than :data:`MIN_TASKS` of the ``unit`` or a
    zero-width interval; ``None`` otherwise."""
    if n_tasks < MIN_TASKS:
        return "inconclusive", f"fewer than {MIN_TASKS} {unit}s ({n_tasks})"
    if zero_width:
        return "inconclusive", f"zero-width interval: every {unit} gave the same value"
    return None


def verdict(low: float, high: float, margin: float, n_tasks: int = MIN_TASKS,
            zero_width: bool = False, unit: str = "task") -> tuple[str, str]:
    """``(verdict, reason)`` for an interval against the claim's ``margin`` (the test against the margin read from
    an interval at the row's level: the ledger decides with :func:`decide`, which adds the equivalence test).

    ``holds`` when the whole interval lies above the margin, ``does not hold`` when it lies below it, else
    ``inconclusive`` — also, whatever the interval, with fewer than :data:`MIN_TASKS` of the ``unit``
    the interval is over (``n_tasks`` tasks, or trained models) or a zero-width interval. The reason is empty for
    a decided verdict."""
    if any(math.isnan(x) for x in (low, high, margin)):
        raise ValueError(f"verdict: NaN in the interval [{low}, {high}] or the margin {margin}")
    undecidable = _undecidable(n_tasks, zero_width or low == high, unit)
    if undecidable is not None:
        return undecidable
    if low > margin:
        return "holds", ""
    if high < margin:
        return "does not hold", ""
    return "inconclusive", "the interval straddles the margin"


def decide(estimate: Estimate, margin: float, delta: float | None, p_adjusted: float, p_equivalence: float,
           alpha: float = ALPHA, unit: str = "task") -> tuple[str, str]:
    """``(verdict, reason)`` from a row's Holm-adjusted p-values: ``holds`` / ``does not hold`` when the test against
    the margin rejects (by the side the estimate lies on), ``no effect`` when the equivalence test within ``±delta``
    rejects, else ``inconclusive`` — also, whatever the p-values, with fewer than :data:`MIN_TASKS` of the ``unit``
    or a zero-width interval."""
    if any(math.isnan(x) for x in (estimate.mean, margin, p_adjusted, p_equivalence)):
        raise ValueError(f"decide: NaN in the estimate {estimate.mean}, the margin {margin} or a p-value")
    undecidable = _undecidable(estimate.n_tasks, estimate.se == 0, unit)
    if undecidable is not None:
        return undecidable
    if p_adjusted < alpha:
        return ("holds", "") if estimate.mean > margin else ("does not hold", "")
    if delta is not None and p_equivalence < alpha:
        return NO_EFFECT, f"within ±{delta:g} of zero (two one-sided tests, adjusted p {p_equivalence:.3g})"
    return "inconclusive", "neither the test against the margin nor the equivalence test rejects"


__all__ = ["ALPHA", "GATE", "MIN_TASKS", "NOT_APPLICABLE", "NOT_MEASURED", "NOT_TESTABLE", "NO_EFFECT", "UNMEASURED",
           "VERDICTS", "Estimate", "contrast_estimate", "contrast_interval", "decide", "holm_adjusted", "holm_levels",
           "t_quantile", "task_estimate", "task_interval", "verdict"]
