"""`clinic-kpis refresh`: bring the results store up to date (every load does it too), or rebuild it."""

from __future__ import annotations

from typing import Annotated

import typer

from kpis.cli_options import ConfigOption, DbOption
from kpis.config import load_config

commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)


@commands.command(name="refresh")
def refresh_command(
    db: DbOption = None,
    config: ConfigOption = None,
    full: Annotated[bool, typer.Option("--full", help="Rebuild every table of the store from scratch.")] = False,
) -> None:
    """Refresh the results store the dashboard, report and `kpis` answer from, and publish it.

    Every `clinic-kpis ingest` refreshes the store for what it loaded; run this after changing
    `[kpi_options]` or the time zone (the store is rebuilt for the new definitions), or with
    --full to rebuild it whatever it holds. Readers keep the previous snapshot until it is done.
    """
    from kpis.publication import writing
    from kpis.serving.refresh import refresh

    cfg = load_config(config, db=db)
    with writing(cfg, what="refresh", on_wait=_waiting) as store, store.cursor() as cur:
        summary = refresh(cur, store.config, full=full)
    if not summary.rebuilt and not summary.recomputed_rows and not summary.months:
        typer.echo(f"results store of {cfg.db_path}: up to date (ingest run {summary.covered_run})")
        return
    rows = sum(summary.recomputed_rows.values())
    months = sum(summary.months.values())
    rebuilt = f"; rebuilt: {', '.join(summary.rebuilt)}" if summary.rebuilt else ""
    typer.echo(
        f"results store of {cfg.db_path}: refreshed in {summary.seconds:.1f} s "
        f"({rows:,} fact rows recomputed, {months:,} month results{rebuilt})"
    )


def _waiting(writer) -> None:
    since = f" since {writer.started_at:%H:%M:%S %Z}" if writer.started_at else ""
    typer.echo(f"waiting for the {writer.what} running{since} (pid {writer.pid}) to finish", err=True)
