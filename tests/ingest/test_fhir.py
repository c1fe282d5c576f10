"""FHIR R4 NDJSON (a Bulk export folder) and JSON Bundles: expected canonical rows worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, key, load, load_one, records, rejects, rows

FHIR = FIXTURES / "fhir"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def by_file(results: list) -> dict:
    return {Path(r.path).stem: r for r in results}


def counts(r) -> tuple[int, ...]:  # noqa: ANN001 - FileResult
    return (r.read, r.inserted, r.updated, r.unchanged, r.waiting, r.rejected, r.ignored)


def test_bulk_export_folder_counts(warehouse: Warehouse) -> None:
    results = by_file(load(warehouse, FHIR))
    assert {name: counts(r) for name, r in results.items()} == {
        "Location": (2, 2, 0, 0, 0, 0, 0),
        "Practitioner": (3, 2, 0, 0, 0, 1, 0),
        "Patient": (0, 0, 0, 0, 0, 0, 2),
        "Schedule": (1, 1, 0, 0, 0, 0, 0),  # kept: its Slots resolve through it in any later run
        "Slot": (4, 4, 0, 0, 0, 0, 1),
        "Appointment": (8, 6, 0, 0, 0, 2, 0),
        "Encounter": (3, 2, 0, 0, 0, 1, 1),
        "ServiceRequest": (3, 3, 0, 0, 0, 0, 1),
        "DocumentReference": (2, 0, 1, 0, 1, 0, 1),  # the note of e404 waits for its encounter
        "Task": (4, 0, 3, 0, 1, 0, 1),  # the Task of r999 waits for its referral
    }
    assert results["Patient"].message == "ignored: 2 Patient resources (patient demographics are never stored)"
    assert results["Slot"].warnings == [
        "1 row(s) of slots refer to Schedule resources (or the Practitioner they name) not loaded yet "
        "(e.g. Schedule/elsewhere): their provider_id and location_id are filled in when the Schedule and "
        "Practitioner exports are loaded, in this or any later run; nothing needs loading again"
    ]
    assert "Practitioner/pr-9" in results["Appointment"].warnings[0]


def test_appointments(warehouse: Warehouse) -> None:
    load(warehouse, FHIR)
    got = {r["appointment_id"]: r for r in records(warehouse, "SELECT * FROM appointments")}
    assert set(got) == {"a1", "a2", "a3", "a4", "a5", "a8"}
    assert got["a1"] | {"ingest_run_id": None} == {
        "source": "fhir",
        "appointment_id": "a1",
        "location_id": "EAST",
        "provider_id": "1111111111",
        "patient_key": key("fhir", "pat-1"),
        "payer_id": None,
        "provider_ref": "Practitioner/pr-1",
        "payer_ref": None,
        "visit_type": "followup",
        "is_new_patient": False,
        "is_telehealth": False,
        "booked_at": utc(2025, 2, 20, 15),
        "scheduled_start": utc(2025, 3, 3, 14),
        "scheduled_minutes": 20,
        "status": "fulfilled",
        "status_source": "fulfilled",
        "cancelled_at": None,
        "cancel_initiator": None,
        "rebooked_from_id": None,
        "ingest_run_id": None,
    }
    summary = {
        a: (r["status"], r["status_source"], r["scheduled_minutes"], r["cancelled_at"], r["cancel_initiator"])
        for a, r in got.items()
    }
    assert summary == {
        "a1": ("fulfilled", "fulfilled", 20, None, None),
        "a2": ("noshow", "noshow", 30, None, None),  # minutes from start/end
        "a3": ("cancelled", "cancelled", 20, utc(2025, 3, 2, 23), "patient"),  # cancelled_at = meta.lastUpdated
        "a4": ("booked", "proposed", 20, None, None),
        "a5": ("arrived", "checked-in", 15, None, None),
        "a8": ("cancelled", "cancelled", 20, utc(2025, 3, 1, 14), "provider"),
    }
    assert (got["a2"]["is_new_patient"], got["a2"]["visit_type"], got["a2"]["provider_id"]) == (
        True,
        "routine",
        "2222222222",
    )
    assert (got["a4"]["rebooked_from_id"], got["a4"]["scheduled_start"]) == ("a3", utc(2025, 3, 10, 15))  # EDT
    assert got["a8"]["provider_id"] is None  # Practitioner/pr-9 was never exported


def test_appointment_rejects_are_masked(warehouse: Warehouse) -> None:
    result = by_file(load(warehouse, FHIR))["Appointment"]
    found = rejects(warehouse, result.run_id)
    assert [(r["position_kind"], r["position"], r["field"], r["reason"]) for r in found] == [
        ("line", 6, "scheduled_start", "the appointment has no start time, so it cannot be placed in a period"),
        (
            "line",
            7,
            "status",
            "Appointment status 'postponed' is not one of proposed, pending, waitlist, booked, arrived, checked-in, "
            "fulfilled, noshow, cancelled, entered-in-error",
        ),
    ]
    record = json.loads(found[0]["record_masked"])
    assert record["participant"][0]["actor"]["reference"] == f"Patient/{key('fhir', 'pat-2')}"


def test_encounter_timeline_and_chart_closure(warehouse: Warehouse) -> None:
    results = by_file(load(warehouse, FHIR))
    assert rows(
        warehouse,
        "SELECT encounter_id, appointment_id, location_id, provider_id, patient_key, is_telehealth, status, "
        "checked_in_at, roomed_at, provider_start_at, provider_end_at, checked_out_at, chart_closed_at "
        "FROM encounters ORDER BY 1",
    ) == [
        (
            "e1",
            "a1",
            "EAST",
            "1111111111",
            key("fhir", "pat-1"),
            False,
            "finished",
            utc(2025, 3, 3, 14, 2),
            utc(2025, 3, 3, 14, 10),  # statusHistory triaged start
            utc(2025, 3, 3, 14, 20),  # in-progress start
            utc(2025, 3, 3, 14, 40),  # in-progress end
            utc(2025, 3, 3, 14, 48),
            utc(2025, 3, 3, 20, 0),  # the final DocumentReference's date
        ),
        # telehealth, provider from a conditional reference by NPI
        (
            "e2",
            None,
            None,
            "2222222222",
            key("fhir", "pat-2"),
            True,
            "finished",
            utc(2025, 3, 4, 18),
            None,
            None,
            None,
            utc(2025, 3, 4, 18, 20),
            None,
        ),
    ]
    (bad,) = rejects(warehouse, results["Encounter"].run_id)
    assert bad["reason"] == "check-out at 2025-03-05 09:30 is before check-in at 2025-03-05 10:00"
    # the note of an encounter not loaded waits for it, rejected for nothing
    assert rejects(warehouse, results["DocumentReference"].run_id) == []
    assert rows(
        warehouse, "SELECT table_name, writer, record_key, file_path, position FROM waiting_rows ORDER BY 1"
    ) == [
        ("encounters", "chart", "fhir\x1fe404", str(FHIR / "DocumentReference.ndjson"), 3),
        ("referrals", "stages", "fhir\x1fr999", str(FHIR / "Task.ndjson"), 3),
    ]


def test_referrals_from_service_request_and_task(warehouse: Warehouse) -> None:
    results = by_file(load(warehouse, FHIR))
    assert rows(
        warehouse,
        "SELECT referral_id, patient_key, referring_provider_id, location_id, specialty, priority, created_at, "
        "sent_at, scheduled_at, seen_at, report_received_at, status, status_source FROM referrals ORDER BY 1",
    ) == [
        (
            "r1",
            key("fhir", "pat-1"),
            "1111111111",
            "EAST",
            "Cardiology",
            "routine",
            utc(2025, 3, 3, 14, 30),
            utc(2025, 3, 4, 15),
            utc(2025, 3, 10, 14),
            utc(2025, 3, 20, 14),
            utc(2025, 3, 25, 14),
            "closed",
            "active",
        ),
        # revoked stays cancelled whatever stage its Task reached
        (
            "r2",
            key("fhir", "pat-2"),
            "2222222222",
            "WEST",
            "Dermatology",
            "urgent",
            utc(2025, 3, 4, 14, 30),
            utc(2025, 3, 5, 15),
            None,
            None,
            None,
            "cancelled",
            "revoked",
        ),
        # created, never sent: its Task has no stage yet but names the referring location
        (
            "r4",
            key("fhir", "pat-1"),
            "1111111111",
            "EAST",
            "Neurology",
            "routine",
            utc(2025, 3, 6, 14, 30),
            None,
            None,
            None,
            None,
            "created",
            "active",
        ),
    ]
    assert rejects(warehouse, results["Task"].run_id) == []  # the Task of r999 waits for its referral
    assert results["Task"].waiting == 1


def test_slots(warehouse: Warehouse) -> None:
    load(warehouse, FHIR)
    assert rows(
        warehouse,
        "SELECT slot_id, provider_id, location_id, visit_type, start_at, minutes, status, status_source "
        "FROM slots ORDER BY 1",
    ) == [
        ("s1", "1111111111", "EAST", "routine", utc(2025, 3, 3, 14), 20, "free", "free"),
        ("s2", "1111111111", "EAST", None, utc(2025, 3, 3, 14, 20), 20, "blocked", "busy-unavailable"),
        ("s3", "1111111111", "EAST", None, utc(2025, 3, 10, 13), 30, "tentative", "busy-tentative"),
        ("s5", None, None, None, utc(2025, 3, 11, 13), 15, "busy", "busy"),
    ]


def test_references_resolve_within_one_call_even_when_a_file_is_skipped(warehouse: Warehouse) -> None:
    load_one(warehouse, FHIR / "Practitioner.ndjson")
    # a later call with the same practitioner file (skipped: same content) and the appointments
    results = by_file(load(warehouse, FHIR / "Practitioner.ndjson", FHIR / "Appointment.ndjson"))
    assert results["Practitioner"].status == "skipped"
    assert rows(warehouse, "SELECT provider_id FROM appointments WHERE appointment_id = 'a1'") == [("1111111111",)]


def test_appointments_alone_leave_the_provider_empty_and_say_so(warehouse: Warehouse) -> None:
    result = load_one(warehouse, FHIR / "Appointment.ndjson")
    assert result.inserted == 6
    assert result.warnings[0].startswith(
        "6 row(s) of appointments refer to Practitioner resources not loaded yet (e.g. Practitioner/pr-1): their "
        "provider_id is filled in when the Practitioner export is loaded"
    )
    assert rows(warehouse, "SELECT count(*) FROM appointments WHERE provider_id IS NOT NULL") == [(0,)]


def _appointment_before_its_practitioner() -> dict:
    """A Bundle holding an Appointment before the Practitioner it refers to (fixture resources)."""
    appointment = json.loads((FHIR / "Appointment.ndjson").read_text().splitlines()[0])
    practitioner = json.loads((FHIR / "Practitioner.ndjson").read_text().splitlines()[0])
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": appointment}, {"resource": practitioner}],
    }


def test_bundle_document_orders_its_resources(warehouse: Warehouse, tmp_path: Path) -> None:
    """A Bundle holds its Appointment before the Practitioner it refers to; both load, resolved."""
    bundle = _appointment_before_its_practitioner()
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, indent=2))
    result = load_one(warehouse, path)
    assert (result.adapter, result.read, result.inserted) == ("fhir", 2, 2)
    assert rows(warehouse, "SELECT appointment_id, provider_id FROM appointments") == [("a1", "1111111111")]


def test_a_bundle_on_one_line_is_a_document_not_ndjson(warehouse: Warehouse, tmp_path: Path) -> None:
    """A Bundle written compactly (one line, a newline after it) was read as NDJSON: its entries
    were not loaded ("ignored: 1 Bundle resources", read 0). It is a document; two such lines are
    not one, and say so in one line."""
    bundle = _appointment_before_its_practitioner()
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle) + "\n")
    result = load_one(warehouse, path)
    assert (result.adapter, result.read, result.inserted, result.ignored) == ("fhir", 2, 2, 0)
    assert rows(warehouse, "SELECT appointment_id, provider_id FROM appointments") == [("a1", "1111111111")]
    two = tmp_path / "bundles.ndjson"
    two.write_text(json.dumps(bundle) + "\n" + json.dumps(bundle) + "\n")
    result = load_one(warehouse, two)
    assert result.status == "failed"
    assert result.message.startswith(f"{two}: line 2, column 1: not valid JSON (Extra data)")


def test_invalid_json_is_a_clear_error(warehouse: Warehouse, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"resourceType": "Appointment",\n  "id": "x",\n  "status": \n}')
    result = load_one(warehouse, path)
    assert result.status == "failed"
    assert result.message == (
        f"{path}: line 4, column 1: not valid JSON (Expecting value); expected FHIR NDJSON or a JSON resource or Bundle"
    )


def test_a_bad_ndjson_line_is_quarantined(warehouse: Warehouse, tmp_path: Path) -> None:
    lines = (FHIR / "Location.ndjson").read_text().splitlines()
    path = tmp_path / "Location.ndjson"
    path.write_text("\n".join([lines[0], '{"resourceType": "Location", "id": "X"', lines[1]]) + "\n")
    result = load_one(warehouse, path)
    assert (result.read, result.inserted, result.rejected) == (3, 2, 1)
    (bad,) = rejects(warehouse, result.run_id)
    assert (bad["position"], bad["check_name"]) == (2, "invalid_json")


def test_json_nested_too_deeply_is_an_error_or_a_reject_not_a_traceback(warehouse: Warehouse, tmp_path: Path) -> None:
    """Issue 19 item 8: Python's JSON reader recursed past its limit in format detection, and the
    RecursionError aborted the whole command, the other files included."""
    deep = "[" * 100_000 + "]" * 100_000
    document = tmp_path / "deep.json"
    document.write_text('{"resourceType": "Appointment", "x": ' + deep + "}")
    ndjson = tmp_path / "deep" / "Appointment.ndjson"
    ndjson.parent.mkdir()
    good = (FHIR / "Appointment.ndjson").read_text().splitlines()[0]
    ndjson.write_text(good + '\n{"resourceType": "Appointment", "id": "deep", "x": ' + deep + "}\n")
    whole, lines, other = load(warehouse, document, ndjson, FIXTURES / "portal" / "portal_messages.csv")
    assert whole.status == "failed" and "nested too deeply to read" in whole.message
    assert (lines.status, lines.inserted, lines.rejected) == ("succeeded", 1, 1)
    (bad,) = rejects(warehouse, lines.run_id)
    assert (bad["position"], bad["reason"]) == (2, "the line is not valid JSON (nested too deeply to read)")
    assert other.status == "succeeded"


def test_encounter_status_unknown_is_ignored_and_v2_outpatient_class_is_a_clinic_visit(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """R4 allows status `unknown` (the EHR cannot say whether the visit happened): it is left out
    like other non-visits, never rejected. Class `O` from HL7 v2 table 0004 (outpatient, as one
    large EHR vendor exports it) is an in-person clinic visit like v3 AMB; v2 `I` (inpatient) is not."""

    def encounter(i: int, status: str, klass: dict) -> str:
        period = {"start": "2026-03-02T09:00:00-05:00", "end": "2026-03-02T09:40:00-05:00"}
        return json.dumps(
            {"resourceType": "Encounter", "id": f"e{i}", "status": status, "class": klass, "period": period}
        )

    v2 = "http://terminology.hl7.org/CodeSystem/v2-0004"
    path = tmp_path / "Encounter.ndjson"
    lines = [
        encounter(1, "unknown", {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}),
        encounter(2, "finished", {"system": v2, "code": "O"}),
        encounter(3, "finished", {"code": "O"}),
        encounter(4, "finished", {"system": v2, "code": "I"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    result = load_one(warehouse, path)
    assert (result.read, result.inserted, result.rejected, result.ignored) == (2, 2, 0, 2)
    assert "1 encounters of status unknown (not known to be a visit)" in result.message
    got = rows(warehouse, "SELECT encounter_id, status, is_telehealth FROM encounters ORDER BY 1")
    assert got == [("e2", "finished", False), ("e3", "finished", False)]
