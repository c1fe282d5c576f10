"""`python -m benchmarks.ingest_profile EXPORTS WORKDIR [FILE ...]`: where a file's ingest time goes,
beside DuckDB's own read of the same file.

Loads the given export files (paths relative to EXPORTS; default: the FHIR folder, the vendor
appointments and the portal messages) one `ingest_paths` call each, in the order given, into a
fresh warehouse in WORKDIR, and splits each file's time into the adapter's parse (reading and
mapping, chunk by chunk), staging its rows in DuckDB, and the load path's steps (stage, check,
dedupe, apply, counts, rejects, follow-up). Then, in the same run, DuckDB reads each file on
its own (`read_csv` / `read_json` into a temp table, every column): the physical reference the
ingest is compared with (issue 22). Prints one line per file; `--json` writes them too.

Wall-clock and CPU seconds (this process, DuckDB's and Arrow's threads included): on a shared machine the
wall clock follows the load, so state `uptime` beside the figures and compare CPU.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ingest import load, run, sources
from ingest.adapters.csv_profile import CsvProfileAdapter
from ingest.adapters.fhir import FhirAdapter
from ingest.adapters.x12 import X12Adapter
from kpis.config import load_config
from kpis.storage import Store

from .steps import CONFIG

DEFAULT_FILES = [
    *(
        f"fhir/{name}.ndjson"
        for name in (
            "Organization",
            "Location",
            "Practitioner",
            "Schedule",
            "Patient",
            "Slot",
            "ServiceRequest",
            "Appointment",
            "Encounter",
            "DocumentReference",
            "Task",
        )
    ),
    "vendor/north_appointments_2024.csv",
    "vendor/north_appointments_2025.csv",
    "vendor/north_appointments_2026.csv",
    "portal/portal_messages.csv",
]

_timers: Counter[str] = Counter()  # wall seconds per step
_cpu: Counter[str] = Counter()  # CPU seconds per step (the process's: DuckDB's and Arrow's threads too)
_context = ["load"]  # the load path's steps run for the file's rows, or for rows derived after them


def _timed(owner: object, name: str, label: str, context: str | None = None) -> None:
    """Wrap `owner.name` so its wall and CPU time add to `_timers` and `_cpu` under `label`, prefixed
    with the context it ran in (`derive:stage` is the staging of derived rows); `context`, if given,
    is the context of the steps it calls."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        step = label if context else f"{_context[-1]}:{label}"
        if context:
            _context.append(context)
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            _timers[step] += time.perf_counter() - started
            _cpu[step] += time.process_time() - cpu
            if context:
                _context.pop()

    setattr(owner, name, wrapper)


def _timed_chunks(chunks: Iterator) -> Iterator:
    """The batch's chunks, the time spent producing each counted as parse."""
    while True:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        finally:
            _timers["parse"] += time.perf_counter() - started
            _cpu["parse"] += time.process_time() - cpu
        yield chunk


def _instrument() -> None:
    for adapter in (CsvProfileAdapter, FhirAdapter, X12Adapter):
        _timed(adapter, "parse", "parse", "parse")
    original_load = load.Loader.load

    def timed_load(self, batch, run_id, file_name):
        if batch.chunks is not None:
            batch.chunks = _timed_chunks(batch.chunks)
        return original_load(self, batch, run_id, file_name)

    load.Loader.load = timed_load
    for name in STEPS:
        _timed(load.Loader, name, name.lstrip("_"))
    _timed(load.Loader, "derive", "derive", "derive")
    _timed(run, "_follow_up", "follow_up", "follow")
    _timed_commit()
    _timed_hash()


def _timed_commit() -> None:
    """A tracked transaction's COMMIT timed as `commit` (DuckDB writes the WAL, and checkpoints when
    it passed `checkpoint_threshold`), the WAL's size after it noted in `_wal`."""
    original = Store.transaction

    @contextmanager
    def transaction(self, *, tracked: bool = False, kpi_data: bool = True):
        context = original(self, tracked=tracked, kpi_data=kpi_data)
        cur = context.__enter__()
        try:
            yield cur
        except BaseException:
            if not context.__exit__(*sys.exc_info()):
                raise
            return
        started, cpu = time.perf_counter(), time.process_time()
        context.__exit__(None, None, None)
        _timers["commit"] += time.perf_counter() - started
        _cpu["commit"] += time.process_time() - cpu
        wal = self.path.with_name(self.path.name + ".wal")
        _wal.append(wal.stat().st_size if wal.exists() else 0)

    Store.transaction = transaction


_wal: list[int] = []  # the WAL's bytes after each commit of the file's call


def _timed_hash() -> None:
    """A file's sha256 when asked for (on main: read on its own, before the parse) timed as `sha256`;
    a checksum computed in the parse's own read counts as parse."""
    original = sources.InputFile.sha256.fget

    def sha256(self):
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return original(self)
        finally:
            _timers["sha256"] += time.perf_counter() - started
            _cpu["sha256"] += time.process_time() - cpu

    sources.InputFile.sha256 = property(sha256)


class _TimedCursor:
    """The loader's cursor, each statement's wall and CPU time added to `_statements` under its
    step and its first words (which statement of a step costs what)."""

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        self._cur = cur

    def execute(self, sql: str, *args):
        words = re.sub(r"\s+", " ", sql).strip()
        label = f"{_context[-1]}: {re.sub(r'_[a-z]+[0-9]+', '_N', words)[:70]}"
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return self._cur.execute(sql, *args)
        finally:
            _statements[label][0] += time.perf_counter() - started
            _statements[label][1] += time.process_time() - cpu

    def __getattr__(self, name: str):
        return getattr(self._cur, name)


_statements: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


def _instrument_statements() -> None:
    original = load.Loader.__init__

    def init(self, cur, *args, **kwargs):
        original(self, _TimedCursor(cur), *args, **kwargs)

    load.Loader.__init__ = init


# The load path's steps, timed one by one.
STEPS = ("_add", "_stage", "_check", "_dedupe", "_apply", "_counts", "_write_rejects", "clear_waiting")


def raw_read(path: Path, memory_limit: str) -> tuple[float, float, int]:
    """Seconds (wall, CPU) for DuckDB to read every column of `path` into a temp table, and its rows."""
    con = duckdb.connect(config={"memory_limit": memory_limit})
    try:
        con.execute("SET enable_progress_bar = false")
        if path.suffix not in (".csv", ".ndjson"):
            return 0.0, 0.0, 0  # no DuckDB reader for the format (X12)
        if path.suffix == ".csv":
            source = f"read_csv('{path}', all_varchar = true)"
        else:
            source = f"read_json('{path}', format = 'newline_delimited', maximum_object_size = 67108864)"
        started, cpu = time.perf_counter(), time.process_time()
        con.execute(f"CREATE TEMP TABLE t AS SELECT * FROM {source}")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        (rows,) = con.execute("SELECT count(*) FROM t").fetchone()
        return seconds, cpu, int(rows)
    finally:
        con.close()


def profile(
    exports: Path,
    workdir: Path,
    files: list[str],
    raw: bool,
    base: Path | None = None,
    force: bool = False,
    statements: int = 0,
) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    for leftover in ("clinic_kpis.duckdb", "clinic_kpis.duckdb.wal"):
        (workdir / leftover).unlink(missing_ok=True)
    if base is not None:  # a warehouse that already holds the other files: a file's cost beside its size
        shutil.copyfile(base, workdir / "clinic_kpis.duckdb")
    (workdir / "clinic-kpis.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(workdir / "clinic-kpis.toml")
    _instrument()
    if statements:
        _instrument_statements()
    figures = []
    with Store.open(config=config) as store:
        limit = run.ingest_settings(config).memory_limit
        for name in files:
            path = exports / name
            _timers.clear()
            _cpu.clear()
            _statements.clear()
            _wal.clear()
            started, cpu = time.perf_counter(), time.process_time()
            (result,) = run.ingest_paths(store, [path], force=force)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            if result.status != "succeeded":
                raise SystemExit(f"{name}: {result.status}: {result.message}")
            entry = {
                "file": name,
                "mb": path.stat().st_size / 1e6,
                "records": result.read,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "rows_per_s": result.read / seconds if seconds else 0.0,
                "steps": {k: round(v, 3) for k, v in _timers.items()},
                "steps_cpu": {k: round(v, 3) for k, v in _cpu.items()},
                "wal_mb_after_commits": [round(b / 1e6, 1) for b in _wal],
            }
            if raw:
                entry["raw_seconds"], entry["raw_cpu_seconds"], entry["raw_rows"] = raw_read(path, limit)
            if statements:
                entry["statements"] = {k: [round(w, 3), round(c, 3)] for k, (w, c) in _statements.items()}
            figures.append(entry)
            print(_line(entry), flush=True)
            for label, (wall, cpu_s) in sorted(_statements.items(), key=lambda kv: -kv[1][1])[:statements]:
                print(f"    {cpu_s:6.2f} s CPU {wall:6.2f} s wall  {label}", flush=True)
    return figures


def _line(entry: dict) -> str:
    cpu = entry.get("steps_cpu", {})
    steps = ", ".join(
        f"{k} {v:.1f}/{cpu.get(k, 0):.1f}"
        for k, v in sorted(entry["steps"].items(), key=lambda kv: -cpu.get(kv[0], kv[1]))
        if v >= 0.05
    )
    raw = ""
    if "raw_seconds" in entry:
        ratio = entry["seconds"] / entry["raw_seconds"] if entry["raw_seconds"] else float("inf")
        raw = f"; DuckDB read {entry['raw_seconds']:.2f} s, CPU {entry['raw_cpu_seconds']:.2f} s ({ratio:.1f}x wall)"
    return (  # steps: wall/CPU seconds, most CPU first
        f"{entry['file']}: {entry['mb']:.0f} MB, {entry['records']:,} records in {entry['seconds']:.1f} s "
        f"({entry['rows_per_s'] / 1000:.1f} k/s, CPU {entry['cpu_seconds']:.1f} s){raw} [{steps}]"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exports", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("files", nargs="*", default=DEFAULT_FILES)
    parser.add_argument("--no-raw", action="store_true", help="leave out DuckDB's own read of each file")
    parser.add_argument("--base", type=Path, help="a warehouse file to load into (copied), instead of a fresh one")
    parser.add_argument("--force", action="store_true", help="load files again that the warehouse holds")
    parser.add_argument("--statements", type=int, default=0, help="print the N statements that cost most CPU")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = profile(args.exports, args.workdir, args.files, not args.no_raw, args.base, args.force, args.statements)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
