"""The Overview's movers under each value of a filter, each in a fresh snapshot: CPU and wall per value.

    python -m benchmarks.movers_filter PRACTICE [payer|provider|location] [--month 2026-09] [--repeat 3]

What a filter change's first visit costs in `Warehouse.movers` (the driver rows by the KPIs' other
drivers under the filter), apart from Streamlit and the scorecard: for each value, a new read-only
snapshot (nothing kept), its scorecard under the filter first (the movers read it), then the
movers, timed. Each line says how many of the statements the movers ran were lookups of month
results and how many aggregates over fact rows (`kpis.serving.answer.statements`). CPU is the
process's (`time.process_time`: DuckDB's threads included); the load average is printed at the
start and the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from kpis import Warehouse
from kpis.config import load_config
from kpis.serving import answer

FILTERS = ("payer", "provider", "location")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("practice", type=Path, help="the practice's clinic-kpis.toml, or its directory")
    parser.add_argument("key", choices=FILTERS, nargs="?", default="payer", help="the filter (default payer)")
    parser.add_argument("--month", help="the month asked about (default: the data's last)")
    parser.add_argument("--repeat", type=int, default=1, help="times over every value (default 1)")
    args = parser.parse_args(argv)
    config = load_config(args.practice / "clinic-kpis.toml" if args.practice.is_dir() else args.practice)
    counted = {answer.RESULTS: 0, answer.FACTS: 0}
    real = answer.statements

    def statements(items: Any, ctx: Any, chosen: Any, layout: Any) -> list[tuple[list[str], str]]:
        found = real(items, ctx, chosen, layout)
        for ids, _ in found:
            counted[chosen[ids[0]]] += 1
        return found

    answer.statements = statements  # `answer.run` looks it up at each call
    with Warehouse.open(config=config, read_only=True) as wh:
        values = wh.dimension_values(args.key)["id"].tolist()
    print(f"load average {os.getloadavg()[0]:.2f} (start); filter {args.key}, {len(values)} values")
    print(f"{'value':<24} {'CPU s':>7} {'wall s':>7} {'lookups':>8} {'facts':>6}")
    for _ in range(args.repeat):
        for value in values:
            with Warehouse.open(config=config, read_only=True) as wh:
                filters = {args.key: value}
                wh.scorecard(args.month, filters=filters)
                counted.update(dict.fromkeys(counted, 0))
                wall, cpu = time.perf_counter(), time.process_time()
                wh.movers(args.month, filters=filters)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{str(value)[:24]:<24} {cpu:7.3f} {wall:7.3f} {counted[answer.RESULTS]:8} {counted[answer.FACTS]:6}")
    print(f"load average {os.getloadavg()[0]:.2f} (end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
