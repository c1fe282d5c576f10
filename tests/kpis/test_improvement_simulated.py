"""The injected process changes of the simulator, found (or not) through the whole pipeline.

The simulator logs two changes in change_log.csv and says in truth.json which one worked: reminder
calls at EAST (no-show probability x 0.55) and a placebo at WEST. Imported with the real CLI,
`clinic-kpis changes list --format json` must find the real one at its date and location,
downwards, and give the placebo no signal.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from kpis import Warehouse
from kpis.config import load_config
from tests.conftest import SIMULATED_CONFIG, SimulatedPractice, clinic_kpis


def _listed(directory: Path) -> list[dict[str, Any]]:
    done = clinic_kpis("changes", "import", "exports/change_log.csv", cwd=directory)
    assert done.returncode == 0, done.stderr
    assert "imported 2 change(s)" in done.stdout
    done = clinic_kpis("changes", "list", "--format", "json", cwd=directory)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _check(records: list[dict[str, Any]], truth: dict[str, Any]) -> None:
    injected = {c["title"]: c for c in truth["meta"]["changes"]}
    assert {r["title"] for r in records} == set(injected)
    for record in records:
        change = injected[record["title"]]
        assert record["date"] == change["date"]
        assert record["scope"] == {"location": [change["location"]]}
        assert record["kpi_id"] == change["kpi"] == "no_show_rate"
        if change["placebo"]:
            assert record["signal"] is False, record["verdict"]
            assert record["status"] in ("no_signal", "too_early")
        else:
            assert record["signal"] is True, record["verdict"]
            assert record["direction"] == "down" and record["better"] is True
            assert record["centre_after"] < record["centre_before"]
            assert "shifted down" in record["verdict"] and "a signal" in record["verdict"]


def test_the_session_practice_finds_the_reminders_and_not_the_placebo(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    """The shared 14-month practice, copied so the import does not change it for other tests."""
    shutil.copytree(simulated_practice.directory, tmp_path / "practice", ignore=shutil.ignore_patterns("*.wal"))
    records = _listed(tmp_path / "practice")
    _check(records, simulated_practice.truth)
    real = next(r for r in records if r["title"] == "Reminder calls 48 h ahead")
    assert "no-show rate at Eastside shifted down" in real["verdict"]


# A change that did nothing still signals at some seeds (seed 5: WEST's baseline year happened
# to end high, and 11 of the 12 months after the placebo fell below its centre): the rate is
# measured over 200 seeds by benchmarks/spc_false_signals.py and written in docs/api.md. These
# seeds are ones whose placebo is quiet; the reminder calls are found at every seed measured.
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_change_is_found_at_its_date_and_place_at_several_seeds(tmp_path: Path, seed: int) -> None:
    """24 months of a small practice; only the appointment exports are loaded (all no-shows need)."""
    (tmp_path / "clinic-kpis.toml").write_text(SIMULATED_CONFIG, encoding="utf-8")
    sample = ["sample", "--out", "exports", "--months", "24", "--providers", "6", "--scale", "0.5"]
    sample += ["--end", "2026-09-30", "--seed", str(seed), "--workers", "1"]
    ingest = ["ingest", "exports/fhir/Appointment.ndjson", "exports/fhir/Location.ndjson", "exports/vendor"]
    for args in (["init"], sample, ingest):
        done = clinic_kpis(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    truth = json.loads((tmp_path / "exports" / "truth.json").read_text(encoding="utf-8"))
    records = _listed(tmp_path)
    _check(records, truth)
    real = next(c for c in truth["meta"]["changes"] if not c["placebo"])
    with Warehouse.open(config=load_config(tmp_path / "clinic-kpis.toml"), read_only=True) as wh:
        reminder = next(c for c in wh.changes().itertuples() if c.title == real["title"])
        # At its place: the same change read at the other locations shows nothing.
        for location in ("WEST", "NORTH"):
            other = wh.spc("no_show_rate", filters={"location": location}, changes=[reminder.change_id])
            assert other.attrs["effects"][0]["signal"] is False, (location, other.attrs["effects"][0]["verdict"])
        # At its date: EAST's months before it are stable on their own limits; the signal starts after it.
        chart = wh.spc("no_show_rate", filters={"location": "EAST"})
        before = chart[chart["period_start"].dt.date < date.fromisoformat(real["date"])]
        assert not before["signal"].any()
        assert chart.loc[chart["signal"], "period_start"].min().date() >= date.fromisoformat(real["date"])
