"""Interactive plotly figures of tvlens results.

Every function is pure: a result object (or tensors and labels) in, a ``plotly.graph_objects.Figure``
out. Hover text names the layer, head or token and the value; each method has one colour in every
figure (its registered colour, :data:`~tvlens.vectors.METHODS`; reference lines:
:data:`~tvlens.plot.style.METHOD_COLORS`).
"""

from tvlens.plot.analysis import (
    dynamics_figure,
    injection_layers_figure,
    logit_lens_figure,
    paths_figure,
    reinjection_figure,
)
from tvlens.plot.heads import attention_figure, head_heatmap, key_vs_random_figure, layer_histogram_figure
from tvlens.plot.layers import formation_heatmap, method_layers_figure, profile_figure
from tvlens.plot.style import METHOD_COLORS
from tvlens.plot.tables import ledger_figure, method_table_figure, regression_figure

__all__ = [
    "METHOD_COLORS",
    "attention_figure",
    "dynamics_figure",
    "injection_layers_figure",
    "paths_figure",
    "formation_heatmap",
    "head_heatmap",
    "key_vs_random_figure",
    "layer_histogram_figure",
    "logit_lens_figure",
    "method_layers_figure",
    "ledger_figure",
    "method_table_figure",
    "profile_figure",
    "regression_figure",
    "reinjection_figure",
]
