"""Trend charts: one plotly figure per headline KPI, drawn by kaleido (headless Chromium).

The PDF and the HTML file embed SVG (vector, crisp at any zoom); an email body embeds PNG,
because mail clients drop SVG. Starting Chromium costs seconds and each figure a fraction of
one, so `ChartRenderer` keeps one browser for a whole command, started in the background while
the numbers are read, and draws a report's charts in one call (RECIPES.md section 4).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import kaleido
import plotly.graph_objects as go
from choreographer.browsers.chromium import Chromium

from kpis import palette
from reports.errors import ReportError

if TYPE_CHECKING:  # reports.context imports pandas and the KPI engine: Chromium starts before that
    from reports.context import Trend

WIDTH, HEIGHT = 340, 190  # CSS pixels: two charts side by side on a Letter or A4 page
PNG_SCALE = 2  # PNG pixels per CSS pixel, sharp on high-density screens
START_TIMEOUT = 120  # seconds for Chromium to start and load Plotly.js, however busy the machine
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


class _Kaleido(kaleido.Kaleido):
    """kaleido without its reload of the tab after every figure.

    kaleido reloads a tab after each figure to bound a long session's memory; the reload parses
    Plotly.js again, most of a small figure's time (0.28 s a figure with it, 0.02 s without, on
    the shared 2-core machine; benchmarks/RESULTS.md). Plotly.toImage leaves nothing
    in the page (it plots into a detached div and purges it), and one session draws a command's
    few dozen small charts, so the tab goes back to the queue as it is. The hook is kaleido's
    (private, checked by tests/reports/test_charts.py): were it renamed, tabs would reload again,
    slower but correct.
    """

    async def _return_kaleido_tab(self, tab: Any) -> None:
        await self.tabs_ready.put(tab)


class _Session:
    """One Chromium with kaleido, driven from a thread of its own with its own event loop.

    The browser starts when the session is created and the caller goes on (imports, reading the
    numbers) while it starts. Closing it is started by `close()` and not waited for: the thread is
    not a daemon, so the process waits for Chromium to exit at the latest when it ends, while the
    caller renders the PDF in the meantime.
    """

    def __init__(self, browser: str) -> None:
        self.browser = browser
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="kaleido")
        self.thread.start()
        self.opened = asyncio.run_coroutine_threadsafe(self._open(), self.loop)

    def _run(self) -> None:
        try:
            self.loop.run_forever()
        finally:  # as asyncio.run ends: tasks left behind (choreographer's watchdog of a browser
            # that never started) are cancelled, not destroyed pending with a warning on stderr
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            if left:
                self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self.loop.close()

    async def _open(self) -> _Kaleido:
        # mathjax=False: kaleido's page would otherwise load MathJax from a CDN (no chart here uses LaTeX)
        browser = _Kaleido(n=1, mathjax=False)
        await browser.open()
        return browser

    def submit(self, figs: list[go.Figure], opts: dict[str, Any]) -> Future[list[bytes]]:
        """Start drawing `figs` (once the browser is up); the future holds the images in order."""

        async def draw() -> list[bytes]:
            try:
                opened = asyncio.shield(asyncio.wrap_future(self.opened))
                browser = await asyncio.wait_for(opened, START_TIMEOUT)
            except Exception as exc:  # choreographer's own message advises downloading a browser: not here
                first = exc.args[0] if exc.args else type(exc).__name__
                raise ReportError(
                    f"the charts need Chrome or Chromium, and {self.browser} did not start ({first}): "
                    "check that it runs, or set BROWSER_PATH to another Chrome or Chromium binary"
                ) from None
            return await asyncio.gather(*(browser.calc_fig(fig, opts=opts) for fig in figs))

        return asyncio.run_coroutine_threadsafe(draw(), self.loop)

    def close(self, log_level: int) -> None:
        """Close Chromium, then stop the thread and set choreographer's log level back to `log_level`
        (it logs an ignorable JSON decoding error while Chromium shuts down)."""

        async def close() -> None:
            try:
                browser = await asyncio.wrap_future(self.opened)
            except Exception:  # noqa: BLE001 - it never started: the render that needed it has said why
                return
            await browser.close()

        def closed(_: object) -> None:
            _CHOREOGRAPHER_LOG.setLevel(log_level)
            self.loop.call_soon_threadsafe(self.loop.stop)

        asyncio.run_coroutine_threadsafe(close(), self.loop).add_done_callback(closed)


@dataclass(frozen=True)
class Drawing:
    """Charts being drawn by the browser: `result()` waits for them, {key: image bytes}."""

    keys: list[str]
    images: Future[list[bytes]]

    def result(self) -> dict[str, bytes]:
        return dict(zip(self.keys, self.images.result(), strict=True))


class ChartRenderer:
    """Chromium with kaleido for the duration of a `with` block: `render(fig, "svg" | "png")` -> bytes,
    `render_all({key: fig}, fmt)` -> {key: bytes} (one call for a whole set), `draw(...)` the same
    started while the caller goes on.

    Chromium starts on entering the block, in the background, so start the block before the
    slow work that does not need it (reading the numbers). Nested blocks share one browser,
    and the outermost block's end closes it.
    """

    _users = 0  # open blocks in this process
    _session: _Session | None = None
    _saved_level = logging.NOTSET

    def __enter__(self) -> ChartRenderer:
        if ChartRenderer._users:
            ChartRenderer._users += 1
            return self
        # choreographer gives no clear error without a browser, so look for one first, the way
        # kaleido does: BROWSER_PATH, then PATH and usual places.
        browser = Chromium.find_browser(skip_local=False)
        if not browser or not os.access(browser, os.X_OK):
            override = os.environ.get("BROWSER_PATH")
            where = f" (BROWSER_PATH={override!r} is not a program)" if override else ""
            raise ReportError(
                f"the charts need Chrome or Chromium, and none was found{where}: install the chromium package, "
                "or set BROWSER_PATH to a Chrome or Chromium binary"
            )
        # choreographer logs an ignorable JSON decoding error when Chromium shuts down (see _Session.close).
        ChartRenderer._saved_level = _CHOREOGRAPHER_LOG.level
        _CHOREOGRAPHER_LOG.setLevel(logging.CRITICAL)
        ChartRenderer._session = _Session(browser)
        ChartRenderer._users = 1
        return self

    def render(self, fig: go.Figure, fmt: str) -> bytes:
        return self.render_all({"": fig}, fmt)[""]

    def render_all(self, figs: Mapping[str, go.Figure], fmt: str) -> dict[str, bytes]:
        """Every figure of `figs` drawn in `fmt` (svg or png), in one call to the browser."""
        return self.draw(figs, fmt).result()

    def draw(self, figs: Mapping[str, go.Figure], fmt: str) -> Drawing:
        """Start drawing `figs` in `fmt` and return at once; `.result()` waits for the images."""
        keys = list(figs)
        if not keys:
            done: Future[list[bytes]] = Future()
            done.set_result([])
            return Drawing(keys, done)
        assert ChartRenderer._session is not None, "draw inside a `with ChartRenderer()` block"
        scale = PNG_SCALE if fmt == "png" else 1
        opts = {"format": fmt, "width": WIDTH, "height": HEIGHT, "scale": scale}
        return Drawing(keys, ChartRenderer._session.submit(list(figs.values()), opts))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ChartRenderer._users -= 1
        if ChartRenderer._users == 0 and ChartRenderer._session is not None:
            ChartRenderer._session.close(ChartRenderer._saved_level)
            ChartRenderer._session = None


def render_trends(renderer: ChartRenderer, trends: Iterable[Trend], fmt: str) -> dict[str, bytes]:
    """kpi_id -> the chart of its trend in `fmt` (svg or png)."""
    return draw_trends(renderer, trends, fmt).result()


def draw_trends(renderer: ChartRenderer, trends: Iterable[Trend], fmt: str) -> Drawing:
    """`render_trends` started: the browser draws while the caller goes on."""
    return renderer.draw({t.row.id: trend_figure(t) for t in trends}, fmt)
