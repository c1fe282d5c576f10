"""`clinic-kpis refresh`: bring the results store up to date (every load does it too), or rebuild it."""

from __future__ import annotations

from typing import Annotated

import typer

from kpis.cli_options import ConfigOption, DbOption, Engine, MasterOption, ParquetOption
from kpis.config import load_config
from kpis.errors import ClinicKpisError

commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)


@commands.command(name="refresh")
def refresh_command(
    db: DbOption = None,
    config: ConfigOption = None,
    full: Annotated[bool, typer.Option("--full", help="Rebuild every table of the store from scratch.")] = False,
    engine: Annotated[
        Engine, typer.Option(help="duckdb: in the warehouse; spark: the fact rows on Spark, from --parquet (in full).")
    ] = Engine.duckdb,
    parquet: ParquetOption = None,
    master: MasterOption = "local[*]",
) -> None:
    """Refresh the results store the dashboard, report and `kpis` answer from, and publish it.

    Every `clinic-kpis ingest` refreshes the store for what it loaded; run this after changing
    `[kpi_options]` or the time zone (the store is rebuilt for the new definitions), or with
    --full to rebuild it whatever it holds. Readers keep the previous snapshot until it is done.
    With --engine spark the store is rebuilt with its fact rows computed by Spark from a Parquet
    export of this warehouse as it is now (the month results by DuckDB from them).
    """
    from kpis.publication import writing
    from kpis.serving.refresh import refresh_store

    if engine is Engine.spark and parquet is None:
        raise ClinicKpisError("--engine spark reads a Parquet export: give --parquet DIR (`clinic-kpis export`)")
    if engine is Engine.duckdb and parquet is not None:
        raise ClinicKpisError("--parquet is read by --engine spark; without it the warehouse computes the store")
    if parquet is not None:
        from kpis.export import read_manifest

        read_manifest(parquet)  # no export there: say so before waiting for the write lock
    cfg = load_config(config, db=db)
    with writing(cfg, what="refresh", on_wait=_waiting) as store:
        if engine is Engine.spark:
            from kpis.serving.spark_fill import refresh_on_spark

            summary = refresh_on_spark(store, parquet, master=master)
        else:
            summary = refresh_store(store, full=full)
    if not summary.rebuilt and not summary.recomputed_rows and not summary.months:
        typer.echo(f"results store of {cfg.db_path}: up to date (ingest run {summary.covered_run})")
        return
    if summary.memory_note:
        typer.echo(summary.memory_note, err=True)
    rows = sum(summary.recomputed_rows.values())
    months = sum(summary.months.values())
    rebuilt = f"; rebuilt: {', '.join(summary.rebuilt)}" if summary.rebuilt else ""
    rebuilt += f"; facts computed by Spark from {parquet}" if engine is Engine.spark else ""
    typer.echo(
        f"results store of {cfg.db_path}: refreshed in {summary.seconds:.1f} s "
        f"({rows:,} fact rows recomputed, {months:,} month results{rebuilt})"
    )


def _waiting(writer) -> None:
    since = f" since {writer.started_at:%H:%M:%S %Z}" if writer.started_at else ""
    typer.echo(f"waiting for the {writer.what} running{since} (pid {writer.pid}) to finish", err=True)
