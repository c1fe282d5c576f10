"""`clinic-kpis refresh --engine spark`: the results store filled with facts Spark computed, equal to DuckDB's.

The simulated practice is exported as Parquet; one copy of its warehouse has its store rebuilt
by the command line with `--engine spark` (the fact rows computed by Spark from the export,
the month results by DuckDB from them), another by a full DuckDB refresh. Every table of the
two stores must be equal, row for row and type for type; `compute` from the Spark-filled store
must equal the raw engine for every KPI, month and (total, location, provider); a later DuckDB
refresh must keep working on it; and a lake that is not this warehouse as it is now, or Spark
missing, must be refused in one line.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kpis import Warehouse
from kpis.cli import main
from kpis.config import load_config
from kpis.export import export_parquet
from kpis.serving.facts import layout
from kpis.serving.refresh import refresh
from kpis.serving.spark_fill import BUILT_FROM, refresh_on_spark
from kpis.spark import SparkError
from tests.cli_helpers import run_cli
from tests.conftest import SimulatedPractice
from tests.kpis.test_serving import assert_same
from tests.memory_faults import facts_run_out_once
from tests.test_serving_incremental import corrected, load

FIRST, LAST = "2025-08", "2026-09"  # the 14 simulated months


@dataclass(frozen=True)
class Filled:
    lake: Path
    spark: Path  # the practice's folder whose store the command line filled on Spark
    duckdb: Path  # the same warehouse, its store rebuilt by DuckDB
    out: str  # what `clinic-kpis refresh --engine spark` printed


def copy_practice(practice: SimulatedPractice, target: Path) -> Path:
    """The practice's warehouse, config and secret in `target` (the exports are not needed)."""
    target.mkdir(parents=True)
    for name in (practice.db.name, practice.config.name, ".clinic-kpis.secret"):
        shutil.copy2(practice.directory / name, target / name)
    return target


def cli(*args: str) -> tuple[int, str, str]:
    """The real entry point in this process (so it finds the test's Spark session), outside capsys."""
    out, err, old = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["clinic-kpis", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


def where(directory: Path) -> list[str]:
    return ["--db", str(directory / "clinic_kpis.duckdb"), "--config", str(directory / "clinic-kpis.toml")]


@pytest.fixture(scope="module")
def filled(simulated_practice: SimulatedPractice, spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    root = tmp_path_factory.mktemp("spark-refresh")
    on_spark = copy_practice(simulated_practice, root / "spark")
    on_duckdb = copy_practice(simulated_practice, root / "duckdb")
    with simulated_practice.open() as wh:
        export_parquet(wh, root / "lake")
    code, out, err = cli("refresh", *where(on_spark), "--engine", "spark", "--parquet", str(root / "lake"))
    assert code == 0, err
    code, _, err = cli("refresh", *where(on_duckdb), "--full")
    assert code == 0, err
    return Filled(root / "lake", on_spark, on_duckdb, out)


def serving_tables(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, list[tuple[str, str]]]:
    """serving table -> its columns and types, in order."""
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
        "AND schema_name = 'serving' ORDER BY table_name, column_index",
        [database],
    ).fetchall():
        found.setdefault(table, []).append((column, kind))
    return found


def test_a_store_filled_by_spark_equals_one_filled_by_duckdb(filled: Filled) -> None:
    assert "facts computed by Spark from" in filled.out and "rebuilt: appointments" in filled.out
    con = duckdb.connect()
    con.execute(f"ATTACH '{filled.spark / 'clinic_kpis.duckdb'}' AS spark (READ_ONLY)")
    con.execute(f"ATTACH '{filled.duckdb / 'clinic_kpis.duckdb'}' AS duck (READ_ONLY)")
    tables = serving_tables(con, "duck")
    assert serving_tables(con, "spark") == tables  # the same tables, columns and types
    assert {"facts_appointments", "facts_ledger", "facts_third_next_available", "results", "coverage"} <= set(tables)
    for table in tables:
        a, b = f"spark.serving.{table}", f"duck.serving.{table}"
        if table == "meta":  # when, and (Spark's side only) from what
            a = f"(SELECT * FROM {a} WHERE key NOT IN ('refreshed_at', '{BUILT_FROM}'))"
            b = f"(SELECT * FROM {b} WHERE key <> 'refreshed_at')"
        (rows,) = con.execute(f"SELECT count(*) FROM {b}").fetchone()
        (extra,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()
        (missing,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()
        assert (extra, missing) == (0, 0), f"serving.{table}: {extra} rows only from Spark, {missing} only from DuckDB"
        assert rows > 0 or table.startswith("values_"), table

    # the store says what it was built from: this export, by Spark, every fact table computed there
    (text,) = con.execute(f"SELECT value FROM spark.serving.meta WHERE key = '{BUILT_FROM}'").fetchone()
    built = json.loads(text)
    manifest = json.loads((filled.lake / "manifest.json").read_text(encoding="utf-8"))
    assert built["engine"] == "spark" and built["master"].startswith("local")
    assert built["lake"] == str(filled.lake.resolve()) and built["exported_at"] == manifest["exported_at"]
    assert built["schema_version"] == manifest["schema_version"]
    lay = layout(load_config(filled.spark / "clinic-kpis.toml"))
    assert set(built["facts"]) == {t.group for t in lay.tables} | {"third_next_available"}
    for group, rows in built["facts"].items():
        (count,) = con.execute(f"SELECT count(*) FROM spark.serving.facts_{group}").fetchone()
        assert rows == count > 0, group
    (no_mark,) = con.execute(f"SELECT count(*) FROM duck.serving.meta WHERE key = '{BUILT_FROM}'").fetchone()
    assert no_mark == 0
    assert not list(filled.lake.glob(".store-staging-*"))  # Spark's rows are removed from the lake
    con.close()


@pytest.mark.parametrize("by", [None, "location", "provider"])
def test_compute_from_the_spark_filled_store_equals_the_raw_engine(filled: Filled, by: str | None) -> None:
    """Every KPI x month x (total, location, provider): value, numerator, denominator, n, complete."""
    with Warehouse.open(config=load_config(filled.spark / "clinic-kpis.toml"), read_only=True) as wh:
        kpis = [s.id for s in wh.catalog() if by is None or by in s.dimensions]
        store = wh.compute(kpis, start=FIRST, end=LAST, by=by, via="store")
        assert set(store.attrs["answered_from"].values()) == {"results"}  # month results: looked up
        assert_same(store, wh.compute(kpis, start=FIRST, end=LAST, by=by, via="raw"))
        assert store["period_start"].nunique() == 14 and store["value"].notna().sum() > 0.5 * len(store)
        scorecard = wh.scorecard(period="2026-09")  # what the dashboard's Overview and the report read
    with Warehouse.open(config=load_config(filled.duckdb / "clinic-kpis.toml"), read_only=True) as wh:
        assert scorecard.equals(wh.scorecard(period="2026-09"))


def test_the_command_line_reads_what_spark_computed(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    request = ["--month", "2026-09", "--by", "location", "--format", "json"]
    stored = run_cli(capsys, "kpis", *where(filled.spark), *request, "--from", "store")
    raw = run_cli(capsys, "kpis", *where(filled.spark), *request, "--from", "raw")
    assert stored.code == raw.code == 0, stored.err + raw.err
    assert json.loads(stored.out) == json.loads(raw.out) and len(json.loads(stored.out)) > 30


def test_a_later_duckdb_refresh_works_on_the_spark_filled_store(
    filled: Filled, simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    """Up to date at once; after a corrected load, updated incrementally, equal to a full DuckDB rebuild."""
    directory = tmp_path / "practice"
    shutil.copytree(filled.spark, directory)
    code, out, err = cli("refresh", *where(directory))
    assert code == 0 and "up to date" in out, err + out

    appointments = tmp_path / "corrected" / "Appointment.ndjson"
    appointments.parent.mkdir()
    shutil.copy(simulated_practice.exports / "fhir" / "Appointment.ndjson", appointments)
    assert corrected(appointments) == 2  # one visit a day later, one a no-show
    load(directory, [appointments], force=True)  # refreshes the store incrementally before publishing

    db = directory / "clinic_kpis.duckdb"
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copyfile(db, rebuilt)
    with Warehouse.open(rebuilt, config=directory / "clinic-kpis.toml") as wh, wh.cursor() as cur:
        summary = refresh(cur, wh.config, full=True, progress=False)
        assert "appointments" in summary.rebuilt
    con = duckdb.connect()
    con.execute(f"ATTACH '{db}' AS incremental (READ_ONLY)")
    con.execute(f"ATTACH '{rebuilt}' AS full_rebuild (READ_ONLY)")
    (covered,) = con.execute("SELECT value FROM incremental.serving.meta WHERE key = 'covered_run'").fetchone()
    (last_run,) = con.execute("SELECT max(run_id) FROM incremental.main.ingest_runs").fetchone()
    assert (
        int(covered)
        == last_run
        > json.loads(
            con.execute(f"SELECT value FROM incremental.serving.meta WHERE key = '{BUILT_FROM}'").fetchone()[0]
        )["covered_run"]
    )
    for table in serving_tables(con, "full_rebuild"):
        a, b = f"incremental.serving.{table}", f"full_rebuild.serving.{table}"
        if table == "meta":
            # rows appended since a table was last sorted by day: bookkeeping, not a result
            kept = f"key NOT IN ('refreshed_at', '{BUILT_FROM}') AND key NOT LIKE 'appended:%'"
            a = f"(SELECT * FROM {a} WHERE {kept})"
            b = f"(SELECT * FROM {b} WHERE {kept})"
        (extra,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()
        (missing,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()
        assert (extra, missing) == (0, 0), f"serving.{table}: {extra} rows only incremental, {missing} only rebuilt"
    con.close()

    # the export is now older than the warehouse: a Spark refresh from it is refused
    code, _, err = cli("refresh", *where(directory), "--engine", "spark", "--parquet", str(filled.lake))
    assert code == 1 and err.count("\n") == 1
    runs = json.loads((filled.lake / "manifest.json").read_text(encoding="utf-8"))["tables"]["ingest_runs"]["rows"]
    assert f"{filled.lake} is not an export of {db} as it is now (ingest_runs: {runs:,} rows in the export, " in err
    assert f"{runs + 1:,} in the warehouse): export it again (`clinic-kpis export --parquet {filled.lake}`)" in err


def test_a_spark_fill_that_ran_out_of_memory_runs_again_on_the_file_opened_afresh(
    filled: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of memory creating a fact table (DuckDB then keeps the table's catalog entry), the Spark fill
    runs again under DuckDB's own limit on the file opened afresh, asks Spark again for the groups it
    had written (appointments' and slots' facts, before encounters' ran out), and fills the same store
    as DuckDB's full refresh."""
    directory = tmp_path / "practice"
    shutil.copytree(filled.spark, directory)
    ran_out = facts_run_out_once(monkeypatch, "encounters")
    code, _, err = cli("refresh", *where(directory), "--engine", "spark", "--parquet", str(filled.lake))
    assert code == 0, err
    assert ran_out == ["facts of encounters"]
    assert "(facts of encounters ran out): it ran with DuckDB's default" in err
    con = duckdb.connect()
    con.execute(f"ATTACH '{directory / 'clinic_kpis.duckdb'}' AS spark (READ_ONLY)")
    con.execute(f"ATTACH '{filled.duckdb / 'clinic_kpis.duckdb'}' AS on_duckdb (READ_ONLY)")
    for table in ("facts_appointments", "facts_slots", "facts_encounters"):
        a, b = f"spark.serving.{table}", f"on_duckdb.serving.{table}"
        (extra,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()
        (missing,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()
        (rows,) = con.execute(f"SELECT count(*) FROM {a}").fetchone()
        assert (extra, missing) == (0, 0) and rows > 0, f"{table}: {extra} only Spark's, {missing} only DuckDB's"
    (built,) = con.execute(f"SELECT value FROM spark.serving.meta WHERE key = '{BUILT_FROM}'").fetchone()
    assert json.loads(built)["engine"] == "spark"
    con.close()


def test_a_lake_of_other_data_or_another_schema_version_is_refused(filled: Filled, tmp_path: Path) -> None:
    empty = tmp_path / "empty"  # a new warehouse with the practice's config: same schema, no data
    empty.mkdir()
    shutil.copy2(filled.spark / "clinic-kpis.toml", empty / "clinic-kpis.toml")
    config = load_config(empty / "clinic-kpis.toml", db=empty / "clinic_kpis.duckdb")
    other_data = r"is not an export of .* as it is now \(\w+: [\d,]+ rows in the export, 0 in the warehouse\)"
    with pytest.raises(SparkError, match=other_data), Warehouse.writing(config=config, what="refresh") as store:
        refresh_on_spark(store, filled.lake)

    older = tmp_path / "older-lake"
    shutil.copytree(filled.lake, older)
    manifest = json.loads((older / "manifest.json").read_text(encoding="utf-8"))
    version = manifest["schema_version"]
    manifest["schema_version"] = version - 1
    (older / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, _, err = cli("refresh", *where(filled.spark), "--engine", "spark", "--parquet", str(older))
    assert code == 1 and err.count("\n") == 1
    assert f"{older} was exported with schema version {version - 1}, the warehouse" in err
    assert f"has version {version}: export it again" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "--engine spark reads a Parquet export: give --parquet DIR"),
        (["--parquet", "lake"], "--parquet is read by --engine spark"),
        (["--engine", "spark", "--parquet", "nowhere"], "nowhere holds no clinic-kpis export"),
    ],
)
def test_refresh_engine_options_are_checked(
    filled: Filled, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    done = run_cli(capsys, "refresh", *where(filled.spark), *args)
    assert done.code == 1
    assert done.err.count("\n") == 1 and message in done.err


def test_spark_missing_is_said_in_one_line(filled: Filled, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without pyspark (as `kpis.spark` finds it then), the refresh says what to install; nothing is published."""
    directory = copy_practice_dir(filled.spark, tmp_path / "practice")
    before = (directory / "clinic_kpis.duckdb").read_bytes()
    monkeypatch.setattr("kpis.spark.SparkSession", None)
    code, _, err = cli("refresh", *where(directory), "--engine", "spark", "--parquet", str(filled.lake))
    assert code == 1 and err.count("\n") == 1
    assert 'Spark is not installed: pip install "clinic-kpis[spark]"' in err
    assert (directory / "clinic_kpis.duckdb").read_bytes() == before


def copy_practice_dir(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.next", "*.lock", "*.ready"))
    return target
