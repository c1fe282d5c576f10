"""`clinic-kpis demo`: the newcomer's tour, end to end, in one folder.

The tour runs the steps a practice runs by hand (`init`, `sample`, `ingest`, `kpis`, `report
build`, `dashboard`) through the same code, so what the demo shows is what the commands do.
Everything it writes stays in the demo folder: config, secret, warehouse, simulated exports and
the report.

Re-running keeps what is still current: the same simulation is reused, files already loaded are
skipped and the report is rebuilt. When the simulation would differ (another `--months`, or a
new month has begun since), the exports and the demo's warehouse are made again from scratch,
so the warehouse never mixes two simulations.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dashboards.cli import DEFAULT_PORT, dashboard_command
from kpis.cli_options import ConfigOption, DbOption
from kpis.config import DEFAULT_CONFIG_NAME, DEFAULT_DB_NAME, Config, load_config
from kpis.errors import ClinicKpisError
from kpis.formatting import format_value
from kpis.warehouse import Warehouse
from sample_data.clock import add_months
from sample_data.practice import Params

# Half the default practice (6 providers) over 13 months: the last month has a year-ago month,
# and simulating plus loading it takes about 35 s on a 2-core machine (the default 24 months
# at full scale take about 2 minutes), which keeps the whole non-serving tour under a minute.
DEFAULT_MONTHS = 13
SCALE = 0.5
PRACTICE_NAME = "Riverbend Family Medicine"


class DemoError(ClinicKpisError):
    """The demo folder or warehouse cannot be used for the demo."""


def demo_command(
    folder: Annotated[
        Path, typer.Option("--dir", help="Work folder for config, secret, warehouse, exports and report.")
    ] = Path("demo"),
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the report instead of serving the dashboard.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port for the dashboard.", min=1, max=65535)] = DEFAULT_PORT,
    months: Annotated[int, typer.Option(help="Months to simulate, ending with last month.", min=1)] = DEFAULT_MONTHS,
    end: Annotated[
        Optional[str], typer.Option(help="Last simulated day, YYYY-MM-DD (default: the end of last month).")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Simulate a practice, ingest it, print the headline KPIs, build a report and serve the dashboard.

    Everything goes into --dir (default ./demo); --db and --config default to files inside it.
    Re-running reuses the simulation while it is current and rebuilds it from scratch when not.
    """
    from kpis.cli import init
    from reports.cli import build

    cfg_path = config if config is not None else folder / DEFAULT_CONFIG_NAME
    db_path = db if db is not None else folder / DEFAULT_DB_NAME
    exports = (folder / "exports").resolve()
    last_day = _parse_end(end) if end is not None else _last_month_end(Params.timezone)
    params = Params(months=months, scale=SCALE, end=last_day)

    _step(1, f"set up {folder}")
    current = _is_current(exports, params)
    if db_path.exists():
        _check_demo_warehouse(db_path, exports)
    if not current:
        _start_over(exports, db_path)
    init(db=db_path, config=cfg_path, practice_name=PRACTICE_NAME, timezone=params.timezone)
    cfg = load_config(cfg_path, db=db_path)

    _step(2, f"simulate {params.months} months ({params.start} to {params.end})")
    if current:
        typer.echo(f"exports    {exports} (kept: same simulation)")
    else:
        _simulate(params, exports)

    _step(3, "ingest the exports")
    _ingest(cfg, exports)

    # The last month the simulation covers in full (the month of --end when it is a month end).
    month = max(params.start, add_months(params.end + timedelta(days=1), -1))
    _step(4, f"headline KPIs for {month:%B %Y}")
    print_headline(cfg, month)

    _step(5, "build the monthly report")
    build(month=f"{month:%Y-%m}", out=folder / "report", db=db_path, config=cfg_path)

    if no_serve:
        typer.echo(f"\nServe the dashboard with: clinic-kpis dashboard --config {cfg_path}")
        return
    _step(6, "serve the dashboard")
    dashboard_command(db=db_path, config=cfg_path, port=port)


def _step(number: int, text: str) -> None:
    typer.secho(f"\n[{number}] {text}", bold=True)


def _parse_end(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DemoError(f"--end must be a date like 2026-10-31, got {text!r}") from None


def _last_month_end(timezone: str) -> date:
    """The last day of last month in the practice time zone: the simulation ends there."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(timezone)).date().replace(day=1) - timedelta(days=1)


# -- the folder --------------------------------------------------------------------------------


def _is_current(exports: Path, params: Params) -> bool:
    """Whether `exports` holds the simulation `params` asks for (its truth.json says how it was made)."""
    truth = exports / "truth.json"
    if not truth.is_file():
        return False
    meta = json.loads(truth.read_text(encoding="utf-8"))["meta"]
    wanted = {
        "seed": params.seed,
        "start": params.start.isoformat(),
        "end": params.end.isoformat(),
        "locations": params.locations,
        "providers": params.n_providers,
        "scale": params.scale,
    }
    made = {**meta, "locations": len(meta.get("locations", []))}
    return all(made.get(key) == value for key, value in wanted.items())


def _check_demo_warehouse(db_path: Path, exports: Path) -> None:
    """Refuse a warehouse holding anything but this demo's exports: the demo never touches real data."""
    with Warehouse(db_path, read_only=True, config=Config(db_path=db_path)) as wh:
        paths = wh.ingest_runs()["file_path"]
    foreign = [p for p in paths if not Path(p).is_relative_to(exports)]
    if foreign:
        raise DemoError(
            f"{db_path} holds data the demo did not load (e.g. {foreign[0]}); "
            "the demo only writes to its own warehouse: choose another --dir or --db"
        )


def _start_over(exports: Path, db_path: Path) -> None:
    """Remove an outdated simulation and the warehouse it was loaded into."""
    if exports.exists():
        if any(exports.iterdir()) and not (exports / "truth.json").is_file():
            raise DemoError(f"{exports} exists and is not a simulation made by the demo: choose another --dir")
        shutil.rmtree(exports)
    for path in (db_path, db_path.with_name(db_path.name + ".wal")):
        if path.exists():
            path.unlink()
            typer.echo(f"removed    {path} (held an earlier simulation)")


# -- simulate and load -------------------------------------------------------------------------


@contextmanager
def _progress(description: str) -> Iterator[Callable[[str, int, int], None] | None]:
    """A callback(label, done, total) driving a bar on a terminal; None when output is piped."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(label: str, done: int, total: int) -> None:
            bar.update(task, description=f"{description} {Path(label).name}", completed=done, total=total)

        yield update


def _simulate(params: Params, exports: Path) -> None:
    from sample_data.simulate import simulate

    with _progress("simulating") as progress:
        summary = simulate(params, exports, progress)
    typer.echo(
        f"exports    {exports}: {summary.appointments:,} appointments, {summary.claims:,} claims, "
        f"{summary.calls:,} calls at {params.locations} locations with {params.n_providers} providers"
    )


def _ingest(cfg: Config, exports: Path) -> None:
    """Load every export folder, as `clinic-kpis ingest` does, and sum up what happened."""
    from ingest.run import ingest_paths

    folders = sorted(p for p in exports.iterdir() if p.is_dir())
    with Warehouse.open(config=cfg) as wh, _progress("loading") as progress:
        results = ingest_paths(wh, folders, progress=progress)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise DemoError(f"{len(failed)} file(s) failed to load, first: {failed[0].message}")
    loaded = [r for r in results if r.status == "succeeded"]
    skipped = len(results) - len(loaded)
    typer.echo(
        f"loaded     {len(loaded)} files: {sum(r.read for r in loaded):,} records read, "
        f"{sum(r.inserted for r in loaded):,} inserted, {sum(r.updated for r in loaded):,} updated, "
        f"{sum(r.rejected for r in loaded):,} quarantined" + (f"; {skipped} already loaded" if skipped else "")
    )


# -- the headline table ------------------------------------------------------------------------


def print_headline(cfg: Config, month: date) -> None:
    """The catalog's headline KPIs for `month`, for the practice: value, target and status."""
    with Warehouse.open(config=cfg, read_only=True) as wh:
        specs = [s for s in wh.catalog() if s.headline]
        frame = wh.compute([s.id for s in specs], start=month, end=month)
    rows = frame.set_index("kpi_id")
    table = Table(show_edge=False, header_style="bold")
    for name, justify in (("KPI", "left"), ("value", "right"), ("target", "right"), ("status", "left"), ("n", "right")):
        table.add_column(name, justify=justify)
    for spec in specs:
        row = rows.loc[spec.id]
        # An open period (claims not yet paid, referrals not yet closed) is not judged yet.
        status = (row["status"] or "").replace("_", " ") if row["complete"] else "still open"
        value, target = format_value(row["value"], spec.fmt), format_value(row["target"], spec.fmt)
        table.add_row(spec.title, value, target, status, str(row["n"]))
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table)
