"""A full store build step by step under a memory limit: each step's CPU seconds and peak RSS, and the
step that runs out of memory (no rerun without the limit, as `refresh` would do), rolled back at the end.

    python -m benchmarks.refresh_steps WAREHOUSE_DIR --limit 200MB [--parts N] [--only claim_outcomes]

Run it on a copy of a warehouse (the build is rolled back, but a writer's lock and spill are the
copy's). CPU seconds are the process's (DuckDB's threads included), steadier than wall time on a
shared machine; the peak RSS is each step's own (the kernel's high-water mark reset before it).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import duckdb

from benchmarks.measure import process_cpu, status_mb
from kpis.config import load_config
from kpis.errors import ConfigError
from kpis.serving import refresh as serving_refresh
from kpis.serving.facts import layout
from kpis.storage import Store, memory_limited


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")  # resets VmHWM to VmRSS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a warehouse folder holding clinic-kpis.toml (a copy)")
    parser.add_argument("--limit", default="2GB", help="DuckDB's memory limit for the build")
    parser.add_argument("--parts", type=int, default=None, help="build the claim outcomes in this many parts")
    parser.add_argument("--only", default="", help="run only the steps whose name holds this (e.g. claim_outcomes)")
    args = parser.parse_args()
    serving_refresh.PARTS = args.parts
    config = load_config(args.directory / "clinic-kpis.toml")
    print(f"{'step':<40} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    with Store(config.db_path, config=config) as store, store.cursor() as cur:
        job = serving_refresh._Refresh(cur, layout(config), True, serving_refresh._in_duckdb)
        started, cpu_started = time.perf_counter(), process_cpu()
        with memory_limited(cur, args.limit, "--limit", ConfigError):
            cur.execute("BEGIN TRANSACTION")
            try:
                for name, step in (s for s in job.plan() if args.only in s[0]):
                    _reset_peak()
                    wall, cpu = time.perf_counter(), process_cpu()
                    try:
                        step()
                    except duckdb.OutOfMemoryException as exc:
                        print(f"{name:<40} ran out of memory: {str(exc).splitlines()[0]}")
                        break
                    finally:
                        spent = time.perf_counter() - wall
                        print(f"{name:<40} {spent:8.1f} {process_cpu() - cpu:8.1f} {status_mb('VmHWM'):12.0f}")
            finally:
                cur.execute("ROLLBACK")
        print(f"{'total':<40} {time.perf_counter() - started:8.1f} {process_cpu() - cpu_started:8.1f}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"parts: {job.summary.parts}, peak RSS of the process {peak:.0f} MB")


if __name__ == "__main__":
    main()
