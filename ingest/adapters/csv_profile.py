"""CSV exports described by a profile (TOML), so a new practice system needs a profile, not code.

A profile names the export's columns for each canonical column, its status words, date formats
and time zone, which columns hold direct identifiers (read, never stored), and how to recognise
the export from its header. The shipped profiles in `ingest/profiles/` are examples to copy.

Reading is split for speed and for privacy: the file is tokenised by Arrow's CSV reader when
every record is one line (positions are then line numbers), else by Python's `csv` module
(exact line numbers, any quoting, a sentence for each bad line); either keeps only the columns
the profile uses and turns patient ids into pseudonyms on the way, so neither names nor raw
ids ever reach DuckDB. The mapping itself (parsing dates, status words, amounts) is one
generated SQL query per output table, run by DuckDB over the whole file at once.

Profile reference (every key but `columns` is optional):

    [profile]
    description = "..."              # shown by `clinic-kpis ingest --help-profiles`
    source = "csv:my_system"         # the warehouse `source` (default "csv:<file stem>")
    delimiter = ","
    encoding = "utf-8"
    timezone = "practice"            # zone of local dates/times ("practice" = config's zone)
    patient_system = "my_system"     # the <system> in patient_key = HMAC("<system>|<id>")
    as_of = ["appointments.booked_at"]  # the columns whose latest value dates the export (default: every date)
    phi = ["Patient Name", "DOB"]    # direct identifiers: never read into the warehouse
    detect = ["Appt ID", "Status"]   # header columns that identify this export (default: all used)

    [[output]]                       # one canonical table filled from each row (several allowed)
    table = "appointments"
    when = { column = "Check In", not_empty = true }   # optional row filter (also: in = [...], nonzero = true)
    [output.columns]
    appointment_id = "Appt ID"                                   # a column, trimmed; empty = missing
    location_id = { value = "NORTH" }                            # a constant
    patient_key = { column = "Patient MRN", pseudonymize = true }
    scheduled_start = { column = ["Appt Date", "Appt Time"], format = "%m/%d/%Y %I:%M %p" }
    status = { column = "Status", map = { "No Show" = "noshow" } }  # words, case-insensitive
    booked_at = { first = [{ column = "A", optional = true }, { column = "B" }] }  # first non-empty
    encounter_status = { case = [["Check Out", "finished"]], else = "arrived" }   # first non-empty column

    [[reference]]                    # side rows (providers, payers, locations) implied by each row
    table = "providers"
    [reference.columns]
    provider_id = "Provider NPI"

    [[ignore]]                       # rows deliberately not loaded, counted with this reason
    when = { column = "TYPE", in = ["TRANSFERIN"] }
    reason = "balance transfer: no effect on total A/R"

A column may also be, or be refined by, an SQL expression evaluated in the warehouse at load
time over the merged row (`warehouse_sql`; the file's value, if the column has one, is
`row.<column>`), e.g. a claim's billed amount as the sum of its charges loaded before it. Name
the warehouse tables it reads `main.<table>`: a column computed only in the warehouse is
computed again whenever a later file changes one of them, so it never depends on load order
(a payer named before the claims that introduce it is filled in when they arrive).
`depends_on = { <table> = "<SQL condition over its rows>" }` narrows that to a file that wrote
such rows (a sum of a ledger export's charges is not computed again for every claim after
each 835 or 837, whose ledger entries it does not read); `again_when = "<SQL condition over
the stored row>"` to the rows whose value such a file can change (`{run}` stands for that run:
the rows it wrote carry its `ingest_run_id`), e.g. the appointments whose payer name is that
of a payer the run wrote.

Versions: an export's records are as new as the export, and a CSV rarely says when it was
taken; the latest date among its `as_of` columns (by default every date and date-time it maps)
stands for it, since an export cannot hold an event that had not happened yet. A record loaded
from an older export after a newer one is kept out as stale.

Values are parsed by the canonical column's type: whole numbers, amounts (`$1,234.50`,
`(12.00)`), yes/no words, dates and date-times (`format` in strftime codes; without one, ISO
8601). Date-times without a UTC offset are local times in `timezone` (per column or per
profile); an ambiguous local time (the repeated hour in autumn) is its first occurrence, as
Python's zoneinfo reads it. Calendar dates are the practice's local dates. Text may get a
`prefix` / `suffix` (to keep ids of different record kinds apart).
"""

from __future__ import annotations

import csv
import functools
import itertools
import re
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from ingest import csv_lines
from ingest.batch import RESTART, Batch, Chunk, Phase, RecordError, Target
from ingest.context import Lookup, ParseContext
from ingest.errors import IngestError
from ingest.load import lit, q
from ingest.phi import shown_sql
from ingest.pseudonymize import MASK
from ingest.references import Reference
from ingest.schema import column_types
from ingest.sources import InputFile
from ingest.text import text_pieces

CHUNK_ROWS = 200_000  # records per chunk on the exact (Python) reader
CHUNK_CHARS = 32 * 1024 * 1024  # characters of whole lines per chunk on the Arrow reader
_VALUE = "__value "  # prefix of computed columns, apart from the export's own column names
_SELF = "{value}"  # stands for the column's computed value inside its error sentence
_COLUMN_KEYS = {"column", "value", "map", "strict", "format", "timezone", "pseudonymize", "optional", "default"}
_COLUMN_KEYS |= {"first", "case", "else", "prefix", "suffix", "warehouse_sql", "depends_on", "again_when"}
_LOCAL_TO_UTC = (
    "CREATE OR REPLACE MACRO local_to_utc(ts, tz) AS CASE "
    "WHEN timezone(tz, ts - INTERVAL 1 HOUR) + INTERVAL 1 HOUR < timezone(tz, ts) "
    "AND timezone(tz, timezone(tz, ts - INTERVAL 1 HOUR) + INTERVAL 1 HOUR) = ts "
    "THEN timezone(tz, ts - INTERVAL 1 HOUR) + INTERVAL 1 HOUR ELSE timezone(tz, ts) END"
)


SAMPLE_ROWS = 4096  # rows of a file's first chunk whose local date-times choose the span converted by offsets


@functools.cache
def _zone_runs(zone: str, span: tuple[date, date]) -> tuple[tuple[date, date, int | None], ...]:
    """The zone's local days in `span` as runs (first day, day after the last, UTC offset in
    microseconds, or None for a day that goes through `local_to_utc`).

    Why: `local_to_utc` asks ICU three or four times per value (0.036 s per 176 k values against
    0.009 for the `strptime`). On a day where ICU gives the same offset at every whole hour from
    2 h before it to the midnight that ends it, a local time and the hour before it have that
    offset (no zone changes its offset twice within an hour), so `local_to_utc` gives the time
    minus the offset. Days with a change (the DST gap or overlap, a change at midnight) keep
    `local_to_utc`, so its handling of both is unchanged (tests/ingest/test_csv_dst.py).
    """
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        low, high = (lit(d.isoformat()) for d in span)
        days = con.sql(
            f"WITH h AS (SELECT unnest(range(CAST({low} AS TIMESTAMP) - INTERVAL 2 HOUR, "
            f"CAST({high} AS TIMESTAMP) + INTERVAL 2 HOUR, INTERVAL 1 HOUR)) AS t), "
            f"o AS (SELECT t, epoch_us(t) - epoch_us(timezone({lit(zone)}, t)) AS off FROM h), "
            "w AS (SELECT t, min(off) OVER (ORDER BY t ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS low, "
            "max(off) OVER (ORDER BY t ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS high FROM o) "
            "SELECT CAST(t AS DATE) AS d, CASE WHEN min(low) = max(high) THEN min(low) END FROM w "
            f"WHERE t >= CAST({low} AS TIMESTAMP) AND t < CAST({high} AS TIMESTAMP) GROUP BY d ORDER BY d"
        ).fetchall()
    finally:
        con.close()
    runs: list[tuple[date, date, int | None]] = []
    for day, off in days:
        if runs and runs[-1][2] == off and off is not None:
            runs[-1] = (runs[-1][0], day + timedelta(days=1), off)
        else:
            runs.append((day, day + timedelta(days=1), off))
    return tuple(runs)


def _local_to_utc(ts: str, zone: str, span: tuple[date, date] | None) -> str:
    """SQL for the instant of the local TIMESTAMP column `ts` in `zone`, equal to `local_to_utc`:
    the zone's offset by range of days in `span`, `local_to_utc` itself outside it and on days
    with a change of offset (each range costs a comparison per value: the span is kept short)."""
    slow = f"local_to_utc({ts}, {lit(zone)})"
    if span is None:
        return slow
    groups: dict[int | None, list[str]] = {}
    for first, after, off in _zone_runs(zone, span):
        bounds = f"({ts} >= TIMESTAMP {lit(first.isoformat())} AND {ts} < TIMESTAMP {lit(after.isoformat())})"
        groups.setdefault(off, []).append(bounds)
    offsets = [off for off in groups if off is not None]
    if not offsets:
        return slow
    usual = max(offsets, key=lambda off: len(groups[off]))
    low, high = (lit(d.isoformat()) for d in span)
    whens = [f"WHEN {ts} < TIMESTAMP {low} OR {ts} >= TIMESTAMP {high} THEN {slow}"]
    for off, bounds in groups.items():
        if off != usual:
            then = slow if off is None else f"make_timestamptz(epoch_us({ts}) - {off})"
            whens.append(f"WHEN {' OR '.join(bounds)} THEN {then}")
    return f"CASE {' '.join(whens)} ELSE make_timestamptz(epoch_us({ts}) - {usual}) END"


class ProfileError(IngestError):
    """A CSV profile is not valid; the message names the profile file and the key."""


# -- the profile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """How one canonical column is computed from a row."""

    columns: tuple[str, ...] = ()
    value: Any = None
    mapping: dict[str, Any] | None = None
    format: str | None = None
    timezone: str | None = None
    pseudonymize: bool = False
    optional: bool = False
    default: Any = None
    strict: bool = True
    first: tuple[Spec, ...] = ()
    case: tuple[tuple[str, Any], ...] = ()
    otherwise: Any = None
    prefix: str = ""
    suffix: str = ""
    warehouse_sql: str | None = None
    # table -> which of its rows `warehouse_sql` depends on (SQL over the row): the column is
    # computed again only after a run that wrote such a row (see `profile_references`)
    depends_on: tuple[tuple[str, str], ...] = ()
    # which stored rows' value may change after a run that changed a table `warehouse_sql` reads
    # (SQL over the row, `{run}` for that run); None: every row of the source
    again_when: str | None = None

    def used(self) -> list[tuple[str, bool]]:
        """(column, optional) pairs this spec reads."""
        found = [(c, self.optional) for c in self.columns]
        for sub in self.first:
            found += sub.used()
        found += [(c, False) for c, _ in self.case]
        return found


@dataclass(frozen=True)
class Condition:
    column: str
    kind: str  # not_empty | in | nonzero
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Output:
    table: str
    columns: dict[str, Spec]
    when: tuple[Condition, ...] = ()
    reference: bool = False


@dataclass(frozen=True)
class Ignore:
    when: tuple[Condition, ...]
    reason: str


@dataclass(frozen=True)
class Profile:
    name: str
    path: str
    description: str
    source: str
    delimiter: str
    encoding: str
    timezone: str
    patient_system: str
    phi: tuple[str, ...]
    detect: tuple[str, ...]
    outputs: tuple[Output, ...]
    ignores: tuple[Ignore, ...] = ()
    skip: str | None = None
    rank: int = 5
    as_of: tuple[str, ...] | None = None  # "table.column" names; None: every date of the outputs

    def as_of_columns(self, table: str) -> list[str]:
        """The columns of `table` whose latest value dates the export."""
        types = column_types()[table]
        if self.as_of is None:
            found = [c for out in self.outputs if out.table == table and not out.reference for c in out.columns]
            return [c for c in dict.fromkeys(found) if types[c] in ("DATE", "TIMESTAMP WITH TIME ZONE")]
        return [name.split(".", 1)[1] for name in self.as_of if name.split(".", 1)[0] == table]

    def used_columns(self) -> dict[str, bool]:
        """Every column the profile reads -> whether it may be absent from the header."""
        used: dict[str, bool] = {}
        for out in self.outputs:
            for spec in out.columns.values():
                for col, optional in spec.used():
                    used[col] = used.get(col, True) and optional
            for cond in out.when:
                used[cond.column] = False
        for ign in self.ignores:
            for cond in ign.when:
                used[cond.column] = False
        return used

    def pseudonymized(self) -> set[str]:
        found = set()
        for out in self.outputs:
            for spec in out.columns.values():
                for s in (spec, *spec.first):
                    if s.pseudonymize:
                        found.update(s.columns)
        return found

    def matches(self, header: list[str]) -> bool:
        return set(self.detect) <= set(header)


def load_profile(path: Path | str, text: str | None = None) -> Profile:
    """Parse and validate one profile file (`text`: its content, already read).

    The file is read on every call, and parsed only when its path and content are new to this process
    (`_parsed`): `ingest_paths` reads every profile once per call, i.e. once per file for the
    dashboard's uploads and `ingest_profile`, and parsing the 13 shipped ones cost ~6 ms CPU each time
    (0.3 ms to read them). Keyed by the content, not the file's mtime, an edited profile is used by
    the next call whenever its edit was made."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: cannot be read ({exc})") from None
    return _parsed(path, text)


@functools.lru_cache(maxsize=256)
def _parsed(path: Path, text: str) -> Profile:
    """`load_profile`'s parse and checks of one profile's `text`. A `Profile` is frozen, so the one
    parsed is shared by every call that reads the same text; a profile that fails is not kept."""
    where = path.name
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where}: not valid TOML: {exc}") from None
    unknown = set(data) - {"profile", "output", "reference", "ignore"}
    if unknown:
        raise ProfileError(f"{where}: unknown section(s) {sorted(unknown)}; known: profile, output, reference, ignore")
    head = data.get("profile", {})
    name = str(head.get("name", path.stem))
    known_types = column_types()
    outputs = []
    for kind in ("output", "reference"):
        for i, raw in enumerate(data.get(kind, []), start=1):
            table = raw.get("table")
            if table not in known_types:
                raise ProfileError(f"{where}: [[{kind}]] {i}: table {table!r} is not a warehouse table")
            cols = raw.get("columns") or {}
            if not cols:
                raise ProfileError(f"{where}: [[{kind}]] {i} ({table}) maps no columns")
            specs = {}
            for col, raw_spec in cols.items():
                if col not in known_types[table]:
                    raise ProfileError(f"{where}: [[{kind}]] {i}: {table} has no column {col!r}")
                specs[col] = _spec(raw_spec, f"{where}: [[{kind}]] {i} {table}.{col}")
            outputs.append(Output(table, specs, _conditions(raw.get("when"), where), reference=kind == "reference"))
    skip = head.get("skip")
    if not skip and not any(not o.reference for o in outputs):
        raise ProfileError(f"{where}: a profile needs at least one [[output]] (or `skip` with the reason)")
    ignores = tuple(
        Ignore(_conditions(raw.get("when"), where), str(raw.get("reason", "ignored by the profile")))
        for raw in data.get("ignore", [])
    )
    as_of = head.get("as_of")
    if as_of is not None:
        dated = {
            f"{o.table}.{c}"
            for o in outputs
            for c in o.columns
            if not o.reference and known_types[o.table][c] in ("DATE", "TIMESTAMP WITH TIME ZONE")
        }
        if not isinstance(as_of, list) or any(name not in dated for name in as_of):
            raise ProfileError(
                f"{where}: [profile] as_of must list dates the profile maps, as table.column; known: "
                f"{', '.join(sorted(dated))}"
            )
    profile = Profile(
        name=name,
        path=str(path),
        description=str(head.get("description", "")),
        source=str(head.get("source", f"csv:{name}")),
        delimiter=str(head.get("delimiter", ",")),
        encoding=str(head.get("encoding", "utf-8")),
        timezone=str(head.get("timezone", "practice")),
        patient_system=str(head.get("patient_system", name)),
        phi=tuple(head.get("phi", ())),
        detect=(),
        outputs=tuple(outputs),
        ignores=ignores,
        skip=str(skip) if skip else None,
        rank=int(head.get("rank", 5)),
        as_of=tuple(as_of) if as_of is not None else None,
    )
    detect = tuple(head.get("detect", [c for c, opt in profile.used_columns().items() if not opt]))
    if not detect:
        raise ProfileError(f"{where}: [profile] detect must name the header columns that identify the export")
    leaked = set(profile.phi) & set(profile.used_columns())
    if leaked:
        raise ProfileError(f"{where}: columns {sorted(leaked)} are listed in phi but also mapped")
    return Profile(**{**profile.__dict__, "detect": detect})


def _spec(raw: Any, where: str) -> Spec:
    if isinstance(raw, str):
        return Spec(columns=(raw,))
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a column name or a table, got {raw!r}")
    unknown = set(raw) - _COLUMN_KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(_COLUMN_KEYS))}")
    cols = raw.get("column", ())
    cols = (cols,) if isinstance(cols, str) else tuple(cols)
    first = tuple(_spec(s, f"{where}.first") for s in raw.get("first", ()))
    case = tuple((str(c), v) for c, v in raw.get("case", ()))
    sources = sum(bool(x) for x in (cols, first, case, "value" in raw))
    if sources > 1 or (sources == 0 and "warehouse_sql" not in raw):
        raise ProfileError(f"{where}: give one of column, value, first or case (and/or warehouse_sql)")
    depends_on = raw.get("depends_on", {})
    if not isinstance(depends_on, dict) or not all(isinstance(v, str) for v in depends_on.values()):
        raise ProfileError(f'{where}.depends_on: expected a table of table = "SQL condition over its rows"')
    read = set(re.findall(r"\bmain\.([A-Za-z_][A-Za-z0-9_]*)", raw.get("warehouse_sql") or ""))
    if set(depends_on) - read:
        raise ProfileError(
            f"{where}.depends_on: {sorted(set(depends_on) - read)} not read by its warehouse_sql (main.<table>)"
        )
    again_when = raw.get("again_when")
    if again_when is not None and not (isinstance(again_when, str) and "warehouse_sql" in raw):
        raise ProfileError(f"{where}.again_when: expected an SQL condition over the row, beside warehouse_sql")
    mapping = raw.get("map")
    return Spec(
        columns=cols,
        value=raw.get("value"),
        mapping={str(k).strip().lower(): v for k, v in mapping.items()} if mapping is not None else None,
        format=raw.get("format"),
        timezone=raw.get("timezone"),
        pseudonymize=bool(raw.get("pseudonymize", False)),
        optional=bool(raw.get("optional", False)),
        default=raw.get("default"),
        strict=bool(raw.get("strict", True)),
        first=first,
        case=case,
        otherwise=raw.get("else"),
        prefix=str(raw.get("prefix", "")),
        suffix=str(raw.get("suffix", "")),
        warehouse_sql=raw.get("warehouse_sql"),
        depends_on=tuple(depends_on.items()),
        again_when=again_when,
    )


def _conditions(raw: Any, where: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    found = []
    for item in items:
        if isinstance(item, str):
            found.append(Condition(item, "not_empty"))
        elif "in" in item:
            found.append(Condition(item["column"], "in", tuple(str(v) for v in item["in"])))
        elif item.get("nonzero"):
            found.append(Condition(item["column"], "nonzero"))
        elif item.get("not_empty"):
            found.append(Condition(item["column"], "not_empty"))
        else:
            raise ProfileError(f"{where}: a `when` needs not_empty, in or nonzero: {item!r}")
    return tuple(found)


def shipped_profiles() -> list[Profile]:
    """The profiles in `ingest/profiles/`, by name."""
    found = []
    for entry in sorted(resources.files("ingest.profiles").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            found.append(load_profile(Path(entry.name), entry.read_text(encoding="utf-8")))
    return found


def sniff_header(text: str, delimiter: str = ",") -> list[str]:
    """The first non-empty line of `text` split as a CSV header."""
    for line in text.splitlines():
        if line.strip():
            try:
                return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
            except (csv.Error, StopIteration):
                return []
    return []


# -- reading --------------------------------------------------------------------------------


@dataclass
class _State:
    """What a file's chunks carry over: which side rows were given already, and ignore counts."""

    profile: Profile
    chunks: int = 0
    seen: dict[int, set[tuple]] = field(default_factory=dict)
    ignored: Counter[int] = field(default_factory=Counter)
    as_of: datetime | None = None  # the latest plausible date among the export's as_of columns
    span: tuple[date, date] | None = None  # days converted by offsets (`_local_to_utc`), from the first chunk
    spanned: bool = False

    def first_seen(self, output: int, rows: pa.Table) -> pa.Table:
        """The side rows (one per distinct value, at its first record in the chunk) that no earlier
        chunk gave: a whole file gives each distinct value once, at its first record."""
        seen = self.seen.setdefault(output, set())
        names = [c for c in rows.column_names if c != "_pos"]
        values = list(zip(*(rows.column(c).to_pylist() for c in names), strict=True))
        keep = []
        for i, value in enumerate(values):
            if value not in seen:
                seen.add(value)
                keep.append(i)
        return rows if len(keep) == rows.num_rows else rows.take(pa.array(keep, pa.int64()))


@dataclass
class _Locals:
    """The local TIMESTAMPs a query's values read (SQL -> column name), parsed once beneath it
    (`_map`), and the span of days converted to UTC by the zone's offsets (`_local_to_utc`)."""

    span: tuple[date, date] | None
    columns: dict[str, str] = field(default_factory=dict)

    def column(self, ts: str) -> str:
        return q(self.columns.setdefault(ts, f"__local {len(self.columns)}"))


@dataclass
class _Raw:
    header: list[str]
    table: pa.Table  # _pos + used columns (patient ids already pseudonymized)
    errors: list[RecordError] = field(default_factory=list)


class CsvProfileAdapter:
    """Loads one CSV export through a profile."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.name = f"csv:{profile.name}"
        self.rank = profile.rank
        self.skip_reason = profile.skip

    def parse(self, file: InputFile, ctx: ParseContext) -> Batch:
        """The file is read and mapped in chunks (`CHUNK_ROWS` records, or `CHUNK_CHARS` of text
        on the Arrow path), so memory stays bounded; each chunk's rows are exactly the rows the
        whole file gives for those records."""
        batch = Batch(adapter=self.name, position_kind="line")
        batch.chunks = self._chunks(file, ctx, batch)
        batch.after_load.append(lambda lookup, run_id: self._warn_unresolved(lookup, run_id, batch))
        return batch

    def _warn_unresolved(self, lookup: Lookup, run_id: int, batch: Batch) -> None:
        """Say which of the file's rows name something not loaded yet (a payer no claim introduced)."""
        for reference in profile_references(self.profile):
            warning = reference.unresolved(lookup, run_id)
            if warning:
                batch.warnings.append(warning)

    def _chunks(self, file: InputFile, ctx: ParseContext, batch: Batch) -> Iterator[Chunk]:
        p = self.profile
        con = duckdb.connect(config={"memory_limit": "256MB"})  # maps one chunk at a time
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")
            con.execute(_LOCAL_TO_UTC)
            state = _State(self.profile)
            exact = False
            for raw in self._read_arrow(file, ctx):
                if raw is None:  # some record is not one clean line: the exact reader reads the file
                    exact = True
                    break
                yield self._map(con, raw, ctx, state, file.name)
            if exact:
                if state.chunks:
                    yield RESTART
                state = _State(self.profile)
                for raw in self._read_exact(file, ctx):
                    yield self._map(con, raw, ctx, state, file.name)
        finally:
            con.close()
        for i, ign in enumerate(p.ignores):  # in the profile's order, as a whole-file count gives them
            if state.ignored[i]:
                batch.ignored[ign.reason] += state.ignored[i]
        batch.version = state.as_of

    def _map(self, con: duckdb.DuckDBPyConnection, raw: _Raw, ctx: ParseContext, state: _State, name: str) -> Chunk:
        """One chunk's canonical rows, by one generated query per output over its raw columns."""
        p = self.profile
        state.chunks += 1
        zone = ctx.timezone if p.timezone == "practice" else p.timezone
        try:
            con.register("raw", raw.table)
            present = set(raw.header)
            chunk = Chunk(errors=raw.errors)
            phase = Phase()
            types = column_types()
            handled = []
            if not state.spanned:
                state.span, state.spanned = self._span(con, present, (zone, ctx.timezone)), True
            for i, out in enumerate(p.outputs):
                where = self._where(out.when)
                if not out.reference:
                    handled.append(where)
                derived = tuple((col, spec.warehouse_sql) for col, spec in out.columns.items() if spec.warehouse_sql)
                staged = {col: spec for col, spec in out.columns.items() if not _warehouse_only(spec)}
                values, errors, local = [], [], _Locals(state.span)
                for col, spec in staged.items():
                    value, error = _compile(spec, types[out.table][col], present, (zone, ctx.timezone), p, local)
                    values.append(f"{value} AS {q(_VALUE + col)}")
                    if error is not None:
                        errors.append(
                            ([c for c, _ in spec.used() if c in present], error.replace(_SELF, q(_VALUE + col)))
                        )
                outputs = [f"{q(_VALUE + c)} AS {q(c)}" for c in staged]
                if "source" in types[out.table] and "source" not in out.columns:
                    outputs.append(f"{lit(p.source)} AS source")
                # each value is computed once; the sentences of values that did not parse refer to it
                inner = "raw"
                if local.columns:  # each local date-time parsed once, read by its value's expression
                    parsed = ", ".join(f"{ts} AS {q(name)}" for ts, name in local.columns.items())
                    inner = f"(SELECT *, {parsed} FROM raw)"
                sql = f"SELECT *, {', '.join(values)} FROM {inner} WHERE {where}"
                sql = f"SELECT _pos, {', '.join(outputs + _error_columns(errors))} FROM ({sql})"
                if out.reference:  # one side row per distinct value, tied to the first record that implies it
                    names = ", ".join(q(c) for c in [*out.columns, "source"] if c in types[out.table])
                    sql = f"SELECT min(_pos) AS _pos, {names} FROM ({sql}) GROUP BY {names}"
                rows = con.sql(sql).to_arrow_table()
                if out.reference:
                    rows = state.first_seen(i, rows)
                else:
                    self._note_as_of(con, out.table, rows, ctx, state)
                mode = "reference" if out.reference else "merge"
                target = Target(out.table, mode=mode, counted=not out.reference, derived=derived)
                phase.targets.append((target, rows))
            unmatched = " AND ".join(f"NOT ({w})" for w in handled)
            for i, ign in enumerate(p.ignores):
                cond = self._where(ign.when)
                n = con.sql(f"SELECT count(*) FROM raw WHERE ({cond}) AND {unmatched}").fetchall()[0][0]
                state.ignored[i] += int(n)
                unmatched += f" AND NOT ({cond})"
            if unmatched:
                leftover = con.sql(f"SELECT _pos FROM raw WHERE {unmatched}").fetchall()
                hint = self._conditions_text()
                chunk.errors += [
                    RecordError(
                        pos, None, "unhandled_row", f"the row matches none of profile {p.name}'s outputs ({hint})"
                    )
                    for (pos,) in leftover
                ]
            con.unregister("raw")
        except duckdb.Error as exc:
            raise IngestError(f"{name}: profile {p.name} cannot be applied: {exc}") from None
        chunk.phases.append(phase)
        chunk.raw = _masked_raw(raw.table, p)
        return chunk

    def _span(
        self, con: duckdb.DuckDBPyConnection, present: set[str], zones: tuple[str, str]
    ) -> tuple[date, date] | None:
        """The years of the local date-times among the first chunk's first `SAMPLE_ROWS` rows (1st
        to 99th percentile), a year either side: the days `_local_to_utc` converts by the zone's
        offsets. Only the speed depends on it (a value outside goes through `local_to_utc`)."""
        types, local = column_types(), _Locals(None)
        for out in self.profile.outputs:
            for col, spec in out.columns.items():
                if not _warehouse_only(spec):
                    _compile(spec, types[out.table][col], present, zones, self.profile, local)
        if not local.columns:
            return None
        parsed = ", ".join(local.columns)
        found = con.sql(
            "SELECT quantile_disc(y, 0.01), quantile_disc(y, 0.99) FROM (SELECT year(unnest([" + parsed + "])) AS y "
            f"FROM (SELECT * FROM raw LIMIT {SAMPLE_ROWS}))"
        )
        low, high = found.fetchall()[0]
        if low is None or low < 1901 or high > 2198:  # no dates, or years far out: all go the slow way
            return None
        return date(low - 1, 1, 1), date(high + 2, 1, 1)

    def _note_as_of(
        self, con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, ctx: ParseContext, state: _State
    ) -> None:
        """Move the export's date (`state.as_of`) forward to the latest plausible date of `rows`."""
        columns = [c for c in self.profile.as_of_columns(table) if c in rows.column_names]
        if not columns or not rows.num_rows:
            return
        values = ", ".join(f"CAST({q(c)} AS TIMESTAMPTZ)" for c in columns)
        readable = "WHERE len(_errs) = 0" if "_errs" in rows.column_names else ""
        bounds = ""
        if ctx.dates is not None:
            low, high = (lit(d.isoformat()) for d in ctx.dates)
            bounds = f"WHERE v BETWEEN CAST({low} AS TIMESTAMPTZ) AND CAST({high} AS TIMESTAMPTZ)"
        con.register("_mapped", rows)
        found = con.sql(f"SELECT max(v) FROM (SELECT unnest([{values}]) AS v FROM _mapped {readable}) {bounds}")
        latest = found.fetchall()[0][0]
        con.unregister("_mapped")
        if latest is not None and (state.as_of is None or latest > state.as_of):
            state.as_of = latest

    def _where(self, conditions: tuple[Condition, ...]) -> str:
        parts = []
        for cond in conditions:
            col = q(cond.column)
            if cond.kind == "not_empty":
                parts.append(f"coalesce(trim({col}), '') <> ''")
            elif cond.kind == "in":
                values = ", ".join(lit(v.lower()) for v in cond.values)
                parts.append(f"lower(trim({col})) IN ({values})")
            else:
                parts.append(f"coalesce(try_cast(replace(trim({col}), ',', '') AS DOUBLE), 0) <> 0")
        return " AND ".join(parts) or "TRUE"

    def _conditions_text(self) -> str:
        parts = []
        for out in self.profile.outputs:
            for cond in out.when:
                if cond.kind == "in":
                    parts.append(f"{cond.column} in {', '.join(cond.values)}")
                else:
                    parts.append(f"{cond.column} {cond.kind.replace('_', ' ')}")
        return "; ".join(dict.fromkeys(parts)) or "no conditions"

    def _header(self, records: Iterator[tuple[int, list[str]] | RecordError], name: str) -> tuple[int, list[str]]:
        """(line, columns) of the header, the first record; IngestError if it does not fit the profile."""
        p = self.profile
        first = next(records, None)
        if isinstance(first, RecordError):
            raise IngestError(f"{name}: line {first.pos}: the header is not valid CSV ({first.reason})")
        if first is None:
            raise IngestError(f"{name}: the file is empty; expected a header line with {_listing(p.detect)}")
        header_line, header = first[0], [h.strip() for h in first[1]]
        used = p.used_columns()
        missing = [c for c, optional in used.items() if not optional and c not in header]
        if missing:
            hint = ""
            if len(header) == 1:
                other = next((d for d in (";", "\t", "|", ",") if d != p.delimiter and d in header[0]), None)
                if other:
                    hint = f"; the header has one column: is the delimiter {other!r} instead of {p.delimiter!r}?"
            raise IngestError(
                f"{name}: line {header_line}: missing column(s) {_listing(missing)} required by profile {p.name}{hint}"
            )
        dupes = [h for h, n in Counter(header).items() if n > 1 and h in used]
        if dupes:
            raise IngestError(f"{name}: line {header_line}: column(s) {_listing(dupes)} appear more than once")
        return header_line, header

    def _read_exact(self, file: InputFile, ctx: ParseContext) -> Iterator[_Raw]:
        """The exact reader: Python's csv module over the file's lines, CHUNK_ROWS records at a time."""
        p = self.profile
        pieces = text_pieces(file, p.encoding, CHUNK_CHARS)
        lines = csv_lines.records((line for piece in pieces for line in csv_lines.lines(piece)), p.delimiter)
        header_line, header = self._header(lines, file.name)
        keep = [c for c in p.used_columns() if c in header]
        index = [header.index(c) for c in keep]
        getter = itemgetter(*index) if len(index) > 1 else (lambda row: (row[index[0]],))
        pseudo = {c: keep.index(c) for c in p.pseudonymized() if c in keep}
        ncols = len(header)
        positions: list[int] = []
        rows: list[tuple[str, ...]] = []
        errors: list[RecordError] = []
        for item in lines:
            if isinstance(item, RecordError):
                errors.append(item)
                continue
            start, row = item
            if len(row) != ncols:
                errors.append(
                    RecordError(
                        start,
                        None,
                        "field_count",
                        f"the line has {len(row)} fields but the header has {ncols}: it may be truncated, "
                        f"or use another delimiter than {p.delimiter!r}, or contain an unquoted {p.delimiter!r}",
                    )
                )
                continue
            positions.append(start)
            rows.append(getter(row))
            if len(rows) >= CHUNK_ROWS:
                yield _Raw(header, pa.Table.from_batches([self._chunk(keep, rows, positions, pseudo, ctx)]), errors)
                rows, positions, errors = [], [], []
        yield _Raw(header, pa.Table.from_batches([self._chunk(keep, rows, positions, pseudo, ctx)]), errors)

    def _read_arrow(self, file: InputFile, ctx: ParseContext) -> Iterator[_Raw | None]:
        """The fast path for the common file, where every record is one line: Arrow's CSV reader
        (multi-threaded C++) over pieces of whole lines, and line numbers by position. Yields
        None (and stops) when a record is not one clean line (a blank line, a quoted line
        break, a wrong field count), or the header is not plainly in the first piece: then the
        exact reader takes over and says which line is wrong."""
        p = self.profile
        pieces = text_pieces(file, p.encoding, CHUNK_CHARS)
        first_piece = next(pieces, "")
        records = csv_lines.records(first_piece, p.delimiter)
        first = next(records, None)
        more = next(pieces, None)
        if more is not None and (first is None or isinstance(first, RecordError)):
            yield None
            return
        header_line, header = self._header(iter([first]), file.name)
        keep = [c for c in p.used_columns() if c in header]
        position = header_line + 1
        skip = header_line
        for piece in itertools.chain([first_piece], [more] if more is not None else [], pieces):
            table = self._arrow_piece(piece, skip, header, keep)
            if table is None:
                yield None
                return
            positions = pa.array(range(position, position + table.num_rows), pa.int64())
            position += table.num_rows
            skip = 0
            columns = [positions]
            system = self.profile.patient_system
            for name in keep:
                column = table.column(name).combine_chunks()
                if name in self.profile.pseudonymized():
                    column = ctx.pseudonymizer.column(system, column)
                columns.append(column)
            yield _Raw(header, pa.Table.from_arrays(columns, names=["_pos", *keep]))

    def _arrow_piece(self, text: str, skip: int, header: list[str], keep: list[str]) -> pa.Table | None:
        """Arrow's reading of a piece of whole lines, or None unless it is exactly one record per line."""
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        try:
            table = pacsv.read_csv(
                pa.BufferReader(text.encode("utf-8")),
                read_options=pacsv.ReadOptions(skip_rows=skip, column_names=header),
                parse_options=pacsv.ParseOptions(delimiter=self.profile.delimiter, newlines_in_values=False),
                convert_options=pacsv.ConvertOptions(
                    include_columns=keep,
                    column_types=dict.fromkeys(keep, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return table if table.num_rows == lines - skip else None

    def _chunk(
        self,
        keep: list[str],
        rows: list[tuple[str, ...]],
        positions: list[int],
        pseudo: dict[str, int],
        ctx: ParseContext,
    ) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in keep]
        arrays = [pa.array(positions, pa.int64())]
        for i, name in enumerate(keep):
            values = columns[i]
            if name in pseudo:
                key = ctx.pseudonymizer.key
                system = self.profile.patient_system
                values = [key(system, v) for v in values]
            arrays.append(pa.array(values, pa.string()))
        return pa.RecordBatch.from_arrays(arrays, names=["_pos", *keep])


def profile_references(profile: Profile) -> list[Reference]:
    """The columns computed only in the warehouse, to compute again when the tables they read change."""
    types = column_types()
    found = []
    for out in profile.outputs:
        if out.reference:
            continue
        for column, spec in out.columns.items():
            if not _warehouse_only(spec):
                continue
            sql = spec.warehouse_sql or ""
            reads = frozenset(re.findall(r"\bmain\.([A-Za-z_][A-Za-z0-9_]*)", sql)) & set(types)
            refs = [c for c in dict.fromkeys(re.findall(r"\brow\.([A-Za-z_][A-Za-z0-9_]*)", sql)) if c != column]
            target = Target(out.table, mode="update", counted=False, derived=((column, sql),), writer="references")
            ref = refs[0] if len(refs) == 1 and refs[0] in out.columns else None
            what = f"{column.removesuffix('_id')}s"
            waits = f"a file that adds it to {' or '.join(sorted(reads))} is loaded"
            found.append(Reference(target, profile.source, reads, _again_after(reads, spec), ref, what, waits))
    return found


def _again_after(reads: frozenset[str], spec: Spec) -> str:
    """Which rows to compute again after a run that changed a table `reads` names: all of them,
    unless the run wrote none of the rows the column depends on (`depends_on`); of those, only
    the rows `again_when` names.

    Why: the column is computed over every row of the profile's source; after a file that only
    writes rows it does not read (an 835's ledger entries, for a sum of a ledger export's charges),
    that recomputation changes nothing and costs a scan of the warehouse per file. Rows written by
    a run carry its `ingest_run_id`, which grows with each run, so DuckDB skips the older row groups.
    Likewise a vendor appointment's payer can only change when a payer of its name or id was
    written: computing every vendor row again after each file that wrote a payer cost a whole
    pass of the load path over them (`again_when`).
    """
    conditions = dict(spec.depends_on)
    rows = f"({spec.again_when})" if spec.again_when else "TRUE"
    if not conditions or set(reads) - set(conditions):
        return rows
    runs = " OR ".join(
        f"EXISTS (SELECT 1 FROM main.{q(table)} WHERE ingest_run_id = {{run}} AND ({conditions[table]}))"
        for table in sorted(reads)
    )
    return runs if rows == "TRUE" else f"({runs}) AND {rows}"


def _warehouse_only(spec: Spec) -> bool:
    """A column computed only in the warehouse (no value from the file to stage)."""
    return bool(spec.warehouse_sql) and not (spec.columns or spec.first or spec.case or spec.value is not None)


def _listing(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(repr(n) for n in names)


def _masked_raw(table: pa.Table, profile: Profile) -> pa.Table:
    """The staged columns plus each PHI column shown as masked, for reject records."""
    for col in profile.phi:
        table = table.append_column(col, pa.array([MASK] * table.num_rows, pa.string()))
    return table


# -- compiling specs to SQL -----------------------------------------------------------------


def _compile(
    spec: Spec, ctype: str, present: set[str], zones: tuple[str, str], p: Profile, local: _Locals
) -> tuple[str, str | None]:
    """(SQL value, SQL error sentence or None) for one canonical column; the sentence refers to the
    value as `{value}`, to be replaced by the column that holds it.

    `zones` is (the zone of local times in this export, the practice's zone): calendar dates
    are always the practice's local dates. `local` collects the local TIMESTAMPs the value reads."""
    if spec.first:
        values, errors = [], []
        for sub in spec.first:
            if any(c not in present for c in sub.columns):
                continue
            value, error = _compile(sub, ctype, present, zones, p, local)
            values.append(value)
            if error is not None:
                errors.append(error.replace(_SELF, f"({value})"))
        value = f"CAST(coalesce({', '.join(values)}) AS {ctype})" if values else f"CAST(NULL AS {ctype})"
        error = f"CASE WHEN {_SELF} IS NULL THEN coalesce({', '.join(errors)}) END" if errors else None
        return value, error
    if spec.case:
        whens = " ".join(f"WHEN coalesce(trim({q(c)}), '') <> '' THEN {_literal(v)}" for c, v in spec.case)
        return f"CAST(CASE {whens} ELSE {_literal(spec.otherwise)} END AS {ctype})", None
    if not spec.columns:
        return f"CAST({_literal(spec.value)} AS {ctype})", None
    if any(c not in present for c in spec.columns):
        return f"CAST(NULL AS {ctype})", None
    label = " + ".join(spec.columns)
    parts = [f"nullif(trim({q(c)}), '')" for c in spec.columns]
    text = parts[0] if len(parts) == 1 else "(" + " || ' ' || ".join(parts) + ")"
    if spec.pseudonymize:  # the reader made each value its key (hex) or NULL: nothing to trim
        return (q(spec.columns[0]) if len(spec.columns) == 1 else text), None
    if spec.prefix or spec.suffix:
        return f"({lit(spec.prefix)} || {text} || {lit(spec.suffix)})", None
    if spec.mapping is not None:
        return _mapped(spec, text, label, ctype, p)
    value = _typed(text, ctype, spec, zones, local)
    if value is None:
        return (text if spec.default is None else f"coalesce({text}, {_literal(spec.default)})"), None
    if spec.default is not None:
        value = f"coalesce({value}, CAST({_literal(spec.default)} AS {ctype}))"
    said = f"{lit(label + ' ')} || {shown_sql(text)} || {lit(' ' + _expectation(ctype, spec))}"
    error = f"CASE WHEN {_SELF} IS NULL AND {text} IS NOT NULL THEN {said} END"
    return value, error


def _mapped(spec: Spec, text: str, label: str, ctype: str, p: Profile) -> tuple[str, str | None]:
    """A word looked up in the profile's map (case-insensitive); an unknown word is an error if strict."""
    assert spec.mapping is not None
    whens = " ".join(f"WHEN {lit(k)} THEN {_literal(v)}" for k, v in spec.mapping.items())
    value = f"CAST(CASE lower({text}) {whens} ELSE {_literal(spec.default)} END AS {ctype})"
    if not spec.strict:
        return value, None
    known = ", ".join(lit(k) for k in spec.mapping)
    said = lit(f" is not one of the words profile {p.name} knows ({', '.join(spec.mapping)})")
    sentence = f"{lit(label + ' ')} || {shown_sql(text)} || {said}"
    error = f"CASE WHEN {text} IS NOT NULL AND lower({text}) NOT IN ({known}) THEN {sentence} END"
    return value, error


def _typed(text: str, ctype: str, spec: Spec, zones: tuple[str, str], local: _Locals) -> str | None:
    """SQL parsing `text` as `ctype` (NULL when it does not parse), or None for plain text."""
    if ctype in ("INTEGER", "BIGINT"):
        return f"CASE WHEN regexp_full_match({text}, '-?[0-9]+') THEN TRY_CAST({text} AS {ctype}) END"
    if ctype.startswith("DECIMAL"):
        clean = f"replace(replace({text}, '$', ''), ',', '')"
        neg = f"regexp_full_match({clean}, '\\(.*\\)')"
        digits = f"CASE WHEN {neg} THEN '-' || trim({clean}, '()') ELSE {clean} END"
        scale = int(ctype.split(",")[1].rstrip(")"))
        pattern = f"-?[0-9]+(\\.[0-9]{{1,{scale}}})?|-?\\.[0-9]{{1,{scale}}}"
        return f"CASE WHEN regexp_full_match({digits}, '{pattern}') THEN TRY_CAST({digits} AS {ctype}) END"
    if ctype == "BOOLEAN":
        return (
            f"CASE WHEN lower({text}) IN ('true', 't', 'yes', 'y', '1') THEN TRUE "
            f"WHEN lower({text}) IN ('false', 'f', 'no', 'n', '0') THEN FALSE END"
        )
    if ctype in ("DATE", "TIMESTAMP WITH TIME ZONE"):
        instant = _instant(text, spec, zones[0], local)
        if ctype == "DATE":
            return f"CAST(timezone({lit(zones[1])}, {instant}) AS DATE)"
        return instant
    return None


def _instant(text: str, spec: Spec, zone: str, local: _Locals) -> str:
    """SQL for the TIMESTAMPTZ a date/time text denotes."""
    col_zone = spec.timezone or zone
    if spec.format is None:
        has_offset = f"regexp_matches({text}, '(Z|[+-][0-9]{{2}}:?[0-9]{{2}})$')"
        utc = _local_to_utc(local.column(f"TRY_CAST({text} AS TIMESTAMP)"), col_zone, local.span)
        return f"CASE WHEN {has_offset} THEN TRY_CAST({text} AS TIMESTAMPTZ) ELSE {utc} END"
    if "%z" in spec.format or "%Z" in spec.format:
        return f"CAST(try_strptime({text}, {lit(spec.format)}) AS TIMESTAMPTZ)"
    ts = local.column(f"CAST(try_strptime({text}, {lit(spec.format)}) AS TIMESTAMP)")
    return _local_to_utc(ts, col_zone, local.span)


def _expectation(ctype: str, spec: Spec) -> str:
    """What a value that did not parse should have looked like."""
    if ctype in ("INTEGER", "BIGINT"):
        return "is not a whole number"
    if ctype.startswith("DECIMAL"):
        return "is not an amount like 1234.56"
    if ctype == "BOOLEAN":
        return "is not yes/no"
    if spec.format:
        example = datetime(2025, 3, 14, 9, 30).strftime(spec.format.replace("%z", "+0000"))
        return f"is not a valid date/time in the format {spec.format} (like {example})"
    return "is not an ISO 8601 date/time (like 2025-03-14T09:30:00-04:00)"


def _error_columns(errors: list[tuple[list[str], str]]) -> list[str]:
    """The `_errs` column: every spec of the row that failed, with its source columns, sentence and raw value."""
    if not errors:
        return []
    items = []
    for cols, error in errors:
        value = f"concat_ws(' ', {', '.join(q(c) for c in cols)})" if cols else "CAST(NULL AS VARCHAR)"
        items.append(
            f"struct_pack(field := {lit(' + '.join(cols))}, check_name := 'unreadable_value', "
            f"reason := ({error}), value := {value})"
        )
    listed = f"list_filter([{', '.join(items)}], lambda x: x.reason IS NOT NULL)"
    # most rows fail no check: the list is built only for a row where some sentence is not NULL
    failed = f"coalesce({', '.join(f'({error})' for _, error in errors)}) IS NOT NULL"
    return [f"CASE WHEN {failed} THEN {listed} ELSE [] END AS _errs"]


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return lit(str(value))
