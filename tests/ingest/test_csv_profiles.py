"""CSV exports through the shipped profiles: hand-made files, expected canonical rows worked out by hand.

The practice zone is the default America/New_York: EST (UTC-5) until 2025-03-09, EDT (UTC-4) after.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ingest.adapters import csv_profile
from ingest.adapters.csv_profile import ProfileError, load_profile, shipped_profiles
from ingest.run import available_profiles
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, key, load_one, records, rejects, rows

VENDOR_2025 = FIXTURES / "vendor" / "north_appointments_2025.csv"
VENDOR_2026 = FIXTURES / "vendor" / "north_appointments_2026.csv"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_vendor_appointments_rows(warehouse: Warehouse) -> None:
    result = load_one(warehouse, VENDOR_2025)
    assert (result.status, result.adapter) == ("succeeded", "csv:vendor_appointments")
    assert (result.read, result.inserted, result.updated, result.unchanged, result.rejected) == (7, 4, 0, 0, 3)

    got = {r["appointment_id"]: r for r in records(warehouse, "SELECT * FROM appointments")}
    assert set(got) == {"V1", "V2", "V3", "V4"}
    v1 = got["V1"]
    assert v1 | {"ingest_run_id": None} == {
        "source": "csv:vendor_appointments",
        "appointment_id": "V1",
        "location_id": "NORTH",
        "provider_id": "3333333333",
        "patient_key": key("north", "MRN001"),
        "payer_id": None,  # ACME01 is no payer the warehouse knows yet: filled in when a claim file brings it
        "payer_ref": "ACME01",
        "provider_ref": None,
        "visit_type": "routine",
        "is_new_patient": True,
        "is_telehealth": False,
        "booked_at": utc(2025, 3, 1, 15, 0),  # 10:00 AM EST
        "scheduled_start": utc(2025, 3, 14, 13, 30),  # 9:30 AM EDT
        "scheduled_minutes": 20,
        "status": "fulfilled",
        "status_source": "Checked Out",
        "cancelled_at": None,
        "cancel_initiator": None,
        "rebooked_from_id": None,
        "ingest_run_id": None,
    }
    assert (got["V2"]["status"], got["V2"]["scheduled_start"], got["V2"]["visit_type"]) == (
        "booked",
        utc(2025, 12, 30, 19, 0),
        "followup",
    )
    v3 = got["V3"]
    assert (v3["status"], v3["cancelled_at"], v3["cancel_initiator"], v3["visit_type"]) == (
        "cancelled",
        utc(2025, 3, 14, 19, 0),
        "patient",
        "checkup",
    )
    assert got["V4"]["rebooked_from_id"] == "V3"

    (visit,) = records(warehouse, "SELECT * FROM encounters")
    assert visit | {"ingest_run_id": None} == {
        "source": "csv:vendor_appointments",
        "encounter_id": "V1",
        "appointment_id": "V1",
        "location_id": "NORTH",
        "provider_id": "3333333333",
        "patient_key": key("north", "MRN001"),
        "is_telehealth": False,
        "status": "finished",
        "checked_in_at": utc(2025, 3, 14, 13, 25),
        "roomed_at": utc(2025, 3, 14, 13, 35),
        "provider_start_at": utc(2025, 3, 14, 13, 45),
        "provider_end_at": utc(2025, 3, 14, 14, 5),
        "checked_out_at": utc(2025, 3, 14, 14, 15),
        "chart_closed_at": None,
        "provider_ref": None,
        "ingest_run_id": None,
    }
    assert result.warnings == [
        "4 row(s) of appointments refer to payers not loaded yet (e.g. ACME01): their payer_id is filled in when "
        "a file that adds it to payers is loaded, in this or any later run; nothing needs loading again"
    ]
    assert rows(warehouse, "SELECT provider_id, npi, name FROM providers") == [
        ("3333333333", "3333333333", "Dr Ada Lovelace")
    ]
    assert rows(warehouse, "SELECT location_id FROM locations") == [("NORTH",)]


def test_vendor_rejects_say_why(warehouse: Warehouse) -> None:
    result = load_one(warehouse, VENDOR_2025)
    found = [(r["position"], r["field"], r["check_name"], r["reason"]) for r in rejects(warehouse, result.run_id)]
    assert found == [
        (6, "scheduled_start", "required", "the appointment has no start time, so it cannot be placed in a period"),
        (
            7,
            "checked_out_at",
            "rule_checked_out_at",
            "check-out at 2025-03-16 10:50 is before check-in at 2025-03-16 11:00",
        ),
        (
            8,
            "appointment_id",
            "duplicate_conflict",
            "appointment_id V1 appears earlier in this file (line 2) with different values "
            "(status: noshow vs fulfilled, status_source: No Show vs Checked Out); the later occurrence is not loaded",
        ),
    ]
    # the rejected visit's appointment is not loaded either: a record is accepted or rejected whole
    assert rows(warehouse, "SELECT count(*) FROM appointments WHERE appointment_id = 'V6'") == [(0,)]


def test_overlapping_later_export_updates_changed_records(warehouse: Warehouse) -> None:
    load_one(warehouse, VENDOR_2025)
    before = {r[0]: r[1:] for r in rows(warehouse, "SELECT appointment_id, status, ingest_run_id FROM appointments")}
    later = load_one(warehouse, VENDOR_2026)
    # V2 Scheduled -> No Show, V4 Scheduled -> Checked Out (and its visit appears), V7 is new
    assert (later.read, later.inserted, later.updated, later.unchanged, later.rejected) == (3, 1, 2, 0, 0)
    after = {r[0]: r[1:] for r in rows(warehouse, "SELECT appointment_id, status, ingest_run_id FROM appointments")}
    assert after["V2"] == ("noshow", later.run_id)
    assert after["V4"] == ("fulfilled", later.run_id)
    assert after["V7"] == ("arrived", later.run_id)
    assert after["V1"] == before["V1"] and after["V3"] == before["V3"]  # untouched, lineage kept
    assert rows(warehouse, "SELECT encounter_id, status, checked_in_at FROM encounters ORDER BY 1") == [
        ("V1", "finished", utc(2025, 3, 14, 13, 25)),
        ("V4", "finished", utc(2025, 12, 31, 15, 55)),
        ("V7", "arrived", utc(2026, 1, 5, 12, 58)),
    ]


def test_synthea_transactions_ledger(warehouse: Warehouse) -> None:
    result = load_one(warehouse, FIXTURES / "billing" / "north_transactions.csv")
    assert (result.read, result.inserted, result.rejected, result.ignored) == (4, 3, 1, 3)
    # the run record reconciles with the file's 7 data lines: read 4 + ignored 3
    run = rows(warehouse, f"SELECT rows_read, rows_ignored FROM ingest_runs WHERE run_id = {result.run_id}")
    assert run == [(4, 3)]
    assert "2 balance transfers between payer and patient" in result.message
    assert "1 payments of 0.00 with no adjustment" in result.message
    got = rows(
        warehouse,
        "SELECT entry_id, claim_id, patient_key, location_id, provider_id, service_date, posted_date, entry_type, "
        "party, amount, group_code, reason_code FROM ledger ORDER BY entry_id",
    )
    patient = key("north", "MRN001")
    common = ("CL1", patient, "NORTH", "3333333333", date(2025, 3, 14))
    assert got == [
        ("synthea:T1", *common, date(2025, 3, 15), "charge", None, Decimal("200.00"), None, None),
        ("synthea:T2", *common, date(2025, 4, 20), "payment", "payer", Decimal("120.00"), None, None),
        ("synthea:T2:adjustment", *common, date(2025, 4, 20), "adjustment", None, Decimal("50.00"), "CO", "45"),
        ("synthea:T5", *common, date(2025, 5, 2), "payment", "patient", Decimal("30.00"), None, None),
    ]
    bad, *more = rejects(warehouse, result.run_id)
    assert (bad["position"], bad["field"], bad["reason"]) == (
        8,
        "AMOUNT",
        "AMOUNT '1O0.00' is not an amount like 1234.56",
    )
    assert [(r["position"], r["check_name"]) for r in more] == [(8, "required")]  # every failure is kept


def test_portal_messages(warehouse: Warehouse) -> None:
    result = load_one(warehouse, FIXTURES / "portal" / "portal_messages.csv")
    assert (result.read, result.inserted, result.rejected) == (4, 3, 1)
    assert rows(
        warehouse,
        "SELECT message_id, thread_id, patient_key, location_id, provider_id, category, received_at, first_response_at "
        "FROM portal_messages ORDER BY 1",
    ) == [
        (
            "M1",
            "TH1",
            key("portal", "MRN001"),
            "EAST",
            "1111111111",
            "refill",
            utc(2025, 3, 3, 13, 15),
            utc(2025, 3, 3, 16),
        ),
        ("M2", "TH2", key("portal", "MRN002"), "WEST", "2222222222", "question", utc(2025, 3, 7, 21, 30), None),
        # no offset: a local time of the practice (EDT)
        ("M4", "TH1", key("portal", "MRN001"), "EAST", "1111111111", "refill", utc(2025, 3, 11, 13), None),
    ]
    (bad,) = rejects(warehouse, result.run_id)
    assert (
        bad["reason"]
        == "the first staff reply at 2025-03-10 08:00 is before the message was received at 2025-03-10 09:00"
    )


def test_referrals_csv(warehouse: Warehouse) -> None:
    result = load_one(warehouse, FIXTURES / "referrals" / "referrals.csv")
    assert (result.read, result.inserted, result.rejected) == (3, 2, 1)
    assert rows(
        warehouse, "SELECT referral_id, status, status_source, sent_at, report_received_at FROM referrals ORDER BY 1"
    ) == [
        ("RF1", "closed", "Report Received", utc(2025, 3, 4, 15), utc(2025, 3, 25, 14)),
        ("RF2", "cancelled", "cancelled", None, None),
    ]
    (bad,) = rejects(warehouse, result.run_id)
    assert bad["reason"].startswith("priority 'soon' is not one of the words profile referrals knows (routine, ")


def test_every_mapped_status_word_is_a_canonical_status() -> None:
    """The mapping is data: each word maps to a value the schema allows (Tuva's slip, prevented)."""
    allowed = {
        ("appointments", "status"): {"booked", "arrived", "fulfilled", "noshow", "cancelled", "entered_in_error"},
        ("appointments", "cancel_initiator"): {"patient", "provider", "practice", "other"},
        ("referrals", "status"): {"created", "sent", "scheduled", "seen", "closed", "cancelled"},
        ("referrals", "priority"): {"routine", "urgent", "asap", "stat"},
        ("ledger", "party"): {"payer", "patient"},
        ("payers", "payer_class"): {"commercial", "medicare", "medicaid", "self_pay", "other"},
    }
    checked = 0
    for profile in shipped_profiles():
        for out in profile.outputs:
            for column, spec in out.columns.items():
                for s in (spec, *spec.first):
                    if s.mapping is not None and (out.table, column) in allowed:
                        assert set(s.mapping.values()) <= allowed[(out.table, column)], (profile.name, column)
                        checked += 1
    assert checked >= 6


def test_profile_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "mine.toml"
    bad.write_text(
        '[[output]]\ntable = "appointments"\n[output.columns]\nappointment_id = { column = "Id", fromat = "x" }\n'
    )
    with pytest.raises(ProfileError, match=r"mine.toml: \[\[output\]\] 1 appointments.appointment_id: unknown key"):
        load_profile(bad)
    bad.write_text('[[output]]\ntable = "appointmentz"\n[output.columns]\nx = "y"\n')
    with pytest.raises(ProfileError, match="'appointmentz' is not a warehouse table"):
        load_profile(bad)


def test_a_practice_adds_its_own_profile(warehouse: Warehouse, tmp_path: Path) -> None:
    """A new system needs a profile, not code: point `--format csv:` at it."""
    profile = tmp_path / "acme_pm.toml"
    profile.write_text(
        '[profile]\npatient_system = "acme"\ndelimiter = ";"\n'
        '[[output]]\ntable = "appointments"\n[output.columns]\n'
        'appointment_id = "Nr"\npatient_key = { column = "Pat", pseudonymize = true }\n'
        'scheduled_start = { column = "Wann", format = "%d.%m.%Y %H:%M" }\n'
        'status = { column = "Stand", map = { "erschienen" = "fulfilled", "nicht erschienen" = "noshow" } }\n'
    )
    data = tmp_path / "export.csv"
    data.write_text("Nr;Pat;Wann;Stand\n1;P9;03.03.2025 09:00;erschienen\n2;P9;04.03.2025 09:00;nicht erschienen\n")
    result = load_one(warehouse, data, fmt=f"csv:{profile}")
    assert (result.inserted, result.adapter) == (2, "csv:acme_pm")
    assert rows(warehouse, "SELECT source, appointment_id, status, scheduled_start FROM appointments ORDER BY 2") == [
        ("csv:acme_pm", "1", "fulfilled", utc(2025, 3, 3, 14)),
        ("csv:acme_pm", "2", "noshow", utc(2025, 3, 4, 14)),
    ]


def test_vendor_insurance_names_resolve_to_the_claims_payers(warehouse: Warehouse, tmp_path: Path) -> None:
    """The vendor export names the plan; the 837 introduced the payer id behind that name."""
    load_one(warehouse, FIXTURES / "x12" / "claims_2025-03.837")  # payer ACME01 "ACME HEALTH"
    lines = VENDOR_2025.read_text().splitlines()
    export = tmp_path / "north.csv"
    export.write_text(
        "\n".join([lines[0], lines[1].replace(",ACME01,", ",Acme Health,"), lines[2].replace(",ACME01,", ",Self Pay,")])
    )
    result = load_one(warehouse, export)
    assert result.inserted == 2
    assert rows(warehouse, "SELECT appointment_id, payer_id FROM appointments ORDER BY 1") == [
        ("V1", "ACME01"),
        ("V2", "Self Pay"),
    ]
    assert rows(warehouse, "SELECT payer_id, payer_class FROM payers ORDER BY 1") == [
        ("ACME01", "commercial"),
        ("Self Pay", "self_pay"),
    ]


def test_synthea_patient_balance_adjustment_is_a_write_off(warehouse: Warehouse, tmp_path: Path) -> None:
    """A patient balance adjusted off without payment (ADJUSTMENT, TRANSFERTYPE p, method SYSTEM) is
    bad debt: a `writeoff`, out of A/R, never a contractual adjustment."""
    header, charge, *_ = (FIXTURES / "billing" / "north_transactions.csv").read_text().splitlines()
    fields = charge.split(",")
    columns = header.split(",")
    fields[columns.index("ID")], fields[columns.index("TYPE")], fields[columns.index("AMOUNT")] = "T8", "ADJUSTMENT", ""
    fields[columns.index("METHOD")], fields[columns.index("TRANSFERTYPE")] = "SYSTEM", "p"
    fields[columns.index("ADJUSTMENTS")], fields[columns.index("POSTDATE")] = "45.50", "2025-08-01"
    path = tmp_path / "transactions.csv"
    path.write_text("\n".join([header, charge, ",".join(fields)]) + "\n")
    result = load_one(warehouse, path)
    assert (result.read, result.inserted, result.rejected) == (2, 2, 0)
    got = rows(warehouse, "SELECT entry_id, entry_type, party, amount, posted_date FROM ledger ORDER BY 1")
    assert got[1] == ("synthea:T8", "writeoff", "patient", Decimal("45.50"), date(2025, 8, 1))


SYNTHEA_CLAIMS_HEADER = (
    "Id,PATIENTID,PROVIDERID,PRIMARYPATIENTINSURANCEID,DEPARTMENTID,SERVICEDATE,LASTBILLEDDATE1,LASTBILLEDDATEP"
)


def test_a_warehouse_only_column_is_computed_again_only_after_a_run_that_wrote_what_it_depends_on(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Synthea claims' billed amount is the sum of the ledger export's charges (`depends_on`): an
    X12 file's ledger entries do not make every such claim computed again (a scan of the
    warehouse per file); a ledger export's charges, loaded before or after, do."""
    claims = tmp_path / "north_claims.csv"
    claims.write_text(
        f"{SYNTHEA_CLAIMS_HEADER}\n"
        "CL1,MRN001,3333333333,INS1,NORTH,2025-03-14T14:30:00Z,2025-03-15T12:00:00Z,\n"
        "CL2,MRN002,3333333333,INS1,NORTH,2025-03-20T14:30:00Z,2025-03-21T12:00:00Z,\n"
    )
    billed = "SELECT claim_id, billed_amount FROM claims WHERE source = 'csv:synthea_claims' ORDER BY 1"
    assert load_one(warehouse, claims).status == "succeeded"
    assert rows(warehouse, billed) == [("CL1", Decimal("0.00")), ("CL2", Decimal("0.00"))]
    transactions = FIXTURES / "billing" / "north_transactions.csv"
    load_one(warehouse, transactions)  # CL1's charge T1, 200.00: computed again
    assert rows(warehouse, billed) == [("CL1", Decimal("200.00")), ("CL2", Decimal("0.00"))]
    # a value the rule would not give, to see whether an X12 file makes it computed again
    warehouse.cursor().execute("UPDATE claims SET billed_amount = 1 WHERE claim_id = 'CL2'")
    assert load_one(warehouse, FIXTURES / "x12" / "remits_ACME01_2025-04.835").status == "succeeded"
    assert load_one(warehouse, FIXTURES / "x12" / "claims_2025-03.837").status == "succeeded"
    assert rows(warehouse, billed) == [("CL1", Decimal("200.00")), ("CL2", Decimal("1.00"))]
    changed = tmp_path / "north_transactions.csv"  # the export again, T1 now 250.00
    changed.write_text(transactions.read_text().replace("CHARGE,200.00", "CHARGE,250.00", 1))
    load_one(warehouse, changed)
    assert rows(warehouse, billed) == [("CL1", Decimal("250.00")), ("CL2", Decimal("0.00"))]


@pytest.mark.parametrize("order", ["claims first", "claims between", "claims last"])
def test_a_synthea_claims_billed_amount_follows_entries_that_move_or_stop_being_charges(
    warehouse: Warehouse, tmp_path: Path, order: str
) -> None:
    """A later transactions export moves charge T1 from CL1 to CL2 and turns charge T9 into a
    payment: CL1's amount drops to 0 although no row of that export names CL1 any more, and CL2's
    is T1's alone; in whichever order the claims and the two exports arrive. (Only the claims whose
    amount is not the sum of their charges are computed again after an export: restricting that to
    the claims the export's rows name would leave CL1 at 200.00.)"""
    header, charge, *_ = (FIXTURES / "billing" / "north_transactions.csv").read_text().splitlines()
    columns = header.split(",")

    def entry(entry_id: str, claim: str, kind: str, amount: str, posted: str) -> str:
        fields = charge.split(",")
        fields[columns.index("ID")], fields[columns.index("CLAIMID")] = entry_id, claim
        fields[columns.index("TYPE")], fields[columns.index("POSTDATE")] = kind, posted
        fields[columns.index("AMOUNT")] = amount if kind == "CHARGE" else ""
        fields[columns.index("PAYMENTS")] = "0.00" if kind == "CHARGE" else amount
        return ",".join(fields)

    first, later = tmp_path / "transactions_1.csv", tmp_path / "transactions_2.csv"
    for path, entries in (
        (
            first,
            [entry("T1", "CL1", "CHARGE", "200.00", "2025-03-15"), entry("T9", "CL2", "CHARGE", "90.00", "2025-03-21")],
        ),
        (
            later,
            [
                entry("T1", "CL2", "CHARGE", "200.00", "2025-06-01"),
                entry("T9", "CL2", "PAYMENT", "90.00", "2025-06-01"),
            ],
        ),
    ):
        path.write_text("\n".join([header, *entries]) + "\n")
    claims = tmp_path / "north_claims.csv"
    claims.write_text(
        f"{SYNTHEA_CLAIMS_HEADER}\n"
        "CL1,MRN001,3333333333,INS1,NORTH,2025-03-14T14:30:00Z,2025-03-15T12:00:00Z,\n"
        "CL2,MRN002,3333333333,INS1,NORTH,2025-03-20T14:30:00Z,2025-03-21T12:00:00Z,\n"
    )
    files = {"claims first": [claims, first, later], "claims between": [first, claims, later]}
    for path in files.get(order, [first, later, claims]):
        assert load_one(warehouse, path).status == "succeeded"
    billed = "SELECT claim_id, billed_amount FROM claims WHERE source = 'csv:synthea_claims' ORDER BY 1"
    assert rows(warehouse, billed) == [("CL1", Decimal("0.00")), ("CL2", Decimal("200.00"))]
    entries = "SELECT entry_id, claim_id, entry_type FROM ledger ORDER BY 1"
    assert rows(warehouse, entries) == [("synthea:T1", "CL2", "charge"), ("synthea:T9", "CL2", "payment")]


def test_depends_on_names_a_table_the_column_reads(tmp_path: Path) -> None:
    bad = tmp_path / "mine.toml"
    bad.write_text(
        '[[output]]\ntable = "claims"\n[output.columns]\nbilled_amount = { warehouse_sql = '
        '"(SELECT sum(amount) FROM main.ledger l WHERE l.claim_id = row.claim_id)", '
        'depends_on = { remittances = "TRUE" } }\n'
    )
    with pytest.raises(ProfileError, match=r"depends_on: \[.remittances.\] not read by its warehouse_sql"):
        load_profile(bad)


def test_the_shipped_profiles_are_parsed_once_per_process(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `ingest_paths` call reads the profiles (one call per uploaded file, or per file in
    `benchmarks.ingest_profile`): their text is read again, but parsed only when it is new."""
    parsed: list[int] = []
    loads = csv_profile.tomllib.loads

    def counting(text: str) -> dict:
        parsed.append(len(text))
        return loads(text)

    monkeypatch.setattr(csv_profile.tomllib, "loads", counting)
    first = available_profiles(warehouse.config)
    parsed.clear()
    again = available_profiles(warehouse.config)
    assert parsed == []
    assert [p.name for p in again] == [p.name for p in first] and len(again) == len(
        list(csv_profile.resources.files("ingest.profiles").glob("*.toml"))
    )
    assert load_one(warehouse, VENDOR_2025).status == "succeeded"
    assert parsed == []


def test_a_profile_edited_between_two_loads_in_one_process_is_used(warehouse: Warehouse, tmp_path: Path) -> None:
    """A practice's profile is read at every call: the edit made after the first file's load maps the
    second's rows, even when the file's size and mtime did not change (the parse is kept by content)."""
    mine = tmp_path / "mine.toml"
    shipped = (Path(csv_profile.__file__).parent.parent / "profiles" / "vendor_appointments.toml").read_text()
    assert 'location_id = { value = "NORTH" }' in shipped
    mine.write_text(shipped)
    stat = mine.stat()
    assert load_one(warehouse, VENDOR_2025, fmt=f"csv:{mine}").status == "succeeded"
    mine.write_text(shipped.replace('location_id = { value = "NORTH" }', 'location_id = { value = "SOUTH" }'))
    os.utime(mine, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert mine.stat().st_size == stat.st_size and mine.stat().st_mtime_ns == stat.st_mtime_ns
    assert load_one(warehouse, VENDOR_2026, fmt=f"csv:{mine}").status == "succeeded"
    got = dict(rows(warehouse, "SELECT appointment_id, location_id FROM appointments"))
    # the 2026 export holds V2 and V4 again (newer versions) and V7: all three mapped by the edit
    assert got == {"V1": "NORTH", "V2": "SOUTH", "V3": "NORTH", "V4": "SOUTH", "V7": "SOUTH"}
