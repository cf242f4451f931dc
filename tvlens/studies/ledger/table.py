"""The ledger's table: one :class:`LedgerRow` per claim and model, the :class:`ClaimsLedger` that holds them, its
caption and its markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jaxtyping import Float
from torch import Tensor

from tvlens._records import Records
from tvlens.studies.ledger.catalog import CLAIMS, NOT_TESTABLE_MEANS
from tvlens.studies.ledger.config import LedgerConfig
from tvlens.studies.ledger.verdicts import NOT_APPLICABLE, NOT_TESTABLE, UNMEASURED


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


__all__ = ["ClaimsLedger", "LedgerRow"]
