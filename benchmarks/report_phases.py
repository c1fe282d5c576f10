"""`clinic-kpis report build`'s flow in one process, each phase timed: wall seconds, the process's
CPU seconds (DuckDB's threads included) and the main thread's CPU seconds.

Why the main thread: on the shared 2-core machine the whole command's wall time mostly measures
the load. The main thread is the command's critical path (Chromium, started first, and DuckDB's
other threads run beside it), so its CPU seconds say what the command takes with a core to itself.
The KPI API calls the report makes are timed one by one inside "the numbers".

    python -m benchmarks.report_phases CONFIG MONTH [OUT_DIR]

Chromium's own CPU is not in these figures: `/usr/bin/time` around this script counts it.
"""

from __future__ import annotations

import time

STARTED = (time.perf_counter(), time.process_time(), time.thread_time())

import resource  # noqa: E402 - the clock starts before the imports it measures
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

CALLS = ("coverage", "scorecard", "trend", "ingest_runs", "friction_costs", "movers", "change_effects")


class Clock:
    """Phases one after another: each `mark` closes the phase that began at the previous one."""

    def __init__(self) -> None:
        self.last = STARTED
        self.rows: list[tuple[str, float, float, float]] = []

    def mark(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time(), time.thread_time())
        self.rows.append((name, *(b - a for a, b in zip(self.last, now, strict=True))))
        self.last = now


def timed_calls(cls: type, names: tuple[str, ...], into: dict[str, list[float]]) -> None:
    """Wrap `cls`'s methods `names` to add each call's wall and main-thread CPU seconds to `into`."""

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return method(self, *args, **kwargs)
            finally:
                sums = into.setdefault(name, [0.0, 0.0, 0])
                sums[0] += time.perf_counter() - wall
                sums[1] += time.thread_time() - cpu
                sums[2] += 1

        return timed

    for name in names:
        setattr(cls, name, wrap(name, getattr(cls, name)))


def main(config: str, month: str, out: Path) -> None:
    clock = Clock()
    import kpis.cli  # noqa: F401 - what `clinic-kpis` imports first: every package's commands

    clock.mark("start: import kpis.cli (every command)")
    from kpis.config import load_config
    from reports.cli import _formats, _month, _paper

    cfg = load_config(Path(config))
    formats, paper, when = _formats("html,pdf"), _paper(None, cfg), _month(month, cfg)
    clock.mark("config, options (on main, --format imports reports.build)")
    from reports.charts import ChartRenderer, draw_trends

    with ChartRenderer() as renderer:
        clock.mark("chart renderer imported, Chromium starting")
        from kpis import Warehouse
        from reports.build import prepare, render_documents, write_files

        clock.mark("import the report (WeasyPrint)")
        calls: dict[str, list[float]] = {}
        timed_calls(Warehouse, CALLS, calls)
        charts = []
        with Warehouse.open(config=cfg, read_only=True) as wh:
            clock.mark("open the warehouse")
            ctx = prepare(wh, when, None, on_trends=lambda trends: charts.append(draw_trends(renderer, trends, "svg")))
            clock.mark("the numbers (prepare)")
        clock.mark("close the warehouse")
        svgs = charts[0].result()
        clock.mark("wait for the charts")
    files = render_documents(ctx, svgs, formats, paper)
    clock.mark("HTML and PDF (WeasyPrint)")
    write_files(ctx, files, out)
    clock.mark("write")
    print(f"{'phase':44} {'wall s':>7} {'CPU s':>7} {'main thread CPU s':>18}")
    for name, wall, cpu, main_cpu in clock.rows:
        print(f"{name:44} {wall:7.2f} {cpu:7.2f} {main_cpu:18.2f}")
    for name, (wall, main_cpu, count) in calls.items():
        print(f"  {f'wh.{name} ({count}x)':42} {wall:7.2f} {'':>7} {main_cpu:18.2f}")
    total = [b - a for a, b in zip(STARTED, clock.last, strict=True)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'total after the interpreter started':44} {total[0]:7.2f} {total[1]:7.2f} {total[2]:18.2f}")
    print(f"peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m benchmarks.report_phases CONFIG MONTH [OUT_DIR]")
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3] if len(sys.argv) == 4 else "report-phases-out"))
