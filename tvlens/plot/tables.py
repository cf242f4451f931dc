"""Figures of tidy study tables: regression error vs prompt length, the Yang et al. 2025a method table, the claims
ledger."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tvlens.plot.style import color, layout, name, rgba
from tvlens.studies.ledger import ClaimsLedger
from tvlens.studies.ledger.verdicts import NO_EFFECT, NOT_TESTABLE, UNMEASURED
from tvlens.studies.table import StudyTable
from tvlens.tasks.metric import Accuracy, SquaredError

#: Colour of each verdict of the claims ledger.
VERDICT_COLORS = {"holds": "#1b9e77", "inconclusive": "#e6ab02", "does not hold": "#d95f02",
                  NO_EFFECT: "#7570b3", NOT_TESTABLE: "#999999"}


def regression_figure(table: StudyTable, title: str = "Regression fidelity: error vs prompt length") -> go.Figure:
    """Squared error / D vs demonstrations, one panel per shift, one line per method (± standard error),
    the training length marked."""
    shifts = list(dict.fromkeys(r["shift"] for r in table.records))
    methods = list(dict.fromkeys(r["method"] for r in table.records))
    d_input = (table.settings.get("task") or {}).get("d_input")
    # an orthogonal query exists only while the demonstrations span less than the input space
    titles = [f"{s} (n < D = {d_input} only)" if s == "orthogonal" and d_input else s for s in shifts]
    fig = make_subplots(rows=1, cols=len(shifts), subplot_titles=titles, shared_yaxes=True)
    for col, shift in enumerate(shifts, start=1):
        for i, method in enumerate(methods):
            rows = sorted(table.select(shift=shift, method=method), key=lambda r: r["n_shots"])
            if not rows:
                continue
            x = [r["n_shots"] for r in rows]
            y = [r[SquaredError.name] for r in rows]
            e = [r["stderr"] for r in rows]
            hue = color(method, i)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name(method), legendgroup=method,
                                     showlegend=col == 1, line={"color": hue},
                                     error_y={"type": "data", "array": e, "color": rgba(hue, 0.5)},
                                     hovertemplate=f"{name(method)}, {shift}<br>%{{x}} shots: %{{y:.3f}}"
                                                   "<extra></extra>"),
                          1, col)
        train = table.settings.get("train_shots")
        if train is not None:
            # plotly draws a "new text" placeholder for annotation_text=None: label the first panel only
            label = {"annotation_text": "training length"} if col == 1 else {}
            fig.add_vline(x=train, line={"dash": "dot", "color": "black"}, row=1, col=col, **label)
    fig.update_yaxes(type="log")
    model = table.settings.get("model") or ""
    return layout(fig, f"{title}{f' — {model}' if model else ''}", "demonstrations", SquaredError.label)


def method_table_figure(table: StudyTable, title: str = "Learned vs vanilla vs function vectors") -> go.Figure:
    """Grouped bars per model and setting (``last``, ``early``, ``few_shot``), zero-shot and ICL as lines."""
    models = list(dict.fromkeys(r["model"] for r in table.records))
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    for col, model in enumerate(models, start=1):
        rows = [r for r in table.records if r["model"] == model and r["setting"] != "reference"
                and r["method"] != "icl"]
        settings = list(dict.fromkeys(r["setting"] for r in rows))
        for method in ("vanilla", "function", "learned"):
            sel = [next(r for r in rows if r["setting"] == s and r["method"] == method) for s in settings]
            fig.add_trace(go.Bar(x=settings, y=[r[Accuracy.name] for r in sel], name=name(method), legendgroup=method,
                                 showlegend=col == 1, marker_color=color(method),
                                 error_y={"type": "data", "array": [r["stderr"] for r in sel]},
                                 hovertemplate=f"{model}, %{{x}}<br>{name(method)}: %{{y:.3f}}<extra></extra>"),
                          1, col)
        for key in ("zero_shot", "icl"):
            ref = [r for r in table.records if r["model"] == model and r["setting"] == "reference"
                   and r["method"] == key]
            if ref:
                label = {"annotation_text": name(key)} if col == 1 else {}
                fig.add_hline(y=ref[0][Accuracy.name], line={"dash": "dot", "color": color(key)}, row=1, col=col,
                              **label)
    fig.update_layout(barmode="group")
    return layout(fig, title, "setting", Accuracy.label)


def ledger_figure(ledger: ClaimsLedger, title: str = "Paper claims on the zoo") -> go.Figure:
    """A forest plot: one row per claim and model, the effect's mean and unadjusted 95 % interval coloured by
    verdict, its control (hollow) and the margin the claim needs marked (every effect is positive when its
    claim holds). Rows not applicable to their model have no effect to draw: the title counts them."""
    rows = [r for r in ledger.rows if r.verdict not in UNMEASURED]
    skipped = len(ledger.rows) - len(rows)
    if skipped:
        title = f"{title} ({skipped} claim rows not applicable to these models: see the table)"
    fig = go.Figure()
    labels = [f"{r.claim} · {r.model}" for r in rows]
    for verdict, hue in VERDICT_COLORS.items():
        chosen = [i for i, r in enumerate(rows) if r.verdict == verdict]
        if not chosen:
            continue
        # an interval from fewer than two tasks is unbounded: draw the point alone
        def bar(i: int, side: str) -> float:
            r = rows[i]
            width = r.high - r.mean if side == "high" else r.mean - r.low
            return width if width != float("inf") else 0.0

        fig.add_trace(go.Scatter(
            x=[rows[i].mean for i in chosen], y=[labels[i] for i in chosen], mode="markers", name=verdict,
            marker={"color": hue, "size": 10},
            error_x={"type": "data", "symmetric": False, "array": [bar(i, "high") for i in chosen],
                     "arrayminus": [bar(i, "low") for i in chosen], "color": hue},
            customdata=[[rows[i].statement, rows[i].effect, rows[i].low, rows[i].high, rows[i].margin,
                         rows[i].sample, rows[i].reason or "—", rows[i].control]
                        for i in chosen],
            hovertemplate="%{customdata[0]}<br>%{customdata[1]}<br>effect %{x:.3f} [%{customdata[2]:.3f}, "
                          "%{customdata[3]:.3f}], needs > %{customdata[4]}; control %{customdata[7]:.3f}<br>"
                          "(models ×) tasks × seeds: %{customdata[5]}<br>%{customdata[6]}"
                          "<extra>%{fullData.name}</extra>"))
    fig.add_trace(go.Scatter(x=[r.control for r in rows], y=labels, mode="markers", name="control",
                             marker={"symbol": "circle-open", "size": 9, "color": "#666666"},
                             hovertemplate="control %{x:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[r.margin for r in rows], y=labels, mode="markers", name="needs (margin)",
                             marker={"symbol": "line-ns-open", "size": 14, "color": "black"},
                             hovertemplate="needs > %{x}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=labels)
    # effects are shares and accuracy differences (|x| ≲ 1); a contrast over 2 tasks has an interval of several
    # layers, which would squash every other row: the axis spans the means, the hover keeps the full interval
    means = [r.mean for r in rows] + [r.control for r in rows] or [0.0]
    fig.update_xaxes(range=[min(-1.1, min(means) - 0.1), max(1.1, max(means) + 0.1)])
    return layout(fig, title, "effect (positive when the claim holds)", "", height=max(400, 26 * len(rows) + 160))


__all__ = ["VERDICT_COLORS", "ledger_figure", "method_table_figure", "regression_figure"]
