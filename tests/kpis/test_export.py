"""The Parquet export: layout by local month, exact round trip, atomic month re-export, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from kpis.export import MANIFEST, NULL_PARTITION, ExportError, export_parquet, read_manifest
from kpis.spark import SparkError, SparkLake
from kpis.storage import latest_schema_version
from tests.cli_helpers import run_cli
from tests.kpis.builder import Fixture


def practice(fx: Fixture) -> None:
    """Two appointments either side of a local month end, and what hangs off a claim and a remittance.

    a1 is 2026-09-30 22:00 in New York, already 2026-10-01 02:00 UTC: it belongs to September.
    e2 was never checked in: it has no month. The claim's service line and the remittance's
    adjustment have no time of their own and follow their parents (October, November).
    """
    fx.add("locations", {"location_id": "EAST", "name": "Eastside"})
    fx.add(
        "appointments",
        {"appointment_id": "a1", "scheduled_start": "2026-09-30 22:00", "booked_at": "2026-09-01 10:00:00.125"},
        {"appointment_id": "a2", "scheduled_start": "2026-10-01 09:00"},
    )
    fx.add("encounters", {"encounter_id": "e1", "checked_in_at": "2026-10-01 08:55"}, {"encounter_id": "e2"})
    fx.add(
        "claims",
        {"claim_id": "C1", "submitted_at": "2026-10-02 12:00", "service_date": "2026-10-01", "billed_amount": 120.55},
    )
    submission = fx.wh.cursor().execute("SELECT submission_id FROM claims").fetchone()[0]
    fx.add("claim_lines", {"submission_id": submission, "line_no": 1, "charge_amount": 120.55, "source": "x12"})
    fx.add("remittances", {"remittance_id": "R1", "claim_id": "C1", "paid_date": "2026-11-03", "paid_amount": 100})
    fx.add("remittance_adjustments", {"remittance_id": "R1", "group_code": "CO", "reason_code": "45", "amount": 20.55})
    fx.add("ledger", {"claim_id": "C1", "entry_type": "charge", "posted_date": "2026-10-02", "amount": 120.55})
    fx.wh.add_change("2026-10-01", "Reminder calls two days ahead", ["no_show_rate", "late_cancel_rate"])


def files(root: Path, table: str) -> list[str]:
    return sorted(str(p.relative_to(root / table)) for p in (root / table).rglob("*.parquet"))


def test_tables_by_local_month_with_a_manifest(fx: Fixture, tmp_path: Path) -> None:
    practice(fx)
    lake = tmp_path / "lake"
    summary = export_parquet(fx.wh, lake)

    assert files(lake, "appointments") == ["month=2026-09/data_0.parquet", "month=2026-10/data_0.parquet"]
    assert files(lake, "encounters") == ["month=2026-10/data_0.parquet", f"month={NULL_PARTITION}/data_0.parquet"]
    assert files(lake, "claim_lines") == ["month=2026-10/data_0.parquet"]
    assert files(lake, "remittance_adjustments") == ["month=2026-11/data_0.parquet"]
    assert files(lake, "ledger") == ["month=2026-10/data_0.parquet"]
    assert files(lake, "locations") == ["data_0.parquet"]
    assert files(lake, "calls") == []  # an empty table is an empty folder (its columns are in the manifest)
    assert not list(lake.glob(".staging-*"))

    manifest = read_manifest(lake)
    assert manifest["schema_version"] == latest_schema_version() == summary.schema_version
    assert manifest["time_zone"] == "America/New_York"
    loading = {
        "schema_migrations",
        "record_versions",
        "source_references",
        "waiting_rows",
        "warehouse_settings",
        "table_keys",
    }
    assert set(manifest["tables"]).isdisjoint(loading) and "change_versions" in manifest["tables"]
    appointments = manifest["tables"]["appointments"]
    assert (appointments["partition_by"], appointments["month_of"]) == ("month", "scheduled_start")
    assert appointments["months"] == {"2026-09": 1, "2026-10": 1} and appointments["rows"] == 2
    assert manifest["tables"]["encounters"]["months"] == {NULL_PARTITION: 1, "2026-10": 1}
    assert manifest["tables"]["claim_lines"]["month_of"] == "claims.submitted_at (by submission_id)"
    assert manifest["tables"]["locations"] == manifest["tables"]["locations"] | {"partition_by": None, "rows": 1}
    types = {c["name"]: (c["type"], c["spark_type"]) for c in appointments["columns"]}
    assert types["scheduled_start"] == ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")
    assert types["scheduled_minutes"] == ("INTEGER", "INT")
    ledger_types = {c["name"]: c["spark_type"] for c in manifest["tables"]["ledger"]["columns"]}
    assert (ledger_types["amount"], ledger_types["posted_date"]) == ("DECIMAL(18,2)", "DATE")
    assert {t.table: t.rows for t in summary.tables}["appointments"] == 2


def test_every_table_reads_back_exactly(fx: Fixture, tmp_path: Path) -> None:
    """Read by another engine (DuckDB over the files, Hive partitions on), each table is the warehouse's:
    same columns, same types, same rows - microseconds, decimals and NULLs included."""
    practice(fx)
    export_parquet(fx.wh, tmp_path / "lake")
    con = fx.wh.cursor()
    for table, info in read_manifest(tmp_path / "lake")["tables"].items():
        if not files(tmp_path / "lake", table):
            continue
        glob = tmp_path / "lake" / table / ("*/*.parquet" if info["partition_by"] else "*.parquet")
        names = ", ".join(c["name"] for c in info["columns"])
        lake = f"(SELECT {names} FROM read_parquet('{glob}', hive_partitioning = true))"
        warehouse = f"(SELECT {names} FROM {table})"
        lake_types = con.execute(f"DESCRIBE {lake}").fetchall()
        assert [(r[0], r[1]) for r in lake_types] == [(c["name"], c["type"]) for c in info["columns"]], table
        for a, b in ((lake, warehouse), (warehouse, lake)):
            assert con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0] == 0, table
        assert con.execute(f"SELECT count(*) FROM {lake}").fetchone()[0] == info["rows"], table


def test_spark_reads_the_export_with_its_types(fx: Fixture, tmp_path: Path, spark: Any) -> None:
    from pyspark.sql import types as T

    practice(fx)
    export_parquet(fx.wh, tmp_path / "lake")
    lake = SparkLake(tmp_path / "lake", config=fx.wh.config, spark=spark)
    appointments = lake.spark.table("appointments")
    fields = {f.name: f.dataType for f in appointments.schema.fields}
    assert fields["scheduled_start"] == T.TimestampType() and fields["month"] == T.StringType()
    assert fields["is_new_patient"] == T.BooleanType() and fields["scheduled_minutes"] == T.IntegerType()
    assert {f.name: f.dataType for f in lake.spark.table("ledger").schema.fields}["amount"] == T.DecimalType(18, 2)
    changes = lake.cursor().execute("SELECT kpis FROM change_versions").fetchall()
    assert changes == [(["no_show_rate", "late_cancel_rate"],)]  # a list stays a list
    rows = lake.cursor().execute("SELECT appointment_id, month, booked_at FROM appointments ORDER BY 1").df()
    assert rows["month"].tolist() == ["2026-09", "2026-10"]
    assert rows["booked_at"][0] == fx.local("2026-09-01 10:00:00.125")  # an instant, to the microsecond
    months = lake.cursor().execute("SELECT encounter_id, month FROM encounters ORDER BY 1").fetchall()
    assert months == [("e1", "2026-10"), ("e2", None)]  # the NULL partition reads as NULL
    assert lake.tables() == sorted(read_manifest(tmp_path / "lake")["tables"])


def test_a_month_is_re_exported_alone_and_swapped_in_atomically(fx: Fixture, tmp_path: Path) -> None:
    practice(fx)
    lake = tmp_path / "lake"
    export_parquet(fx.wh, lake)
    september = lake / "appointments" / "month=2026-09" / "data_0.parquet"
    october = lake / "appointments" / "month=2026-10" / "data_0.parquet"
    september_before = (september.stat().st_ino, september.read_bytes())
    reader = october.open("rb")  # a reader that opened October before the re-export

    fx.add("appointments", {"appointment_id": "a3", "scheduled_start": "2026-10-20 09:00", "status": "noshow"})
    summary = export_parquet(fx.wh, lake, months=["2026-10"])

    assert (september.stat().st_ino, september.read_bytes()) == september_before  # untouched
    assert pq.read_table(october).num_rows == 2
    assert pq.read_table(reader).num_rows == 1  # still the whole old file: replaced by a rename
    reader.close()
    manifest = read_manifest(lake)
    assert manifest["tables"]["appointments"]["months"] == {"2026-09": 1, "2026-10": 2}
    assert manifest["tables"]["appointments"]["rows"] == 3
    assert manifest["tables"]["encounters"]["months"] == {NULL_PARTITION: 1, "2026-10": 1}  # other months kept
    assert {t.table: t.months for t in summary.tables}["appointments"] == ("2026-10",)
    assert not list(lake.glob(".*"))  # no staging folder, no partial manifest

    with fx.wh.transaction() as cur:  # October's appointments are gone from the warehouse
        cur.execute("DELETE FROM appointments WHERE appointment_id IN ('a2', 'a3')")
    export_parquet(fx.wh, lake, months=["2026-10"])
    assert files(lake, "appointments") == ["month=2026-09/data_0.parquet"]
    assert read_manifest(lake)["tables"]["appointments"]["months"] == {"2026-09": 1}


def test_a_full_export_removes_what_the_warehouse_no_longer_has(fx: Fixture, tmp_path: Path) -> None:
    practice(fx)
    export_parquet(fx.wh, tmp_path / "lake")
    with fx.wh.transaction() as cur:
        cur.execute("DELETE FROM appointments WHERE appointment_id = 'a1'")
    export_parquet(fx.wh, tmp_path / "lake")
    assert files(tmp_path / "lake", "appointments") == ["month=2026-10/data_0.parquet"]
    assert read_manifest(tmp_path / "lake")["tables"]["appointments"]["months"] == {"2026-10": 1}


def test_refusals_are_clear(fx: Fixture, tmp_path: Path) -> None:
    practice(fx)
    with pytest.raises(ExportError, match="holds no clinic-kpis export"):
        export_parquet(fx.wh, tmp_path / "new", months=["2026-10"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ExportError, match="is not empty and holds no clinic-kpis export"):
        export_parquet(fx.wh, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").exists()
    lake = tmp_path / "lake"
    export_parquet(fx.wh, lake)
    with pytest.raises(ExportError, match=r"month '2026-13': expected YYYY-MM"):
        export_parquet(fx.wh, lake, months=["2026-13"])

    manifest = json.loads((lake / MANIFEST).read_text(encoding="utf-8"))
    (lake / MANIFEST).write_text(json.dumps(manifest | {"time_zone": "Europe/Paris"}), encoding="utf-8")
    with pytest.raises(ExportError, match="in Europe/Paris, the warehouse .* in America/New_York: export every month"):
        export_parquet(fx.wh, lake, months=["2026-10"])
    with pytest.raises(SparkError, match="exported for a practice in Europe/Paris, the config says America/New_York"):
        SparkLake(lake, config=fx.wh.config)
    (lake / MANIFEST).write_text(json.dumps(manifest | {"schema_version": 99}), encoding="utf-8")
    with pytest.raises(SparkError, match="exported with schema version 99, this clinic-kpis reads version"):
        SparkLake(lake, config=fx.wh.config)
    (lake / MANIFEST).write_text("{}", encoding="utf-8")
    with pytest.raises(ExportError, match="not a clinic-kpis parquet export"):
        read_manifest(lake)


def test_the_export_command(fx: Fixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    practice(fx)
    fx.close()
    lake = tmp_path / "lake"
    done = run_cli(capsys, "export", "--parquet", str(lake), "--db", str(fx.path))
    assert done.code == 0, done.err
    assert "appointments" in done.out and "2026-09 .. 2026-10" in done.out
    assert f"to {lake}" in done.out and f"(schema version {latest_schema_version()})" in done.out
    again = run_cli(capsys, "export", "--parquet", str(lake), "--db", str(fx.path), "--month", "2026-10")
    assert again.code == 0 and "2026-09" not in again.out.split("appointments")[1].splitlines()[0]
    bad = run_cli(capsys, "export", "--parquet", str(lake), "--db", str(fx.path), "--month", "Oct")
    assert bad.code == 1 and bad.err.strip() == "error: month 'Oct': expected YYYY-MM, e.g. 2026-09"
    assert run_cli(capsys, "export", "--db", str(fx.path)).code == 2  # --parquet is required
