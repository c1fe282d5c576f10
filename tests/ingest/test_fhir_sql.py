"""FHIR Appointments mapped inside DuckDB give exactly the Python mapper's rows (issue 22).

Why: the per-resource Python mapping was most of an Appointment file's load time; the SQL
mapping (`ingest.adapters.fhir_sql`) must not change a single row, reject or count. Each test
writes compact (orjson) NDJSON, the shape bulk exports have, so the DuckDB path is taken, and
compares with the same file loaded with the DuckDB path switched off; resources the SQL does
not read exactly as Python does must send their chunk the Python way.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ingest.adapters import fhir, fhir_sql
from ingest.context import ParseContext
from ingest.pseudonymize import Pseudonymizer
from tests.ingest.conftest import FIXTURES, spy_on_duckdb_mapping
from tests.ingest.test_chunked import _fresh, _outcome

NEW = fhir.NEW_PATIENT_URL
PREVIOUS = fhir.PREVIOUS_APPOINTMENT_URL
CANCEL = fhir.CANCEL_REASON_SYSTEM
V2 = fhir.APPOINTMENT_TYPE_SYSTEM

ABSENT = object()
BASE = {
    "resourceType": "Appointment",
    "status": "booked",
    "start": "2025-03-03T09:00:00-05:00",
    "end": "2025-03-03T09:20:00-05:00",
    "minutesDuration": 20,
    "created": "2025-02-20T10:00:00-05:00",
    "meta": {"lastUpdated": "2025-03-01T08:00:00-05:00"},
    "participant": [
        {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
        {"actor": {"reference": "Practitioner/pr1"}},
        {"actor": {"reference": "Location/EAST"}},
    ],
}

# Resources the DuckDB path maps: every branch of the Python mapper it takes over.
CLEAN = [
    {},
    {"minutesDuration": ABSENT},  # from start and end
    {"minutesDuration": ABSENT, "end": "2025-03-03T09:00:30-05:00"},  # 0.5 minute: half to even, 0
    {"minutesDuration": ABSENT, "end": "2025-03-03T09:01:30-05:00"},  # 1.5: 2
    {"minutesDuration": ABSENT, "end": ABSENT},
    {"start": "2025-03-03T14:00:00Z", "end": "2025-03-03T14:30:00.500Z", "minutesDuration": ABSENT},
    {"start": "2025-03-03T14:00:00.123456+01:00"},
    {
        "status": "noshow",
        "appointmentType": {"coding": [{"system": "x", "code": "A"}, {"system": V2, "code": "WALKIN"}]},
    },
    {"status": "fulfilled", "appointmentType": {"coding": [{"system": "x", "code": "Follow-Up"}]}},
    {"appointmentType": {"coding": [{"code": ""}, {"system": V2, "code": ""}]}, "status": "checked-in"},
    {"appointmentType": {"text": "no coding"}, "status": "proposed"},
    {"status": "cancelled", "cancelationReason": {"coding": [{"system": CANCEL, "code": "pat-crs"}]}},
    {"status": "cancelled", "cancelationReason": {"coding": [{"system": "other", "code": "pat"}, {"code": "prov"}]}},
    {"status": "cancelled", "cancelationReason": {"coding": [{"code": ""}, {"system": CANCEL, "code": "maint"}]}},
    {"status": "cancelled", "cancelationReason": {"coding": [{"code": "weather"}]}},
    {"status": "cancelled", "meta": {}},
    {"status": "cancelled"},
    {"extension": [{"url": "other", "valueString": "yes"}, {"url": NEW, "valueBoolean": True}]},
    {"extension": [{"url": NEW, "valueBoolean": False}, {"url": NEW, "valueBoolean": True}]},
    {"extension": [{"url": PREVIOUS, "valueReference": {"reference": "Appointment/a-0.9"}}]},
    {"extension": [{"url": PREVIOUS, "valueReference": {"reference": "Encounter/e1"}}]},
    {"participant": []},
    {
        "participant": [
            {"actor": {"reference": "Location/WEST"}},
            {"actor": {"reference": "Patient/p2"}},
            {"actor": {"reference": "Practitioner/pr2"}},
            {"actor": {"reference": "Patient/p3"}},
            {"actor": {"display": "no reference"}},
            {"type": []},
            {"actor": {"reference": "Device/d1"}},
        ]
    },
    {  # a type whose name begins with another's is not that type (the SQL takes "Practitioner/")
        "participant": [
            {"actor": {"reference": "PractitionerRole/pr9"}},
            {"actor": {"reference": "PatientX/p9"}},
            {"actor": {"reference": "Practitioner/pr3"}},
            {"actor": {"reference": "Patient/p4"}},
        ]
    },
    {"start": ABSENT, "minutesDuration": ABSENT},  # rejected by the load path (no start), not the mapping
    {"meta": {"versionId": "2"}},  # no lastUpdated: no version
    {"status": "entered-in-error", "minutesDuration": -5},  # breaks a CHECK rule in the load path
]

# Resources the DuckDB path leaves to Python (each alone in a chunk sends the chunk the exact way).
UNCLEAR = {
    "bare date": {"start": "2025-03-03"},
    "local time": {"start": "2025-03-03T09:00:00"},
    "impossible date": {"start": "2025-02-30T09:00:00Z"},
    "unknown status": {"status": "later"},
    "minutes not whole": {"minutesDuration": 20.0},
    "minutes yes": {"minutesDuration": True},
    "conditional reference": {"participant": [{"actor": {"reference": "Patient?identifier=mrn|123"}}]},
    "npi reference": {"participant": [{"actor": {"reference": "Practitioner?identifier=x|1234567893"}}]},
    "absolute reference": {"participant": [{"actor": {"reference": "http://x/fhir/Patient/p1"}}]},
    "versioned reference": {"participant": [{"actor": {"reference": "Practitioner/pr1/_history/2"}}]},
    "reference without an id": {"participant": [{"actor": {"reference": "Location/"}}]},
    "participant not an object": {"participant": ["Patient/p1"]},
    "meta null": {"meta": None},
    "id missing": {"id": None},
    "valueBoolean text": {"extension": [{"url": NEW, "valueBoolean": "true"}]},
    "code with spaces": {"appointmentType": {"coding": [{"code": "Follow up"}]}},
    "cancel reason code number": {"status": "cancelled", "cancelationReason": {"coding": [{"code": 3}]}},
    "another type": {"resourceType": "Encounter"},
    "an extension's value of another type": {"extension": [{"url": "other", "valueBoolean": "yes"}]},
    "a JSON null": {"minutesDuration": None},  # absent and null differ for Python in places
}


def _line(changes: dict, i: int) -> str:
    """A compact NDJSON line (`ABSENT`: the key left out; None: JSON null)."""
    resource = {**BASE, "id": f"sql-{i}", **changes}
    return orjson.dumps({k: v for k, v in resource.items() if v is not ABSENT}).decode()


def _texts(lines: list[str]) -> list[tuple[int, str]]:
    return list(enumerate(lines, start=1))


def test_duckdb_maps_clean_appointments_as_python_does() -> None:
    """Row for row, value for value: the SQL mapping against the Python mapper, without the warehouse."""
    lines = [_line(c, i) for i, c in enumerate(CLEAN)]
    pseudonymizer = Pseudonymizer(b"a test key, not for production use")
    sql = fhir_sql.FhirSql(pseudonymizer)
    try:
        rows = sql.rows("Appointment", _texts(lines), fhir.COLUMNS["appointments"])
    finally:
        sql.close()
    assert rows is not None, "every line is one the DuckDB path maps"
    mapped = fhir._Mapped(fhir._Mapper(ParseContext("America/New_York", pseudonymizer)))
    mapped.add([(n, fhir._line_item(n, line)) for n, line in _texts(lines)])
    assert mapped.errors == []
    (python,) = [t for phase in mapped.phases for target, t in phase.targets if target.table == "appointments"]
    assert rows.column_names == python.column_names
    for name in rows.column_names:
        got, want = rows.column(name).to_pylist(), python.column(name).to_pylist()
        assert got == want, name
    minutes = dict(zip(rows.column("_pos").to_pylist(), rows.column("scheduled_minutes").to_pylist(), strict=True))
    assert [minutes[n] for n in (2, 3, 4, 5, 6)] == [20, 0, 2, None, 30]


@pytest.mark.parametrize("case", sorted(UNCLEAR))
def test_a_resource_duckdb_may_read_otherwise_sends_its_chunk_to_python(case: str) -> None:
    lines = [_line({}, 0), _line(UNCLEAR[case], 1)]
    sql = fhir_sql.FhirSql(Pseudonymizer(b"a test key, not for production use"))
    try:
        assert sql.rows("Appointment", _texts(lines), fhir.COLUMNS["appointments"]) is None
    finally:
        sql.close()


@pytest.mark.parametrize(
    "text",
    [
        '{"resourceType":"Appointment","id":"d","status":"booked","status":"noshow"}',  # duplicate key
        '{"resourceType":"Appointment","id":"t","status":"booked",}',  # trailing comma (DuckDB reads it)
        '{"resourceType":"Appointment","id":"m","status":"booked","minutesDuration":NaN}',
        '{"resourceType":"Appointment","id":"a","status":"booked"}{"resourceType":"Appointment","id":"b","status":"booked"}',
        '{"resourceType":"Appointment","id":"u","status":"booked","meta":{"lastUpdated":"2025-03-01T08:00:00Z","lastUpdated":"2025-03-01T09:00:00Z"}}',
        '{"resourceType":"Appointment","id":"c","status":"booked"} // a comment',
        '{"resourceType":"Appointment","id":"z","status":"booked","minutesDuration":  null}',
        '{"resourceType":"Appointment","id":"s","status":"booked","x":"\\ud800"}',
    ],
)
def test_json_only_python_reads_one_way_goes_to_python(text: str) -> None:
    sql = fhir_sql.FhirSql(Pseudonymizer(b"a test key, not for production use"))
    try:
        assert sql.rows("Appointment", [(1, _line({}, 0)), (2, text)], fhir.COLUMNS["appointments"]) is None
    finally:
        sql.close()


def test_a_file_loads_the_same_with_and_without_duckdb_mapping(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the whole load path, in chunks of 3 where some chunks go each way: the same rows,
    rejects (with their line numbers and masked records), counts and warnings."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    folder = tmp_path / "fhir"
    folder.mkdir()
    for name in ("Location.ndjson", "Practitioner.ndjson"):
        (folder / name).write_bytes((FIXTURES / "fhir" / name).read_bytes())
    lines = [_line(c, i) for i, c in enumerate(CLEAN)]
    lines.insert(7, _line(UNCLEAR["unknown status"], 100))  # a reject in the Python way
    lines.insert(12, "")
    lines.insert(16, "{not json")
    lines.append(_line({"status": "noshow"}, 0))  # the same key, disagreeing: rejected by the load path
    (folder / "Appointment.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(fhir, "CHUNK_LINES", 3)
    used = spy_on_duckdb_mapping(monkeypatch)
    with _fresh(tmp_path, empty_warehouse_file, "duckdb") as wh:
        fast = _outcome(wh, folder)
    assert any(used) and not all(used), used
    monkeypatch.setattr(fhir_sql.FhirSql, "rows", lambda self, kind, items, columns: None)
    with _fresh(tmp_path, empty_warehouse_file, "python") as wh:
        exact = _outcome(wh, folder)
    assert fast == exact
    appointments = next(r for r in exact["results"] if r[0].endswith("Appointment.ndjson"))
    # unknown status, not JSON (Python); 0 minutes, no start, -5 minutes, the duplicate (load path)
    assert appointments[6] == 6, appointments


ENCOUNTER = {
    "resourceType": "Encounter",
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "meta": {"lastUpdated": "2025-03-03T10:00:00-05:00"},
    "period": {"start": "2025-03-03T08:50:00-05:00", "end": "2025-03-03T09:40:00-05:00"},
    "statusHistory": [
        {"status": "arrived", "period": {"start": "2025-03-03T08:50:00-05:00", "end": "2025-03-03T08:58:00-05:00"}},
        {"status": "triaged", "period": {"start": "2025-03-03T08:58:00-05:00", "end": "2025-03-03T09:05:00-05:00"}},
        {"status": "in-progress", "period": {"start": "2025-03-03T09:05:00-05:00", "end": "2025-03-03T09:30:00-05:00"}},
    ],
    "participant": [{"individual": {"reference": "Practitioner/pr1"}}],
    "location": [{"location": {"reference": "Location/EAST"}}],
    "appointment": [{"reference": "Appointment/a1"}],
    "subject": {"reference": "Patient/p1"},
}
PPRF = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}]

ENCOUNTERS_CLEAN = [
    {},
    {"class": {"code": "VR"}, "status": "in-progress"},
    {"class": {"system": fhir.V2_PATIENT_CLASS, "code": "O"}, "status": "triaged"},
    {"class": {"code": "O"}, "status": "planned"},
    {"class": {}},  # AMB
    {"class": ABSENT, "period": ABSENT, "statusHistory": ABSENT},
    {"statusHistory": [{"status": "triaged"}, {"status": "triaged", "period": {"start": "2025-03-03T09:00:00Z"}}]},
    {"statusHistory": [{"status": "in-progress", "period": {"start": "2025-03-03T14:00:00Z"}}]},
    {
        "participant": [
            {"individual": {"reference": "Practitioner/pr1"}},
            {"type": PPRF, "individual": {"reference": "Practitioner/pr2"}},
            {"type": PPRF, "individual": {"reference": "Practitioner/pr3"}},
        ]
    },
    {"participant": [{"type": PPRF, "individual": {"reference": "RelatedPerson/r1"}}, {"individual": {}}]},
    {"participant": [{"type": [{"coding": [{"code": "ATND"}]}]}, {"individual": {"reference": "Practitioner/pr4"}}]},
    {"location": [{"location": {"reference": "Organization/o1"}}, {"location": {"reference": "Location/WEST"}}]},
    {"location": [], "appointment": [], "participant": [], "subject": ABSENT},
    {"appointment": [{"reference": "ServiceRequest/s1"}, {"reference": "Appointment/a2"}]},
    {"status": "cancelled", "meta": ABSENT},
    {"period": {"start": "2025-03-03T09:40:00-05:00", "end": "2025-03-03T08:50:00-05:00"}},  # a CHECK rule, later
]
ENCOUNTERS_UNCLEAR = {
    "inpatient class (ignored)": {"class": {"code": "IMP"}},
    "v2 class AMB (ignored)": {"class": {"system": fhir.V2_PATIENT_CLASS, "code": "AMB"}},
    "status unknown (ignored)": {"status": "unknown"},
    "bare date": {"period": {"start": "2025-03-03"}},
    "identifier reference": {"subject": {"reference": "Patient?identifier=mrn|1"}},
    "class as text": {"class": "AMB"},
}


def _encounter(changes: dict, i: int) -> str:
    resource = {**ENCOUNTER, "id": f"en-{i}", **changes}
    return orjson.dumps({k: v for k, v in resource.items() if v is not ABSENT}).decode()


def test_duckdb_maps_clean_encounters_as_python_does() -> None:
    lines = [_encounter(c, i) for i, c in enumerate(ENCOUNTERS_CLEAN)]
    pseudonymizer = Pseudonymizer(b"a test key, not for production use")
    sql = fhir_sql.FhirSql(pseudonymizer)
    try:
        rows = sql.rows("Encounter", _texts(lines), fhir.COLUMNS["encounters"])
        for case, changes in ENCOUNTERS_UNCLEAR.items():
            unclear = [(1, lines[0]), (2, _encounter(changes, 99))]
            assert sql.rows("Encounter", unclear, fhir.COLUMNS["encounters"]) is None, case
    finally:
        sql.close()
    assert rows is not None, "every line is one the DuckDB path maps"
    mapped = fhir._Mapped(fhir._Mapper(ParseContext("America/New_York", pseudonymizer)))
    mapped.add([(n, fhir._line_item(n, line)) for n, line in _texts(lines)])
    assert mapped.errors == [] and not mapped.ignored
    (python,) = [t for phase in mapped.phases for target, t in phase.targets if target.table == "encounters"]
    assert rows.column_names == python.column_names
    for name in rows.column_names:
        assert rows.column(name).to_pylist() == python.column(name).to_pylist(), name
    refs = rows.column("provider_ref").to_pylist()
    assert refs[8:11] == ["Practitioner/pr2", None, "Practitioner/pr4"]  # PPRF first; a typed non-practitioner


UPDATED = "2025-03-01T00:00:00Z"
SLOT = {
    "resourceType": "Slot",
    "status": "busy",
    "start": "2025-03-03T08:00:00-05:00",
    "end": "2025-03-03T08:20:00-05:00",
    "schedule": {"reference": "Schedule/sch-1"},
}
DOCUMENT = {
    "resourceType": "DocumentReference",
    "status": "current",
    "docStatus": "final",
    "date": "2025-03-04T16:00:00-05:00",
    "context": {"encounter": [{"reference": "Encounter/en-1"}]},
}
# (resource, clean variants, variants the Python way)
OTHERS = {
    "Slot": (
        SLOT,
        [
            {},
            {"status": "busy-unavailable", "appointmentType": {"coding": [{"code": "ROUTINE"}, {"code": "X"}]}},
            {
                "status": "busy-tentative",
                "end": "2025-03-03T08:00:30-05:00",
                "meta": {"lastUpdated": "2025-03-01T00:00:00Z"},
            },
            {"status": "free", "end": ABSENT, "schedule": {"reference": "Location/x"}},
            {"schedule": ABSENT, "appointmentType": {"coding": []}},
        ],
        [{"status": "entered-in-error"}, {"status": "open"}, {"start": "2025-03-03"}],
    ),
    "DocumentReference": (
        DOCUMENT,
        [
            {},
            {"docStatus": "amended", "meta": {"lastUpdated": "2025-03-05T00:00:00Z"}},
            {"docStatus": ABSENT, "date": ABSENT},
            {"context": {"encounter": [{"reference": "Encounter/en-2"}, {"reference": "Encounter/en-3"}]}},
        ],
        [
            {"docStatus": "preliminary"},
            {"status": "entered-in-error"},
            {"context": {"encounter": [{"reference": "Appointment/a"}, {"reference": "Encounter/en-2"}]}},
            {"context": {}},
        ],
    ),
}


@pytest.mark.parametrize("kind", sorted(OTHERS))
def test_duckdb_maps_slots_and_notes_as_python_does(kind: str) -> None:
    base, clean, unclear = OTHERS[kind]
    target = fhir.KIND_TARGET[kind]

    def line(changes: dict, i: int) -> str:
        resource = {**base, "id": f"{kind}-{i}", **changes}
        return orjson.dumps({k: v for k, v in resource.items() if v is not ABSENT}).decode()

    lines = [line(c, i) for i, c in enumerate(clean)]
    pseudonymizer = Pseudonymizer(b"a test key, not for production use")
    sql = fhir_sql.FhirSql(pseudonymizer)
    try:
        rows = sql.rows(kind, _texts(lines), fhir.COLUMNS[target])
        for changes in unclear:
            assert sql.rows(kind, [(1, lines[0]), (2, line(changes, 99))], fhir.COLUMNS[target]) is None, changes
    finally:
        sql.close()
    assert rows is not None
    mapped = fhir._Mapped(fhir._Mapper(ParseContext("America/New_York", pseudonymizer)))
    mapped.add([(n, fhir._line_item(n, text)) for n, text in _texts(lines)])
    assert mapped.errors == [] and not mapped.ignored
    (python,) = [t for phase in mapped.phases for tg, t in phase.targets if tg is fhir.TARGETS[target]]
    for name in python.column_names:
        assert rows.column(name).to_pylist() == python.column(name).to_pylist(), name


LAYOUTS = {
    "CRLF line ends": lambda lines: "\r\n".join(lines) + "\r\n",
    "a byte-order mark, no final line end": lambda lines: "\ufeff" + "\n".join(lines),
    "a line break inside a string (U+2028)": lambda lines: "\n".join(
        [*lines[:4], lines[4].replace('"booked"', '"bo\u2028oked"'), *lines[5:]]
    ),
    "a lone CR and a vertical tab": lambda lines: "\n".join(
        [*lines[:2], lines[2] + "\r" + lines[3], lines[4].replace("Location/EAST", "Location/EA\x0bST"), *lines[5:]]
    ),
    "an indented line and blank lines": lambda lines: "\n".join([*lines[:5], "  " + lines[5], "", " ", *lines[6:]]),
    "text beyond ASCII": lambda lines: "\n".join(lines).replace('"sql-3"', '"sql-3é"'),
    "UTF-16 with a byte-order mark": lambda lines: "\n".join(lines).encode("utf-16"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chunk_lines", [2, 100_000])
def test_lines_read_as_bytes_are_numbered_as_the_text_is(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch, layout: str, chunk_lines: int
) -> None:
    """A Bulk file's chunks go to DuckDB as the file's bytes, numbered by counting "\\n"; whatever
    else Python's `str.splitlines` ends a line at (CR, vertical tab, U+2028, ...), and blank or
    indented lines, give the rows, rejects (line numbers, masked records) and counts of the file
    read as text, whole."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    folder = tmp_path / "fhir"
    folder.mkdir()
    lines = [_line(c, i) for i, c in enumerate(CLEAN)]
    lines.insert(3, _line(UNCLEAR["unknown status"], 100))
    lines.append(_line({"status": "noshow"}, 0))  # the same key, disagreeing: rejected by the load path
    text = LAYOUTS[layout](lines)
    (folder / "Appointment.ndjson").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    monkeypatch.setattr(fhir, "CHUNK_LINES", chunk_lines)
    with _fresh(tmp_path, empty_warehouse_file, "bytes") as wh:
        streamed = _outcome(wh, folder)
    monkeypatch.setattr(fhir, "_is_ndjson", lambda file: False)  # the whole text, split by str.splitlines
    with _fresh(tmp_path, empty_warehouse_file, "text") as wh:
        whole = _outcome(wh, folder)
    assert streamed == whole
    assert whole["rejects"], "the file has rejects to number"
