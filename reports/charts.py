"""Trend charts: one plotly figure per headline KPI, drawn by kaleido (headless Chromium).

The PDF and the HTML file embed SVG (vector, crisp at any zoom); an email body embeds PNG,
because mail clients drop SVG. Starting Chromium costs seconds and each figure a fraction of
one, so `ChartRenderer` keeps one kaleido server for a whole build (RECIPES.md section 4).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from types import TracebackType

import kaleido
import plotly.graph_objects as go
from choreographer.browsers.chromium import Chromium

from kpis import palette
from reports.context import Trend
from reports.errors import ReportError

WIDTH, HEIGHT = 340, 190  # CSS pixels: two charts side by side on a Letter or A4 page
PNG_SCALE = 2  # PNG pixels per CSS pixel, sharp on high-density screens
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
LINE, TARGET, GRID = palette.LINE_COLOR, palette.TARGET_COLOR, palette.GRID_COLOR
_CHOREOGRAPHER_LOG = logging.getLogger("choreographer")


def trend_figure(trend: Trend) -> go.Figure:
    """The last 13 months as a line, the target as a dashed line; gaps where a month is not shown."""
    months = [p.strftime("%b %y") for p in trend.periods]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=months,
            y=list(trend.values),
            mode="lines+markers",
            line={"color": LINE, "width": 2},
            marker={"size": [5] * (len(months) - 1) + [8], "color": LINE},
            connectgaps=False,
            name=trend.row.title,
            hoverinfo="skip",
        )
    )
    if trend.row.target is not None:
        fig.add_trace(
            go.Scatter(
                x=months,
                y=[trend.row.target] * len(months),
                mode="lines",
                line={"color": TARGET, "width": 1.2, "dash": "dash"},
                name="Target",
                hoverinfo="skip",
            )
        )
    if all(v is None for v in trend.values):
        fig.add_annotation(text="no data", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return small_chart_layout(fig, trend.row.unit, width=WIDTH, height=HEIGHT, font_size=10, ticks=7)


def small_chart_layout(fig: go.Figure, unit: str, *, width: int, height: int, font_size: int, ticks: int) -> go.Figure:
    """The look every chart in a report or an email shares: white, one grid, months as categories,
    an axis from zero for rates, counts and money, percentages and money in short form."""
    fig.update_layout(
        width=width,
        height=height,
        margin={"l": 44, "r": 8, "t": 8, "b": 30},
        showlegend=False,
        paper_bgcolor="white",
        plot_bgcolor="white",
        font={"family": FONT, "size": font_size, "color": "#333333"},
    )
    fig.update_xaxes(type="category", tickangle=0, nticks=ticks, showgrid=False, linecolor="#999999")
    fig.update_yaxes(
        gridcolor=GRID,
        zeroline=False,
        rangemode="tozero" if unit in ("percent", "count", "currency") else "normal",
        tickformat=".0%" if unit == "percent" else "~s" if unit == "currency" else None,
    )
    return fig


class ChartRenderer:
    """A kaleido server for the duration of a `with` block: `render(fig, "svg" | "png")` -> bytes.

    kaleido's server is one per process; nested blocks share it, and the outermost stops it.
    """

    _users = 0  # open blocks in this process
    _saved_level = logging.NOTSET

    def __enter__(self) -> ChartRenderer:
        if ChartRenderer._users:
            ChartRenderer._users += 1
            return self
        # kaleido's server thread dies silently (and the caller waits forever) without a browser,
        # so look for one first, the way kaleido does: BROWSER_PATH, then PATH and usual places.
        browser = Chromium.find_browser(skip_local=False)
        if not browser or not os.access(browser, os.X_OK):
            override = os.environ.get("BROWSER_PATH")
            where = f" (BROWSER_PATH={override!r} is not a program)" if override else ""
            raise ReportError(
                f"the charts need Chrome or Chromium, and none was found{where}: install the chromium package, "
                "or set BROWSER_PATH to a Chrome or Chromium binary"
            )
        # choreographer logs an ignorable JSON decoding error when Chromium shuts down.
        ChartRenderer._saved_level = _CHOREOGRAPHER_LOG.level
        _CHOREOGRAPHER_LOG.setLevel(logging.CRITICAL)
        kaleido.start_sync_server(silence_warnings=True)
        ChartRenderer._users = 1
        return self

    def render(self, fig: go.Figure, fmt: str) -> bytes:
        scale = PNG_SCALE if fmt == "png" else 1
        return kaleido.calc_fig_sync(fig, opts={"format": fmt, "width": WIDTH, "height": HEIGHT, "scale": scale})

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ChartRenderer._users -= 1
        if ChartRenderer._users == 0:
            kaleido.stop_sync_server(silence_warnings=True)
            _CHOREOGRAPHER_LOG.setLevel(ChartRenderer._saved_level)


def render_trends(renderer: ChartRenderer, trends: Iterable[Trend], fmt: str) -> dict[str, bytes]:
    """kpi_id -> the chart of its trend in `fmt` (svg or png)."""
    return {t.row.id: renderer.render(trend_figure(t), fmt) for t in trends}
