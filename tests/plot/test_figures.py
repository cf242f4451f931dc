"""Figures: pure functions of results; hover text names what a mark is; bad input is refused clearly."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
import torch

from tvlens.plot import (
    attention_figure,
    formation_heatmap,
    head_heatmap,
    method_layers_figure,
    profile_figure,
    regression_figure,
)
from tvlens.studies import FormationTable, LayerProfile, StudyTable
from tvlens.vectors import METHODS


def profile(label: str = "m") -> LayerProfile:
    return LayerProfile(tvp=torch.tensor([0.1, 0.5, 0.9]), tvp_stderr=torch.tensor([0.01, 0.02, 0.01]), icl=0.95,
                        icl_stderr=0.01, zero_shot=0.2, zero_shot_stderr=0.02, metric="accuracy", source="prompt",
                        n_prompts=10, n_shots=4, seed=0, label=label)


def test_head_heatmap_hover_names_layer_head_and_value_and_leaves_nan_blank():
    values = torch.tensor([[float("nan"), float("nan")], [0.25, -0.5]])
    fig = head_heatmap(values, "t", "saliency", marked=[(1, 1)], diverging=True)
    heat = fig.data[0]
    assert isinstance(fig, go.Figure) and heat.z[0][0] is None and heat.z[1][1] == -0.5
    assert heat.text[1][0] == "layer 1, head 0<br>saliency = 0.25"
    assert heat.text[0][1] == "layer 0, head 1<br>not scored"
    assert heat.zmid == 0 and heat.zmax == 0.5 and len(fig.layout.shapes) == 1


def test_profile_figure_draws_bands_and_reference_lines():
    fig = profile_figure({"a": profile("a"), "b": profile("b")}, mark_layer=1)
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert "a: TVP mode" in names and "b: ICL" in names and "a: zero-shot" in names
    band = fig.data[0]
    assert band.fill == "toself" and len(band.x) == 6  # upper edge and lower edge back
    assert list(band.y[:3]) == pytest.approx([0.11, 0.52, 0.91])


def test_methods_keep_their_colour_across_figures():
    records = [{"method": "zero_shot", "layer": None, "accuracy": 0.2, "stderr": 0.0},
               {"method": "learned", "layer": 0, "accuracy": 0.8, "stderr": 0.1},
               {"method": "learned", "layer": 1, "accuracy": 0.9, "stderr": 0.1}]
    fig = method_layers_figure(records)
    learned = next(t for t in fig.data if t.name == "learned TV")
    assert learned.line.color == METHODS["learned"].color
    table = StudyTable(records=[{"shift": "none", "n_shots": n, "method": "learned", "mse_per_dim": 0.1 * n,
                                 "stderr": 0.01} for n in (1, 2)], name="t", settings={"train_shots": 2})
    reg = regression_figure(table)
    assert reg.data[0].line.color == METHODS["learned"].color


def test_formation_heatmap_is_layer_by_step():
    table = FormationTable(steps=torch.tensor([10, 20]), tvp=torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]),
                           tvp_stderr=torch.zeros(2, 3), icl=torch.tensor([0.5, 0.9]), zero_shot=torch.tensor([0.1, 0.1]),
                           metric="accuracy", label="m")
    heat = formation_heatmap(table).data[0]
    assert heat.z[2][1] == pytest.approx(0.6) and list(heat.x) == ["10", "20"]
    assert "step 20<br>layer 2<br>TVP 0.600" in heat.text[2][1]


def test_attention_figure_labels_tokens_and_checks_shape():
    pattern = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    fig = attention_figure(pattern, ["<bos>", "x"])
    assert list(fig.data[0].x) == ["0:<bos>", "1:x"]
    assert "weight 0.750" in fig.data[0].text[1][1]
    with pytest.raises(ValueError, match="for 3 tokens"):
        attention_figure(pattern, ["a", "b", "c"])


def test_figures_round_trip_through_json():
    """What the report embeds: the JSON of a figure rebuilds the same figure."""
    for fig in (profile_figure(profile()), head_heatmap(torch.rand(2, 2), "t")):
        again = go.Figure(json.loads(fig.to_json()))
        assert len(again.data) == len(fig.data) and again.layout.title.text == fig.layout.title.text


def test_panel_labels_are_never_placeholders():
    """plotly writes "new text" for annotation_text=None: only real labels may be passed."""
    from tvlens.plot import method_table_figure

    records = [{"shift": shift, "n_shots": n, "method": m, "mse_per_dim": 0.1 * n, "stderr": 0.01}
               for shift in ("none", "skewed", "orthogonal") for n in (1, 2) for m in ("icl", "zero_shot")]
    regression = regression_figure(StudyTable(records=records, name="r", settings={"train_shots": 2,
                                                                                  "task": {"d_input": 5}}))
    rows = [{"model": mdl, "setting": setting, "method": m, "accuracy": 0.5, "stderr": 0.1}
            for mdl in ("a", "b") for setting in ("last", "early") for m in ("vanilla", "function", "learned")]
    rows += [{"model": mdl, "setting": "reference", "method": m, "accuracy": 0.2, "stderr": 0.0}
             for mdl in ("a", "b") for m in ("zero_shot", "icl")]
    table = method_table_figure(StudyTable(records=rows, name="t", settings={}))
    for fig in (regression, table):
        texts = [a.text for a in fig.layout.annotations]
        assert all(isinstance(t, str) and t for t in texts), texts
    assert "orthogonal (n < D = 5 only)" in [a.text for a in regression.layout.annotations]


def test_layer_axes_tick_on_integers():
    table = FormationTable(steps=torch.tensor([10, 20]), tvp=torch.rand(2, 4), tvp_stderr=torch.zeros(2, 4),
                           icl=torch.tensor([0.5, 0.9]), zero_shot=torch.tensor([0.1, 0.1]), metric="accuracy")
    axis = formation_heatmap(table).layout.yaxis
    assert axis.dtick == 1 and axis.tick0 == 0 and axis.tickmode == "linear"
