"""`python -m benchmarks.adapter_parse FILE...`: how fast an adapter parses, with no warehouse.

Why: a file's load time is its adapter's parse plus the load path's statements, and on a shared
machine its wall time says little; this times the parse alone (the adapter detected as ingest
would, its rows and chunks consumed as the loader would, cyclic GC paused as ingest pauses it),
in process CPU seconds as well as wall seconds, with the process's peak RSS. Run it with the
Python of each checkout (e.g. main's and a branch's) on the same files to compare them.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

from benchmarks import machine
from ingest.adapters.csv_profile import shipped_profiles
from ingest.context import ParseContext
from ingest.detect import detect
from ingest.pseudonymize import Pseudonymizer
from ingest.sources import InputFile


def parse(path: Path, timezone: str) -> tuple[str, int]:
    """(adapter, rows) of one file, every chunk consumed."""
    file = InputFile(str(path), lambda: path.open("rb"), False)
    adapter = detect(file, shipped_profiles())
    if adapter is None:
        raise SystemExit(f"{path}: not a format ingest recognises")
    batch = adapter.parse(file, ParseContext(timezone, Pseudonymizer(b"benchmark-secret-" * 2)))
    rows = 0
    for chunk in batch.chunks if batch.chunks is not None else [batch]:
        rows += sum(table.num_rows for phase in chunk.phases for _, table in phase.targets)
    return batch.adapter, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adapter_parse", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--timezone", default="America/New_York")
    args = parser.parse_args(argv)
    load = machine.describe()["load_average_1m"]
    gc.disable()
    wall, cpu = time.perf_counter(), time.process_time()
    adapters, rows = set(), 0
    for path in args.files:
        adapter, n = parse(path, args.timezone)
        adapters.add(adapter)
        rows += n
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    megabytes = sum(p.stat().st_size for p in args.files) / 1e6
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{', '.join(sorted(adapters))}: {len(args.files)} file(s), {megabytes:.1f} MB, {rows:,} rows | "
        f"CPU {cpu:.2f} s = {megabytes / cpu:.1f} MB/s, {rows / cpu:,.0f} rows/s | wall {wall:.2f} s | "
        f"peak RSS {peak:,.0f} MB | load {load}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
