"""Fill the results store with facts Spark computed from the Parquet lake: `clinic-kpis refresh --engine spark`.

A full rebuild of the store in the warehouse's copy a writer holds (`Warehouse.writing`, so
readers keep the published snapshot and the result is published like any refresh), where the
statements that compute the fact tables run on Spark over the export instead of on DuckDB:

* **Spark computes the facts**: one row per row of each KPI relation (appointments, claims, the
  ledger, ...) and third next available's (snapshot, provider, location) rows. That is the heavy
  part (the relations' joins and windows over every raw row) and the part that partitions on a
  cluster. The statements are exactly those a DuckDB refresh runs (`kpis.serving.refresh`
  hands each one over through its `facts_from` hook), written for Spark by `kpis.query.render`.
  Spark writes the rows as Parquet into a staging folder inside the lake (executors can write
  there, the warehouse's host can read it); DuckDB reads them back cast to the types its own
  statement has (`DESCRIBE`), so a fact table has the same columns and types either way.
* **DuckDB finishes**: the month results, coverage, dimension values and meta are computed by
  the refresh's own steps from those fact tables and the warehouse's tables. They are small
  aggregates over the facts (seconds at 10 M rows), and computing them with the very statements
  of a DuckDB refresh makes a store filled by Spark equal to one filled by DuckDB wherever the
  facts are, with nothing second to keep in step. A later DuckDB refresh updates the store
  incrementally as usual (the facts keep the columns it reads).

The lake must be an export of this warehouse as it is now (same schema version and time zone,
the same ingest runs, the same rows per table), else the store would describe other data than
the snapshot it is published with; `serving.meta`'s `built_from` records the export the facts
were computed from.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from kpis.export import NOT_EXPORTED, read_manifest
from kpis.query import render
from kpis.serving.facts import SCHEMA
from kpis.serving.refresh import RefreshSummary, refresh, reopened_cursor
from kpis.sql_literals import sql_literal
from kpis.storage import Store

BUILT_FROM = "built_from"  # serving.meta: the export a Spark refresh computed the facts from

# Spark writes instants as Parquet's UTC-adjusted microsecond timestamps, which DuckDB reads as
# TIMESTAMPTZ (Spark's default, INT96, reads back as a naive timestamp).
WRITE_CONF = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}


def refresh_on_spark(
    store: Store,
    lake: str | Path,
    *,
    master: str = "local[*]",
    spark: Any = None,
    progress: bool = True,
) -> RefreshSummary:
    """Rebuild `store`'s results store with its facts computed by Spark from `lake`.

    `store` is a writer's copy (`with Warehouse.writing(db) as store:`), published when the block
    ends; `lake` the folder `clinic-kpis export --parquet` wrote from this warehouse as it is now.
    `master` and `spark` are as for `kpis.spark.SparkLake`.
    """
    started = time.perf_counter()
    lake = Path(lake)
    manifest = check_lake(store, lake)
    from kpis.spark import SparkError, SparkLake  # needs the spark extra: imported only when asked for

    try:
        staging = Path(tempfile.mkdtemp(prefix=".store-staging-", dir=lake))
    except OSError as exc:
        raise SparkError(f"{lake}: cannot write Spark's facts there ({exc.strerror}): it must be writable") from None
    try:
        with SparkLake(lake, config=store.config, spark=spark, master=master) as on_spark:
            for key, value in WRITE_CONF.items():
                on_spark.spark.conf.set(key, value)
            with store.cursor() as cur:
                facts = _SparkFacts(on_spark, cur, staging)

                def reopen() -> Any:  # the rerun after running out reads Spark's rows on the file opened afresh
                    facts.cur = reopened_cursor(store)
                    return facts.cur

                summary = refresh(cur, store.config, full=True, progress=progress, facts_from=facts, reopen=reopen)
                built = {
                    "engine": "spark",
                    "master": on_spark.spark.sparkContext.master,
                    "lake": str(lake.resolve()),
                    "schema_version": manifest["schema_version"],
                    "exported_at": manifest["exported_at"],
                    "covered_run": summary.covered_run,
                    "facts": facts.rows,
                }
                meta = f"INSERT OR REPLACE INTO {SCHEMA}.meta VALUES (?, ?)"
                facts.cur.execute(meta, [BUILT_FROM, json.dumps(built)])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.seconds = time.perf_counter() - started  # Spark's start included
    return summary


def check_lake(store: Store, lake: Path) -> dict[str, Any]:
    """The lake's manifest, if the lake is an export of `store` as it is now; else a one-line error.

    Same schema version and time zone, the same ingest runs (id, start, file hash) and the same
    number of rows in every exported table: a store computed from it then describes this snapshot.
    """
    from kpis.spark import SparkError

    manifest = read_manifest(lake)
    again = f"export it again (`clinic-kpis export --parquet {lake}`)"
    version, db = store.schema_version(), store.config.db_path  # (store.path is the writer's copy)
    if manifest["schema_version"] != version:
        raise SparkError(
            f"{lake} was exported with schema version {manifest['schema_version']}, the warehouse {db} "
            f"has version {version}: {again}"
        )
    if manifest["time_zone"] != store.config.timezone:
        raise SparkError(
            f"{lake} was exported for a practice in {manifest['time_zone']}, the warehouse's config says "
            f"{store.config.timezone}: {again}"
        )
    tables = manifest["tables"]
    with store.cursor() as cur:
        for table in [t for t in store.tables() if t not in NOT_EXPORTED]:
            (rows,) = cur.execute(f"SELECT count(*) FROM main.{table}").fetchone()
            exported = tables.get(table, {}).get("rows")
            if exported != rows:
                held = "no" if exported is None else f"{exported:,}"
                raise SparkError(
                    f"{lake} is not an export of {db} as it is now ({table}: {held} rows in the export, "
                    f"{rows:,} in the warehouse): {again}"
                )
        runs = "SELECT run_id, started_at, sha256 FROM {}"
        exported_runs = runs.format(f"read_parquet({sql_literal(str(lake / 'ingest_runs' / '*.parquet'))})")
        (differ,) = cur.execute(
            f"SELECT count(*) FROM (({runs.format('main.ingest_runs')} EXCEPT {exported_runs}) "
            f"UNION ALL ({exported_runs} EXCEPT {runs.format('main.ingest_runs')}))"
        ).fetchone()
        if differ:
            raise SparkError(f"{lake} is not an export of {db} as it is now (other ingest runs): {again}")
    return manifest


class _SparkFacts:
    """The `facts_from` hook: Spark runs a fact table's SELECT; DuckDB reads its rows, typed as its own."""

    def __init__(self, lake: Any, cursor: Any, staging: Path) -> None:
        self.lake = lake
        self.cur = cursor
        self.staging = staging
        self.rows: dict[str, int] = {}  # group -> rows Spark computed

    def __call__(self, group: str, select: str) -> str:
        columns = self.cur.execute(f"DESCRIBE {select}").fetchall()  # binds the statement, runs nothing
        folder = self.staging / group
        # overwrite: a refresh that ran out of memory asks again for the groups it had
        self.lake.spark.sql(render(select, dialect="spark")).write.mode("overwrite").parquet(str(folder))
        typed = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind, *_ in columns)
        if not any(folder.glob("*.parquet")):  # Spark wrote no file for an empty result
            self.rows[group] = 0
            nulls = ", ".join(f'NULL AS "{name}"' for name, *_ in columns)
            return f"SELECT {typed} FROM (SELECT {nulls}) WHERE FALSE"
        files = f"read_parquet({sql_literal(str(folder / '*.parquet'))})"
        (self.rows[group],) = self.cur.execute(f"SELECT count(*) FROM {files}").fetchone()
        return f"SELECT {typed} FROM {files}"
