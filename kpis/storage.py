"""The DuckDB warehouse file as storage: open or create it, migrate the schema, hand out cursors.

The canonical schema lives in `kpis/schema/NNN_name.sql`, applied in order on every
read-write open and recorded in `schema_migrations`. A warehouse written by a newer
clinic-kpis (a version this code does not know) is refused rather than guessed at.

Presentation layers open the warehouse read-only, which never migrates: a stale file is
reported with the command that brings it up to date.

This module knows nothing of KPIs, so writers (`ingest`, the sample loader) use `Store` without
loading the KPI engine; `kpis.warehouse.Warehouse` is a `Store` with the KPI API on top.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa

from kpis.config import Config, load_config, missing_warehouse_text, private_files
from kpis.errors import ClinicKpisError, ConfigError, SchemaVersionError, WarehouseError

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


# What every write transaction records: the results store (schema `serving`, migration 005) no
# longer matches the warehouse until the next refresh.
_MARK_STALE = "UPDATE serving.meta SET value = 'true' WHERE key = 'stale'"
_MARK_UNTRACKED = "INSERT OR REPLACE INTO serving.meta VALUES ('untracked_writes', 'true')"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every schema migration shipped with this code, in version order."""
    found = []
    for entry in resources.files("kpis.schema").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"schema migrations must be numbered 001, 002, ... without gaps, found {versions}")
    return found


def latest_schema_version() -> int:
    return migrations()[-1].version


_READ_ONLY_ALIAS = "warehouse"


def _connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the file at `path` now, never to one it replaced.

    Why not `duckdb.connect(path, read_only=True)`: DuckDB keeps one database instance per path
    in a process while any connection to it is open, so after a writer published a new file
    (kpis.publication renames it into place) a new connection would still read the old one
    (duckdb/duckdb#15912). Attaching the file to a fresh in-memory database opens it anew.
    """
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS {_READ_ONLY_ALIAS} (READ_ONLY)")
        con.execute(f"USE {_READ_ONLY_ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


class Store:
    """One DuckDB warehouse file, without the KPI API.

    Use `Store.open(...)` (or the constructor) as a context manager. `cursor()` gives a
    cursor per caller, since one DuckDB connection must not be shared across threads.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, config: Config | None = None) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.config = config if config is not None else load_config(db=self.path)
        if read_only and not self.path.exists():
            raise WarehouseError(missing_warehouse_text(self.path, self.config))
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # where a writer's DuckDB spills (None: read-only), applied before a migration, which may spill
        self.spill_folder: Path | None = None
        self._con = self._connect()
        try:
            with private_files():  # and so is the log a migration writes
                self._check_or_migrate()
        except BaseException:
            self._con.close()
            raise

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """The connection to the file, with the settings every connection of a store has."""
        try:
            with private_files():  # a new warehouse is readable by its owner only, like the secret
                con = _connect_read_only(self.path) if self.read_only else duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            raise WarehouseError(f"cannot open warehouse {self.path}: {exc}") from None
        except duckdb.Error as exc:
            if "already attached" in str(exc):  # this process has the file open for writing
                raise WarehouseError(f"cannot open warehouse {self.path}: it is open for writing (lock held)") from None
            raise WarehouseError(f"{self.path} is not a usable DuckDB warehouse: {exc}") from None
        try:
            # Instants are stored in UTC and shown in UTC; the practice time zone is applied
            # explicitly in queries, never through the session setting.
            con.execute("SET TimeZone = 'UTC'")
            if not self.read_only:
                self.spill_folder = spill_settings(con, self.config)
        except BaseException:
            con.close()
            raise
        return con

    def reopen(self) -> None:
        """Close the file (this store's connection and every cursor of it) and open it afresh.

        Why: after a transaction ran out of memory inside a CREATE and was rolled back, DuckDB 2.0
        can keep that table's new catalog entry: every later create of the name in the same database
        instance then fails with "Catalog write-write conflict" (CI: the refresh's rerun under
        DuckDB's own limit, creating `serving.facts_appointments` again). Nothing of the failed
        transaction reached the file, so opening it anew gives a clean catalog. Run it only between
        transactions: whatever a cursor still had open is gone. It helps only while no other connection
        of this process has the file open (DuckDB would hand back the same database, catalog and all).

        A writer's only: a read-only store would attach whatever file is published by then, under the
        caches of the snapshot it opened (the results store's state, the memo: `kpis.api`).
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only: open it again for the file published now")
        self._con.close()
        self._con = self._connect()

    @classmethod
    def open(
        cls,
        db: str | Path | None = None,
        *,
        config: Config | Path | None = None,
        read_only: bool = False,
    ) -> Self:
        """Open the warehouse named by `db`, else by the config (`[warehouse] path`), else the default.

        `config` is a loaded `Config` or the path of a config file.
        """
        if not isinstance(config, Config):
            config = load_config(config, db=Path(db) if db is not None else None)
        elif db is not None and Path(db) != config.db_path:
            raise WarehouseError(f"two warehouse paths given: {db} and the config's {config.db_path}")
        return cls(config.db_path, read_only=read_only, config=config)

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest migration applied to this file (0 for a file with no schema yet).

        Results are read whole (`fetchall`): a result left open on the connection (`fetchone`)
        holds a transaction, which stopped DuckDB from ever checkpointing a writer's copy, so its
        WAL grew with every update (4.5 GB in a 10 M billing load).
        """
        ((has_table,),) = self._con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations'"
        ).fetchall()
        if not has_table:
            return 0
        ((version,),) = self._con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()
        return int(version)

    def _check_or_migrate(self) -> None:
        known = migrations()
        current = self.schema_version()
        latest = known[-1].version
        if current > latest:
            raise SchemaVersionError(
                f"{self.path} has schema version {current}, but this clinic-kpis only knows up to "
                f"version {latest}: upgrade clinic-kpis to use this warehouse"
            )
        if current == latest:
            return
        if self.read_only:
            raise SchemaVersionError(
                f"{self.path} has schema version {current} and needs migrating to {latest}: "
                f"run `clinic-kpis init --db {self.path}` once"
            )
        self._con.execute(_BOOTSTRAP)
        # a migration that rewrites the fact tables (009) takes minutes at 10 M appointments:
        # DuckDB's progress bar shows it on a terminal, and nothing is printed when piped
        ((shown,),) = self._con.execute("SELECT current_setting('enable_progress_bar')").fetchall()
        progress_bar = "true" if shown and sys.stderr.isatty() else "false"
        self._con.execute(f"SET enable_progress_bar = {progress_bar}")
        try:
            for mig in known:
                if mig.version > current:
                    self._migrate_bounded(mig, progress_bar)
        finally:
            self._con.execute(f"SET enable_progress_bar = {'true' if shown else 'false'}")

    def _migrate_bounded(self, mig: Migration, progress_bar: str) -> None:
        """`mig` under `[refresh] memory_limit`, as a refresh runs; once more under DuckDB's own
        limit if that is too little for it.

        Why: under DuckDB's default (80% of RAM) migration 009 took 9.2 GB at 10 M appointments
        (1.0 GB at 1 M, 0.39 GB under a 300 MB limit in the same time): rewriting a table spills,
        but a migration may also build something that cannot (a key index), and a practice
        upgrading must not be stopped by the limit that keeps its daily loads small. A failed
        migration was rolled back, so the second try starts clean; a spill that reached
        `[warehouse] max_temp_size` is a full disk, not too little memory, and is raised.
        """
        try:
            with bounded_memory(self._con, self.config):
                self._migrate(mig)
            return
        except duckdb.OutOfMemoryException as exc:
            if spill_capped(exc):
                raise WarehouseError(
                    f"{self.path}: migrating the schema to version {mig.version} was rolled back: DuckDB's "
                    f"spill folder {self.spill_folder} reached its cap ([warehouse] max_temp_size); raise it, point "
                    "[warehouse] temp_directory at a larger disk, or raise [refresh] memory_limit so DuckDB "
                    "spills less"
                ) from None
        # the failed transaction may have left a table's catalog entry behind (`reopen`); a new
        # connection has DuckDB's own limit
        self.reopen()
        self._con.execute(f"SET enable_progress_bar = {progress_bar}")  # as for the first try
        self._migrate(mig)

    def _migrate(self, mig: Migration) -> None:
        self._con.execute("BEGIN TRANSACTION")
        try:
            self._con.execute(mig.sql)
            self._con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [mig.version, mig.name])
            # The COMMIT merges the key indexes a migration built: DuckDB cannot spill them, and
            # out of memory there it invalidates the database (a fatal error, no retry possible),
            # so it runs under DuckDB's own limit, as a load's commit does (ingest.run); the
            # configured limit is back after the migration (bounded_memory)
            self._con.execute("RESET memory_limit")
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def tables(self) -> list[str]:
        """Names of the warehouse's own tables (schema main; the results store's are derived), sorted."""
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    # -- connections ----------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the warehouse connection; use one per thread or per task.

        Each cursor is its own DuckDB connection: it does not inherit the connection's settings, so it
        is set to UTC itself (otherwise it takes the machine's zone, and a date cast of an instant
        would depend on where the practice runs its dashboard).
        """
        cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        if self.read_only:
            cur.execute(f"USE {_READ_ONLY_ALIAS}")  # a cursor starts in the in-memory catalog
        return cur

    @contextmanager
    def transaction(self, *, tracked: bool = False, kpi_data: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside one transaction: committed on success, rolled back on any error.

        It marks the results store stale (derived data no longer matches the rows), so readers
        answer from the raw engine until the store is refreshed (kpis/serving/). `tracked` says
        that every row the transaction writes carries a new ingest run id (as ingest's do), so the
        refresh can find them; any other write makes the next refresh a full rebuild.
        `kpi_data=False` says it writes nothing the KPIs read (the change log, settings): the
        store stays as it is.
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        cur = self.cursor()
        cur.execute("BEGIN TRANSACTION")
        if kpi_data:
            cur.execute(_MARK_STALE)
            if not tracked:
                cur.execute(_MARK_UNTRACKED)
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            cur.close()
            raise
        cur.execute("COMMIT")
        cur.close()

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"{type(self).__name__}({str(self.path)!r}, {mode})"


@contextmanager
def memory_limited(cursor: Any, limit: str, setting: str, error: type[ClinicKpisError]) -> Iterator[None]:
    """DuckDB's buffer pool held to `limit` while the block runs, then the previous limit back.

    Why: DuckDB's default is 80% of the machine's RAM, and a load's staged rows or a refresh's
    scans of 10 M-row tables grow towards it instead of spilling to the temp directory
    (`<warehouse>.tmp`). `setting` names where the limit comes from (e.g. "clinic-kpis.toml:
    [ingest]"), for the one-line `error` a size DuckDB does not know raises.
    """
    with memory_restored(cursor):
        try:
            cursor.execute(f"SET memory_limit = {_quoted(limit)}")
        except duckdb.OutOfMemoryException:
            # DuckDB holds more than `limit` and cannot free it (e.g. after a file that needed more was
            # loaded under DuckDB's own limit): the block runs under the higher limit in force
            pass
        except duckdb.Error as exc:
            raise error(f"{setting} memory_limit {limit!r} is not a size DuckDB knows ({exc})") from None
        yield


# 1.2 GB keeps the whole refreshing process under 2 GB at 10 M appointments: Python, Arrow and
# DuckDB's memory outside its buffer pool add 0.4-0.8 GB to the limit (benchmarks/RESULTS.md,
# seventh round); a 10 M full build took no longer at 1.2 GB than at 1.5 GB
DEFAULT_MEMORY_LIMIT = "1.2GB"


def memory_limit(config: Config) -> str:
    """`[refresh] memory_limit`: DuckDB's memory while the store refreshes or a migration rewrites
    the warehouse (it spills beyond it)."""
    table = config.raw.get("refresh") or {}
    value = table.get("memory_limit", DEFAULT_MEMORY_LIMIT)
    if not isinstance(value, str) or not value.strip():
        where = f"{config.path}: [refresh]" if config.path else "[refresh]"
        raise ConfigError(f'{where} memory_limit must be a size such as "2GB", got {value!r}')
    return value.strip()


@contextmanager
def bounded_memory(cursor: Any, config: Config) -> Iterator[None]:
    """Bound DuckDB's buffer pool by `[refresh] memory_limit` while the store refreshes or the schema
    migrates, as `[ingest] memory_limit` does for a load.

    DuckDB's default is 80% of the machine's RAM: a refresh reading 10 M-row tables grew to
    8 GB. Beyond the limit DuckDB spills to its temp directory (`<warehouse>.tmp`); the previous
    limit comes back afterwards.
    """
    where = f"{config.path}: [refresh]" if config.path else "[refresh]"
    with memory_limited(cursor, memory_limit(config), where, ConfigError):
        yield


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory(generation: int = 2) -> None:
    """Give back to the system the memory this process has freed but its allocators still keep.

    Why: `[refresh] memory_limit` bounds DuckDB's memory only, and the refresh after an ingest's file
    loads runs in the same process. A file's parse allocates through CPython and glibc's malloc
    (objects, strings) and Arrow's pool (mimalloc: chunk buffers); once freed, both keep the pages
    for their next allocation, which the refresh never makes (its memory is DuckDB's own
    allocator's), so they stayed in the process's RSS on top of DuckDB's limit: ~100 MB after the
    1 M vendor folder's loads, the whole refresh long (benchmarks/RESULTS.md, s31-rss). So, before a
    step bounded by DuckDB's limit: cycles collected, Arrow's unused pages released, and glibc's free
    pages returned (`malloc_trim`, glibc only; elsewhere that part is skipped). It costs a
    collection and a walk of the heap: under 0.1 s of CPU with 300,000 objects alive for a full one.

    `generation` is the oldest generation collected. After a file's parse, 0 (`ingest.run`): the
    parse ran with the collector paused, so every object it made and left in a cycle is young, and
    a full collection walked the process's ~68,000 older objects for 0.03 s of CPU per file, finding
    none of the file's (benchmarks/RESULTS.md, s33-small); the pages are `malloc_trim`'s either way.
    """
    gc.collect(generation)
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def spill_settings(cursor: Any, config: Config) -> Path:
    """Apply `[warehouse] temp_directory` and `max_temp_size` to a read-write connection; return the
    spill folder.

    Why: beyond its memory limit DuckDB spills to `<warehouse>.tmp`, on the warehouse's disk; a
    first load of a large billing history spilled more than that disk had free, and a migration
    rewriting the fact tables spills too. The folder can go to another disk, and its size can be
    capped below the free space (DuckDB's default cap, 90% of the space it sees free when it
    starts, does not stop it from filling a shared disk).
    """
    table = config.raw.get("warehouse") or {}
    base = config.path.parent if config.path else Path(".")
    where = f"{config.path}: [warehouse]" if config.path else "[warehouse]"
    if "temp_directory" in table:
        folder = table["temp_directory"]
        if not isinstance(folder, str) or not folder.strip():
            raise WarehouseError(f"{where} temp_directory must be a folder, got {folder!r}")
        path = (base / Path(folder).expanduser()).absolute()
        cursor.execute("SET temp_directory = ?", [str(path)])
    if "max_temp_size" in table:
        size = table["max_temp_size"]
        try:
            cursor.execute("SET max_temp_directory_size = ?", [str(size)])
        except duckdb.Error as exc:
            raise WarehouseError(f"{where} max_temp_size {size!r} is not a size DuckDB knows ({exc})") from None
    ((folder,),) = cursor.execute("SELECT current_setting('temp_directory')").fetchall()
    return Path(folder)


def spill_capped(exc: BaseException) -> bool:
    """Whether `exc` is DuckDB's spill reaching `max_temp_directory_size` (`[warehouse] max_temp_size`).

    DuckDB raises it as an out-of-memory error, but more memory is not the remedy: a refresh must
    not retry it as one, and the writer reports it as a disk that is full (kpis.publication)."""
    return isinstance(exc, duckdb.OutOfMemoryException) and "max_temp_directory_size" in str(exc)


@contextmanager
def memory_unlimited(cursor: Any) -> Iterator[None]:
    """DuckDB's own limit (80% of RAM) while the block runs, then the previous limit back: for
    work that ran out of memory under a configured limit (part of DuckDB's work cannot spill)."""
    with memory_restored(cursor):
        cursor.execute("RESET memory_limit")
        yield


# "none" (no limit) reads back as "16383.9 PiB"
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50, "EiB": 2**60}


def memory_limit_bytes(cursor: Any) -> int:
    """DuckDB's memory limit in force, in bytes (read back as text such as "1.8 GiB": to ~5%)."""
    ((shown,),) = cursor.execute("SELECT current_setting('memory_limit')").fetchall()
    number, unit = str(shown).split()
    return int(float(number) * _UNITS[unit])


@contextmanager
def memory_restored(cursor: Any) -> Iterator[None]:
    """The memory limit in force before the block back after it, whatever the block set (e.g.
    DuckDB's own limit for one statement, `RESET memory_limit`, such as a COMMIT that merges a
    large key index: see ingest.run)."""
    # read whole: a result left open on the cursor would hold a transaction while the block runs
    before = cursor.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    try:
        yield
    finally:
        # what DuckDB holds now (key indexes) may not fit the lower limit: then it keeps its own
        with contextlib.suppress(duckdb.OutOfMemoryException):
            _restore(cursor, before)


def _restore(cursor: Any, before: str) -> None:
    """The default exactly (a limit read back as text is rounded), else what was set."""
    cursor.execute("RESET memory_limit")
    if cursor.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] != before:
        cursor.execute(f"SET memory_limit = {_quoted(str(before))}")


def _quoted(text: str) -> str:
    """A SQL string literal (SET takes no parameters); kpis.sql_literals is the engine's side."""
    return "'" + text.replace("'", "''") + "'"
