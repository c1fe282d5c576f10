"""FHIR Appointment NDJSON mapped inside DuckDB: the fast path of `ingest.adapters.fhir` (issue 22).

The per-resource Python mapper (`fhir._Mapper.appointment`) is the definition; this module
gives exactly its rows for the chunks where every line is a resource the fast path reads the
same way Python does: Arrow's JSON reader turns the chunk into typed columns (C++, no Python
object per value), and one SQL query maps them. Anything else in a chunk (another resource
type, a line that is not compact strict JSON, a JSON null, a duplicate key, a value of an
unexpected JSON type, a reference that is not a plain `Type/id`, a date-time that is not plain
ISO 8601 with an offset, a status word the mapping does not know) makes `appointments` return
None, and the caller maps the chunk the exact way: every reject, warning and sentence stays
the Python path's.

Why the conditions are what they are:
- JSON: each line must be exactly what orjson writes for what it reads (compact, no duplicate
  key, no NaN: bulk exports are written so), so Arrow's reader, which is stricter about types,
  sees what Python sees. No `null` in a chunk: for Python an explicit null and an absent key
  differ in places (`r.get("meta", {})`), for Arrow they do not.
- Date-times: `datetime.fromisoformat` and DuckDB's cast agree on `YYYY-MM-DDThh:mm:ss[.fff
  or .ffffff](Z|±hh:mm)`; a bare date (local midnight) or a local time goes the Python way.
- References: `Type/id` with a FHIR id (letters, digits, `-`, `.`) splits the same way in both;
  conditional, versioned and absolute references go the Python way. Codes are ASCII (`lower`).
- Duration without `minutesDuration`: Python's `round` (half to even) over the same double,
  so `round_even`.
Patient ids are pseudonymized in Python (HMAC), once per distinct id of the chunk.
"""

from __future__ import annotations

import io

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from ingest.pseudonymize import Pseudonymizer

SOURCE = "fhir"
NEW_PATIENT_URL = "http://clinic-kpis.org/fhir/StructureDefinition/new-patient"
PREVIOUS_APPOINTMENT_URL = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.previousAppointment"
CANCEL_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
APPOINTMENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0276"

_INSTANT = (
    "[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "(\\.[0-9]{3}|\\.[0-9]{6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_REFERENCE = "[A-Za-z]+/[A-Za-z0-9.\\-]{1,64}"
_CODE = "[A-Za-z0-9._\\-]*"
_INT32 = 2**31

_REF = pa.struct([("reference", pa.string())])
_EXTENSIONS = pa.list_(pa.struct([("url", pa.string()), ("valueBoolean", pa.bool_()), ("valueReference", _REF)]))
_CODINGS = pa.list_(pa.struct([("system", pa.string()), ("code", pa.string())]))
# What the mapping reads, typed: Arrow refuses a chunk whose values have other JSON types.
_SCHEMA = pa.schema(
    [
        ("resourceType", pa.string()),
        ("id", pa.string()),
        ("status", pa.string()),
        ("meta", pa.struct([("lastUpdated", pa.string())])),
        ("created", pa.string()),
        ("start", pa.string()),
        ("end", pa.string()),
        ("minutesDuration", pa.int64()),
        ("participant", pa.list_(pa.struct([("actor", _REF)]))),
        ("appointmentType", pa.struct([("coding", _CODINGS)])),
        (
            "extension",
            pa.list_(pa.struct([("url", pa.string()), ("valueBoolean", pa.bool_()), ("valueReference", _REF)])),
        ),
        ("cancelationReason", pa.struct([("coding", _CODINGS)])),
    ]
)
_READ = pajson.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")
_NULLS = (b":null", b"[null", b",null")  # a JSON null, wherever it is (or text that looks like one)

_STATUS = {
    "proposed": "booked",
    "pending": "booked",
    "waitlist": "booked",
    "booked": "booked",
    "arrived": "arrived",
    "checked-in": "arrived",
    "fulfilled": "fulfilled",
    "noshow": "noshow",
    "cancelled": "cancelled",
    "entered-in-error": "entered_in_error",
}


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _instant_ok(column: str) -> str:
    return (
        f"({column} IS NULL OR (regexp_full_match({column}, '{_INSTANT}') "
        f"AND TRY_CAST({column} AS TIMESTAMPTZ) IS NOT NULL))"
    )


def _first_id(kind: str) -> str:
    """The id of the first reference of `kind` among the participants' (Python's loop keeps the first)."""
    return f"nullif(split_part(list_filter(refs, lambda x: split_part(x, '/', 1) = '{kind}')[1], '/', 2), '')"


def _query() -> str:
    status_words = ", ".join(_lit(k) for k in _STATUS)
    status_map = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in _STATUS.items())
    cancel_system = _lit(CANCEL_REASON_SYSTEM)
    return f"""
WITH c AS (
  SELECT *, meta.lastUpdated AS updated, status = 'cancelled' AS cancelled,
    list_filter(list_transform(participant, lambda p: p.actor.reference), lambda r: r IS NOT NULL) AS refs,
    coalesce(appointmentType.coding, []) AS acodings, coalesce(cancelationReason.coding, []) AS rcodings,
    list_filter(extension, lambda e: e.url = {_lit(NEW_PATIENT_URL)})[1].valueBoolean AS new_value,
    list_filter(extension, lambda e: e.url = {_lit(PREVIOUS_APPOINTMENT_URL)})[1].valueReference.reference
      AS previous
  FROM chunk
), m AS (
  SELECT *,
    list_filter(rcodings, lambda k: (k.system IS NULL OR k.system = {cancel_system})
      AND coalesce(k.code, '') <> '')[1].code AS cancel_code,
    coalesce(resourceType = 'Appointment' AND id <> '' AND status IN ({status_words})
      AND {_instant_ok("updated")} AND {_instant_ok("created")} AND {_instant_ok('"start"')} AND {_instant_ok('"end"')}
      AND (minutesDuration IS NULL OR minutesDuration BETWEEN {-_INT32} AND {_INT32 - 1})
      AND list_bool_and(list_transform(refs, lambda r: regexp_full_match(r, '{_REFERENCE}'))) IS NOT FALSE
      AND list_bool_and(list_transform(acodings, lambda k: regexp_full_match(coalesce(k.code, ''), '{_CODE}')))
        IS NOT FALSE
      AND list_bool_and(list_transform(rcodings, lambda k: regexp_full_match(coalesce(k.code, ''), '{_CODE}')))
        IS NOT FALSE
      AND (previous IS NULL OR regexp_full_match(previous, '{_REFERENCE}')), FALSE) AS ok,
    TRY_CAST("start" AS TIMESTAMPTZ) AS start_at, TRY_CAST("end" AS TIMESTAMPTZ) AS end_at
  FROM c
)
SELECT _pos, ok,
  TRY_CAST(updated AS TIMESTAMPTZ) AS _version,
  'fhir' AS source,
  id AS appointment_id,
  {_first_id("Location")} AS location_id,
  CAST(NULL AS VARCHAR) AS provider_id,
  'Practitioner/' || {_first_id("Practitioner")} AS provider_ref,
  {_first_id("Patient")} AS patient_id,
  lower(coalesce(
    list_filter(acodings, lambda k: k.system = {_lit(APPOINTMENT_TYPE_SYSTEM)} AND coalesce(k.code, '') <> '')[1].code,
    nullif(acodings[1].code, ''))) AS visit_type,
  new_value AS is_new_patient,
  TRY_CAST(created AS TIMESTAMPTZ) AS booked_at,
  start_at AS scheduled_start,
  CASE WHEN minutesDuration IS NOT NULL THEN minutesDuration
    WHEN start_at IS NOT NULL AND end_at IS NOT NULL
    THEN CAST(round_even((epoch_us(end_at) - epoch_us(start_at)) / 1000000 / 60, 0) AS BIGINT) END
    AS scheduled_minutes,
  CASE status {status_map} END AS status,
  status AS status_source,
  CASE WHEN cancelled THEN TRY_CAST(updated AS TIMESTAMPTZ) END AS cancelled_at,
  CASE WHEN NOT cancelled OR cancel_code IS NULL THEN NULL
    WHEN starts_with(cancel_code, 'pat') THEN 'patient'
    WHEN starts_with(cancel_code, 'prov') THEN 'provider'
    WHEN cancel_code IN ('maint', 'meds-inc', 'oth-room') THEN 'practice' ELSE 'other' END AS cancel_initiator,
  CASE WHEN split_part(previous, '/', 1) = 'Appointment' THEN split_part(previous, '/', 2) END AS rebooked_from_id
FROM m
"""


_SQL = _query()


class AppointmentSql:
    """A DuckDB connection of its own that maps chunks of Appointment lines (one per file)."""

    def __init__(self, pseudonymizer: Pseudonymizer) -> None:
        self.key = pseudonymizer.key
        self.con = duckdb.connect(config={"memory_limit": "512MB"})
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")

    def close(self) -> None:
        self.con.close()

    def appointments(self, items: list[tuple[int, str]], columns: list[str]) -> pa.Table | None:
        """The `appointments` rows of `items` ((line number, line) of non-blank lines), with
        `_pos`, `_version` and `columns` as the Python mapper gives them, or None when some line
        is not one this query reads exactly as the Python mapper does."""
        if not items:
            return None
        encoded = []
        try:
            for _, line in items:
                text = line.encode()
                if orjson.dumps(orjson.loads(text)) != text:
                    return None
                encoded.append(text)
        except (ValueError, TypeError):  # orjson refuses it: `json` decides, on the exact path
            return None
        data = b"\n".join(encoded)
        if any(null in data for null in _NULLS):
            return None
        try:
            chunk = pajson.read_json(io.BytesIO(data), parse_options=_READ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a value of another type than the mapping reads
            return None
        if chunk.num_rows != len(items):
            return None
        chunk = chunk.append_column("_pos", pa.array([n for n, _ in items], pa.int64()))
        self.con.register("chunk", chunk)
        try:
            rows = self.con.sql(_SQL).to_arrow_table()
        finally:
            self.con.unregister("chunk")
        if rows.num_rows != len(items) or not pc.all(rows.column("ok")).as_py():
            return None
        rows = rows.sort_by("_pos")  # in file order, as the Python mapper gives them
        patients = rows.column("patient_id").combine_chunks().dictionary_encode()
        keys = pa.array([self.key(SOURCE, v) for v in patients.dictionary.to_pylist()], pa.string())
        rows = rows.append_column("patient_key", keys.take(patients.indices))
        return rows.select(["_pos", "_version", *columns])
