"""`clinic-kpis ingest` as a user runs it: a summary per file, one-line errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.cli_helpers import run_cli
from tests.ingest.conftest import FIXTURES, SECRET


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)


def table_rows(out: str) -> dict[str, list[str]]:
    """The summary table's rows for the fixture files: path -> the other cells."""
    return {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in out.splitlines()
        if "│" in line and "fixtures" in line
    }


def test_summary_table_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str], secret: None) -> None:
    db = tmp_path / "w.duckdb"
    res = run_cli(capsys, "ingest", str(FIXTURES / "vendor"), str(FIXTURES / "phones"), "--db", str(db))
    assert res.code == 0, res.err
    lines = table_rows(res.out)
    assert lines[str(FIXTURES / "vendor" / "north_appointments_2025.csv")] == [
        "csv:vendor_appointments",
        "7",
        "4",
        "0",
        "0",
        "0",
        "0",
        "3",
        "0",
        "succeeded",
    ]
    assert lines[str(FIXTURES / "phones" / "queue_log")] == [
        *("queue_log", "9", "6", "0", "0", "0", "0", "3", "2", "succeeded")
    ]
    # the vendor files name a payer (ACME01) no claim file has brought yet: said, not silently kept
    assert [line.split(": ")[2][:40] for line in res.err.splitlines()] == [
        "4 row(s) of appointments refer to payers",
        "3 row(s) of appointments refer to payers",
    ]

    with duckdb.connect(str(db), read_only=True) as con:
        ((run,),) = con.execute("SELECT run_id FROM ingest_runs WHERE file_path LIKE '%queue_log'").fetchall()
    again = run_cli(capsys, "ingest", str(FIXTURES / "phones"), "--db", str(db))
    assert again.code == 0 and "skipped" in again.out and f"already loaded as run {run} (same content)" in again.out
    forced = run_cli(capsys, "ingest", str(FIXTURES / "phones"), "--db", str(db), "--force")
    assert forced.code == 0
    assert table_rows(forced.out)[str(FIXTURES / "phones" / "queue_log")][:8] == [
        *("queue_log", "9", "0", "0", "6", "0", "0", "3")
    ]


def test_a_failed_file_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], secret: None) -> None:
    bad = FIXTURES / "corrupted" / "not_utf8.csv"
    res = run_cli(capsys, "ingest", str(bad), str(FIXTURES / "portal"), "--db", str(tmp_path / "w.duckdb"))
    assert res.code == 1
    offset = bad.read_bytes().find(b"\xe9")
    assert res.err.splitlines() == [
        f"error: {bad}: line 3: byte 0xe9 at offset {offset} is not valid utf-8 (invalid continuation byte); "
        "export the file as UTF-8"
    ]
    assert "Traceback" not in res.out + res.err
    assert "succeeded" in res.out  # the other file loaded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere.csv"], "error: nowhere.csv: no such file or folder"),
        (
            ["--format", "excel", str(FIXTURES / "portal")],
            "error: unknown --format 'excel'; use one of auto, fhir, x12, queue-log, call-log, csv:PROFILE",
        ),
        (
            ["--format", "csv:nope", str(FIXTURES / "portal")],
            "error: no CSV profile named 'nope'; known: call_log, kaggle_noshow",
        ),
    ],
)
def test_user_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret: None, args: list[str], message: str
) -> None:
    res = run_cli(capsys, "ingest", *args, "--db", str(tmp_path / "w.duckdb"))
    assert res.code == 1
    assert res.err.startswith(message) and len(res.err.splitlines()) == 1, res.err
    assert res.out == ""  # nothing was attempted


def test_no_secret_no_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(tmp_path / "w.duckdb"))
    assert res.code == 1
    assert res.err.startswith("error: no pseudonymization secret")


def test_the_run_ends_with_one_line_and_rejects_lists_each_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], secret: None
) -> None:
    db = str(tmp_path / "w.duckdb")
    vendor = FIXTURES / "vendor" / "north_appointments_2025.csv"
    res = run_cli(capsys, "ingest", str(vendor), str(FIXTURES / "x12" / "claims_2025-04.837"), "--db", db)
    assert res.code == 0, res.err
    assert (
        "2 of 2 file(s) loaded, 0 skipped, 0 failed: 10 records read, 4 rejected; "
        "`clinic-kpis rejects` shows each with its reason"
    ) in res.out.splitlines()
    again = run_cli(capsys, "ingest", str(vendor), "--db", db)
    assert "0 of 1 file(s) loaded, 1 skipped, 0 failed: 0 records read, 0 rejected" in again.out.splitlines()

    listed = run_cli(capsys, "rejects", "--db", db, "--format", "json")
    assert listed.code == 0, listed.err
    rows = json.loads(listed.out)
    assert [(Path(r["file_path"]).name, r["position_kind"], r["position"], r["field"]) for r in rows] == [
        ("claims_2025-04.837", "segment", 27, "CLM05"),  # in run order: claims load before appointments
        ("north_appointments_2025.csv", "line", 6, "scheduled_start"),
        ("north_appointments_2025.csv", "line", 7, "checked_out_at"),
        ("north_appointments_2025.csv", "line", 8, "appointment_id"),
    ]
    assert rows[2]["reason"] == "check-out at 2025-03-16 10:50 is before check-in at 2025-03-16 11:00"
    table = run_cli(capsys, "rejects", "--db", db, "--run", str(rows[0]["run_id"]))
    assert "segment 27" in table.out and "CLM05 (place of service : qualifier : frequency) is missing" in table.out
    assert "north_appointments" not in table.out
    first = run_cli(capsys, "rejects", "--db", db, "--limit", "1")
    assert first.out.splitlines()[-1] == "the first 1 shown: --limit for more, --run for one load"
