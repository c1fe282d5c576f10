"""The trend and breakdown charts' target and red-flag lines are what plotly's add_hline draws."""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import pytest

from dashboards import charts
from kpis.catalog import shipped_specs
from kpis.formatting import value_text


def _with_add_hline(spec) -> go.Figure:
    """The lines as the charts drew them before (one add_hline per line)."""
    fig = go.Figure(go.Scatter(x=[1, 2], y=[0.1, 0.2]))
    if spec.target is not None:
        fig.add_hline(
            y=spec.target, line={"color": charts.TARGET_COLOR, "dash": "dash", "width": 1.5},
            annotation_text=f"target {value_text(spec.target, spec)}", annotation_position="top left",
        )  # fmt: skip
    if spec.red is not None:
        fig.add_hline(
            y=spec.red, line={"color": charts.RED_COLOR, "dash": "dot", "width": 1},
            annotation_text=f"red flag {value_text(spec.red, spec)}", annotation_position="top right",
        )  # fmt: skip
    return fig


SPECS = shipped_specs()
CASES = {
    "target and red flag": SPECS["no_show_rate"],
    "higher is better": SPECS["clean_claim_rate"],
    "no target": SPECS["late_cancel_rate"],
    "a target only": dataclasses.replace(SPECS["days_in_ar"], red=None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_target_lines_are_the_shapes_and_labels_add_hline_draws(case: str) -> None:
    spec = CASES[case]
    fig = go.Figure(go.Scatter(x=[1, 2], y=[0.1, 0.2]))
    charts._target_lines(fig, spec)
    expected = _with_add_hline(spec).to_dict()["layout"]
    drawn = fig.to_dict()["layout"]
    assert drawn.get("shapes") == expected.get("shapes")
    assert drawn.get("annotations") == expected.get("annotations")
    assert len(drawn.get("shapes", [])) == (spec.target is not None) + (spec.red is not None)
