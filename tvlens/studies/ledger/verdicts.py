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
* **Verdict.** ``holds`` (the adjusted interval lies above the margin), ``does not hold`` (below it) or
  ``inconclusive`` with the reason: fewer than three tasks (a t-interval over two means is almost all
  width), a zero-width interval (every task gave the same number: a ceiling, a tie, an integer statistic —
  no variance to test against), or an interval that straddles the margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jaxtyping import Float
from scipy import stats
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


#: The verdict of a claim that was not measured because the model lacks what it needs (its row says what).
NOT_APPLICABLE = "not applicable"
#: The verdict of a row whose claim's gate failed on its model, so a negative could not show there (a mechanism claim
#: whose site carries no task vector, :data:`GATE`): the row's numbers are shown, not decided.
NOT_TESTABLE = "not testable here"
#: The share of ICL's gain over zero-shot a learned vector must recover on held-out queries at a mechanism claim's
#: site for the claim to be decided there.
GATE = 0.5
#: The verdict of a row whose model failed (its reason is the error): nothing was measured on it.
NOT_MEASURED = "not measured"
#: The verdicts of rows with no numbers (NaN mean and interval, no values).
UNMEASURED = (NOT_APPLICABLE, NOT_MEASURED)
#: Every verdict a ledger row can have.
VERDICTS = ("holds", "does not hold", "inconclusive", NOT_TESTABLE, NOT_APPLICABLE, NOT_MEASURED)


def verdict(low: float, high: float, margin: float, n_tasks: int = MIN_TASKS,
            zero_width: bool = False, unit: str = "task") -> tuple[str, str]:
    """``(verdict, reason)`` for an interval against the claim's ``margin``.

    ``holds`` when the whole interval lies above the margin, ``does not hold`` when it lies below it, else
    ``inconclusive`` — also, whatever the interval, with fewer than :data:`MIN_TASKS` of the ``unit``
    the interval is over (``n_tasks`` tasks, or trained models) or a zero-width interval. The reason is empty for
    a decided verdict."""
    if any(math.isnan(x) for x in (low, high, margin)):
        raise ValueError(f"verdict: NaN in the interval [{low}, {high}] or the margin {margin}")
    if n_tasks < MIN_TASKS:
        return "inconclusive", f"fewer than {MIN_TASKS} {unit}s ({n_tasks})"
    if zero_width or low == high:
        return "inconclusive", f"zero-width interval: every {unit} gave the same value"
    if low > margin:
        return "holds", ""
    if high < margin:
        return "does not hold", ""
    return "inconclusive", "the interval straddles the margin"


__all__ = ["ALPHA", "GATE", "MIN_TASKS", "NOT_APPLICABLE", "NOT_MEASURED", "NOT_TESTABLE", "UNMEASURED", "VERDICTS",
           "Estimate", "contrast_estimate", "contrast_interval", "holm_levels", "t_quantile", "task_estimate",
           "task_interval", "verdict"]
