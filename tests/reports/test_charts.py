"""The charts: drawn once in one browser session, the same drawings in the HTML file and the PDF."""

from __future__ import annotations

import base64
import html as html_lib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import kaleido
import plotly.graph_objects as go
import pytest

from reports.build import prepare
from reports.charts import ChartRenderer, draw_trends, render_trends, small_chart_layout
from reports.context import ReportContext, Trend
from tests.conftest import require_tool
from tests.reports.conftest import Built, Practice
from tests.reports.practice import MONTH

pytestmark = pytest.mark.browser


def chart_svgs(html: str) -> dict[str, str]:
    """kpi id -> the SVG its trend cell embeds (decoded from the data URI)."""
    cells = re.findall(r'<td data-chart="([a-z0-9_]+)">.*?<img src="data:image/svg\+xml;base64,([^"]+)"', html, re.S)
    return {kpi: base64.b64decode(data).decode("utf-8") for kpi, data in cells}


def tick_labels(svg: str, axis: str) -> list[str]:
    """The tick labels plotly drew on an axis (`xtick` or `ytick`), in order."""
    return [html_lib.unescape(t) for t in re.findall(rf'<g class="{axis}"><text[^>]*>([^<]*)</text>', svg)]


def test_html_and_pdf_carry_every_trend_chart_with_its_units(practice_report: Built, tmp_path: Path) -> None:
    svgs = chart_svgs(practice_report.html)
    assert list(svgs) == [t.row.id for t in practice_report.ctx.trends] and len(svgs) == 10
    path = tmp_path / "report.pdf"
    path.write_bytes(practice_report.pdf)
    text = subprocess.run([require_tool("pdftotext"), str(path), "-"], capture_output=True, check=True).stdout.decode()
    words = text.split()
    units = {t.row.id: t.row.unit for t in practice_report.ctx.trends}
    first_months = set()
    for kpi, svg in svgs.items():
        months, values = tick_labels(svg, "xtick"), tick_labels(svg, "ytick")
        assert months and values, kpi
        first_months.add(months[0])
        if units[kpi] == "percent":
            assert all(v.endswith("%") for v in values), (kpi, values)
        # the PDF draws the same SVG: its axis labels are text on the page
        assert set(values) <= set(words), (kpi, values)
    (first,) = first_months  # every chart shows the same 13 months
    assert text.count(first) == len(svgs)  # each chart's x axis once in the PDF, none missing


def labelled(label: str, unit: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[f"{label} {i}" for i in range(3)], y=[0.1, 0.2, 0.3], mode="lines"))
    return small_chart_layout(fig, unit, width=340, height=190, font_size=10, ticks=3)


def test_one_call_draws_a_set_of_charts_each_under_its_own_key(renderer: ChartRenderer) -> None:
    figs = {key: labelled(key.upper(), unit) for key, unit in (("a", "percent"), ("b", "count"), ("c", "percent"))}
    drawn = renderer.render_all(figs, "svg")
    assert list(drawn) == ["a", "b", "c"]
    for key, svg in drawn.items():
        assert tick_labels(svg.decode(), "xtick")[0] == f"{key.upper()} 0"
    assert tick_labels(drawn["a"].decode(), "ytick")[-1].endswith("%")
    assert not tick_labels(drawn["b"].decode(), "ytick")[-1].endswith("%")
    (png,) = renderer.render_all({"b": figs["b"]}, "png").values()
    assert png[:4] == b"\x89PNG"
    assert renderer.render_all({}, "svg") == {}


def test_kaleido_still_has_the_hook_the_renderer_uses_to_keep_its_tab() -> None:
    """reports.charts overrides kaleido's (private) tab return so a tab is not reloaded after each
    figure, the larger part of each figure's time. Were the hook renamed, charts would still be
    drawn, slowly; this says so at the upgrade that renames it."""
    assert callable(vars(kaleido.Kaleido).get("_return_kaleido_tab"))
    assert "self.tabs_ready" in inspect.getsource(kaleido.Kaleido.__init__)


def test_a_browser_that_does_not_start_is_one_clear_line_not_a_wait(practice: Practice, tmp_path: Path) -> None:
    """A fresh process (this one's renderer is shared): `report build` with a BROWSER_PATH that exits at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")} | {"BROWSER_PATH": "/bin/false"}
    where = ["--config", str(practice.config), "--db", str(practice.db)]
    args = ["report", "build", *where, "--month", "2026-10", "--out", str(tmp_path)]
    res = subprocess.run(
        [sys.executable, "-c", "from kpis.cli import main; main()", *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.startswith("error: the charts need Chrome or Chromium, and /bin/false did not start")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_trends_handed_over_while_the_numbers_are_read_are_the_reports(practice: Practice) -> None:
    """`report build` has the charts drawn from `on_trends` while the rest of the numbers are read."""
    seen: list[tuple[Trend, ...]] = []
    with practice.open() as wh:
        ctx = prepare(wh, MONTH, None, on_trends=seen.append)
    assert seen == [ctx.trends] and len(ctx.trends) == 10


def test_a_drawing_started_early_gives_the_same_charts(renderer: ChartRenderer, practice_ctx: ReportContext) -> None:
    drawing = draw_trends(renderer, practice_ctx.trends, "svg")
    started = render_trends(renderer, practice_ctx.trends, "svg")
    done = drawing.result()
    assert list(done) == list(started) == [t.row.id for t in practice_ctx.trends]
    for kpi, svg in done.items():
        assert tick_labels(svg.decode(), "ytick") == tick_labels(started[kpi].decode(), "ytick"), kpi
