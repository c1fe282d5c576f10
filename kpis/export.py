"""Export the canonical tables as Parquet: the hand-over from the warehouse to a lake.

Spark, Trino, Databricks or DuckDB itself read the folder as Hive-style tables:

    DIR/manifest.json                               schema version, time zone, columns, rows per month
    DIR/<table>/month=YYYY-MM/data_0.parquet        a table with an event time, one file per month
    DIR/<table>/month=__HIVE_DEFAULT_PARTITION__/   its rows without one (an encounter never checked in)
    DIR/<table>/data_0.parquet                      reference and bookkeeping tables, whole

A month is the practice's local calendar month of the row's event time (the time KPIs place it
by), so a month's partition is what a month's KPIs read. Service lines and remittance
adjustments carry no time of their own: they follow their claim submission or remittance.

Why one file per month: a re-export writes the new file in a staging folder inside DIR (same
file system) and renames it over the old one, which is atomic, so a reader sees the old month or
the new month, never half of one. `months=` re-exports only those months (a load that changed
September re-exports September); the reference tables are small and are always rewritten whole.
The manifest is replaced last, the same way.

Types are kept exact and readable everywhere: TIMESTAMPTZ is written as a UTC-adjusted
microsecond timestamp (Spark `timestamp`, Trino `timestamp with time zone`), DECIMAL stays
DECIMAL, and nanosecond timestamps, which Spark refuses, are cast to microseconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpis import __version__
from kpis.errors import ClinicKpisError
from kpis.progress import steps
from kpis.relations import DATE, INSTANT, local
from kpis.sql_literals import sql_literal

if TYPE_CHECKING:
    from kpis.storage import Store

MANIFEST = "manifest.json"
FORMAT = "clinic-kpis parquet export"
FORMAT_VERSION = 1
MONTH_COLUMN = "month"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # what Hive, Spark, Trino and DuckDB call a NULL key

# table -> (the column that dates a row, its kind, and the parent table holding it, if any:
# (parent, join key)). The column is the event time KPIs place the table's rows by.
MONTH_OF: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "appointments": ("scheduled_start", INSTANT, None),
    "encounters": ("checked_in_at", INSTANT, None),
    "slots": ("start_at", INSTANT, None),
    "calls": ("entered_at", INSTANT, None),
    "claims": ("submitted_at", INSTANT, None),
    "claim_lines": ("submitted_at", INSTANT, ("claims", "submission_id")),
    "remittances": ("paid_date", DATE, None),
    "remittance_adjustments": ("paid_date", DATE, ("remittances", "remittance_id")),
    "ledger": ("posted_date", DATE, None),
    "referrals": ("created_at", INSTANT, None),
    "portal_messages": ("received_at", INSTANT, None),
}
# How the warehouse is loaded, not what happened: the schema version (in the manifest instead),
# the incremental-load state (versions, references, waiting updates) and the key's fingerprint.
NOT_EXPORTED = frozenset(
    {"schema_migrations", "record_versions", "source_references", "waiting_rows", "warehouse_settings", "table_keys"}
)

# DuckDB column type -> the Spark SQL type a reader declares; anything else is refused, so a
# migration adding a type no lake engine reads the same way fails the export test, not a user.
_SPARK_TYPES = {
    "VARCHAR": "STRING",
    "BOOLEAN": "BOOLEAN",
    "SMALLINT": "SMALLINT",
    "INTEGER": "INT",
    "BIGINT": "BIGINT",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
    "DATE": "DATE",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMP_NTZ",
}
_CAST_TO_MICROS = {"TIMESTAMP_NS": "TIMESTAMP", "TIMESTAMP_MS": "TIMESTAMP", "TIMESTAMP_S": "TIMESTAMP"}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class TableExport:
    """What one export wrote for one table."""

    table: str
    rows: int  # rows written by this export (only the months asked for, when months were given)
    files: int
    bytes: int
    months: tuple[str, ...]  # the month partitions written (empty for a table exported whole)


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    schema_version: int
    tables: tuple[TableExport, ...]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)


class ExportError(ClinicKpisError):
    """The export cannot be written (or an existing export is not one this code can update)."""


def spark_type(duckdb_type: str, where: str) -> str:
    """The Spark SQL type of a DuckDB column type as exported (see the module docstring)."""
    duckdb_type = _CAST_TO_MICROS.get(duckdb_type, duckdb_type)
    if duckdb_type in _SPARK_TYPES:
        return _SPARK_TYPES[duckdb_type]
    m = _DECIMAL.match(duckdb_type)
    if m:
        return f"DECIMAL({m.group(1)},{m.group(2)})"
    if duckdb_type.endswith("[]"):  # a list (the KPIs a recorded change is about): a Parquet LIST
        return f"ARRAY<{spark_type(duckdb_type[:-2], where)}>"
    raise ExportError(f"{where}: type {duckdb_type} has no portable Parquet form; add it to kpis/export.py")


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of an export folder (raises ExportError when there is none or it is not ours)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ExportError(f"{directory} holds no clinic-kpis export ({MANIFEST} not found): run `clinic-kpis export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not a readable manifest: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path}: not a {FORMAT} of version {FORMAT_VERSION}")
    return manifest


def export_parquet(wh: Store, directory: str | Path, months: Sequence[str] | None = None) -> ExportSummary:
    """Write the warehouse's tables to `directory` as Parquet, or only `months` ("YYYY-MM") of them.

    A month-only export updates an existing export made with the same schema version and time
    zone (a different one needs a full export, which rewrites everything and removes what the
    warehouse no longer has).
    """
    began = time.perf_counter()
    root = Path(directory)
    chosen = _check_months(months)
    old = read_manifest(root) if (root / MANIFEST).exists() or chosen is not None else None
    if old is None and root.is_dir() and any(root.iterdir()):
        raise ExportError(f"{root} is not empty and holds no clinic-kpis export: choose a new or empty folder")
    version, tz = wh.schema_version(), wh.config.timezone
    if chosen is not None and old is not None and (old["schema_version"], old["time_zone"]) != (version, tz):
        raise ExportError(
            f"{root} holds schema version {old['schema_version']} in {old['time_zone']}, the warehouse "
            f"{version} in {tz}: export every month (without --month) to replace it"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    tables: dict[str, dict[str, Any]] = {}
    written = []
    cur = wh.cursor()
    try:
        for table in steps([t for t in wh.tables() if t not in NOT_EXPORTED], "exporting"):
            columns = _columns(cur, table)
            partitioned = table in MONTH_OF
            sql = _select(table, columns, tz, chosen if partitioned else None)
            stats = _copy(cur, sql, staging / table, partitioned)
            previous = (old or {}).get("tables", {}).get(table, {}) if chosen is not None else {}
            counts = dict(previous.get("months", {})) if partitioned else {}
            if partitioned:
                for month in chosen or ():
                    counts.pop(month, None)
            for stat in stats:
                if partitioned:
                    counts[stat["month"]] = counts.get(stat["month"], 0) + stat["count"]
            _swap_in(staging / table, root / table, stats, partitioned, chosen)
            tables[table] = {
                "columns": [{"name": n, "type": t, "spark_type": spark_type(t, f"{table}.{n}")} for n, t in columns],
                "partition_by": MONTH_COLUMN if partitioned else None,
                "month_of": _month_of_text(table) if partitioned else None,
                "rows": sum(counts.values()) if partitioned else sum(s["count"] for s in stats),
                "months": dict(sorted(counts.items())) if partitioned else None,
            }
            written.append(
                TableExport(
                    table,
                    sum(s["count"] for s in stats),
                    len(stats),
                    sum(s["bytes"] for s in stats),
                    tuple(sorted(s["month"] for s in stats)) if partitioned else (),
                )
            )
        if chosen is None:
            _remove_tables_gone(root, set(tables), old)
        _write_manifest(root, version, tz, tables)
    finally:
        cur.close()
        shutil.rmtree(staging, ignore_errors=True)
    return ExportSummary(root, version, tuple(written), time.perf_counter() - began)


def _check_months(months: Sequence[str] | None) -> list[str] | None:
    if months is None:
        return None
    chosen = []
    for month in months:
        if not _MONTH.match(month):
            raise ExportError(f"month {month!r}: expected YYYY-MM, e.g. 2026-09")
        chosen.append(month)
    if not chosen:
        raise ExportError("no month given: name at least one, or export every month")
    return sorted(set(chosen))


def _columns(cur: Any, table: str) -> list[tuple[str, str]]:
    rows = cur.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]
    ).fetchall()
    return [(name, _CAST_TO_MICROS.get(kind, kind)) for name, kind in rows]


def _month_of_text(table: str) -> str:
    column, _, parent = MONTH_OF[table]
    return f"{parent[0]}.{column} (by {parent[1]})" if parent else column


def _select(table: str, columns: list[tuple[str, str]], tz: str, months: list[str] | None) -> str:
    """The rows of `table` in their portable types, with the month partition column when it has one."""
    select = ", ".join(f"CAST(t.{n} AS {t}) AS {n}" if t in _CAST_TO_MICROS.values() else f"t.{n}" for n, t in columns)
    if table not in MONTH_OF:
        return f"SELECT {select} FROM {table} AS t"
    column, kind, parent = MONTH_OF[table]
    source, dated = f"{table} AS t", f"t.{column}"
    if parent is not None:
        source += f" LEFT JOIN {parent[0]} AS p ON p.{parent[1]} = t.{parent[1]}"
        dated = f"p.{column}"
    month = f"strftime({local(dated, tz) if kind == INSTANT else dated}, '%Y-%m')"
    sql = f"SELECT {select}, {month} AS {MONTH_COLUMN} FROM {source}"
    if months is not None:
        sql = f"SELECT * FROM ({sql}) WHERE {MONTH_COLUMN} IN ({sql_literal(months)})"
    return sql


def _copy(cur: Any, sql: str, target: Path, partitioned: bool) -> list[dict[str, Any]]:
    """COPY `sql` to Parquet under `target`; one dict per file written: path, month, count, bytes."""
    target.mkdir(parents=True)
    options = "FORMAT parquet, COMPRESSION zstd, RETURN_STATS"
    if partitioned:
        options += f", PARTITION_BY ({MONTH_COLUMN}), OVERWRITE_OR_IGNORE"
        destination = target
    else:
        destination = target / "data_0.parquet"
    found = cur.execute(f"COPY ({sql}) TO {sql_literal(str(destination))} ({options})").fetchall()
    stats = []
    for filename, count, size, *_, keys, _extra in found:
        month = (keys or {}).get(MONTH_COLUMN) if partitioned else None
        stats.append(
            {
                "path": Path(filename),
                "month": NULL_PARTITION if partitioned and month is None else month,
                "count": int(count),
                "bytes": int(size),
            }
        )
    if not partitioned and not stats:  # DuckDB reports nothing for an empty unpartitioned COPY
        stats.append({"path": destination, "month": None, "count": 0, "bytes": destination.stat().st_size})
    return stats


def _swap_in(
    staged: Path, target: Path, stats: list[dict[str, Any]], partitioned: bool, months: list[str] | None
) -> None:
    """Rename the staged files over the exported ones, then delete what the export replaced.

    Each rename replaces a file atomically; the files left over afterwards (a month the
    warehouse no longer has, a second file of a month) are removed only once the new ones are
    in place.
    """
    kept = set()
    for stat in stats:
        relative = stat["path"].relative_to(staged)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stat["path"], destination)
        kept.add(destination)
    target.mkdir(parents=True, exist_ok=True)
    if partitioned and months is not None:
        scope: Iterable[Path] = [target / f"{MONTH_COLUMN}={m}" for m in months]
    else:
        scope = [target]
    for folder in scope:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
            if path.is_file() and path not in kept:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        if folder != target and folder.exists() and not any(folder.iterdir()):
            folder.rmdir()


def _remove_tables_gone(root: Path, tables: set[str], old: dict[str, Any] | None) -> None:
    """A full export drops the folders of tables an earlier export had and the warehouse has not."""
    for table in (old or {}).get("tables", {}):
        if table not in tables and (root / table).is_dir():
            shutil.rmtree(root / table)


def _write_manifest(root: Path, version: int, tz: str, tables: dict[str, dict[str, Any]]) -> None:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": version,
        "clinic_kpis_version": __version__,
        "time_zone": tz,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": tables,
    }
    partial = root / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, root / MANIFEST)
