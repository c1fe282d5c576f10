"""What each FHIR resource type's mapping reads, with the JSON type of each value: one declaration
for both mappers, the Python one (`fhir`, which checks a resource against it before mapping) and
DuckDB's (`fhir_sql`, whose Arrow reader takes its schemas from it).

Why: the mappers read values as their FHIR type (a code is a string, an extension's valueBoolean a
boolean). A value of another JSON type (a number for a code, "true" for a boolean, an object for a
list) used to reach code that assumed the type and fail the whole file (issue: two malformed
inputs crashed a load). Checked here, where the resource is read, it is the resource's reject,
naming the field path (`cancelationReason.coding[0].code`), and the rest of the file loads. A
field the mapping adds must be declared here, and is then checked in both mappers alike.

A JSON null is accepted where a string, number or boolean is read (the mappers read it as absent,
as they always have), and refused where an object or a list is read (FHIR never writes null there,
and the mappers would have to read into it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

import pyarrow as pa

from ingest.adapters.fhir_codes import NEW_PATIENT_URL, PREVIOUS_APPOINTMENT_URL

STRING, BOOLEAN, INTEGER = "string", "boolean", "integer"


@dataclass(frozen=True)
class Extensions:
    """A list of extensions of which only those with one of `urls` are read (unknown extensions are
    ignored, whatever their values)."""

    item: dict[str, Any]
    urls: frozenset[str]


# a value's declaration: a scalar type, an object (its fields), a list (of one item type) or extensions
Spec = Union[str, dict[str, "Spec"], list["Spec"], Extensions]

_REF: dict[str, Spec] = {"reference": STRING}
_CODINGS: list[Spec] = [{"system": STRING, "code": STRING}]
_PERIOD: dict[str, Spec] = {"start": STRING, "end": STRING}
_COMMON: dict[str, Spec] = {"id": STRING, "meta": {"lastUpdated": STRING}}

READS: dict[str, dict[str, Spec]] = {
    "Location": {**_COMMON, "name": STRING},
    "Practitioner": {
        **_COMMON,
        "identifier": [{"system": STRING, "value": STRING}],
        "name": [{"text": STRING, "prefix": [STRING], "given": [STRING], "family": STRING}],
    },
    "Schedule": {**_COMMON, "actor": [_REF]},
    "Slot": {
        **_COMMON,
        "status": STRING,
        "start": STRING,
        "end": STRING,
        "schedule": _REF,
        "appointmentType": {"coding": _CODINGS},
    },
    "Appointment": {
        **_COMMON,
        "status": STRING,
        "created": STRING,
        "start": STRING,
        "end": STRING,
        "minutesDuration": INTEGER,
        "participant": [{"actor": _REF}],
        "appointmentType": {"coding": _CODINGS},
        "extension": Extensions(
            {"url": STRING, "valueBoolean": BOOLEAN, "valueReference": _REF},
            frozenset({NEW_PATIENT_URL, PREVIOUS_APPOINTMENT_URL}),
        ),
        "cancelationReason": {"coding": _CODINGS},
    },
    "Encounter": {
        **_COMMON,
        "status": STRING,
        "class": {"system": STRING, "code": STRING},
        "period": _PERIOD,
        "statusHistory": [{"status": STRING, "period": _PERIOD}],
        "participant": [{"type": [{"coding": [{"code": STRING}]}], "individual": _REF}],
        "location": [{"location": _REF}],
        "appointment": [_REF],
        "subject": _REF,
    },
    "DocumentReference": {
        **_COMMON,
        "status": STRING,
        "docStatus": STRING,
        "date": STRING,
        "context": {"encounter": [_REF]},
    },
    "ServiceRequest": {
        **_COMMON,
        "status": STRING,
        "category": [{"coding": [{"code": STRING}]}],
        "performerType": {"text": STRING, "coding": [{"display": STRING, "code": STRING}]},
        "priority": STRING,
        "requester": _REF,
        "subject": _REF,
        "authoredOn": STRING,
    },
    "Task": {
        **_COMMON,
        "lastModified": STRING,
        "focus": _REF,
        "location": _REF,
        "output": [{"type": {"coding": _CODINGS}, "valueDateTime": STRING}],
    },
}


def json_kind(value: Any) -> str:
    """The JSON type of a parsed value, as a sentence says it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


_EXPECTED = {STRING: "a string", BOOLEAN: "a boolean", INTEGER: "a number"}


def _expected(spec: Spec) -> str:
    if isinstance(spec, str):
        return _EXPECTED[spec]
    return "an object" if isinstance(spec, dict) else "a list"


def _fits(value: Any, spec: Spec) -> bool:
    if isinstance(spec, str):
        if value is None:
            return True
        if spec == STRING:
            return isinstance(value, str)
        if spec == BOOLEAN:
            return isinstance(value, bool)
        # a whole number is the mapper's own check (its sentence says so); a number is this one
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, dict) if isinstance(spec, dict) else isinstance(value, list)


def wrong_types(resource: dict, rtype: str) -> Iterator[tuple[str, Any, str]]:
    """(field path, value, expected) of each value of `resource` the mapping of `rtype` reads whose
    JSON type is not the declared one, in the declaration's order."""
    yield from _walk(resource, READS[rtype], "")


def _walk(node: dict, fields: dict[str, Spec], prefix: str) -> Iterator[tuple[str, Any, str]]:
    for key, spec in fields.items():
        if key in node:
            yield from _check(node[key], spec, f"{prefix}{key}")


def _check(value: Any, spec: Spec, path: str) -> Iterator[tuple[str, Any, str]]:
    if isinstance(spec, Extensions):
        if not isinstance(value, list):
            yield path, value, "a list"
            return
        for i, item in enumerate(value):
            read = isinstance(item, dict) and item.get("url") in spec.urls
            yield from _check(item, spec.item if read else {"url": STRING}, f"{path}[{i}]")
    elif not _fits(value, spec):
        yield path, value, _expected(spec)
    elif isinstance(spec, dict):
        yield from _walk(value, spec, f"{path}.")
    elif isinstance(spec, list):
        for i, item in enumerate(value):
            yield from _check(item, spec[0], f"{path}[{i}]")


_ARROW = {STRING: pa.string(), BOOLEAN: pa.bool_(), INTEGER: pa.int64()}


def _arrow_type(spec: Spec) -> pa.DataType:
    if isinstance(spec, Extensions):
        return pa.list_(_arrow_type(spec.item))
    if isinstance(spec, str):
        return _ARROW[spec]
    if isinstance(spec, list):
        return pa.list_(_arrow_type(spec[0]))
    return pa.struct([(key, _arrow_type(item)) for key, item in spec.items()])


def arrow_schema(rtype: str) -> pa.Schema:
    """What Arrow's JSON reader reads of `rtype` (for `fhir_sql`): a chunk with a value of another
    JSON type is refused there, and mapped the Python way, which rejects the resource."""
    return pa.schema([("resourceType", pa.string()), *((k, _arrow_type(v)) for k, v in READS[rtype].items())])
