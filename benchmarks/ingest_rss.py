"""`python -m benchmarks.ingest_rss WAREHOUSE_DIR FOLDER ...`: what an ingest process holds, over time.

Runs what `clinic-kpis ingest FOLDER ...` runs (a writer's copy, the file loads, the store's
refresh, the publication) in this process, and samples every `--interval` seconds from a second
thread: the process RSS, DuckDB's `duckdb_memory()` (buffer-managed memory, in memory and spilled)
and `memory_limit`, Arrow's default pool (`pa.total_allocated_bytes()`, the pool's own peak),
and glibc's heap (`mallinfo2`: bytes in use and free in its arenas, and in mmapped chunks; free bytes
stay counted after `malloc_trim` gives their pages back). Each
sample names the phase: the file loading, or the refresh's step. Prints the peak of each phase
and a snapshot at the start of the refresh; `--csv` writes every sample.

Run it on a copy of a warehouse folder (it publishes into it). Peak RSS is the kernel's
high-water mark (VmHWM); CPU seconds the process's own (DuckDB's and Arrow's threads included).
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import ctypes.util
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.measure import process_cpu, status_mb
from ingest import run as ingest_run
from ingest.lock import open_for_ingest
from kpis.config import load_config
from kpis.serving import refresh as serving_refresh
from kpis.storage import Store


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    return libc


_LIBC = _libc()
MB = 1024 * 1024


class Sampler:
    """Samples this process's memory from a thread; `phase` is set by the hooks below."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.phase = "open"
        self.store: Any = None  # the writer's store while DuckDB may be asked (`detach` ends it)
        self.job: Any = None
        self._asking = threading.Lock()  # held while the sample asks DuckDB, and to detach the store
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def detach(self) -> None:
        """No more questions to DuckDB: the writer closes the store next, and DuckDB refuses to close a
        connection one of whose cursors is running a query (the 10 M portal load failed so)."""
        with self._asking:
            self.store = None

    def reopened(self, reopen: Callable[[], None]) -> None:
        """`reopen()` the store once no question to DuckDB is running: a refresh's rerun after running
        out of memory closes the store's connection (`Store.reopen`), which DuckDB refuses as the
        writer's close, and the rerun would fail."""
        with self._asking:
            reopen()

    def current_phase(self) -> str:
        if self.job is not None:
            return f"refresh: {self.job.step or 'plan'}"
        return self.phase

    def sample(self) -> dict[str, Any]:
        info = _LIBC.mallinfo2()
        pool = pa.default_memory_pool()
        row: dict[str, Any] = {
            "t": round(time.perf_counter() - self.started, 2),
            "phase": self.current_phase(),
            "rss_mb": round(status_mb("VmRSS")),
            "anon_mb": round(status_mb("RssAnon")),
            "cpu_s": round(process_cpu(), 1),
            "arrow_mb": round(pa.total_allocated_bytes() / MB),
            "arrow_peak_mb": round(pool.max_memory() / MB),
            "glibc_used_mb": round((info.uordblks + info.hblkhd) / MB),
            "glibc_free_mb": round(info.fordblks / MB),
            "glibc_arena_mb": round(info.arena / MB),
            "duckdb_mb": None,
            "duckdb_spilled_mb": None,
            "duckdb_limit": None,
        }
        with self._asking:
            if self.store is not None:
                self._ask_duckdb(row)
        return row

    def _ask_duckdb(self, row: dict[str, Any]) -> None:
        try:
            with self.store.cursor() as cur:
                used, spilled = cur.execute(
                    "SELECT sum(memory_usage_bytes), sum(temporary_storage_bytes) FROM duckdb_memory()"
                ).fetchall()[0]
                ((limit,),) = cur.execute("SELECT current_setting('memory_limit')").fetchall()
            row.update(duckdb_mb=round(used / MB), duckdb_spilled_mb=round(spilled / MB), duckdb_limit=limit)
        except Exception as exc:  # DuckDB busy: the sample goes without it
            row["duckdb_limit"] = type(exc).__name__

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.rows.append(self.sample())


def _hook(sampler: Sampler) -> None:
    """Name the phases: the file loading (`_load_file`), the refresh (its `_Refresh`'s step)."""
    load_file, ingest, run_refresh = ingest_run._load_file, ingest_run._ingest, serving_refresh._run
    before_publish, reopen = serving_refresh.before_publish, Store.reopen

    def loading(run: Any, file: Any, adapter: Any) -> Any:
        sampler.phase = f"load {file.name}"
        try:
            return load_file(run, file, adapter)
        finally:
            sampler.phase = "after loads"

    def ingesting(warehouse: Any, *args: Any) -> Any:
        sampler.store = warehouse
        return ingest(warehouse, *args)

    def refreshing(cursor: Any, job: Any, progress: bool) -> None:
        snapshot = sampler.sample()
        snapshot["phase"] = "refresh starts"
        sampler.rows.append(snapshot)
        sampler.job = job
        try:
            run_refresh(cursor, job, progress)
        finally:
            sampler.job = None
            sampler.phase = "publish"

    def publishing(store: Any) -> None:
        try:
            before_publish(store)
        finally:
            sampler.detach()  # the writer closes the store next

    def reopening(store: Any) -> None:
        sampler.reopened(lambda: reopen(store))

    ingest_run._load_file, ingest_run._ingest, serving_refresh._run = loading, ingesting, refreshing
    serving_refresh.before_publish = publishing  # (found by name when the writer publishes)
    Store.reopen = reopening  # (a refresh's rerun after running out of memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a warehouse folder holding clinic-kpis.toml (a copy)")
    parser.add_argument("paths", nargs="+", type=Path, help="export folders or files, as for clinic-kpis ingest")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--csv", type=Path, help="write every sample here")
    args = parser.parse_args()
    config = load_config(args.directory / "clinic-kpis.toml")
    sampler = Sampler(args.interval)
    _hook(sampler)
    started, cpu_started = time.perf_counter(), process_cpu()
    sampler.start()
    try:
        with open_for_ingest(config) as store:
            results = ingest_run.ingest_paths(store, list(args.paths))
    finally:
        sampler.stop()
    wall, cpu = time.perf_counter() - started, process_cpu() - cpu_started
    for result in results:
        if result.status != "succeeded" or result.warnings:
            print(f"{result.path}: {result.status} {result.message or ''} {result.warnings}")
    peaks: dict[str, dict[str, Any]] = {}
    for row in sampler.rows:
        phase = row["phase"].split(": ")[0] if row["phase"].startswith("refresh:") else row["phase"]
        if phase not in peaks or row["rss_mb"] > peaks[phase]["rss_mb"]:
            peaks[phase] = row
    columns = [
        "rss_mb",
        "anon_mb",
        "duckdb_mb",
        "duckdb_spilled_mb",
        "arrow_mb",
        "glibc_used_mb",
        "glibc_free_mb",
        "cpu_s",
    ]
    print(f"{'phase (its peak RSS sample)':<58}" + "".join(f"{c:>18}" for c in columns) + "  step")
    for phase, row in peaks.items():
        print(f"{phase[:58]:<58}" + "".join(f"{row[c]!s:>18}" for c in columns) + f"  {row['phase'][:50]}")
    print(
        f"wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {status_mb('VmHWM'):.0f} MB, "
        f"Arrow pool peak {pa.default_memory_pool().max_memory() / MB:.0f} MB"
    )
    if args.csv:
        with args.csv.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(sampler.rows[0]))
            writer.writeheader()
            writer.writerows(sampler.rows)


if __name__ == "__main__":
    main()
