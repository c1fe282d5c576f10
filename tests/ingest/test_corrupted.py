"""The corrupted-input set (fixtures/corrupted/README.md): each damage gives a clear error or a
quarantine, the counts balance, and a file that fails leaves the warehouse as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load_one, rejects, rows, snapshot

CORRUPTED = FIXTURES / "corrupted"
VENDOR = "csv:vendor_appointments"


def loaded_ids(wh: Warehouse) -> list[str]:
    return [r[0] for r in rows(wh, "SELECT appointment_id FROM appointments ORDER BY 1")]


@pytest.mark.parametrize(
    ("name", "counts", "quarantined"),
    [
        (
            "truncated.csv",
            (5, 4, 0, 0, 1),
            [(6, "field_count", "the line has 5 fields but the header has 23: it may be truncated")],
        ),
        (
            "swapped_values.csv",
            (4, 0, 0, 0, 4),
            [
                (2, "unreadable_value", "Appt Date + Appt Time '9:30 AM 03/14/2025' is not a valid date/time"),
                (3, "unreadable_value", "Appt Date + Appt Time '2:00 PM 12/30/2025' is not a valid date/time"),
                (4, "unreadable_value", "Appt Date + Appt Time '11:00 AM 03/15/2025' is not a valid date/time"),
                (5, "unreadable_value", "Appt Date + Appt Time '11:00 AM 12/31/2025' is not a valid date/time"),
            ],
        ),
        ("reordered_columns.csv", (4, 4, 0, 0, 0), []),
        (
            "impossible_dates.csv",
            (4, 1, 0, 0, 3),
            [
                (2, "unreadable_value", "Appt Date + Appt Time '02/30/2025 9:30 AM' is not a valid date/time"),
                (3, "unreadable_value", "Appt Date + Appt Time '13/01/2025 2:00 PM' is not a valid date/time"),
                (4, "unreadable_value", "Appt Date + Appt Time '03/15/2025 9:75 AM' is not a valid date/time"),
            ],
        ),
        (
            "duplicate_ids.csv",
            (6, 4, 0, 1, 1),
            [
                (
                    6,
                    "duplicate_conflict",
                    "appointment_id V1 appears earlier in this file (line 2) with different values",
                )
            ],
        ),
    ],
)
def test_damaged_rows_are_quarantined(warehouse: Warehouse, name: str, counts: tuple, quarantined: list) -> None:
    result = load_one(warehouse, CORRUPTED / name, fmt=VENDOR)
    assert result.status == "succeeded"
    assert (result.read, result.inserted, result.updated, result.unchanged, result.rejected) == counts
    found = rejects(warehouse, result.run_id)
    first = list({r["position"]: r for r in reversed(found)}.values())[::-1]  # each record's first failure
    assert [(r["position"], r["check_name"]) for r in first] == [(p, c) for p, c, _ in quarantined]
    for reject, (_, _, reason) in zip(first, quarantined, strict=True):
        assert reject["reason"].startswith(reason), reject["reason"]
    # every failure of a record is kept: an unreadable start also leaves the appointment without one
    if name in ("swapped_values.csv", "impossible_dates.csv"):
        assert {(r["position"], r["check_name"]) for r in found} >= {(p, "required") for p, _, _ in quarantined}
    assert rows(warehouse, "SELECT rows_read, rows_rejected, status FROM ingest_runs") == [
        (counts[0], counts[4], "succeeded")
    ]


def test_reordered_columns_load_like_the_original(warehouse: Warehouse, tmp_path: Path) -> None:
    load_one(warehouse, CORRUPTED / "reordered_columns.csv")
    reordered = snapshot(warehouse)
    original = tmp_path / "original.csv"
    original.write_text("".join((FIXTURES / "vendor" / "north_appointments_2025.csv").read_text().splitlines(True)[:5]))
    load_one(warehouse, original)
    assert snapshot(warehouse) == reordered


def test_old_mac_line_endings_load_like_the_original(warehouse: Warehouse, tmp_path: Path) -> None:
    """A CSV whose lines end in a bare CR (classic Mac OS exports) is detected and loads the same rows."""
    lines = (FIXTURES / "vendor" / "north_appointments_2025.csv").read_text().splitlines()[:5]
    original, mac = tmp_path / "original.csv", tmp_path / "mac.csv"
    original.write_text("\n".join(lines) + "\n")
    mac.write_text("\r".join(lines) + "\r", newline="")
    load_one(warehouse, mac)
    from_mac = snapshot(warehouse)
    assert len(from_mac["appointments"]) == 4
    load_one(warehouse, original)
    assert snapshot(warehouse) == from_mac


@pytest.mark.parametrize(
    ("name", "fmt", "message"),
    [
        (
            "wrong_delimiter.csv",
            VENDOR,
            "line 1: missing column(s) 'Appt ID', 'Provider NPI', 'Patient MRN', 'Insurance', 'Appt Date', "
            "'Appt Time', 'Created', 'Cancelled', 'Status', 'Visit Type', 'Cancel Reason', "
            "'Check Out', 'Provider In', 'Check In', 'Roomed', 'Provider Out', 'Provider' required by profile "
            "vendor_appointments; "
            "the header has one column: is the delimiter ';' instead of ','?",
        ),
        ("wrong_delimiter.csv", "auto", "not a recognized export"),
        (
            "not_utf8.csv",
            VENDOR,
            "line 3: byte 0xe9 at offset {offset} is not valid utf-8 (invalid continuation byte); "
            "export the file as UTF-8",
        ),
        (
            "empty.csv",
            VENDOR,
            "the file is empty; expected a header line with 'Appt ID', 'Appt Date', 'Appt Time', 'Patient MRN', "
            "'Status', 'Provider NPI'",
        ),
        ("empty.csv", "auto", "not a recognized export"),
    ],
)
def test_unreadable_files_fail_and_change_nothing(warehouse: Warehouse, name: str, fmt: str, message: str) -> None:
    load_one(warehouse, FIXTURES / "vendor" / "north_appointments_2025.csv")
    before = snapshot(warehouse)
    path = CORRUPTED / name
    result = load_one(warehouse, path, fmt=fmt)
    assert result.status == "failed"
    offset = path.read_bytes().find(b"\xe9")  # where the Windows-1252 byte is, found independently
    assert result.message.startswith(f"{path}: {message.format(offset=offset)}"), result.message
    assert snapshot(warehouse) == before
    assert rows(warehouse, "SELECT status, error FROM ingest_runs ORDER BY run_id DESC LIMIT 1") == [
        ("failed", result.message)
    ]
