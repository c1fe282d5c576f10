"""`python -m benchmarks.scale_up`: a warehouse N times larger, made of N copies of a loaded one.

Why: timing the KPI library at 10 M appointments needs a 10 M warehouse, and simulating and
ingesting one takes hours and ~30 GB of exports on the project's 2-core machine. Ten copies of
the 1 M warehouse have the same shape at ten times the rows: every copy's providers, patients,
appointments, claims and calls get their own identifiers (a `~k` suffix), while locations,
payers and the calendar are shared, so each provider, location and month holds what a ten times
larger practice group would. It measures query cost, not ingest; `RESULTS.md` says which
figures come from such a warehouse.

    python -m benchmarks.scale_up bench-work/1m bench-work/10m --copies 10
    clinic-kpis refresh --config bench-work/10m/clinic-kpis.toml     # builds the results store
    python -m benchmarks --from-warehouse bench-work/10m --no-baseline
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import duckdb

from kpis.config import load_config
from kpis.storage import Store

SHARED_TABLES = ("locations", "payers", "ingest_runs", "rejects", "schema_migrations", "warehouse_settings")
SHARED_COLUMNS = ("location_id", "payer_id", "source")
OWN_SUFFIXES = ("_id", "_key", "_number", "_ref")  # identifiers that must differ between copies
OWN_COLUMNS = ("agent", "npi", "reference")


def scale_up(source: Path, target: Path, copies: int) -> dict[str, int]:
    """Write `target`/clinic_kpis.duckdb as `copies` copies of `source`'s; rows per table.

    The target is created by clinic-kpis itself (every migration applied, the results store empty
    and stale: `clinic-kpis refresh` builds it), then filled with the source's rows; its run and
    reject numbers continue after the copied ones, so a later load gets new ones.
    """
    config = load_config(source / "clinic-kpis.toml")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("clinic-kpis.toml", ".clinic-kpis.secret"):
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    (target / "exports").mkdir(exist_ok=True)
    shutil.copy2(source / "exports" / "truth.json", target / "exports" / "truth.json")  # the simulated months
    db = target / config.db_path.name
    for leftover in target.glob(config.db_path.name + "*"):
        leftover.unlink()
    Store(db, config=load_config(target / "clinic-kpis.toml", db=db)).close()
    con = duckdb.connect(str(db))
    con.execute("SET enable_progress_bar = false")
    con.execute(f"ATTACH '{config.db_path}' AS src (READ_ONLY)")
    tables = [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' AND schema_name = 'main' "
            "AND table_name NOT IN ('schema_migrations', 'table_keys')"  # as migrated: the target has them
        ).fetchall()
    ]
    counts = {}
    for table in tables:
        columns = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'src' AND table_name = ? "
            "AND schema_name = 'main' ORDER BY column_index",
            [table],
        ).fetchall()
        for k in range(1 if table in SHARED_TABLES else copies):
            select = ", ".join(_copied(name, kind, k) for name, kind in columns)
            con.execute(f'INSERT INTO main."{table}" SELECT {select} FROM src.main."{table}"')
        counts[table] = con.execute(f'SELECT count(*) FROM main."{table}"').fetchone()[0]
        print(f"{table:24s} {counts[table]:>12,} rows", flush=True)
    for sequence, table, column in (
        ("ingest_run_seq", "ingest_runs", "run_id"),
        ("reject_seq", "rejects", "reject_id"),
    ):
        (last,) = con.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()
        con.execute(f"SELECT max(nextval('{sequence}')) FROM range({int(last)})")
    counts["schema_migrations"] = con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    con.execute("DETACH src")
    con.execute("CHECKPOINT")
    con.close()
    return counts


def _copied(name: str, kind: str, k: int) -> str:
    own = kind == "VARCHAR" and name not in SHARED_COLUMNS and (name.endswith(OWN_SUFFIXES) or name in OWN_COLUMNS)
    return f"\"{name}\" || '~{k}'" if own and k else f'"{name}"'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_up", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="A benchmark workdir with a loaded warehouse (from --keep).")
    parser.add_argument("target", type=Path, help="Where the larger workdir goes.")
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error("--copies must be at least 1")
    scale_up(args.source.resolve(), args.target.resolve(), args.copies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
