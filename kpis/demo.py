"""`clinic-kpis demo`: the newcomer's tour, end to end, in one folder.

The tour runs the steps a practice runs by hand (`init`, `sample`, `ingest`, `report build`,
`dashboard`) as the registered commands themselves, in this process, so what the demo shows is
what the commands do (and kpis imports none of the packages that provide them). Everything it
writes stays in the demo folder: config, secret, warehouse, simulated exports and the report.

Re-running keeps what is still current: the same simulation is reused, files already loaded are
skipped and the report is rebuilt. When the simulation would differ (another `--months`, or a
new month has begun since), the exports and the demo's warehouse are made again from scratch,
so the warehouse never mixes two simulations.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sysconfig
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from kpis.cli_options import serving_port
from kpis.commands import print_scorecard
from kpis.config import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_DB_NAME,
    DEFAULT_DEMO_DIR,
    DEFAULT_TIMEZONE,
    Config,
    load_config,
)
from kpis.errors import ClinicKpisError
from kpis.periods import period_floor, previous_period
from kpis.warehouse import Warehouse

# Half the default practice (6 providers) over 13 months: the last month has a year-ago month,
# and simulating plus loading it takes about 35 s on a 2-core machine (the default 24 months
# at full scale take about 2 minutes), which keeps the whole non-serving tour under a minute.
DEFAULT_MONTHS = 13
# What `clinic-kpis sample` is asked for besides --months and --end; the demo compares these with
# the meta of the truth.json it finds to tell whether the simulation is still current. One worker
# process: the files do not depend on it.
SIMULATION = {"seed": 7, "locations": 3, "providers": 12, "scale": 0.5}
PRACTICE_NAME = "Riverbend Family Medicine"
# the simulated practice's time zone (sample_data's default), written into the demo's config
TIMEZONE = DEFAULT_TIMEZONE
DEFAULT_PORT = 8501  # the dashboard command's defaults
ADDRESS = "127.0.0.1"

commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)


class DemoError(ClinicKpisError):
    """The demo folder or warehouse cannot be used for the demo."""


@commands.command(name="demo")
def demo_command(
    ctx: typer.Context,
    folder: Annotated[
        Path, typer.Option("--dir", help="Work folder for config, secret, warehouse, exports and report.")
    ] = DEFAULT_DEMO_DIR,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the report instead of serving the dashboard.")
    ] = False,
    port: Annotated[
        Optional[int],
        typer.Option(help=f"Port for the dashboard [default: {DEFAULT_PORT}, or the next free one]", min=1, max=65535),
    ] = None,
    months: Annotated[int, typer.Option(help="Months to simulate, ending with last month.", min=1)] = DEFAULT_MONTHS,
    end: Annotated[
        Optional[str], typer.Option(help="Last simulated day, YYYY-MM-DD (default: the end of last month).")
    ] = None,
    db: Annotated[
        Optional[Path],
        typer.Option(help=f"Warehouse file (default: {DEFAULT_DB_NAME} inside --dir).", show_default=False),
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option(help=f"Config file (default: {DEFAULT_CONFIG_NAME} inside --dir).", show_default=False),
    ] = None,
) -> None:
    """Simulate a practice, ingest it, print the headline KPIs, build a report and serve the dashboard.

    Everything goes into --dir (default ./demo); --db and --config default to files inside it.
    Re-running reuses the simulation while it is current and rebuilds it from scratch when not.
    """
    cfg_path = config if config is not None else folder / DEFAULT_CONFIG_NAME
    db_path = db if db is not None else folder / DEFAULT_DB_NAME
    exports = (folder / "exports").resolve()
    last_day = _parse_end(end) if end is not None else _last_month_end(TIMEZONE)
    first_day = _first_month(last_day, months)
    where = ("--db", db_path, "--config", cfg_path)

    steps = _Steps()
    steps.start("set up", f"set up {folder}")
    if not no_serve:  # before the work, not after it: a taken port is known now
        port = serving_port(ADDRESS, DEFAULT_PORT if port is None else port, chosen=port is not None)
    current = _is_current(exports, months, last_day)
    if db_path.exists():
        _check_demo_warehouse(db_path, exports)
    if not current:
        _start_over(exports, db_path)
    _run(ctx, "init", *where, "--practice-name", PRACTICE_NAME, "--timezone", TIMEZONE)
    cfg = load_config(cfg_path, db=db_path)

    steps.start("simulate", f"simulate {months} months ({first_day} to {last_day})")
    if current:
        typer.echo(f"exports    {exports} (kept: same simulation)")
    else:
        options = [(f"--{name}", value) for name, value in SIMULATION.items()]
        simulation = [part for option in options for part in option]
        _run(ctx, "sample", "--out", exports, *simulation, "--months", months, "--end", last_day, "--workers", 1)

    steps.start("ingest", "ingest the exports")
    _ingest(ctx, cfg, exports, where)
    if (exports / "change_log.csv").is_file():  # the practice's log of its process changes
        _run(ctx, "changes", "import", exports / "change_log.csv", *where)

    # The last month the simulation covers in full (the month of --end when it is a month end).
    month = max(first_day, previous_period(period_floor(last_day + timedelta(days=1), "month"), "month"))
    steps.start("headline KPIs", f"headline KPIs for {month:%B %Y}")
    print_headline(cfg, month)

    steps.start("report", "build the monthly report")
    _run(ctx, "report", "build", "--month", f"{month:%Y-%m}", "--out", folder / "report", *where)

    typer.echo(f"\n{steps.summary()}")
    if no_serve:
        _print_next("Next, from this folder:", cfg_path, ["dashboard", "scorecard"])
        return
    steps.start("serve", "serve the dashboard")
    _print_next("Meanwhile, from this folder in another terminal:", cfg_path, ["scorecard", "kpis --by location"])
    _run(ctx, "dashboard", *where, "--port", port)


def _run(ctx: typer.Context, *argv: object) -> int:
    """Run a registered `clinic-kpis` command in this process, as if typed; its exit code.

    User errors propagate as they would from the command itself (one line, exit 1).
    """
    root = ctx.find_root().command
    code = root.main([str(arg) for arg in argv], prog_name="clinic-kpis", standalone_mode=False)
    code = 0 if code is None else code
    if code and argv[0] != "ingest":  # ingest: the demo says which files failed
        raise DemoError(f"`clinic-kpis {' '.join(str(arg) for arg in argv[:2])}` failed (exit code {code})")
    return code


def command_name() -> str:
    """`clinic-kpis` as it can be typed here: the bare name when PATH finds this installation's
    script, else the script's path (after `make demo`, `.venv/bin/clinic-kpis`: make installs
    into the venv without activating it in the user's shell)."""
    script = Path(sysconfig.get_path("scripts")) / "clinic-kpis"
    found = shutil.which("clinic-kpis")
    if not script.exists() or (found is not None and Path(found).resolve() == script.resolve()):
        return "clinic-kpis"
    try:
        return str(script.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(script)


def _print_next(heading: str, cfg_path: Path, commands: list[str]) -> None:
    """The commands to try next, as they can be pasted into a shell in this folder."""
    program = command_name()
    typer.echo(f"\n{heading}")
    for command in commands:
        typer.echo(f"  {shlex.quote(program)} {command} --config {shlex.quote(str(cfg_path))}")
    if program != "clinic-kpis":
        activate = Path(program).parent / "activate"
        typer.echo(f"  (or `. {shlex.quote(str(activate))}` once, then type clinic-kpis alone)")


class _Steps:
    """The tour's numbered steps, each timed, so the demo says where its minutes go."""

    def __init__(self) -> None:
        self._begun = time.monotonic()
        self._steps: list[tuple[str, float]] = []  # (short name, start)

    def start(self, name: str, heading: str) -> None:
        self._steps.append((name, time.monotonic()))
        typer.secho(f"\n[{len(self._steps)}] {heading}", bold=True)

    def summary(self) -> str:
        """`The tour took 74 s: set up 1 s, simulate 31 s, ...` for the steps so far."""
        now = time.monotonic()
        ends = [begun for _, begun in self._steps[1:]] + [now]
        parts = [f"{name} {end - begun:.0f} s" for (name, begun), end in zip(self._steps, ends, strict=True)]
        return f"The tour took {now - self._begun:.0f} s: {', '.join(parts)}."


def _parse_end(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DemoError(f"--end must be a date like 2026-10-31, got {text!r}") from None


def _last_month_end(timezone: str) -> date:
    """The last day of last month in the practice time zone: the simulation ends there."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(timezone)).date().replace(day=1) - timedelta(days=1)


def _first_month(last_day: date, months: int) -> date:
    """The first day of the first of `months` simulated months ending with the month of `last_day`."""
    first = period_floor(last_day, "month")
    for _ in range(months - 1):
        first = previous_period(first, "month")
    return first


# -- the folder --------------------------------------------------------------------------------


def _is_current(exports: Path, months: int, last_day: date) -> bool:
    """Whether `exports` holds the simulation the demo asks for (its truth.json says how it was made).

    `providers` is not compared: the meta holds providers after --scale, and the demo always
    asks for the same number.
    """
    truth = exports / "truth.json"
    if not truth.is_file():
        return False
    meta = json.loads(truth.read_text(encoding="utf-8"))["meta"]
    wanted = {
        "seed": SIMULATION["seed"],
        "months": months,
        "end": last_day.isoformat(),
        "locations": SIMULATION["locations"],
        "scale": SIMULATION["scale"],
    }
    made = {**meta, "locations": len(meta.get("locations", []))}
    return all(made.get(key) == value for key, value in wanted.items())


def _check_demo_warehouse(db_path: Path, exports: Path) -> None:
    """Refuse a warehouse the demo did not make: the demo never writes into real data.

    The demo's own warehouse holds its simulation's files, and may hold more: what was loaded
    since through its dashboard's upload box (or `ingest`), which is said, not refused. A
    warehouse that holds files but none of the simulation's is someone else's.
    """
    with Warehouse(db_path, read_only=True, config=Config(db_path=db_path)) as wh:
        paths = list(dict.fromkeys(wh.ingest_runs()["file_path"]))
    foreign = [p for p in paths if not Path(p).is_relative_to(exports)]
    if foreign and len(foreign) == len(paths):
        raise DemoError(
            f"{db_path} holds data the demo did not load (e.g. {foreign[0]}); "
            "the demo only writes to its own warehouse: choose another --dir or --db"
        )
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        typer.echo(f"warehouse  {db_path} also holds {len(foreign)} file(s) the demo did not load ({shown})")


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


# -- load --------------------------------------------------------------------------------------


def _ingest(ctx: typer.Context, cfg: Config, exports: Path, where: tuple[object, ...]) -> None:
    """Load every export folder with `clinic-kpis ingest` and sum up what its runs did."""
    folders = sorted(p for p in exports.iterdir() if p.is_dir())
    before = _last_run_id(cfg)
    code = _run(ctx, "ingest", *folders, *where)
    with Warehouse.open(config=cfg, read_only=True) as wh:
        runs = wh.ingest_runs()
    runs = runs[runs["run_id"] > before].sort_values("run_id")
    failed = runs[runs["status"] == "failed"]
    if code or len(failed):
        first = failed["error"].iloc[0] if len(failed) else f"exit code {code}"
        raise DemoError(f"{len(failed)} file(s) failed to load, first: {first}")
    loaded = runs[runs["status"] == "succeeded"]
    skipped = len(runs) - len(loaded)
    typer.echo(
        f"loaded     {len(loaded)} files: {loaded['rows_read'].sum():,} records read, "
        f"{loaded['rows_inserted'].sum():,} inserted, {loaded['rows_updated'].sum():,} updated, "
        f"{loaded['rows_rejected'].sum():,} quarantined" + (f"; {skipped} already loaded" if skipped else "")
    )


def _last_run_id(cfg: Config) -> int:
    with Warehouse.open(config=cfg, read_only=True) as wh:
        runs = wh.ingest_runs()
    return int(runs["run_id"].max()) if len(runs) else 0


# -- the headline table ------------------------------------------------------------------------


def print_headline(cfg: Config, month: date) -> None:
    """The catalog's headline KPIs for `month`, as `clinic-kpis scorecard --headline` prints them.

    Each value is for the KPI's latest complete month (referral completion waits 90 days); an
    open month is shown only as "so far", and comparisons are made between final months only.
    """
    with Warehouse.open(config=cfg, read_only=True) as wh:
        specs = {s.id: s for s in wh.catalog() if s.headline}
        card = wh.scorecard(month, kpis=list(specs))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    print_scorecard(card, specs, console)
