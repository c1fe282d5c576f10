"""The one load path: stage, check, upsert, count and quarantine a file's rows in DuckDB.

Every adapter's `Batch` goes through `Loader.load`, inside the caller's transaction:

1. stage each target's Arrow rows in a temp table, cast to the warehouse column types and
   merged with the existing warehouse row (a record owns only the columns it writes);
2. check the merged rows against the schema's own NOT NULL and CHECK constraints, plus
   "the row an update refers to exists" and "the same key twice in this file agrees";
3. reject a record as a whole if any of its rows fails, with the first failure's sentence;
4. write: insert new keys, update changed rows, leave identical rows (and their lineage) alone;
5. count every record exactly once: read = inserted + updated + unchanged + rejected.

A record is one source record (a CSV line, a FHIR resource, an X12 claim or claim payment, a
call); it may write rows to several tables (an appointment and its visit; a claim and its
lines), and is accepted or rejected as a whole.

All of it is set-based SQL over the staged tables, so a million-row file costs a few scans.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from ingest import checks
from ingest.batch import RESTART, Batch, Chunk, Target


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
    """Columns, primary keys and CHECK constraints of every warehouse table, from DuckDB's catalog."""
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
    return {t: TableMeta(t, c, keys.get(t, ()), tuple(rules.get(t, ()))) for t, c in cols.items()}


@dataclass
class _Slot:
    """A target's rows staged so far: the temp table they are appended to, and their columns."""

    target: Target
    table: str
    write: list[str]
    errs: list[str]
    rows: int = 0


@dataclass
class Counts:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


class Loader:
    """Loads batches into the warehouse through one cursor (temp tables are per connection)."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, schema: dict[str, TableMeta], timezone: str) -> None:
        self.cur = cur
        self.schema = schema
        self.tz = timezone
        self._n = 0
        self._order = 0
        self._kind = "record"
        self._write: dict[str, list[str]] = {}  # per staged target: the columns its rows write
        self._errs: dict[str, list[str]] = {}  # and the adapter's `_err_*` columns it has

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
        self._reset()
        chunks = batch.chunks if batch.chunks is not None else [Chunk(batch.phases, batch.errors, batch.raw)]
        for chunk in chunks:
            if chunk is RESTART:
                self._reset()
            else:
                self._add(chunk)
        for key in sorted({(order, k) for order, k, _ in self._slots}):
            slots = [self._slots[s] for s in sorted(self._slots) if s[:2] == key]
            self._phase([slot for slot in slots if slot.rows], run_id)
        for slot in self._slots.values():
            cur.execute(f"DROP TABLE IF EXISTS {slot.table}")
        counts = self._counts()
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
            cur.register("_errors_in", errors)
            cur.execute(
                "INSERT INTO _fail SELECT _pos, -1, NULL, field, check_name, reason, value_masked FROM _errors_in"
            )
            cur.unregister("_errors_in")
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
            cur.register("_raw_in", chunk.raw)
            cur.execute("INSERT INTO _raw_all BY NAME SELECT * FROM _raw_in")
            cur.unregister("_raw_in")

    def _append(self, key: tuple[int, int, int], target: Target, rows: pa.Table) -> None:
        """Append `rows` to the typed input table of target `key`, numbering them in file order."""
        meta = self.schema[target.table]
        write = [c for c in rows.column_names if not c.startswith("_")]
        errs = [c for c in ("_err_field", "_err_check", "_err_reason", "_err_value") if c in rows.column_names]
        slot = self._slots.get(key)
        if slot is None:
            unknown = [c for c in write if c not in meta.columns]
            missing_key = [k for k in meta.key if k not in write]
            if unknown or missing_key:
                raise ValueError(
                    f"adapter rows for {target.table}: unknown columns {unknown}, missing key {missing_key}"
                )
            slot = self._slots[key] = _Slot(target, f"_s{len(self._slots) + 1}", write, errs)
            typed = ["_pos BIGINT", "_row BIGINT", *(f"{c} VARCHAR" for c in errs)]
            typed += [f"{q(c)} {meta.columns[c].type}" for c in write]
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE {slot.table} ({', '.join(typed)})")
        elif (slot.target, slot.write, slot.errs) != (target, write, errs):
            raise ValueError(f"adapter rows for {target.table}: chunks differ in target or columns")
        if not rows.num_rows:
            return
        numbers = pa.array(range(slot.rows + 1, slot.rows + 1 + rows.num_rows), pa.int64())
        slot.rows += rows.num_rows
        values = ["CAST(_pos AS BIGINT)", "_row", *(f"CAST({c} AS VARCHAR)" for c in errs)]
        values += [f"CAST({q(c)} AS {meta.columns[c].type})" for c in write]
        self.cur.register("_chunk_in", rows.append_column("_row", numbers))
        self.cur.execute(f"INSERT INTO {slot.table} SELECT {', '.join(values)} FROM _chunk_in")
        self.cur.unregister("_chunk_in")

    # -- one phase ----------------------------------------------------------------------------

    def _phase(self, slots: list[_Slot], run_id: int) -> None:
        staged = [(slot.target, self._stage(slot)) for slot in slots]
        for target, name in staged:
            self._check(target, name)
        for target, name in staged:
            self._dedupe(target, name)
        for target, name in staged:
            self._apply(target, name, run_id)
        for _, name in staged:
            self.cur.execute(f"DROP TABLE IF EXISTS _c{name}")
            self.cur.execute(f"DROP TABLE IF EXISTS _d{name}")

    def _stage(self, slot: _Slot) -> str:
        """Temp table `_cN`: the rows as given, typed, merged with the warehouse row of their key."""
        target, table, write, errs = slot.target, slot.table, slot.write, slot.errs
        meta = self.schema[target.table]
        self._n += 1
        n = str(self._n)
        self._write[n], self._errs[n] = write, errs
        join = " AND ".join(f"s.{q(k)} = w.{q(k)}" for k in meta.key)
        exists = f"(w.{q(meta.key[0])} IS NOT NULL)"
        merged = [f"s.{c}" for c in errs]
        for c in meta.columns:
            if c == "ingest_run_id":
                continue
            if c not in write:
                merged.append(f"w.{q(c)} AS {q(c)}")
            elif c in target.insert_only:
                merged.append(f"CASE WHEN {exists} THEN w.{q(c)} ELSE s.{q(c)} END AS {q(c)}")
            elif target.mode == "reference" and c not in meta.key:
                merged.append(f"coalesce(w.{q(c)}, s.{q(c)}) AS {q(c)}")
            else:
                merged.append(f"s.{q(c)} AS {q(c)}")
        # the warehouse row's compared columns ride along as `_was<i>`, so that whether a row
        # changed needs no second join with the (whole) warehouse table
        compare = self._compare_columns(target, write)
        was = [f"w.{q(c)} AS _was{i}" for i, c in enumerate(compare)]
        merge = (
            f"SELECT s._pos, s._row, {exists} AS _exists, {', '.join([*merged, *was])} "
            f"FROM s LEFT JOIN main.{q(target.table)} w ON {join}"
        )
        derived = ", ".join(f"({expression}) AS {q(column)}" for column, expression in target.derived)
        with_derived = f"SELECT row.* REPLACE ({derived}) FROM m AS row {target.join}" if derived else "SELECT * FROM m"
        changed = " OR ".join(f"d.{q(c)} IS DISTINCT FROM d._was{i}" for i, c in enumerate(compare)) or "FALSE"
        exclude = f" EXCLUDE ({', '.join(f'_was{i}' for i in range(len(compare)))})" if compare else ""
        self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _c{n} AS WITH s AS (SELECT * FROM {table}), "
            f"m AS ({merge}), d AS ({with_derived}) "
            f"SELECT d.*{exclude}, (NOT d._exists OR {changed}) AS _changed FROM d"
        )
        self.cur.execute(f"DROP TABLE {table}")  # its rows are in _cN now
        return n

    def _compare_columns(self, target: Target, write: list[str]) -> list[str]:
        meta = self.schema[target.table]
        cols = list(dict.fromkeys([*write, *(c for c, _ in target.derived)]))
        return [c for c in cols if c not in meta.key and c not in target.insert_only and c != "ingest_run_id"]

    def _check(self, target: Target, n: str) -> None:
        """Every failure of every row, in rule order, as one INSERT into `_fail`."""
        meta = self.schema[target.table]
        table = lit(target.table)
        parts = []
        if "_err_check" in self._errs[n]:
            parts.append(
                f"SELECT _pos, {self._next_order()}, {table}, _err_field, _err_check, _err_reason, _err_value "
                f"FROM _c{n} WHERE _err_check IS NOT NULL"
            )
        if target.mode == "update":
            key = self._key_text(meta, "")
            reason = _fill(checks.MISSING_PARENT, {"table": table, "key": key})
            parts.append(
                f"SELECT _pos, {self._next_order()}, {table}, {lit(meta.key[-1])}, 'missing_{target.table}', "
                f"{reason}, {key} FROM _c{n} WHERE NOT _exists"
            )
        for col in meta.columns.values():
            if col.nullable or col.default is not None:
                continue
            sentence = checks.REQUIRED.get((target.table, col.name), f"{col.name} is missing")
            parts.append(
                f"SELECT _pos, {self._next_order()}, {table}, {lit(col.name)}, 'required', {lit(sentence)}, NULL "
                f"FROM _c{n} WHERE {q(col.name)} IS NULL"
            )
        for rule in meta.checks:
            field = rule.columns[0]
            parts.append(
                f"SELECT _pos, {self._next_order()}, {table}, {lit(field)}, {lit('rule_' + field)}, "
                f"{self._sentence(meta, rule)}, {self._fmt(meta, field)} "
                f"FROM _c{n} WHERE NOT coalesce({rule.expression}, TRUE)"
            )
        self.cur.execute("INSERT INTO _fail " + " UNION ALL ".join(parts))

    def _dedupe(self, target: Target, n: str) -> None:
        """`_dN`: the rows not failed so far, ranked per key. A later row that disagrees with the
        first is a failure (merge and update targets; references keep the first silently)."""
        meta = self.schema[target.table]
        keys = ", ".join(q(k) for k in meta.key)
        self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _d{n} AS SELECT *, row_number() OVER (PARTITION BY {keys} "
            f"ORDER BY _pos, _row) AS _rn FROM _c{n} WHERE _pos NOT IN (SELECT _pos FROM _fail)"
        )
        compare = [c for c in meta.columns if c in self._write[n] and c not in meta.key]
        if target.mode == "reference" or not compare:
            return
        diff = ", ".join(
            f"CASE WHEN a.{q(c)} IS DISTINCT FROM b.{q(c)} THEN {lit(c + ': ')} || {self._fmt(meta, c, 'b')} "
            f"|| ' vs ' || {self._fmt(meta, c, 'a')} END"
            for c in compare
        )
        differs = " OR ".join(f"a.{q(c)} IS DISTINCT FROM b.{q(c)}" for c in compare)
        join = " AND ".join(f"a.{q(k)} = b.{q(k)}" for k in meta.key)
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
            f"FROM _d{n} a JOIN _d{n} b ON {join} AND a._rn = 1 AND b._rn > 1 WHERE {differs}"
        )

    def _apply(self, target: Target, n: str, run_id: int) -> None:
        """Write the first row of each key of records that were not rejected; note each row's outcome."""
        meta = self.schema[target.table]
        cur = self.cur
        live = "_rn = 1 AND _pos NOT IN (SELECT _pos FROM _fail)"
        update_cols = self._compare_columns(target, [c for c in meta.columns if c in self._write[n]])
        if update_cols:
            sets = ", ".join(f"{q(c)} = c.{q(c)}" for c in update_cols)
            join = " AND ".join(f"main.{q(target.table)}.{q(k)} = c.{q(k)}" for k in meta.key)
            cur.execute(
                f"UPDATE main.{q(target.table)} SET {sets}, ingest_run_id = {run_id} "
                f"FROM _d{n} c WHERE {join} AND c._exists AND c._changed AND c.{live}"
            )
        insert_cols = [c for c in meta.columns if c in self._write[n] or c in dict(target.derived)]
        values = []
        for c in insert_cols:
            default = meta.columns[c].default
            values.append(f"coalesce({q(c)}, {default})" if default is not None else q(c))
        cur.execute(
            f"INSERT INTO main.{q(target.table)} ({', '.join(q(c) for c in insert_cols)}, ingest_run_id) "
            f"SELECT {', '.join(values)}, {run_id} FROM _d{n} WHERE NOT _exists AND {live}"
        )
        if target.counted:
            cur.execute(
                f"INSERT INTO _outcome SELECT c._pos, {n}, CASE WHEN c._pos IN (SELECT _pos FROM _fail) THEN 'reject' "
                f"WHEN d._rn > 1 THEN 'same' WHEN NOT c._exists THEN 'insert' WHEN c._changed THEN 'update' "
                f"ELSE 'same' END FROM _c{n} c LEFT JOIN (SELECT _row, _rn FROM _d{n}) d USING (_row)"
            )

    # -- totals and rejects -------------------------------------------------------------------

    def _counts(self) -> Counts:
        """Each record once: rejected if any of its rows failed; inserted if its first row (the
        record itself, e.g. the appointment) is new; updated if any of its rows changed or was
        added (e.g. the visit of a known appointment); else unchanged."""
        row = self.cur.execute(
            "WITH o AS (SELECT _pos, _action, _target = min(_target) OVER (PARTITION BY _pos) AS _first "
            "  FROM _outcome), "
            "rec AS (SELECT _pos, "
            "  CASE WHEN bool_or(_first AND _action = 'insert') THEN 'inserted' "
            "       WHEN bool_or(_action IN ('insert', 'update')) THEN 'updated' ELSE 'unchanged' END AS outcome "
            "  FROM o WHERE _pos NOT IN (SELECT _pos FROM _fail) GROUP BY _pos "
            "  UNION ALL SELECT DISTINCT _pos, 'rejected' FROM _fail) "
            "SELECT count(*), count(*) FILTER (outcome = 'inserted'), count(*) FILTER (outcome = 'updated'), "
            "count(*) FILTER (outcome = 'unchanged'), count(*) FILTER (outcome = 'rejected') FROM rec"
        ).fetchone()
        return Counts(*(int(v) for v in row))

    def _write_rejects(self, batch: Batch, run_id: int, file_name: str) -> None:
        cur = self.cur
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE _first_fail AS SELECT * FROM _fail "
            "QUALIFY row_number() OVER (PARTITION BY _pos ORDER BY _order, field) = 1"
        )
        if self._raw_cols is not None:
            cols = self._raw_cols
            record = "to_json(struct_pack(" + ", ".join(f"{q(c)} := r.{q(c)}" for c in cols) + "))::VARCHAR"
            cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _records AS SELECT r._pos, {record} AS record FROM _raw_all r "
                "WHERE r._pos IN (SELECT _pos FROM _first_fail)"
            )
        else:
            positions = [r[0] for r in cur.execute("SELECT _pos FROM _first_fail").fetchall()]
            found = batch.records(positions)
            texts = [found.get(p) for p in positions]
            records = pa.table({"_pos": pa.array(positions, pa.int64()), "record": pa.array(texts, pa.string())})
            cur.register("_records_in", records)
            cur.execute("CREATE OR REPLACE TEMP TABLE _records AS SELECT * FROM _records_in")
            cur.unregister("_records_in")
        cur.execute("DROP TABLE IF EXISTS _raw_all")
        cur.execute(
            "INSERT INTO rejects (run_id, file_path, position_kind, position, target_table, field, check_name, "
            "reason, value_masked, record_masked) "
            f"SELECT {run_id}, {lit(file_name)}, {lit(batch.position_kind)}, f._pos, f.target_table, f.field, "
            "f.check_name, f.reason, f.value_masked, r.record FROM _first_fail f LEFT JOIN _records r USING (_pos) "
            "ORDER BY f._pos"
        )

    # -- SQL helpers --------------------------------------------------------------------------

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
