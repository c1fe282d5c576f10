"""Build and refresh the results store: in full, or only what the loads since the last refresh touched.

A refresh runs in one transaction, inside a writer's copy of the warehouse (`kpis.publication`
calls `before_publish` after every load, so a published snapshot's results always match its raw
tables), or on demand (`clinic-kpis refresh [--full]`). Per fact table:

* **full** when the store has none yet, when its fingerprint (the SQL that builds it: catalog,
  options in force, time zone, business hours, store version) changed, or on `--full`;
* else **incremental**: the record ids the changed rows touch (`kpis.serving.changes`, found
  from every table's previous facts before any is replaced) are recomputed by evaluating the
  relation over just the rows they depend on; the fact rows that really changed (old EXCEPT
  new, both ways) say which months' results to recompute: their own months for rates, means and
  medians; every month from the earliest one on for A/R balances (a stock: an old entry moves
  every later balance, and days in A/R's look-back window). When the touched ids are at least
  `REBUILD_SHARE` of the table's rows (a first load of billing, a `--force` of a large file),
  the table is rebuilt instead: updating would hold its old and new rows and their diffs at once.

Third next available is recomputed for the snapshots a change can move. A/R aging
(`kpis.serving.aging`) from the first month of the ledger rows whose A/R columns changed, for
their accounts. Coverage is recounted for the days the changed rows fall on and fell on (their
replaced facts' days; whole tables when that does not add up), dimension values for the tables
that changed, data ends always. All of it runs under `[refresh] memory_limit`. Last,
`serving.meta` records the fingerprints, the last ingest run covered and `stale = false`: from
then on readers answer from the store.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from kpis import sources
from kpis.config import Config
from kpis.coverage import COVERAGE, coverage_sql
from kpis.custom import third_next_available
from kpis.dimensions import source_tables, values_sql
from kpis.engine import grouping_id
from kpis.periods import Periods, local_instant_utc, month_runs, months_between, next_period, period_floor
from kpis.progress import steps
from kpis.query import QueryContext, render, with_relation
from kpis.relations import DIMENSIONS, INSTANT, Relation
from kpis.serving import aging, changes, deltas, payments
from kpis.serving.answer import (
    AGING_TABLE,
    FACTS,
    RESULTS_TABLE,
    RESULTS_VERSION,
    grouping_name,
    groupings,
    statements,
)
from kpis.serving.facts import AGING, SCHEMA, TNA, FactTable, Layout, ar_sums, layout
from kpis.serving.stored import COVERAGE_TABLE, SCOPES_TABLE, SCOPES_VERSION, values_table
from kpis.spec import QUANTILES
from kpis.sql_literals import sql_literal
from kpis.storage import Store, bounded_memory, memory_limit_bytes, release_freed_memory, spill_capped

TNA_TABLE = f"{SCHEMA}.facts_{TNA}"
ROW_GROUP_ROWS = 122_880  # DuckDB's row group: below one, order makes no difference to a read
UNSORTED_SHARE = 0.05  # the share of a fact table appended out of day order before it is sorted again
REBUILD_SHARE = 0.5  # touched record ids per fact row from which a group is rebuilt rather than updated
# a relation built in parts (`_Refresh.parts`): bytes of memory per row of the tables it reads, and the
# share of the memory limit a part may take (the rest for what the refresh holds meanwhile)
PART_ROW_BYTES = 200
PART_SHARE = 0.5
PARTS: int | None = None  # a fixed part count instead (tests)
EMPTY_WEEK = 5218  # a snapshot week without data (2000-01-03), to build an empty table of the right shape


@dataclass
class RefreshSummary:
    """What a refresh did: groups rebuilt, fact rows recomputed, month results recomputed."""

    rebuilt: list[str] = field(default_factory=list)
    recomputed_rows: dict[str, int] = field(default_factory=dict)
    months: dict[str, int] = field(default_factory=dict)
    covered_run: int = 0
    seconds: float = 0.0
    unbounded: bool = False  # `[refresh] memory_limit` was too low: it ran again with DuckDB's default
    ran_out: str = ""  # then the step that ran out of memory under the limit (e.g. "facts of claim_outcomes")
    coverage_recounted: list[str] = field(default_factory=list)  # tables whose coverage was counted whole
    sorted: list[str] = field(default_factory=list)  # fact tables sorted by day again (keep_in_day_order)
    moved: dict[str, int] = field(default_factory=dict)  # months of additive results moved by signed rows (deltas)
    # groups whose replaced fact rows were found with what changed (by row id), not by a scan of their keys;
    # ar_aging when its accounts' rows came from the ledger's touched rows, not from a scan of its facts
    found_by_row_id: list[str] = field(default_factory=list)
    parts: dict[str, int] = field(default_factory=dict)  # group -> statements its new facts took (1: one)

    @property
    def memory_note(self) -> str:
        """What the user is told when the refresh needed more than `[refresh] memory_limit` ("" if not).

        The rerun under DuckDB's own limit can take many times the configured memory: whoever set
        the limit (or runs the load beside other work) must hear of it, from an ingest as from a refresh."""
        if not self.unbounded:
            return ""
        return (
            f"[refresh] memory_limit was too low for this refresh ({self.ran_out} ran out): "
            "it ran with DuckDB's default"
        )


def before_publish(store: Store) -> None:
    """Entry point `clinic_kpis.before_publish`: refresh the copy a writer is about to publish.

    What the writer's loads freed is given back first (`release_freed_memory`): the refresh runs in
    their process, under `[refresh] memory_limit`, and would otherwise hold it on top of that limit."""
    release_freed_memory()
    summary = refresh_store(store)
    if summary.memory_note:
        print(f"warning: results store: {summary.memory_note}", file=sys.stderr)


def refresh_store(store: Store, *, full: bool = False) -> RefreshSummary:
    """`refresh` on a writer's store, its rerun after running out of memory on the file opened afresh."""
    with store.cursor() as cur:
        return refresh(cur, store.config, full=full, reopen=lambda: reopened_cursor(store))


def reopened_cursor(store: Store) -> Any:
    """A cursor on `store`'s file opened afresh: `refresh`'s `reopen` for a store it runs on."""
    store.reopen()
    return store.cursor()


def refresh(
    cursor: Any,
    config: Config,
    *,
    full: bool = False,
    progress: bool = True,
    facts_from: Callable[[str, str], str] | None = None,
    reopen: Callable[[], Any] | None = None,
) -> RefreshSummary:
    """Bring the results store up to date with the warehouse, in one transaction.

    `facts_from(group, select)` gives the SELECT a rebuilt fact table is filled from, given the
    one DuckDB would run (by default that one; `kpis.serving.spark_fill` has Spark compute it).
    `reopen()` opens the file afresh and returns a cursor on it, for the rerun after running out of
    memory (`Store.reopen`: DuckDB may keep a rolled-back table's catalog entry); without it the
    rerun uses `cursor`.
    """
    started = time.perf_counter()
    job = _Refresh(cursor, layout(config), full, facts_from or _in_duckdb)
    if not full and job.up_to_date():
        return job.summary
    try:
        with bounded_memory(cursor, config):
            _run(cursor, job, progress)
    except duckdb.OutOfMemoryException as exc:
        if spill_capped(exc):
            raise  # the spill reached its cap on disk ([warehouse] max_temp_size): kpis.publication says so
        # Too little for this refresh (a full build of a large store, where some steps cannot
        # spill): everything was rolled back; once more with DuckDB's own limit rather than fail.
        ran_out = job.step
        if reopen is not None:
            cursor = reopen()
        job = _Refresh(cursor, layout(config), full, facts_from or _in_duckdb)
        job.summary.unbounded, job.summary.ran_out = True, ran_out
        _run(cursor, job, progress)
    job.summary.seconds = time.perf_counter() - started
    return job.summary


def _run(cursor: Any, job: _Refresh, progress: bool) -> None:
    """The refresh's steps, in one transaction (rolled back on any error)."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        work = job.plan()
        for name, step in steps(work, "refreshing the results store") if progress else work:
            job.step = name
            step()
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise


class _Refresh:
    """One refresh: which tables to rebuild or update, then the steps that do it."""

    def __init__(self, cur: Any, lay: Layout, full: bool, facts_from: Callable[[str, str], str]) -> None:
        self.cur = cur
        self.facts_from = facts_from
        self.lay = lay
        self.config = lay.config
        self.meta = dict(cur.execute(f"SELECT key, value FROM {SCHEMA}.meta").fetchall())
        self.fingerprints = lay.fingerprints()
        (self.last_run,) = cur.execute("SELECT coalesce(max(run_id), 0) FROM ingest_runs").fetchone()
        covered = self.meta.get("covered_run")
        # a write whose rows may not carry a new run id cannot be found: rebuild everything
        untracked = self.meta.get("untracked_writes") == "true"
        self.watermark = None if full or covered is None or untracked else int(covered)
        self.existing = {
            name
            for (name,) in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = ? AND database_name = current_database()",
                [SCHEMA],
            ).fetchall()
        }
        self.summary = RefreshSummary(covered_run=int(self.last_run))
        self.months: dict[str, set[date]] = {}  # group -> months whose results to recompute
        self.tails: dict[str, date] = {}  # group -> first month of A/R results to recompute
        self.meta_updates: dict[str, str] = {}
        self.aging_noted = False  # the ledger's facts changed: note_aging_accounts kept their accounts
        self.old_days: dict[str, set[date]] = {}  # coverage table -> the previous days of its replaced rows
        self.signed: set[str] = set()  # groups whose changed fact rows are kept signed (`_signed_<group>`, deltas)
        self.payers_changed = False  # a payer changed since the watermark (its class moves every row of the payer)
        self.step = ""  # the step running (`plan`'s name), to say which one ran out of memory
        self.states: dict[str, str | None] = {}  # group -> its data-wide state now (`state`)

    # -- planning -------------------------------------------------------------------------------

    def fresh(self, group: str, table: str) -> bool:
        """Whether `group`'s table can be updated in place (else it is rebuilt)."""
        return (
            self.watermark is not None
            and table.split(".")[1] in self.existing
            and self.meta.get(f"fingerprint:{group}") == self.fingerprints[group]
            and self.meta.get(f"state:{group}") == self.state(group)
        )

    def state(self, group: str) -> str | None:
        """The group's data-wide state now (`changes.state_sql`), or None if its rows depend on none."""
        if group not in self.states:
            sql = changes.state_sql(group)
            self.states[group] = None if sql is None else str(self.cur.execute(sql).fetchone()[0])
        return self.states[group]

    def up_to_date(self) -> bool:
        """Nothing was written since the last refresh, with the definitions in force."""
        groups = [(t.group, t.name) for t in self.lay.tables]
        if self.lay.tna is not None:
            groups.append((TNA, TNA_TABLE))
        if self.lay.aging is not None:
            groups.append((AGING, AGING_TABLE))
        return (
            self.meta.get("untracked_writes") != "true"
            and self.meta.get("stale") == "false"
            and self.meta.get("covered_run") == str(self.last_run)
            and self.has_results()
            and all(self.fresh(group, table) for group, table in groups)
            and payments.built(self.meta)
            and self.meta.get("scopes_version") == SCOPES_VERSION
            and self.meta.get("results_version") == RESULTS_VERSION
        )

    def plan(self) -> list[tuple[str, Callable[[], None]]]:
        tables = {t.group: t for t in self.lay.tables}
        incremental = [t for t in self.lay.tables if self.fresh(t.group, t.name)]
        if "slots" in tables and tables["slots"] in incremental and tables.get("appointments") not in incremental:
            incremental.remove(tables["slots"])  # its changes are found from the appointments' previous facts
        rebuilt = [t for t in self.lay.tables if t not in incremental]
        work: list[tuple[str, Callable[[], None]]] = [("what changed", lambda: self.find_touched(incremental))]
        if self.lay.tna is not None:
            work.append(("what changed for third next available", self.find_tna_changes))
        work += [(f"facts of {t.group}", lambda t=t: self.update(t)) for t in incremental]
        work += [(f"facts of {t.group}", lambda t=t: self.rebuild(t)) for t in rebuilt]
        if self.lay.tna is not None:
            work.append(("third next available", self.third_next_available))
        if self.lay.aging is not None:
            work.append(("A/R aging", self.ar_aging))
        work += [
            ("month results", self.results),
            ("coverage", self.coverage),
            ("dimension values", self.dimension_values),
            ("scopes", self.scopes),
            ("average payments", self.payments),
            ("data ends", self.finish),
        ]
        return work

    # -- facts ----------------------------------------------------------------------------------

    def find_touched(self, tables: list[FactTable]) -> None:
        """The record ids each table must recompute, all found before any fact row is replaced."""
        facts = {t.group: t.name for t in self.lay.tables}
        changed = changes.CHANGED.format(watermark=self.watermark) if self.watermark is not None else "TRUE"
        (payers,) = self.cur.execute(f"SELECT EXISTS (SELECT 1 FROM main.payers AS t WHERE {changed})").fetchone()
        self.payers_changed = bool(payers)
        for table in tables:  # every table's first: one's touched record ids may read another's (slots)
            for name, sql in changes.find_sql(table.group, self.watermark, facts, payers).items():
                self.cur.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        for table in tables:
            touched = changes.touched_sql(table.group, self.watermark, facts, payers)
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _keys_{table.group} AS SELECT DISTINCT * FROM ({touched}) AS x(key)"
            )

    def update(self, table: FactTable) -> None:
        """Replace the fact rows of the touched record ids; note the months whose results moved.

        The fact table's keys are read once (its touched rows kept with their row ids, which the
        delete uses): the new rows are evaluated once into a temp table, and old and new are
        compared there. With nothing touched it is not read at all (at 10 M rows each read of it
        takes seconds).
        """
        keys = f"_keys_{table.group}"
        found = [keys, *changes.DEPENDENCIES[table.group].find]
        (count,) = self.cur.execute(f"SELECT count(*) FROM {keys}").fetchone()
        self.summary.recomputed_rows[table.group] = int(count)
        if count == 0:
            self.drop(found)
            return
        (rows,) = self.cur.execute(f"SELECT count(*) FROM {table.name}").fetchone()
        if count >= REBUILD_SHARE * rows:
            # most of the group touched (its first load, a --force of a large file): the rows kept
            # beside the new ones, their diffs and the restricted reads would hold it all at once
            # (at 10 M they spilled past the disk); a rebuild writes straight into the table
            self.drop(found)
            self.rebuild(table)
            return
        # many touched claims in parts, as a full build (`parts`): as many as their share of its rows needs
        full = self.parts(table)
        parts = min(full, math.ceil(full * count / max(rows, 1)))
        self.summary.parts[table.group] = parts
        prepared = self.evaluate(table, f"SELECT key FROM {keys}", parts, "_new")
        # the touched rows' ids found reading the keys alone (or already found with what changed),
        # then their rows fetched by row id: one pass over every column of a 29 M-row table to keep
        # a few thousand rows took twice as long
        old_rows = changes.old_rows(table.group)
        if old_rows is not None:
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE _old_ids AS SELECT DISTINCT _row AS _rowid FROM {old_rows}")
            self.summary.found_by_row_id.append(table.group)
        else:
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _old_ids AS SELECT rowid AS _rowid FROM {table.name} "
                f"WHERE _key IN (SELECT key FROM {keys})"
            )
        self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _old AS SELECT rowid AS _rowid, * FROM {table.name} "
            "WHERE rowid IN (SELECT _rowid FROM _old_ids)"
        )
        # by row id: a virtual column, so the delete does not read the keys again
        self.cur.execute(f"DELETE FROM {table.name} WHERE rowid IN (SELECT _rowid FROM _old)")
        self.cur.execute(f"INSERT INTO {table.name} BY NAME SELECT * FROM _new")
        self.keep_in_day_order(table, int(self.cur.execute("SELECT count(*) FROM _new").fetchone()[0]))
        types = self.types(table.name)
        names = list(types)
        if deltas.additive_items(table, types):  # kept signed for the month results (kpis.serving.deltas)
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE _signed_{table.group} AS {deltas.signed_rows(names)}")
            columns = ", ".join(names)
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE _diff AS SELECT {columns} FROM _signed_{table.group}")
            self.signed.add(table.group)
        else:
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE _diff AS {_changed_rows(names)}")
        if table.ar_items:  # A/R moves only with the rows whose A/R columns changed (not e.g. a claim's settlement)
            posted = table.day_column("posted_date")
            kept = [n for n in names if n in ("_key", posted, *table.dims) or n.startswith("ar_")]
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE _ar_diff AS {_changed_rows(kept)}")
        self.note_months(table, "_diff")
        self.note_old_days(table)
        self.update_ar_sums(table)
        if self.lay.aging is not None and self.lay.aging[0] is table:
            self.note_aging_accounts(table)
        self.drop(["_keys", "_old_ids", "_old", "_new", "_diff", "_ar_diff", *found, *prepared])

    def drop(self, names: Iterable[str]) -> None:
        for name in names:
            self.cur.execute(f"DROP TABLE IF EXISTS {name}")

    def rebuild(self, table: FactTable) -> None:
        parts = self.parts(table)
        if parts > 1:
            self.build_in_parts(table, parts)
        else:
            statement = with_relation(table.relation, [], table.select_sql())
            select = self.facts_from(table.group, render(statement))
            if self.facts_from is not _in_duckdb:  # rows read back from elsewhere: in day order again (see select_sql)
                select = f"SELECT * FROM ({select}) AS f ORDER BY {table.day_column(table.events[0])}"
            self.cur.execute(f"CREATE OR REPLACE TABLE {table.name} AS {select}")
        self.summary.rebuilt.append(table.group)
        self.summary.parts[table.group] = parts
        self.meta_updates[f"appended:{table.group}"] = "0"
        for sums in ar_sums(table):
            self.cur.execute(f"CREATE OR REPLACE TABLE {sums.name} AS {sums.select_sql(table.name)}")
        self.months[table.group] = set(self.all_months(table.name, [table.day_column(e) for e in table.events]))
        if table.ar_items:
            first = self.first_month(table.name, [table.day_column("posted_date")])
            if first is not None:
                self.tails[table.group] = first
        if self.has_results():
            self.cur.execute(f"DELETE FROM {RESULTS_TABLE} WHERE kpi_id IN ({_ids(table.items)})")
        if "cells" in self.existing:
            self.cur.execute(f"DELETE FROM {deltas.CELLS_TABLE} WHERE fact_table = '{table.group}'")

    def parts(self, table: FactTable) -> int:
        """In how many parts of its record ids `table`'s facts are built: 1 unless its relation says
        how (`changes.every_sql`) and the rows it reads need more than `PART_SHARE` of the memory limit.

        Why: the claim outcomes number every claim's submissions and remittances and every
        remittance's adjustments (three ROW_NUMBER windows) and join the results: the operators
        each spill alone, but not all of them at once; at 10 M claims the one statement ran out
        of a 2 GB limit and the whole refresh ran again without one (11 GB). A part holds a
        share of the claims with all of their rows, so its rows are those of one statement.
        The part count is the rows the relation reads (its canonical tables' estimated sizes) at
        `PART_ROW_BYTES` each over `PART_SHARE` of the limit in force (`memory_limit_bytes`).

        Why those: at 1 M appointments (2.2 M claims, remittances and adjustments) one statement
        ran out of 200 MB and fit 300 MB (~110 bytes a row beyond ~60 MB a statement holds
        whatever its size), two parts fit 200 MB; 200 bytes over half the limit gives 5 parts
        there, and 5 at 10 M under 2 GB (22 M rows: 4.4 M a part, twice what fit 300 MB at 1 M).
        Each part reads the tables again (~0.4 s CPU at 1 M), so parts are not made smaller than
        that. At 100 MB the fixed share is the floor: 9 parts still ran out, 16 fit.
        """
        if changes.every_sql(table.group) is None or self.facts_from is not _in_duckdb:
            return 1
        if PARTS is not None:
            return PARTS
        tables = sql_literal(sorted(changes.DEPENDENCIES[table.group].reads))
        (rows,) = self.cur.execute(
            "SELECT coalesce(sum(estimated_size), 0) FROM duckdb_tables() "
            f"WHERE database_name = current_database() AND schema_name = 'main' AND table_name IN ({tables})"
        ).fetchone()
        return max(1, math.ceil(rows * PART_ROW_BYTES / (PART_SHARE * memory_limit_bytes(self.cur))))

    def build_in_parts(self, table: FactTable, parts: int) -> None:
        """Fill `table` from every record id in `parts` statements (`evaluate`), then sort it by day,
        as one statement writes it (`FactTable.select_sql`)."""
        prepared = self.evaluate(table, changes.every_sql(table.group), parts, "_parts")
        order = table.day_column(table.events[0])
        self.cur.execute(f"CREATE OR REPLACE TABLE {table.name} AS SELECT * FROM _parts ORDER BY {order}")
        self.drop(["_parts", "_keys", *prepared])

    def evaluate(self, table: FactTable, keys: str, parts: int, into: str) -> list[str]:
        """Temp table `into`: the fact rows of the record ids `keys` (a SELECT of one column), one part
        of them (`hash(key) % parts`) per statement; the temp tables left (`_keys`, the prepared).

        Each part is evaluated over the rows the relation's `reads` name for its record ids
        (`changes.restricted`), which hold all a record id's row depends on: its row is the one
        the whole relation gives.
        """
        relation = changes.restricted(table.relation.sql, table.group)
        select = table.select_sql(where="record_id IN (SELECT key FROM _keys)")
        statement = render(with_relation(_with_sql(table.relation, relation), [], select))
        prepared = changes.prepared(table.group)
        for part in range(parts):
            split = f"WHERE hash(key) % {parts} = {part}" if parts > 1 else ""
            self.cur.execute(f"CREATE OR REPLACE TEMP TABLE _keys AS SELECT DISTINCT * FROM ({keys}) AS k(key) {split}")
            for name, sql in prepared.items():  # made from the part's record ids
                self.cur.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
            if part == 0:
                self.cur.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {statement}")
            else:
                self.cur.execute(f"INSERT INTO {into} {statement}")
        return ["_keys", *prepared]

    def types(self, table: str) -> dict[str, str]:
        """`table`'s columns and their types, in order."""
        return dict(self.cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall())

    def keep_in_day_order(self, table: FactTable, appended: int) -> None:
        """Sort the fact table by day again once the rows appended since it was last sorted pass
        `UNSORTED_SHARE` of it (and a row group's worth).

        A month's recompute reads the row groups whose days overlap the month: in a table written
        in day order that is the month's own, plus the last row groups, where every refresh
        appends its rows (whatever their days). The sort bounds that extra read.
        """
        key = f"appended:{table.group}"
        total = int(self.meta.get(key) or 0) + appended
        (rows,) = self.cur.execute(f"SELECT count(*) FROM {table.name}").fetchone()
        if total > max(ROW_GROUP_ROWS, UNSORTED_SHARE * rows):
            sorted_name = f"{table.name}_sorted"
            order = table.day_column(table.events[0])
            self.cur.execute(f"CREATE OR REPLACE TABLE {sorted_name} AS SELECT * FROM {table.name} ORDER BY {order}")
            self.cur.execute(f"DROP TABLE {table.name}")
            self.cur.execute(f"ALTER TABLE {sorted_name} RENAME TO {table.name.split('.')[1]}")
            self.summary.sorted.append(table.group)
            total = 0
        self.meta_updates[key] = str(total)

    def update_ar_sums(self, table: FactTable) -> None:
        """Move the kept A/R sums (`facts.ar_sums`) by the replaced rows (`_old`) and their new ones (`_new`).

        Only the cells the changed rows fall in are read and rewritten; a cell left without rows
        is dropped, as a full build would not have it.
        """
        for sums in ar_sums(table):
            if sums.name.split(".")[1] not in self.existing:  # not built yet: from the updated facts
                self.cur.execute(f"CREATE OR REPLACE TABLE {sums.name} AS {sums.select_sql(table.name)}")
                continue
            keys = [name for name, _ in sums.keys]
            totals = ", ".join(f"SUM({name}) AS {name}" for name, _ in sums.sums)
            negated = ", ".join([*keys, *(f"-{name}" for name, _ in sums.sums)])
            new, old = sums.select_sql("_new"), sums.select_sql("_old")
            moved = " OR ".join(f"SUM({name}) IS DISTINCT FROM 0" for name, _ in sums.sums)
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _delta AS SELECT {', '.join(keys)}, {totals} FROM "
                f"(SELECT * FROM ({new}) AS n UNION ALL SELECT {negated} FROM ({old}) AS o) AS d GROUP BY ALL "
                f"HAVING {moved}"
            )
            first, last, undated = self.cur.execute(
                "SELECT min(posted_date), max(posted_date), count(*) FILTER (WHERE posted_date IS NULL) FROM _delta"
            ).fetchone()
            # the table is in posting order: a range of days reads the row groups of those days only
            days = [f"t.posted_date BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'"] if first else []
            days += ["t.posted_date IS NULL"] if undated else []
            same = " AND ".join(f"t.{k} IS NOT DISTINCT FROM d.{k}" for k in keys)
            cells = f"({' OR '.join(days) or 'FALSE'}) AND EXISTS (SELECT 1 FROM _delta AS d WHERE {same})"
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _merged AS SELECT {', '.join(keys)}, {totals} FROM "
                f"(SELECT * FROM {sums.name} AS t WHERE {cells} UNION ALL SELECT * FROM _delta) AS m "
                "GROUP BY ALL HAVING SUM(entries) <> 0"
            )
            self.cur.execute(f"DELETE FROM {sums.name} AS t WHERE {cells}")
            self.cur.execute(f"INSERT INTO {sums.name} BY NAME SELECT * FROM _merged")
            for name in ("_delta", "_merged"):
                self.cur.execute(f"DROP TABLE {name}")

    def note_months(self, table: FactTable, rows: str) -> None:
        """The months of `rows` (changed fact rows) whose results must be recomputed."""
        found = self.months.setdefault(table.group, set())
        for event in table.events:
            day = table.day_column(event)
            for (month,) in self.cur.execute(
                f"SELECT DISTINCT CAST(DATE_TRUNC('month', {day}) AS DATE) FROM {rows} WHERE {day} IS NOT NULL"
            ).fetchall():
                found.add(month)
        if table.ar_items:
            first = self.first_month("_ar_diff", [table.day_column("posted_date")])
            if first is not None:
                self.tails[table.group] = min(first, self.tails.get(table.group, first))

    def note_old_days(self, table: FactTable) -> None:
        """Keep the days the replaced rows fell on, for coverage: a row moved to another day leaves its old
        day one row short, and only the previous facts still know that day."""
        column = next((c for _, t, c, _ in COVERAGE if t == table.group), None)
        if column is None or column not in table.events:
            return
        day = table.day_column(column)
        rows = self.cur.execute(f"SELECT DISTINCT {day} FROM _old WHERE {day} IS NOT NULL").fetchall()
        self.old_days.setdefault(table.group, set()).update(d for (d,) in rows)

    def find_tna_changes(self) -> None:
        """Which snapshots of third next available to recompute, found before any fact row changes.

        `self.tna_work` is None (nothing changed), "full", or (providers or None for all, first
        week, last week) ranges: those `changes.tna_changes_sql` names, and the weeks a wider
        span of data adds (new snapshots after the last booking or before the first slot).
        """
        self.tna_work: str | list[tuple[tuple[str, ...] | None, int, int]] | None = "full"
        stored = self.meta.get("tna_weeks")
        if not (self.fresh(TNA, TNA_TABLE) and stored and self.fresh("appointments", f"{SCHEMA}.facts_appointments")):
            return
        if not self.fresh("slots", f"{SCHEMA}.facts_slots"):
            return
        weeks = self.tna_weeks()
        first, last = (int(w) for w in stored.split(","))
        if weeks is None or weeks[0] > first or weeks[1] < last:
            return  # fewer snapshots than before: only a deletion does that; start over
        ranges: list[tuple[tuple[str, ...] | None, int, int]] = []
        if weeks[0] < first:
            ranges.append((None, weeks[0], first - 1))
        if weeks[1] > last:
            ranges.append((None, last + 1, weeks[1]))
        facts = {t.group: t.name for t in self.lay.tables}
        sql = changes.tna_changes_sql(self.watermark, facts, TNA_TABLE, self.config.timezone, weeks)
        spans = self.cur.execute(sql).fetchall()
        if spans:
            providers = tuple(sorted(p for p, _, _ in spans))
            ranges.append((providers, min(s[1] for s in spans), max(s[2] for s in spans)))
        self.tna_work = ranges or None

    def tna_weeks(self) -> tuple[int, int] | None:
        """The first and last snapshot the data allow: at or after the first slot, up to the last booking."""
        first, last = self.cur.execute(
            "SELECT (SELECT MIN(start_at) FROM slots), (SELECT MAX(booked_at) FROM appointments)"
        ).fetchone()
        if first is None or last is None:
            return None
        tz = self.config.timezone

        def at(week: int) -> datetime:
            return local_instant_utc(_monday(week), third_next_available.SNAPSHOT_TIME, tz)

        lo = (first.astimezone(UTC).date() - third_next_available.EPOCH_MONDAY).days // 7 - 1
        while at(lo) < first:
            lo += 1
        hi = (last.astimezone(UTC).date() - third_next_available.EPOCH_MONDAY).days // 7 + 1
        while at(hi) > last:
            hi -= 1
        return (lo, hi) if lo <= hi else None

    def third_next_available(self) -> None:
        """The (snapshot, provider, location) rows: rebuilt, or recomputed for the snapshots a change moves."""
        if self.tna_work is None:
            return
        weeks = self.tna_weeks() if self.tna_work == "full" else None
        if self.tna_work == "full":
            first, last = weeks or (EMPTY_WEEK, EMPTY_WEEK)
            pairs = self.facts_from(TNA, f"{self.tna_pairs(None, first, last)} ORDER BY day")
            self.cur.execute(f"CREATE OR REPLACE TABLE {TNA_TABLE} AS {pairs}")
            self.summary.rebuilt.append(TNA)
            self.months[TNA] = set(self.all_months(TNA_TABLE, ["day"]))
            if self.has_results():
                self.cur.execute(f"DELETE FROM {RESULTS_TABLE} WHERE kpi_id = '{self.lay.tna.id}'")
            self.meta_updates["tna_weeks"] = f"{weeks[0]},{weeks[1]}" if weeks else ""
            return
        months = self.months.setdefault(TNA, set())
        for providers, first, last in self.tna_work:
            only = "" if providers is None else f" AND provider IN ({sql_literal(list(providers))})"
            days = f"day >= DATE '{_monday(first)}' AND day <= DATE '{_monday(last)}'"
            self.cur.execute(f"DELETE FROM {TNA_TABLE} WHERE {days}{only}")
            self.cur.execute(f"INSERT INTO {TNA_TABLE} BY NAME {self.tna_pairs(providers, first, last)}")
            months |= set(months_between(_monday(first), _monday(last)))
            self.summary.recomputed_rows[TNA] = self.summary.recomputed_rows.get(TNA, 0) + (last - first + 1)
        weeks = self.tna_weeks()
        self.meta_updates["tna_weeks"] = f"{weeks[0]},{weeks[1]}"

    def tna_pairs(self, providers: tuple[str, ...] | None, first: int, last: int) -> str:
        """SELECT of the pairs of snapshots first..last (week numbers), of some providers or all."""
        periods = Periods.between(_monday(first), _monday(last), "day", self.config.timezone)
        filters = {} if providers is None else {"provider": providers}
        ctx = QueryContext(self.config, self.lay.relations, periods, filters=filters)
        pairs = render(third_next_available.pairs_query(self.lay.tna, ctx))
        week = f"CAST(DATE_DIFF('day', DATE '{third_next_available.EPOCH_MONDAY}', snapshot_date) / 7 AS INTEGER)"
        return (
            f"SELECT snapshot_date AS day, {week} AS week, provider, location, record_id, third_slot_start, days "
            f"FROM ({pairs}) AS p"
        )

    # -- A/R aging ------------------------------------------------------------------------------

    def note_aging_accounts(self, table: FactTable) -> None:
        """Keep, before `update` drops them, the accounts whose ledger facts changed and their replaced rows.

        Their new rows too, when the touched entries hold every entry of those accounts: an
        account is a claim (or one entry without a claim), and the ledger's touched entries are
        every entry of each claim a changed entry is or was on (`changes.DEPENDENCIES["ledger"]`),
        so the fact table need not be read for them again. Not so when a payer changed: the
        entries of its class are touched whatever their claims.
        """
        columns = ", ".join([*aging.COLUMNS, *table.dims])
        self.cur.execute("CREATE OR REPLACE TEMP TABLE _aging_accounts AS SELECT DISTINCT ar_account FROM _ar_diff")
        self.cur.execute("CREATE OR REPLACE TEMP TABLE _aging_keys AS SELECT key FROM _keys")
        self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _aging_old AS SELECT {columns} FROM _old "
            "WHERE ar_account IN (SELECT ar_account FROM _aging_accounts)"
        )
        if changes.whole_accounts(table.group) and not self.payers_changed:
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _aging_new AS SELECT {columns} FROM _new "
                "WHERE ar_account IN (SELECT ar_account FROM _aging_accounts)"
            )
            self.summary.found_by_row_id.append(AGING)
        self.aging_noted = True

    def ar_aging(self) -> None:
        """Keep `serving.ar_aging` up to the last month: in full, or for the accounts a load changed.

        Incrementally, from the first month of the changed ledger facts on (the A/R tail), each
        month's cells lose the previous contribution of the changed accounts (their replaced rows
        and their unchanged ones) and gain the new one; months after the last one kept are
        computed over every account (kpis.serving.aging).
        """
        ledger, _ = self.lay.aging  # type: ignore[misc]
        dims = list(ledger.dims)
        last = self.last_month()
        previous = self.meta.get("ar_aging_last") or None
        rows = f"SELECT {', '.join([*aging.COLUMNS, *dims])} FROM {ledger.name}"
        incremental = (
            self.fresh(AGING, AGING_TABLE)
            and ledger.group not in self.summary.rebuilt
            and previous is not None
            and self.meta.get("ar_aging_split_accounts", "").isdigit()
        )
        if not incremental:
            first = self.first_month(ledger.name, [ledger.day_column("posted_date")])
            types = self.types(ledger.name)
            columns = ", ".join(f"{d} {types[d]}" for d in dims)
            self.cur.execute(
                f"CREATE OR REPLACE TABLE {AGING_TABLE} (period_start DATE, {columns}, bucket VARCHAR, "
                "amount DECIMAL(38, 2), accounts BIGINT)"
            )
            if first is not None and last is not None and first <= last:
                self.cur.execute(f"INSERT INTO {AGING_TABLE} {aging.contributions_sql(rows, dims, first, last)}")
            (split,) = self.cur.execute(aging.split_accounts_sql(rows, dims)).fetchone()
            self.summary.rebuilt.append(AGING)
        else:
            before = date.fromisoformat(previous)
            split = int(self.meta["ar_aging_split_accounts"])
            if last is None or before > last:  # the data now ends earlier: drop the months after it
                cut = last.isoformat() if last is not None else "0001-01-01"
                self.cur.execute(f"DELETE FROM {AGING_TABLE} WHERE period_start > DATE '{cut}'")
            if self.aging_noted:  # the ledger's facts changed: their accounts' months from the tail
                tail = self.tails.get(ledger.group) if last is not None else None
                split += self.aging_accounts_delta(rows, dims, tail, min(before, last) if last else before)
            if last is not None and before < last:  # new months: every open account
                first_new = next_period(before, "month")
                self.cur.execute(f"INSERT INTO {AGING_TABLE} {aging.contributions_sql(rows, dims, first_new, last)}")
        for name in ("_aging_accounts", "_aging_keys", "_aging_old", "_aging_new"):
            self.cur.execute(f"DROP TABLE IF EXISTS {name}")
        self.meta_updates["ar_aging_last"] = last.isoformat() if last is not None else ""
        self.meta_updates["ar_aging_split_accounts"] = str(split)

    def aging_accounts_delta(self, rows: str, dims: list[str], first: date | None, last: date) -> int:
        """Months first..last of the aging: the changed accounts' new contribution for their previous one.

        Returns the change in the number of accounts spanning several cells.
        """
        # the changed accounts' rows, read once from the ledger facts (unless the touched rows held them all)
        if AGING not in self.summary.found_by_row_id:
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _aging_new AS {rows} "
                "WHERE ar_account IN (SELECT ar_account FROM _aging_accounts)"
            )
        new = "SELECT * FROM _aging_new"
        old = f"{new} WHERE _key NOT IN (SELECT key FROM _aging_keys) UNION ALL SELECT * FROM _aging_old"
        (before,) = self.cur.execute(aging.split_accounts_sql(old, dims)).fetchone()
        (after,) = self.cur.execute(aging.split_accounts_sql(new, dims)).fetchone()
        (count,) = self.cur.execute("SELECT count(*) FROM _aging_accounts").fetchone()
        self.summary.recomputed_rows[AGING] = int(count)
        if first is not None and first <= last:
            self.aging_months_delta(old, new, dims, first, last)
        return int(after) - int(before)

    def aging_months_delta(self, old: str, new: str, dims: list[str], first: date, last: date) -> None:
        """Replace months first..last of the aging: less the contributions of `old` rows, plus those of `new`."""
        keys = ", ".join(["period_start", *dims, "bucket"])
        bounds = f"period_start >= DATE '{first.isoformat()}' AND period_start <= DATE '{last.isoformat()}'"
        self.cur.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _aging_months AS
            SELECT {keys}, SUM(amount) AS amount, SUM(accounts) AS accounts
            FROM (
                SELECT {keys}, amount, accounts FROM {AGING_TABLE} WHERE {bounds}
                UNION ALL SELECT {keys}, -amount, -accounts FROM ({aging.contributions_sql(old, dims, first, last)})
                UNION ALL SELECT {keys}, amount, accounts FROM ({aging.contributions_sql(new, dims, first, last)})
            ) AS c
            GROUP BY ALL
            HAVING SUM(accounts) <> 0
            """
        )
        self.cur.execute(f"DELETE FROM {AGING_TABLE} WHERE {bounds}")
        self.cur.execute(f"INSERT INTO {AGING_TABLE} BY NAME SELECT * FROM _aging_months")
        self.cur.execute("DROP TABLE _aging_months")

    # -- month results --------------------------------------------------------------------------

    def has_results(self) -> bool:
        return "results" in self.existing

    def results(self) -> None:
        """Recompute the month results of the months noted, up to the last month of the data."""
        last = self.last_month()
        previous = date.fromisoformat(self.meta["results_last"]) if self.meta.get("results_last") else None
        results_kept = self.ensure_results_table()
        cells_kept = self.ensure_cells_table()
        if self.meta.get("results_version") != RESULTS_VERSION:  # kept by older code, without some groupings
            for name in (RESULTS_TABLE, deltas.CELLS_TABLE):
                self.cur.execute(f"DELETE FROM {name}")
            results_kept = False
        if not (results_kept and cells_kept):
            previous = None  # new tables: every group's months
            for table in self.lay.tables:
                self.months[table.group] = set(self.all_months(table.name, [table.day_column(e) for e in table.events]))
                if table.ar_items:
                    first = self.first_month(table.name, [table.day_column("posted_date")])
                    if first is not None:
                        self.tails[table.group] = first
            if self.lay.tna is not None:
                self.months[TNA] = set(self.all_months(TNA_TABLE, ["day"]))
        self.meta_updates["results_version"] = RESULTS_VERSION
        kept = list(self.lay.kept())
        self.cur.execute(f"DELETE FROM {RESULTS_TABLE} WHERE kpi_id NOT IN ({', '.join(repr(k) for k in kept)})")
        if last is None:
            self.cur.execute(f"DELETE FROM {RESULTS_TABLE}")
            self.cur.execute(f"DELETE FROM {deltas.CELLS_TABLE}")
            self.meta_updates["results_last"] = ""
            return
        new_months = (
            set(months_between(next_period(previous, "month"), last)) if previous and previous < last else set()
        )
        if previous and previous > last:
            for name in (RESULTS_TABLE, deltas.CELLS_TABLE):
                self.cur.execute(f"DELETE FROM {name} WHERE period_start > DATE '{last.isoformat()}'")
        groups: list[tuple[str, list, set[date]]] = []
        counted: dict[str, set[date]] = {}  # group -> months whose cells are recounted with their results
        for table in self.lay.tables:
            months = self.months.get(table.group, set()) | new_months
            additive = deltas.additive_items(table, self.types(table.name)) if table.standard else []
            if additive and previous is not None and table.group in self.signed:
                # the changed rows' months moved by their signed rows; new months (and the rest) recomputed
                moved = sorted(m for m in months - new_months if m <= last)
                if moved:
                    self.move_results(table, additive, moved)
                self.summary.moved[table.group] = len(moved)
                rest = [item for item in table.standard if item not in additive]
                if rest:
                    groups.append((table.group, rest, months))
                if new_months:
                    groups.append((table.group, additive, new_months))
                    counted[table.group] = new_months
            elif table.standard:
                groups.append((table.group, list(table.standard), months))
                if additive:
                    counted[table.group] = months
            if table.ar_items:
                tail = self.tails.get(table.group)
                ar_months = months | (set(months_between(tail, last)) if tail else set())
                groups.append((table.group, list(table.ar_items), ar_months))
        if self.lay.tna is not None:
            groups.append((TNA, [self.lay.tna], self.months.get(TNA, set()) | new_months))
        for group, items, months in groups:
            wanted = sorted(m for m in months if m <= last)
            for first_month, last_month in _runs(items, wanted):
                self.recompute(items, first_month, last_month)
            self.summary.months[group] = self.summary.months.get(group, 0) + len(wanted)
        tables = {t.group: t for t in self.lay.tables}
        for group, months in counted.items():
            wanted = sorted(m for m in months if m <= last)
            if wanted:
                self.recount_cells(tables[group], wanted)
        for group in self.signed:
            self.cur.execute(f"DROP TABLE IF EXISTS _signed_{group}")
        self.meta_updates["results_last"] = last.isoformat()

    def recompute(self, items: list, first: date, last: date) -> None:
        """Replace the month results of `items` for the months first..last (month starts)."""
        self.cur.execute(
            f"DELETE FROM {RESULTS_TABLE} WHERE kpi_id IN ({_ids(items)}) "
            f"AND period_start >= DATE '{first.isoformat()}' AND period_start <= DATE '{last.isoformat()}'"
        )
        periods = Periods.between(first, next_period(last, "month") - timedelta(days=1), "month", self.config.timezone)
        by_dims: dict[tuple[str, ...], list] = {}
        for item in items:
            by_dims.setdefault(item.spec.dimensions, []).append(item)
        for dims, members in by_dims.items():
            sets = tuple(groupings(dims))
            ctx = QueryContext(self.config, self.lay.relations, periods, sets)
            names = " ".join(f"WHEN {grouping_id(g, ctx.dims)} THEN '{grouping_name(g)}'" for g in sets)
            for _, statement in statements(members, ctx, {m.id: FACTS for m in members}, self.lay):
                self.cur.execute(
                    f"INSERT INTO {RESULTS_TABLE} BY NAME "
                    f"SELECT * EXCLUDE (grouping_id), CASE grouping_id {names} END AS grouping "
                    f"FROM ({render(statement)}) AS r"
                )

    def additive_contexts(
        self, table: FactTable, items: list, months: list[date]
    ) -> Iterator[tuple[str, list, QueryContext, dict[tuple[str, ...], str]]]:
        """(event, items, context, grouping names) for each event column and dimension set of `items`."""
        first, last = deltas.month_span(months)
        periods = Periods.between(first, last, "month", self.config.timezone)
        by_event: dict[str, dict[tuple[str, ...], list]] = {}
        for item in items:
            event = item.spec.event_column(item.options)
            by_event.setdefault(event, {}).setdefault(item.spec.dimensions, []).append(item)
        for event, by_dims in by_event.items():
            for dims, members in by_dims.items():
                sets = tuple(groupings(dims))
                ctx = QueryContext(self.config, self.lay.relations, periods, sets)
                yield event, members, ctx, {g: grouping_name(g) for g in sets}

    def recount_cells(self, table: FactTable, months: list[date]) -> None:
        """Count `table`'s rows per cell (`deltas.CELLS_TABLE`) for `months`, by each additive KPI's event."""
        additive = deltas.additive_items(table, self.types(table.name))
        listed = ", ".join(f"DATE '{m.isoformat()}'" for m in months)
        self.cur.execute(
            f"DELETE FROM {deltas.CELLS_TABLE} WHERE fact_table = '{table.group}' AND period_start IN ({listed})"
        )
        sets: dict[str, dict[tuple[str, ...], None]] = {}
        for event, _, ctx, _ in self.additive_contexts(table, additive, months):
            sets.setdefault(event, {}).update(dict.fromkeys(ctx.grouping_sets))
        first, last = deltas.month_span(months)
        periods = Periods.between(first, last, "month", self.config.timezone)
        for event, found in sets.items():
            ctx = QueryContext(self.config, self.lay.relations, periods, tuple(found))
            names = {g: grouping_name(g) for g in found}
            self.cur.execute(
                f"INSERT INTO {deltas.CELLS_TABLE} BY NAME {deltas.cells_sql(table, event, ctx, names, months)}"
            )

    def move_results(self, table: FactTable, items: list, months: list[date]) -> None:
        """Move the month results of additive `items` in `months` by the signed changed rows (kpis.serving.deltas).

        The kept cell counts move last: every dimension set reads them as they were before the load.
        """
        listed = ", ".join(f"DATE '{m.isoformat()}'" for m in months)
        done: dict[str, set[str]] = {}  # event -> groupings whose cells moved (shared by several dimension sets)
        moved_cells: list[tuple[str, list[str], str]] = []
        for i, (event, members, ctx, names) in enumerate(self.additive_contexts(table, items, months)):
            dims = list(ctx.dims)
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _delta AS {deltas.delta_sql(table, event, members, ctx, names, months)}"
            )
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _merged AS {deltas.merged_sql(RESULTS_TABLE, dims, table.group, event)}"
            )
            keys = ["kpi_id", "period_start", "grouping"]
            self.cur.execute(
                f"DELETE FROM {RESULTS_TABLE} AS t WHERE kpi_id IN ({_ids(members)}) AND period_start IN ({listed}) "
                f"AND {deltas.matching('_merged', 't', keys, dims)}"
            )
            columns = ", ".join([*keys, *dims, "numerator", "denominator", "value", "n", "unknown"])
            self.cur.execute(f"INSERT INTO {RESULTS_TABLE} BY NAME SELECT {columns} FROM _merged WHERE rows > 0")
            skip = done.setdefault(event, set())
            unseen = f"grouping NOT IN ({', '.join(sql_literal(g) for g in skip)})" if skip else "TRUE"
            cell = ", ".join(["period_start", "grouping", *dims, "rows"])
            self.cur.execute(
                f"CREATE OR REPLACE TEMP TABLE _cells_{i} AS SELECT DISTINCT {cell} FROM _merged WHERE {unseen}"
            )
            moved_cells.append((event, dims, f"_cells_{i}"))
            skip.update(names.values())
        for event, dims, name in moved_cells:
            same = deltas.matching(name, "t", ["period_start", "grouping"], dims)
            self.cur.execute(
                f"DELETE FROM {deltas.CELLS_TABLE} AS t WHERE fact_table = '{table.group}' AND event = '{event}' "
                f"AND period_start IN ({listed}) AND {same}"
            )
            self.cur.execute(
                f"INSERT INTO {deltas.CELLS_TABLE} BY NAME SELECT '{table.group}' AS fact_table, '{event}' AS event, "
                f"* FROM {name} WHERE rows > 0"
            )
            self.cur.execute(f"DROP TABLE {name}")
        for name in ("_delta", "_merged"):
            self.cur.execute(f"DROP TABLE IF EXISTS {name}")

    def ensure_cells_table(self) -> bool:
        """Create `serving.cells` with the results' dimensions; False if it was (re)created."""
        dims = [f"{n} {k}" for n, k in self.types(RESULTS_TABLE).items() if n in DIMENSIONS]
        wanted = ["fact_table VARCHAR", "event VARCHAR", "period_start DATE", "grouping VARCHAR", *dims, "rows BIGINT"]
        return self.ensure_table(deltas.CELLS_TABLE, wanted, "cells" in self.existing)

    def ensure_results_table(self) -> bool:
        """Create `serving.results` with every dimension the facts have; False if it was (re)created."""
        types: dict[str, str] = {}
        for table in [t.name for t in self.lay.tables] + ([TNA_TABLE] if self.lay.tna is not None else []):
            types.update((name, kind) for name, kind in self.types(table).items() if name in DIMENSIONS)
        columns = [f"{d} {types[d]}" for d in DIMENSIONS if d in types]
        wanted = ["kpi_id VARCHAR", "period_start DATE", "grouping VARCHAR", *columns]
        wanted += ["numerator DOUBLE", "denominator DOUBLE", "value DOUBLE", "n BIGINT", "unknown BIGINT"]
        return self.ensure_table(RESULTS_TABLE, wanted, self.has_results())

    def ensure_table(self, table: str, wanted: list[str], present: bool) -> bool:
        """Keep `table` if present with exactly the `wanted` columns, else (re)create it empty; False then."""
        if present and [f"{n} {k}" for n, k in self.types(table).items()] == wanted:
            return True
        self.cur.execute(f"CREATE OR REPLACE TABLE {table} ({', '.join(wanted)})")
        self.existing.add(table.split(".")[1])
        return False

    # -- small views and meta -------------------------------------------------------------------

    def payments(self) -> None:
        """The average payment's windows (`kpis.serving.payments`), up to the month results' last month."""
        last = self.meta_updates.get("results_last")
        data_last = date.fromisoformat(last) if last else None
        self.meta_updates.update(
            payments.refresh(self.cur, self.watermark, self.meta, data_last, self.changed_tables())
        )

    def coverage(self) -> None:
        """Coverage by day: recounted for the days the changed rows fall on, or whole tables if need be."""
        tables = [table for _, table, _, _ in COVERAGE]
        if COVERAGE_TABLE.split(".")[1] in self.existing and self.watermark is not None:
            tables = [t for t in tables if t in self.changed_tables() and not self.coverage_days(t)]
            self.summary.coverage_recounted = tables
            if not tables:
                return
            self.cur.execute(f"DELETE FROM {COVERAGE_TABLE} WHERE table_name IN ({', '.join(repr(t) for t in tables)})")
            self.cur.execute(f"INSERT INTO {COVERAGE_TABLE} {coverage_sql(self.config.timezone, 'day', tables)}")
        else:
            self.cur.execute(f"CREATE OR REPLACE TABLE {COVERAGE_TABLE} AS {coverage_sql(self.config.timezone, 'day')}")
            self.summary.coverage_recounted = tables

    def coverage_days(self, table: str) -> bool:
        """Recount `table`'s coverage for the days its changed rows fall on and fell on; False if that is not enough.

        The days a changed row fell on before are those of the fact rows it replaced
        (`note_old_days`). A day outside them can only have lost rows (to a changed row's new
        day): then the table's rows per source no longer add up to the kept counts and the table
        is recounted whole (a table whose facts were rebuilt, or whose rows have no fact row).
        The recount reads only the rows dated near those days (a range on the dating column,
        which DuckDB checks against each row group's bounds), every source of each day.
        """
        domain, column, kind = next((d, c, k) for d, t, c, k in COVERAGE if t == table)
        local = f"{column} AT TIME ZONE {sql_literal(self.config.timezone)}" if kind == INSTANT else column
        day = f"CAST(DATE_TRUNC('day', {local}) AS DATE)"
        changed = changes.CHANGED.format(watermark=self.watermark)
        self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _days AS SELECT DISTINCT {day} AS day FROM main.{table} AS t WHERE {changed}"
        )
        old = sorted(self.old_days.get(table, set()))
        if old:
            values = ", ".join(f"(DATE '{d.isoformat()}')" for d in old)
            self.cur.execute(
                f"INSERT INTO _days SELECT * FROM (VALUES {values}) AS v(day) EXCEPT SELECT day FROM _days"
            )
        (first, last, unknown) = self.cur.execute(
            "SELECT min(day), max(day), count(*) FILTER (WHERE day IS NULL) FROM _days"
        ).fetchone()
        if first is None or unknown:
            return False
        lo, hi = first - timedelta(days=2), last + timedelta(days=3)  # wider than any UTC offset
        kind_sql = "TIMESTAMPTZ" if kind == INSTANT else "DATE"
        bounds = f"{column} >= {kind_sql} '{lo.isoformat()}' AND {column} < {kind_sql} '{hi.isoformat()}'"
        self.cur.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _recount AS
            SELECT '{domain}' AS domain, '{table}' AS table_name, r.source, r.day AS period_start, COUNT(*) AS rows,
                   MAX(CAST(r.local AS TIMESTAMP)) AS last_event_at
            FROM (SELECT source, {day} AS day, {local} AS local FROM main.{table} WHERE {bounds}) AS r
            WHERE r.day IN (SELECT day FROM _days)
            GROUP BY r.source, r.day
            """
        )
        kept = f"""
            SELECT c.source, c.rows FROM {COVERAGE_TABLE} AS c
            WHERE c.table_name = '{table}' AND (c.period_start IS NULL OR c.period_start NOT IN (SELECT day FROM _days))
            UNION ALL SELECT source, rows FROM _recount
        """
        counted = dict(self.cur.execute(f"SELECT source, COUNT(*) FROM main.{table} GROUP BY source").fetchall())
        kept_counts = dict(self.cur.execute(f"SELECT source, SUM(rows) FROM ({kept}) AS k GROUP BY source").fetchall())
        differs = counted != {source: int(rows) for source, rows in kept_counts.items()}
        if not differs:
            self.cur.execute(
                f"DELETE FROM {COVERAGE_TABLE} WHERE table_name = '{table}' AND period_start IN (SELECT day FROM _days)"
            )
            self.cur.execute(f"INSERT INTO {COVERAGE_TABLE} SELECT * FROM _recount")
        for name in ("_days", "_recount"):
            self.cur.execute(f"DROP TABLE IF EXISTS {name}")
        return not differs

    def dimension_values(self) -> None:
        """Each dimension's values, recounted when a table they come from changed (or in full)."""
        changed = self.changed_tables()
        for dimension in DIMENSIONS:
            missing = values_table(dimension).split(".")[1] not in self.existing
            if missing or changed is None or source_tables(dimension) & changed or not source_tables(dimension):
                self.cur.execute(f"CREATE OR REPLACE TABLE {values_table(dimension)} AS {values_sql(dimension)}")

    def scopes(self) -> None:
        """The combinations of location, provider and payer each source table has rows for (`kpis.sources`):
        recounted for the tables changed since the watermark, in full when the table is absent or older."""
        changed = self.changed_tables()
        built = SCOPES_TABLE.split(".")[1] in self.existing and self.meta.get("scopes_version") == SCOPES_VERSION
        tables = sources.scope_tables(sources.EXPORTS if changed is None or not built else changed)
        if not built:
            columns = "table_name VARCHAR, location_id VARCHAR, provider_id VARCHAR, payer_id VARCHAR"
            self.cur.execute(f"CREATE OR REPLACE TABLE {SCOPES_TABLE} ({columns})")
            self.existing.add(SCOPES_TABLE.split(".")[1])
        elif tables:
            self.cur.execute(f"DELETE FROM {SCOPES_TABLE} WHERE table_name IN ({sql_literal(tables)})")
        for table in tables:
            self.cur.execute(f"INSERT INTO {SCOPES_TABLE} {sources.scopes_sql(table)}")
        self.meta_updates["scopes_version"] = SCOPES_VERSION

    def changed_tables(self) -> set[str] | None:
        """The canonical tables with rows changed since the watermark (None: everything is rebuilt)."""
        if self.watermark is None:
            return None
        if not hasattr(self, "_changed_tables"):
            condition = changes.CHANGED.format(watermark=self.watermark)
            names = [
                t
                for (t,) in self.cur.execute(
                    "SELECT table_name FROM duckdb_columns() WHERE schema_name = 'main' "
                    "AND column_name = 'ingest_run_id' AND database_name = current_database()"
                ).fetchall()
            ]
            self._changed_tables = {
                t
                for t in names
                if self.cur.execute(f"SELECT EXISTS (SELECT 1 FROM main.{t} AS t WHERE {condition})").fetchone()[0]
            }
        return self._changed_tables

    def finish(self) -> None:
        """Data ends and starts of the snapshot, the A/R precondition, fingerprints, watermark, not stale."""
        updates = self.meta_updates
        for name, relation in self.lay.relations.items():
            updates[f"data_end:{name}"] = _iso(self.cur.execute(relation.data_end_sql).fetchone()[0])
            if relation.data_start_sql is not None:
                updates[f"data_start:{name}"] = _iso(self.cur.execute(relation.data_start_sql).fetchone()[0])
        ledger = next((t for t in self.lay.tables if t.ar_items), None)
        one_cell = "false"
        if ledger is not None and any(i.id == "ar_over_90_pct" for i in ledger.ar_items):
            dims = ", ".join(ledger.dims)
            (split,) = self.cur.execute(
                f"SELECT count(*) FROM (SELECT ar_account FROM (SELECT DISTINCT ar_account, {dims} FROM {ledger.name} "
                "WHERE ar_undated) AS d GROUP BY ar_account HAVING count(*) > 1) AS s"
            ).fetchone()
            one_cell = "true" if split == 0 else "false"
        updates["ar_accounts_in_one_cell"] = one_cell
        for group, fingerprint in self.fingerprints.items():
            updates[f"fingerprint:{group}"] = fingerprint
            state = self.state(group)
            if state is not None:
                updates[f"state:{group}"] = state
        updates["covered_run"] = str(self.last_run)
        updates["refreshed_at"] = datetime.now(UTC).isoformat()
        updates["stale"] = "false"
        self.cur.execute(f"DELETE FROM {SCHEMA}.meta WHERE key = 'untracked_writes'")
        stale_groups = [
            k for k in self.meta if k.startswith("fingerprint:") and k.split(":", 1)[1] not in self.fingerprints
        ]
        for key in stale_groups:
            self.cur.execute(f"DELETE FROM {SCHEMA}.meta WHERE key = ?", [key])
        for key, value in updates.items():
            self.cur.execute(f"INSERT OR REPLACE INTO {SCHEMA}.meta VALUES (?, ?)", [key, value])

    # -- helpers --------------------------------------------------------------------------------

    def all_months(self, table: str, days: Iterable[str]) -> list[date]:
        found: set[date] = set()
        for day in days:
            rows = self.cur.execute(
                f"SELECT DISTINCT CAST(DATE_TRUNC('month', {day}) AS DATE) FROM {table} WHERE {day} IS NOT NULL"
            ).fetchall()
            found |= {m for (m,) in rows}
        return sorted(found)

    def first_month(self, table: str, days: Iterable[str]) -> date | None:
        firsts = [self.cur.execute(f"SELECT MIN({day}) FROM {table}").fetchone()[0] for day in days]
        firsts = [f for f in firsts if f is not None]
        return period_floor(min(firsts), "month") if firsts else None

    def last_month(self) -> date | None:
        """The month of the latest data end of any relation: month results are kept up to it."""
        ends = [self.cur.execute(r.data_end_sql).fetchone()[0] for r in self.lay.relations.values()]
        ends = [e.date() if isinstance(e, datetime) else e for e in ends if e is not None]
        return period_floor(max(ends), "month") if ends else None


def _in_duckdb(group: str, select: str) -> str:
    return select


def _changed_rows(columns: list[str]) -> str:
    """SELECT of the rows of `_old` and `_new` (a fact table's replaced and new rows) that differ in `columns`."""
    return f"SELECT {', '.join(columns)} FROM ({deltas.signed_rows(columns)}) AS s"


def _with_sql(relation: Relation, sql: str) -> Relation:
    return dataclasses.replace(relation, sql=sql)


def _monday(week: int) -> date:
    return third_next_available.EPOCH_MONDAY + timedelta(days=7 * week)


def _runs(items: list, months: list[date]) -> list[tuple[date, date]]:
    """The month ranges `items` are recomputed by, one statement each: runs of consecutive months,
    but one month at a time for a median or p90.

    Why: a quantile keeps every value of its group until the end, and cannot spill; over a full
    build's every month at once (with every grouping set) the encounters' medians and p90 took
    0.6 GB at 1 M rows, beyond a 400 MB `[refresh] memory_limit`, so the whole refresh ran again
    without a limit. A month's results do not depend on the others', so the rows are the same.
    """
    if any(item.spec.value is not None and item.spec.value.agg in QUANTILES for item in items):
        return [(month, month) for month in months]
    return month_runs(months)


def _ids(items: Iterable) -> str:
    return ", ".join(f"'{item.id}'" for item in items)


def _iso(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat()
