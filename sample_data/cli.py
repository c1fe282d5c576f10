"""`clinic-kpis sample`: simulate a practice and write its exports with ground truth.

sample_data imports nothing from kpis (its truth must not follow from the code it checks), so
the --db/--config options every command takes are declared here too.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from sample_data.practice import Params, SampleError

commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)

DbOption = Annotated[
    Optional[Path], typer.Option("--db", help="Accepted like every command's --db; not used.", show_default=False)
]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", help="Accepted like every command's --config; not used.", show_default=False),
]


def _parse_end(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SampleError(f"--end must be a date like 2026-10-31, got {value!r}") from None


@commands.command(name="sample")
def sample_command(
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Directory to write the exports and truth.json into.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives byte-identical files.")] = 7,
    months: Annotated[int, typer.Option(help="Number of simulated months, ending with the month of --end.")] = 24,
    locations: Annotated[int, typer.Option(help="Locations (EAST, WEST, NORTH, then LOC4, ...).")] = 3,
    providers: Annotated[int, typer.Option(help="Providers at scale 1, spread over the locations.")] = 12,
    scale: Annotated[float, typer.Option(help="Volume multiplier: providers, patients, phone staff and calls.")] = 1.0,
    end: Annotated[str, typer.Option(help="Last simulated day (YYYY-MM-DD).")] = "2026-10-31",
    force: Annotated[bool, typer.Option("--force", help="Write into --out even if it is not empty.")] = False,
    workers: Annotated[
        Optional[int],
        typer.Option(
            help="Worker processes (default: the number of CPUs; 1 = in this process). The files do not depend on it.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Simulate a practice and write its exports (FHIR, X12, queue_log, CSV) with ground truth.

    The warehouse is not touched (--db and --config are accepted for symmetry with the other
    commands); load the result with `clinic-kpis ingest DIR`.
    """
    from sample_data.simulate import default_workers, simulate

    if workers is not None and workers < 1:
        raise SampleError(f"--workers must be at least 1, got {workers}")
    processes = workers or default_workers()
    if out is None:
        raise SampleError("--out DIR is required: the directory to write the simulated exports into")
    if out.exists() and not out.is_dir():
        raise SampleError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SampleError(f"--out {out} is not empty; choose an empty directory or pass --force")
    params = Params(
        seed=seed, months=months, locations=locations, providers=providers, scale=scale, end=_parse_end(end)
    )
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("simulating {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task(f"{params.start:%Y-%m}", total=params.months + 1)
            summary = simulate(
                params,
                out,
                lambda label, done, total: bar.update(task, completed=done, total=total, description=label),
                workers=processes,
            )
    else:
        summary = simulate(params, out, workers=processes)
    typer.echo(
        f"simulated {params.months} months ({params.start} to {params.end}), seed {params.seed}, "
        f"{params.n_providers} providers at {params.locations} locations"
    )
    typer.echo(f"  {summary.appointments:,} appointments, {summary.claims:,} claims, {summary.calls:,} calls")
    groups: dict[str, list[int]] = {}
    for rel, lines in summary.files.items():
        top = rel.split("/")[0] if "/" in rel else rel
        groups.setdefault(top, [0, 0])
        groups[top][0] += 1
        groups[top][1] += lines
    for top, (files, lines) in sorted(groups.items()):
        typer.echo(
            f"  {top + '/' if top not in ('truth.json', 'ASSUMPTIONS.md', 'change_log.csv') else top:<16} "
            f"{files:>3} file(s) {lines:>10,} lines"
        )
    typer.echo(f"wrote {out} (ground truth: {out / 'truth.json'})")
