"""The report email: a MIME message owners' mail clients show well.

multipart/mixed
  multipart/alternative
    text/plain                 the summary and headline table, for clients without HTML
    multipart/related
      text/html                the report, charts referenced as cid:...
      image/png ...            one inline chart per headline KPI
  application/pdf              the paginated report, to print or forward
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from kpis.formatting import month_text
from reports.build import EmailParts, file_name
from reports.context import ReportContext


def subject(ctx: ReportContext) -> str:
    """One line: a location's name comes from the data and may hold a line break, which in a
    header would start a new one (Python refuses it): control characters and whitespace runs
    become one space."""
    text = f"{ctx.practice_name}: monthly report, {month_text(ctx.month)} — {ctx.scope.label}"
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def sender_domain(sender: str) -> str:
    """The domain for Message-ID and Content-IDs: the sender's, so they are unique to this practice."""
    return sender.rpartition("@")[2] or "localhost"


def build_message(ctx: ReportContext, parts: EmailParts, *, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(ctx)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender_domain(sender))
    msg.set_content(parts.text)
    msg.add_alternative(parts.html, subtype="html")
    html_part = msg.get_payload()[1]
    for cid, png in parts.images.items():
        html_part.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>", disposition="inline")
    msg.add_attachment(parts.pdf, maintype="application", subtype="pdf", filename=file_name(ctx, "pdf"))
    return msg
