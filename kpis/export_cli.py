"""`clinic-kpis export`: the canonical tables as Parquet, for Spark, Trino, Databricks or any lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from kpis.cli_options import ConfigOption, DbOption


def export_command(
    parquet: Annotated[
        Path, typer.Option("--parquet", help="Folder to write (created; an earlier export there is updated).")
    ],
    month: Annotated[
        Optional[list[str]],
        typer.Option("--month", help="Re-export only this month, YYYY-MM (repeatable); default: every month."),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Write the warehouse's tables as Parquet, one folder per table and one file per month.

    Tables with an event time are partitioned Hive-style by the practice's local month
    (`appointments/month=2026-09/data_0.parquet`); manifest.json records the schema version,
    the time zone and each table's columns and rows. Each month's file is replaced by an atomic
    rename, so a reader never sees half a month. `clinic-kpis kpis --engine spark --parquet`
    computes the KPIs from the folder.
    """
    from kpis.export import export_parquet
    from kpis.warehouse import Warehouse

    with Warehouse.open(db, config=config, read_only=True) as wh:
        summary = export_parquet(wh, parquet, months=month)
    table = Table(show_edge=False, header_style="bold")
    for name in ("table", "rows", "files", "size", "months"):
        table.add_column(name, justify="left" if name in ("table", "months") else "right")
    for t in summary.tables:
        months = f"{t.months[0]} .. {t.months[-1]}" if len(t.months) > 1 else "".join(t.months)
        table.add_row(t.table, f"{t.rows:,}", str(t.files), _size(t.bytes), months)
    Console(width=200).print(table)
    typer.echo(
        f"exported {summary.rows:,} rows ({_size(summary.bytes)}) to {summary.directory} in {summary.seconds:.1f} s "
        f"(schema version {summary.schema_version})"
    )


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"
