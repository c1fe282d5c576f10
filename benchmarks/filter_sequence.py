"""A sequence of the Overview's sidebar changes under AppTest in a warm process: CPU and wall per change.

    python -m benchmarks.filter_sequence PRACTICE [--rounds 2] [--audit-log FILE] [--json FILE]

PRACTICE is a practice's config file (clinic-kpis.toml) or its directory. Warmed as
`benchmarks.filter_change` warms (the app's modules, the catalog, one throwaway script), then
the Overview's first render and, per round, the changes a manager makes one after the other:
a location, another location, back to every location; a provider, another, back; a payer,
another, back; the grain to week and back to month. Each round picks values not asked before in
the process (a "back" is a change to a view shown before: the dashboard's cache answers it).
CPU is the process's (`time.process_time`: DuckDB's threads included), beside wall time; the
load average is printed at the start and the end.

`--audit-log` writes the page views' audit entries to FILE instead of beside the warehouse (the
same work, another file): to measure a warehouse that must not be written, e.g. a shared one
opened read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

FILTERS = ("location", "provider", "payer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("practice", type=Path, help="the practice's clinic-kpis.toml, or its directory")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the sequence (default 2)")
    parser.add_argument("--audit-log", type=Path, help="write the audit entries here, not beside the warehouse")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    config = args.practice / "clinic-kpis.toml" if args.practice.is_dir() else args.practice
    os.environ["CLINIC_KPIS_CONFIG"] = str(config.resolve())
    if args.audit_log:
        redirect_audit(args.audit_log.resolve())
    rows = run(args.rounds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


def redirect_audit(path: Path) -> None:
    """Make the dashboard's audit log `path` (what `dashboards.data.audit_log` returns, with the same retention)."""
    from dashboards import data
    from kpis.access import access_settings
    from kpis.audit import AuditLog

    data.audit_log = lambda src: AuditLog(path, access_settings(data.config(src)).audit_retention_days)


def run(rounds: int) -> list[dict[str, Any]]:
    """Time the Overview's first render and `rounds` rounds of the sequence; print a line for each."""
    from streamlit.testing.v1 import AppTest

    import dashboards.charts  # noqa: F401  the app's modules imported, as in a running server
    import dashboards.components  # noqa: F401
    import dashboards.data  # noqa: F401
    import dashboards.filters  # noqa: F401
    from kpis.catalog import shipped_specs

    shipped_specs()
    AppTest.from_string("import streamlit as st\nst.write('warm')").run(timeout=600)  # the process's first script
    app = Path(dashboards.__file__).parent / "app.py"
    rows: list[dict[str, Any]] = []

    def timed(step: str, action: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        out = action()
        row = {"step": step, "cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}
        rows.append(row)
        print(f"{step[:56]:<56} {row['cpu']:7.3f} {row['wall']:7.3f}", flush=True)
        if out.exception or out.error:  # e.g. the warehouse busy: no figure to take
            raise SystemExit(f"{step}: {out.exception[0].message if out.exception else out.error[0].value}")

    print(f"load average {os.getloadavg()[0]:.2f} (start)")
    print(f"{'step':<56} {'CPU s':>7} {'wall s':>7}")
    at = AppTest.from_file(str(app), default_timeout=600)
    timed("first render", at.run)
    asked: dict[str, set[str]] = {key: set() for key in FILTERS}
    for _ in range(rounds):
        for key in FILTERS:
            for _ in range(2):
                widget = at.multiselect(key=key)
                options = [o for o in widget.options if o not in asked[key]] or list(widget.options)
                value = options[(len(asked[key]) * 7) % len(options)]
                asked[key].add(value)
                timed(f"{key} = {value}", lambda w=widget, v=value: w.set_value([v]).run())
            timed(f"{key}: all (back)", lambda k=key: at.multiselect(key=k).set_value([]).run())
        timed("grain = week", lambda: at.selectbox(key="grain").set_value("week").run())
        timed("grain = month (back)", lambda: at.selectbox(key="grain").set_value("month").run())
    print(f"load average {os.getloadavg()[0]:.2f} (end)")
    return rows


if __name__ == "__main__":
    sys.exit(main())
