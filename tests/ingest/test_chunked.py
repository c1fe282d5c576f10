"""Large line-oriented files load in chunks, with exactly the result of loading them whole.

Why: a million-appointment FHIR export is half a gigabyte of NDJSON; parsed whole it was
millions of dicts at once. Chunked, the rows, rejects, counts, ignored records and warnings
must not move: a duplicate key straddling a chunk boundary is still the same key twice in one
file, a reject in a later chunk keeps its true line number, and a FHIR reference resolves as it
would in a whole-file parse. Each test loads with tiny chunks and with one chunk and compares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.adapters import csv_profile, fhir
from ingest.sources import expand
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load, rows, snapshot

WHOLE = 10**9


def _outcome(wh: Warehouse, *paths: Path) -> dict:
    results = load(wh, *paths)
    return {
        "results": [
            (r.path, r.status, r.read, r.inserted, r.updated, r.unchanged, r.rejected, r.ignored, r.message, r.warnings)
            for r in results
        ],
        "tables": snapshot(wh),
        "rejects": rows(
            wh,
            "SELECT run_id, file_path, position_kind, position, target_table, field, check_name, reason, "
            "value_masked, record_masked FROM rejects ORDER BY run_id, position",
        ),
    }


def _fresh(tmp_path: Path, empty_warehouse_file: Path, name: str) -> Warehouse:
    path = tmp_path / f"{name}.duckdb"
    path.write_bytes(empty_warehouse_file.read_bytes())
    return Warehouse(path)


def _compare(tmp_path, empty_warehouse_file, monkeypatch, module, attr, sizes, *paths) -> dict:  # noqa: ANN001
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    monkeypatch.setattr(module, attr, WHOLE)
    with _fresh(tmp_path, empty_warehouse_file, "whole") as wh:
        whole = _outcome(wh, *paths)
    for size in sizes:
        monkeypatch.setattr(module, attr, size)
        with _fresh(tmp_path, empty_warehouse_file, f"chunks{size}") as wh:
            assert _outcome(wh, *paths) == whole, f"chunks of {size}"
    return whole


APPOINTMENT = {
    "resourceType": "Appointment",
    "status": "booked",
    "start": "2025-03-03T09:00:00-05:00",
    "minutesDuration": 20,
    "participant": [
        {"actor": {"reference": "Patient/p1"}},
        {"actor": {"reference": "Practitioner/pr1"}},
        {"actor": {"reference": "Location/EAST"}},
    ],
}


def _appointment(id_: str, **changes: object) -> str:
    return json.dumps({**APPOINTMENT, "id": id_, **changes})


def test_fhir_chunks_give_the_whole_file_result(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "fhir"
    folder.mkdir()
    for source in (FIXTURES / "fhir").iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    lines = [
        _appointment("chunk-a1"),
        _appointment("chunk-a2"),
        _appointment("chunk-a1"),  # the same key again, agreeing: unchanged, in the next chunk
        _appointment("chunk-a2", minutesDuration=30),  # the same key again, disagreeing: rejected at line 4
        "{not json",  # line 5
        "",
        _appointment("chunk-a3", status="later"),  # line 7: unknown status
        _appointment("chunk-a4"),  # loaded, its practitioner unresolved: a warning
        json.dumps({"resourceType": "Patient", "id": "p1"}),  # ignored
        _appointment("chunk-a5", status="cancelled", minutesDuration=-5),  # breaks a CHECK rule in SQL
    ]
    (folder / "More.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    whole = _compare(tmp_path, empty_warehouse_file, monkeypatch, fhir, "CHUNK_LINES", [1, 2, 3], folder)
    more = next(r for r in whole["results"] if r[0].endswith("More.ndjson"))
    assert more[2:8] == (8, 3, 0, 1, 4, 1), more  # read, inserted, updated, unchanged, rejected, ignored
    assert more[9] and "Practitioner" in more[9][0]
    positions = [(r[3], r[6]) for r in whole["rejects"] if r[1].endswith("More.ndjson")]
    assert [p for p, _ in positions] == [4, 5, 7, 10], positions
    assert dict(positions)[4] == "duplicate_conflict"


def test_a_key_whose_first_copy_is_rejected_ranks_its_next_copy_first(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the copies that pass the checks are ranked per key: the first of them is loaded and a
    later one is compared with it, whether the key repeats in one chunk or across chunks."""
    folder = tmp_path / "fhir"
    folder.mkdir()
    for source in (FIXTURES / "fhir").iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    lines = [
        _appointment("rank-a1", status="cancelled", minutesDuration=-5),  # line 1: breaks a CHECK rule
        _appointment("rank-a1", minutesDuration=30),  # line 2: the first copy that passes: loaded
        _appointment("rank-a2"),
        _appointment("rank-a1", minutesDuration=30),  # line 4: agrees with line 2
        _appointment("rank-a1", minutesDuration=45),  # line 5: disagrees with line 2
    ]
    (folder / "More.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    whole = _compare(tmp_path, empty_warehouse_file, monkeypatch, fhir, "CHUNK_LINES", [1, 2], folder)
    more = next(r for r in whole["results"] if r[0].endswith("More.ndjson"))
    assert more[2:7] == (5, 2, 0, 1, 2), more  # read, inserted, updated, unchanged, rejected
    rejects = [(r[3], r[6], r[7]) for r in whole["rejects"] if r[1].endswith("More.ndjson")]
    assert [(p, check) for p, check, _ in rejects] == [(1, "rule_scheduled_minutes"), (5, "duplicate_conflict")], (
        rejects
    )
    assert "(line 2)" in rejects[1][2] and "45" in rejects[1][2], rejects


def test_a_fhir_file_out_of_phase_order_is_parsed_again_whole(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Slot before the Schedule it refers to: whole, the Schedule is mapped first."""
    slot = json.loads((FIXTURES / "fhir" / "Slot.ndjson").read_text().splitlines()[0])
    schedule = (FIXTURES / "fhir" / "Schedule.ndjson").read_text().splitlines()[0]
    practitioners = (FIXTURES / "fhir" / "Practitioner.ndjson").read_text().splitlines()
    mixed = tmp_path / "mixed.ndjson"
    mixed.write_text("\n".join([json.dumps(slot), schedule, *practitioners]) + "\n", encoding="utf-8")
    whole = _compare(tmp_path, empty_warehouse_file, monkeypatch, fhir, "CHUNK_LINES", [1, 2], mixed)
    assert whole["results"][0][9] == []  # no unresolved reference: the Schedule was known
    (slot_row,) = whole["tables"]["slots"]
    assert slot_row[2] is not None  # provider_id, from the Schedule's practitioner


def test_fhir_ndjson_is_parsed_in_chunks(monkeypatch: pytest.MonkeyPatch, warehouse: Warehouse) -> None:
    monkeypatch.setattr(fhir, "CHUNK_LINES", 3)
    (file,) = expand([FIXTURES / "fhir" / "Appointment.ndjson"])
    from ingest.context import ParseContext
    from ingest.pseudonymize import Pseudonymizer

    ctx = ParseContext("America/New_York", Pseudonymizer(b"k"))
    batch = fhir.FhirAdapter("Appointment").parse(file, ctx)
    chunks = list(batch.chunks)
    lines = [n for n, line in enumerate(file.read().decode().splitlines(), 1) if line.strip()]
    assert len(chunks) == -(-len(lines) // 3) > 1
    first_rows = chunks[1].phases[0].targets[1][1]
    assert first_rows.column("_pos").to_pylist()[0] == lines[3]  # positions continue across chunks


def test_csv_chunks_give_the_whole_file_result(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [FIXTURES / "vendor", FIXTURES / "billing", FIXTURES / "portal", FIXTURES / "corrupted"]
    # the exact reader, record by record
    _compare(tmp_path, empty_warehouse_file, monkeypatch, csv_profile, "CHUNK_ROWS", [1, 2], *paths)
    # the Arrow reader, a few lines a piece (pieces end at a line end at or after this many characters)
    _compare(tmp_path, empty_warehouse_file, monkeypatch, csv_profile, "CHUNK_CHARS", [1, 300], *paths)


def test_csv_duplicates_and_side_rows_across_chunks(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (FIXTURES / "vendor" / "north_appointments_2026.csv").read_text(encoding="utf-8").splitlines()
    header, body = source[0], source[1:]
    changed = body[0].replace(",20,", ",45,") if ",20," in body[0] else body[0] + "x"
    text = "\n".join([header, *body, body[0], changed, "", *body]) + "\n"  # a blank line: the exact reader
    path = tmp_path / "dupes.csv"
    path.write_text(text, encoding="utf-8")
    whole = _compare(tmp_path, empty_warehouse_file, monkeypatch, csv_profile, "CHUNK_ROWS", [1, 2], path)
    assert whole["results"][0][6] >= 1  # the conflicting copy is rejected
    _compare(tmp_path, empty_warehouse_file, monkeypatch, csv_profile, "CHUNK_CHARS", [1, 200], path)


def test_queue_log_calls_in_chunks_give_the_whole_file_result(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.adapters import queue_log

    log = (FIXTURES / "phones" / "queue_log").read_text(encoding="utf-8")
    extra = "not a queue_log line\n1730462999|9.9|appointments|NONE|ENTERQUEUE||6175550100|1\n"  # a waiting call
    path = tmp_path / "queue_log"
    path.write_text(log + extra, encoding="utf-8")
    whole = _compare(tmp_path, empty_warehouse_file, monkeypatch, queue_log, "CHUNK_CALLS", [1, 2], path)
    assert whole["results"][0][6] >= 2 and any(r[9] and "6175550100" not in r[9] for r in whole["rejects"])


def test_queue_log_calls_released_early_give_the_whole_log_result(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call is handed on once its uniqueid queues again or has no later line; events after an
    end event, before the ENTERQUEUE, far away in the log, or uniqueids sharing a hash, give what
    holding every call until the end of the log gives."""
    from ingest.adapters import queue_log

    log = (FIXTURES / "phones" / "queue_log").read_text(encoding="utf-8")
    extra = (
        "1741020000|7.1|billing|NONE|ENTERQUEUE||6175550101|1\n"
        "1741020010|7.1|billing|NONE|ABANDON|1|1|10\n"
        "1741020005|8.1|nurse|Agent/1001|CONNECT|5|8.2|1\n"  # before its ENTERQUEUE (clock skew)
        "1741020000|8.1|nurse|NONE|ENTERQUEUE||6175550102|1\n"
        "1741020020|7.1|billing|Agent/2001|COMPLETECALLER|10|x|1\n"  # after the ABANDON: a bad calltime
        "1741020030|8.1|nurse|Agent/1001|COMPLETEAGENT|5|25|1\n"
        "1741020040|9.1|nurse|NONE|ENTERQUEUE||6175550103|1\n"
        "1741020050|9.1|nurse|NONE|EXITEMPTY|1|1|10\n"
        "1741020060|8.1|nurse|Agent/1002|RINGNOANSWER|1000\n"  # after the end: still its line
        "1741020070|9.1|nurse|NONE|ENTERQUEUE||6175550103|1\n"  # queues again: 9.1#2
        "1741020080|7.1|billing|NONE|CONNECT|60|7.3|1\n"
        "1741020090|9.1|nurse|NONE|ABANDON|1|1|20\n"
        "1741020095|1741014600.8|nurse|NONE|ABANDON|1|1|5\n"  # a call of the fixture ends far away
        "1741020050|6.1|billing|Agent/2001|CONNECT|0|6.2|1\n"  # answered before it entered: a schema rule
        "1741020100|6.1|billing|NONE|ENTERQUEUE||6175550104|1\n"
        "1741020110|6.1|billing|Agent/2001|COMPLETEAGENT|0|60|1\n"
        "1741020120|5.1|billing|NONE|ENTERQUEUE||6175550105|1\n"
    )
    path = tmp_path / "queue_log"
    path.write_text(log + extra, encoding="utf-8")
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    outcomes = []
    for name, last_lines, uid_hash in [
        ("held", lambda file: queue_log.np.zeros(0, dtype=bool), hash),  # every call held to the end
        ("released", queue_log._last_lines, hash),
        ("colliding", queue_log._last_lines, lambda uid: 0),
        ("pairs", queue_log._last_lines, len),
    ]:
        monkeypatch.setattr(queue_log, "_last_lines", last_lines)
        monkeypatch.setattr(queue_log, "_hash", uid_hash)
        for size in (WHOLE, 1):
            monkeypatch.setattr(queue_log, "CHUNK_CALLS", size)
            with _fresh(tmp_path, empty_warehouse_file, f"{name}{size}") as wh:
                outcomes.append(_outcome(wh, path))
    assert all(outcome == outcomes[0] for outcome in outcomes)
    rejected = {r[3]: r[9] for r in outcomes[0]["rejects"]}
    assert len(outcomes[0]["tables"]["calls"]) == 10 and len(rejected) == 5
    assert any(record and "|7.1|billing|NONE|CONNECT|60|7.3|1" in record for record in rejected.values())
    # rejected by the loader, not the adapter: its lines are found again by a replay
    assert any(record and "|6.1|billing|Agent/2001|COMPLETEAGENT|0|60|1" in record for record in rejected.values())


def test_asterisk_cdr_in_chunks_gives_the_whole_file_result(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CDR call log read in chunks of one and two lines: the same calls, rejects (with their true
    line numbers and the caller masked) and counts as one chunk."""
    from ingest.adapters import call_log

    def cdr(caller: str, start: str, disposition: str, uniqueid: str) -> str:
        return (
            f'"","{caller}","600","queues","""A Caller"" <{caller}>","SIP/trunk-1","SIP/agent7-2","Queue",'
            f'"appointments,t","2025-03-03 {start}","2025-03-03 {start}","2025-03-03 {start}",42,30,"{disposition}",'
            f'"DOCUMENTATION","{uniqueid}",""\n'
        )

    path = tmp_path / "Master.csv"
    path.write_text(
        cdr("5550000001", "10:00:00", "ANSWERED", "1.1")
        + '"too","few","fields"\n'
        + cdr("5550000002", "10:01:00", "HUNG UP", "1.2")  # an unknown disposition: rejected
        + "\n"
        + cdr("5550000003", "10:02:00", "NO ANSWER", "1.3")
        + cdr("5550000004", "10:03:00", "BUSY", "1.4"),
        encoding="utf-8",
    )
    whole = _compare(tmp_path, empty_warehouse_file, monkeypatch, call_log, "CHUNK_ROWS", [1, 2], path)
    assert whole["results"][0][2:7] == (5, 3, 0, 0, 2)  # read, inserted, updated, unchanged, rejected
    assert [(r[3], r[6]) for r in whole["rejects"]] == [(2, "field_count"), (3, "unknown_value")]
    masked = json.loads(whole["rejects"][1][9])
    assert masked["src"] == "***" and masked["disposition"] == "HUNG UP" and "5550000002" not in whole["rejects"][1][9]
