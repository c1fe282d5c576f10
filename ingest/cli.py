"""`clinic-kpis ingest`: load export files into the warehouse and print what happened to each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.adapters.csv_profile import shipped_profiles
from ingest.detect import FORMATS
from ingest.run import FileResult, ingest_paths
from kpis.cli_options import ConfigOption, DbOption

commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)


@commands.command(name="ingest")
def ingest_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Export files, folders (read recursively), .zip or .gz archives.", show_default=False),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help=(
                f"Format of the files: {', '.join(FORMATS)}. auto recognises each file from its content. "
                f"PROFILE is a shipped CSV profile ({', '.join(p.name for p in shipped_profiles() if not p.skip)}) "
                "or the path of your own .toml profile."
            ),
        ),
    ] = "auto",
    force: Annotated[
        bool, typer.Option("--force", help="Load files again even if the same content was loaded before.")
    ] = False,
    rotate_secret: Annotated[
        bool,
        typer.Option(
            "--rotate-secret",
            help="Accept a pseudonymization secret other than the one the warehouse was loaded with (on purpose: "
            "then load every export again with --force).",
        ),
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Load export files (FHIR, X12 837P/835, Asterisk queue_log or CDR, CSV) into the warehouse.

    Every file loads in its own transaction: records that break a rule are quarantined in
    `rejects` with the reason, the rest is loaded, and a file that cannot be read at all
    changes nothing. Files may come in any order and in separate runs: a newer version of a
    record wins over an older one, and references resolve whenever their target is loaded.
    The load works on a copy of the warehouse, published (with its results store refreshed)
    when it is done: the dashboard keeps answering meanwhile. While another load or refresh is
    writing, the ingest waits ([ingest] lock_wait_seconds). Exit code 1 if any file failed.
    """
    from ingest.lock import open_for_ingest
    from kpis.config import load_config

    out = Console()
    if not out.is_terminal:
        out = Console(width=220)  # piped: no progress, and a summary that is not squeezed into 80 columns
    settings = load_config(config, db=db)
    with open_for_ingest(settings, say=lambda message: typer.echo(f"note: {message}", err=True)) as wh:
        if out.is_terminal:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=out, transient=True) as progress:
                task = progress.add_task("loading", total=None)

                def report(name: str, done: int, total: int) -> None:
                    progress.update(
                        task, description=f"loading {Path(name).name}" if name else "done", completed=done, total=total
                    )

                results = ingest_paths(
                    wh, list(paths), fmt=fmt, force=force, progress=report, rotate_secret=rotate_secret
                )
        else:
            results = ingest_paths(wh, list(paths), fmt=fmt, force=force, rotate_secret=rotate_secret)
    out.print(summary_table(results))
    typer.echo(closing_line(results))
    for result in results:  # plain lines, never wrapped: one line per message
        if result.status == "skipped" or (result.message and result.status == "succeeded"):
            typer.echo(f"note: {result.path}: {result.message}")
        for warning in result.warnings:
            typer.echo(f"warning: {result.path}: {warning}", err=True)
        if result.status == "failed":
            typer.echo(f"error: {result.message}", err=True)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def summary_table(results: list[FileResult]) -> Table:
    """One row per file: read / inserted / updated / unchanged / stale / waiting / rejected / ignored
    and the status."""
    table = Table(title="ingest summary", title_justify="left", show_lines=False)
    table.add_column("file", overflow="fold")
    table.add_column("format")
    for name in ("read", "inserted", "updated", "unchanged", "stale", "waiting", "rejected", "ignored"):
        table.add_column(name, justify="right")
    table.add_column("status")
    for r in results:
        numbers = [r.read, r.inserted, r.updated, r.unchanged, r.stale, r.waiting, r.rejected, r.ignored]
        shown = [str(n) for n in numbers] if r.status == "succeeded" else [""] * len(numbers)
        table.add_row(r.path, r.adapter or "", *shown, r.status)
    return table


def closing_line(results: list[FileResult]) -> str:
    """The run in one line: files by status, records read and rejected, and where the reasons are
    (the table only counts the rejected records of each file)."""
    status = {name: sum(r.status == name for r in results) for name in ("succeeded", "skipped", "failed")}
    read = sum(r.read for r in results if r.status == "succeeded")
    rejected = sum(r.rejected for r in results if r.status == "succeeded")
    line = (
        f"{status['succeeded']} of {len(results)} file(s) loaded, {status['skipped']} skipped, "
        f"{status['failed']} failed: {read:,} records read, {rejected:,} rejected"
    )
    return line + ("; `clinic-kpis rejects` shows each with its reason" if rejected else "")
