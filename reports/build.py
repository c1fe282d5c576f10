"""Building a report: read the numbers, write the summary, draw the charts, render the documents.

Shared by `report build` (files) and `report send` (email), so both always carry the same
report. Chromium (for the charts) is started once per command, not once per document.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from rich.console import Console

from kpis import Warehouse
from kpis.scope import Scope as KpiScope
from reports.charts import ChartRenderer, render_trends
from reports.context import ReportContext, Trend, build_context, resolve_scope
from reports.narrative import summarize
from reports.render import data_uri, render_email_html, render_html, render_pdf, render_text

FORMATS = ("html", "pdf")


@contextmanager
def progress(text: str) -> Iterator[None]:
    """A spinner with `text` on a terminal; nothing when stderr is piped or captured."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(text):
        yield


def prepare(
    wh: Warehouse,
    month: date,
    location: str | None,
    *,
    generated_at: datetime | None = None,
    on_trends: Callable[[tuple[Trend, ...]], object] | None = None,
) -> ReportContext:
    """The full context of one report, executive summary included.

    A location's report reads the warehouse through that location's scope (kpis.scope), as its
    manager would, with small cells withheld and no records: it leaves the building. The load
    history (files loaded, quarantined) is the practice's, so `wh` must see the whole practice.
    `on_trends`: see `build_context` (the charts drawn while the rest of the numbers are read).
    """
    scope = resolve_scope(wh, location)
    history = wh.ingest_runs()  # practice-wide: read before narrowing
    if scope.location is not None:
        wh = wh.narrowed(KpiScope.of_locations([scope.location], records=False, small_cells=True, label=scope.label))
    ctx = build_context(wh, month, scope, generated_at=generated_at, load_history=history, on_trends=on_trends)
    return dataclasses.replace(ctx, summary=summarize(ctx))


def file_name(ctx: ReportContext, ext: str) -> str:
    """`clinic-kpis-report-2026-10-practice.pdf`, `...-EAST.html`: one name per month and scope."""
    return f"clinic-kpis-report-{ctx.month:%Y-%m}-{safe_key(ctx.scope.key)}.{ext}"


def safe_key(key: str) -> str:
    """A scope key as it can appear in a file name or Content-ID: a location id comes from the
    data and may hold `/` or spaces (`NORTH/2` -> `NORTH_2`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key) or "_"


def documents(ctx: ReportContext, renderer: ChartRenderer, formats: tuple[str, ...], paper: str) -> dict[str, bytes]:
    """The report as each of `formats` (html: one self-contained file; pdf), with SVG charts."""
    return render_documents(ctx, render_trends(renderer, ctx.trends, "svg"), formats, paper)


def render_documents(
    ctx: ReportContext, svgs: dict[str, bytes], formats: tuple[str, ...], paper: str
) -> dict[str, bytes]:
    """`documents` from charts already drawn (kpi id -> SVG): the HTML and the PDF embed the same
    SVG, drawn once, and need no browser, so `report build` closes Chromium while the PDF renders."""
    html = render_html(ctx, {k: data_uri(v, "image/svg+xml") for k, v in svgs.items()}, paper)
    out = {}
    if "html" in formats:
        out["html"] = html.encode("utf-8")
    if "pdf" in formats:
        out["pdf"] = render_pdf(html)
    return out


@dataclass(frozen=True)
class EmailParts:
    """What a report email carries: HTML body with inline PNG charts (by Content-ID), text, PDF."""

    html: str
    text: str
    pdf: bytes
    images: dict[str, bytes]  # content id (without <>) -> PNG


def email_parts(ctx: ReportContext, renderer: ChartRenderer, paper: str, domain: str) -> EmailParts:
    """The email body refers to its charts as `cid:` parts, since mail clients block data URIs and SVG."""
    pngs = render_trends(renderer, ctx.trends, "png")
    cids = {kpi: f"chart-{kpi}.{ctx.month:%Y-%m}.{safe_key(ctx.scope.key)}@{domain}" for kpi in pngs}
    html = render_email_html(ctx, {kpi: f"cid:{cid}" for kpi, cid in cids.items()}, paper)
    pdf = render_documents(ctx, render_trends(renderer, ctx.trends, "svg"), ("pdf",), paper)["pdf"]
    return EmailParts(html=html, text=render_text(ctx), pdf=pdf, images={cids[k]: png for k, png in pngs.items()})


def write_files(ctx: ReportContext, files: dict[str, bytes], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, content in files.items():
        path = out / file_name(ctx, ext)
        path.write_bytes(content)
        paths.append(path)
    return paths
