"""The report email itself: MIME structure, inline PNG charts, the PDF, and its trip through SMTP."""

from __future__ import annotations

import re
import ssl

import pytest
import trustme

from kpis.config import ENV_SMTP_PASSWORD, SmtpSettings
from reports.build import EmailParts, email_parts
from reports.charts import ChartRenderer
from reports.context import ReportContext
from reports.delivery import Outgoing, send_all
from reports.message import build_message
from tests.reports.smtp_server import PASSWORD, USER, Recorder, check_login, smtp_server

pytestmark = pytest.mark.browser
OWNERS = ("owner@riverbend.example", "partner@riverbend.example")


@pytest.fixture(scope="module")
def parts(practice_ctx: ReportContext, renderer: ChartRenderer) -> EmailParts:
    return email_parts(practice_ctx, renderer, "letter", "riverbend.example")


def test_message_is_text_plus_html_with_inline_png_charts_plus_the_pdf(
    practice_ctx: ReportContext, parts: EmailParts
) -> None:
    msg = build_message(practice_ctx, parts, sender=USER, recipients=OWNERS)
    assert msg["Subject"] == (
        "Riverbend Family Medicine: monthly report, October 2026 — Whole practice (all locations)"
    )
    assert msg["To"] == ", ".join(OWNERS)
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    text, related = alternative.get_payload()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    html = html_part.get_content()
    assert "data:image/svg" not in html  # mail clients drop SVG
    referenced = set(re.findall(r'src="cid:([^"]+)"', html))
    assert len(referenced) == len(practice_ctx.trends) == 10
    assert {i["Content-ID"].strip("<>") for i in images} == referenced
    assert all(i.get_content_type() == "image/png" and i.get_content()[:4] == b"\x89PNG" for i in images)
    assert attachment.get_filename() == "clinic-kpis-report-2026-10-practice.pdf"
    assert attachment.get_content() == parts.pdf and parts.pdf.startswith(b"%PDF")
    body = text.get_content()
    assert practice_ctx.summary[1] in body and "No-show rate" in body and "20.0%" in body


def test_report_email_arrives_whole_over_starttls(
    practice_ctx: ReportContext, parts: EmailParts, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    monkeypatch.setenv(ENV_SMTP_PASSWORD, PASSWORD)
    recorder = Recorder()
    msg = build_message(practice_ctx, parts, sender=USER, recipients=OWNERS)
    options = {"tls_context": server_tls, "require_starttls": True, "authenticator": check_login, "auth_required": True}
    with smtp_server(recorder, **options) as port:
        settings = SmtpSettings(host="127.0.0.1", port=port, security="starttls", username=USER, sender=USER)
        send_all(settings, [Outgoing("practice", msg, OWNERS)], ssl_context=client_tls)
    (got,) = recorder.received
    assert got.tls and got.rcpt_tos == list(OWNERS) and got.mail_from == USER
    received = got.message
    assert received["Subject"] == msg["Subject"]
    assert received.get_body(("plain",)).get_content().replace("\r\n", "\n") == parts.text
    assert received.get_body(("html",)).get_content().replace("\r\n", "\n") == parts.html
    (attachment,) = received.iter_attachments()
    assert attachment.get_content() == parts.pdf
    inline = [p for p in received.walk() if p.get_content_type() == "image/png"]
    assert sorted(p.get_content() for p in inline) == sorted(parts.images.values())
