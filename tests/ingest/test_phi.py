"""No name, birth date, address, phone number, email or raw patient id reaches the warehouse.

The fixtures carry fake direct identifiers in every format (FHIR Patient and display names, X12
NM1/N3/N4/DMG, vendor CSV name/DOB/phone columns, queue_log caller ids, CDR caller names), and
several of their records are rejected, so the masked copies in `rejects` are searched too. The
whole database file is searched byte by byte, and every text value is searched through SQL; a
positive control proves the byte search sees strings that are stored.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, SECRET, load, rows

PHI = [
    # names
    "zebulon",
    "quixotezz",
    "xanthippe",
    "yarborough",
    "wilhelmina",
    "vexley",
    "ursula",
    # birth dates in the formats of the fixtures
    "1970-01-02",
    "01/02/1970",
    "19700102",
    "1980-03-04",
    # addresses
    "9 elm street",
    "springfield",
    # phone numbers and emails
    "555-867-5309",
    "5558675309",
    "5551230001",
    "555-111-2222",
    "zebulon.q@example.org",
    # raw patient ids (stored only as keyed hashes)
    "mrn001",
    "mem001",
]
STORED = ["eastside family medicine", "ada lovelace"]  # location and clinician names: allowed, and stored


def test_no_direct_identifier_anywhere_in_the_database(warehouse: Warehouse, tmp_path: Path) -> None:
    cdr = tmp_path / "Master.csv"
    cdr.write_text(
        '"","5558675309","600","queues","""Zebulon Quixotezz"" <5558675309>","SIP/t-1","SIP/a-2","Queue",'
        '"appointments,t","2025-03-03 10:00:00","2025-03-03 10:00:42","2025-03-03 10:05:42",342,300,"ANSWERED",'
        '"DOCUMENTATION","1741014000.11",""\n'
        '"","5558675309","600","queues","""Zebulon Quixotezz"" <5558675309>","SIP/t-1","","Queue",'
        '"appointments,t","2025-03-03 10:00:00",,"2025-03-03 09:59:00",0,0,"NO ANSWER",'
        '"DOCUMENTATION","1741014000.12","zebulon.q@example.org"\n'
    )
    # a rejected Appointment (no start) whose free text and logical patient reference carry identifiers
    leak = tmp_path / "leak" / "Appointment.ndjson"
    leak.parent.mkdir()
    appointment = {
        "resourceType": "Appointment",
        "id": "leak-1",
        "status": "booked",
        "comment": "Call Zebulon Quixotezz at 555-867-5309",
        "patientInstruction": "DOB 1970-01-02, 9 Elm Street, Springfield",
        "participant": [{"actor": {"type": "Patient", "identifier": {"value": "MRN001"}}, "status": "accepted"}],
    }
    leak.write_text(json.dumps(appointment) + "\n")
    exports = [FIXTURES / d for d in ("fhir", "x12", "phones", "vendor", "billing", "portal", "referrals")]
    results = load(warehouse, *exports, cdr, leak)
    assert rows(warehouse, "SELECT count(*) FROM rejects WHERE record_masked LIKE '%leak-1%'")[0][0] == 1
    assert all(r.status == "succeeded" for r in results)
    assert rows(warehouse, "SELECT count(*) FROM rejects WHERE record_masked IS NOT NULL")[0][0] >= 15
    path = warehouse.path
    warehouse.close()  # written out to the database file (whatever is not, stays in the WAL, searched too)

    data = path.read_bytes().lower()
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        data += wal.read_bytes().lower()
    for control in STORED:
        assert control.encode() in data, f"the byte search cannot see stored text ({control!r})"
    assert [p for p in PHI if p.encode() in data] == []

    found = []
    with Warehouse(path, read_only=True) as wh:
        for schema, table, column in rows(  # every schema: the results store's too
            wh,
            "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'",
        ):
            for phrase in PHI:
                sql = f'SELECT count(*) FROM "{schema}"."{table}" WHERE lower("{column}") LIKE ?'
                hits = rows(wh, sql, f"%{phrase}%")
                if hits[0][0]:
                    found.append((table, column, phrase))
    assert found == []


def test_the_warehouse_and_its_log_are_readable_by_their_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 item 4: the warehouse was created 0644 (world-readable); it holds practice data,
    so it is created 0600 like the secret, and so are the write-ahead log and spill files an
    ingest writes."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        load(wh, FIXTURES / "portal")
        wal = db.with_name(db.name + ".wal")
        written = [p for p in (db, wal) if p.exists()]
        assert wal in written  # the load's rows are in the log until the warehouse is closed
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: 0o600 for p in written}


def test_a_warehouse_made_before_is_made_private_by_the_next_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    db.chmod(0o644)  # as every warehouse was created until now
    with Warehouse(db) as wh:
        load(wh, FIXTURES / "portal")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
