"""What an adapter hands to the shared load path: canonical rows, grouped, with their positions.

Adapters only parse. Each returns a `Batch`: rows for canonical tables (as Arrow tables whose
`_pos` column is the record's position in the file, with optional `_version`, when the source
says the record last changed, and `_errs`, the values the adapter could not read), the records
it could not parse at all, and the records it deliberately ignored (with why). Everything else
— validation, upsert, versions, references, counting, quarantine, lineage — is done once, in
`ingest.load`; rows that follow from a file's rows (`Derivation`) go through it too.

A large line-oriented file is parsed in chunks rather than whole, so memory stays bounded: its
`Batch` then has `chunks`, an iterator of `Chunk`s (rows and errors of the next N records,
positions continuing across chunks), which the loader consumes as it goes; counts, ignored
records and warnings are filled in on the `Batch` by the time the iterator is exhausted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from ingest.context import Lookup

Mode = Literal["merge", "update", "reference"]
PositionKind = Literal["line", "segment", "record"]


@dataclass(frozen=True)
class Target:
    """Where rows go and how they are written.

    - `merge`: insert new keys, update changed ones (the record owns the columns it writes);
    - `update`: columns of a row another record owns (e.g. a DocumentReference closing an
      Encounter's chart); an update whose row is not loaded yet waits for it (`waiting_rows`)
      and is applied when a later file (or this one) brings the row;
    - `reference`: a side row (payer, provider) implied by a fact record: never counted, and it
      only fills in what is still empty, so the system that owns the row (a FHIR Practitioner
      for a provider) keeps its values whichever file loads first.

    `derived` columns are SQL expressions over the merged row (the existing row with this
    record's columns applied; qualify its columns as `row.<column>` inside subqueries), for
    facts that depend on columns written by different records or files.
    `join` (e.g. `LEFT JOIN (...) AS x ON x.k = row.k`) is joined to the merged row for those
    expressions, so that a lookup is one join instead of a correlated subquery per expression; it
    may read the file's staged rows as `s`, to look up only the keys the file holds, and must
    match at most one row per merged row.
    `counted` rows decide the record's inserted/updated/unchanged outcome.
    `writer` names the kind of record that owns the columns written, when a table's rows are
    written by several (a visit and its chart note): versions and waiting updates are kept per
    writer, so a newer chart note never makes an older visit record stale.
    `held_with` names the table of another target of the same phase whose row of the same record
    must be in the warehouse for a row of this one to be (an 835 payment's ledger entries are
    written only with its remittance, and named after it): the stage does not look up the rows of
    records whose row there is new (reading this table's keys to find none of them).
    """

    table: str
    mode: Mode = "merge"
    counted: bool = True
    derived: tuple[tuple[str, str], ...] = ()
    join: str = ""
    writer: str = ""
    held_with: str = ""

    @property
    def insert_only(self) -> frozenset[str]:
        return frozenset({"source"}) if self.mode == "reference" else frozenset()


@dataclass(frozen=True)
class RecordError:
    """A record the adapter could not turn into rows; it is rejected with this reason."""

    pos: int
    field: str | None
    check: str
    reason: str
    value: str | None = None


@dataclass
class Phase:
    """Targets whose rows are validated together and then written together.

    Records in a later phase see the rows written by earlier phases (an Encounter's chart
    closure needs the Encounter), while one record's rows across the targets of a phase are
    accepted or rejected as a whole.
    """

    targets: list[tuple[Target, pa.Table]] = field(default_factory=list)
    # Phases load in this order (then in the order given); in a chunked file, the phases of the
    # same order and the targets at the same index in them are one phase and one target.
    order: int = 0


@dataclass
class Chunk:
    """The next records of a file parsed in chunks: what a `Batch` holds for a whole file."""

    phases: list[Phase] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    raw: pa.Table | None = None  # as Batch.raw


# Yielded by a chunked parse to drop the chunks given so far and start over: the file turned
# out not to be readable in chunks with exactly a whole-file load's result (e.g. a FHIR file
# whose resource types are out of phase order), so it is parsed again whole.
RESTART = Chunk()


@dataclass(frozen=True)
class Derivation:
    """Rows that follow from what a file wrote, computed in the warehouse after its rows are in
    and written through the same load path (checks, upsert, lineage), e.g. the ledger charges of
    the claims an 837 touched. `sql` is a SELECT giving the target's columns; it may read the
    Arrow tables of `inputs` by name (e.g. the claim ids the file touched)."""

    target: Target
    sql: str
    inputs: Mapping[str, pa.Table] = field(default_factory=dict)


# A check that runs after a file's rows are written (given the run id), reading the warehouse (never writing it),
# e.g. saying how many remitted claims have no charge loaded yet; it adds to `Batch.warnings`.
AfterLoad = Callable[["Lookup", int], None]


@dataclass
class Batch:
    """Everything one file produced."""

    adapter: str
    position_kind: PositionKind
    phases: list[Phase] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    # the masked record JSON of the rejected records at these positions (e.g. read again from
    # the file); a position left out has none
    records: Callable[[list[int]], Mapping[int, str | None]] = lambda positions: {}
    raw: pa.Table | None = None  # or: `_pos` + masked source fields, turned into JSON in SQL for rejects
    derived: list[Derivation] = field(default_factory=list)
    after_load: list[AfterLoad] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks: Iterator[Chunk] | None = None  # instead of phases/errors/raw: the file in chunks
    # The file's own date (an export's as-of time), the version of every record that states
    # none of its own (a `_version` column); None: the file states none. Set by the time the
    # chunks are exhausted.
    version: datetime | None = None


def rows_to_arrow(rows: list[dict], columns: list[str]) -> pa.Table:
    """An Arrow table of `rows` with exactly `columns` (missing keys become nulls)."""
    data = {c: [r.get(c) for r in rows] for c in columns}
    return pa.table({c: pa.array(v) if any(x is not None for x in v) else pa.nulls(len(v)) for c, v in data.items()})


def tuples_to_arrow(rows: list[tuple], columns: list[str]) -> pa.Table:
    """An Arrow table of `rows`, tuples of the values of `columns` in order: the values `rows_to_arrow`
    gives for dicts (a column of nulls only is typed null), its columns cut out by `zip`.

    A column of Decimals is typed from its first value's scale (the adapters quantize every value
    of a column alike): Arrow's inference of a decimal's precision costs ~2.5 µs a value, 20 times
    the conversion; a value of another scale makes Arrow refuse, and the column is then inferred.
    The loader casts every column to the schema's type, so only the values matter.
    """
    data = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    return pa.table({c: _column(list(v)) for c, v in zip(columns, data, strict=True)})


def _column(values: list) -> pa.Array:
    if values.count(None) == len(values):
        return pa.nulls(len(values))
    first = next(v for v in values if v is not None)
    if isinstance(first, Decimal):
        try:
            return pa.array(values, pa.decimal128(38, max(0, -int(first.as_tuple().exponent))))
        except (pa.ArrowInvalid, TypeError, ValueError):  # another scale; not a number (NaN): as inferred
            pass
    return pa.array(values)
