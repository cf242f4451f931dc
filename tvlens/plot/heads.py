"""Head-level figures: ``[layer × head]`` heatmaps, key vs random ablation, attention patterns."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from tvlens.analysis.heads import KeyHeadResult
from tvlens.plot.style import color, layout
from tvlens.tasks.metric import metric_named


def head_heatmap(values: Float[Tensor, "n_layers n_heads"], title: str, value_name: str = "value",
                 marked: Sequence[tuple[int, int]] = (), diverging: bool = False) -> go.Figure:
    """A ``[layer × head]`` heatmap (NaN cells — heads not scored — stay blank); ``marked`` heads get a box.

    Hover names layer, head and value.
    """
    v = values.double()
    text = [[f"layer {lay}, head {h}<br>{value_name} = {v[lay, h]:.4g}" if not torch.isnan(v[lay, h])
             else f"layer {lay}, head {h}<br>not scored" for h in range(v.shape[1])] for lay in range(v.shape[0])]
    finite = v[~torch.isnan(v)]
    bound = float(finite.abs().max()) if finite.numel() else 1.0
    fig = go.Figure(go.Heatmap(
        z=[[None if torch.isnan(x) else float(x) for x in row] for row in v], x=list(range(v.shape[1])),
        y=list(range(v.shape[0])), text=text, hoverinfo="text", colorbar={"title": value_name},
        colorscale="RdBu" if diverging else "Viridis", zmid=0 if diverging else None,
        zmin=-bound if diverging else None, zmax=bound if diverging else None))
    for layer, head in marked:
        fig.add_shape(type="rect", x0=head - 0.5, x1=head + 0.5, y0=layer - 0.5, y1=layer + 0.5,
                      line={"color": color("key"), "width": 3})
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(dtick=1)
    return layout(fig, title, "head", "layer")


def key_vs_random_figure(result: KeyHeadResult, title: str = "Ablating key heads vs random heads") -> go.Figure:
    """Bars: injected, key heads ablated, random heads ablated (mean ± standard error), zero-shot; dots:
    every random draw (hover lists its heads)."""
    metric = metric_named(result.metric_name).label
    s = result.summary()
    bars = [("zero-shot", s["zero_shot"], s["zero_shot_stderr"], color("zero_shot")),
            ("vector injected", s["injected"], s["injected_stderr"], color("vector")),
            (f"{len(result.key_heads)} key heads ablated", s["key_ablated"], s["key_ablated_stderr"], color("key")),
            (f"{len(result.key_heads)} random heads ablated", s["random_ablated"], s["random_ablated_stderr"],
             color("random"))]
    fig = go.Figure(go.Bar(x=[b[0] for b in bars], y=[b[1] for b in bars], marker_color=[b[3] for b in bars],
                           error_y={"type": "data", "array": [b[2] for b in bars]},
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>", name="mean", showlegend=False))
    draws = result.random.tolist()
    fig.add_trace(go.Scatter(x=[bars[3][0]] * len(draws), y=draws, mode="markers", name="random draws",
                             marker={"color": "black", "size": 6, "opacity": 0.6},
                             text=[", ".join(f"L{lay}H{h}" for lay, h in d) for d in result.random_heads],
                             hovertemplate="draw: %{text}<br>%{y:.3f}<extra></extra>"))
    key = ", ".join(f"L{lay}H{h}" for lay, h in result.key_heads)
    return layout(fig, f"{title} (key heads: {key}; {result.mode} ablation)", "", metric)


def layer_histogram_figure(result: KeyHeadResult, title: str = "Key heads per layer") -> go.Figure:
    counts = result.layer_histogram.tolist()
    fig = go.Figure(go.Bar(x=list(range(len(counts))), y=counts, marker_color=color("key"),
                           hovertemplate="layer %{x}: %{y} key heads<extra></extra>"))
    fig.update_xaxes(dtick=1)
    return layout(fig, title, "layer", "key heads")


def attention_figure(pattern: Float[Tensor, "query key"], tokens: Sequence[str], title: str = "Attention pattern",
                     ) -> go.Figure:
    """One head's attention pattern on one prompt, with the tokens as axis labels."""
    p = pattern.double()
    if p.ndim != 2 or p.shape[0] != p.shape[1] or p.shape[0] != len(tokens):
        raise ValueError(f"pattern has shape {tuple(p.shape)} for {len(tokens)} tokens; expected [n, n] with n tokens")
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    text = [[f"query {labels[q]}<br>key {labels[k]}<br>weight {p[q, k]:.3f}" for k in range(len(tokens))]
            for q in range(len(tokens))]
    fig = go.Figure(go.Heatmap(z=p.tolist(), x=labels, y=labels, text=text, hoverinfo="text", colorscale="Blues",
                               zmin=0, zmax=1, colorbar={"title": "weight"}))
    fig.update_yaxes(autorange="reversed")
    return layout(fig, title, "key position", "query position")


__all__ = ["attention_figure", "head_heatmap", "key_vs_random_figure", "layer_histogram_figure"]
