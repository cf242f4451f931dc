"""Figures of the propagation analyses: OV re-injection, the attention/MLP paths, linear dynamics by layer and by
injection layer, the logit lens."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tvlens.analysis.dynamics import DynamicsResult, InjectionLayerMaps
from tvlens.analysis.ov import OVResult
from tvlens.plot.style import color, layout, name
from tvlens.tasks.metric import metric_named


def reinjection_figure(result: OVResult, title: str = "Re-injecting the OV and MLP paths in place of θ") -> go.Figure:
    """Bars: zero-shot, θ, and each stand-in injected in θ's place — θ_OV, the prompt-averaged attention and MLP
    terms where they are written, each prompt's own terms (mean ± standard error)."""
    order = ("zero_shot", "vector", "theta_ov", "theta_attention", "theta_mlp", "attention_per_prompt",
             "mlp_per_prompt")
    keys = [k for k in order if k in result.reinjection]
    values = [result.reinjection[k] for k in keys]
    fig = go.Figure(go.Bar(x=[name(k) for k in keys], y=[v.mean for v in values],
                           error_y={"type": "data", "array": [v.stderr for v in values]},
                           marker_color=[color(k) for k in keys], hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    metric = metric_named(values[0].metric).label
    return layout(fig, f"{title} (θ_OV recovers {result.ov_share:.0%} of θ's gain)", "", metric)


def paths_figure(result: OVResult, title: str = "Where the vector's effect goes") -> go.Figure:
    """Per prompt, the answer effect of the final stream's change split into θ's direct path, the later attention
    outputs and the later MLP outputs (box per path; the three add up to the total of each prompt)."""
    fig = go.Figure()
    shares = result.path_shares()
    for i, key in enumerate(("direct", "attention", "mlp", "total")):
        label = key if key == "total" else f"{key} ({shares[key]:.0%})"
        fig.add_trace(go.Box(y=result.paths[key].tolist(), name=label, marker_color=color(key, i), boxmean=True,
                             hovertemplate=f"{key}: %{{y:.3f}}<extra></extra>"))
    return layout(fig, f"{title} (share of the mean effect per path)", "", "answer effect (logit margin)")


def injection_layers_figure(result: InjectionLayerMaps,
                            title: str = "Direct maps of vectors injected at each layer") -> go.Figure:
    """Per injection layer, the direct map of the vector learned there: rotation (cos(θ, Qθ), largest principal
    angle), scaling (anisotropy of Σ), fit (R²), label share of Qθ against a random vector's, answer-margin gain."""
    rows = result.to_records()
    x = [r["layer"] for r in rows]
    fig = make_subplots(rows=2, cols=3, subplot_titles=("rotation: cos(θ, Qθ)", "largest principal angle (rad)",
                                                        "anisotropy of Σ (max / mean)", "fit R²",
                                                        "label share: Qθ vs random", "answer-margin gain θ → Qθ"))
    panels = [("cos_rotation", 1, 1), ("max_angle", 1, 2), ("anisotropy", 1, 3), ("r2", 2, 1), ("share_qv", 2, 2),
              ("margin_gain", 2, 3)]
    for key, row, col in panels:
        fig.add_trace(go.Scatter(x=x, y=[r[key] for r in rows], mode="lines+markers", name=key, showlegend=False,
                                 line={"color": color("learned")},
                                 hovertemplate=f"layer %{{x}}<br>{key} %{{y:.3f}}<extra></extra>"), row, col)
    fig.add_trace(go.Scatter(x=x, y=[r["share_random"] for r in rows], mode="lines", name="random vector",
                             line={"color": "#999", "dash": "dot"},
                             hovertemplate="layer %{x}<br>random %{y:.3f}<extra></extra>"), 2, 2)
    fig.update_xaxes(title_text="injection layer", dtick=1)
    return layout(fig, title, "", "", height=620)


def dynamics_figure(result: DynamicsResult, title: str = "Linear dynamics of the injected vector") -> go.Figure:
    """Per layer-to-layer map (and the direct map): held-out R², cos(θ, Qθ), scaling spectrum, label-subspace share."""
    maps = [*result.steps, result.direct]
    labels = [f"{m.source}→{m.target}" for m in result.steps]
    labels.append(f"{result.direct.source}→{result.direct.target} (direct)")
    fig = make_subplots(rows=2, cols=2, subplot_titles=("fit R² (per prompt, mean)", "rotation: cos(θ, Qθ)",
                                                        "scaling: eigenvalues of Σ", "share in the label subspace"))
    r2 = [float(m.r2.mean()) for m in maps]
    cos = [float(m.cos_rotation.mean()) for m in maps]
    fig.add_trace(go.Scatter(x=labels, y=r2, mode="lines+markers", name="R²", line={"color": color("learned")},
                             hovertemplate="%{x}<br>R² %{y:.3f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=labels, y=cos, mode="lines+markers", name="cos(θ, Qθ)", line={"color": color("tvp")},
                             hovertemplate="%{x}<br>cos %{y:.3f}<extra></extra>"), 1, 2)
    for i, (label, m) in enumerate(zip(labels, maps)):
        spectrum = m.scaling.mean(0).tolist()
        fig.add_trace(go.Scatter(x=list(range(len(spectrum))), y=spectrum, mode="lines", name=f"Σ {label}",
                                 line={"color": color("x", i)},
                                 hovertemplate=f"{label}<br>eigenvalue #%{{x}}: %{{y:.3f}}<extra></extra>"), 2, 1)
    share_v = [float(m.share_v.mean()) for m in maps]
    share_qv = [float(m.share_qv.mean()) for m in maps]
    fig.add_trace(go.Scatter(x=labels, y=share_v, mode="lines+markers", name="‖θ‖ share", line={"color": "#999"},
                             hovertemplate="%{x}<br>θ share %{y:.3f}<extra></extra>"), 2, 2)
    fig.add_trace(go.Scatter(x=labels, y=share_qv, mode="lines+markers", name="‖Qθ‖ share",
                             line={"color": color("key")}, hovertemplate="%{x}<br>Qθ share %{y:.3f}<extra></extra>"),
                  2, 2)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title_text="eigenvalue rank", row=2, col=1)
    return layout(fig, f"{title} (θ at layer {result.layer}: accuracy {result.injected.mean:.2f}; W·θ at the final "
                       f"stream {result.final_direct.mean:.2f}; zero-shot {result.zero_shot.mean:.2f})", "", "",
                  height=700)


def logit_lens_figure(result: DynamicsResult, token_names: Sequence[str] | None = None,
                      title: str = "Logit lens of θ and Qθ") -> go.Figure:
    """A table: the top tokens of ``ln_final(θ) W_U`` and of ``ln_final(Qθ) W_U`` for every map."""
    maps = [*result.steps, result.direct]

    def fmt(entries: list[tuple[int, float]]) -> str:
        return ", ".join(f"{token_names[t] if token_names else t} ({v:.2f})" for t, v in entries)

    cells = [[f"{m.source}→{m.target}" for m in maps], [fmt(m.lens_v) for m in maps], [fmt(m.lens_qv) for m in maps]]
    fig = go.Figure(go.Table(header={"values": ["map", "θ (carried vector)", "Qθ (rotated)"]}, cells={"values": cells}))
    fig.update_layout(title=title, template="plotly_white", margin={"l": 20, "r": 20, "t": 60, "b": 20})
    return fig


__all__ = ["dynamics_figure", "injection_layers_figure", "logit_lens_figure", "paths_figure", "reinjection_figure"]
