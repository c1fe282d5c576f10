"""The alert rules on the simulated practice: exactly the alerts its ground truth implies, once.

The shared 14-month practice (seed 7), copied, with the simulator's change log imported and one
rule added to the defaults: a special-cause signal on the monthly no-show rate at EAST or WEST, in
either direction. `clinic-kpis alerts check --no-send --format json` must raise

* every default rule (red line, three months off target, for the practice and each location) that
  the simulator's own values in truth.json break on each KPI's latest complete month, when that
  value may be shown (no small cell), and
* the signal at the location whose injected change worked (reminder calls at EAST), not at the
  placebo's (WEST), when the month's value there may be shown: at the shared practice's half
  scale EAST's monthly no-shows after the change are a small cell, so a second, full-scale
  practice (slow) checks that the signal is raised,

and nothing else; run again, it raises nothing new.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kpis.catalog import shipped_specs
from kpis.spec import KpiSpec
from tests.conftest import SIMULATED_CONFIG, SimulatedPractice, clinic_kpis

NO_VISIT_FLOW = """
[[alerts]]
name = "visit_cycle_time.red_line"
enabled = false

[[alerts]]
name = "visit_cycle_time.off_target"
enabled = false
"""
SPC_RULE = """
[[alerts]]
name = "no-show shift"
kpi = "no_show_rate"
condition = "spc_signal"
scope = ["location=EAST", "location=WEST"]
direction = "either"
"""
SMALL = 11  # CMS's cell-size rule (docs/contracts.md section 5): a count from 1 to 10 is never shown


def month_end(start: date) -> date:
    return (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()


def complete(spec: KpiSpec, row: dict[str, Any], first: date, last: date) -> bool:
    """Complete by the simulator, by the KPI's waiting time and by its look-back: a KPI resting on
    earlier data (`history_days`) needs the simulation to reach back that far (docs/contracts.md)."""
    end = month_end(date.fromisoformat(row["period_start"]))
    done = row["complete"] and end + timedelta(days=spec.complete_lag(spec.options)) <= last
    if spec.history_days:
        done = done and end - timedelta(days=spec.history_days - 1) >= first
    return done


def fact(spec: KpiSpec, row: dict[str, Any], first: date, last: date) -> bool:
    """A month the rules may judge: complete, with a value no small cell withholds (n, or a numerator
    that counts records, from 1 to 10)."""
    counts = spec.kind == "ratio" and spec.numerator is not None and spec.numerator.agg == "count"
    small = 0 < row["n"] < SMALL or (counts and 0 < (row["numerator"] or 0) < SMALL)
    return complete(spec, row, first, last) and row["value"] is not None and not (spec.patient_records and small)


def missed(spec: KpiSpec, value: float, line: float) -> bool:
    return value > line if spec.better == "lower" else value < line


def location_rows(truth: dict[str, Any], kpi: str, scope: str | None) -> list[dict[str, Any]]:
    rows = (
        r
        for r in truth["kpis"]
        if r["kpi_id"] == kpi
        and r["grain"] == "month"
        and r["dimension_value"] == scope
        and r["dimension"] == (None if scope is None else "location")
    )
    return sorted(rows, key=lambda r: r["period_start"])


def expected_alerts(truth: dict[str, Any], kpis: set[str] | None = None) -> set[tuple[str, str | None, date]]:
    """(rule, scope value, month) of every alert the truth implies (for `kpis`: those loaded)."""
    meta = truth["meta"]
    first, last = date.fromisoformat(meta["start"]), date.fromisoformat(meta["end"])
    out = set()
    for spec in (s for s in shipped_specs().values() if s.headline and (kpis is None or s.id in kpis)):
        for scope in (None, *meta["locations"]):
            rows = location_rows(truth, spec.id, scope)
            done = [r for r in rows if complete(spec, r, first, last) and r["n"] > 0 and r["value"] is not None]
            if not done or not fact(spec, done[-1], first, last):
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
                and fact(spec, by_month[m], first, last)
                and missed(spec, by_month[m]["value"], spec.watch)
                for m in run
            ):
                out.add((f"{spec.id}.off_target", scope, month))
    # The reminder calls, found in the simulation's last month, when its value there may be shown:
    # at half scale EAST's monthly no-shows fall under 11 after the change, a small cell, and the
    # rule waits. The placebo changed nothing (at this seed its months stay within the limits).
    spec = shipped_specs()["no_show_rate"]
    for change in (c for c in meta["changes"] if not c["placebo"]):
        latest = location_rows(truth, "no_show_rate", change["location"])[-1]
        if fact(spec, latest, first, last):
            out.add(("no-show shift", change["location"], date.fromisoformat(latest["period_start"])))
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


@pytest.mark.slow
def test_the_injected_change_raises_its_signal_at_full_scale(tmp_path: Path) -> None:
    """A full-scale practice (its monthly counts pass the small-cell rule after the change too);
    only the appointment exports are loaded, so only the no-show rules are judged from truth."""
    (tmp_path / "clinic-kpis.toml").write_text(SIMULATED_CONFIG + SPC_RULE + NO_VISIT_FLOW, encoding="utf-8")
    sample = ["sample", "--out", "exports", "--months", "14", "--providers", "6", "--scale", "1"]
    sample += ["--end", "2026-09-30", "--seed", "7", "--workers", "1"]
    ingest = ["ingest", "exports/fhir/Appointment.ndjson", "exports/fhir/Location.ndjson", "exports/vendor"]
    for args in (["init"], sample, ingest, ["changes", "import", "exports/change_log.csv"]):
        done = clinic_kpis(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    truth = json.loads((tmp_path / "exports" / "truth.json").read_text(encoding="utf-8"))
    real = next(c for c in truth["meta"]["changes"] if not c["placebo"])
    expected = expected_alerts(truth, {"no_show_rate"})
    assert ("no-show shift", real["location"], date(2026, 9, 1)) in expected

    first = raised(clinic_kpis("alerts", "check", "--no-send", "--format", "json", cwd=tmp_path))
    assert first == expected
    assert raised(clinic_kpis("alerts", "check", "--no-send", "--format", "json", cwd=tmp_path)) == set()
