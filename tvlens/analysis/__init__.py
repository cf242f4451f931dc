"""Analyses of how a task vector acts: linear dynamics (rotation and scaling of the maps that carry it)."""

from tvlens.analysis.dynamics import (
    DynamicsResult,
    LinearFit,
    MapReport,
    collect_changes,
    fit_linear_map,
    linear_dynamics,
    logit_lens,
    polar_decomposition,
    principal_angles,
    subspace_share,
)

__all__ = [
    "DynamicsResult",
    "LinearFit",
    "MapReport",
    "collect_changes",
    "fit_linear_map",
    "linear_dynamics",
    "logit_lens",
    "polar_decomposition",
    "principal_angles",
    "subspace_share",
]
