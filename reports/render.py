"""Templates to documents: the report context as HTML, plain text and PDF.

One HTML template serves the standalone file, the PDF and the email body; they differ only in
how charts are referenced (`images`: an SVG data URI for the file and the PDF, a `cid:` for
the email's inline PNGs). The HTML needs nothing from outside itself: styles are inline and
the PDF renderer is not allowed to fetch any URL.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from functools import cache

import jinja2
from weasyprint import HTML
from weasyprint.urls import URLFetcher

from kpis import formatting, palette
from reports.context import ReportContext
from reports.settings import PAPER_SIZES


def _css_string(text: object) -> str:
    """A quoted CSS string (for @page margin boxes) that cannot end the string or the <style>."""
    out = []
    for char in str(text):
        if char in '"\\<>' or ord(char) < 0x20:
            out.append(f"\\{ord(char):x} ")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        value=formatting.value_text,
        change=formatting.change_text,
        count=formatting.count_text,
        month=formatting.month_text,
        short_month=formatting.period_text,
        status=formatting.status_text,
        state=_state,
        asked=_asked,
        money=formatting.money_text,
        hours=formatting.hours_text,
        rules=formatting.rules_text,
        assumption=_assumption,
        effect_status=lambda status: formatting.EFFECT_STATUS_LABELS.get(status, status),
        css_string=_css_string,
    )
    env.globals["palette"] = palette
    return env


def _state(row: object) -> str:
    """Why a row's value, or its month, is not a fact, in words (kpis' vocabulary)."""
    return formatting.state_text(
        row.state if row.value is None else row.asked_state,
        missing_sources=row.missing,
        wait_days=row.wait_days,
        history_days=row.history_days,
    )


def _assumption(assumption: object) -> str:
    """A friction-cost assumption's value in its unit (kpis' vocabulary)."""
    return formatting.assumption_text(assumption.value, assumption.unit)


def data_uri(content: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def render_html(ctx: ReportContext, images: Mapping[str, str], paper: str = "letter") -> str:
    """The report as one HTML document; `images` maps a headline KPI id to its chart's src."""
    if paper not in PAPER_SIZES:
        raise ValueError(f"paper must be one of {PAPER_SIZES}")
    return environment().get_template("monthly.html.j2").render(ctx=ctx, images=images, paper=paper)


def render_text(ctx: ReportContext) -> str:
    """The plain-text alternative of the email: the summary and the KPI table."""
    return environment().get_template("monthly.txt.j2").render(ctx=ctx)


def render_pdf(html: str) -> bytes:
    """The HTML as a paginated PDF (WeasyPrint). Any reference to a URL that is not data: fails."""
    fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    return HTML(string=html, url_fetcher=fetcher).write_pdf()


def _asked(row: object, month: object) -> str:
    """The report month's own value of a row, when it is not final (kpis' vocabulary)."""
    value = formatting.value_text(row.asked_value, row)
    return formatting.asked_note(month, value, row.asked_state, wait_days=row.wait_days, history_days=row.history_days)
