"""A filter change on every page, timed under AppTest in a warm process: CPU and wall per rerun.

    python -m benchmarks.filter_change PRACTICE [provider|payer|location] [--changes 3] [--pages overview,access]

PRACTICE is a practice's config file (clinic-kpis.toml) or its directory. The process imports the
app's modules and loads the catalog first, and runs one throwaway script (Streamlit's one-off
work for a process's first script), as a running server has done before anyone clicks. Then,
for each page: its first render under the filter in force, and `--changes` changes of the filter
to a value not asked before on that page (so the page's calls are not answered from the
dashboard's cache; a location has few values: once each is seen, a change is to another value
seen before, a cache hit, and the line says "cached").
CPU is the process's (`time.process_time`: DuckDB's threads included), beside wall time; the
load average is printed at the start and the end (2 busy cores double the wall time, not the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAGES = {
    "overview": None,
    "alerts": "views/alerts.py",
    "access": "views/access.py",
    "revenue_cycle": "views/revenue_cycle.py",
    "phones": "views/phones.py",
    "visit_flow": "views/visit_flow.py",
    "referrals_portal": "views/referrals_portal.py",
    "improvement": "views/improvement.py",
}
FILTERS = ("provider", "payer", "location")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("practice", type=Path, help="the practice's clinic-kpis.toml, or its directory")
    parser.add_argument("key", choices=FILTERS, nargs="?", default="provider", help="the filter to change")
    parser.add_argument("--changes", type=int, default=3, help="filter changes per page (default 3)")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated, of: {', '.join(PAGES)}")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    config = args.practice / "clinic-kpis.toml" if args.practice.is_dir() else args.practice
    os.environ["CLINIC_KPIS_CONFIG"] = str(config.resolve())
    pages = args.pages.split(",")
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        parser.error(f"unknown page {', '.join(unknown)}: choose among {', '.join(PAGES)}")

    rows = run(args.key, args.changes, pages)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


def run(key: str, changes: int, pages: list[str]) -> list[dict[str, Any]]:
    """Time each page's first render and `changes` changes of `key` on it; print a line for each."""
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

    def timed(page: str, step: str, action: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = action()
        row = {"page": page, "step": step, "cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}
        rows.append(row)
        print(f"{page:<18} {step[:52]:<52} {row['cpu']:7.3f} {row['wall']:7.3f}", flush=True)
        if out is not None and (out.exception or out.error):  # e.g. the warehouse busy: no figure to take
            raise SystemExit(f"{page}: {out.exception[0].message if out.exception else out.error[0].value}")
        return out

    print(f"load average {os.getloadavg()[0]:.2f} (start); pages {', '.join(pages)}; filter {key}")
    print(f"{'page':<18} {'step':<52} {'CPU s':>7} {'wall s':>7}")
    at = timed("overview", "first render", lambda: AppTest.from_file(str(app), default_timeout=600).run())
    for page in pages:
        asked = set(at.multiselect(key=key).values)  # a page's own calls: values asked on another page are new here
        if PAGES[page] is not None:
            chosen = ", ".join(asked) or "all"
            timed(page, f"first render ({key}: {chosen})", lambda p=page: at.switch_page(PAGES[p]).run())
        for _ in range(changes):
            widget = at.multiselect(key=key)
            current = list(widget.values)
            options = [o for o in widget.options if o not in asked] or [o for o in widget.options if [o] != current]
            value = options[(len(asked) * 7) % len(options)]
            seen = " (cached)" if value in asked else ""
            asked.add(value)
            timed(page, f"{key} = {value}{seen}", lambda w=widget, v=value: w.set_value([v]).run())
    print(f"load average {os.getloadavg()[0]:.2f} (end)")
    return rows


if __name__ == "__main__":
    sys.exit(main())
