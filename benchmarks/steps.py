"""The steps of one benchmark run at one scale: generate, ingest, compute KPIs, compute the pandas baseline.

Each step returns plain figures (seconds, rows, MB, peak RSS); `report.py` turns them into the
table. Generation and ingest run as the real command line in a child process; KPIs are timed
warm (one open warehouse, after a first call) and cold (a fresh process per repetition).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from benchmarks import baseline
from benchmarks.compare import Comparison, compare
from benchmarks.measure import clinic_kpis, median, run_child, timed
from kpis import Warehouse
from kpis.config import ENV_CONFIG, load_config


@dataclass(frozen=True)
class Scale:
    """A named size: the simulator's volume multiplier and months (~89,700 appointments per unit, 24 months)."""

    name: str
    factor: float
    months: int
    providers: int = 12

    def sample_args(self) -> list[str]:
        return ["--scale", str(self.factor), "--months", str(self.months), "--providers", str(self.providers)]


SCALES = {
    s.name: s
    for s in (
        Scale("tiny", 0.25, 2),  # about 2 thousand appointments: the test suite's run
        Scale("small", 1.0, 24),  # about 90 thousand
        Scale("1m", 11.15, 24),  # about 1.0 million
        Scale("10m", 111.5, 24),  # about 10 million
    )
}

CONFIG = """\
[practice]
name = "Benchmark Practice"
timezone = "America/New_York"

[warehouse]
path = "clinic_kpis.duckdb"
"""


@dataclass(frozen=True)
class Generated:
    seconds: float
    peak_rss_mb: float
    appointments: int
    megabytes: float


def generate(scale: Scale, workdir: Path, workers: int) -> Generated:
    """`clinic-kpis sample` into workdir/exports."""
    run = clinic_kpis("sample", "--out", "exports", "--workers", str(workers), *scale.sample_args(), cwd=workdir)
    size = sum(f.stat().st_size for f in (workdir / "exports").rglob("*") if f.is_file())
    appointments = int(run.stdout.split(" appointments")[0].split()[-1].replace(",", ""))
    return Generated(run.seconds, run.peak_rss_mb, appointments, size / 1e6)


@dataclass(frozen=True)
class FormatFigures:
    """Ingest of one export format: canonical rows and bytes read, and the seconds of its file loads."""

    label: str
    files: int
    rows: int
    megabytes: float
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")

    @property
    def mb_per_second(self) -> float:
        return self.megabytes / self.seconds if self.seconds else float("nan")


@dataclass(frozen=True)
class Ingested:
    seconds: float
    peak_rss_mb: float
    formats: list[FormatFigures]


def _format_label(adapter: str, file_path: str) -> str:
    """One label per export format; FHIR files are told apart by resource (the NDJSON appointment export)."""
    if adapter == "fhir":
        return f"FHIR NDJSON {Path(file_path).stem}"
    return {
        "x12_837": "X12 837P claims",
        "x12_835": "X12 835 remittances",
        "queue_log": "Asterisk queue_log",
        "csv:vendor_appointments": "CSV appointments (vendor)",
        "csv:synthea_transactions": "CSV transactions (Synthea)",
        "csv:portal_messages": "CSV portal messages",
    }.get(adapter, adapter)


def ingest(workdir: Path) -> Ingested:
    """A fresh warehouse (`clinic-kpis init`), then `clinic-kpis ingest exports`, timed per file from ingest_runs."""
    (workdir / "clinic-kpis.toml").write_text(CONFIG, encoding="utf-8")
    for leftover in ("clinic_kpis.duckdb", "clinic_kpis.duckdb.wal"):
        (workdir / leftover).unlink(missing_ok=True)
    clinic_kpis("init", cwd=workdir)
    run = clinic_kpis("ingest", "exports", cwd=workdir)
    con = duckdb.connect(str(workdir / "clinic_kpis.duckdb"), read_only=True)
    try:
        runs = con.execute(
            "SELECT adapter, file_path, rows_read, size_bytes, epoch(finished_at) - epoch(started_at) "
            "FROM ingest_runs WHERE status = 'succeeded'"
        ).fetchall()
    finally:
        con.close()
    totals: dict[str, list[float]] = {}
    for adapter, file_path, rows, size, seconds in runs:
        entry = totals.setdefault(_format_label(adapter, file_path), [0, 0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += rows
        entry[2] += size / 1e6
        entry[3] += seconds
    formats = [FormatFigures(label, int(f), int(r), mb, s) for label, (f, r, mb, s) in sorted(totals.items())]
    return Ingested(run.seconds, run.peak_rss_mb, formats)


@dataclass(frozen=True)
class KpiFigures:
    """Median seconds for all KPIs over the months, by one dimension, and the rows computed."""

    dimension: str
    warm: float
    cold: float
    rows: int


def appointments(workdir: Path) -> int:
    """Appointments in the workdir's warehouse (for a run on a warehouse loaded before)."""
    with Warehouse.open(config=load_config(workdir / "clinic-kpis.toml"), read_only=True) as wh:
        return wh.cursor().execute("SELECT count(*) FROM appointments").fetchone()[0]


def _months(workdir: Path) -> tuple[date, date]:
    """First and last month of the simulated run (from truth.json), the KPI range."""
    meta = json.loads((workdir / "exports" / "truth.json").read_text(encoding="utf-8"))["meta"]
    start, end = date.fromisoformat(meta["start"]), date.fromisoformat(meta["end"])
    return start.replace(day=1), end.replace(day=1)


COLD_SCRIPT = """
import json, sys, time
from kpis import Warehouse
started = time.perf_counter()
wh = Warehouse.open(config=sys.argv[1], read_only=True)
frame = wh.compute(start=sys.argv[2], end=sys.argv[3], by=sys.argv[4])
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(frame)}))
"""


def project_kpis(workdir: Path, dimension: str, repeat: int) -> tuple[KpiFigures, object]:
    """All KPIs by `dimension`: warm (same open warehouse, after one untimed call) and cold.

    Cold is a fresh process per repetition, timed from opening the warehouse (after imports) to
    the frame: nothing cached in the process, in DuckDB's buffers or in the SQL render cache.
    """
    first, last = _months(workdir)
    config = load_config(workdir / "clinic-kpis.toml")
    cold = []
    for _ in range(repeat):
        args = [str(workdir / "clinic-kpis.toml"), first.isoformat(), last.isoformat(), dimension]
        child = run_child([sys.executable, "-c", COLD_SCRIPT, *args], cwd=workdir)
        cold.append(json.loads(child.stdout)["seconds"])
    with Warehouse.open(config=config, read_only=True) as wh:

        def call():
            return wh.compute(start=first, end=last, by=dimension)

        frame = call()
        warm = [timed(call)[0] for _ in range(repeat)]
    return KpiFigures(dimension, median(warm), median(cold), len(frame)), frame


DASHBOARD_SCRIPT = """
import json, sys, time
from streamlit.testing.v1 import AppTest
started = time.perf_counter()
at = AppTest.from_file(sys.argv[1], default_timeout=600).run()
first = time.perf_counter() - started
if at.exception:
    sys.exit("the Overview failed: " + at.exception[0].message)
location = at.multiselect(key="location")
started = time.perf_counter()
location.set_value(location.options[:1]).run()
change = time.perf_counter() - started
if at.exception:
    sys.exit("the Overview failed after a filter change: " + at.exception[0].message)
print(json.dumps({"first_render": first, "filter_change": change}))
"""


@dataclass(frozen=True)
class DashboardFigures:
    """Median seconds of the Overview's first render (fresh process) and of one location filter change."""

    first_render: float
    filter_change: float


def dashboard(workdir: Path, repeat: int) -> DashboardFigures:
    """The Streamlit Overview under AppTest, one fresh process per repetition (nothing cached).

    AppTest runs the page's script as a browser session would, without the browser: the figure
    is the app's own work (queries, frames, charts built), not the page's drawing."""
    app = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    env |= {ENV_CONFIG: str(workdir / "clinic-kpis.toml")}
    runs = [
        json.loads(run_child([sys.executable, "-c", DASHBOARD_SCRIPT, str(app)], cwd=workdir, env=env).stdout)
        for _ in range(repeat)
    ]
    return DashboardFigures(median([r["first_render"] for r in runs]), median([r["filter_change"] for r in runs]))


def pandas_kpis(workdir: Path, dimensions: list[str], repeat: int) -> tuple[float, dict[str, float], dict]:
    """The baseline: median seconds to load the tables, median seconds per dimension, and its last frames."""
    first, last = _months(workdir)
    config = load_config(workdir / "clinic-kpis.toml")
    loads, seconds, frames = [], {d: [] for d in dimensions}, {}
    for _ in range(repeat):
        load_seconds, tables = timed(lambda: baseline.load_tables(workdir / "clinic_kpis.duckdb"))
        loads.append(load_seconds)
        for dimension in dimensions:
            scope = baseline.Scope(first, last, dimension, config.timezone, config.business_hours)
            elapsed, frames[dimension] = timed(lambda scope=scope, tables=tables: baseline.compute(tables, scope))
            seconds[dimension].append(elapsed)
    return median(loads), {d: median(s) for d, s in seconds.items()}, frames


def check(project: dict, pandas: dict) -> dict[str, Comparison]:
    return {d: compare(project[d], pandas[d], d) for d in project}
