"""What each FHIR resource type's mapping reads, with the JSON type of each value: one declaration
for both mappers, the Python one (`fhir`, which checks a resource against it before mapping) and
DuckDB's (`fhir_sql`, whose Arrow reader takes its schemas from it).

Why: the mappers read values as their FHIR type (a code is a string, an extension's valueBoolean a
boolean). A value of another JSON type (a number for a code, "true" for a boolean, an object for a
list) used to reach code that assumed the type and fail the whole file (issue: two malformed
inputs crashed a load). Checked here, where the resource is read, it is the resource's reject,
naming the field path (`cancelationReason.coding[0].code`), and the rest of the file loads. A
field the mapping adds must be declared here, and is then checked in both mappers alike.

A JSON null standing for a field is absent (the Python mapper drops such fields before checking,
`fhir._drop_nulls`; a chunk holding a null goes that way, `fhir_sql`): `"meta": null` costs no
resource. A null as a list item is checked as the item it stands for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import pyarrow as pa

from ingest.adapters.fhir_codes import NEW_PATIENT_URL, PREVIOUS_APPOINTMENT_URL

# INTEGER (minutesDuration): Arrow reads an int64; the Python check takes any JSON number, and the
# mapper's own check then rejects a fraction with its own sentence ("is not a whole number").
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


Wrong = tuple[str, Any, str]  # (field path, the value, the JSON type expected)
# on the way out of the recursion: the path's steps, innermost first (a key, or a list index)
_Found = tuple[list[str | int], Any, str]
_Checker = Callable[[Any], "_Found | None"]
_SCALARS: dict[str, tuple[type, ...]] = {STRING: (str,), BOOLEAN: (bool,), INTEGER: (int, float)}


def wrong_type(resource: dict, rtype: str) -> Wrong | None:
    """The first value (in the declaration's order) of `resource` the mapping of `rtype` reads
    whose JSON type is not the declared one; None when every one fits. The declaration is
    compiled once into plain functions (`_checker`), and a path is spelled only for a value that
    does not fit: this runs for every resource the Python mapper maps."""
    found = _CHECKERS[rtype](resource)
    if found is None:
        return None
    steps, value, expected = found
    path = ""
    for step in reversed(steps):
        path += f"[{step}]" if isinstance(step, int) else f".{step}" if path else step
    return path, value, expected


def _checker(spec: Spec) -> _Checker:
    """A function giving the first value under its argument that does not fit `spec`, or None."""
    if isinstance(spec, str):
        types, expected = _SCALARS[spec], _EXPECTED[spec]

        def scalar(value: Any) -> _Found | None:
            # JSON null reads as absent; a boolean is no number (Python's bool is an int)
            if value is None or (type(value) in types):
                return None
            return [], value, expected

        return scalar
    if isinstance(spec, dict):
        fields = [(key, _checker(item)) for key, item in spec.items()]

        def obj(value: Any) -> _Found | None:
            if type(value) is not dict:
                return [], value, "an object"
            for key, check in fields:
                if key in value:
                    found = check(value[key])
                    if found is not None:
                        found[0].append(key)
                        return found
            return None

        return obj
    if isinstance(spec, list):
        return _list(_checker(spec[0]))
    read, url_only = _checker(spec.item), _checker({"url": STRING})
    urls = spec.urls

    def item(value: Any) -> _Found | None:
        known = type(value) is dict and value.get("url") in urls
        return read(value) if known else url_only(value)

    return _list(item)


def _list(check: _Checker) -> _Checker:
    def items(value: Any) -> _Found | None:
        if type(value) is not list:
            return [], value, "a list"
        for i, item in enumerate(value):
            found = check(item)
            if found is not None:
                found[0].append(i)
                return found
        return None

    return items


_CHECKERS = {rtype: _checker(fields) for rtype, fields in READS.items()}


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
