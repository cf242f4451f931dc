"""The claims ledger: the papers' claims tvlens can test, measured across tasks and seeds, each beside its
control, with a verdict a referee would accept.

A finding measured on one task of one family with one seed says little about the claim behind it.
The ledger measures each claim's **effect** — a number that is positive when the claim holds, e.g.
"accuracy of the LTV minus accuracy of the vanilla TV" — on every zoo family where the claim applies,
for ``n_tasks`` tasks of the family (a larger family: a sample drawn by the first seed) × ``len(seeds)`` seeds
(the seed draws every prompt stream, each task's partition of its queries and every learned vector;
:class:`~tvlens.tasks.Splits`) on each of the family's **independently trained
models** (:data:`~tvlens.zoo.specs.FAMILY_MODELS`: one recipe trained from seeds 0, 1 and 2). One trained model
would measure one training run, and a verdict on it would say nothing about the next model the recipe makes.

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

**Intervals and verdicts** (:mod:`tvlens.studies.ledger.verdicts`): tasks are nested in models, so a family's
row is Student's t over its **model means** (each the mean over that model's tasks × seeds; n is the number of
models, not of tasks, which would count one training run's prompts as independent evidence). A row on one model
(a researcher's model, a contrast's side) is Student's t over its task means (seeds averaged within a task), Welch
for a contrast of two models. Holm's adjustment runs over the primary hypotheses and within each exploratory claim,
and each row reads ``holds`` / ``does not hold`` / ``no effect`` / ``inconclusive`` with the reason. A learned
vector whose ``dev`` loss was still improving when its epoch budget ran out is counted in the row's
``unconverged``.

**Training claims** ("the TVP-loss raises …") compare models trained two ways. One model per arm would
measure one training run, so these claims are measured on independently trained pairs of each recipe
(``tvlens.zoo.specs.ARMS``: ``perm-mix-tvp-arm-s{i}`` against ``perm-mix-arm-s{i}``, and the token-offset and
linear-regression pairs alike:
the same steps, initial weights and prompt stream, only the loss differs, switched on once ICL has formed), one
row per recipe, and their interval is over the pairs (each pair's mean over tasks × seeds): the variance of
training counts, not only that of the prompts.

Regression families draw a fresh function for every prompt, so their "tasks" are ``n_tasks`` disjoint
groups of test prompts (independent functions) and their seeds re-learn the vectors.

**Where things live.** :mod:`~tvlens.studies.ledger.catalog`: the claims (:data:`CLAIMS`), how a unit measures
each, and the gates; :mod:`~tvlens.studies.ledger.unit`: the :class:`~tvlens.studies.ledger.unit.Workbench` a
claim measures on; :mod:`~tvlens.studies.ledger.table`: the rows and the table; :mod:`~tvlens.studies.ledger.run`:
:func:`claims_ledger`; :mod:`~tvlens.studies.ledger.config`: :class:`LedgerConfig`;
:mod:`~tvlens.studies.ledger.verdicts`: from
effects to verdicts. A new claim touches ``catalog.py`` only.
"""

from tvlens.studies.ledger.catalog import CLAIMS, GATES, NEEDS, NOT_TESTABLE_MEANS, Claim, Gate
from tvlens.studies.ledger.config import LedgerConfig
from tvlens.studies.ledger.run import MIN_DISTINCT_ANSWERS, ModelsFailed, claims_ledger, zoo_models_read
from tvlens.studies.ledger.table import ClaimsLedger, LedgerRow
from tvlens.studies.ledger.unit import Store, Workbench
from tvlens.studies.ledger.verdicts import NOT_APPLICABLE, NOT_MEASURED, NOT_TESTABLE

__all__ = ["CLAIMS", "GATES", "MIN_DISTINCT_ANSWERS", "NOT_APPLICABLE", "NOT_MEASURED", "NOT_TESTABLE",
           "NEEDS", "NOT_TESTABLE_MEANS", "Claim", "ClaimsLedger", "Gate", "LedgerConfig", "LedgerRow", "ModelsFailed",
           "Store", "Workbench", "claims_ledger", "zoo_models_read"]
