"""The one load path: stage, check, upsert, count and quarantine a file's rows in DuckDB.

Every adapter's `Batch` goes through `Loader.load`, inside the caller's transaction:

1. stage each target's Arrow rows in a temp table, cast to the warehouse column types and
   merged with the existing warehouse row (a record owns only the columns it writes), with the
   version of the record the warehouse already holds (when it holds none of the file's rows,
   the staged rows are read as they are, not merged into a copy);
2. check the merged rows against the schema's own NOT NULL and CHECK constraints, plus
   "dates are plausible" and "the same key twice in this file agrees"; a record older than the
   version already loaded is stale (the newer is kept), and an update whose row is not loaded
   yet waits for it;
3. reject a record as a whole if any of its rows fails, keeping every failure's sentence;
4. write: insert new keys, update changed rows, leave identical rows (and their lineage) alone;
5. count every record exactly once:
   read = inserted + updated + unchanged + stale + waiting + rejected.

Rows that follow from what a file wrote rather than being read from it (the ledger charges
of its claims, references resolved now that their target arrived, waiting updates whose row
arrived) go through the same steps (`Loader.derive`).

A record is one source record (a CSV line, a FHIR resource, an X12 claim or claim payment, a
call); it may write rows to several tables (an appointment and its visit; a claim and its
lines), and is accepted or rejected as a whole.

All of it is set-based SQL over the staged tables, so a million-row file costs a few scans.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import astuple, dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from ingest import checks
from ingest.batch import RESTART, Batch, Chunk, Derivation, Target
from ingest.errors import IngestError
from ingest.phi import masked_sql


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None


@dataclass(frozen=True)
class Constraint:
    expression: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class TableMeta:
    name: str
    columns: dict[str, Column]
    key: tuple[str, ...]
    checks: tuple[Constraint, ...]


def read_schema(cur: duckdb.DuckDBPyConnection) -> dict[str, TableMeta]:
    """Columns, keys and CHECK constraints of every warehouse table, from DuckDB's catalog.

    A table's key is its primary key, or the key `table_keys` declares for it: the fact tables
    have no key index (migration 009: DuckDB cannot spill one), and the load path keeps their
    keys unique itself.
    """
    cols: dict[str, dict[str, Column]] = {}
    for table, name, dtype, nullable, default in cur.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'YES', column_default "
        "FROM information_schema.columns WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        cols.setdefault(table, {})[name] = Column(name, dtype, nullable, default)
    keys: dict[str, tuple[str, ...]] = {}
    rules: dict[str, list[Constraint]] = {}
    for table, ctype, expression, names in cur.execute(
        "SELECT table_name, constraint_type, expression, constraint_column_names FROM duckdb_constraints() "
        "WHERE schema_name = 'main' AND constraint_type IN ('PRIMARY KEY', 'CHECK') "
        "ORDER BY table_name, constraint_index"
    ).fetchall():
        if ctype == "PRIMARY KEY":
            keys[table] = tuple(names)
        else:
            rules.setdefault(table, []).append(Constraint(expression, tuple(dict.fromkeys(names))))
    if "table_keys" in cols:
        for table, names in cur.execute("SELECT table_name, key_columns FROM main.table_keys").fetchall():
            keys.setdefault(table, tuple(names))
    return {t: TableMeta(t, c, keys.get(t, ()), tuple(rules.get(t, ()))) for t, c in cols.items()}


@dataclass
class _Slot:
    """A target's rows staged so far: the temp table they are appended to, and their columns."""

    target: Target
    table: str
    write: list[str]
    errs: list[str]
    rows: int = 0
    versioned: bool = False  # the rows carry their own `_version`
    # every row's position is above the one before it: one row per record (`Loader._counts`)
    ordered: bool = True
    last_pos: int | None = None


@dataclass
class Counts:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    stale: int = 0
    waiting: int = 0


# An adapter's own failures of a row (values it could not read), as a list per row: `_errs`.
ERRORS_TYPE = "STRUCT(field VARCHAR, check_name VARCHAR, reason VARCHAR, value VARCHAR)[]"

# Joins the values of a key into one text (record_versions, waiting_rows): U+001F, the ASCII
# unit separator, is in no id.
KEY_SEPARATOR = "chr(31)"

# Record positions counted per statement (`Loader._counts`): what one aggregation holds stays
# small beside the memory a large file's key index takes.
COUNT_SPAN = 1_000_000

# A file whose rows for a table are fewer than 1/HELD_BY_ROWID of the table's finds the rows it
# merges with by their row ids (`Loader._held_rows`); a larger one joins the table as it is.
# Measured at 1 M (benchmarks/RESULTS.md, s32-loadpath): the row-id look-up of 176 k new vendor rows
# against 684 k appointments (1/4) cost 0.33 s CPU against the whole table's join's 0.54 (no row
# held: neither the rows nor their versions are read); the same rows all held, 0.82 against 0.80;
# 684 k held rows against 860 k (4/5), 1.37 against 1.20: so from half the table on, the join.
HELD_BY_ROWID = 2

# The order of a record's outcome rows in which `arg_min` finds whether its first target (the
# record itself, e.g. the appointment) was inserted: by target, and within the first target an
# insert before any other outcome (one of its rows inserted is the target inserted).
_FIRST_INSERT = "_target * 2 + CAST(_action <> 'insert' AS BIGINT)"


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


class Loader:
    """Loads batches into the warehouse through one cursor (temp tables are per connection)."""

    def __init__(
        self,
        cur: duckdb.DuckDBPyConnection,
        schema: dict[str, TableMeta],
        timezone: str,
        dates: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.cur = cur
        self.schema = schema
        self.tz = timezone
        self.dates = dates  # (earliest, latest) plausible instant; None: no date check
        self._n = 0
        self._order = 0
        self._kind = "record"
        self._file = ""
        self._version: datetime | None = None  # the file's own date, for rows without one
        self._deriving = False
        self._write: dict[str, list[str]] = {}  # per staged target: the columns its rows write
        self._errs: dict[str, list[str]] = {}  # and whether it has the adapter's `_errs` column
        self._versioned: dict[str, bool] = {}  # and whether its rows have a version
        self._shared: set[str] = set()  # the staged targets of this phase whose table and writer another one writes
        # table -> its rows and versions the phase's stages hold (SQL; None: none held), and their temp tables
        self._held: dict[str, tuple[str | None, str | None]] = {}
        self._held_tables: list[str] = []
        self._staged: dict[str, str] = {}  # table -> the first of this phase's targets staged for it (`_cN`)
        self._views: dict[str, str] = {}  # the phase's targets whose `_cN` is a view -> the staged rows it reads
        self.changed: dict[str, int] = {}  # table -> rows inserted or updated so far (this file and what followed)

    # -- public -------------------------------------------------------------------------------

    def load(self, batch: Batch, run_id: int, file_name: str) -> Counts:
        """Write `batch` and its rejects for run `run_id`; return the record counts.

        A chunked batch's rows are appended, chunk by chunk, to one typed temp table per target
        (DuckDB keeps them in its buffer pool and spills them to disk past its memory limit),
        and the checks and writes then run once over each whole table: the result is exactly
        that of the whole file at once (duplicates across chunks, phase order, counts), while
        Python holds one chunk at a time.
        """
        cur = self.cur
        self._kind = batch.position_kind
        self._file = file_name
        self._deriving = False
        self._reset()
        chunks = batch.chunks if batch.chunks is not None else [Chunk(batch.phases, batch.errors, batch.raw)]
        for chunk in chunks:
            if chunk is RESTART:
                self._reset()
            else:
                self._add(chunk)
        self._version = batch.version  # known once the chunks are read
        for key in sorted({(order, k) for order, k, _ in self._slots}):
            slots = [self._slots[s] for s in sorted(self._slots) if s[:2] == key]
            self._phase([slot for slot in slots if slot.rows], run_id)
        for slot in self._slots.values():
            cur.execute(f"DROP TABLE IF EXISTS {slot.table}")
        counted = [slot for slot in self._slots.values() if slot.target.counted and slot.rows]
        counts = self._counts(one_row_each=len(counted) == 1 and counted[0].ordered)
        self._write_rejects(batch, run_id, file_name)
        return counts

    def _reset(self) -> None:
        """No rows, failures or records staged yet (at the start of a file, or to start it over)."""
        cur = self.cur
        for slot in getattr(self, "_slots", {}).values():
            cur.execute(f"DROP TABLE IF EXISTS {slot.table}")
        self._slots: dict[tuple[int, int, int], _Slot] = {}
        self._raw_cols: list[str] | None = None
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE _fail (_pos BIGINT, _order BIGINT, target_table VARCHAR, field VARCHAR, "
            "check_name VARCHAR, reason VARCHAR, value_masked VARCHAR)"
        )
        cur.execute("CREATE OR REPLACE TEMP TABLE _outcome (_pos BIGINT, _target BIGINT, _action VARCHAR)")
        cur.execute("CREATE OR REPLACE TEMP TABLE _stale (_pos BIGINT)")
        cur.execute("CREATE OR REPLACE TEMP TABLE _wait (_pos BIGINT)")
        cur.execute("CREATE OR REPLACE TEMP TABLE _raw_all (_pos BIGINT)")

    def _add(self, chunk: Chunk) -> None:
        """Stage one chunk: its errors as failures, its rows appended to their targets' tables."""
        cur = self.cur
        if chunk.errors:
            errors = pa.table(
                {
                    "_pos": pa.array([e.pos for e in chunk.errors], pa.int64()),
                    "field": pa.array([e.field for e in chunk.errors], pa.string()),
                    "check_name": pa.array([e.check for e in chunk.errors], pa.string()),
                    "reason": pa.array([e.reason for e in chunk.errors], pa.string()),
                    "value_masked": pa.array([e.value for e in chunk.errors], pa.string()),
                }
            )
            self._insert("_fail", errors, ["_pos", "-1", "NULL", "field", "check_name", "reason", "value_masked"])
        seen: dict[int, int] = {}
        for phase in chunk.phases:
            k = seen[phase.order] = seen.get(phase.order, -1) + 1
            for i, (target, rows) in enumerate(phase.targets):
                self._append((phase.order, k, i), target, rows)
        if chunk.raw is not None:
            if self._raw_cols is None:
                self._raw_cols = [c for c in chunk.raw.column_names if c != "_pos"]
                cur.register("_raw_in", chunk.raw.slice(0, 0))
                cur.execute("CREATE OR REPLACE TEMP TABLE _raw_all AS SELECT * FROM _raw_in")
                cur.unregister("_raw_in")
            present = set(chunk.raw.column_names)  # by name, as INSERT ... BY NAME: a column left out is NULL
            by_name = [q(c) if c in present else f"NULL AS {q(c)}" for c in ["_pos", *self._raw_cols]]
            self._insert("_raw_all", chunk.raw, by_name)

    def _append(self, key: tuple[int, int, int], target: Target, rows: pa.Table) -> None:
        """Append `rows` to the typed input table of target `key`, numbering them in file order."""
        meta = self.schema[target.table]
        write = [c for c in rows.column_names if not c.startswith("_")]
        errs = ["_errs"] if "_errs" in rows.column_names else []
        versioned = "_version" in rows.column_names
        slot = self._slots.get(key)
        if slot is None:
            unknown = [c for c in write if c not in meta.columns]
            missing_key = [k for k in meta.key if k not in write]
            if unknown or missing_key:
                raise ValueError(
                    f"adapter rows for {target.table}: unknown columns {unknown}, missing key {missing_key}"
                )
            slot = self._slots[key] = _Slot(target, f"_s{len(self._slots) + 1}", write, errs, versioned=versioned)
            typed = ["_pos BIGINT", "_row BIGINT", *(f"{c} {ERRORS_TYPE}" for c in errs)]
            typed += ["_version TIMESTAMPTZ"] if versioned else []
            typed += [f"{q(c)} {meta.columns[c].type}" for c in write]
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE {slot.table} ({', '.join(typed)})")
        elif (slot.target, slot.write, slot.errs, slot.versioned) != (target, write, errs, versioned):
            raise ValueError(f"adapter rows for {target.table}: chunks differ in target or columns")
        if not rows.num_rows:
            return
        numbers = pa.array(np.arange(slot.rows + 1, slot.rows + 1 + rows.num_rows, dtype=np.int64))  # no Python ints
        slot.rows += rows.num_rows
        positions = rows.column("_pos")
        if slot.ordered and positions.null_count == 0:
            p = positions.to_numpy()
            slot.ordered = bool((np.diff(p) > 0).all()) and (slot.last_pos is None or p[0] > slot.last_pos)
            slot.last_pos = int(p[-1])
        else:
            slot.ordered = False
        values = ["CAST(_pos AS BIGINT)", "_row", *(f"CAST({c} AS {ERRORS_TYPE})" for c in errs)]
        values += ["CAST(_version AS TIMESTAMPTZ)"] if versioned else []
        values += [f"CAST({q(c)} AS {meta.columns[c].type})" for c in write]
        self._insert(slot.table, rows.append_column("_row", numbers), values)

    def _insert(self, table: str, rows: pa.Table, values: list[str]) -> None:
        """Append the `values` (SQL over the columns of `rows`) to the temp table `table`.

        Why not `register` + `INSERT ... SELECT` + `unregister`: inside the file's transaction an
        unregistered Arrow table stays referenced by the dropped view until the transaction ends,
        so every chunk of a file stayed in memory (1.5 GB of Arrow buffers for a 4.9 GB FHIR file,
        outside DuckDB's memory limit); a relation over the rows holds them for this statement only.
        """
        self.cur.from_arrow(rows).select(", ".join(values)).insert_into(table)

    # -- rows that follow from the file ----------------------------------------------------------

    def derive(self, derivation: Derivation, run_id: int) -> int:
        """Write the rows `derivation.sql` gives (after `load`), checked and upserted like a file's
        rows; return how many were inserted or updated.

        Derived rows are not records of the file: they are not counted in its balance. A row that
        names where it came from (`_origin_run`, `_origin_file`, `_origin_kind`, `_origin_pos`:
        a waiting update) and fails a check is quarantined under that origin; any other failure
        means the warehouse contradicts itself, and the file fails with the reason.
        """
        self._deriving, self._version = True, None
        try:
            return self._derive(derivation, run_id)
        finally:
            self._deriving = False

    def _derive(self, derivation: Derivation, run_id: int) -> int:
        cur = self.cur
        target = derivation.target
        meta = self.schema[target.table]
        self._reset()
        self._n += 1
        table, origins = f"_s_derived{self._n}", f"_origins{self._n}"
        for name, rows in derivation.inputs.items():
            cur.register(name, rows)
        try:
            cur.execute(
                f"CREATE OR REPLACE TEMP TABLE {origins} AS SELECT CAST(row_number() OVER () AS BIGINT) AS _pos, "
                f"CAST(row_number() OVER () AS BIGINT) AS _row, * FROM ({derivation.sql})"
            )
        finally:
            for name in derivation.inputs:
                cur.unregister(name)
        columns = [d[0] for d in cur.execute(f"SELECT * FROM {origins} LIMIT 0").description]
        write = [c for c in columns if not c.startswith("_")]
        versioned = "_version" in columns
        origin = [c for c in ("_origin_run", "_origin_file", "_origin_kind", "_origin_pos") if c in columns]
        values = ["_pos", "_row", *(["CAST(_version AS TIMESTAMPTZ) AS _version"] if versioned else [])]
        values += [f"CAST({q(c)} AS {meta.columns[c].type}) AS {q(c)}" for c in write]
        (rows,) = cur.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {', '.join(values)} FROM {origins}"
        ).fetchone()
        if not rows:
            cur.execute(f"DROP TABLE {table}")
            cur.execute(f"DROP TABLE {origins}")
            return 0
        slot = _Slot(target, table, write, [], rows=rows, versioned=versioned)
        self._phase([slot], run_id, outcomes=True)
        if origin:
            self._quarantine_origins(origins)
        else:
            failed = cur.execute("SELECT reason FROM _fail ORDER BY _pos, _order LIMIT 1").fetchone()
            if failed is not None:
                raise IngestError(f"a {target.table} row derived from this file breaks a rule: {failed[0]}")
        cur.execute(f"DROP TABLE IF EXISTS {origins}")
        (changed,) = cur.execute("SELECT count(*) FROM _outcome WHERE _action IN ('insert', 'update')").fetchone()
        return int(changed)

    def clear_waiting(self, table: str, writer: str) -> None:
        """Drop the waiting updates of `table` whose row is loaded now (applied, or quarantined)."""
        meta = self.schema[table]
        key_text = f"concat_ws({KEY_SEPARATOR}, {', '.join(f'CAST(t.{q(k)} AS VARCHAR)' for k in meta.key)})"
        self.cur.execute(
            f"DELETE FROM waiting_rows WHERE table_name = {lit(table)} AND writer = {lit(writer)} "
            f"AND record_key IN (SELECT {key_text} FROM main.{q(table)} t)"
        )

    def _quarantine_origins(self, origins: str) -> None:
        """Rejects for derived rows that failed, under the file and run they came from."""
        self.cur.execute(
            "INSERT INTO rejects (run_id, file_path, position_kind, position, target_table, field, check_name, "
            "reason, value_masked, record_masked) "
            "SELECT o._origin_run, o._origin_file, o._origin_kind, o._origin_pos, f.target_table, f.field, "
            f"f.check_name, f.reason, {masked_sql('f.value_masked')}, NULL FROM _fail f JOIN {origins} o USING (_pos) "
            "ORDER BY o._origin_run, o._origin_pos, f._order"
        )

    # -- one phase ----------------------------------------------------------------------------

    def _phase(self, slots: list[_Slot], run_id: int, *, outcomes: bool = False) -> None:
        owners = Counter((slot.target.table, slot.target.writer) for slot in slots)
        self._held = self._held_once(slots)
        self._staged = {}
        try:
            staged = []
            for slot in slots:
                staged.append((slot.target, self._stage(slot)))
                self._staged.setdefault(slot.target.table, staged[-1][1])
        finally:
            for name in self._held_tables:
                self.cur.execute(f"DROP TABLE IF EXISTS {name}")
            self._held, self._held_tables = {}, []
        for target, name in staged:
            self._check(target, name)
        for target, name in staged:
            self._dedupe(target, name)
        self._one_insert_per_key(staged)
        self._shared = {name for target, name in staged if owners[target.table, target.writer] > 1}
        for target, name in staged:
            self._apply(target, name, run_id, outcomes or target.counted)
        for _, name in staged:
            self.cur.execute(f"DROP VIEW IF EXISTS _d{name}")  # before the tables it reads
            self.cur.execute(f"DROP TABLE IF EXISTS _r{name}")
            if name in self._views:
                self.cur.execute(f"DROP VIEW _c{name}")
                self.cur.execute(f"DROP TABLE {self._views.pop(name)}")
            else:
                self.cur.execute(f"DROP TABLE IF EXISTS _c{name}")

    def _one_insert_per_key(self, staged: list[tuple[Target, str]]) -> None:
        """Fail the file if two targets of this phase would insert the same key into one table.

        Each target was staged against the table as it was before any of them wrote, so its own
        `_exists` and `_rn` cannot see the other's new rows, and the fact tables have no key index
        to refuse a second row (migration 009). Targets of a phase write distinct keys by
        construction (a transaction's charge, payment and adjustment); a profile that does not is
        an error, as the key index made it before.
        """
        by_table: dict[str, list[str]] = {}
        for target, n in staged:
            if target.mode != "update":
                by_table.setdefault(target.table, []).append(n)
        out = "(SELECT _pos FROM _fail UNION ALL SELECT _pos FROM _stale UNION ALL SELECT _pos FROM _wait)"
        for table, names in by_table.items():
            if len(names) < 2:
                continue
            meta = self.schema[table]
            keys = ", ".join(q(k) for k in meta.key)
            new = " UNION ALL ".join(
                f"SELECT _pos, {keys} FROM _d{n} WHERE NOT _exists AND _rn = 1 AND _pos NOT IN {out}" for n in names
            )
            found = self.cur.execute(
                f"SELECT min(_pos), max(_pos), {self._key_text(meta, '')} FROM ({new}) GROUP BY ALL "
                "HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 1"
            ).fetchall()
            if found:
                first, second, what = found[0]
                one = first == second
                where = f"{self._kind} {first} writes" if one else f"{self._kind}s {first} and {second} write"
                raise IngestError(f"{where} the {table} row {what} twice: a file may write each row once")

    def _stage(self, slot: _Slot) -> str:
        """`_cN`: the rows as given, typed, merged with the warehouse row of their key, with the
        record's version (`_version`) and the version the warehouse holds (`_held`).

        When the table holds no row of the file (every file of a first load, a month of new
        records) the merged row is the staged row itself: nothing is joined, and for a target that
        derives no column `_cN` is a view over the staged rows (`_sN`) rather than a copy of them,
        so a file's rows are copied once, from its chunks (benchmarks/RESULTS.md, s33-stage).
        """
        target, table, write, errs = slot.target, slot.table, slot.write, slot.errs
        meta = self.schema[target.table]
        self._n += 1
        n = str(self._n)
        self._write[n], self._errs[n] = write, errs
        # the phase's look-up of its keys (`_held_once`), if any, else this target's own
        rows, held_versions = self._held.get(target.table) or self._held_rows(meta, slot, n)
        held = rows is not None  # else: no row of the file is in the table
        exists = f"(w.{q(meta.key[0])} IS NOT NULL)" if held else "FALSE"
        merged = [f"s.{c}" for c in errs]
        for c in meta.columns:
            if c == "ingest_run_id":
                continue
            if c not in write:
                merged.append(f"w.{q(c)} AS {q(c)}" if held else f"CAST(NULL AS {meta.columns[c].type}) AS {q(c)}")
            elif c in target.insert_only and held:
                merged.append(f"CASE WHEN {exists} THEN w.{q(c)} ELSE s.{q(c)} END AS {q(c)}")
            elif target.mode == "reference" and c not in meta.key and held:
                merged.append(f"coalesce(w.{q(c)}, s.{q(c)}) AS {q(c)}")
            else:
                merged.append(f"s.{q(c)} AS {q(c)}")
        # the warehouse row's compared columns ride along as `_was<i>`, so that whether a row
        # changed needs no second join with the (whole) warehouse table
        compare = self._compare_columns(target, write) if held else []
        was = [f"w.{q(c)} AS _was{i}" for i, c in enumerate(compare)]
        key_text = f"concat_ws({KEY_SEPARATOR}, {', '.join(f'CAST(s.{q(k)} AS VARCHAR)' for k in meta.key)})"
        version = self._version_sql(slot)
        self._versioned[n] = version != "NULL"
        versions = ""
        held_version = "CAST(NULL AS TIMESTAMPTZ)"
        if self._versioned[n] and held_versions is not None:
            this = f"table_name = {lit(target.table)} AND writer = {lit(target.writer)}"
            versions = (
                f"LEFT JOIN (SELECT record_key, version_at FROM {held_versions} AS hv WHERE {this}) v "
                f"ON v.record_key = {key_text}"
            )
            held_version = "v.version_at"
        columns = (
            f"s._pos, s._row, {exists} AS _exists, {key_text} AS _key, {version} AS _version, "
            f"{held_version} AS _held, {', '.join([*merged, *was])}"
        )
        if not held and not target.derived:
            self.cur.execute(f"CREATE OR REPLACE TEMP VIEW _c{n} AS SELECT {columns}, TRUE AS _changed FROM {table} s")
            self._views[n] = table  # dropped with the view, at the end of the phase
            return n
        on = " AND ".join(f"s.{q(k)} = w.{q(k)}" for k in meta.key)
        merge = f"SELECT {columns} FROM s LEFT JOIN w ON {on} {versions}" if held else f"SELECT {columns} FROM s"
        ctes = [f"s AS (SELECT * FROM {table})", *([rows] if held else []), f"m AS ({merge})"]
        derived = ", ".join(f"({expression}) AS {q(column)}" for column, expression in target.derived)
        with_derived = f"SELECT row.* REPLACE ({derived}) FROM m AS row {target.join}" if derived else "SELECT * FROM m"
        changed = " OR ".join(f"d.{q(c)} IS DISTINCT FROM d._was{i}" for i, c in enumerate(compare)) or "FALSE"
        exclude = f" EXCLUDE ({', '.join(f'_was{i}' for i in range(len(compare)))})" if compare else ""
        self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _c{n} AS WITH {', '.join(ctes)}, d AS ({with_derived}) "
            f"SELECT d.*{exclude}, (NOT d._exists OR {changed}) AS _changed FROM d"
        )
        self.cur.execute(f"DROP TABLE {table}")  # its rows are in _cN now
        self.cur.execute(f"DROP TABLE IF EXISTS _w{n}")
        return n

    def _held_once(self, slots: list[_Slot]) -> dict[str, tuple[str | None, str | None]]:
        """For each warehouse table that several targets of the phase stage rows of (a transactions
        export's charges, payments, adjustments and write-offs, all ledger rows): the warehouse rows
        and record versions of all their keys, found once, as temp tables the stages join.

        Why: each stage found its held rows by a scan of the table's key column and its versions by
        a scan of `record_versions` (no key index on either, migration 008/009): at 10 M four scans
        of 29 M ledger keys and 24 M ledger versions per transactions file, the cost of a file
        growing with the warehouse. The phase's stages all run before any of its writes, so one
        look-up for all of them finds exactly the rows each would have found. (A table whose
        staged rows are many beside it is joined whole, as before: `_held_rows`.) When none of
        the keys is in the table, no version is looked up either (`_held_rows` says why), and no
        row is joined.
        """
        by_table: dict[str, list[_Slot]] = {}
        for slot in slots:
            by_table.setdefault(slot.target.table, []).append(slot)
        held: dict[str, tuple[str | None, str | None]] = {}
        for table, mine in by_table.items():
            staged = sum(slot.rows for slot in mine)
            if len(mine) < 2 or staged * HELD_BY_ROWID >= self._estimated_rows(table):
                continue
            meta = self.schema[table]
            keys = ", ".join(q(k) for k in meta.key)
            self._n += 1
            n = str(self._n)
            union = " UNION ALL ".join(f"SELECT {keys} FROM {slot.table}" for slot in mine)
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE _hk{n} AS SELECT DISTINCT * FROM ({union})")
            on = " AND ".join(f"t.{q(k)} = k.{q(k)}" for k in meta.key)
            (found,) = self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _hw{n} AS SELECT * FROM main.{q(table)} WHERE rowid IN "
                f"(SELECT t.rowid FROM main.{q(table)} t SEMI JOIN _hk{n} k ON {on})"
            ).fetchone()
            versions = None
            if found:
                key_text = f"concat_ws({KEY_SEPARATOR}, {', '.join(f'CAST(k.{q(k)} AS VARCHAR)' for k in meta.key)})"
                self.cur.execute(
                    f"CREATE OR REPLACE TEMP TABLE _hv{n} AS SELECT * FROM main.record_versions "
                    f"WHERE table_name = {lit(table)} AND record_key IN (SELECT {key_text} FROM _hk{n} k)"
                )
                versions = f"_hv{n}"
            self.cur.execute(f"DROP TABLE _hk{n}")
            held[table] = (f"w AS (SELECT * FROM _hw{n})" if found else None, versions)
            self._held_tables += [f"_hw{n}", *([versions] if versions else [])]
        return held

    def _held_rows(self, meta: TableMeta, slot: _Slot, n: str) -> tuple[str | None, str | None]:
        """SQL defining the warehouse rows the stage joins (`w`; None: the table holds no row of
        the file), and the record versions it joins (None: no version can be held): the whole
        table and `record_versions` (unless the table is empty), or, for a file whose rows are few
        beside the table's (`HELD_BY_ROWID`), only the rows holding one of its keys, found by their
        row ids first (kept in the temp table `_wN`), if it found any.

        Why by row id: DuckDB narrows the table's scan to the staged keys (their range, then a
        filter of them), but reads every column the stage compares for each row of the row groups
        the range does not exclude (an 835's `x12:adjustment` to `x12:payment` ids span every 837
        charge of the ledger: 1.6 M rows at 1 M for 12 k staged). Matching on the key columns
        alone and then fetching the few matched rows by row id reads one column of the table.

        Why no versions when no row is held: the load path writes a record's version only with its
        row (`_apply`: a version for each live row it keeps, each of which is in its table) and no
        fact row is ever deleted, so a key its table does not hold has no version. A file of new
        records (every file of a first load, each month's new 837 and 835) then does not scan
        `record_versions`, the largest table of the warehouse: at 1 M each versioned target's
        stage read 0.7-2.5 M of its keys. (Found in the same statement as the stage, an empty `w`
        stopped DuckDB's scan of the versions for some targets and not for others.) A target
        `held_with` another's does not look up the rows of the records whose row there is new.
        """
        table = f"main.{q(meta.name)}"
        if slot.rows * HELD_BY_ROWID >= self._estimated_rows(meta.name):
            if not self._any(f"SELECT 1 FROM {table}"):
                return None, None
            return f"w AS (SELECT * FROM {table})", "main.record_versions"
        keys = " AND ".join(f"t.{q(k)} = k.{q(k)}" for k in meta.key)
        staged = slot.table
        if slot.target.held_with in self._staged:  # not the records whose row there is new
            new_there = f"SELECT _pos FROM _c{self._staged[slot.target.held_with]} WHERE NOT _exists"
            staged = f"(SELECT * FROM {slot.table} WHERE _pos NOT IN ({new_there}))"
        (found,) = self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _w{n} AS SELECT t.rowid AS _rowid FROM {table} t "
            f"SEMI JOIN {staged} AS k ON {keys}"
        ).fetchone()
        if not found:
            self.cur.execute(f"DROP TABLE _w{n}")
            return None, None
        return f"w AS (SELECT * FROM {table} WHERE rowid IN (SELECT _rowid FROM _w{n}))", "main.record_versions"

    def _estimated_rows(self, table: str) -> int:
        """The rows of a warehouse table, as DuckDB's catalog estimates them (no scan)."""
        found = self.cur.execute(
            f"SELECT estimated_size FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = {lit(table)} "
            "AND database_name = current_database()"
        ).fetchone()
        return int(found[0] or 0) if found else 0

    def _version_sql(self, slot: _Slot) -> str:
        """SQL for a staged row's version: its own, else the file's date, else none (reference
        rows only fill in blanks, so they have none)."""
        if slot.target.mode == "reference":
            return "NULL"
        file_version = f"CAST({lit(self._version.isoformat())} AS TIMESTAMPTZ)" if self._version else None
        if slot.versioned:
            return f"coalesce(s._version, {file_version})" if file_version else "s._version"
        return file_version or "NULL"

    def _compare_columns(self, target: Target, write: list[str]) -> list[str]:
        meta = self.schema[target.table]
        cols = list(dict.fromkeys([*write, *(c for c, _ in target.derived)]))
        return [c for c in cols if c not in meta.key and c not in target.insert_only and c != "ingest_run_id"]

    def _check(self, target: Target, n: str) -> None:
        """Every failure of every row, in rule order, as one INSERT into `_fail`; then the
        records that are stale, and the updates that wait for their row."""
        meta = self.schema[target.table]
        table = lit(target.table)
        parts = []
        if "_errs" in self._errs[n]:
            parts.append(
                f"SELECT _pos, {self._next_order()}, {table}, e.field, e.check_name, e.reason, e.value "
                f"FROM (SELECT _pos, unnest(_errs) AS e FROM _c{n})"
            )
        # An update's row may not be loaded yet: it then waits, and only what it writes is checked now.
        present = " AND _exists" if target.mode == "update" else ""
        for col in meta.columns.values():
            if col.nullable or col.default is not None:
                continue
            sentence = checks.REQUIRED.get((target.table, col.name), f"{col.name} is missing")
            parts.append(
                f"SELECT _pos, {self._next_order()}, {table}, {lit(col.name)}, 'required', {lit(sentence)}, NULL "
                f"FROM _c{n} WHERE {q(col.name)} IS NULL{present}"
            )
        for rule in meta.checks:
            field = rule.columns[0]
            parts.append(
                f"SELECT _pos, {self._next_order()}, {table}, {lit(field)}, {lit('rule_' + field)}, "
                f"{self._sentence(meta, rule)}, {self._fmt(meta, field)} "
                f"FROM _c{n} WHERE NOT coalesce({rule.expression}, TRUE){present}"
            )
        parts += self._date_checks(target, n)
        if self._versioned[n]:
            parts.append(f"SELECT _pos, NULL, NULL, NULL, '_stale', NULL, NULL FROM _c{n} WHERE _version < _held")
        if target.mode == "update":
            parts.append(f"SELECT _pos, NULL, NULL, NULL, '_wait', NULL, NULL FROM _c{n} WHERE NOT _exists")
        # one scan for every rule; the stale and waiting records are then moved to their own tables
        self.cur.execute(
            "CREATE OR REPLACE TEMP TABLE _found AS SELECT * FROM (" + " UNION ALL ".join(parts) + ") "
            "AS f(_pos, _order, target_table, field, check_name, reason, value_masked)"
        )
        self.cur.execute("INSERT INTO _fail SELECT * FROM _found WHERE check_name NOT IN ('_stale', '_wait')")
        if self._versioned[n] or target.mode == "update":
            self.cur.execute("INSERT INTO _stale SELECT _pos FROM _found WHERE check_name = '_stale'")
            self.cur.execute("INSERT INTO _wait SELECT _pos FROM _found WHERE check_name = '_wait'")

    def _date_checks(self, target: Target, n: str) -> list[str]:
        """Failures for instants and dates outside the plausible range (a typo such as 2999, or a
        placeholder such as 1900-01-01 would otherwise stretch every period range)."""
        if self.dates is None:
            return []
        meta = self.schema[target.table]
        earliest, latest = self.dates
        columns = dict.fromkeys([*self._write[n], *(c for c, _ in target.derived)])
        parts = []
        for column in columns:
            ctype = meta.columns[column].type
            if ctype == "DATE":
                low, high = lit(earliest.date().isoformat()), lit(latest.date().isoformat())
                bounds = f"CAST({low} AS DATE) AND CAST({high} AS DATE)"
            elif ctype.startswith("TIMESTAMP WITH TIME ZONE"):
                low, high = lit(earliest.isoformat()), lit(latest.isoformat())
                bounds = f"CAST({low} AS TIMESTAMPTZ) AND CAST({high} AS TIMESTAMPTZ)"
            else:
                continue
            sentence = _fill(
                checks.IMPLAUSIBLE_DATE,
                {
                    "field": lit(column),
                    "value": self._fmt(meta, column),
                    "earliest": lit(earliest.date().isoformat()),
                    "latest": lit(latest.date().isoformat()),
                },
            )
            parts.append(
                f"SELECT _pos, {self._next_order()}, {lit(target.table)}, {lit(column)}, 'implausible_date', "
                f"{sentence}, {self._fmt(meta, column)} FROM _c{n} WHERE {q(column)} NOT BETWEEN {bounds}"
            )
        return parts

    def _dedupe(self, target: Target, n: str) -> None:
        """`_dN`: the rows not failed or stale so far, ranked per key, newest version first. A
        later row that disagrees with the first is stale if it is an older version, else a failure
        (merge and update targets; references keep the first silently).

        Only the rows of keys the file holds more than once are ranked (`_rN`, found by one
        aggregate over the keys; usually none or a few): every other row ranks first, so `_dN` is
        a view over the staged rows rather than a window sorting all of them into a copy.
        """
        meta = self.schema[target.table]
        keys = ", ".join(q(k) for k in meta.key)
        c_keys = ", ".join(f"c.{q(k)}" for k in meta.key)
        same_key = " AND ".join(f"c.{q(k)} IS NOT DISTINCT FROM r.{q(k)}" for k in meta.key)
        live = "_pos NOT IN (SELECT _pos FROM _fail) AND _pos NOT IN (SELECT _pos FROM _stale)"
        compare = [c for c in meta.columns if c in self._write[n] and c not in meta.key]
        compared = target.mode != "reference" and bool(compare)
        # the repeated rows' columns are kept only to compare them below; else their rank alone
        # (an 837's payer, provider and location rows repeat for every claim: 21 k rows each)
        kept = "*" if compared else "_row"
        (repeated,) = self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _r{n} AS SELECT {kept}, row_number() OVER (PARTITION BY {c_keys} "
            f"ORDER BY _version DESC NULLS LAST, _pos, _row) AS _rn FROM _c{n} c "
            f"SEMI JOIN (SELECT {keys} FROM _c{n} GROUP BY ALL HAVING count(*) > 1) r ON {same_key} WHERE {live}"
        ).fetchone()
        rank = "coalesce(r._rn, 1)" if repeated else "CAST(1 AS BIGINT)"
        ranked = f" LEFT JOIN (SELECT _row, _rn FROM _r{n}) r USING (_row)" if repeated else ""
        self.cur.execute(
            f"CREATE OR REPLACE TEMP VIEW _d{n} AS SELECT c.*, {rank} AS _rn FROM _c{n} c{ranked} WHERE {live}"
        )
        if not compared:
            return
        if not self.cur.execute(f"SELECT count(*) FROM _r{n} WHERE _rn > 1").fetchone()[0]:
            return  # every key once: nothing can disagree
        differs = " OR ".join(f"a.{q(c)} IS DISTINCT FROM b.{q(c)}" for c in compare)
        join = " AND ".join(f"a.{q(k)} = b.{q(k)}" for k in meta.key)
        self.cur.execute(
            f"INSERT INTO _stale SELECT b._pos FROM _r{n} a JOIN _r{n} b ON {join} AND a._rn = 1 AND b._rn > 1 "
            f"WHERE ({differs}) AND b._version < a._version"
        )
        diff = ", ".join(
            f"CASE WHEN a.{q(c)} IS DISTINCT FROM b.{q(c)} THEN {lit(c + ': ')} || {self._fmt(meta, c, 'b')} "
            f"|| ' vs ' || {self._fmt(meta, c, 'a')} END"
            for c in compare
        )
        what = self._key_text(meta, "b.")
        reason = _fill(
            checks.DUPLICATE,
            {
                "what": what,
                "kind": lit(self._kind),
                "first": "CAST(a._pos AS VARCHAR)",
                "diff": f"concat_ws(', ', {diff})",
            },
        )
        self.cur.execute(
            f"INSERT INTO _fail SELECT b._pos, {self._next_order()}, {lit(target.table)}, {lit(meta.key[-1])}, "
            f"'duplicate_conflict', {reason}, {what} "
            f"FROM _r{n} a JOIN _r{n} b ON {join} AND a._rn = 1 AND b._rn > 1 "
            f"WHERE ({differs}) AND b._version IS NOT DISTINCT FROM a._version"
        )

    def _apply(self, target: Target, n: str, run_id: int, outcomes: bool) -> None:
        """Write the first row of each key of records that were not rejected, stale or waiting;
        keep waiting updates aside; note each row's outcome."""
        meta = self.schema[target.table]
        cur = self.cur
        out = "(SELECT _pos FROM _fail UNION ALL SELECT _pos FROM _stale UNION ALL SELECT _pos FROM _wait)"
        live = f"_rn = 1 AND _pos NOT IN {out}"
        changed = 0
        update_cols = self._compare_columns(target, [c for c in meta.columns if c in self._write[n]])
        if update_cols and self._any(f"SELECT 1 FROM _d{n} c WHERE c._exists AND c._changed AND c.{live}"):
            # the UPDATE joins the whole warehouse table: only when a row of the file changes one
            sets = ", ".join(f"{q(c)} = c.{q(c)}" for c in update_cols)
            join = " AND ".join(f"main.{q(target.table)}.{q(k)} = c.{q(k)}" for k in meta.key)
            changed += cur.execute(
                f"UPDATE main.{q(target.table)} SET {sets}, ingest_run_id = {run_id} "
                f"FROM _d{n} c WHERE {join} AND c._exists AND c._changed AND c.{live}"
            ).fetchone()[0]
        if target.mode != "update":
            insert_cols = [c for c in meta.columns if c in self._write[n] or c in dict(target.derived)]
            values = []
            for c in insert_cols:
                default = meta.columns[c].default
                values.append(f"coalesce({q(c)}, {default})" if default is not None else q(c))
            changed += cur.execute(
                f"INSERT INTO main.{q(target.table)} ({', '.join(q(c) for c in insert_cols)}, ingest_run_id) "
                f"SELECT {', '.join(values)}, {run_id} FROM _d{n} WHERE NOT _exists AND {live}"
            ).fetchone()[0]
        elif not self._deriving:
            self._keep_waiting(target, n, run_id)
        if changed:
            self.changed[target.table] = self.changed.get(target.table, 0) + changed
        if self._versioned[n]:
            # the newest version seen, also for a record whose content did not change: an older
            # version loaded later must not win over it (a version not newer than the one held
            # when staged changes nothing: versions only grow)
            # (record_versions has no key index, migration 008: a version held is updated, a key
            # not held is inserted, once: `_rn = 1`. What is held is `_held`, found by the stage,
            # unless another target of the phase wrote versions of the same rows since: then
            # the table itself is asked.)
            shared = n in self._shared
            this = f"v.table_name = {lit(target.table)} AND v.writer = {lit(target.writer)}"
            held = "TRUE" if shared else "_held IS NOT NULL"
            newer = f"{held} AND _version IS NOT NULL AND (_held IS NULL OR _version > _held) AND {live}"
            if self._any(f"SELECT 1 FROM _d{n} WHERE {newer}"):
                cur.execute(
                    f"UPDATE record_versions v SET version_at = d._version, ingest_run_id = {run_id} "
                    f"FROM (SELECT _key, _version FROM _d{n} WHERE {newer}) d "
                    f"WHERE {this} AND v.record_key = d._key AND d._version > v.version_at"
                )
            # a key without a version when staged can only have one now from a target of this
            # file that wrote before (its run id): only those are asked, not the whole table (a
            # NOT IN over 24 M ledger versions at 10 M cost 3.7 s of CPU per target)
            mine = f"{this} AND v.ingest_run_id = {run_id}"
            missing = f" AND _key NOT IN (SELECT record_key FROM record_versions v WHERE {mine})" if shared else ""
            cur.execute(
                "INSERT INTO record_versions (table_name, writer, record_key, version_at, ingest_run_id) "
                f"SELECT {lit(target.table)}, {lit(target.writer)}, _key, _version, {run_id} FROM _d{n} "
                f"WHERE _held IS NULL AND _version IS NOT NULL AND {live}{missing}"
            )
        if outcomes:
            # a later copy of a key is 'same': the ranks are those of `_dN`, but only the keys
            # given more than once have one above 1 (`_rN`, usually empty), so the join is with
            # those, not with every staged row (a hash table of millions of rows)
            cur.execute(
                f"INSERT INTO _outcome SELECT c._pos, {n}, CASE WHEN c._pos IN (SELECT _pos FROM _fail) THEN 'reject' "
                "WHEN c._pos IN (SELECT _pos FROM _stale) THEN 'stale' WHEN c._pos IN (SELECT _pos FROM _wait) "
                "THEN 'wait' WHEN d._rn > 1 THEN 'same' WHEN NOT c._exists THEN 'insert' "
                f"WHEN c._changed THEN 'update' ELSE 'same' END FROM _c{n} c LEFT JOIN (SELECT _row, _rn FROM _r{n}) d "
                "USING (_row)"
            )

    def _keep_waiting(self, target: Target, n: str, run_id: int) -> None:
        """Updates whose row is not loaded yet, kept until it is (a newer one replaces an older)."""
        meta = self.schema[target.table]
        written = [c for c in meta.columns if c in self._write[n]]
        record = "to_json(struct_pack(" + ", ".join(f"{q(c)} := {q(c)}" for c in written) + "))::VARCHAR"
        self.cur.execute(
            "INSERT INTO waiting_rows (table_name, writer, record_key, row_json, version_at, file_path, position_kind, "
            f"position, ingest_run_id) SELECT {lit(target.table)}, {lit(target.writer)}, _key, {record}, _version, "
            f"{lit(self._file)}, {lit(self._kind)}, _pos, {run_id} FROM _d{n} "
            "WHERE _rn = 1 AND _pos IN (SELECT _pos FROM _wait) "
            "AND _pos NOT IN (SELECT _pos FROM _fail) AND _pos NOT IN (SELECT _pos FROM _stale) "
            "ON CONFLICT (table_name, writer, record_key) DO UPDATE SET row_json = excluded.row_json, "
            "version_at = excluded.version_at, file_path = excluded.file_path, position_kind = excluded.position_kind, "
            "position = excluded.position, "
            "ingest_run_id = excluded.ingest_run_id "
            "WHERE NOT (excluded.version_at < waiting_rows.version_at)"
        )

    # -- totals and rejects -------------------------------------------------------------------

    def _counts(self, *, one_row_each: bool = False) -> Counts:
        """Each record once: rejected if any of its rows failed; stale if it is older than the
        version loaded; waiting if it updates a row not loaded yet; inserted if its first row
        (the record itself, e.g. the appointment) is new; updated if any of its rows changed or
        was added (e.g. the visit of a known appointment); else unchanged.

        Counted COUNT_SPAN positions at a time, each span by one aggregation per record
        (`_FIRST_INSERT`: whether the record's first target inserted, without grouping by record
        and target first, a second hash table as large as the first): it runs after the file's
        rows are written, when the key index DuckDB kept of the rows a transaction added (not
        spillable: ~0.5 GB for 10 M slots, until migration 009 dropped the fact tables' keys) left
        little of `[ingest] memory_limit`, and one aggregation of 10 M records ran out of it.

        `one_row_each`: every record has at most one outcome row (the file's rows are one counted
        target's, one row per record), so a record's outcome is its row's and nothing is
        aggregated (FHIR Appointment at 1 M: 0.2 s of CPU; benchmarks/RESULTS.md, s33-stage).
        """
        ((low, high),) = self.cur.execute(
            "SELECT min(_pos), max(_pos) FROM (SELECT _pos FROM _outcome UNION ALL SELECT _pos FROM _fail)"
        ).fetchall()
        total = Counts()
        for first in range(low, high + 1, COUNT_SPAN) if low is not None else ():
            span = f"_pos BETWEEN {first} AND {first + COUNT_SPAN - 1}"
            if one_row_each:  # a record's outcome is its row's
                o = (
                    "SELECT _pos, _action = 'insert' AS _first_inserted, _action IN ('insert', 'update') AS _written "
                    f"FROM _outcome WHERE {span}"
                )
            else:
                o = (
                    f"SELECT _pos, arg_min(_action = 'insert', {_FIRST_INSERT}) AS _first_inserted, "
                    f"bool_or(_action IN ('insert', 'update')) AS _written FROM _outcome WHERE {span} GROUP BY _pos"
                )
            row = self.cur.execute(
                f"WITH o AS ({o}), "
                "rec AS (SELECT _pos, "
                f"  CASE WHEN _pos IN (SELECT _pos FROM _stale WHERE {span}) THEN 'stale' "
                f"       WHEN _pos IN (SELECT _pos FROM _wait WHERE {span}) THEN 'waiting' "
                "       WHEN _first_inserted THEN 'inserted' "
                "       WHEN _written THEN 'updated' ELSE 'unchanged' END AS outcome "
                f"  FROM o WHERE _pos NOT IN (SELECT _pos FROM _fail WHERE {span}) "
                f"  UNION ALL SELECT DISTINCT _pos, 'rejected' FROM _fail WHERE {span}) "
                "SELECT count(*), count(*) FILTER (outcome = 'inserted'), count(*) FILTER (outcome = 'updated'), "
                "count(*) FILTER (outcome = 'unchanged'), count(*) FILTER (outcome = 'rejected'), "
                "count(*) FILTER (outcome = 'stale'), count(*) FILTER (outcome = 'waiting') FROM rec"
            ).fetchone()
            total = Counts(*(a + int(b) for a, b in zip(astuple(total), row, strict=True)))
        return total

    def _write_rejects(self, batch: Batch, run_id: int, file_name: str) -> None:
        """Every failure of every rejected record, each with the record (identifiers masked)."""
        cur = self.cur
        if self._raw_cols is not None:
            cols = self._raw_cols
            values = (masked_sql(f"CAST(r.{q(c)} AS VARCHAR)") for c in cols)  # free text is withheld
            record = "to_json(struct_pack(" + ", ".join(f"{q(c)} := {v}" for c, v in zip(cols, values, strict=True))
            record += "))::VARCHAR"
            cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _records AS SELECT r._pos, {record} AS record FROM _raw_all r "
                "WHERE r._pos IN (SELECT _pos FROM _fail)"
            )
        else:
            positions = [r[0] for r in cur.execute("SELECT DISTINCT _pos FROM _fail ORDER BY 1").fetchall()]
            found = batch.records(positions)
            texts = [found.get(p) for p in positions]
            records = pa.table({"_pos": pa.array(positions, pa.int64()), "record": pa.array(texts, pa.string())})
            cur.execute("CREATE OR REPLACE TEMP TABLE _records (_pos BIGINT, record VARCHAR)")
            self._insert("_records", records, ["_pos", "record"])
        cur.execute("DROP TABLE IF EXISTS _raw_all")
        cur.execute(
            "INSERT INTO rejects (run_id, file_path, position_kind, position, target_table, field, check_name, "
            "reason, value_masked, record_masked) "
            f"SELECT {run_id}, {lit(file_name)}, {lit(batch.position_kind)}, f._pos, f.target_table, f.field, "
            f"f.check_name, f.reason, {masked_sql('f.value_masked')}, r.record FROM (SELECT DISTINCT * FROM _fail) f "
            "LEFT JOIN _records r USING (_pos) ORDER BY f._pos, f._order, f.field"
        )

    # -- SQL helpers --------------------------------------------------------------------------

    def _any(self, sql: str) -> bool:
        """Whether `sql` gives a row (it stops at the first)."""
        return self.cur.execute(f"SELECT EXISTS ({sql})").fetchone()[0]

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def _fmt(self, meta: TableMeta, column: str, alias: str = "") -> str:
        """SQL rendering a column's value for a person: local time for instants, 'empty' for NULL."""
        ref = f"{alias}.{q(column)}" if alias else q(column)
        if meta.columns[column].type.startswith("TIMESTAMP WITH TIME ZONE"):
            value = f"strftime(timezone({lit(self.tz)}, {ref}), '%Y-%m-%d %H:%M')"
        else:
            value = f"CAST({ref} AS VARCHAR)"
        return f"coalesce({value}, 'empty')"

    def _key_text(self, meta: TableMeta, alias: str) -> str:
        parts = [k for k in meta.key if k != "source"] or list(meta.key)
        return " || ' ' || ".join(f"{lit(k + ' ')} || coalesce(CAST({alias}{q(k)} AS VARCHAR), 'empty')" for k in parts)

    def _sentence(self, meta: TableMeta, rule: Constraint) -> str:
        """SQL for the sentence of a broken CHECK rule, with the row's values filled in."""
        template = checks.BROKEN.get((meta.name, rule.columns[0]))
        if template is None:
            field = rule.columns[0]
            allowed = re.findall(r"'([^']*)'", rule.expression)
            if " IN (" in rule.expression and allowed:
                template = f"{field} {{{field}}} is not one of: {', '.join(allowed)}"
            else:
                template = f"{field} {{{field}}} breaks the rule {rule.expression}"
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
        return _fill(template, {name: self._fmt(meta, name) for name in names})


def _fill(template: str, values: dict[str, str]) -> str:
    """SQL concatenating `template`'s text with the SQL expressions named by its {placeholders}."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(lit(literal))
        if name:
            parts.append(values[name])
    return "concat(" + ", ".join(parts) + ")"
