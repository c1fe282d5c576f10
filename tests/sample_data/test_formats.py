"""Each export is valid in its own format, checked by tools that are not the writer."""

from __future__ import annotations

import csv
import importlib
import io
import json
import logging
import re
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sample_data.fake import npi_is_valid
from sample_data.writers.csv_files import PORTAL_COLUMNS, SYNTHEA_COLUMNS, VENDOR_COLUMNS


def test_every_fhir_resource_parses_with_fhir_resources_r4b(small: Path) -> None:
    files = sorted((small / "fhir").glob("*.ndjson"))
    assert {f.stem for f in files} >= {
        "Patient",
        "Practitioner",
        "Location",
        "Appointment",
        "Encounter",
        "Slot",
        "Schedule",
        "ServiceRequest",
        "Task",
        "DocumentReference",
    }
    for path in files:
        model = getattr(importlib.import_module(f"fhir.resources.R4B.{path.stem.lower()}"), path.stem)
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines, path.name
        for n, line in enumerate(lines, start=1):
            try:
                resource = model.model_validate_json(line)
            except Exception as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{path.name} line {n}: {exc}")
            assert resource.get_resource_type() == path.stem


def test_fhir_identifiers_follow_the_contract(small: Path) -> None:
    practitioners = [json.loads(x) for x in (small / "fhir" / "Practitioner.ndjson").read_text().splitlines()]
    npis = [i["value"] for p in practitioners for i in p["identifier"] if i["system"].endswith("us-npi")]
    assert len(npis) == len(practitioners) and all(npi_is_valid(n) for n in npis)
    locations = [json.loads(x)["id"] for x in (small / "fhir" / "Location.ndjson").read_text().splitlines()]
    assert locations == ["EAST", "WEST", "NORTH"]
    patients = [json.loads(x) for x in (small / "fhir" / "Patient.ndjson").read_text().splitlines()[:50]]
    # realistic-looking direct identifiers exist in the export, so ingest's pseudonymization is exercised
    assert all(p["name"][0]["family"] and p["birthDate"] and p["telecom"][0]["value"] for p in patients)


def _pyx12_errors(path: Path) -> tuple[bool, list[str]]:
    import pyx12.params
    import pyx12.x12n_document

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    out = io.StringIO()
    ok = pyx12.x12n_document.x12n_document(pyx12.params.params(), str(path), None, None, fd_json=out)
    return ok, re.findall(r'"err_str": "([^"]*)"', out.getvalue())


def test_x12_files_pass_pyx12_validation(small: Path) -> None:
    claims = sorted((small / "billing").glob("claims_*.837"))
    remits = sorted((small / "billing").glob("remits_*.835"))
    assert len(claims) == 3 and len(remits) >= 5
    for path in [claims[0], *remits]:
        ok, errors = _pyx12_errors(path)
        assert ok and not errors, (path.name, errors[:5])


def test_pyx12_check_is_not_vacuous(small: Path, tmp_path: Path) -> None:
    remit = sorted((small / "billing").glob("remits_*.835"))[-1]
    broken = tmp_path / "broken.835"
    broken.write_text(re.sub(r"SE\*(\d+)", lambda m: f"SE*{int(m.group(1)) + 1}", remit.read_text(), count=1))
    ok, errors = _pyx12_errors(broken)
    assert not ok and any("SE count" in e for e in errors)


def _segments(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="ascii")
    assert len(text.split("~", 1)[0]) == 105, "ISA is fixed width (106 with its terminator)"
    return [s.strip().split("*") for s in text.split("~") if s.strip()]


def test_x12_envelopes_and_counts(small: Path) -> None:
    """ISA/IEA, GS/GE and ST/SE agree with each other and with what they enclose; control numbers are unique."""
    seen_controls = set()
    for path in sorted((small / "billing").glob("*.83?")):
        segs = _segments(path)
        isa, iea = segs[0], segs[-1]
        assert isa[0] == "ISA" and iea[0] == "IEA" and isa[13] == iea[2] and iea[1] == "1"
        assert isa[13] not in seen_controls
        seen_controls.add(isa[13])
        gs, ge = segs[1], segs[-2]
        assert gs[0] == "GS" and ge[0] == "GE" and gs[6] == ge[2]
        assert gs[8] == ("005010X222A1" if path.suffix == ".837" else "005010X221A1")
        starts = [i for i, s in enumerate(segs) if s[0] == "ST"]
        ends = [i for i, s in enumerate(segs) if s[0] == "SE"]
        assert len(starts) == len(ends) == int(ge[1]) > 0
        for st, se in zip(starts, ends, strict=True):
            assert int(segs[se][1]) == se - st + 1 and segs[se][2] == segs[st][2]


def _amount(x: str) -> Decimal:
    return Decimal(x) if x else Decimal(0)


def test_835_payments_balance(small: Path) -> None:
    """BPR02 = sum of CLP04 per transaction; per service line, charge - paid = sum of its CAS amounts."""
    for path in sorted((small / "billing").glob("remits_*.835")):
        lines: list[list[Decimal]] = []  # [charge, paid, adjustments] per SVC
        bpr_total = clp_total = Decimal(0)
        for s in _segments(path):
            if s[0] == "BPR":
                bpr_total, clp_total = _amount(s[2]), Decimal(0)
            elif s[0] == "CLP":
                clp_total += _amount(s[4])
            elif s[0] == "SVC":
                lines.append([_amount(s[2]), _amount(s[3]), Decimal(0)])
            elif s[0] == "CAS" and lines:
                lines[-1][2] += _amount(s[3])
            elif s[0] == "SE":
                assert bpr_total == clp_total, path.name
        assert lines, path.name
        for charge, paid, adjusted in lines:
            assert charge - paid == adjusted, (path.name, charge, paid, adjusted)


def test_csv_headers_follow_the_contract(small: Path) -> None:
    def header(rel: str) -> list[str]:
        with open(small / rel, newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh))

    assert header("vendor/north_appointments_2025.csv") == list(VENDOR_COLUMNS)
    assert header("billing/north_transactions.csv") == list(SYNTHEA_COLUMNS)
    assert header("billing/patient_payments.csv") == list(SYNTHEA_COLUMNS)
    assert header("portal/portal_messages.csv") == list(PORTAL_COLUMNS)


def test_synthea_columns_match_real_synthea(small: Path, external: Path) -> None:
    real = external / "synthea-csv-au-evinett" / "claims_transactions.csv"
    with open(real, newline="", encoding="utf-8") as fh:
        assert list(SYNTHEA_COLUMNS[:-1]) == next(csv.reader(fh))


def test_queue_log_lines_are_well_formed(small: Path) -> None:
    events = {
        "ENTERQUEUE",
        "CONNECT",
        "COMPLETECALLER",
        "COMPLETEAGENT",
        "ABANDON",
        "EXITWITHTIMEOUT",
        "EXITWITHKEY",
        "RINGNOANSWER",
    }
    for line in (small / "phones" / "queue_log").read_text().splitlines():
        fields = line.split("|")
        assert fields[0].isdigit() and fields[2] in ("appointments", "nurse", "billing") and fields[4] in events


def test_csv_lines_are_what_the_csv_module_writes(small: Path) -> None:
    """Rows are joined by hand for speed; each line must be exactly csv.writer's (minimal quoting, CRLF)."""
    files = [*sorted((small / "vendor").glob("*.csv")), *sorted((small / "billing").glob("*.csv"))]
    files.append(small / "portal" / "portal_messages.csv")
    quoted = 0
    for path in files:
        raw = path.read_bytes().decode("utf-8")
        lines = raw.split("\r\n")
        assert lines[-1] == "" and len(lines) > 2, path.name
        rows = list(csv.reader(io.StringIO(raw, newline="")))
        for n, (text, fields) in enumerate(zip(lines[:-1], rows, strict=True), 1):
            expected = io.StringIO()
            csv.writer(expected).writerow(fields)
            assert text + "\r\n" == expected.getvalue(), (path.name, n)
            assert len(fields) == len(rows[0]), (path.name, n)  # a comma left unquoted would add a field
            quoted += '"' in text
    assert quoted > 0  # names and procedure descriptions hold commas, so some fields are quoted


def test_nothing_happens_on_public_holidays(small: Path) -> None:
    """The practice is closed on Christmas Day 2024 and New Year's Day 2025 (ASSUMPTIONS.md's list):
    no slot, appointment or call then, while the days around them are busy."""
    tz = ZoneInfo("America/New_York")
    days: Counter[date] = Counter()
    for kind, field in (("Appointment", "start"), ("Slot", "start")):
        for line in (small / "fhir" / f"{kind}.ndjson").read_text(encoding="utf-8").splitlines():
            start = json.loads(line).get(field)
            if start:
                days[datetime.fromisoformat(start).astimezone(tz).date()] += 1
    with open(small / "vendor" / "north_appointments_2025.csv", newline="", encoding="utf-8") as fh:
        days.update(datetime.strptime(r["Appt Date"], "%m/%d/%Y").date() for r in csv.DictReader(fh) if r["Appt Date"])
    for line in (small / "phones" / "queue_log").read_text(encoding="utf-8").splitlines():
        days[datetime.fromtimestamp(int(line.split("|")[0]), tz).date()] += 1
    assert days[date(2024, 12, 25)] == days[date(2025, 1, 1)] == 0
    assert days[date(2024, 12, 24)] > 100 and days[date(2025, 1, 2)] > 100
