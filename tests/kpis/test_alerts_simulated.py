"""The alert rules on the simulated practice: exactly the alerts its ground truth implies, once.

The shared 14-month practice (seed 7), copied, with the simulator's change log imported and one
rule added to the defaults: a special-cause signal on the monthly no-show rate at EAST or WEST, in
either direction. `clinic-kpis alerts check --no-send --format json` must raise

* every default rule (red line, three months off target, for the practice and each location) that
  the simulator's own values in truth.json break on each KPI's latest complete month, and
* the signal at the location whose injected change worked (reminder calls at EAST), not at the
  placebo's (WEST),

and nothing else; run again, it raises nothing new.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from kpis.catalog import shipped_specs
from kpis.spec import KpiSpec
from tests.conftest import SimulatedPractice, clinic_kpis

SPC_RULE = """
[[alerts]]
name = "no-show shift"
kpi = "no_show_rate"
condition = "spc_signal"
scope = ["location=EAST", "location=WEST"]
direction = "either"
"""
MIN_RECORDS = 11
LOOKBACK_DAYS = {"days_in_ar": 365}  # MGMA's look-back (docs/contracts.md section 2)


def month_end(start: date) -> date:
    return (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()


def complete(spec: KpiSpec, row: dict[str, Any], first: date, last: date) -> bool:
    """Complete by the simulator, and by the KPI's waiting time and look-back (docs/contracts.md)."""
    end = month_end(date.fromisoformat(row["period_start"]))
    done = row["complete"] and end + timedelta(days=spec.complete_lag(spec.options)) <= last
    if spec.id in LOOKBACK_DAYS:
        done = done and end - timedelta(days=LOOKBACK_DAYS[spec.id] - 1) >= first
    return done


def judged(spec: KpiSpec, row: dict[str, Any], first: date, last: date) -> bool:
    """A month the rules may judge: complete, with a value from at least 11 records."""
    return complete(spec, row, first, last) and row["value"] is not None and row["n"] >= MIN_RECORDS


def missed(spec: KpiSpec, value: float, line: float) -> bool:
    return value > line if spec.better == "lower" else value < line


def expected_alerts(truth: dict[str, Any]) -> set[tuple[str, str | None, date]]:
    """(rule, scope value, month) of every alert the truth implies."""
    meta = truth["meta"]
    first, last = date.fromisoformat(meta["start"]), date.fromisoformat(meta["end"])
    out = set()
    for spec in (s for s in shipped_specs().values() if s.headline):
        for scope in (None, *meta["locations"]):
            rows = sorted(
                (
                    r
                    for r in truth["kpis"]
                    if r["kpi_id"] == spec.id
                    and r["grain"] == "month"
                    and r["dimension_value"] == scope
                    and r["dimension"] == (None if scope is None else "location")
                ),
                key=lambda r: r["period_start"],
            )
            done = [r for r in rows if complete(spec, r, first, last) and r["n"] > 0]
            if not done or not judged(spec, done[-1], first, last):
                continue
            latest = done[-1]
            month = date.fromisoformat(latest["period_start"])
            if spec.red is not None and missed(spec, latest["value"], spec.red):
                out.add((f"{spec.id}.red_line", scope, month))
            by_month = {date.fromisoformat(r["period_start"]): r for r in rows}
            run = [month, (month - timedelta(days=1)).replace(day=1)]
            run.append((run[-1] - timedelta(days=1)).replace(day=1))
            if spec.target is not None and all(
                m in by_month
                and judged(spec, by_month[m], first, last)
                and missed(spec, by_month[m]["value"], spec.watch)
                for m in run
            ):
                out.add((f"{spec.id}.off_target", scope, month))
    worked = [c for c in meta["changes"] if not c["placebo"]]
    for change in worked:  # the reminder calls: found in the last complete month of the simulation
        out.add(("no-show shift", change["location"], date.fromisoformat(meta["end"]).replace(day=1)))
    return out


def raised(done: Any) -> set[tuple[str, str | None, date]]:
    assert done.returncode == 0, done.stderr
    return {
        (a["rule"]["name"], (a["scope"]["values"] or [None])[0], date.fromisoformat(a["period"]))
        for a in json.loads(done.stdout)
        if a["new"]
    }


def test_the_simulated_practice_raises_exactly_what_its_truth_implies_once(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    directory = tmp_path / "practice"
    shutil.copytree(simulated_practice.directory, directory, ignore=shutil.ignore_patterns("*.wal"))
    config = directory / "clinic-kpis.toml"
    config.write_text(config.read_text(encoding="utf-8") + SPC_RULE, encoding="utf-8")
    imported = clinic_kpis("changes", "import", "exports/change_log.csv", cwd=directory)
    assert imported.returncode == 0, imported.stderr
    truth = simulated_practice.truth
    placebo = next(c for c in truth["meta"]["changes"] if c["placebo"])

    expected = expected_alerts(truth)
    first = raised(clinic_kpis("alerts", "check", "--no-send", "--format", "json", cwd=directory))
    assert first == expected
    assert ("no-show shift", placebo["location"]) not in {(rule, scope) for rule, scope, _ in first}
    assert len(expected) > 10  # the simulated practice misses several targets: a test that can fail

    assert raised(clinic_kpis("alerts", "check", "--no-send", "--format", "json", cwd=directory)) == set()
