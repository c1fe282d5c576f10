"""A small three-site practice whose report has answers known by hand.

October 2025 (a year before the report month) and July to October 2026 of appointments,
calls and a few portal messages, written into a real warehouse with the KPI library's test
builder:

* No-show rate: EAST and WEST have 120 kept-or-missed visits a month with 12 no-shows, NORTH
  5 with 1. In October 2026 EAST has 36 no-shows: the practice rate rises from 25/245 (10.2%)
  to 49/245 (20.0%), up 9.8 points, all of it (24/245) from Eastside.
* Call abandonment: 60 calls a month at EAST and WEST, none abandoned; in September 2026 WEST
  abandons 12. October's rate (0/120 = 0.0%) is down 10 points from September's 12/120, all of
  it from Westside.
* NORTH is small (5 visits a month): its values are withheld, and three portal messages in
  October make a small count.
* One load quarantined 4 records: a small count too.

Counts are chosen so that every figure the stories name passes the small-cell rule
(`kpis.privacy`: n and counted numerators of 0 or 11 and more).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from kpis.periods import add_months
from tests.kpis.builder import P1, P2, Fixture

MONTH = date(2026, 10, 1)
MONTHS = (date(2025, 10, 1), *(add_months(MONTH, -k) for k in (3, 2, 1, 0)))
PRACTICE_NAME = "Riverbend Family Medicine"
CONFIG = f"""
[practice]
name = "{PRACTICE_NAME}"
timezone = "America/New_York"
"""
SITES = {"EAST": "Eastside", "WEST": "Westside", "NORTH": "Northside"}


def patient_key(i: int) -> str:
    """A pseudonym shaped like ingest's (64 hex digits), to prove none reaches a report."""
    return f"{i:064x}"


def _day(month: date, site: str, i: int, count: int) -> str:
    """Day of the month of the i-th of `count` events; WEST's last of October is on the 31st,
    so the data reach the end of the report month (and it counts as complete)."""
    if month == MONTH and site == "WEST" and i == count - 1:
        return "31"
    return f"{1 + i % 28:02d}"


def build_practice(directory: Path) -> Path:
    """Write the practice into `directory`/fixture.duckdb and return the file's path.

    The KPI builder creates the warehouse and the reference rows; the few hundred fact rows go
    in with one INSERT per table (the builder's row-at-a-time inserts would take seconds).
    """
    directory.mkdir(parents=True, exist_ok=True)
    fx = Fixture(directory, config_text=CONFIG)
    fx.add("locations", *({"location_id": k, "name": v} for k, v in SITES.items()))
    fx.add("providers", {"provider_id": P1, "name": "Dr. Ada Park"}, {"provider_id": P2, "name": "Dr. Ben Ito"})
    appointments, calls = [], []
    for month in MONTHS:
        sizes = {"EAST": (120, 36 if month == MONTH else 12), "WEST": (120, 12), "NORTH": (5, 1)}
        for site, (visits, noshows) in sizes.items():
            for i in range(visits):
                appointments.append(
                    {
                        "source": "fhir",
                        "appointment_id": f"a{len(appointments) + 1}",
                        "location_id": site,
                        "provider_id": P2 if site == "NORTH" else P1,
                        "patient_key": patient_key(len(appointments) + 1),
                        "scheduled_start": fx.local(f"{month:%Y-%m}-{_day(month, site, i, visits)} {9 + i % 8:02d}:00"),
                        "scheduled_minutes": 20,
                        "status": "noshow" if i < noshows else "fulfilled",
                    }
                )
        abandoned = {"EAST": 0, "WEST": 12 if month == date(2026, 9, 1) else 0}
        for site, lost in abandoned.items():
            for i in range(60):
                gone = i < lost
                calls.append(
                    {
                        "source": "asterisk",
                        "call_id": f"c{len(calls) + 1}",
                        "queue": "appointments",
                        "location_id": site,
                        "entered_at": fx.local(f"{month:%Y-%m}-{_day(month, site, i, 60)} 10:{i:02d}"),
                        "outcome": "abandoned" if gone else "answered",
                        "wait_seconds": 60 if gone else 5,
                    }
                )
    portal = [
        {
            "source": "csv",
            "message_id": f"m{i}",
            "location_id": "EAST",
            "patient_key": patient_key(900 + i),
            "received_at": fx.local(f"2026-10-{5 + i:02d} 09:00"),
        }
        for i in range(3)
    ]
    cursor = fx.wh.cursor()
    for table, rows in (("appointments", appointments), ("calls", calls), ("portal_messages", portal)):
        frame = pd.DataFrame(rows)  # noqa: F841 (read by name in the SQL below)
        cursor.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
    cursor.execute(
        "INSERT INTO ingest_runs (started_at, finished_at, file_path, adapter, rows_read, rows_inserted, "
        "rows_rejected, status) VALUES (TIMESTAMPTZ '2026-11-01 06:00:00+00', TIMESTAMPTZ '2026-11-01 06:01:00+00', "
        "'/exports/fhir/Appointment.ndjson', 'fhir', 104, 100, 4, 'succeeded')"
    )
    fx.close()
    return fx.path
