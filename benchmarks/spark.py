"""`python -m benchmarks.spark`: the KPIs on Spark beside DuckDB, on one loaded warehouse, same machine.

    python -m benchmarks --scale small --keep --no-baseline --workdir /tmp/bench   # a warehouse
    python -m benchmarks.spark --from-warehouse /tmp/bench/small --master "local[2]" --json spark-small.json

Steps, each timed: `clinic-kpis export --parquet` in a child process (wall time, peak RSS, the
export's size beside the warehouse file's), the Spark session's start, then one request on both
engines: every KPI over the simulated months for the practice, each location and each provider
(`kpis.results.all_results`: one statement per relation or custom KPI, three grouping sets
each), first call and warm median; then each statement alone, warm. The two sides must agree
(counts exactly, numerators, denominators and values to 1e-12), else exit status 1: a time
means nothing unless both computed the same numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks import machine
from benchmarks.measure import clinic_kpis, median, timed
from benchmarks.report import Figure, write_json
from benchmarks.steps import _months
from kpis import Warehouse
from kpis.config import load_config
from kpis.results import all_results
from kpis.spark import SparkLake, spark_session

KEYS = ["kpi_id", "period_start", "dimension", "dimension_value"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--from-warehouse", type=Path, required=True, help="A workdir with clinic-kpis.toml, its database, exports/."
    )
    parser.add_argument("--master", default="local[2]", help="Spark master (default: local[2]).")
    parser.add_argument("--driver-memory", default="4g", help="Spark driver memory (in local mode, all of Spark's).")
    parser.add_argument("--repeat", type=int, default=3, help="Warm repetitions of the full request; the median.")
    parser.add_argument("--scale", default=None, help="The name the figures are filed under (default: the folder's).")
    parser.add_argument("--json", type=Path, default=Path("bench-spark.json"), help="Where to write the results.")
    args = parser.parse_args(argv)
    args.from_warehouse = args.from_warehouse.resolve()
    args.scale = args.scale or args.from_warehouse.name
    return args


def differences(duckdb: pd.DataFrame, spark: pd.DataFrame, limit: int = 20) -> tuple[int, list[str]]:
    """Rows compared, and the first differences (counts exactly, the rest to 1e-12 relative)."""
    both = duckdb.merge(spark, on=KEYS, how="outer", suffixes=("_d", "_s"), indicator=True)
    alone = both[both["_merge"] != "both"]
    found = [f"{tuple(r[k] for k in KEYS)}: only in {r['_merge']}" for _, r in alone.iterrows()]
    both = both[both["_merge"] == "both"]
    for column in ("n", "numerator", "denominator", "value"):
        a, b = both[f"{column}_d"].astype(float).to_numpy(), both[f"{column}_s"].astype(float).to_numpy()
        same = a == b if column == "n" else np.isclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
        for i in np.flatnonzero(~same):
            row = both.iloc[i]
            found.append(f"{tuple(row[k] for k in KEYS)}: {column} {float(a[i])!r} (DuckDB) vs {float(b[i])!r} (Spark)")
    return len(both), found[:limit]


def time_engine(source: object, first: object, last: object, repeat: int, say: Callable[[str], None]) -> dict:
    """The full request (first call, warm median) and each statement's KPIs alone (warm, after one call)."""
    started = time.perf_counter()
    frame = all_results(source, start=first, end=last)
    first_call = time.perf_counter() - started
    warm = median([timed(lambda: all_results(source, start=first, end=last))[0] for _ in range(repeat)])
    say(f"  all KPIs: first {first_call:.1f} s, warm {warm:.1f} s")
    statements = {}
    for name, kpis in statement_groups(source).items():
        dims = [d for d in ("location", "provider") if all(d in s.dimensions for s in source.catalog() if s.id in kpis)]
        groupings = [(), *((d,) for d in dims)]

        def call(kpis: list[str] = kpis, groupings: list = groupings) -> object:
            return source.compute_groupings(kpis, start=first, end=last, groupings=groupings)

        call()
        statements[name] = timed(call)[0]
        say(f"  {name}: {statements[name]:.2f} s")
    return {"frame": frame, "first": first_call, "warm": warm, "statements": statements}


def statement_groups(source: object) -> dict[str, list[str]]:
    """KPI ids by the statement that computes them: the relation they read, or their custom query."""
    groups: dict[str, list[str]] = {}
    for spec in source.catalog():
        groups.setdefault(spec.custom or spec.relation, []).append(spec.id)
    return groups


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    workdir = args.from_warehouse
    config = load_config(workdir / "clinic-kpis.toml")
    first, last = _months(workdir)
    info = machine.describe() | {
        "pyspark": version("pyspark"),
        "spark_master": args.master,
        "spark_driver_memory": args.driver_memory,
    }
    lake = workdir / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    console.print(f"exporting {config.db_path.name} to {lake} ...")
    export = clinic_kpis("export", "--parquet", str(lake), cwd=workdir)
    lake_mb = sum(f.stat().st_size for f in lake.rglob("*") if f.is_file()) / 1e6
    warehouse_mb = config.db_path.stat().st_size / 1e6

    console.print("DuckDB ...")
    with Warehouse.open(config=config, read_only=True) as wh:
        rows = wh.cursor().execute("SELECT count(*) FROM appointments").fetchone()[0]
        duck = time_engine(wh, first, last, args.repeat, console.print)
    console.print(f"Spark {args.master} ...")
    session_seconds, session = timed(lambda: spark_session(args.master, {"spark.driver.memory": args.driver_memory}))
    try:
        with SparkLake(lake, config=config, spark=session) as on_spark:
            spark = time_engine(on_spark, first, last, args.repeat, console.print)
    finally:
        session.stop()
    compared, found = differences(duck["frame"], spark["frame"])

    scale = args.scale
    figures = [
        Figure(scale, "appointments", "rows", rows),
        Figure(scale, "warehouse file", "MB", warehouse_mb),
        Figure(scale, "export to Parquet", "s", export.seconds),
        Figure(scale, "export peak RSS", "MB", export.peak_rss_mb),
        Figure(scale, "Parquet export size", "MB", lake_mb),
        Figure(scale, "Spark session start", "s", session_seconds),
        Figure(scale, "all KPIs x (practice, location, provider), first call", "s", duck["first"], spark["first"]),
        Figure(scale, "all KPIs x (practice, location, provider), warm", "s", duck["warm"], spark["warm"]),
        *(
            Figure(scale, f"statement {name}, warm", "s", seconds, spark["statements"][name])
            for name, seconds in duck["statements"].items()
        ),
    ]
    print_table(figures, args.master)
    write_json(
        args.json,
        info | {"load_average_1m_end": round(os.getloadavg()[0], 2)},
        figures,
        {
            "columns": {"project": "DuckDB (the warehouse)", "baseline": f"Spark {args.master} (the Parquet export)"},
            "months": [first.isoformat(), last.isoformat()],
            "comparison": {"rows": compared, "equal": not found, "differences": found},
        },
    )
    if found:
        console.print(f"[red]Spark and DuckDB differ[/red] ({len(found)} shown):\n" + "\n".join(found))
        return 1
    console.print(f"Spark and DuckDB equal on {compared:,} rows; results in {args.json}")
    return 0


def print_table(figures: list[Figure], master: str) -> None:
    table = Table(title="clinic-kpis on Spark beside DuckDB")
    for name in ("scale", "figure", "DuckDB", f"Spark {master}", "Spark / DuckDB"):
        table.add_column(name, justify="left" if name in ("scale", "figure") else "right")
    for f in figures:
        slower = f"{f.ratio:.1f}x" if f.ratio is not None else "-"
        table.add_row(f.scale, f"{f.figure} ({f.unit})", _number(f.project), _number(f.baseline), slower)
    Console(width=160).print(table)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
