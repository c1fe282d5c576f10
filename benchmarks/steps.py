"""The steps of one benchmark run at one scale: generate, ingest, compute KPIs, compute the pandas baseline.

Each step returns plain figures (seconds, rows, MB, peak RSS); `report.py` turns them into the
table. Generation and ingest run as the real command line in a child process; KPIs are timed
warm (one open warehouse, after a first call) and cold (a fresh process per repetition).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb

from benchmarks import baseline
from benchmarks.compare import Comparison, compare
from benchmarks.measure import BenchmarkError, clinic_kpis, median, run_child, timed
from kpis import Warehouse, publication
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


def ingest(workdir: Path, exports: str = "exports") -> Ingested:
    """A fresh warehouse (`clinic-kpis init`), then `clinic-kpis ingest EXPORTS`, timed per file from ingest_runs."""
    (workdir / "clinic-kpis.toml").write_text(CONFIG, encoding="utf-8")
    for leftover in ("clinic_kpis.duckdb", "clinic_kpis.duckdb.wal"):
        (workdir / leftover).unlink(missing_ok=True)
    clinic_kpis("init", cwd=workdir)
    run = clinic_kpis("ingest", exports, cwd=workdir)
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
    warm_cpu: float  # CPU seconds of the warm call (DuckDB's threads included): steadier than wall on a busy machine


def appointments(workdir: Path) -> int:
    """Appointments in the workdir's warehouse (for a run on a warehouse loaded before)."""
    with Warehouse.open(config=load_config(workdir / "clinic-kpis.toml"), read_only=True) as wh:
        return wh.cursor().execute("SELECT count(*) FROM appointments").fetchone()[0]


def last_weekday(workdir: Path) -> date:
    """The simulated period's last weekday: the benchmark's 'one more day' (a weekend day holds little)."""
    meta = json.loads((workdir / "exports" / "truth.json").read_text(encoding="utf-8"))["meta"]
    day = date.fromisoformat(meta["end"])
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _months(workdir: Path) -> tuple[date, date]:
    """First and last month of the simulated run (from truth.json), the KPI range."""
    meta = json.loads((workdir / "exports" / "truth.json").read_text(encoding="utf-8"))["meta"]
    start, end = date.fromisoformat(meta["start"]), date.fromisoformat(meta["end"])
    return start.replace(day=1), end.replace(day=1)


COLD_SCRIPT = """
import json, sys, time
from kpis import Warehouse, publication
started = time.perf_counter()
wh = Warehouse.open(config=sys.argv[1], read_only=True)
frame = wh.compute(start=sys.argv[2], end=sys.argv[3], by=sys.argv[4], via=sys.argv[5])
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(frame)}))
"""


def project_kpis(workdir: Path, dimension: str, repeat: int, via: str = "auto") -> tuple[KpiFigures, object]:
    """All KPIs by `dimension`: warm (same open warehouse, after one untimed call) and cold.

    Cold is a fresh process per repetition, timed from opening the warehouse (after imports) to
    the frame: nothing cached in the process, in DuckDB's buffers or in the SQL render cache.
    `via` is compute's: `store` (the results store) or `raw` (the raw engine).
    """
    first, last = _months(workdir)
    config = load_config(workdir / "clinic-kpis.toml")
    cold = []
    for _ in range(repeat):
        args = [str(workdir / "clinic-kpis.toml"), first.isoformat(), last.isoformat(), dimension, via]
        child = run_child([sys.executable, "-c", COLD_SCRIPT, *args], cwd=workdir)
        cold.append(json.loads(child.stdout)["seconds"])
    with Warehouse.open(config=config, read_only=True) as wh:

        def call():
            return wh.compute(start=first, end=last, by=dimension, via=via)

        frame = call()
        warm, warm_cpu = [], []
        for _ in range(repeat):
            cpu = time.process_time()
            warm.append(timed(call)[0])
            warm_cpu.append(time.process_time() - cpu)
    return KpiFigures(dimension, median(warm), median(cold), len(frame), median(warm_cpu)), frame


DASHBOARD_SCRIPT = """
import json, sys, time
from streamlit.testing.v1 import AppTest
if sys.argv[2] == "warm":  # a running server: modules imported and the KPI catalog loaded, no data cached
    import dashboards.charts, dashboards.components, dashboards.data, dashboards.filters
    from kpis.catalog import shipped_specs
    shipped_specs()
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
location.set_value([]).run()
pages = {}
for page in sys.argv[3:]:
    started = time.perf_counter()
    at.switch_page(page).run()
    pages[page] = time.perf_counter() - started
    if at.exception:
        sys.exit(page + " failed: " + at.exception[0].message)
print(json.dumps({"first_render": first, "filter_change": change, "pages": pages}))
"""
PAGES = (
    "views/access.py",
    "views/revenue_cycle.py",
    "views/phones.py",
    "views/visit_flow.py",
    "views/referrals_portal.py",
    "views/data_sources.py",
    "views/definitions.py",
)


@dataclass(frozen=True)
class DashboardFigures:
    """Median seconds: the Overview's first render, one location filter change, each page's first visit."""

    first_render: float
    filter_change: float
    pages: dict[str, float]


def dashboard(workdir: Path, repeat: int, process: str = "cold") -> DashboardFigures:
    """The Streamlit app under AppTest, one fresh process per repetition (no data cached).

    AppTest runs the page's script as a browser session would, without the browser: the figure
    is the app's own work (queries, frames, charts built), not the page's drawing. `process`
    `cold` times a process that imports everything during the first render; `warm` one that
    has imported the app's modules and loaded the KPI catalog, as a running server has: the
    first render a manager sees after a load published new data (every cache is keyed by it).
    After the Overview and its filter change, every other page is visited once (its first
    render: the Overview's cached calls do not serve it).
    """
    app = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    env |= {ENV_CONFIG: str(workdir / "clinic-kpis.toml"), "PYTHONPATH": str(app.parents[1])}
    runs = [
        json.loads(
            run_child([sys.executable, "-c", DASHBOARD_SCRIPT, str(app), process, *PAGES], cwd=workdir, env=env).stdout
        )
        for _ in range(repeat)
    ]
    return DashboardFigures(
        median([r["first_render"] for r in runs]),
        median([r["filter_change"] for r in runs]),
        {page: median([r["pages"][page] for r in runs]) for page in PAGES},
    )


REPORT_SCRIPT = """
import json, sys, time
from datetime import date
from reports.charts import ChartRenderer, draw_trends
started = time.perf_counter()
with ChartRenderer() as renderer:  # as `clinic-kpis report build`: Chromium starts first, charts drawn while reading
    from kpis import Warehouse
    from kpis.catalog import shipped_specs
    from reports.build import prepare, render_documents
    shipped_specs()
    specs = time.perf_counter()
    charts = []
    def draw(trends):
        charts.append(draw_trends(renderer, trends, "svg"))
    with Warehouse.open(config=sys.argv[1], read_only=True) as wh:
        ctx = prepare(wh, date.fromisoformat(sys.argv[2]), None, on_trends=draw)
    numbers = time.perf_counter()
    svgs = charts[0].result()
render_documents(ctx, svgs, ("html", "pdf"), "a4")
rendered = time.perf_counter()
print(json.dumps({"catalog": specs - started, "numbers": numbers - specs, "render": rendered - numbers}))
"""


@dataclass(frozen=True)
class ReportFigures:
    """Median seconds of the monthly report's build (HTML and PDF) and of its parts, in a fresh process."""

    total: float
    catalog: float
    numbers: float
    render: float


def report(workdir: Path, repeat: int) -> ReportFigures:
    """`clinic-kpis report build` for the last complete month, a fresh process each: the whole command,
    and its parts (loading the KPI catalog, reading the numbers, drawing the charts and the PDF)."""
    _, last = _months(workdir)
    month = (last - timedelta(days=1)).replace(day=1)
    out = workdir / "report-out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    totals, parts = [], []
    for _ in range(repeat):
        totals.append(
            clinic_kpis("report", "build", "--month", f"{month:%Y-%m}", "--out", str(out), cwd=workdir).seconds
        )
        args = [sys.executable, "-c", REPORT_SCRIPT, str(workdir / "clinic-kpis.toml"), month.isoformat()]
        parts.append(json.loads(run_child(args, cwd=workdir, env=env).stdout))
    shutil.rmtree(out, ignore_errors=True)
    return ReportFigures(median(totals), *(median([p[k] for p in parts]) for k in ("catalog", "numbers", "render")))


DAY_SCRIPT = """
import json, sys, time
from ingest import ingest_paths
from kpis.config import load_config
from kpis.publication import prepare_standby, standby_ready, writing
from kpis.serving.refresh import refresh, reopened_cursor
config = load_config(sys.argv[1])
ready = standby_ready(config.db_path)
if not ready:  # the steady state: the previous load made the copy after publishing
    prepare_standby(config.db_path)
started = time.perf_counter()
with writing(config, what="load", standby=False) as store:
    opened = time.perf_counter()
    results = ingest_paths(store, [sys.argv[2]])
    loaded = time.perf_counter()
    with store.cursor() as cur:
        summary = refresh(cur, store.config, progress=False, reopen=lambda: reopened_cursor(store))
    refreshed = time.perf_counter()
published = time.perf_counter()
prepare_standby(config.db_path)
copied = time.perf_counter()
print(json.dumps({
    "copy_ready": opened - started, "ingest": loaded - opened, "refresh": refreshed - loaded,
    "publish": published - refreshed, "to_publication": published - started, "standby_copy": copied - published,
    "rows_read": sum(r.read for r in results), "failed": [r.message for r in results if r.status == "failed"],
    "recomputed_rows": summary.recomputed_rows, "months": summary.months, "rebuilt": summary.rebuilt,
    "copy_was_ready": ready,
}))
"""


@dataclass(frozen=True)
class DayLoad:
    """One more day of exports loaded into the warehouse: seconds per stage, rows, peak RSS of the process."""

    copy_ready: float
    ingest: float
    refresh: float
    publish: float
    to_publication: float
    standby_copy: float
    rows_read: int
    peak_rss_mb: float
    recomputed_rows: dict[str, int]
    months: dict[str, int]


def day_load(workdir: Path, day: Path) -> DayLoad:
    """Load `day` (one day's exports) as `clinic-kpis ingest` does, timing each stage of the writer.

    The copy it starts from was made after the previous publication (kpis/publication.py), so
    `copy_ready` is the check that it is there; `publish` is DuckDB's checkpoint, the fsync and
    the rename; `standby_copy` the full copy made afterwards for the next load (off this one's
    way to publication, on its way to the command's end).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    child = run_child(
        [sys.executable, "-c", DAY_SCRIPT, str(workdir / "clinic-kpis.toml"), str(day)], cwd=workdir, env=env
    )
    figures = json.loads(child.stdout)
    if figures.pop("failed"):
        raise BenchmarkError(f"loading {day} failed: {figures}")
    figures.pop("rebuilt")
    figures.pop("copy_was_ready")
    return DayLoad(**figures, peak_rss_mb=child.peak_rss_mb)


def refresh_full(workdir: Path) -> tuple[float, float]:
    """(seconds, peak RSS MB) of `clinic-kpis refresh --full`: the whole store rebuilt and published."""
    child = clinic_kpis("refresh", "--full", cwd=workdir)
    return child.seconds, child.peak_rss_mb


def copy_cost(workdir: Path) -> tuple[float, float]:
    """(seconds, GB) of one full copy of the published warehouse with its fsync: what a writer pays
    when no copy is ready (its first load, or after a write outside clinic-kpis)."""
    db = load_config(workdir / "clinic-kpis.toml").db_path
    target = db.with_name(db.name + ".copy-benchmark")
    started = time.perf_counter()
    publication.copy_file(db, target)
    fd = os.open(target, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds, db.stat().st_size / 1e9


def store_size(workdir: Path) -> tuple[float, float]:
    """(MB of the results store's tables, MB of the whole warehouse file), from DuckDB's storage info."""
    config = load_config(workdir / "clinic-kpis.toml")
    with Warehouse.open(config=config, read_only=True) as wh, wh.cursor() as cur:
        tables = cur.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'serving'").fetchall()
        block = cur.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        blocks = sum(
            cur.execute(
                f"SELECT count(DISTINCT block_id) FROM pragma_storage_info('serving.{name}') WHERE persistent"
            ).fetchone()[0]
            for (name,) in tables
        )
    return blocks * block / 1e6, config.db_path.stat().st_size / 1e6


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
