"""Templates to documents: the report context as HTML, plain text and PDF.

One HTML template serves the standalone file, the PDF and the email body; they differ only in
how charts are referenced (`images`: an SVG data URI for the file and the PDF, a `cid:` for
the email's inline PNGs) and in the email leaving the definitions appendix to its PDF. The HTML
needs nothing from outside itself: styles are inline and the PDF renderer is not allowed to
fetch any URL.

Many mail clients drop a `<style>` block (or parts of it), so the email's styles are moved into
each element's `style` attribute (css-inline); the @-rules stay in a `<style>` for the clients
that read it. That makes the HTML about twice as large: the email body stays lean (Gmail clips a
message whose HTML passes about 102 KB), the full report is the PDF.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from functools import cache

import css_inline
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


def render_html(ctx: ReportContext, images: Mapping[str, str], paper: str = "letter", *, email: bool = False) -> str:
    """The report as one HTML document; `images` maps a headline KPI id to its chart's src."""
    if paper not in PAPER_SIZES:
        raise ValueError(f"paper must be one of {PAPER_SIZES}")
    template = environment().get_template("monthly.html.j2")
    return template.render(ctx=ctx, images=images, paper=paper, email=email)


def render_email_html(ctx: ReportContext, images: Mapping[str, str], paper: str = "letter") -> str:
    """The report as an email body: without the definitions appendix, its styles inlined."""
    return inline_css(render_html(ctx, images, paper, email=True)).rstrip("\n") + "\n"  # a text part ends a line


def inline_css(html: str) -> str:
    """`html` with the rules of its `<style>` blocks in each element's `style` attribute.

    @-rules (@page, @media) stay in a `<style>`; a linked stylesheet is never fetched.
    """
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False).inline(html)


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
