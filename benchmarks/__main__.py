"""`python -m benchmarks`: generate, ingest and compute at scale, side by side with a pandas baseline.

One run, on one machine, per scale: the simulator's exports are generated (timed on their own),
cut at the last weekday (benchmarks/cut_exports.py), everything before it loaded into a fresh
warehouse by `clinic-kpis ingest` (rows/s and MB/s per format, peak RSS of the process, the
results store built), then every KPI is computed over the simulated months by provider and by
location, warm and cold, from the results store, by the raw engine and by the pandas baseline,
whose numbers must all agree; the dashboard is timed under Streamlit's AppTest (the Overview's
first render and a filter change, in a fresh process and in one that has what a running server
has, then every page's first render), the monthly report's build, the store's size and a full
copy of the file; last, the cut day is loaded as one more day of exports (ingest, store refresh,
publication, each timed). Prints one table and writes it as JSON. Exit status 1 if any two
sides disagree.

    python -m benchmarks --scale 1m --repeat 3 --json bench.json

`--from-warehouse DIR` times the KPIs, the dashboard and the baseline on a warehouse already
loaded (a `--keep` run's workdir, or one made by `python -m benchmarks.scale_up`), skipping
generation and ingest (and loads DIR/day as one more day of exports, if there is one);
`--no-baseline` leaves out the pandas side (its memory grows with the data: at 10 M it would not
fit beside the warehouse on a 24 GB machine); `--no-raw` the raw engine (minutes per pass at 10 M).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from rich.console import Console

from benchmarks import machine, steps
from benchmarks.compare import compare
from benchmarks.cut_exports import at_day, cut_exports
from benchmarks.measure import BenchmarkError, median
from benchmarks.report import Figure, print_table, write_json

DIMENSIONS = ["provider", "location"]
VIAS = {"store": "results store", "raw": "raw engine"}
PROCESSES = {"cold": "fresh process", "warm": "running server"}
MIN_FORMAT_ROWS = 100  # formats with fewer rows (the FHIR directory resources) are in the JSON only


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        action="append",
        choices=list(steps.SCALES),
        help="Size to run, repeatable (default: 1m). tiny ~2k appointments, small ~90k, 1m, 10m.",
    )
    parser.add_argument("--repeat", type=int, default=3, help="Repetitions of each KPI timing; the median is shown.")
    parser.add_argument(
        "--ingest-repeat", type=int, default=1, help="Repetitions of the whole ingest (fresh warehouse each)."
    )
    parser.add_argument("--workdir", type=Path, default=Path("bench-work"), help="Where exports and warehouses go.")
    parser.add_argument(
        "--keep", action="store_true", help="Keep the generated exports and warehouse (default: delete)."
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Simulator worker processes.")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), help="Where to write the results.")
    parser.add_argument(
        "--from-warehouse",
        type=Path,
        help="A workdir with a loaded warehouse (clinic-kpis.toml, its database, exports/truth.json): "
        "skip generating and ingesting, time the rest. It is never deleted.",
    )
    parser.add_argument("--no-baseline", action="store_true", help="Leave out the pandas baseline.")
    parser.add_argument(
        "--no-raw", action="store_true", help="Leave out the raw engine (at 10 M one pass takes minutes)."
    )
    parser.add_argument(
        "--refresh-full", action="store_true", help="Also time `clinic-kpis refresh --full` (the whole store rebuilt)."
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.ingest_repeat < 1:
        parser.error("--repeat and --ingest-repeat must be at least 1")
    if args.from_warehouse is not None:
        if args.scale and len(args.scale) > 1:
            parser.error("--from-warehouse takes one --scale (the name its figures are filed under)")
        args.from_warehouse = args.from_warehouse.resolve()
        if not (args.from_warehouse / "clinic-kpis.toml").is_file():
            parser.error(f"--from-warehouse {args.from_warehouse}: no clinic-kpis.toml there")
    args.scale = args.scale or ["1m"]
    args.workdir = args.workdir.resolve()
    return args


def run_scale(scale: steps.Scale, args: argparse.Namespace, say) -> tuple[list[Figure], dict]:
    """Every figure of one scale, and its details for the JSON (ingest per format, the comparisons)."""
    reuse = args.from_warehouse is not None
    workdir = args.from_warehouse if reuse else args.workdir / scale.name
    if not reuse:
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
    generated, ingests, day = None, [], None
    try:
        if not reuse:
            say(f"{scale.name}: generating exports")
            generated = steps.generate(scale, workdir, args.workers)
            cut_day = steps.last_weekday(workdir)
            cut_exports(workdir / "exports", workdir / "cut", at_day(cut_day), ("base", "day"), "America/New_York")
            for i in range(args.ingest_repeat):
                say(f"{scale.name}: ingesting the exports before {cut_day} ({i + 1}/{args.ingest_repeat})")
                ingests.append(steps.ingest(workdir, "cut/base"))
            day = workdir / "cut" / "day"
        elif (workdir / "day").is_dir():
            day = workdir / "day"
        project, frames = {}, {}
        vias = [v for v in VIAS if not (args.no_raw and v == "raw")]
        for via in vias:
            for dimension in DIMENSIONS:
                say(f"{scale.name}: computing KPIs by {dimension} from the {VIAS[via]}")
                project[(via, dimension)], frames[(via, dimension)] = steps.project_kpis(
                    workdir, dimension, args.repeat, via
                )
        say(f"{scale.name}: dashboard")
        boards = {process: steps.dashboard(workdir, args.repeat, process) for process in ("cold", "warm")}
        say(f"{scale.name}: report")
        report = steps.report(workdir, args.repeat)
        store_mb, warehouse_mb = steps.store_size(workdir)
        copy_seconds, copy_gb = steps.copy_cost(workdir)
        load_seconds, pandas_seconds, comparisons = None, {}, {}
        if not args.no_baseline:
            say(f"{scale.name}: pandas baseline")
            load_seconds, pandas_seconds, pandas_frames = steps.pandas_kpis(workdir, DIMENSIONS, args.repeat)
            comparisons = steps.check({d: frames[("store", d)] for d in DIMENSIONS}, pandas_frames)
        same_paths = {d: compare(frames[("store", d)], frames[("raw", d)], d) for d in DIMENSIONS if "raw" in vias}
        loaded = None
        if day is not None:
            say(f"{scale.name}: one more day of exports")
            loaded = steps.day_load(workdir, day)
        full = None
        if args.refresh_full:
            say(f"{scale.name}: refresh --full")
            full = steps.refresh_full(workdir)
    finally:
        if not args.keep and not reuse:
            shutil.rmtree(workdir, ignore_errors=True)
    s = scale.name
    figures = [Figure(s, "appointments", "count", steps.appointments(workdir) if reuse else generated.appointments)]
    if generated is not None:
        figures += [
            Figure(s, "generate exports", "s", generated.seconds),
            Figure(s, "exports size", "MB", generated.megabytes),
            Figure(s, "ingest everything, store built", "s", median([i.seconds for i in ingests])),
            Figure(s, "ingest peak RSS", "MB", median([i.peak_rss_mb for i in ingests])),
        ]
        for label in [f.label for f in ingests[0].formats if f.rows >= MIN_FORMAT_ROWS]:
            per_run = [next(f for f in i.formats if f.label == label) for i in ingests]
            figures.append(Figure(s, f"ingest {label}", "rows/s", median([f.rows_per_second for f in per_run])))
            figures.append(Figure(s, f"ingest {label}", "MB/s", median([f.mb_per_second for f in per_run])))
    for via in vias:
        name = VIAS[via]
        for dimension in DIMENSIONS:
            k = project[(via, dimension)]
            pandas = pandas_seconds.get(dimension)
            figures.append(Figure(s, f"all KPIs by {dimension}, warm, {name}", "s", k.warm, pandas))
            figures.append(Figure(s, f"all KPIs by {dimension}, warm, {name}, CPU", "s CPU", k.warm_cpu))
            cold_pandas = None if pandas is None else load_seconds + pandas
            figures.append(Figure(s, f"all KPIs by {dimension}, cold, {name}", "s", k.cold, cold_pandas))
    for process, board in boards.items():
        figures.append(Figure(s, f"dashboard Overview first render, {PROCESSES[process]}", "s", board.first_render))
        figures.append(Figure(s, f"dashboard filter change, {PROCESSES[process]}", "s", board.filter_change))
    for page, seconds in boards["warm"].pages.items():
        figures.append(Figure(s, f"dashboard {Path(page).stem} first render, {PROCESSES['warm']}", "s", seconds))
    figures += [
        Figure(s, "report build (HTML and PDF)", "s", report.total),
        Figure(s, "report: loading the KPI catalog", "s", report.catalog),
        Figure(s, "report: reading the numbers", "s", report.numbers),
        Figure(s, "report: charts, HTML and PDF", "s", report.render),
        Figure(s, "results store size", "MB", store_mb),
        Figure(s, "warehouse file with the store", "MB", warehouse_mb),
        Figure(s, f"full copy of the warehouse ({copy_gb:.2f} GB) with fsync", "s", copy_seconds),
    ]
    if loaded is not None:
        figures += [
            Figure(s, "one more day: rows read", "count", loaded.rows_read),
            Figure(s, "one more day: ingest", "s", loaded.ingest),
            Figure(s, "one more day: store refresh", "s", loaded.refresh),
            Figure(s, "one more day: checkpoint, fsync, rename", "s", loaded.publish),
            Figure(s, "one more day: until published", "s", loaded.to_publication),
            Figure(s, "one more day: copy for the next load", "s", loaded.standby_copy),
            Figure(s, "one more day: peak RSS", "MB", loaded.peak_rss_mb),
        ]
    if full is not None:
        figures += [Figure(s, "refresh --full", "s", full[0]), Figure(s, "refresh --full peak RSS", "MB", full[1])]
    details = {
        "appointments": figures[0].project,
        "from_warehouse": str(workdir) if reuse else None,
        "ingest_formats": [
            {**f.__dict__, "rows_per_second": f.rows_per_second, "mb_per_second": f.mb_per_second}
            for f in (ingests[0].formats if ingests else [])
        ],
        "pandas_load_seconds": load_seconds,
        "comparison": {
            d: {"rows": c.rows, "kpis": c.kpis, "equal": c.equal, "differences": c.differences}
            for d, c in comparisons.items()
        },
        "store_equals_raw": {
            d: {"rows": c.rows, "kpis": c.kpis, "equal": c.equal, "differences": c.differences}
            for d, c in same_paths.items()
        },
        "day_load": None if loaded is None else loaded.__dict__,
    }
    return figures, details


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Console() if sys.stdout.isatty() else Console(width=130)
    progress = Console(stderr=True)
    status = progress.status("starting") if progress.is_terminal else None

    def say(text: str) -> None:
        if status is not None:
            status.update(text)

    described = machine.describe()
    figures: list[Figure] = []
    details: dict[str, dict] = {}
    try:
        if status is not None:
            status.start()
        for name in args.scale:
            scale_figures, details[name] = run_scale(steps.SCALES[name], args, say)
            figures += scale_figures
    except BenchmarkError as exc:
        progress.print(f"error: {exc}", markup=False)
        return 1
    finally:
        if status is not None:
            status.stop()
    described["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    print_table(figures, out)
    out.print(
        f"machine: {described['cores']} cores, {described['memory_gb']} GB, {described['cpu']}; "
        f"Python {described['python']}, DuckDB {described['duckdb']}, pandas {described['pandas']}; "
        f"load average {described['load_average_1m']} at start, {described['load_average_1m_end']} at end",
        markup=False,
    )
    write_json(args.json, described, figures, {"scales": details, "repeat": args.repeat})
    equal = True
    for name, d in details.items():
        for key, against in (("comparison", "the pandas baseline"), ("store_equals_raw", "the raw engine")):
            for dimension, c in d[key].items():
                equal = equal and c["equal"]
                verdict = "equal" if c["equal"] else "DIFFERENT"
                out.print(
                    f"{name} by {dimension}, results store vs {against}: {c['rows']:,} KPI values in "
                    f"{c['kpis']} KPIs compared: {verdict}"
                )
                for line in c["differences"]:
                    out.print(f"  {line}", markup=False)
    out.print(f"wrote {args.json}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
