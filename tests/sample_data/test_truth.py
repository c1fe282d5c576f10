"""truth.json has the contract's shape, and agrees with numbers re-derived here from the exports.

The re-derivations are deliberately naive and independent of the simulator: they read the
files the way an ingest would (contract rules for rejects included) and compare counts.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sample_data.truth import EHR_ONLY, KPI_ORDER, PRACTICE_ONLY
from tests.sample_data.conftest import truth_rows

TZ = ZoneInfo("America/New_York")


def test_truth_has_every_kpi_month_and_dimension(small_truth: dict[str, Any]) -> None:
    meta = small_truth["meta"]
    assert meta["start"] == "2024-12-01" and meta["end"] == "2025-02-28" and meta["timezone"] == "America/New_York"
    assert meta["process_change"] == {"location": "EAST", "date": "2025-01-01", "what": "reminder calls start"}
    providers = meta["providers"]
    rows = small_truth["kpis"]
    seen = Counter((r["kpi_id"], r["dimension"], r["dimension_value"]) for r in rows)
    assert {k for k, _, _ in seen} == set(KPI_ORDER)
    assert all(count == 3 for count in seen.values())  # one row per month
    for kpi in KPI_ORDER:
        locations = {v for k, d, v in seen if k == kpi and d == "location"}
        provider_rows = {v for k, d, v in seen if k == kpi and d == "provider"}
        if kpi in PRACTICE_ONLY:
            assert not locations and not provider_rows
        elif kpi in EHR_ONLY:
            assert locations == {"EAST", "WEST"}, kpi  # NORTH has no FHIR slots/notes and no X12
        else:
            assert locations == {"EAST", "WEST", "NORTH"} and len(provider_rows) == providers, kpi
    for r in rows:
        assert (r["value"] is None) == (r["n"] == 0) or r["kpi_id"] in ("days_in_ar", "ar_over_90_pct"), r


def test_rejects_and_updates_name_every_file(small: Path, small_truth: dict[str, Any]) -> None:
    files = {p.relative_to(small).as_posix() for p in small.rglob("*") if p.is_file()}
    assert set(small_truth["rejects"]) == files - {"truth.json", "ASSUMPTIONS.md", "change_log.csv"}
    assert {k: v for k, v in small_truth["rejects"].items() if v} == {
        "fhir/Appointment.ndjson": 2,
        "fhir/Encounter.ndjson": 1,
        "phones/queue_log": 1,
        "vendor/north_appointments_2024.csv": 3,
        "vendor/north_appointments_2025.csv": 3,
    }
    assert set(small_truth["updates"]) == {"vendor/north_appointments_2025.csv"}
    assert small_truth["updates"]["vendor/north_appointments_2025.csv"] > 0


def _no_show_counts(records: dict[str, tuple[str, str]]) -> dict[str, list[int]]:
    """month -> [noshow, kept + noshow] from id -> (month, canonical status)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for month, status in records.values():
        if status in ("fulfilled", "arrived", "noshow"):
            out[month][1] += 1
            out[month][0] += status == "noshow"
    return out


def test_fhir_no_show_and_late_cancel_match_truth(small: Path, small_truth: dict[str, Any]) -> None:
    by_location: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    resources: dict[str, dict[str, Any]] = {}
    rejected = 0
    for line in (small / "fhir" / "Appointment.ndjson").read_text().splitlines():
        res = json.loads(line)
        if "start" not in res or res["id"] in resources:
            rejected += 1
            continue
        resources[res["id"]] = res
        location = next(
            p["actor"]["reference"].split("/")[1]
            for p in res["participant"]
            if p["actor"]["reference"].startswith("Location/")
        )
        by_location[location][res["id"]] = (res["start"][:7] + "-01", res["status"])
    assert rejected == small_truth["rejects"]["fhir/Appointment.ndjson"]
    for location in ("EAST", "WEST"):
        truth = truth_rows(small_truth, "no_show_rate", "location", location)
        for month, (num, den) in _no_show_counts(by_location[location]).items():
            assert (truth[month]["numerator"], truth[month]["denominator"]) == (num, den), (location, month)

    rebooked = {
        ext["valueReference"]["reference"].split("/")[1]
        for r in resources.values()
        for ext in r["extension"]
        if ext["url"].endswith("previousAppointment")
    }
    late: Counter[tuple[str, str]] = Counter()
    population: Counter[tuple[str, str]] = Counter()
    for r in resources.values():
        location = next(
            p["actor"]["reference"][9:] for p in r["participant"] if p["actor"]["reference"].startswith("Location/")
        )
        key = (location, r["start"][:7] + "-01")
        if r["status"] == "entered-in-error":
            continue
        population[key] += 1
        if (
            r["status"] == "cancelled"
            and r["cancelationReason"]["coding"][0]["code"].startswith("pat")
            and r["id"] not in rebooked
            and (datetime.fromisoformat(r["start"]) - datetime.fromisoformat(r["meta"]["lastUpdated"])).total_seconds()
            <= 24 * 3600
        ):
            late[key] += 1
    assert sum(late.values()) > 0
    for (location, month), den in population.items():
        row = truth_rows(small_truth, "late_cancel_rate", "location", location)[month]
        assert (row["numerator"], row["denominator"]) == (late[location, month], den), (location, month)


VENDOR_STATUS = {
    "Scheduled": "booked",
    "Arrived": "arrived",
    "Checked Out": "fulfilled",
    "No Show": "noshow",
    "Cxl": "cancelled",
    "Error": "entered_in_error",
}


def _minutes(clock: str) -> int:
    t = datetime.strptime(clock, "%I:%M %p")
    return t.hour * 60 + t.minute


def test_vendor_exports_match_truth(small: Path, small_truth: dict[str, Any]) -> None:
    """Yearly files in order, the later one wins; the contract's three reject rules inside a file."""
    final: dict[str, tuple[str, str]] = {}
    for path in sorted((small / "vendor").glob("north_appointments_*.csv")):
        rel = path.relative_to(small).as_posix()
        in_file: dict[str, list[str]] = {}
        rejected = updated = 0
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                values = list(row.values())
                if not row["Appt Date"]:
                    rejected += 1
                    continue
                if row["Check In"] and row["Check Out"] and _minutes(row["Check Out"]) < _minutes(row["Check In"]):
                    rejected += 1
                    continue
                if row["Appt ID"] in in_file:
                    rejected += in_file[row["Appt ID"]] != values
                    continue
                in_file[row["Appt ID"]] = values
                month = datetime.strptime(row["Appt Date"], "%m/%d/%Y").strftime("%Y-%m-01")
                record = (month, VENDOR_STATUS[row["Status"]])
                if row["Appt ID"] in final and final[row["Appt ID"]] != record:
                    updated += 1
                final[row["Appt ID"]] = record
        assert rejected == small_truth["rejects"][rel], rel
        assert updated == small_truth["updates"].get(rel, 0), rel
    truth = truth_rows(small_truth, "no_show_rate", "location", "NORTH")
    counts = _no_show_counts(final)
    assert set(counts) == set(truth)
    for month, (num, den) in counts.items():
        assert (truth[month]["numerator"], truth[month]["denominator"]) == (num, den), month


def test_queue_log_matches_truth(small: Path, small_truth: dict[str, Any]) -> None:
    calls: dict[str, dict[str, Any]] = defaultdict(dict)
    for line in (small / "phones" / "queue_log").read_text().splitlines():
        epoch, uid, _queue, _agent, event, *data = line.split("|")
        call = calls[uid]
        if event == "ENTERQUEUE":
            call["entered"] = int(epoch)
        elif event == "CONNECT":
            call["outcome"], call["wait"] = "answered", int(data[0])
        elif event in ("ABANDON", "EXITWITHTIMEOUT"):
            call["outcome"], call["wait"] = "abandoned", int(data[2])
        elif event == "EXITWITHKEY":
            call["outcome"] = "exit_key"
        if event in ("COMPLETECALLER", "COMPLETEAGENT", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY"):
            call["ended"] = int(epoch)
    offered: Counter[str] = Counter()
    abandoned: Counter[str] = Counter()
    rejected = 0
    for call in calls.values():
        if call["ended"] < call["entered"]:
            rejected += 1
            continue
        if call["outcome"] == "exit_key" or (call["outcome"] == "abandoned" and call["wait"] < 10):
            continue
        month = datetime.fromtimestamp(call["entered"], TZ).strftime("%Y-%m-01")
        offered[month] += 1
        abandoned[month] += call["outcome"] == "abandoned"
    assert rejected == small_truth["rejects"]["phones/queue_log"] == 1
    truth = truth_rows(small_truth, "call_abandonment_rate")
    for month in truth:
        assert (truth[month]["numerator"], truth[month]["denominator"]) == (abandoned[month], offered[month])
