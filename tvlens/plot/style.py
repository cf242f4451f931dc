"""One look for every tvlens figure: a colour per method (the same in every figure) and shared layout."""

from __future__ import annotations

import plotly.graph_objects as go

#: Colour of each method or reference line, used by every figure.
METHOD_COLORS = {
    "icl": "#1b9e77",
    "zero_shot": "#7f7f7f",
    "vanilla": "#d95f02",
    "function": "#7570b3",
    "learned": "#e7298a",
    "head_weighted": "#66a61e",
    "tvp": "#1f78b4",
    "key": "#e31a1c",
    "random": "#a6cee3",
    "theta_ov": "#b15928",
    "theta_mlp": "#fdbf6f",
    "vector": "#e7298a",
}
#: Readable names.
METHOD_NAMES = {
    "icl": "ICL", "zero_shot": "zero-shot", "vanilla": "vanilla TV", "function": "function vector",
    "learned": "learned TV", "head_weighted": "head-weighted LTV", "tvp": "TVP mode", "vector": "θ",
    "theta_ov": "θ_OV", "theta_mlp": "θ_MLP",
}
_EXTRA = ["#17becf", "#bcbd22", "#8c564b", "#9467bd", "#2ca02c", "#ff7f0e"]


def color(name: str, index: int = 0) -> str:
    """The colour of a method (or a stable fallback for other labels)."""
    return METHOD_COLORS.get(name, _EXTRA[index % len(_EXTRA)])


def name(key: str) -> str:
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
