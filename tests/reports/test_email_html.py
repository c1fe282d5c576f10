"""The email's HTML: styles on the elements (mail clients drop `<style>`), nothing fetched, under Gmail's clip.

The body is rendered as `report send` renders it (charts as `cid:` references; drawing them
needs Chromium and is tested in test_email.py) and read back with the standard HTML parser.
"""

from __future__ import annotations

import threading
from datetime import date
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kpis import palette
from reports.build import EmailParts, prepare
from reports.context import ReportContext
from reports.message import build_message
from reports.render import inline_css, render_email_html
from tests.conftest import SimulatedPractice

GMAIL_CLIP_BYTES = 102 * 1000  # Gmail shows "[Message clipped]" past about 102 KB of HTML


class Document(HTMLParser):
    """The start tags of an HTML document, (tag, attributes), and the text of its `<style>` blocks."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)

    def styles_of(self, tag: str | None = None, cls: str | None = None) -> list[str]:
        """The style attribute of every element with that tag and/or class."""
        return [
            attrs.get("style", "")
            for name, attrs in self.tags
            if (tag is None or name == tag) and (cls is None or cls in attrs.get("class", "").split())
        ]


def email_html(ctx: ReportContext) -> str:
    cids = {t.row.id: f"chart-{t.row.id}.{ctx.month:%Y-%m}.{ctx.scope.key}@riverbend.example" for t in ctx.trends}
    return render_email_html(ctx, {kpi: f"cid:{cid}" for kpi, cid in cids.items()})


def test_the_elements_carry_their_styles(practice_ctx: ReportContext) -> None:
    doc = Document(email_html(practice_ctx))
    (body,) = doc.styles_of("body")
    assert "font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif" in body
    headings = doc.styles_of("h1") + doc.styles_of("h2")
    assert headings and all(f"color: {palette.LINE_COLOR}" in style for style in headings)
    numbers = doc.styles_of("td", "num")
    assert len(numbers) >= 4 * 20 and all("text-align: right" in style for style in numbers)
    assert all("border-collapse: collapse" in style for style in doc.styles_of("table"))
    # the status badge's colours are what tells on target from off target
    badges = 0
    for status, tint in palette.STATUS_TINTS.items():
        for style in doc.styles_of("span", f"status-{status}"):
            assert f"background: {tint}" in style and f"color: {palette.STATUS_TEXT[status]}" in style
            badges += 1
    assert badges == len(doc.styles_of("span", "status")) > 0
    for effect, colour in palette.EFFECT_COLORS.items():
        assert all(f"color: {colour}" in style for style in doc.styles_of("td", effect))
    # what is left in <style> are the @-rules only (for the clients that read them)
    assert all(block.strip().startswith("@") for block in doc.styles), doc.styles
    assert ".kpis" not in "".join(doc.styles)


def test_nothing_in_the_email_is_fetched(practice_ctx: ReportContext) -> None:
    doc = Document(email_html(practice_ctx))
    assert not [attrs for name, attrs in doc.tags if name == "link"]
    sources = [attrs["src"] for name, attrs in doc.tags if "src" in attrs]
    assert sources and all(src.startswith("cid:chart-") for src in sources)
    assert "url(" not in "".join(style for _, attrs in doc.tags for style in [attrs.get("style", "")])


def test_inlining_never_fetches_a_linked_stylesheet() -> None:
    """A `<link>` to a stylesheet is dropped, not fetched (a real HTTP server on loopback counts requests)."""
    requests: list[str] = []

    class Stylesheet(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the handler's name is the HTTP method's)
            requests.append(self.path)
            body = b"p { color: red; }"
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Stylesheet) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.css"
        head = f'<link rel="stylesheet" href="{url}"><style>p {{ margin: 0; }}</style>'
        out = inline_css(f"<html><head>{head}</head><body><p>x</p></body></html>")
        server.shutdown()
    assert requests == []
    assert '<p style="margin: 0;">x</p>' in out and "color: red" not in out and url not in out


def test_the_definitions_stay_in_the_pdf(practice_ctx: ReportContext) -> None:
    html = email_html(practice_ctx)
    assert ">Definitions</h2>" not in html
    assert "The definition of every measure, with its variant and source, is in the attached PDF." in html


@pytest.mark.parametrize("location", [None, "EAST"], ids=["practice", "location"])
def test_a_three_location_practice_email_stays_under_gmails_clip(
    simulated_practice: SimulatedPractice, location: str | None
) -> None:
    with simulated_practice.open() as wh:
        ctx = prepare(wh, date(2026, 9, 1), location)
    html = email_html(ctx)
    message = build_message(
        ctx, EmailParts(html=html, text="", pdf=b"%PDF", images={}), sender="r@x.example", recipients=("o@x.example",)
    )
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/html"]
    assert len(html.encode("utf-8")) < GMAIL_CLIP_BYTES
    assert len(part.get_payload().encode("ascii")) < GMAIL_CLIP_BYTES  # as sent, transfer-encoded
