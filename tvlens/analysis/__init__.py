"""Analyses of how a task vector acts.

* :mod:`~tvlens.analysis.ov` — what each later head's OV circuit makes of θ; the θ_OV re-injection test.
* :mod:`~tvlens.analysis.heads` — saliency and exact ablation of heads, key heads vs random heads.
* :mod:`~tvlens.analysis.dynamics` — the linear maps that carry θ forward, split into rotation and scaling;
  the early-vs-late contrast of vectors injected at each layer.
"""

from tvlens.analysis.dynamics import (
    DynamicsResult,
    InjectionLayerMaps,
    LinearFit,
    MapReport,
    collect_changes,
    default_copies,
    fit_linear_map,
    fit_linear_maps,
    injection_layer_maps,
    linear_dynamics,
    logit_lens,
    polar_decomposition,
    principal_angles,
    subspace_share,
)
from tvlens.analysis.heads import (
    HeadScan,
    KeyHeadResult,
    ablate_heads,
    ablated_scores,
    ablation_scan,
    head_saliency,
    key_head_analysis,
    mean_head_activations,
    top_heads,
)
from tvlens.analysis.ov import FrozenDecomposition, OVResult, frozen_decomposition, ov_decomposition, theta_ov

__all__ = [
    "DynamicsResult",
    "FrozenDecomposition",
    "HeadScan",
    "KeyHeadResult",
    "OVResult",
    "ablate_heads",
    "ablated_scores",
    "ablation_scan",
    "frozen_decomposition",
    "head_saliency",
    "key_head_analysis",
    "mean_head_activations",
    "ov_decomposition",
    "theta_ov",
    "top_heads",
    "LinearFit",
    "MapReport",
    "collect_changes",
    "default_copies",
    "fit_linear_map",
    "fit_linear_maps",
    "InjectionLayerMaps",
    "injection_layer_maps",
    "linear_dynamics",
    "logit_lens",
    "polar_decomposition",
    "principal_angles",
    "subspace_share",
]
