"""`clinic-kpis alerts check`: evaluate the alert rules, record what they raise, email the digests.

It lives in reports/ because it needs both the KPI library (to evaluate) and the report's mail
path (recipients per scope, SMTP with STARTTLS, credentials from the environment). Run it right
after each ingest (reports/SCHEDULING.md): the warehouse keeps the alerts' state, so a run that
finds nothing new sends nothing.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from kpis.cli_options import ConfigOption, DbOption
from kpis.config import Config, load_config

app = typer.Typer(
    help="Alerts: evaluate the rules on complete periods, keep their state, email each scope's recipients.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)
commands.add_typer(app, name="alerts")

ATTEMPTS = 3  # sends per digest before it is left pending for the next run
BACKOFF_SECONDS = 5.0  # the wait before the second attempt; doubled before each further one


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


@app.command("check")
def check(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Record nothing and send nothing: write each digest as a .eml file into --out and list what "
            "would be raised and sent.",
        ),
    ] = False,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="Output: a table, or JSON (one object per alert).")
    ] = (OutputFormat.table),
    send: Annotated[
        bool, typer.Option("--send/--no-send", help="Email the digests ([report] recipients), or only record alerts.")
    ] = True,
    out: Annotated[Path, typer.Option("--out", help="Directory for the .eml files of --dry-run.")] = Path("."),
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Evaluate every alert rule on its latest complete period; raise, keep or clear each alert; send digests.

    An alert is raised once and stays quiet until its KPI recovers (then it re-arms). Each
    recipient of [report] recipients gets one digest per scope with the alerts not yet sent to
    them: the practice's recipients every alert, a location's only that location's. A failed
    send is retried, reported (exit code 1) and left pending for the next run.
    """
    from kpis import Warehouse
    from kpis.errors import ClinicKpisError
    from reports.delivery import check_credentials, insecure_warning
    from reports.errors import ReportError
    from reports.settings import PRACTICE, report_settings

    cfg = load_config(config, db=db)
    recipients = {scope: list(rcpts) for scope, rcpts in report_settings(cfg).recipients.items() if rcpts}
    mailing = send or dry_run
    if mailing and not dry_run and recipients:
        check_credentials(cfg.smtp)
        if warning := insecure_warning(cfg.smtp):
            typer.echo(f"warning: {warning}", err=True)
    # Like every write, a recorded run works on a copy of the warehouse, published when it is done
    # (`Warehouse.writing`): readers never wait for it, and a run that fails records nothing.
    recording = Warehouse.writing(config=cfg, what="alerts check")
    opened = Warehouse.open(config=cfg, read_only=True) if dry_run else recording
    with opened as wh:
        if mailing:  # a recipients scope the warehouse does not know fails now, before anything is recorded
            for scope in recipients:
                if scope != PRACTICE:
                    try:
                        wh.resolve_filters({"location": scope})
                    except ClinicKpisError as exc:
                        raise ReportError(f"{cfg.path or 'config'}: [report] recipients.{scope}: {exc}") from None
        evaluation = wh.evaluate_alerts(record=not dry_run, trigger="alerts check")
        digests = _digests(wh, recipients, evaluation) if mailing and recipients else []
        raised = _records(evaluation.raised)
        if send and not dry_run:  # pending before the first attempt, published with the alerts: never lost
            for digest in digests:
                wh.record_delivery(digest.alert_ids, digest.recipient, digest.scope, sent=False, attempts=0)
    digests = _with_charts(digests)
    if dry_run:
        _dry_run(cfg, evaluation, digests, out, output)
        return
    failed = _deliver(cfg, digests) if send else []
    if output is OutputFormat.json:
        typer.echo(json.dumps(_listing(evaluation.raised, digests, failed), indent=2))
    else:
        _summary(evaluation, raised, digests, failed, recipients, send)
    if failed:
        raise typer.Exit(1)


# -- steps ------------------------------------------------------------------------------------------


def _digests(wh: Any, recipients: dict[str, list[str]], evaluation: Any) -> list[Any]:
    from reports.alerts_email import plan_digests

    return plan_digests(wh, recipients, evaluation)


def _with_charts(digests: list[Any]) -> list[Any]:
    if not digests:
        return digests
    from reports.alerts_email import draw_charts
    from reports.build import progress
    from reports.charts import ChartRenderer

    with ChartRenderer() as renderer, progress("drawing the alerts' charts"):
        return draw_charts(digests, renderer)


def _deliver(cfg: Config, digests: list[Any]) -> list[tuple[Any, str]]:
    """Send each digest (with retries) and record it per alert and address; returns those that failed."""
    from kpis import Warehouse
    from reports.alerts_email import build_message
    from reports.delivery import Outgoing, send_with_retries
    from reports.errors import DeliveryError

    failed = []
    for digest in digests:
        message = build_message(digest, sender=cfg.smtp.sender)
        item = Outgoing(scope=digest.scope, message=message, recipients=(digest.recipient,), what="alert digest")

        def retrying(attempt: int, error: DeliveryError, wait: float, digest: Any = digest) -> None:
            typer.echo(
                f"attempt {attempt} of {ATTEMPTS} to send the {digest.scope} alert digest to {digest.recipient} "
                f"failed: {error}; retrying in {wait:g} s",
                err=True,
            )

        try:
            attempts = send_with_retries(cfg.smtp, item, attempts=ATTEMPTS, backoff=BACKOFF_SECONDS, on_retry=retrying)
        except DeliveryError as exc:
            with Warehouse.writing(config=cfg, what="alert delivery") as wh:
                wh.record_delivery(
                    digest.alert_ids, digest.recipient, digest.scope, sent=False, attempts=ATTEMPTS, error=str(exc)
                )
            typer.echo(
                f"error: the {digest.scope} alert digest to {digest.recipient} was not sent after {ATTEMPTS} "
                f"attempts ({exc}); its {len(digest.items)} alert(s) stay pending for the next run",
                err=True,
            )
            failed.append((digest, str(exc)))
            continue
        with Warehouse.writing(config=cfg, what="alert delivery") as wh:  # each outcome at once: never sent twice
            wh.record_delivery(
                digest.alert_ids,
                digest.recipient,
                digest.scope,
                sent=True,
                attempts=attempts,
                message_id=str(message["Message-ID"]),
            )
    return failed


def _dry_run(cfg: Config, evaluation: Any, digests: list[Any], out: Path, output: OutputFormat) -> None:
    from reports.alerts_email import build_message

    paths = []
    if digests:
        out.mkdir(parents=True, exist_ok=True)
    for digest in digests:
        path = out / _eml_name(digest)
        path.write_bytes(bytes(build_message(digest, sender=cfg.smtp.sender)))
        paths.append(path)
    if output is OutputFormat.json:
        typer.echo(json.dumps(_listing(evaluation.raised, digests, []), indent=2))
        return
    typer.echo(
        f"dry run: {len(evaluation.raised)} alert(s) would be raised, {len(evaluation.cleared)} cleared; "
        f"nothing recorded, nothing sent"
    )
    for row in _records(evaluation.raised):
        typer.echo(f"  new: {row['kpi_title']} — {row['scope_label']}, {row['period_start']}: {row['message']}")
    for digest, path in zip(digests, paths, strict=True):
        typer.echo(f"{path}  ({len(digest.items)} alert(s) to {digest.recipient}, {digest.scope})")


def _summary(
    evaluation: Any,
    raised: list[dict[str, Any]],
    digests: list[Any],
    failed: list[tuple[Any, str]],
    recipients: dict[str, list[str]],
    send: bool,
) -> None:
    firing = sum(1 for f in evaluation.findings if f.fired)
    typer.echo(
        f"evaluation {evaluation.evaluation_id}: {len(raised)} alert(s) raised, {len(evaluation.cleared)} cleared, "
        f"{firing} firing ({evaluation.judged} of {len(evaluation.findings)} rule x scope pairs had a period to judge)"
    )
    for row in raised:
        typer.echo(f"  new: {row['kpi_title']} — {row['scope_label']}, {row['period_start']}: {row['message']}")
    if not send:
        return
    if not recipients:
        typer.echo(
            "no [report] recipients: the alerts are recorded (the dashboard's Alerts page shows them); none emailed"
        )
        return
    not_sent = {id(d) for d, _ in failed}
    for digest in digests:
        if id(digest) not in not_sent:
            typer.echo(f"sent the {digest.scope} alert digest ({len(digest.items)} alert(s)) to {digest.recipient}")
    if not digests:
        typer.echo("nothing new to send")


def _listing(raised: Any, digests: list[Any], failed: list[tuple[Any, str]]) -> list[dict[str, Any]]:
    """One object per alert raised or carried by a digest: KPI, scope, rule, period, value, recipients."""
    not_sent = {id(d) for d, _ in failed}
    objects: dict[Any, dict[str, Any]] = {}
    new_keys = {_row_key(row) for row in _records(raised)}
    for row in _records(raised):
        objects[_row_key(row)] = _alert_object(row, new=True)
    for digest in digests:
        for item in digest.items:
            key = (
                item.alert_id if item.alert_id is not None else (item.rule_name, item.scope_dimension, item.scope_value)
            )
            entry = objects.setdefault(key, _item_object(item, new=key in new_keys))
            entry["recipients"].append(digest.recipient)
            if id(digest) in not_sent:
                entry["pending_for"].append(digest.recipient)
    return list(objects.values())


# -- helpers ----------------------------------------------------------------------------------------


def _records(frame: Any) -> list[dict[str, Any]]:
    rows = []
    for row in frame.to_dict(orient="records"):
        rows.append({k: _plain(v) for k, v in row.items()})
    return rows


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat") and not isinstance(value, str):
        if isinstance(value, datetime) and value.hour == value.minute == value.second == 0 and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if value.__class__.__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _row_key(row: dict[str, Any]) -> Any:
    if row["alert_id"] is not None:
        return int(row["alert_id"])
    return (row["rule_name"], row["scope_dimension"], row["scope_value"])


def _scope_object(dimension: str | None, value: str | None, label: str) -> dict[str, Any]:
    return {"dimension": dimension, "values": [value] if value is not None else [], "label": label}


def _alert_object(row: dict[str, Any], *, new: bool) -> dict[str, Any]:
    from kpis.formatting import value_text

    return {
        "alert_id": row["alert_id"],
        "new": new,
        "kpi_id": row["kpi_id"],
        "kpi_title": row["kpi_title"],
        "scope": _scope_object(row["scope_dimension"], row["scope_value"], row["scope_label"]),
        "rule": {"name": row["rule_name"], "condition": row["condition"], "text": row["rule_text"]},
        "period": row["period_start"],
        "grain": row["grain"],
        "value": row["value"],
        "value_text": value_text(row["value"], SimpleNamespace(fmt=row["fmt"], unit=row["unit"])),
        "message": row["message"],
        "status": row["status"],
        "recipients": [],
        "pending_for": [],
    }


def _item_object(item: Any, *, new: bool) -> dict[str, Any]:
    return {
        "alert_id": item.alert_id,
        "new": new,
        "kpi_id": item.kpi_id,
        "kpi_title": item.kpi_title,
        "scope": _scope_object(item.scope_dimension, item.scope_value, item.scope_label),
        "rule": {"name": item.rule_name, "condition": item.condition, "text": item.rule_text},
        "period": item.period.isoformat() if isinstance(item.period, date) else item.period,
        "grain": item.grain,
        "value": item.raw_value,
        "value_text": item.value,
        "message": item.message,
        "status": item.status,
        "recipients": [],
        "pending_for": [],
    }


def _eml_name(digest: Any) -> str:
    """`clinic-kpis-alerts-EAST-east.manager_at_riverbend.example.eml`: one file per digest."""
    who = "".join(c if c.isalnum() or c in ".-" else "_" for c in digest.recipient.replace("@", "_at_"))
    return f"clinic-kpis-alerts-{digest.scope}-{who}.eml"
