"""One look for every tvlens figure: a colour per method (the same in every figure) and shared layout.

A vector method's colour and name come from its registration (:data:`tvlens.vectors.bench.METHODS`); the
reference lines and readings that are not methods are listed here.
"""

from __future__ import annotations

import plotly.graph_objects as go

from tvlens.vectors.bench import METHODS

#: Colour of each reference line or reading that is not a vector method, used by every figure.
METHOD_COLORS = {
    "icl": "#1b9e77",
    "zero_shot": "#7f7f7f",
    "tvp": "#1f78b4",
    "key": "#e31a1c",
    "random": "#a6cee3",
    "theta_ov": "#b15928",
    "theta_mlp": "#fdbf6f",
    "vector": "#e7298a",
}
#: Readable names.
METHOD_NAMES = {
    "icl": "ICL", "zero_shot": "zero-shot", "tvp": "TVP mode", "vector": "θ",
    "theta_ov": "θ_OV", "theta_mlp": "θ_MLP",
}
_EXTRA = ["#17becf", "#bcbd22", "#8c564b", "#9467bd", "#2ca02c", "#ff7f0e"]


def color(name: str, index: int = 0) -> str:
    """The colour of a method (its registered colour), a reference line, or a stable fallback for other labels."""
    if name in METHODS:
        return METHODS[name].color
    return METHOD_COLORS.get(name, _EXTRA[index % len(_EXTRA)])


def name(key: str) -> str:
    """The readable name of a method (its registered label), a reference line, or the key itself."""
    if key in METHODS:
        return METHODS[key].label
    return METHOD_NAMES.get(key, key)


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` → ``rgba(r,g,b,alpha)`` for error bands."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def layout(fig: go.Figure, title: str, x: str, y: str, **kwargs) -> go.Figure:
    """Shared layout: white template, titles, legend on top, hover across traces."""
    fig.update_layout(template="plotly_white", title=title, xaxis_title=x, yaxis_title=y,
                      legend={"orientation": "h", "y": -0.2}, margin={"l": 60, "r": 20, "t": 60, "b": 60}, **kwargs)
    return fig


__all__ = ["METHOD_COLORS", "METHOD_NAMES", "color", "layout", "name", "rgba"]
