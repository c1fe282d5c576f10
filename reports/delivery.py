"""Sending report emails over SMTP: all-or-nothing per message, and plain words when it fails.

Each message is one SMTP transaction: every recipient is offered (RCPT TO) before any content
is sent, and if the server refuses one, the transaction is reset so no one gets a message the
others did not. Errors say which server, which step and which recipients, and what was and was
not sent; they never contain the password (it is scrubbed from server replies too).
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

from kpis.config import ENV_SMTP_PASSWORD, SmtpSettings
from reports.errors import DeliveryError

TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Outgoing:
    """One email: its scope and what it is (for messages), and the envelope recipients."""

    scope: str
    message: EmailMessage
    recipients: tuple[str, ...]
    what: str = "report"  # "report", "alert digest"


class _Refused(Exception):
    """One message was not sent (the session itself is still usable)."""


def send_all(
    settings: SmtpSettings,
    outgoing: list[Outgoing],
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> list[Outgoing]:
    """Send every message in one SMTP session; returns them once all went out, else DeliveryError.

    `ssl_context` defaults to the system's trusted certificates (OpenSSL honours SSL_CERT_FILE).
    """
    check_credentials(settings)
    password = settings.password
    where = f"SMTP server {settings.host}:{settings.port}"
    scrub = _scrubber(password)
    context = ssl_context or ssl.create_default_context()
    sent: list[Outgoing] = []
    failed: list[str] = []
    try:
        with _connect(settings, context, timeout, where) as smtp:
            if settings.username:
                _login(smtp, settings.username, password, where, scrub)
            for item in outgoing:
                try:
                    _send_one(smtp, settings.sender, item, scrub)
                    sent.append(item)
                except _Refused as exc:
                    failed.append(str(exc))
    except DeliveryError as exc:
        raise DeliveryError(_summary(str(exc), sent, outgoing)) from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = f"the connection to {where} failed: {scrub(_describe(exc))}"
        raise DeliveryError(_summary(reason, sent, outgoing)) from None
    if failed:
        raise DeliveryError(_summary("; ".join(failed), sent, outgoing))
    return sent


def insecure_warning(settings: SmtpSettings) -> str | None:
    """The warning for a login over a connection without TLS: the password would cross the
    network readable by anyone on the path."""
    if settings.security != "none" or not settings.username:
        return None
    return (
        f'[smtp] security = "none" with username {settings.username!r}: the password is sent unencrypted to '
        f"{settings.host}:{settings.port}, readable on the way; use starttls or ssl"
    )


def send_with_retries(
    settings: SmtpSettings,
    item: Outgoing,
    *,
    attempts: int = 3,
    backoff: float = 5.0,
    on_retry: Callable[[int, DeliveryError, float], None] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> int:
    """Send one message, retrying a failure up to `attempts` times in all, waiting `backoff`, then
    twice as long, and so on; returns the attempts it took, or raises the last DeliveryError.

    Why: alert digests are sent unattended (a timer), where a mail server that is briefly down
    or restarting should not leave a manager uninformed until the next run. `on_retry(attempt,
    error, wait)` is told of each failure that is retried.
    """
    attempt = 1
    while True:
        try:
            send_all(settings, [item], ssl_context=ssl_context, timeout=timeout)
            return attempt
        except DeliveryError as exc:
            if attempt >= attempts:
                raise
            wait = backoff * 2 ** (attempt - 1)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            time.sleep(wait)
            attempt += 1


def check_credentials(settings: SmtpSettings) -> None:
    """A login needs the password from the environment: say so before any work is done."""
    if settings.username and not settings.password:
        raise DeliveryError(
            f"[smtp] username is {settings.username!r} but {ENV_SMTP_PASSWORD} is not set: nothing was sent"
        )


def _summary(reason: str, sent: list[Outgoing], outgoing: list[Outgoing]) -> str:
    """The reason, then exactly which reports went to whom and which did not."""
    done = [f"{o.scope} {o.what} to {', '.join(o.recipients)}" for o in sent]
    not_done = [f"{o.scope} {o.what}" for o in outgoing if o not in sent]
    text = reason
    text += f". Sent: {'; '.join(done)}" if done else ". Nothing was sent"
    if done and not_done:
        text += f". Not sent: {', '.join(not_done)}"
    return text


def _connect(settings: SmtpSettings, context: ssl.SSLContext, timeout: float, where: str) -> smtplib.SMTP:
    try:
        if settings.security == "ssl":
            return smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    except ConnectionRefusedError:
        raise DeliveryError(f"cannot connect to {where}: connection refused (is the host and port right?)") from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"the TLS certificate of {where} is not trusted: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise DeliveryError(
            f'TLS with {where} failed ({exc.reason}); is [smtp] security = "ssl" right for port {settings.port}?'
        ) from None
    except TimeoutError:
        raise DeliveryError(f"cannot connect to {where}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise DeliveryError(f"cannot connect to {where}: {_describe(exc)}") from None
    if settings.security == "starttls":
        try:
            smtp.starttls(context=context)
        except smtplib.SMTPNotSupportedError:
            smtp.close()
            raise DeliveryError(
                f'{where} does not offer STARTTLS; set [smtp] security to "ssl" or, on a trusted network only, "none"'
            ) from None
        except ssl.SSLCertVerificationError as exc:
            smtp.close()
            raise DeliveryError(f"the TLS certificate of {where} is not trusted: {exc.verify_message}") from None
    return smtp


def _login(smtp: smtplib.SMTP, username: str, password: str, where: str, scrub: Callable[[str], str]) -> None:
    try:
        smtp.login(username, password)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"{where} rejected the login as {username!r} ({exc.smtp_code} {scrub(_text(exc.smtp_error))}); "
            f"check [smtp] username and {ENV_SMTP_PASSWORD}"
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(
            f'{where} does not offer login (AUTH) on this connection; with [smtp] security = "none" many servers '
            "only allow it after STARTTLS"
        ) from None


def _send_one(smtp: smtplib.SMTP, sender: str, item: Outgoing, scrub: Callable[[str], str]) -> None:
    """One transaction: MAIL, every RCPT, then DATA only if all were accepted; else RSET."""
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code != 250:
        smtp.rset()
        raise _Refused(
            f"{item.scope} {item.what}: the server refused the sender {sender} ({code} {scrub(_text(reply))})"
        )
    refused = {}
    for rcpt in item.recipients:
        code, reply = smtp.rcpt(rcpt)
        if code not in (250, 251):
            refused[rcpt] = f"{rcpt} ({code} {scrub(_text(reply))})"
    if refused:
        smtp.rset()
        others = [r for r in item.recipients if r not in refused]
        also = f"; so it was not sent to the others either ({', '.join(others)})" if others else ""
        raise _Refused(f"{item.scope} {item.what}: the server refused recipient(s) {', '.join(refused.values())}{also}")
    try:
        smtp.data(item.message.as_bytes(policy=policy.SMTP))
    except smtplib.SMTPDataError as exc:
        smtp.rset()
        raise _Refused(
            f"{item.scope} {item.what}: the server refused the message ({exc.smtp_code} {scrub(_text(exc.smtp_error))})"
        ) from None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _scrubber(password: str | None) -> Callable[[str], str]:
    def scrub(text: str) -> str:
        return text.replace(password, "***") if password else text

    return scrub
