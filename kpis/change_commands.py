"""`clinic-kpis changes`: record the process changes a practice makes, and see what each one did.

`add`, `edit`, `remove` and `import` write the change log (every edit is kept); `list` shows
each change with, per KPI it targets, the chart used, the centre before and after, the rules
that fired, whether that is a signal, and the verdict in words (`Warehouse.change_effects`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from kpis.cli_options import ConfigOption, DbOption, OutputFormat
from kpis.formatting import format_value

app = typer.Typer(
    help="Record process changes (what, when, where, for which KPIs) and see whether each one worked.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)
commands.add_typer(app, name="changes")

KpiOption = Annotated[
    Optional[list[str]], typer.Option("--kpi", help="A KPI id the change targets (repeatable), e.g. no_show_rate.")
]
ScopeOption = Annotated[
    Optional[list[str]],
    typer.Option("--scope", help="Where the change applies, DIMENSION=VALUE (repeatable), e.g. location=EAST."),
]
ByOption = Annotated[Optional[str], typer.Option("--by", help="Who records this (a name or role).")]


@app.command("add")
def add_command(
    date: Annotated[str, typer.Option("--date", help="The day the change took effect, YYYY-MM-DD.")],
    title: Annotated[str, typer.Option("--title", help="What changed, in a few words.")],
    kpi: KpiOption = None,
    scope: ScopeOption = None,
    description: Annotated[str, typer.Option("--description", help="More detail (no patient data).")] = "",
    by: ByOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Record a process change; without --scope it applies to the whole practice."""
    from kpis.warehouse import Warehouse

    with Warehouse.writing(db, config=config, what="change log edit") as wh:
        change_id = wh.add_change(date, title, kpi or [], scope or [], description, by)
        change = wh.change(change_id)
    typer.echo(f"change {change_id} recorded: {change.title} from {change.date} ({_scope(change.scope_items)})")


@app.command("edit")
def edit_command(
    change_id: Annotated[int, typer.Argument(help="The change's id (see `clinic-kpis changes list`).")],
    date: Annotated[Optional[str], typer.Option("--date", help="New effective day, YYYY-MM-DD.")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="New title.")] = None,
    kpi: KpiOption = None,
    scope: ScopeOption = None,
    description: Annotated[Optional[str], typer.Option("--description", help="New description.")] = None,
    by: ByOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Change some fields of a recorded change; the earlier version is kept in its history."""
    from kpis.warehouse import Warehouse

    with Warehouse.writing(db, config=config, what="change log edit") as wh:
        version = wh.edit_change(
            change_id, date=date, title=title, kpis=kpi or None, scope=scope or None, description=description, by=by
        )
    typer.echo(f"change {change_id} edited (version {version})")


@app.command("remove")
def remove_command(
    change_id: Annotated[int, typer.Argument(help="The change's id.")],
    by: ByOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Take a change out of the log (its history is kept)."""
    from kpis.warehouse import Warehouse

    with Warehouse.writing(db, config=config, what="change log edit") as wh:
        wh.remove_change(change_id, by=by)
    typer.echo(f"change {change_id} removed")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A CSV (date,title,kpis,scope,description,recorded_by) or TOML file.")],
    by: ByOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Add the changes listed in a file; changes already in the log are skipped."""
    from kpis.warehouse import Warehouse

    with Warehouse.writing(db, config=config, what="change log edit") as wh:
        result = wh.import_changes(file, by=by)
    typer.echo(f"imported {len(result.added)} change(s) from {file}; {result.skipped} already in the log")


@app.command("list")
def list_command(
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    grain: Annotated[str, typer.Option(help="Period length of the charts: week, month or quarter.")] = "month",
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The change log with, per change and KPI, what the control chart says the change did.

    JSON is an array with one object per change and KPI: change_id, date, title, description,
    scope, recorded_by, kpi_id, chart, centre_before, centre_after, rules, signal, direction,
    better, status and verdict.
    """
    from kpis.warehouse import Warehouse

    with Warehouse.open(db, config=config, read_only=True) as wh:
        log = wh.changes()
        effects = wh.change_effects(grain=grain)
    records = change_records(log, effects)
    if output is OutputFormat.json:
        typer.echo(json.dumps(records, indent=2))
    elif output is OutputFormat.csv:
        flat = [{**r, "scope": _scope_text(r["scope"]), "rules": ";".join(r["rules"])} for r in records]
        typer.echo(pd.DataFrame(flat, columns=RECORD_FIELDS).to_csv(index=False).rstrip("\n"))
    else:
        _print_table(records)


RECORD_FIELDS = [
    "change_id", "date", "title", "description", "scope", "recorded_by", "kpi_id", "chart", "status", "signal",
    "rules", "direction", "better", "n_before", "n_after", "centre_before", "centre_after", "fmt", "verdict",
]  # fmt: skip


def change_records(log: pd.DataFrame, effects: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON-ready record per change and KPI (a change with no KPI result still appears once)."""
    by_change = {cid: group for cid, group in effects.groupby("change_id")} if len(effects) else {}
    records = []
    for change in log.to_dict(orient="records"):
        base = {
            "change_id": int(change["change_id"]),
            "date": change["date"].strftime("%Y-%m-%d"),
            "title": change["title"],
            "description": change["description"],
            "scope": change["scope"],
            "recorded_by": change["recorded_by"],
        }
        group = by_change.get(change["change_id"])
        for effect in [] if group is None else group.to_dict(orient="records"):
            records.append(base | {k: _plain(effect[k]) for k in RECORD_FIELDS if k not in base})
    return records


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        return value.item()
    return value


def _scope(items: list[str]) -> str:
    return ", ".join(items) or "the whole practice"


def _scope_text(scope: dict[str, list[str]]) -> str:
    return ";".join(f"{dim}={v}" for dim, values in scope.items() for v in values)


def _print_table(records: list[dict[str, Any]]) -> None:
    if not records:
        typer.echo("no changes recorded yet (clinic-kpis changes add --date ... --title ... --kpi ...)")
        return
    table = Table(show_edge=False, header_style="bold")
    for name in ("id", "date", "title", "scope", "kpi", "chart", "before", "after", "signal", "verdict"):
        table.add_column(name, overflow="fold")
    for r in records:
        table.add_row(
            str(r["change_id"]),
            r["date"],
            r["title"],
            _scope_text(r["scope"]) or "practice",
            r["kpi_id"],
            r["chart"],
            format_value(r["centre_before"], r["fmt"]),
            format_value(r["centre_after"], r["fmt"]),
            "yes" if r["signal"] else "no",
            r["verdict"],
        )
    Console(width=200).print(table)
