"""A FHIR value of another JSON type than the mapping reads is the resource's reject, not a crash.

A reviewer found two: an Appointment's `cancelationReason.coding[].code` as a number failed the
load with an AttributeError, and an extension's `valueBoolean` written "true" next to a real
boolean with an ArrowInvalid. Every value either mapper reads is declared with its type
(`fhir_fields.READS`); each is given here the wrong JSON type in turn, so a field added there is
covered without a new test.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ingest.adapters import fhir, fhir_sql
from ingest.adapters.fhir_codes import NEW_PATIENT_URL
from ingest.adapters.fhir_fields import BOOLEAN, INTEGER, READS, STRING, Extensions, Spec
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load_one, rejects, spy_on_duckdb_mapping


def _wrong(spec: Spec) -> Any:
    """A value of another JSON type than `spec`: a number for a string, a string for a boolean or a
    number, a list for an object, an object for a list."""
    if isinstance(spec, str):
        return {STRING: 7, BOOLEAN: "true", INTEGER: "30"}[spec]
    return [] if isinstance(spec, dict) else {}


def _fields(fields: dict[str, Spec], prefix: str = "") -> list[tuple[str, Spec]]:
    """(path, spec) of every value declared, containers and what they hold."""
    found = []
    for key, spec in fields.items():
        path = f"{prefix}{key}"
        found.append((path, spec))
        if isinstance(spec, Extensions):
            found += _fields(spec.item, f"{path}[0].")
        elif isinstance(spec, dict):
            found += _fields(spec, f"{path}.")
        elif isinstance(spec, list):
            found.append((f"{path}[0]", spec[0]))
            if isinstance(spec[0], dict):
                found += _fields(spec[0], f"{path}[0].")
    return found


CASES = [(rtype, path, spec) for rtype in READS for path, spec in _fields(READS[rtype])]


def _set(resource: dict, path: str, value: Any) -> None:
    """Put `value` at `path` (`a.b[0].c`), making the objects and lists on the way."""
    node: Any = resource
    parts = re.findall(r"([^.\[\]]+)(\[0\])?", path)
    for i, (key, indexed) in enumerate(parts):
        last = i == len(parts) - 1
        if indexed:
            items = node.get(key) if isinstance(node.get(key), list) and node.get(key) else [{}]
            node[key] = items
            if last:
                items[0] = value
            else:
                if not isinstance(items[0], dict):
                    items[0] = {}
                node = items[0]
        elif last:
            node[key] = value
        else:
            node[key] = node[key] if isinstance(node.get(key), dict) else {}
            node = node[key]
    if path.startswith("extension[0].") and path != "extension[0].url":
        resource["extension"][0]["url"] = NEW_PATIENT_URL  # an extension the mapping reads


def _file(tmp_path: Path, rtype: str, bad: dict) -> Path:
    good = (FIXTURES / "fhir" / f"{rtype}.ndjson").read_text().splitlines()[0]
    path = tmp_path / f"{rtype}.ndjson"
    path.write_text("\n".join([good, json.dumps(bad, separators=(",", ":")), good.replace('"id":"', '"id":"x', 1)]))
    return path


def _bad(rtype: str, path: str, value: Any, rid: str = "bad") -> dict:
    resource = json.loads((FIXTURES / "fhir" / f"{rtype}.ndjson").read_text().splitlines()[0])
    resource = copy.deepcopy(resource)
    resource["id"] = rid
    _set(resource, path, value)
    return resource


def _outcome(warehouse: Warehouse, file: Path, **options: object) -> tuple[tuple, list[tuple]]:
    result = load_one(warehouse, file, **options)
    assert result.status == "succeeded", result.message
    found = [(r["position"], r["field"], r["check_name"], r["reason"]) for r in rejects(warehouse, result.run_id)]
    return (result.read, result.rejected, result.read - result.rejected - result.ignored), found


@pytest.mark.parametrize(("rtype", "path", "spec"), CASES, ids=[f"{t}.{p}" for t, p, _ in CASES])
def test_a_value_of_another_json_type_is_one_reject_naming_its_field(
    warehouse: Warehouse, tmp_path: Path, rtype: str, path: str, spec: Spec
) -> None:
    value = _wrong(spec)
    counts, found = _outcome(warehouse, _file(tmp_path, rtype, _bad(rtype, path, value)))
    kind = {str: "a string", int: "a number", list: "a list", dict: "an object"}[type(value)]
    if isinstance(spec, str):
        expected = {STRING: "a string", BOOLEAN: "a boolean", INTEGER: "a number"}[spec]
    else:
        expected = "an object" if isinstance(spec, dict) else "a list"
    assert found == [(2, path, "unreadable_value", f"{rtype}.{path}: expected {expected}, got {kind}")]
    assert counts[:2] == (3, 1)


def test_the_reported_cancel_reason_code_number_and_boolean_text(warehouse: Warehouse, tmp_path: Path) -> None:
    """The reviewer's two files: each rejects the one resource, names the file's line and field,
    and loads the rest; the boolean written as text sits in the file next to a real one."""
    lines = (FIXTURES / "fhir" / "Appointment.ndjson").read_text().splitlines()
    reason = {"coding": [{"code": 3}]}
    cancelled = json.loads(lines[0]) | {"id": "c1", "status": "cancelled", "cancelationReason": reason}
    text_flag = json.loads(lines[0]) | {"id": "t1", "extension": [{"url": NEW_PATIENT_URL, "valueBoolean": "true"}]}
    path = tmp_path / "Appointment.ndjson"
    path.write_text("\n".join([lines[0], json.dumps(cancelled), json.dumps(text_flag), lines[1]]) + "\n")
    result = load_one(warehouse, path)
    assert (result.status, result.read, result.inserted, result.rejected) == ("succeeded", 4, 2, 2)
    found = [(r["position"], r["field"], r["reason"], r["value_masked"]) for r in rejects(warehouse, result.run_id)]
    assert found == [
        (
            2,
            "cancelationReason.coding[0].code",
            "Appointment.cancelationReason.coding[0].code: expected a string, got a number",
            "3",
        ),
        (
            3,
            "extension[0].valueBoolean",
            "Appointment.extension[0].valueBoolean: expected a boolean, got a string",
            "true",
        ),
    ]


CONTAINERS = [(t, p, s) for t, p, s in CASES if not isinstance(s, str)]


def _without_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_nulls(v) for k, v in node.items() if v is not None}
    return [_without_nulls(v) for v in node] if isinstance(node, list) else node


@pytest.mark.parametrize(("rtype", "path", "spec"), CONTAINERS, ids=[f"{t}.{p}" for t, p, _ in CONTAINERS])
def test_a_null_where_an_object_or_list_is_read_is_read_as_absent(
    warehouse: Warehouse, tmp_path: Path, rtype: str, path: str, spec: Spec
) -> None:
    """`"meta": null` and the like: the resource loads (or is rejected) exactly as without the
    field, never for the null itself (FHIR writes no nulls; a resource is not lost to one). A null
    list item (`identifier[0]`) stands for no field: it is checked as the item, and rejected."""
    bad = _bad(rtype, path, None)
    counts, found = _outcome(warehouse, _file(tmp_path, rtype, bad))
    if path.endswith("]"):
        expected = "an object" if isinstance(spec, dict) else "a list"
        assert found == [(2, path, "unreadable_value", f"{rtype}.{path}: expected {expected}, got null")]
        return
    absent = tmp_path / "absent"
    absent.mkdir()
    counts_absent, found_absent = _outcome(warehouse, _file(absent, rtype, _without_nulls(bad)), force=True)
    assert not any("got null" in reason for *_, reason in found), found
    assert (counts[:2], found) == (counts_absent[:2], found_absent)


def test_a_reference_of_another_json_type_is_masked_in_the_reject(warehouse: Warehouse, tmp_path: Path) -> None:
    """A rejected resource is kept masked: a patient reference written as a number or a list is
    masked whole (only a string reference was pseudonymized), so no identifier reaches `rejects`."""
    for i, reference in enumerate([9876543, ["Patient/MRN-SECRET-77"]]):
        folder = tmp_path / str(i)
        folder.mkdir()
        bad = _bad("Encounter", "subject", {"reference": reference}, rid=f"bad{i}")
        result = load_one(warehouse, _file(folder, "Encounter", bad))
        (found,) = rejects(warehouse, result.run_id)
        assert found["field"] == "subject.reference"
        assert "9876543" not in found["record_masked"] and "MRN-SECRET" not in found["record_masked"]


def test_a_null_where_a_string_or_number_is_read_is_absent_as_before(warehouse: Warehouse, tmp_path: Path) -> None:
    lines = (FIXTURES / "fhir" / "Appointment.ndjson").read_text().splitlines()
    nulls = json.loads(lines[0]) | {"id": "n1", "minutesDuration": None, "created": None}
    path = tmp_path / "Appointment.ndjson"
    path.write_text("\n".join([lines[0], json.dumps(nulls)]) + "\n")
    result = load_one(warehouse, path)
    assert (result.read, result.inserted, result.rejected) == (2, 2, 0)


def test_an_unknown_extension_of_another_value_type_is_still_ignored(warehouse: Warehouse, tmp_path: Path) -> None:
    lines = (FIXTURES / "fhir" / "Appointment.ndjson").read_text().splitlines()
    other = json.loads(lines[0]) | {"id": "o1", "extension": [{"url": "http://x/other", "valueBoolean": "yes"}]}
    path = tmp_path / "Appointment.ndjson"
    path.write_text("\n".join([lines[0], json.dumps(other)]) + "\n")
    result = load_one(warehouse, path)
    assert (result.read, result.inserted, result.rejected) == (2, 2, 0)


@pytest.mark.parametrize("rtype", ["Slot", "Appointment", "Encounter", "DocumentReference", "Task"])
def test_chunks_of_one_line_reject_what_the_whole_file_rejects(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rtype: str
) -> None:
    """DuckDB maps the clean one-line chunks of the four bulk types, Python the others: the same
    rejects, line for line, as one chunk of the whole file."""
    cases = [(p, s) for t, p, s in CASES if t == rtype]
    good = (FIXTURES / "fhir" / f"{rtype}.ndjson").read_text().splitlines()[0]
    lines = [good]
    for i, (p, s) in enumerate(cases):
        bad = _bad(rtype, p, _wrong(s), f"bad{i}")
        lines += [json.dumps(bad, separators=(",", ":")), good.replace('"id":"', f'"id":"ok{i}-', 1)]
    path = tmp_path / f"{rtype}.ndjson"
    path.write_text("\n".join(lines) + "\n")
    whole = _outcome(warehouse, path)
    monkeypatch.setattr(fhir, "CHUNK_LINES", 1)
    mapped_in_duckdb = spy_on_duckdb_mapping(monkeypatch)
    chunked = _outcome(warehouse, path, force=True)
    assert whole[1] == chunked[1]
    if rtype in fhir_sql.FhirSql.kinds:  # the good lines went the DuckDB way, the bad ones the Python way
        assert mapped_in_duckdb.count(True) == len(cases) + 1
        assert mapped_in_duckdb.count(False) == len(cases)
    assert [position for position, *_ in whole[1]] == list(range(2, 2 * len(cases) + 1, 2))


def test_a_bundle_entry_of_another_json_type_is_rejected_by_its_entry(warehouse: Warehouse, tmp_path: Path) -> None:
    lines = (FIXTURES / "fhir" / "Appointment.ndjson").read_text().splitlines()
    bad = json.loads(lines[0]) | {"id": "b1", "participant": {"actor": {"reference": "Patient/pat-1"}}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": json.loads(lines[1])}]}
    bundle["entry"].append({"resource": bad})
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, indent=2))
    result = load_one(warehouse, path)
    assert (result.status, result.read, result.inserted, result.rejected) == ("succeeded", 2, 1, 1)
    (found,) = rejects(warehouse, result.run_id)
    assert (found["position_kind"], found["position"], found["field"], found["reason"]) == (
        "record",
        2,
        "participant",
        "Appointment.participant: expected a list, got an object",
    )
