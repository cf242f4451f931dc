"""Studies that reproduce the papers' findings on the zoo (or on your own model).

Each study is one function returning a result object (tensors or a tidy :class:`StudyTable`,
with the labels and seeds of its prompts) that the plotting layer draws and a user can rerun:

* :mod:`~tvlens.studies.ledger` — the claims ledger: the papers' testable claims over tasks × seeds, each
  beside its control, with a verdict.
* :mod:`~tvlens.studies.ledger.verdicts` — from effects to a verdict: Student/Welch intervals over task means, Holm's
  adjustment over a table's rows, ``holds`` / ``does not hold`` / ``inconclusive`` with the reason.
* :mod:`~tvlens.studies.formation` — where task vectors form (Yang et al. 2025b): TVP by layer, over
  training, with the TVP-loss, against task complexity.
* :mod:`~tvlens.studies.regression` — regression fidelity by prompt length and shift (Saglam et al. 2025).
* :mod:`~tvlens.studies.methods` — Yang et al. 2025a's learned vs vanilla vs function vectors table.
"""

from tvlens.studies.formation import (
    COMPLEXITY_LADDER,
    ComplexityResult,
    FormationTable,
    LayerProfile,
    TVPLossComparison,
    depth_vs_complexity,
    formation_from_checkpoints,
    formation_over_training,
    tvp_by_layer,
    tvp_loss_comparison,
    tvp_profiles,
)
from tvlens.studies.ledger import CLAIMS, Claim, ClaimsLedger, LedgerConfig, claims_ledger
from tvlens.studies.methods import SETTINGS, SYMBOLIC_ZOO, method_table
from tvlens.studies.regression import FIDELITY_METHODS, SHIFTS, regression_fidelity, shifted
from tvlens.studies.table import StudyTable

__all__ = [
    "CLAIMS",
    "Claim",
    "ClaimsLedger",
    "LedgerConfig",
    "claims_ledger",
    "COMPLEXITY_LADDER",
    "FIDELITY_METHODS",
    "SETTINGS",
    "SHIFTS",
    "SYMBOLIC_ZOO",
    "ComplexityResult",
    "FormationTable",
    "LayerProfile",
    "StudyTable",
    "TVPLossComparison",
    "depth_vs_complexity",
    "formation_from_checkpoints",
    "formation_over_training",
    "method_table",
    "regression_fidelity",
    "shifted",
    "tvp_by_layer",
    "tvp_profiles",
    "tvp_loss_comparison",
]
