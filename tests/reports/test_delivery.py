"""SMTP delivery against a real server on loopback: plain, STARTTLS, implicit TLS, and every failure."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import trustme

from kpis.config import ENV_SMTP_PASSWORD, SmtpSettings
from reports.delivery import Outgoing, send_all
from reports.errors import DeliveryError
from tests.reports.smtp_server import PASSWORD, USER, Recorder, check_login, free_port, smtp_server

OWNERS = ("owner@riverbend.example", "partner@riverbend.example")
PDF = b"%PDF-1.7 not really a report\n"


def message(scope: str, recipients: tuple[str, ...]) -> Outgoing:
    msg = EmailMessage()
    msg["Subject"] = f"Riverbend Family Medicine: monthly report ({scope})"
    msg["From"] = USER
    msg["To"] = ", ".join(recipients)
    msg.set_content("summary")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=f"{scope}.pdf")
    return Outgoing(scope=scope, message=msg, recipients=recipients)


def settings(port: int, security: str = "none", username: str | None = None) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security=security, username=username, sender=USER)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(ENV_SMTP_PASSWORD, PASSWORD)
    yield PASSWORD


def test_plain_delivery_reaches_every_recipient_with_the_attachment() -> None:
    recorder = Recorder()
    with smtp_server(recorder) as port:
        sent = send_all(settings(port), [message("practice", OWNERS)])
    assert [o.scope for o in sent] == ["practice"]
    (got,) = recorder.received
    assert got.mail_from == USER and got.rcpt_tos == list(OWNERS) and not got.tls
    (attachment,) = got.message.iter_attachments()
    assert attachment.get_filename() == "practice.pdf" and attachment.get_content() == PDF


def test_starttls_with_login(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, password: str) -> None:
    recorder = Recorder()
    options = {"tls_context": server_tls, "require_starttls": True, "authenticator": check_login, "auth_required": True}
    with smtp_server(recorder, **options) as port:
        send_all(settings(port, "starttls", USER), [message("practice", OWNERS)], ssl_context=client_tls)
    (got,) = recorder.received
    assert got.tls and got.rcpt_tos == list(OWNERS)


def test_implicit_tls(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    recorder = Recorder()
    with smtp_server(recorder, ssl_context=server_tls) as port:
        send_all(settings(port, "ssl"), [message("practice", OWNERS)], ssl_context=client_tls)
    assert [r.tls for r in recorder.received] == [True]


def test_untrusted_certificate_is_a_clear_error(server_tls: ssl.SSLContext) -> None:
    with smtp_server(Recorder(), tls_context=server_tls) as port, pytest.raises(DeliveryError) as caught:
        send_all(settings(port, "starttls"), [message("practice", OWNERS)], ssl_context=ssl.create_default_context())
    assert f"the TLS certificate of SMTP server 127.0.0.1:{port} is not trusted" in str(caught.value)
    assert str(caught.value).endswith("Nothing was sent")


def test_server_without_starttls_is_a_clear_error() -> None:
    with smtp_server(Recorder()) as port, pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        send_all(settings(port, "starttls"), [message("practice", OWNERS)])


def test_refused_connection_says_where_and_that_nothing_was_sent() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(DeliveryError) as caught:
        send_all(settings(port), [message("practice", OWNERS)])
    assert str(caught.value) == (
        f"cannot connect to SMTP server 127.0.0.1:{port}: connection refused (is the host and port right?). "
        "Nothing was sent"
    )


def test_rejected_login_names_the_user_but_never_the_password(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SMTP_PASSWORD, "wrong-secret-123")
    recorder = Recorder()
    options = {"tls_context": server_tls, "require_starttls": True, "authenticator": check_login, "auth_required": True}
    with smtp_server(recorder, **options) as port, pytest.raises(DeliveryError) as caught:
        send_all(settings(port, "starttls", USER), [message("practice", OWNERS)], ssl_context=client_tls)
    text = str(caught.value)
    assert text.startswith(f"SMTP server 127.0.0.1:{port} rejected the login as '{USER}' (535 ")
    assert "check [smtp] username and CLINIC_KPIS_SMTP_PASSWORD" in text and text.endswith("Nothing was sent")
    assert "wrong-secret-123" not in text and recorder.received == []


def test_username_without_password_fails_before_connecting() -> None:
    with pytest.raises(DeliveryError, match="CLINIC_KPIS_SMTP_PASSWORD is not set: nothing was sent"):
        send_all(settings(free_port(), "starttls", USER), [message("practice", OWNERS)])


def test_a_refused_recipient_stops_that_message_for_everyone_and_is_named() -> None:
    recorder = Recorder(refuse=frozenset({"gone@riverbend.example"}))
    east = ("east.manager@riverbend.example", "gone@riverbend.example")
    with smtp_server(recorder) as port, pytest.raises(DeliveryError) as caught:
        send_all(settings(port), [message("practice", OWNERS), message("EAST", east)])
    assert str(caught.value) == (
        "EAST report: the server refused recipient(s) gone@riverbend.example (550 5.1.1 mailbox unavailable); "
        "so it was not sent to the others either (east.manager@riverbend.example). "
        f"Sent: practice report to {', '.join(OWNERS)}. Not sent: EAST report"
    )
    assert [r.rcpt_tos for r in recorder.received] == [list(OWNERS)]
