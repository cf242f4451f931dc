"""The ledger's table: one :class:`LedgerRow` per claim and model, the :class:`ClaimsLedger` that holds them, its
caption and its markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jaxtyping import Float
from torch import Tensor

from tvlens._records import Records
from tvlens.studies.ledger.catalog import CLAIMS, GATES, MADE_ON, NOT_TESTABLE_MEANS
from tvlens.studies.ledger.config import LedgerConfig
from tvlens.studies.ledger.verdicts import NOT_APPLICABLE, NOT_TESTABLE, UNMEASURED


@dataclass(frozen=True, eq=False)
class LedgerRow:
    """One claim on one model (or one contrast of two): the effect's interval, its control and the verdict.

    Attributes:
        mean, low, high: the effect (``control_rule="subtract"``: effect − control) and its unadjusted
            ``1 − alpha`` t-interval (Holm's step-down gives no simultaneous intervals: the verdict reads
            ``p_adjusted``).
        control: the control's mean (over task means).
        level: the row's Holm test level in its family (``alpha`` for a row outside every family).
        p_value: two-sided p-value of "effect = margin"; ``p_adjusted``: Holm-adjusted in the row's family (the
            primary hypotheses, or the rows of its exploratory claim).
        p_equivalence: the Holm-adjusted TOST p-value of "the effect lies within ``±delta`` of zero".
        mde: the minimum detectable effect of the row's test at its level with 80 % power.
        primary: the row's claim is its paper's primary hypothesis (else exploratory).
        delta: the claim's smallest effect of interest (NaN: none).
        verdict: ``holds``, ``does not hold``, ``no effect``, ``inconclusive``, ``not testable here`` or ``not
            applicable``; ``reason`` says why it is inconclusive, or what the model lacks (a row not measured has
            NaN numbers and no values).
        unconverged: learned vectors behind the row whose ``dev`` loss was still improving at the budget.
        n_models: independently trained models the interval is over (a zoo family's, or a training claim's
            replicates), each averaged over its tasks × seeds; 1: the interval is over one model's task means.
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
    p_adjusted: float = math.nan
    p_equivalence: float = math.nan
    mde: float = math.nan
    primary: bool = False
    delta: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """The row without its per-unit values."""
        return {k: getattr(self, k) for k in ("claim", "statement", "paper", "model", "effect", "margin", "mean",
                                              "low", "high", "control", "verdict", "reason", "level", "p_value",
                                              "n_tasks", "n_seeds", "n_models", "unconverged", "gate", "p_adjusted",
                                              "p_equivalence", "mde", "primary", "delta")}

    @property
    def sample(self) -> str:
        """What the row measured: ``tasks × seeds`` of one model, or ``models × tasks × seeds`` (the interval over
        the model means)."""
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

    def site_gates(self) -> dict[str, float]:
        """Per model, the gate of its mechanism claims' site (:data:`~tvlens.studies.ledger.catalog.GATES`
        ``"site"``: the share of ICL's gain on held-out queries the learned vector at the vanilla TV's layer recovers),
        for every model a gated claim was measured on."""
        return {r.model: r.gate for r in self.rows if CLAIMS[r.claim].gate == "site" and math.isfinite(r.gate)}

    def sites_sentence(self) -> str:
        """Which models' sites pass the site gate and which do not, with each gate value ("" without gated rows)."""
        gates = self.site_gates()
        if not gates:
            return ""
        threshold = GATES["site"].threshold

        def listed(names: list[str]) -> str:
            return ", ".join(f"{m} ({gates[m]:.2f})" for m in names) or "none"
        return (f" Sites where a mechanism claim can be decided (the learned vector at the vanilla TV's layer recovers "
                f"at least {threshold:.0%} of ICL's gain on held-out queries): "
                f"{listed([m for m, g in gates.items() if g >= threshold])}; below the gate: "
                f"{listed([m for m, g in gates.items() if g < threshold])}.")

    def caption(self) -> str:
        """How to read the table: the intervals' adjustment and what a verdict means."""
        measured = [r for r in self.rows if r.verdict not in (*UNMEASURED, NOT_TESTABLE)]
        skipped = sum(r.verdict == NOT_APPLICABLE for r in self.rows)
        na = (f" {skipped} rows are not applicable: the model lacks what the claim needs (the row says what)."
              if skipped else "")
        untested = sum(r.verdict == NOT_TESTABLE for r in self.rows)
        if untested:
            na += (f" {untested} rows are {NOT_TESTABLE}: {NOT_TESTABLE_MEANS}. Their interval is shown, "
                   "outside the Holm families (no p-value).")
        if self.errors:
            na += (f" {len(self.errors)} model(s) failed ({', '.join(self.errors)}): their rows are not measured "
                   "(the row gives the error).")
        decided = [r for r in measured if r.verdict not in (NOT_TESTABLE, *UNMEASURED)]
        powered = sum(math.isfinite(r.delta) and r.mde <= r.delta for r in decided)
        n_primary = sum(r.primary for r in measured)
        return (f"{self.where()}Effects on held-out queries, each with its unadjusted {1 - self.config.alpha:.0%} "
                "Student-t interval: over the model means where a row reads several independently trained models "
                "(each the mean over its tasks × seeds: tasks nested in models), else over one model's task means "
                "(seeds averaged within a task; Welch for contrasts). At most "
                f"one claim per paper is its primary hypothesis, declared before any number: the {n_primary} primary "
                f"rows are one Holm family at a family-wise error rate of {self.config.alpha:g}; every other row is "
                "exploratory, Holm-adjusted within its claim (across models). Verdicts read the Holm-adjusted "
                "p-values (shown): a claim holds when its test against the margin rejects above it and its control "
                "does not clear the margin; it does not hold when the test rejects below the margin; no effect when "
                "two one-sided tests put it within ±δ of zero; a row whose learned vectors did not converge says so. "
                f"{powered} of the {len(decided)} decided rows could detect an effect of δ with 80 % power (minimum "
                f"detectable effect ≤ δ).{na}{self.sites_sentence()}"
                + (" Word-pair rows score the exact match of the whole generated answer (as Todd et al. read "
                   "generations), not its first token; a row whose prompts are moved to another position on a model "
                   "with learned positions keeps first tokens." if self.config.whole_answers else ""))

    def where(self) -> str:
        """The sentence that says on what models the rows were measured, when some are the zoo's: a verdict there
        says what holds on small synthetic models, where most of the papers made their claims on LLMs (the paper
        column says where each was made)."""
        from tvlens import zoo

        names = {m for r in self.rows for m in (r.values or (r.model,))} & set(zoo.list())
        if not names:
            return ""
        layers = sorted({zoo.spec(n).model.n_layers for n in names})
        width = sorted({zoo.spec(n).model.d_model for n in names})

        def span(values: list[int]) -> str:
            return f"{values[0]}" if len(values) == 1 else f"{values[0]}–{values[-1]}"
        return (f"Rows on zoo models were measured on small synthetic transformers trained by tvlens ({span(layers)} "
                f"layers, d_model {span(width)}; the tvlens zoo), not on the models the papers used: their verdicts "
                "say what holds on these models. ")

    def to_markdown(self) -> str:
        """The ledger as a markdown table, its caption first."""
        lines = [self.caption(), "",
                 "| claim | paper | hypothesis | model | effect: mean [95 % interval] | control | needs | δ | "
                 "(models ×) tasks × seeds | MDE | adjusted p | verdict |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            why = f" ({r.reason})" if r.reason else ""
            role = "primary" if CLAIMS[r.claim].primary else "exploratory"
            paper = f"{r.paper} (on {MADE_ON[r.paper]})" if MADE_ON.get(r.paper) else r.paper
            delta = "—" if CLAIMS[r.claim].delta is None else f"{CLAIMS[r.claim].delta:g}"
            if r.verdict in UNMEASURED:
                lines.append(f"| {r.statement} | {paper} | {role} | {r.model} | — | — | > {r.margin:g} | {delta} | "
                             f"— | — | — | **{r.verdict}**{why} |")
                continue
            note = f"; {r.unconverged} vectors not converged" if r.unconverged else ""
            if CLAIMS[r.claim].gate is not None and r.verdict != NOT_TESTABLE:  # a gated row says its gate passed
                note += f"; {CLAIMS[r.claim].gate} gate {r.gate:.2f}"
            p = "—" if r.verdict == NOT_TESTABLE else f"{r.p_adjusted:.2g}"
            lines.append(f"| {r.statement} | {paper} | {role} | {r.model} | {r.mean:+.3f} [{r.low:+.3f}, "
                         f"{r.high:+.3f}] | {r.control:+.3f} | > {r.margin:g} | {delta} | {r.sample} | "
                         f"{r.mde:.3f} | {p} | **{r.verdict}**{why}{note} |")
        return "\n".join(lines)


__all__ = ["ClaimsLedger", "LedgerRow"]
