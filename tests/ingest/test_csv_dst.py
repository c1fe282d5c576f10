"""Local date-times of CSV profiles around the practice zone's DST changes.

America/New_York, 2025: 02:00–02:59 on 9 March does not exist (clocks go from 01:59 EST to 03:00
EDT); 01:00–01:59 on 2 November happens twice (EDT, then EST). Ingest reads a time in the gap
as EST (02:30 is 07:30 UTC, i.e. 03:30 EDT) and one in the overlap as its first occurrence, EDT
(01:30 is 05:30 UTC). Most values are converted by the zone's offsets over a span of days and
the rest by the `local_to_utc` macro (`ingest.adapters.csv_profile._local_to_utc`); both ways
must give the same instant for every local time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from ingest.adapters.csv_profile import _LOCAL_TO_UTC, _local_to_utc
from kpis.warehouse import Warehouse
from tests.ingest.conftest import load_one, rejects, rows

PROFILE = (
    '[profile]\npatient_system = "acme"\n'
    '[[output]]\ntable = "appointments"\n[output.columns]\n'
    'appointment_id = "Nr"\npatient_key = { column = "Pat", pseudonymize = true }\n'
    'scheduled_start = { column = ["Day", "Time"], format = "%m/%d/%Y %I:%M %p" }\n'
    'booked_at = { column = "Booked", optional = true }\n'
    'status = { column = "State", map = { "done" = "fulfilled" } }\n'
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_local_times_in_the_dst_gap_and_overlap(warehouse: Warehouse, tmp_path: Path) -> None:
    profile = tmp_path / "acme_pm.toml"
    profile.write_text(PROFILE)
    data = tmp_path / "export.csv"
    data.write_text(
        "Nr,Pat,Day,Time,Booked,State\n"
        "1,P1,03/09/2025,1:59 AM,2025-03-09T02:30,done\n"  # EST; booked in the gap (ISO, no offset)
        "2,P1,03/09/2025,2:30 AM,2025-03-09T02:30-05:00,done\n"  # in the gap: read as EST
        "3,P1,03/09/2025,3:00 AM,,done\n"  # EDT
        "4,P1,11/02/2025,12:59 AM,2025-11-02T01:30,done\n"  # EDT; booked in the overlap (ISO)
        "5,P1,11/02/2025,1:30 AM,,done\n"  # in the overlap: the first, EDT
        "6,P1,11/02/2025,2:00 AM,,done\n"  # EST
        "7,P1,07/04/2025,9:15 AM,,done\n"  # an ordinary EDT day
        "8,P1,01/15/1990,9:15 AM,,done\n"  # decades before the others
        "9,P1,02/29/2025,9:15 AM,,done\n"  # no such day: a reject, as before
    )
    result = load_one(warehouse, data, fmt=f"csv:{profile}")
    assert (result.inserted, result.rejected) == (8, 1)
    sql = "SELECT appointment_id, scheduled_start, booked_at FROM appointments ORDER BY appointment_id"
    assert rows(warehouse, sql) == [
        ("1", utc(2025, 3, 9, 6, 59), utc(2025, 3, 9, 7, 30)),
        ("2", utc(2025, 3, 9, 7, 30), utc(2025, 3, 9, 7, 30)),
        ("3", utc(2025, 3, 9, 7), None),
        ("4", utc(2025, 11, 2, 4, 59), utc(2025, 11, 2, 5, 30)),
        ("5", utc(2025, 11, 2, 5, 30), None),
        ("6", utc(2025, 11, 2, 7), None),
        ("7", utc(2025, 7, 4, 13, 15), None),
        ("8", utc(1990, 1, 15, 14, 15), None),
    ]
    unreadable, required = rejects(warehouse, result.run_id)
    assert (unreadable["position"], unreadable["field"], required["field"]) == (10, "Day + Time", "scheduled_start")
    assert unreadable["reason"] == (
        "Day + Time '02/29/2025 9:15 AM' is not a valid date/time in the format %m/%d/%Y %I:%M %p "
        "(like 03/14/2025 09:30 AM)"
    )


@pytest.mark.parametrize(
    "zone",
    [
        "America/New_York",
        "America/Los_Angeles",
        "Europe/London",
        "Australia/Lord_Howe",  # changes by 30 minutes
        "Pacific/Apia",  # skipped 30 December 2011
        "America/Santiago",  # changes at midnight
        "Asia/Beirut",  # at midnight
        "America/St_Johns",  # at 2:00 -03:30
        "Antarctica/Troll",  # by two hours
        "Asia/Kolkata",
    ],
)
def test_offsets_by_day_give_what_local_to_utc_gives(zone: str) -> None:
    """Every quarter hour of 2010–2013 (the span covering 2011–2012 only) and every minute of
    2024–2026, converted both ways."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(_LOCAL_TO_UTC)
    con.execute(
        "CREATE TABLE l AS SELECT unnest(range(TIMESTAMP '2010-01-01', TIMESTAMP '2014-01-01', "
        "INTERVAL 15 MINUTE)) AS t UNION ALL SELECT NULL"
    )
    fast = _local_to_utc("t", zone, (date(2011, 1, 1), date(2013, 1, 1)))  # part of the range outside the span
    assert "make_timestamptz" in fast
    apart = con.sql(
        f"SELECT count(*), count(*) FILTER (WHERE ({fast}) IS DISTINCT FROM local_to_utc(t, '{zone}')) FROM l"
    )
    assert apart.fetchall() == [(140_257, 0)]
    con.execute(
        "CREATE TABLE m AS SELECT unnest(range(TIMESTAMP '2024-01-01', TIMESTAMP '2027-01-01', INTERVAL 1 MINUTE)) AS t"
    )
    fast = _local_to_utc("t", zone, (date(2024, 1, 1), date(2027, 1, 1)))
    apart = con.sql(f"SELECT count(*) FILTER (WHERE ({fast}) IS DISTINCT FROM local_to_utc(t, '{zone}')) FROM m")
    assert apart.fetchall() == [(0,)]
    assert _local_to_utc("t", zone, None) == f"local_to_utc(t, '{zone}')"
