"""Asterisk queue_log and CDR call logs -> calls, one row per call, outcome and seconds from the events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.errors import IngestError
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load_one, rejects, rows

QUEUE_LOG = FIXTURES / "phones" / "queue_log"
T0 = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)  # epoch 1741014000


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_queue_log_calls(warehouse: Warehouse) -> None:
    result = load_one(warehouse, QUEUE_LOG)
    assert (result.adapter, result.read, result.inserted, result.rejected, result.ignored) == ("queue_log", 9, 6, 3, 2)
    assert rows(
        warehouse,
        "SELECT call_id, queue, entered_at, answered_at, ended_at, outcome, outcome_source, wait_seconds, "
        "talk_seconds, agent FROM calls ORDER BY entered_at",
    ) == [
        ("1741014000.1", "appointments", at(0), at(25), at(205), "answered", "COMPLETECALLER", 25, 180, "Agent/1001"),
        ("1741014100.3", "billing", at(100), None, at(140), "abandoned", "ABANDON", 40, None, None),
        ("1741014200.4", "nurse", at(200), None, at(500), "timeout", "EXITWITHTIMEOUT", 300, None, None),
        # EXITWITHKEY logs no wait: it is the time from entry to exit
        ("1741014300.5", "appointments", at(300), None, at(312), "exit_key", "EXITWITHKEY", 12, None, None),
        # RINGNOANSWER on another agent first; the call ends by transfer (holdtime 8, calltime 95)
        ("1741014400.6", "billing", at(400), at(408), at(503), "answered", "TRANSFER", 8, 95, "Agent/2001"),
        # the same uniqueid queues again after abandoning: a second call
        ("1741014100.3#2", "billing", at(1000), at(1010), at(1070), "answered", "COMPLETEAGENT", 10, 60, "Agent/2001"),
    ]


def test_queue_log_rejects(warehouse: Warehouse) -> None:
    result = load_one(warehouse, QUEUE_LOG)
    found = rejects(warehouse, result.run_id)
    assert [(r["position"], r["check_name"], r["reason"]) for r in found] == [
        (
            16,
            "no_end_event",
            "call 1741014600.8 entered queue nurse but the log has no CONNECT, ABANDON or EXIT event for it "
            "(still waiting when the log was written?)",
        ),
        (17, "rule_ended_at", "the call ends at 2025-03-03 10:10, before it entered the queue at 2025-03-03 10:11"),
        (19, "unreadable_line", "expected epoch|uniqueid|queue|agent|EVENT|data..., found 1 field(s)"),
    ]
    lines = json.loads(found[0]["record_masked"])["lines"]
    assert lines == ["1741014600|1741014600.8|nurse|NONE|ENTERQUEUE||***|1"]  # the caller id is masked


def test_call_log_cdr(warehouse: Warehouse, tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    path.write_text(
        '"","5558675309","600","queues","""Zebulon Q"" <5558675309>","SIP/trunk-1","SIP/agent7-2","Queue",'
        '"appointments,t","2025-03-03 10:00:00","2025-03-03 10:00:42","2025-03-03 10:05:42",342,300,"ANSWERED",'
        '"DOCUMENTATION","1741014000.11",""\n'
        '"","5551230001","600","queues","5551230001","SIP/trunk-2","","Queue","billing,t","2025-03-03 10:01:00",,'
        '"2025-03-03 10:01:30",30,0,"NO ANSWER","DOCUMENTATION","1741014060.12",""\n'
        '"","5551230002","601","queues","5551230002","SIP/trunk-3","","Dial","SIP/600","2025-03-03 10:02:00",,'
        '"2025-03-03 10:02:05",5,0,"BUSY","DOCUMENTATION","1741014120.13",""\n'
    )
    result = load_one(warehouse, path)
    assert (result.adapter, result.read, result.inserted) == ("call_log", 3, 3)
    assert rows(
        warehouse,
        "SELECT call_id, queue, entered_at, answered_at, ended_at, outcome, outcome_source, wait_seconds, "
        "talk_seconds, agent FROM calls ORDER BY 1",
    ) == [
        ("1741014000.11", "appointments", at(0), at(42), at(342), "answered", "ANSWERED", 42, 300, "SIP/agent7-2"),
        ("1741014060.12", "billing", at(60), None, at(90), "abandoned", "NO ANSWER", 30, None, None),
        ("1741014120.13", "601", at(120), None, at(125), "other", "BUSY", 5, None, None),
    ]
    assert rows(warehouse, "SELECT count(*) FROM calls WHERE agent LIKE '%Zebulon%' OR queue LIKE '%555%'") == [(0,)]


def test_truncated_cdr_line_is_quarantined(warehouse: Warehouse, external: Path) -> None:
    result = load_one(warehouse, external / "asterisk-testsuite" / "cdrlib" / "buggy.csv")
    assert (result.adapter, result.read, result.rejected) == ("call_log", 1, 1)
    (bad,) = rejects(warehouse, result.run_id)
    assert (bad["position"], bad["check_name"], bad["reason"]) == (
        1,
        "invalid_csv",
        "a quoted field is never closed: the file is truncated or a closing quote is missing",
    )


def test_generic_call_log_csv(warehouse: Warehouse) -> None:
    """A non-Asterisk call log through the `call_log` profile, detected from its header.

    Local times are America/New_York: EST (UTC-5) on 03-03, EDT (UTC-4) from 03-09. C-5's
    result word is unknown and C-6 ends before it starts with a negative wait: both quarantined.
    """
    result = load_one(warehouse, FIXTURES / "phones_csv" / "call_log.csv")
    assert (result.adapter, result.read, result.inserted, result.rejected) == ("csv:call_log", 6, 4, 2)
    assert rows(
        warehouse,
        "SELECT call_id, queue, location_id, entered_at, answered_at, ended_at, outcome, outcome_source, "
        "wait_seconds, talk_seconds, agent FROM calls ORDER BY call_id",
    ) == [
        (
            "C-1",
            "appointments",
            "EAST",
            utc(15, 0, 0),
            utc(15, 0, 25),
            utc(15, 3, 25),
            "answered",
            "Answered",
            25,
            180,
            "Dana",
        ),
        ("C-2", "billing", None, utc(15, 5, 0), None, utc(15, 5, 40), "abandoned", "Abandoned", 40, None, None),
        ("C-3", "nurse", "WEST", edt(10, 9, 0), None, edt(10, 9, 5), "timeout", "Timeout", 300, None, None),
        ("C-4", "appointments", "EAST", edt(10, 9, 10), None, edt(10, 9, 11), "exit_key", "Voicemail", 60, None, None),
    ]
    found = {r["position"]: r for r in reversed(rejects(warehouse, result.run_id))}  # each record's first failure
    assert set(found) == {6, 7}
    assert "Hung up" in found[6]["reason"] and found[6]["field"] == "Result"  # the file's own column
    assert (found[7]["field"], found[7]["reason"]) == ("wait_seconds", "the wait time -60 s is negative")
    # the caller's number never reaches the warehouse, not even in quarantine
    dump = json.dumps(rows(warehouse, "SELECT * FROM rejects"), default=str) + json.dumps(
        rows(warehouse, "SELECT * FROM calls"), default=str
    )
    assert "555" not in dump


def utc(hour: int, minute: int, second: int) -> datetime:
    """2025-03-03 (EST) at a UTC wall time."""
    return datetime(2025, 3, 3, hour, minute, second, tzinfo=UTC)


def edt(day: int, hour: int, minute: int) -> datetime:
    """A March 2025 local wall time after the DST change (UTC-4), as UTC."""
    return datetime(2025, 3, day, hour + 4, minute, tzinfo=UTC)


def test_excel_call_log_loads_like_its_csv(warehouse: Warehouse, tmp_path: Path) -> None:
    """The same call log saved from Excel (typed date-time and number cells) gives the same rows."""
    from openpyxl import Workbook

    source = FIXTURES / "phones_csv" / "call_log.csv"
    book = Workbook()
    sheet = book.active
    for i, line in enumerate(source.read_text().splitlines()):
        cells: list[object] = line.split(",")
        if i:
            cells[4:7] = [datetime.fromisoformat(c) if c else None for c in cells[4:7]]
            cells[8] = int(cells[8])
        sheet.append(cells)
    book.save(tmp_path / "calls.xlsx")

    from_excel = load_one(warehouse, tmp_path / "calls.xlsx")
    assert (from_excel.adapter, from_excel.read, from_excel.inserted, from_excel.rejected) == ("csv:call_log", 6, 4, 2)
    excel_rows = rows(warehouse, "SELECT * EXCLUDE (ingest_run_id) FROM calls ORDER BY call_id")
    with Warehouse(tmp_path / "csv.duckdb") as other:
        load_one(other, source)
        assert rows(other, "SELECT * EXCLUDE (ingest_run_id) FROM calls ORDER BY call_id") == excel_rows


def test_unreadable_workbook_is_a_clear_error(warehouse: Warehouse, tmp_path: Path) -> None:
    bad = tmp_path / "report.xlsx"
    bad.write_bytes(b"this is not a workbook")
    with pytest.raises(IngestError, match=r"report\.xlsx: not a readable Excel workbook"):
        load_one(warehouse, bad)
