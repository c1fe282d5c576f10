"""`clinic-kpis report build|send`: the monthly report as files, or by email to each scope's recipients."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from kpis.cli_options import ConfigOption, DbOption
from kpis.config import Config, load_config
from reports.errors import ReportError
from reports.settings import PAPER_SIZES, PRACTICE, check_address, report_settings

app = typer.Typer(help="Build the monthly owner report (HTML + PDF) or send it by email.", no_args_is_help=True)
commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)
commands.add_typer(app, name="report")

MonthOption = Annotated[
    Optional[str],
    typer.Option("--month", help="The month to report, YYYY-MM (default: last month, in the practice time zone)."),
]
LocationOption = Annotated[
    Optional[str], typer.Option("--location", help="One location's report (its id or name, e.g. EAST).")
]
PaperOption = Annotated[
    Optional[str], typer.Option("--paper", help="PDF page size: letter or a4 (default: [report] paper, else letter).")
]
OutOption = Annotated[Path, typer.Option("--out", help="Directory to write into.")]
# Who a dry run's email is addressed to when no one is configured: example.org is reserved for examples.
SAMPLE_RECIPIENT = "owner@example.org"


def _month(text: str | None, config: Config) -> date:
    from kpis.periods import add_months
    from reports.context import parse_month

    if text is not None:
        return parse_month(text)
    return add_months(datetime.now(config.tz).date().replace(day=1), -1)


def _paper(text: str | None, config: Config) -> str:
    if text is None:
        return report_settings(config).paper
    if text.lower() not in PAPER_SIZES:
        raise ReportError(f"--paper must be one of {', '.join(PAPER_SIZES)}, got {text!r}")
    return text.lower()


def _formats(text: str) -> tuple[str, ...]:
    from reports.build import FORMATS

    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ReportError(f"--format takes {' and/or '.join(FORMATS)} separated by a comma, got {text!r}")
    return formats


@app.command()
def build(
    month: MonthOption = None,
    format_: Annotated[str, typer.Option("--format", help="html, pdf, or html,pdf.")] = "html,pdf",
    out: OutOption = Path("."),
    location: LocationOption = None,
    paper: PaperOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Build the monthly report as a self-contained HTML file and a PDF, and print their paths."""
    from reports.charts import ChartRenderer, Drawing, draw_trends

    cfg = load_config(config, db=db)
    formats, paper_size, when = _formats(format_), _paper(paper, cfg), _month(month, cfg)
    with ChartRenderer() as renderer:  # Chromium starts while the rest is imported and the numbers are read
        from kpis import Warehouse
        from reports.build import prepare, progress, render_documents, write_files
        from reports.context import Trend

        charts: list[Drawing] = []  # drawn while the numbers after the trends are read

        def draw(trends: tuple[Trend, ...]) -> None:
            charts.append(draw_trends(renderer, trends, "svg"))

        with Warehouse.open(config=cfg, read_only=True) as wh, progress("reading the numbers"):
            ctx = prepare(wh, when, location, on_trends=draw)
        with progress("drawing charts"):
            svgs = charts[0].result()
    with progress("rendering the report"):
        files = render_documents(ctx, svgs, formats, paper_size)
    for path in write_files(ctx, files, out):
        typer.echo(str(path))


@app.command()
def send(
    month: MonthOption = None,
    to: Annotated[
        Optional[list[str]],
        typer.Option("--to", help="Send to this address instead of the configured recipients (repeatable)."),
    ] = None,
    location: LocationOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help=f"Write each email as a .eml file into --out instead of sending it (to {SAMPLE_RECIPIENT} when no "
            "recipients are configured).",
        ),
    ] = False,
    out: OutOption = Path("."),
    paper: PaperOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Email the monthly report: the practice report to the owners, each location's to its manager.

    Recipients come from the config's [report] recipients (scope -> addresses), or --to for one
    scope (the practice, or --location). The SMTP password is read from CLINIC_KPIS_SMTP_PASSWORD.
    """
    from kpis import Warehouse
    from kpis.access import access_settings
    from kpis.audit import AuditLog, command_line_user
    from reports.build import email_parts, file_name, prepare, progress
    from reports.charts import ChartRenderer
    from reports.delivery import Outgoing, check_credentials, insecure_warning, send_all
    from reports.message import build_message, sender_domain

    cfg = load_config(config, db=db)
    paper_size, when = _paper(paper, cfg), _month(month, cfg)
    if dry_run and not to and not _has_recipients(cfg, location):
        to = [SAMPLE_RECIPIENT]
        typer.echo(
            f"no recipients configured for the {location or PRACTICE} report: the .eml is a sample addressed to "
            f"{SAMPLE_RECIPIENT}, a placeholder (set [report] recipients in {cfg.path or 'clinic-kpis.toml'})",
            err=True,
        )
    plan = delivery_plan(cfg, location, to)
    if not dry_run:
        check_credentials(cfg.smtp)
        if warning := insecure_warning(cfg.smtp):
            typer.echo(f"warning: {warning}", err=True)
    outgoing = []
    with ChartRenderer() as renderer:  # Chromium starts while the numbers are read
        with Warehouse.open(config=cfg, read_only=True) as wh, progress("reading the numbers"):
            contexts = [(prepare(wh, when, None if scope == PRACTICE else scope), rcpts) for scope, rcpts in plan]
        with progress("drawing charts and rendering the reports"):
            for ctx, rcpts in contexts:
                parts = email_parts(ctx, renderer, paper_size, sender_domain(cfg.smtp.sender))
                message = build_message(ctx, parts, sender=cfg.smtp.sender, recipients=rcpts)
                outgoing.append(Outgoing(scope=ctx.scope.key, message=message, recipients=rcpts))
    if dry_run:
        out.mkdir(parents=True, exist_ok=True)
        for (ctx, _), item in zip(contexts, outgoing, strict=True):
            path = out / file_name(ctx, "eml")
            path.write_bytes(bytes(item.message))
            typer.echo(str(path))
        return
    with progress(f"sending to {cfg.smtp.host}:{cfg.smtp.port}"):
        sent = send_all(cfg.smtp, outgoing)
    audit = AuditLog.beside(cfg.db_path, access_settings(cfg).audit_retention_days)
    for item in sent:
        audit.record("report_sent", command_line_user(), period=f"{when:%Y-%m}", scope=item.scope,
                     recipients=list(item.recipients))  # fmt: skip
        typer.echo(f"sent the {item.scope} report for {when:%Y-%m} to {', '.join(item.recipients)}")


def _has_recipients(cfg: Config, location: str | None) -> bool:
    configured = report_settings(cfg).recipients
    return bool(configured.get(location)) if location is not None else any(configured.values())


def delivery_plan(cfg: Config, location: str | None, to: list[str] | None) -> list[tuple[str, tuple[str, ...]]]:
    """(scope, recipients) of every email to send: --to for one scope, else the config's map."""
    if to:
        return [(location or PRACTICE, tuple(check_address(a, "--to") for a in to))]
    configured = report_settings(cfg).recipients
    where = cfg.path or "clinic-kpis.toml"
    if location is not None:
        if not configured.get(location):
            raise ReportError(
                f"no recipients for {location}: add {location} = [...] to [report] recipients in {where}, or pass --to"
            )
        return [(location, configured[location])]
    plan = [(scope, rcpts) for scope, rcpts in configured.items() if rcpts]
    if not plan:
        raise ReportError(
            f'no recipients: add [report] recipients = {{ practice = ["owner@example.org"] }} to {where}, or pass --to'
        )
    return sorted(plan, key=lambda item: (item[0] != PRACTICE, item[0]))
