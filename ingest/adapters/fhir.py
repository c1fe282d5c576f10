"""FHIR R4 / R4B -> canonical rows, from Bulk Data NDJSON or a JSON resource / Bundle.

The mapping is docs/contracts.md section 1 ("FHIR R4"); in short:

| resource | rows |
|---|---|
| Location | locations (location_id = Location.id) |
| Practitioner | providers (provider_id = NPI), and source_references (Practitioner/id -> NPI) |
| Schedule | source_references (Schedule/id -> its practitioner and location, what its Slots refer to) |
| Slot | slots (status busy-unavailable -> blocked, busy-tentative -> tentative) |
| Appointment | appointments (cancelled_at = meta.lastUpdated of a cancelled one) |
| Encounter (AMB, VR, v2 O) | encounters: period = check-in/out; history triaged = roomed, in-progress = provider |
| DocumentReference (final) | encounters.chart_closed_at of the encounter it documents |
| ServiceRequest (a referral) | referrals (created, requester, specialty, priority) |
| Task (focus = that ServiceRequest) | referrals stage times (sent, scheduled, seen, report-received) and location |

Patient resources are counted as ignored: patients appear only as pseudonymous keys. A
reference to a Practitioner or Schedule is kept on the row as written (`provider_ref`,
`schedule_ref`) and resolves to canonical ids through `source_references` (or, for a
Practitioner whose id is its NPI, through the providers table), whenever that resource is
loaded: in the same file, the same call or any later run (`ingest.references`). Until then the
id is empty, and the run says so in a warning. A resource's version is its `meta.lastUpdated`
(a Task's `lastModified`): an older version loaded after a newer one is kept out as stale.
Unknown extensions are ignored. A value the mapping reads of another JSON type than declared
(`fhir_fields.READS`) is the resource's reject, naming the field path.
"""

from __future__ import annotations

import codecs
import copy
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa

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
from ingest.adapters.fhir_fields import json_kind, wrong_type
from ingest.adapters.fhir_sql import FhirSql, Lines
from ingest.batch import RESTART, Batch, Chunk, Phase, RecordError, Target, rows_to_arrow
from ingest.context import Lookup, ParseContext
from ingest.errors import IngestError
from ingest.phi import is_free_text, shown
from ingest.pseudonymize import MASK, Pseudonymizer
from ingest.references import Reference
from ingest.sources import InputFile
from ingest.text import decode, sniff_encoding, text_blocks, text_lines

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
REFERRAL_STAGE_SYSTEM = "http://clinic-kpis.org/fhir/CodeSystem/referral-stage"
REFERRAL_CATEGORY = "3457005"  # SNOMED CT "Patient referral"

STAGE_COLUMNS = {
    "sent": "sent_at",
    "scheduled": "scheduled_at",
    "seen": "seen_at",
    "report-received": "report_received_at",
}
# A referral's status follows from the row, whichever resource wrote which column.
REFERRAL_STATUS = (
    "CASE WHEN status_source IN ('revoked', 'entered-in-error') THEN 'cancelled' "
    "WHEN report_received_at IS NOT NULL THEN 'closed' WHEN seen_at IS NOT NULL THEN 'seen' "
    "WHEN scheduled_at IS NOT NULL THEN 'scheduled' WHEN sent_at IS NOT NULL THEN 'sent' ELSE 'created' END"
)

# Resource types in the order their rows must be written within one file (what others refer to first).
PHASES: list[tuple[str, ...]] = [
    ("Location", "Practitioner"),
    ("Schedule",),
    ("Slot", "Appointment"),
    ("Encounter", "ServiceRequest"),
    ("DocumentReference", "Task"),
]
RANK = {kind: i for i, kinds in enumerate(PHASES) for kind in kinds}
# The targets each phase writes (each resource type maps to one), in the order they are staged.
PHASE_TARGETS: list[tuple[str, ...]] = [
    ("locations", "providers", "practitioner_refs"),
    ("schedules",),
    ("slots", "appointments"),
    ("encounters", "referrals"),
    ("charts", "referral_stages"),
]
# The target each resource type DuckDB maps (fhir_sql) writes.
KIND_TARGET = {"Slot": "slots", "Appointment": "appointments", "Encounter": "encounters", "DocumentReference": "charts"}
CHUNK_LINES = 100_000  # NDJSON lines parsed and mapped at a time (a few hundred MB of Python objects)
IGNORED_TYPES = {
    "Patient": "Patient resources (patient demographics are never stored)",
    "Organization": "Organization resources (not practice locations)",
    "PractitionerRole": "PractitionerRole resources",
}
PHI_KEYS = {"name", "telecom", "address", "birthDate", "photo", "contact", "display"}
# free text may hold anything a person typed (names, phone numbers, clinical detail); reasons and
# diagnoses are clinical detail too
FREE_TEXT_KEYS = {"text", "comment", "patientInstruction", "description", "note", "valueString"}
CLINICAL_KEYS = {"reasonCode", "reasonReference", "diagnosis", "condition", "supportingInformation"}
# values a quarantined resource keeps as they are: its id and its (pseudonymized) references
KEPT_KEYS = {"id", "resourceType", "reference", "system", "url"}


class Reject(Exception):
    """A resource that cannot become a row: (field, check, reason, value)."""

    def __init__(self, field: str | None, check: str, reason: str, value: str | None = None) -> None:
        super().__init__(reason)
        self.field, self.check, self.reason, self.value = field, check, reason, value


class Ignore(Exception):
    """A resource that is deliberately not loaded, with the reason counted in the run."""


def first_resource_type(head: str) -> str | None:
    """The resourceType of the first resource in a FHIR file's beginning, if it is FHIR."""
    for line in head.splitlines():
        if line.strip():
            try:
                doc = _json_loads(line)
            except ValueError:
                break
            return _type_of(doc)
    try:
        return _type_of(_json_loads(head))
    except ValueError:
        marker = head.find('"resourceType"')
        if marker < 0:
            return None
        rest = head[marker + len('"resourceType"') :].lstrip(" \t\r\n:").lstrip()
        return rest[1 : rest.find('"', 1)] if rest.startswith('"') else None


def _type_of(doc: Any) -> str | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        return None
    if doc["resourceType"] == "Bundle":
        kinds = [e.get("resource", {}).get("resourceType") for e in doc.get("entry", []) if isinstance(e, dict)]
        return min((k for k in kinds if k in RANK), key=RANK.get, default="Bundle")
    return doc["resourceType"]


class FhirAdapter:
    name = "fhir"

    def __init__(self, kind: str | None = None) -> None:
        self.rank = RANK.get(kind or "", len(PHASES))

    def parse(self, file: InputFile, ctx: ParseContext) -> Batch:
        """Bulk NDJSON is read and mapped CHUNK_LINES lines at a time (memory stays bounded);
        a JSON document (a resource or Bundle) is read whole."""
        if not _is_ndjson(file):
            return self._parse_whole(file, ctx)
        batch = Batch(adapter=self.name, position_kind="line")
        starts: list[tuple[int, int]] = []
        batch.chunks = self._chunks(file, ctx, batch, starts)
        pseudo = ctx.pseudonymizer
        batch.records = lambda positions: _masked_lines(file, set(positions), pseudo, starts)
        batch.after_load.append(_warn_unresolved(batch))
        return batch

    def _parse_whole(self, file: InputFile, ctx: ParseContext) -> Batch:
        text = decode(file.read(), file.name)
        kind, items = _resources(text, file.name)
        batch = Batch(adapter=self.name, position_kind=kind)
        mapped = _Mapped(_Mapper(ctx))
        records = mapped.add(items)
        batch.phases, batch.errors = mapped.phases, mapped.errors
        mapped.finish(batch)
        pseudo = ctx.pseudonymizer
        batch.records = lambda positions: {p: masked_json(records[p], pseudo) for p in positions if p in records}
        batch.after_load.append(_warn_unresolved(batch))
        return batch

    def _chunks(
        self, file: InputFile, ctx: ParseContext, batch: Batch, starts: list[tuple[int, int]]
    ) -> Iterator[Chunk]:
        """The file's resources in chunks, mapped in the order a whole-file parse maps them.

        A whole file is mapped phase by phase (what others refer to first: a Slot resolves its
        Schedule through the Schedules mapped before it). Chunks give the same order as long as
        no chunk holds a resource of an earlier phase than a chunk before it, which is so for
        every Bulk export (one resource type per file); a file that breaks it is parsed again
        whole (RESTART). `starts` receives (first line, byte offset) of each chunk read from
        UTF-8 bytes, for `_masked_lines`."""
        mapper = _Mapper(ctx)
        mapped = _Mapped(mapper)
        highest = -1
        fast: FhirSql | None = None  # opened at the first chunk DuckDB may map
        try:
            for piece in _pieces(file, starts):
                kind = next((k for k in FhirSql.kinds if piece.starts_with(k)), None)
                rows = None
                if kind is not None and RANK[kind] >= highest:
                    fast = fast or FhirSql(ctx.pseudonymizer)
                    rows = fast.rows(kind, piece.lines(), COLUMNS[KIND_TARGET[kind]])
                if rows is not None:  # the chunk mapped in DuckDB: the targets of its phase, as below
                    highest = RANK[kind]
                    order = PHASE_TARGETS[highest]
                    empty = {t: _arrow(t, []) for t in order}
                    targets = [(TARGETS[t], rows if t == KIND_TARGET[kind] else empty[t]) for t in order]
                    yield Chunk([Phase(targets, highest)], [])
                    continue
                texts = piece.texts()
                if not texts:
                    continue
                chunk = yield from self._chunk_exact(file, ctx, batch, mapped, texts, highest)
                if chunk is None:
                    return
                highest = chunk
        finally:
            if fast is not None:
                fast.close()
        mapped.finish(batch)

    def _chunk_exact(
        self,
        file: InputFile,
        ctx: ParseContext,
        batch: Batch,
        mapped: _Mapped,
        texts: list[tuple[int, str]],
        highest: int,
    ) -> Iterator[Chunk]:
        """One chunk mapped resource by resource in Python; returns the highest phase read so far,
        or None once the file had to be parsed again whole (its chunks were out of phase order)."""
        items = [(number, _line_item(number, line)) for number, line in texts]
        phases = {RANK[r["resourceType"]] for _, r in items if isinstance(r, dict) and r["resourceType"] in RANK}
        if phases and min(phases) < highest:
            yield RESTART
            whole = self._parse_whole(file, ctx)
            yield Chunk(whole.phases, whole.errors)
            batch.ignored, batch.warnings, batch.records = whole.ignored, whole.warnings, whole.records
            return None
        mapped.phases, mapped.errors = [], []
        mapped.add(items)
        yield Chunk(mapped.phases, mapped.errors)
        return max(phases, default=highest)


def _warn_unresolved(batch: Batch) -> Callable[[Lookup, int], None]:
    """After the file loads: say which of its rows refer to resources not loaded yet."""

    def check(lookup: Lookup, run_id: int) -> None:
        for ref in REFERENCES:
            if ref.ref_column is not None:
                warning = ref.unresolved(lookup, run_id)
                if warning:
                    batch.warnings.append(warning)

    return check


class _Mapped:
    """Resources mapped to rows phase by phase, with the counts a file's Batch reports.

    Ignored resources are counted as a whole-file parse counts them: first those of types no
    KPI uses (in the order the types first appear), then those the mapping ignores."""

    def __init__(self, mapper: _Mapper) -> None:
        self.mapper = mapper
        self.phases: list[Phase] = []
        self.errors: list[RecordError] = []
        self.unused: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()

    def add(self, items: Iterable[tuple[int, dict | RecordError]]) -> dict[int, dict]:
        """Map `items` (positions in file order); return the resources by position."""
        records: dict[int, dict] = {}
        for pos, resource in items:
            if isinstance(resource, RecordError):
                self.errors.append(resource)
                continue
            records[pos] = resource
        by_type: dict[str, list[tuple[int, dict]]] = {}
        for pos, resource in records.items():
            by_type.setdefault(resource["resourceType"], []).append((pos, resource))
        for rtype in by_type:
            if rtype not in RANK:
                reason = IGNORED_TYPES.get(rtype, f"{rtype} resources (not used by any KPI)")
                self.unused[reason] += len(by_type[rtype])
        for order, kinds in enumerate(PHASES):
            phase_rows: dict[str, list[dict]] = {}
            for rtype in kinds:
                for pos, resource in by_type.get(rtype, []):
                    try:
                        self.mapper.check(rtype, resource)
                        version = self.mapper.version(resource)
                        for target, row in self.mapper.map(rtype, resource):
                            phase_rows.setdefault(target, []).append({"_pos": pos, "_version": version, **row})
                    except Reject as r:
                        self.errors.append(RecordError(pos, r.field, r.check, r.reason, r.value))
                    except Ignore as why:
                        self.ignored[str(why)] += 1
            if phase_rows:
                # every target of the phase, in one order: a chunked file's chunks line up
                targets = [*PHASE_TARGETS[order], *phase_rows]
                self.phases.append(
                    Phase([(TARGETS[t], _arrow(t, phase_rows.get(t, []))) for t in dict.fromkeys(targets)], order)
                )
        return records

    def finish(self, batch: Batch) -> None:
        batch.ignored.update(self.unused)
        batch.ignored.update(self.ignored)


# -- reading the file ---------------------------------------------------------------------


def _resources(text: str, name: str) -> tuple[str, Iterator[tuple[int, dict | RecordError]]]:
    """('line', NDJSON resources by line) or ('record', a JSON document's resources by entry)."""
    stripped = text.strip()
    if not stripped:
        raise IngestError(f"{name}: the file is empty; expected FHIR resources, one JSON object per line")
    if _first_line_of_ndjson(stripped.split("\n", 1)[0]):
        return "line", _ndjson(text)
    try:
        doc = _json_loads(stripped)
    except ValueError as exc:
        raise IngestError(
            f"{name}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); "
            "expected FHIR NDJSON or a JSON resource or Bundle"
        ) from None
    return "record", _document(doc, name)


def _first_line_of_ndjson(line: str) -> bool:
    """Whether a file whose first line is `line` is NDJSON: the line is JSON on its own, and not a
    Bundle (a Bundle written on one line is a document: Bulk NDJSON holds no Bundles, and read as
    NDJSON its entries were ignored as one unused Bundle resource)."""
    try:
        doc = _json_loads(line)
    except ValueError:
        return False
    return not (isinstance(doc, dict) and doc.get("resourceType") == "Bundle")


def _ndjson(text: str) -> Iterator[tuple[int, dict | RecordError]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, _line_item(number, line)


def _json_loads(text: str) -> Any:
    """`json.loads`, with JSON nested deeper than Python's recursion allows as a ValueError (a
    JSONDecodeError saying so) rather than a RecursionError that would abort the whole command."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to read", text, 0) from None


def _loads(text: str) -> Any:
    """`json.loads(text)`, through orjson (about 3x faster) when it reads the text.

    orjson refuses a few things `json` accepts (NaN, integers beyond 64 bits, lone surrogates);
    for any text it refuses, `json` decides, so values and error messages stay exactly `json`'s."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _json_loads(text)


def _line_item(number: int, line: str) -> dict | RecordError:
    """The resource on NDJSON line `number`, or why the line is not one."""
    try:
        resource = _loads(line)
    except ValueError as exc:
        return RecordError(number, None, "invalid_json", f"the line is not valid JSON ({exc.msg})")
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return RecordError(number, "resourceType", "not_fhir", "the line is not a FHIR resource")
    return resource


def _is_ndjson(file: InputFile) -> bool:
    """Whether `_resources` would read `file` as NDJSON, decided from its first line.

    Only a file whose first non-blank line ends within the first block of text and parses as
    JSON is streamed; any other file goes the whole-file way, with its errors as before."""
    head = next(text_blocks(file), "").lstrip()
    return "\n" in head and _first_line_of_ndjson(head.split("\n", 1)[0])


def _masked_lines(
    file: InputFile, wanted: set[int], pseudonymizer: Pseudonymizer, starts: list[tuple[int, int]]
) -> dict[int, str | None]:
    """The masked JSON of the resources on lines `wanted`, read again from the file (a chunked
    load keeps no resources: only rejected ones are shown, and they are few), from the start of
    the chunk that holds the first of them (`starts`: (first line, byte offset) of each chunk
    read from UTF-8 bytes; none: from the start of the file)."""
    found: dict[int, str | None] = {}
    if not wanted:
        return found
    last = max(wanted)
    first, offset = max(((n, o) for n, o in starts if n <= min(wanted)), default=(1, -1))
    lines = text_lines(file) if offset < 0 else _utf8_lines(file, offset)
    for number, line in enumerate(lines, start=first):
        if number in wanted and line.strip():
            item = _line_item(number, line)
            found[number] = masked_json(item, pseudonymizer) if isinstance(item, dict) else None
        if number >= last:
            break
    return found


# -- NDJSON in pieces of whole lines ---------------------------------------------------------

# Bytes where Python's str.splitlines ends a line besides "\n": a piece holding none of them has
# exactly its "\n"-separated lines.
_BREAK_BYTES = (b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_BREAK_CHARS = ("\x85", "\u2028", "\u2029")  # the same, beyond ASCII
_NOT_RESOURCE_START = re.compile(rb"\n[^{]")  # a line that does not start a JSON object (blank, indented, ...)


@dataclass
class _Piece:
    """CHUNK_LINES lines of an NDJSON file: the text's lines from line `first` on (numbered as
    `str.splitlines` numbers them), kept as the file's UTF-8 bytes when every line is one that
    starts a JSON object and ends at "\n" (`plain`), so that DuckDB's way reads them with no
    Python string per line."""

    first: int
    data: bytes | None = None  # the UTF-8 bytes (plain pieces)
    count: int = 0  # lines (plain pieces)
    text: list[str] | None = None  # the lines (any other piece)

    def starts_with(self, kind: str) -> bool:
        """Whether the piece's first line is a resource of `kind`, as written by a Bulk export."""
        if self.data is not None:
            return f'"resourceType":"{kind}"'.encode() in self.data[: self.data.find(b"\n")]
        head = next((line for line in self.text or [] if line.strip()), "")
        return f'"resourceType":"{kind}"' in head

    def lines(self) -> Lines:
        if self.data is not None:
            positions = pa.array(np.arange(self.first, self.first + self.count, dtype=np.int64))
            return Lines(self.data, positions)
        return Lines.of(self.texts())

    def texts(self) -> list[tuple[int, str]]:
        """(line number, line) of the piece's non-blank lines."""
        lines = self.text if self.text is not None else (self.data or b"").decode("utf-8").splitlines()
        return [(n, line) for n, line in enumerate(lines, start=self.first) if line.strip()]


def _pieces(file: InputFile, starts: list[tuple[int, int]]) -> Iterator[_Piece]:
    """The file's lines CHUNK_LINES at a time (a UTF-16 file's: CHUNK_LINES non-blank lines)."""
    first = 1
    blocks = file.blocks()
    head = next(blocks, b"")
    encoding, skip = sniff_encoding(head)
    if encoding != "utf-8":
        blocks.close()
        texts: list[str] = []
        for line in text_lines(file):
            texts.append(line)
            if line.strip() and len(texts) >= CHUNK_LINES:
                yield _Piece(first, text=texts)
                first, texts = first + len(texts), []
        yield _Piece(first, text=texts)
        return
    offset = skip
    for data, newlines in _byte_pieces(itertools.chain([head[skip:]], blocks), CHUNK_LINES):
        starts.append((first, offset))
        offset += len(data)
        if data.isascii():
            plain = not any(b in data for b in _BREAK_BYTES)
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                decode(file.read(), file.name)  # raises the error with its line and offset
                raise
            plain = not any(b in data for b in _BREAK_BYTES) and not any(c in text for c in _BREAK_CHARS)
        if plain and data.startswith(b"{") and not _NOT_RESOURCE_START.search(data):
            count = newlines + (not data.endswith(b"\n"))
            yield _Piece(first, data=data, count=count)
            first += count
        else:
            lines = data.decode("utf-8").splitlines()
            yield _Piece(first, text=lines)
            first += len(lines)


def _byte_pieces(blocks: Iterator[bytes], size: int) -> Iterator[tuple[bytes, int]]:
    """`blocks` cut into pieces of `size` lines, each ending just after a "\n" (the last maybe not),
    with the number of "\n" in each."""
    pending: list[bytes] = []
    count = 0  # lines in `pending`
    for block in blocks:
        start, n = 0, block.count(b"\n")
        while count + n >= size:  # the piece ends in this block
            end = start
            for _ in range(size - count):
                end = block.index(b"\n", end) + 1
            pending.append(block[start:end])
            yield b"".join(pending), size
            pending, n, count, start = [], n - (size - count), 0, end
        pending.append(block[start:] if start else block)
        count += n
    rest = b"".join(pending)
    if rest:
        yield rest, count


def _utf8_lines(file: InputFile, offset: int) -> Iterator[str]:
    """The lines of UTF-8 `file` from byte `offset` (the start of a line) on, as `text_lines` gives them."""
    with file.open() as stream:
        if stream.seekable():
            stream.seek(offset)
        else:
            while offset > 0 and (skipped := stream.read(min(offset, 4 << 20))):
                offset -= len(skipped)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        carry = ""
        while block := stream.read(4 << 20):
            text = carry + decoder.decode(block)
            cut = text.rfind("\n") + 1
            carry = text[cut:]
            yield from text[:cut].splitlines()
        carry += decoder.decode(b"", final=True)
        if carry:
            yield from carry.splitlines()


def _document(doc: Any, name: str) -> Iterator[tuple[int, dict | RecordError]]:
    if not isinstance(doc, dict) or "resourceType" not in doc:
        raise IngestError(f"{name}: the JSON document is not a FHIR resource (no resourceType)")
    if doc["resourceType"] != "Bundle":
        yield 1, doc
        return
    for i, entry in enumerate(doc.get("entry", []), start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or "resourceType" not in resource:
            yield i, RecordError(i, "resource", "not_fhir", "the Bundle entry holds no FHIR resource")
        else:
            yield i, resource


# -- mapping ----------------------------------------------------------------------------------


# A Practitioner reference resolves to the NPI its Practitioner resource states (source_references),
# else to itself when the export uses NPIs as Practitioner ids (a provider of that NPI is loaded).
def _practitioner_join(ref: str, alias: str = "pr") -> str:
    return (
        f"LEFT JOIN main.source_references AS {alias} ON {alias}.source = '{SOURCE}' AND {alias}.reference = {ref} "
        f"LEFT JOIN main.providers AS {alias}_npi "
        f"ON {alias}_npi.provider_id = regexp_extract({ref}, '^Practitioner/(.+)$', 1)"
    )


def _provider(ref_column: str, id_column: str) -> tuple[str, str]:
    """A provider column derived from its reference column (the id as written when there is none)."""
    return (
        id_column,
        f"CASE WHEN row.{ref_column} IS NULL THEN row.{id_column} "
        "ELSE coalesce(pr.provider_id, pr_npi.provider_id) END",
    )


# A Slot's provider and location are its Schedule's; the Schedule names its practitioner by reference.
_SLOT_JOIN = (
    f"LEFT JOIN main.source_references AS sch ON sch.source = '{SOURCE}' AND sch.reference = row.schedule_ref "
    + _practitioner_join("sch.provider_ref")
)
_SLOT_DERIVED = (
    (
        "provider_id",
        "CASE WHEN row.schedule_ref IS NULL THEN row.provider_id "
        "ELSE coalesce(sch.provider_id, pr.provider_id, pr_npi.provider_id) END",
    ),
    ("location_id", "CASE WHEN row.schedule_ref IS NULL THEN row.location_id ELSE sch.location_id END"),
)

TARGETS = {
    "locations": Target("locations"),
    "providers": Target("providers"),
    "practitioner_refs": Target("source_references", counted=False),
    "schedules": Target("source_references"),
    "slots": Target("slots", derived=_SLOT_DERIVED, join=_SLOT_JOIN),
    "appointments": Target(
        "appointments", derived=(_provider("provider_ref", "provider_id"),), join=_practitioner_join("row.provider_ref")
    ),
    "encounters": Target(
        "encounters", derived=(_provider("provider_ref", "provider_id"),), join=_practitioner_join("row.provider_ref")
    ),
    "charts": Target("encounters", mode="update", writer="chart"),
    "referrals": Target(
        "referrals",
        derived=(("status", REFERRAL_STATUS), _provider("referring_provider_ref", "referring_provider_id")),
        join=_practitioner_join("row.referring_provider_ref"),
    ),
    "referral_stages": Target("referrals", mode="update", derived=(("status", REFERRAL_STATUS),), writer="stages"),
}
# Updates that wait for their row, by (table, writer): applied by these targets when it arrives.
WAITING_TARGETS = {(t.table, t.writer): t for t in TARGETS.values() if t.mode == "update"}


def _again(target: str, columns: tuple[str, ...], where: str, ref: str, what: str, waits_for: str) -> Reference:
    """The rows of `target` whose `columns` may resolve differently once a run changed what they read."""
    full = TARGETS[target]
    derived = tuple((c, sql) for c, sql in full.derived if c in columns)
    update = Target(full.table, mode="update", counted=False, derived=derived, join=full.join, writer="references")
    reads = frozenset({"source_references", "providers"})
    return Reference(update, SOURCE, reads, where, ref, what, waits_for)


_PRACTITIONERS = ("Practitioner resources", "the Practitioner export is loaded")


_CHANGED = f"SELECT reference FROM main.source_references WHERE source = '{SOURCE}' AND ingest_run_id = {{run}}"


def _resolvable(ref_column: str, id_column: str) -> str:
    """The rows whose provider (`_provider`) this run may have changed: their reference is one it
    wrote, or their provider is empty and the provider whose id their reference names (the join's
    `pr_npi`) is one it wrote.

    A slot's provider and location come through its Schedule: it is derived again when its
    Schedule changed, when the Schedule's practitioner reference did, or, its provider empty, when
    the provider the Schedule's reference names was written.

    Why not every row whose provider is empty: such a row stays empty until one of those arrives,
    and each run that writes any provider (every vendor CSV) read and derived them all again (the
    684 k appointments of a 1 M practice loaded before their Practitioners: 1.0-1.1 s of CPU per
    run, for no row changed).
    """
    return (
        f"{ref_column} IS NOT NULL AND ({ref_column} IN ({_CHANGED}) "
        f"OR ({id_column} IS NULL AND {_npi_written(ref_column)}))"
    )


def _npi_written(ref_column: str) -> str:
    """The reference names, as `Practitioner/<id>`, a provider the run wrote (the join's `pr_npi`)."""
    return (
        f"regexp_extract({ref_column}, '^Practitioner/(.+)$', 1) IN "
        "(SELECT provider_id FROM main.providers WHERE ingest_run_id = {run})"
    )


REFERENCES = [
    _again(
        "appointments",
        ("provider_id",),
        _resolvable("provider_ref", "provider_id"),
        "provider_ref",
        *_PRACTITIONERS,
    ),
    _again(
        "encounters",
        ("provider_id",),
        _resolvable("provider_ref", "provider_id"),
        "provider_ref",
        *_PRACTITIONERS,
    ),
    _again(
        "referrals",
        ("referring_provider_id",),
        _resolvable("referring_provider_ref", "referring_provider_id"),
        "referring_provider_ref",
        *_PRACTITIONERS,
    ),
    _again(
        "slots",
        ("provider_id", "location_id"),
        f"schedule_ref IS NOT NULL AND (schedule_ref IN ({_CHANGED}) "
        f"OR schedule_ref IN (SELECT reference FROM main.source_references WHERE source = '{SOURCE}' "
        f"AND provider_ref IN ({_CHANGED})) OR (provider_id IS NULL AND schedule_ref IN (SELECT reference "
        f"FROM main.source_references WHERE source = '{SOURCE}' AND {_npi_written('provider_ref')})))",
        "schedule_ref",
        "Schedule resources (or the Practitioner they name)",
        "the Schedule and Practitioner exports are loaded",
    ),
]
COLUMNS = {
    "locations": ["location_id", "name", "source"],
    "providers": ["provider_id", "npi", "name", "source"],
    "practitioner_refs": ["source", "reference", "provider_id"],
    "schedules": ["source", "reference", "provider_id", "provider_ref", "location_id"],
    "slots": [
        "source",
        "slot_id",
        "schedule_ref",
        "visit_type",
        "start_at",
        "minutes",
        "status",
        "status_source",
    ],
    "appointments": [
        "source",
        "appointment_id",
        "location_id",
        "provider_id",
        "provider_ref",
        "patient_key",
        "visit_type",
        "is_new_patient",
        "booked_at",
        "scheduled_start",
        "scheduled_minutes",
        "status",
        "status_source",
        "cancelled_at",
        "cancel_initiator",
        "rebooked_from_id",
    ],
    "encounters": [
        "source",
        "encounter_id",
        "appointment_id",
        "location_id",
        "provider_id",
        "provider_ref",
        "patient_key",
        "is_telehealth",
        "status",
        "checked_in_at",
        "roomed_at",
        "provider_start_at",
        "provider_end_at",
        "checked_out_at",
    ],
    "charts": ["source", "encounter_id", "chart_closed_at"],
    "referrals": [
        "source",
        "referral_id",
        "patient_key",
        "referring_provider_id",
        "referring_provider_ref",
        "specialty",
        "priority",
        "created_at",
        "status_source",
    ],
    "referral_stages": ["source", "referral_id", "location_id", *STAGE_COLUMNS.values()],
}


def _arrow(target: str, rows: list[dict]):  # noqa: ANN202 - pyarrow.Table
    return rows_to_arrow(rows, ["_pos", "_version", *COLUMNS[target]])


class _Mapper:
    """Maps one resource at a time to canonical rows (references kept as written)."""

    def __init__(self, ctx: ParseContext) -> None:
        self.tz = ZoneInfo(ctx.timezone)
        self.key = ctx.pseudonymizer.key
        self.handlers: dict[str, Callable[[dict], list[tuple[str, dict]]]] = {
            "Location": self.location,
            "Practitioner": self.practitioner,
            "Schedule": self.schedule,
            "Slot": self.slot,
            "Appointment": self.appointment,
            "Encounter": self.encounter,
            "DocumentReference": self.document,
            "ServiceRequest": self.service_request,
            "Task": self.task,
        }

    def map(self, rtype: str, r: dict) -> list[tuple[str, dict]]:
        if not isinstance(r.get("id"), str) or not r["id"]:
            raise Reject("id", "required", f"the {rtype} has no id")
        return self.handlers[rtype](r)

    def check(self, rtype: str, r: dict) -> None:
        """Reject a resource with a value the mapping reads of another JSON type than declared
        (`fhir_fields.READS`): the mapping below may then take each value as its type. A JSON
        null is dropped first, wherever it stands for a field: absent, as the mappers have always
        read a null string, so `"meta": null` costs no appointment (FHIR writes no nulls)."""
        _drop_nulls(r)
        wrong = wrong_type(r, rtype)
        if wrong is not None:
            path, value, expected = wrong
            scalar = value if isinstance(value, (str, int, float)) else None
            raise Reject(
                path,
                "unreadable_value",
                f"{rtype}.{path}: expected {expected}, got {json_kind(value)}",
                None if scalar is None else str(scalar),
            )

    def version(self, r: dict) -> datetime | None:
        """When the source last changed the resource: meta.lastUpdated (a Task's lastModified)."""
        meta = r.get("meta")
        if isinstance(meta, dict) and meta.get("lastUpdated") is not None:
            return self.instant(meta["lastUpdated"], "meta.lastUpdated")
        if r.get("resourceType") == "Task" and r.get("lastModified") is not None:
            return self.instant(r["lastModified"], "lastModified")
        return None

    # -- references ---------------------------------------------------------------------------

    def provider(self, ref: Any) -> tuple[str | None, str | None]:
        """(NPI, None) for a reference that states the NPI; (None, 'Practitioner/<id>') for one
        that resolves through the Practitioner resource (see `REFERENCES`)."""
        target = _reference(ref)
        if target is None or target[0] != "Practitioner":
            return None, None
        rid = target[1]
        if rid.startswith("identifier="):
            system, _, value = rid[len("identifier=") :].partition("|")
            return (value if system == NPI_SYSTEM and value else None), None
        return None, f"Practitioner/{rid}"

    def patient(self, ref: Any) -> str | None:
        target = _reference(ref)
        if target is None or target[0] != "Patient":
            return None
        rid = target[1]
        if rid.startswith("identifier="):
            rid = rid.partition("|")[2] or rid
        return self.key(SOURCE, rid)

    def instant(self, value: Any, field: str) -> datetime | None:
        return _instant(value, field, self.tz)

    # -- resources ----------------------------------------------------------------------------

    def location(self, r: dict) -> list[tuple[str, dict]]:
        return [("locations", {"location_id": r["id"], "name": r.get("name"), "source": SOURCE})]

    def practitioner(self, r: dict) -> list[tuple[str, dict]]:
        npi = next(
            (i.get("value") for i in r.get("identifier", []) if i.get("system") == NPI_SYSTEM and i.get("value")),
            None,
        )
        if npi is None:
            raise Reject("identifier", "no_npi", f"the Practitioner has no NPI identifier (system {NPI_SYSTEM})")
        name = _human_name(r.get("name"))
        return [
            ("providers", {"provider_id": npi, "npi": npi, "name": name, "source": SOURCE}),
            ("practitioner_refs", {"source": SOURCE, "reference": f"Practitioner/{r['id']}", "provider_id": npi}),
        ]

    def schedule(self, r: dict) -> list[tuple[str, dict]]:
        provider = provider_ref = location = None
        for actor in r.get("actor", []):
            target = _reference(actor)
            if target and target[0] == "Practitioner" and provider is None and provider_ref is None:
                provider, provider_ref = self.provider(actor)
            elif target and target[0] == "Location":
                location = location or _location_id(actor)
        row = {
            "source": SOURCE,
            "reference": f"Schedule/{r['id']}",
            "provider_id": provider,
            "provider_ref": provider_ref,
            "location_id": location,
        }
        return [("schedules", row)]

    def slot(self, r: dict) -> list[tuple[str, dict]]:
        raw = r.get("status")
        if raw == "entered-in-error":
            raise Ignore("slots entered in error")
        status = _mapped(raw, SLOT_STATUS, "status", "Slot")
        start, end = self.instant(r.get("start"), "start"), self.instant(r.get("end"), "end")
        minutes = round((end - start).total_seconds() / 60) if start and end else None
        target = _reference(r.get("schedule"))
        return [
            (
                "slots",
                {
                    "source": SOURCE,
                    "slot_id": r["id"],
                    "schedule_ref": f"Schedule/{target[1]}" if target and target[0] == "Schedule" else None,
                    "visit_type": _code(r.get("appointmentType")),
                    "start_at": start,
                    "minutes": minutes,
                    "status": status,
                    "status_source": raw,
                },
            )
        ]

    def appointment(self, r: dict) -> list[tuple[str, dict]]:
        raw = r.get("status")
        status = _mapped(raw, APPOINTMENT_STATUS, "status", "Appointment")
        patient = provider = provider_ref = location = None
        for participant in r.get("participant", []):
            actor = participant.get("actor")
            target = _reference(actor)
            if target is None:
                continue
            if target[0] == "Patient":
                patient = patient or self.patient(actor)
            elif target[0] == "Practitioner" and provider is None and provider_ref is None:
                provider, provider_ref = self.provider(actor)
            elif target[0] == "Location":
                location = location or _location_id(actor)
        start = self.instant(r.get("start"), "start")
        minutes = r.get("minutesDuration")
        end = self.instant(r.get("end"), "end")
        if minutes is None and start and end:
            minutes = round((end - start).total_seconds() / 60)
        if minutes is not None and not isinstance(minutes, int):
            raise Reject(
                "minutesDuration", "unreadable_value", f"minutesDuration {shown(minutes)} is not a whole number"
            )
        cancelled = status == "cancelled"
        return [
            (
                "appointments",
                {
                    "source": SOURCE,
                    "appointment_id": r["id"],
                    "location_id": location,
                    "provider_id": provider,
                    "provider_ref": provider_ref,
                    "patient_key": patient,
                    "visit_type": _appointment_type(r.get("appointmentType")),
                    "is_new_patient": _extension(r, NEW_PATIENT_URL, "valueBoolean"),
                    "booked_at": self.instant(r.get("created"), "created"),
                    "scheduled_start": start,
                    "scheduled_minutes": minutes,
                    "status": status,
                    "status_source": raw,
                    "cancelled_at": self.instant(r.get("meta", {}).get("lastUpdated"), "meta.lastUpdated")
                    if cancelled
                    else None,
                    "cancel_initiator": _cancel_initiator(r.get("cancelationReason")) if cancelled else None,
                    "rebooked_from_id": _reference_id(
                        _extension(r, PREVIOUS_APPOINTMENT_URL, "valueReference"), "Appointment"
                    ),
                },
            )
        ]

    def encounter(self, r: dict) -> list[tuple[str, dict]]:
        coding = r.get("class") or {}
        klass, system = coding.get("code", "AMB"), coding.get("system")
        if system == V2_PATIENT_CLASS:
            classes = V2_CLINIC_CLASSES
        else:  # a v3 code, or a bare code either table may have written
            classes = CLINIC_CLASSES | (V2_CLINIC_CLASSES if system is None else {})
        if klass not in classes:
            raise Ignore(f"encounters of class {klass} (not a clinic visit: only AMB, VR and v2 O are)")
        raw = r.get("status")
        if raw == "unknown":  # valid R4: the EHR cannot say whether the visit happened
            raise Ignore("encounters of status unknown (not known to be a visit)")
        status = _mapped(raw, ENCOUNTER_STATUS, "status", "Encounter")
        period = r.get("period") or {}
        stages: dict[str, dict] = {}
        for entry in r.get("statusHistory", []):
            stages.setdefault(entry.get("status"), entry.get("period") or {})
        provider = provider_ref = None
        participants = sorted(
            r.get("participant", []),
            key=lambda p: (
                not any(c.get("code") in ("PPRF", "ATND") for t in p.get("type", []) for c in t.get("coding", []))
            ),
        )
        for participant in participants:
            if provider is None and provider_ref is None:
                provider, provider_ref = self.provider(participant.get("individual"))
        location = next((_location_id(loc.get("location")) for loc in r.get("location", [])), None)
        appointment = next(iter(r.get("appointment", [])), None)
        return [
            (
                "encounters",
                {
                    "source": SOURCE,
                    "encounter_id": r["id"],
                    "appointment_id": _reference_id(appointment, "Appointment"),
                    "location_id": location,
                    "provider_id": provider,
                    "provider_ref": provider_ref,
                    "patient_key": self.patient(r.get("subject")),
                    "is_telehealth": classes[klass],
                    "status": status,
                    "checked_in_at": self.instant(period.get("start"), "period.start"),
                    "roomed_at": self.instant(stages.get("triaged", {}).get("start"), "statusHistory(triaged).start"),
                    "provider_start_at": self.instant(
                        stages.get("in-progress", {}).get("start"), "statusHistory(in-progress).start"
                    ),
                    "provider_end_at": self.instant(
                        stages.get("in-progress", {}).get("end"), "statusHistory(in-progress).end"
                    ),
                    "checked_out_at": self.instant(period.get("end"), "period.end"),
                },
            )
        ]

    def document(self, r: dict) -> list[tuple[str, dict]]:
        if r.get("status") == "entered-in-error" or r.get("docStatus", "final") not in ("final", "amended"):
            raise Ignore("notes that are not final (docStatus preliminary or entered in error)")
        encounter = next(iter((r.get("context") or {}).get("encounter", [])), None)
        encounter_id = _reference_id(encounter, "Encounter")
        if encounter_id is None:
            raise Ignore("notes that document no encounter (context.encounter)")
        return [
            (
                "charts",
                {
                    "source": SOURCE,
                    "encounter_id": encounter_id,
                    "chart_closed_at": self.instant(r.get("date"), "date"),
                },
            )
        ]

    def service_request(self, r: dict) -> list[tuple[str, dict]]:
        categories = {c.get("code") for cat in r.get("category", []) for c in cat.get("coding", [])}
        performer = r.get("performerType")
        if not performer and REFERRAL_CATEGORY not in categories:
            raise Ignore("ServiceRequests that are orders, not referrals (no performerType or referral category)")
        specialty = None
        if performer:
            coding = next(iter(performer.get("coding", [])), {})
            specialty = performer.get("text") or coding.get("display") or coding.get("code")
        priority = r.get("priority")
        if priority is not None and priority not in ("routine", "urgent", "asap", "stat"):
            raise Reject(
                "priority",
                "unknown_value",
                f"priority {shown(priority)} is not routine, urgent, asap or stat",
                str(priority),
            )
        requester, requester_ref = self.provider(r.get("requester"))
        return [
            (
                "referrals",
                {
                    "source": SOURCE,
                    "referral_id": r["id"],
                    "patient_key": self.patient(r.get("subject")),
                    "referring_provider_id": requester,
                    "referring_provider_ref": requester_ref,
                    "specialty": specialty,
                    "priority": priority,
                    "created_at": self.instant(r.get("authoredOn"), "authoredOn"),
                    "status_source": r.get("status"),
                },
            )
        ]

    def task(self, r: dict) -> list[tuple[str, dict]]:
        referral = _reference_id(r.get("focus"), "ServiceRequest")
        stages: dict[str, datetime | None] = dict.fromkeys(STAGE_COLUMNS.values())
        tracked = False
        for output in r.get("output", []) or []:
            if not isinstance(output, dict):
                continue
            for coding in (output.get("type") or {}).get("coding", []):
                if coding.get("system") == REFERRAL_STAGE_SYSTEM and coding.get("code") in STAGE_COLUMNS:
                    tracked = True
                    column = STAGE_COLUMNS[coding["code"]]
                    stages[column] = self.instant(output.get("valueDateTime"), f"output({coding['code']})")
        location = _location_id(r.get("location"))
        # A referral still at "created" has no stage output yet, but its Task already says
        # which location referred the patient, and that belongs on the referral.
        if referral is None or not (tracked or location):
            raise Ignore("Tasks that do not track a referral (no referral-stage output or location)")
        return [("referral_stages", {"source": SOURCE, "referral_id": referral, "location_id": location, **stages})]


# -- small helpers ------------------------------------------------------------------------------


def _reference(ref: Any) -> tuple[str, str] | None:
    """(type, id) of a Reference: `Type/id`, a full URL, `Type/id/_history/n`, or conditional `Type?identifier=s|v`."""
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    text = ref["reference"]
    if "?" in text:
        kind, _, query = text.partition("?")
        return kind.rsplit("/", 1)[-1], query
    parts = text.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2:
        return None
    return parts[-2], parts[-1]


def _reference_id(ref: Any, kind: str) -> str | None:
    target = _reference(ref)
    return target[1] if target and target[0] == kind else None


def _location_id(ref: Any) -> str | None:
    target = _reference(ref)
    if target is None or target[0] != "Location":
        return None
    rid = target[1]
    if rid.startswith("identifier="):
        return rid.partition("|")[2] or None
    return rid


def _mapped(raw: Any, table: dict[str, str], field: str, rtype: str) -> str:
    if raw not in table:
        said = "missing" if raw is None else shown(raw)
        raise Reject(field, "unknown_value", f"{rtype} {field} {said} is not one of {', '.join(table)}", str(raw))
    return table[raw]


def _instant(value: Any, field: str, tz: ZoneInfo) -> datetime | None:
    """A FHIR instant/dateTime as an aware datetime; a bare date is local midnight."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Reject(field, "unreadable_value", f"{field} {shown(value)} is not a date-time", str(value))
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=tz)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Reject(
            field,
            "unreadable_value",
            f"{field} {shown(value)} is not a FHIR date-time like 2025-03-14T09:30:00-04:00",
            value,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _code(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    coding = next(iter(concept.get("coding", [])), None)
    if coding and coding.get("code"):
        return str(coding["code"]).lower()
    return None


def _appointment_type(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding", []):
        if coding.get("system") == APPOINTMENT_TYPE_SYSTEM and coding.get("code"):
            return str(coding["code"]).lower()
    return _code(concept)


def _extension(resource: dict, url: str, value_key: str) -> Any:
    return next((e.get(value_key) for e in resource.get("extension", []) if e.get("url") == url), None)


def _cancel_initiator(reason: Any) -> str | None:
    if not isinstance(reason, dict):
        return None
    for coding in reason.get("coding", []):
        code = coding.get("code") or ""
        if coding.get("system") not in (None, CANCEL_REASON_SYSTEM):
            continue
        if code.startswith("pat"):
            return "patient"
        if code.startswith("prov"):
            return "provider"
        if code in ("maint", "meds-inc", "oth-room"):
            return "practice"
        if code:
            return "other"
    return None


def _human_name(names: Any) -> str | None:
    for name in names or []:
        if name.get("text"):
            return name["text"]
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return None


def masked_json(resource: dict, pseudonymizer: Pseudonymizer) -> str:
    """The masked resource as JSON for `rejects`; a resource nested too deeply to walk keeps only
    its type and id."""
    try:
        return json.dumps(mask(resource, pseudonymizer))
    except RecursionError:
        return json.dumps({"resourceType": resource.get("resourceType"), "id": resource.get("id"), "masked": MASK})


def mask(resource: dict, pseudonymizer: Pseudonymizer) -> dict:
    """A copy of `resource` safe to keep in `rejects`: direct identifiers masked, patient ids pseudonymized."""
    masked = copy.deepcopy(resource)
    _mask(masked, pseudonymizer)
    return masked


def _drop_nulls(node: Any) -> None:
    """Remove, in place, every object field whose value is a JSON null (list items are kept)."""
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if v is None]:
            del node[key]
        for value in node.values():
            _drop_nulls(value)
    elif isinstance(node, list):
        for item in node:
            _drop_nulls(item)


def _mask(node: Any, pseudonymizer: Pseudonymizer) -> None:
    """Mask in place. Identifiers (an MRN, a member id, the resource's own business ids) are
    masked: the resource's `id` and position find it in the source system. Diagnoses and
    reasons are clinical detail, and any other value that reads like free text (a phone number,
    a sentence: `ingest.phi`) is masked too, wherever the export put it."""
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if key in PHI_KEYS or key in FREE_TEXT_KEYS or key in CLINICAL_KEYS:  # may name anyone
                node[key] = MASK
            elif key == "reference" and not isinstance(value, str):
                node[key] = MASK  # of another JSON type (a rejected resource): it may still name a patient
            elif key == "reference" and value.startswith("Patient"):
                target = _reference({"reference": value})
                node[key] = f"Patient/{pseudonymizer.key(SOURCE, target[1])}" if target else MASK
            elif key == "identifier":
                for ident in value if isinstance(value, list) else [value]:
                    if isinstance(ident, dict) and "value" in ident:
                        ident["value"] = MASK
            elif key in KEPT_KEYS:
                continue
            elif isinstance(value, str):
                node[key] = MASK if is_free_text(value) else value
            else:
                _mask(value, pseudonymizer)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, str):
                node[i] = MASK if is_free_text(item) else item
            else:
                _mask(item, pseudonymizer)
