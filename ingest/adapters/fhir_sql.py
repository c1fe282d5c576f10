"""The bulk of a FHIR NDJSON export mapped inside DuckDB: the fast path of `ingest.adapters.fhir` (issue 22).

Slot, Appointment, Encounter and DocumentReference files hold nearly all of an export's lines.

The per-resource Python mapper (`fhir._Mapper`) is the definition; this module
gives exactly its rows for the chunks where every line is a resource the fast path reads the
same way Python does: Arrow's JSON reader turns the chunk into typed columns (C++, no Python
object per value), and one SQL query maps them. Anything else in a chunk (another resource
type, a line that is not strict JSON, a JSON null, a duplicate key, a value of an
unexpected JSON type, a reference that is not a plain `Type/id`, a date-time that is not plain
ISO 8601 with an offset, a status word the mapping does not know, a resource the mapping
ignores) makes `FhirSql.rows` return None, and the caller maps the chunk the exact way: every
reject, warning and sentence stays
the Python path's.

Why the conditions are what they are:
- JSON: Arrow's reader (RapidJSON) refuses whatever Python's `json` refuses (trailing commas,
  comments, control characters, bad escapes, leading zeros, trailing text), and more (lone
  surrogates, numbers beyond a double); it refuses a duplicated key the mapping reads (Python
  would keep the last), a value of another JSON type than the schema's, and it reads two
  objects on one line as two rows (the row count then differs). No `null` in a chunk: for
  Python an explicit null and an absent key differ in places (`r.get("meta", {})`), for Arrow
  they do not. The test `test_fhir_sql` holds each of these.
- Date-times: `datetime.fromisoformat` and DuckDB's cast agree on `YYYY-MM-DDThh:mm:ss[.fff
  or .ffffff](Z|±hh:mm)`; a bare date (local midnight) or a local time goes the Python way.
- References: `Type/id` with a FHIR id (letters, digits, `-`, `.`) splits the same way in both;
  conditional, versioned and absolute references go the Python way. Codes are ASCII (`lower`).
- Duration without `minutesDuration`: Python's `round` (half to even) over the same double,
  so `round_even`.
Patient ids are pseudonymized in Python (HMAC), once per distinct id of the chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from ingest.adapters.fhir_codes import (
    APPOINTMENT_STATUS,
    APPOINTMENT_TYPE_SYSTEM,
    CANCEL_REASON_SYSTEM,
    CLINIC_CLASSES,
    ENCOUNTER_STATUS,
    NEW_PATIENT_URL,
    PREVIOUS_APPOINTMENT_URL,
    SLOT_STATUS,
    SOURCE,
    V2_CLINIC_CLASSES,
    V2_PATIENT_CLASS,
)
from ingest.adapters.fhir_fields import arrow_schema
from ingest.pseudonymize import Pseudonymizer

_INSTANT = (
    "[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "(\\.[0-9]{3}|\\.[0-9]{6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_REFERENCE = "[A-Za-z]+/[A-Za-z0-9.\\-]{1,64}"
_CODE = "[A-Za-z0-9._\\-]*"
_INT32 = 2**31

_NULL = re.compile(rb"[:\[,][ \t]*null")  # a JSON null, wherever it is (or text that looks like one)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _instant_ok(column: str, cast: str | None = None) -> str:
    """`column` is absent or an instant both readers read alike; `cast` names the column that
    already holds its TRY_CAST (computed once for the check and the row)."""
    cast = cast or f"TRY_CAST({column} AS TIMESTAMPTZ)"
    return f"({column} IS NULL OR (regexp_full_match({column}, '{_INSTANT}') AND {cast} IS NOT NULL))"


# A row is kept only when every reference it reads is a plain `Type/id` (`_plain`, in `ok`): one
# "/", a type of letters, an id of at least one character. So a reference of `kind` is one that
# starts with "kind/" and its id is what follows; `starts_with` and `substr` are a third of the
# cost of `split_part` inside the participants' lambdas.


def _first_ref(kind: str, refs: str = "refs") -> str:
    """The first reference of `kind` among the participants' (Python's loop keeps the first)."""
    return f"list_filter({refs}, lambda x: starts_with(x, '{kind}/'))[1]"


def _first_id(kind: str, refs: str = "refs") -> str:
    """The id of the first reference of `kind` among the participants'."""
    return f"substr({_first_ref(kind, refs)}, {len(kind) + 2})"


def _id_of(ref: str, kind: str) -> str:
    """The id of one reference text if it is of `kind` (`_reference_id`)."""
    return f"(CASE WHEN starts_with({ref}, '{kind}/') THEN substr({ref}, {len(kind) + 2}) END)"


def _plain(refs: str) -> str:
    """Every reference text of a list is a plain Type/id."""
    return f"(list_bool_and(list_transform({refs}, lambda r: regexp_full_match(r, '{_REFERENCE}'))) IS NOT FALSE)"


def _encounter_query() -> str:
    """`fhir._Mapper.encounter`: a participant typed PPRF or ATND first (a stable sort), the first
    statusHistory entry of each status, the first location and appointment only."""
    status_words = ", ".join(_lit(k) for k in ENCOUNTER_STATUS)
    status_map = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in ENCOUNTER_STATUS.items())
    v2 = _lit(V2_PATIENT_CLASS)
    v2_classes, v3_classes = (", ".join(_lit(k) for k in classes) for classes in (V2_CLINIC_CLASSES, CLINIC_CLASSES))
    telehealth = ", ".join(_lit(k) for k, remote in (CLINIC_CLASSES | V2_CLINIC_CLASSES).items() if remote)
    typed = (
        "coalesce(list_has_any(flatten(list_transform(coalesce(p.type, []), "
        "lambda t: list_transform(coalesce(t.coding, []), lambda c: c.code))), ['PPRF', 'ATND']), FALSE)"
    )
    return f"""
WITH c AS (
  SELECT *, meta.lastUpdated AS updated, coalesce(class.code, 'AMB') AS klass, class.system AS klass_system,
    list_filter(statusHistory, lambda h: h.status = 'triaged')[1].period.start AS triaged,
    list_filter(statusHistory, lambda h: h.status = 'in-progress')[1].period AS seeing,
    list_concat(list_filter(participant, lambda p: {typed}), list_filter(participant, lambda p: NOT {typed}))
      AS ordered,
    location[1].location.reference AS place, appointment[1].reference AS booked, subject.reference AS who
  FROM chunk
), m AS (
  SELECT *, list_filter(list_transform(ordered, lambda p: p.individual.reference), lambda r: r IS NOT NULL) AS refs
  FROM c
), o AS (
  SELECT *,
    coalesce(resourceType = 'Encounter' AND id <> '' AND status IN ({status_words})
      AND ((klass_system = {v2} AND klass IN ({v2_classes}))
        OR (klass_system IS DISTINCT FROM {v2} AND klass IN ({v3_classes}))
        OR (klass_system IS NULL AND klass IN ({v2_classes})))
      AND {_instant_ok("updated")} AND {_instant_ok("period.start")} AND {_instant_ok('period."end"')}
      AND {_instant_ok("triaged")} AND {_instant_ok("seeing.start")} AND {_instant_ok('seeing."end"')}
      AND {_plain("refs")} AND {_plain("[place, booked, who]")}, FALSE) AS ok
  FROM m
)
SELECT _pos, ok,
  TRY_CAST(updated AS TIMESTAMPTZ) AS _version,
  {_lit(SOURCE)} AS source,
  id AS encounter_id,
  {_id_of("booked", "Appointment")} AS appointment_id,
  {_id_of("place", "Location")} AS location_id,
  CAST(NULL AS VARCHAR) AS provider_id,
  {_first_ref("Practitioner")} AS provider_ref,
  {_id_of("who", "Patient")} AS patient_id,
  klass IN ({telehealth}) AS is_telehealth,
  CASE status {status_map} END AS status,
  TRY_CAST(period.start AS TIMESTAMPTZ) AS checked_in_at,
  TRY_CAST(triaged AS TIMESTAMPTZ) AS roomed_at,
  TRY_CAST(seeing.start AS TIMESTAMPTZ) AS provider_start_at,
  TRY_CAST(seeing."end" AS TIMESTAMPTZ) AS provider_end_at,
  TRY_CAST(period."end" AS TIMESTAMPTZ) AS checked_out_at
FROM o
"""


def _query() -> str:
    status_words = ", ".join(_lit(k) for k in APPOINTMENT_STATUS)
    status_map = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in APPOINTMENT_STATUS.items())
    cancel_system = _lit(CANCEL_REASON_SYSTEM)
    return f"""
WITH c AS (
  SELECT *, meta.lastUpdated AS updated, status = 'cancelled' AS cancelled,
    TRY_CAST(meta.lastUpdated AS TIMESTAMPTZ) AS updated_at, TRY_CAST(created AS TIMESTAMPTZ) AS created_at,
    TRY_CAST("start" AS TIMESTAMPTZ) AS start_at, TRY_CAST("end" AS TIMESTAMPTZ) AS end_at,
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
      AND {_instant_ok("updated", "updated_at")} AND {_instant_ok("created", "created_at")}
      AND {_instant_ok('"start"', "start_at")} AND {_instant_ok('"end"', "end_at")}
      AND (minutesDuration IS NULL OR minutesDuration BETWEEN {-_INT32} AND {_INT32 - 1})
      AND list_bool_and(list_transform(refs, lambda r: regexp_full_match(r, '{_REFERENCE}'))) IS NOT FALSE
      AND list_bool_and(list_transform(acodings, lambda k: regexp_full_match(coalesce(k.code, ''), '{_CODE}')))
        IS NOT FALSE
      AND list_bool_and(list_transform(rcodings, lambda k: regexp_full_match(coalesce(k.code, ''), '{_CODE}')))
        IS NOT FALSE
      AND (previous IS NULL OR regexp_full_match(previous, '{_REFERENCE}')), FALSE) AS ok
  FROM c
)
SELECT _pos, ok,
  updated_at AS _version,
  {_lit(SOURCE)} AS source,
  id AS appointment_id,
  {_first_id("Location")} AS location_id,
  CAST(NULL AS VARCHAR) AS provider_id,
  {_first_ref("Practitioner")} AS provider_ref,
  {_first_id("Patient")} AS patient_id,
  lower(coalesce(
    list_filter(acodings, lambda k: k.system = {_lit(APPOINTMENT_TYPE_SYSTEM)} AND coalesce(k.code, '') <> '')[1].code,
    nullif(acodings[1].code, ''))) AS visit_type,
  new_value AS is_new_patient,
  created_at AS booked_at,
  start_at AS scheduled_start,
  CASE WHEN minutesDuration IS NOT NULL THEN minutesDuration
    WHEN start_at IS NOT NULL AND end_at IS NOT NULL
    THEN CAST(round_even((epoch_us(end_at) - epoch_us(start_at)) / 1000000 / 60, 0) AS BIGINT) END
    AS scheduled_minutes,
  CASE status {status_map} END AS status,
  status AS status_source,
  CASE WHEN cancelled THEN updated_at END AS cancelled_at,
  CASE WHEN NOT cancelled OR cancel_code IS NULL THEN NULL
    WHEN starts_with(cancel_code, 'pat') THEN 'patient'
    WHEN starts_with(cancel_code, 'prov') THEN 'provider'
    WHEN cancel_code IN ('maint', 'meds-inc', 'oth-room') THEN 'practice' ELSE 'other' END AS cancel_initiator,
  CASE WHEN split_part(previous, '/', 1) = 'Appointment' THEN split_part(previous, '/', 2) END AS rebooked_from_id
FROM m
"""


def _slot_query() -> str:
    """`fhir._Mapper.slot` (a Slot entered in error is ignored: the Python way)."""
    status_map = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in SLOT_STATUS.items())
    words = ", ".join(_lit(k) for k in SLOT_STATUS)
    return f"""
WITH c AS (
  SELECT *, meta.lastUpdated AS updated, schedule.reference AS plan, coalesce(appointmentType.coding, []) AS codings,
    TRY_CAST("start" AS TIMESTAMPTZ) AS start_at, TRY_CAST("end" AS TIMESTAMPTZ) AS end_at
  FROM chunk
)
SELECT _pos,
  coalesce(resourceType = 'Slot' AND id <> '' AND status IN ({words})
    AND {_instant_ok("updated")} AND {_instant_ok('"start"')} AND {_instant_ok('"end"')} AND {_plain("[plan]")}
    AND list_bool_and(list_transform(codings, lambda k: regexp_full_match(coalesce(k.code, ''), '{_CODE}')))
      IS NOT FALSE, FALSE) AS ok,
  TRY_CAST(updated AS TIMESTAMPTZ) AS _version,
  {_lit(SOURCE)} AS source,
  id AS slot_id,
  (CASE WHEN starts_with(plan, 'Schedule/') THEN plan END) AS schedule_ref,
  lower(nullif(codings[1].code, '')) AS visit_type,
  start_at,
  CASE WHEN start_at IS NOT NULL AND end_at IS NOT NULL
    THEN CAST(round_even((epoch_us(end_at) - epoch_us(start_at)) / 1000000 / 60, 0) AS BIGINT) END AS minutes,
  CASE status {status_map} END AS status,
  status AS status_source
FROM c
"""


def _document_query() -> str:
    """`fhir._Mapper.document`: the first encounter of its context (a note that is not final, or
    documents no encounter, is ignored: the Python way)."""
    return f"""
WITH c AS (
  SELECT *, meta.lastUpdated AS updated, context.encounter[1].reference AS documented FROM chunk
)
SELECT _pos,
  coalesce(resourceType = 'DocumentReference' AND id <> '' AND status IS DISTINCT FROM 'entered-in-error'
    AND coalesce(docStatus, 'final') IN ('final', 'amended')
    AND {_instant_ok("updated")} AND {_instant_ok('"date"')} AND {_plain("[documented]")}
    AND {_id_of("documented", "Encounter")} IS NOT NULL, FALSE) AS ok,
  TRY_CAST(updated AS TIMESTAMPTZ) AS _version,
  {_lit(SOURCE)} AS source,
  {_id_of("documented", "Encounter")} AS encounter_id,
  TRY_CAST("date" AS TIMESTAMPTZ) AS chart_closed_at
FROM c
"""


# resource type -> (what Arrow reads, typed as `fhir_fields.READS` declares it, the mapping)
_KINDS = {
    "Slot": (arrow_schema("Slot"), _slot_query()),
    "Appointment": (arrow_schema("Appointment"), _query()),
    "Encounter": (arrow_schema("Encounter"), _encounter_query()),
    "DocumentReference": (arrow_schema("DocumentReference"), _document_query()),
}


@dataclass(frozen=True)
class Lines:
    """Non-blank NDJSON lines as UTF-8 bytes joined by "\\n", with the line number of each."""

    data: bytes
    positions: pa.Array  # int64

    @classmethod
    def of(cls, items: list[tuple[int, str]]) -> Lines:
        """`items` ((line number, line) pairs) as Lines."""
        data = "\n".join(line for _, line in items).encode("utf-8", "surrogatepass")
        return cls(data, pa.array([n for n, _ in items], pa.int64()))


class FhirSql:
    """A DuckDB connection of its own that maps chunks of Slot, Appointment, Encounter or
    DocumentReference lines (one per file): the bulk of a practice's FHIR export."""

    kinds = tuple(_KINDS)

    def __init__(self, pseudonymizer: Pseudonymizer) -> None:
        self.pseudonymizer = pseudonymizer
        self.con = duckdb.connect(config={"memory_limit": "512MB"})
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")

    def close(self) -> None:
        self.con.close()

    def rows(self, kind: str, items: list[tuple[int, str]] | Lines, columns: list[str]) -> pa.Table | None:
        """The rows of the `kind` resources on `items` ((line number, line) of non-blank lines, or
        the same as `Lines`), with `_pos`, `_version` and `columns` as the Python mapper gives them,
        or None when some line is not one this path reads exactly as the Python mapper does."""
        schema, sql = _KINDS[kind]
        lines = items if isinstance(items, Lines) else Lines.of(items)
        if not len(lines.positions):
            return None
        data = lines.data
        if b"null" in data and _NULL.search(data):  # the plain search first: a regex over every byte is slow
            return None
        try:
            read = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
            chunk = pajson.read_json(pa.BufferReader(data), parse_options=read)  # no copy of the bytes
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a value of another type than the mapping reads
            return None
        if chunk.num_rows != len(lines.positions):  # a line held two objects (each line holds one at least)
            return None
        chunk = chunk.append_column("_pos", lines.positions)
        self.con.register("chunk", chunk)
        try:
            rows = self.con.sql(sql).to_arrow_table()
        finally:
            self.con.unregister("chunk")
        if rows.num_rows != len(lines.positions) or not pc.all(rows.column("ok")).as_py():
            return None
        positions = rows.column("_pos").to_numpy()
        if not (positions[1:] > positions[:-1]).all():  # DuckDB keeps a projection's order; sort if it did not
            rows = rows.sort_by("_pos")  # in file order, as the Python mapper gives them
        if "patient_id" in rows.column_names:
            rows = rows.append_column("patient_key", self.pseudonymizer.column(SOURCE, rows.column("patient_id")))
        return rows.select(["_pos", "_version", *columns])
