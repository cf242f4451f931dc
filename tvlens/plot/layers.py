"""Figures over layers and training steps: TVP profiles, method comparisons, formation heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from tvlens.plot.style import color, layout, name, rgba
from tvlens.studies.formation import FormationTable, LayerProfile
from tvlens.tasks.metric import metric_named


def _metric_label(metric: str) -> str:
    return metric_named(metric).label


def _band(fig: go.Figure, x: Sequence[Any], mean: Sequence[float], stderr: Sequence[float], label: str, hue: str,
          hover: str, dash: str | None = None) -> None:
    """A line with a ±1 standard-error band."""
    upper = [m + s for m, s in zip(mean, stderr)]
    lower = [m - s for m, s in zip(mean, stderr)]
    fig.add_trace(go.Scatter(x=[*x, *x[::-1]], y=[*upper, *lower[::-1]], mode="lines", fill="toself",
                             fillcolor=rgba(hue, 0.18),
                             line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=label))
    fig.add_trace(go.Scatter(x=list(x), y=list(mean), mode="lines+markers", name=label, legendgroup=label,
                             line={"color": hue, "dash": dash}, customdata=list(stderr),
                             hovertemplate=hover + "<extra>" + label + "</extra>"))


def profile_figure(profiles: LayerProfile | Mapping[str, LayerProfile], title: str = "TVP mode by layer",
                   mark_layer: int | None = None) -> go.Figure:
    """TVP-mode score per layer (with error bands) and ICL / zero-shot reference lines, per model.

    Args:
        profiles: one :class:`LayerProfile` or ``{label: profile}`` (several models side by side).
        mark_layer: a layer to mark (e.g. the layer a TVP-loss pins the vector to).
    """
    if isinstance(profiles, LayerProfile):
        profiles = {profiles.label or "model": profiles}
    fig = go.Figure()
    metric = next(iter(profiles.values())).metric
    for i, (label, p) in enumerate(profiles.items()):
        hue = color(label, i) if len(profiles) > 1 else color("tvp")
        layers = list(range(p.tvp.shape[0]))
        prefix = f"{label}: " if len(profiles) > 1 else ""
        _band(fig, layers, p.tvp.tolist(), p.tvp_stderr.tolist(), f"{prefix}TVP mode", hue,
              "layer %{x}<br>TVP %{y:.3f} ± %{customdata:.3f}")
        for key, value, err in (("icl", p.icl, p.icl_stderr), ("zero_shot", p.zero_shot, p.zero_shot_stderr)):
            fig.add_trace(go.Scatter(x=[layers[0], layers[-1]], y=[value, value], mode="lines",
                                     name=f"{prefix}{name(key)}", line={"color": color(key) if len(profiles) == 1
                                                                        else hue, "dash": "dot" if key == "icl"
                                                                        else "dash"},
                                     hovertemplate=f"{name(key)} {value:.3f} ± {err:.3f}<extra>{label}</extra>"))
    if mark_layer is not None:
        fig.add_vline(x=mark_layer, line={"color": "black", "dash": "dot"}, annotation_text=f"layer {mark_layer}")
    fig.update_xaxes(dtick=1)
    return layout(fig, title, "layer (resid_pre)", _metric_label(metric))


def method_layers_figure(records: Sequence[Mapping[str, Any]], title: str = "Task vectors by layer",
                         value: str = "accuracy") -> go.Figure:
    """Score per layer and method from tidy rows ``{method, layer, <value>, stderr}`` (e.g.
    :class:`~tvlens.vectors.compare.Comparison` records); rows without a layer become horizontal lines."""
    fig = go.Figure()
    methods = list(dict.fromkeys(r["method"] for r in records))
    layers = sorted({r["layer"] for r in records if r.get("layer") is not None})
    for i, method in enumerate(methods):
        rows = sorted((r for r in records if r["method"] == method), key=lambda r: (r["layer"] is None, r["layer"]))
        if rows[0].get("layer") is None:
            v, s = rows[0][value], rows[0].get("stderr", 0.0)
            fig.add_trace(go.Scatter(x=[layers[0], layers[-1]] if layers else [0, 1], y=[v, v], mode="lines",
                                     name=name(method), line={"color": color(method, i), "dash": "dot"},
                                     hovertemplate=f"{name(method)} {v:.3f} ± {s:.3f}<extra></extra>"))
            continue
        _band(fig, [r["layer"] for r in rows], [r[value] for r in rows], [r.get("stderr", 0.0) for r in rows],
              name(method), color(method, i), "layer %{x}<br>%{y:.3f} ± %{customdata:.3f}")
    fig.update_xaxes(dtick=1)
    return layout(fig, title, "layer", value.replace("_", " "))


def formation_heatmap(table: FormationTable, title: str | None = None) -> go.Figure:
    """Yang et al. 2025b's heatmap: TVP-mode score at every ``[training step × layer]``."""
    z = table.tvp.T.tolist()  # layers on the y axis
    steps = table.steps.tolist()
    text = [[f"step {s}<br>layer {layer}<br>TVP {table.tvp[i, layer]:.3f} ± {table.tvp_stderr[i, layer]:.3f}"
             f"<br>ICL {table.icl[i]:.3f}, zero-shot {table.zero_shot[i]:.3f}" for i, s in enumerate(steps)]
            for layer in range(table.tvp.shape[1])]
    fig = go.Figure(go.Heatmap(z=z, x=[str(s) for s in steps], y=list(range(table.tvp.shape[1])), text=text,
                               hoverinfo="text", colorscale="Viridis",
                               reversescale=not metric_named(table.metric).higher_is_better,
                               colorbar={"title": "TVP " + _metric_label(table.metric)}))
    fig.update_yaxes(tickmode="linear", tick0=0, dtick=1)  # layers are integers (no ticks at ±0.5)
    suffix = f" — {table.label}" if table.label else ""
    return layout(fig, title or f"Where the task vector forms during training{suffix}", "training step", "layer")


__all__ = ["formation_heatmap", "method_layers_figure", "profile_figure"]
