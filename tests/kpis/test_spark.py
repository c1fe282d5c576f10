"""Spark equals DuckDB on the simulated practice: every KPI, month and grouping, every number.

The practice is exported as Parquet and computed by `SparkLake` in a session with Spark's
defaults for query execution (whole-stage code generation and adaptive execution on, as a
user's session has them); DuckDB computes the same request from the warehouse. Counts must be
equal, numerators, denominators and values equal to 1e-12 (relative), and the completeness
flags and definition labels the same. The command line is checked the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kpis.export import export_parquet
from kpis.results import all_results
from kpis.spark import SparkError, SparkLake
from tests.cli_helpers import run_cli
from tests.conftest import SimulatedPractice

KEYS = ["kpi_id", "period_start", "dimension", "dimension_value"]
FIRST, LAST = "2025-08", "2026-09"  # the 14 simulated months


@pytest.fixture
def lake(simulated_practice: SimulatedPractice, spark: Any, tmp_path: Path) -> SparkLake:
    with simulated_practice.open() as wh:
        export_parquet(wh, tmp_path / "lake")
        config = wh.config
    lake = SparkLake(tmp_path / "lake", config=config, spark=spark)
    lake.spark.conf.set("spark.sql.codegen.wholeStage", "true")  # tests/conftest.py turns them off
    lake.spark.conf.set("spark.sql.adaptive.enabled", "true")
    return lake


def assert_same_numbers(duckdb: pd.DataFrame, spark: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every row on both sides; n exactly equal; numerator, denominator, value equal to 1e-12."""
    both = duckdb.merge(spark, on=keys, how="outer", suffixes=("_duckdb", "_spark"), indicator=True)
    assert (both["_merge"] == "both").all(), both[both["_merge"] != "both"][keys]
    assert len(both) == len(duckdb) == len(spark)
    assert (both["n_duckdb"] == both["n_spark"]).all()
    for column in ("numerator", "denominator", "value"):
        a, b = both[f"{column}_duckdb"].astype(float), both[f"{column}_spark"].astype(float)
        same = np.isclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
        assert same.all(), both.loc[~same, [*keys, f"{column}_duckdb", f"{column}_spark"]]
    for column in ("complete", "definition"):
        assert (both[f"{column}_duckdb"] == both[f"{column}_spark"]).all(), column
    return both


def test_every_kpi_month_and_grouping_equals_duckdb(simulated_practice: SimulatedPractice, lake: SparkLake) -> None:
    with simulated_practice.open() as wh:
        expected = all_results(wh, start=FIRST, end=LAST)
        catalog = [s.id for s in wh.catalog()]
    got = all_results(lake, start=FIRST, end=LAST)
    both = assert_same_numbers(expected, got, KEYS)

    # the comparison has teeth: every KPI, all 14 months, the practice, 3 locations and the providers
    assert sorted(set(both["kpi_id"])) == sorted(catalog)
    assert both["period_start"].nunique() == 14
    assert set(both["dimension"].dropna()) == {"location", "provider"}
    assert both.loc[both["dimension"] == "location", "dimension_value"].nunique() == 3
    valued = both[both["value_duckdb"].notna()]
    assert len(valued) > 0.8 * len(both)
    assert set(valued["kpi_id"]) == set(catalog)


def test_weeks_and_time_zone_rules_on_the_practice(simulated_practice: SimulatedPractice, lake: SparkLake) -> None:
    """Weekly periods across the March DST change, by location: Monday weeks in local time."""
    request = {"start": "2026-02-23", "end": "2026-03-22", "grain": "week", "by": "location"}
    with simulated_practice.open() as wh:
        expected = wh.compute(**request)
    got = lake.compute(**request)
    assert_same_numbers(expected, got, ["kpi_id", "period_start", "location"])
    weeks = sorted(got["period_start"].dt.date.unique())
    assert [d.isoformat() for d in weeks] == ["2026-02-23", "2026-03-02", "2026-03-09", "2026-03-16"]


def test_the_scorecard_on_spark(simulated_practice: SimulatedPractice, lake: SparkLake) -> None:
    """What the dashboard's Overview and the report read (the comparison methods) comes out the same."""
    with simulated_practice.open() as wh:
        expected, movers = wh.scorecard(period="2026-09"), wh.movers(period="2026-09")
    got = lake.scorecard(period="2026-09")
    pd.testing.assert_frame_equal(expected, got, check_dtype=False, rtol=1e-12)
    assert len(got) == len(lake.catalog()) and got["value"].notna().sum() > 15
    assert repr(lake.movers(period="2026-09")) == repr(movers)
    with pytest.raises(SparkError, match="a Parquet export, read-only here: record changes in the warehouse"):
        lake.add_change("2026-09-01", "Reminder calls", ["no_show_rate"])


def test_the_command_line_on_spark_prints_what_duckdb_prints(
    simulated_practice: SimulatedPractice, spark: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`export`, then `kpis --engine spark` (in this process, on the shared session) against `kpis`."""
    where = ["--config", str(simulated_practice.config), "--db", str(simulated_practice.db)]
    exported = run_cli(capsys, "export", "--parquet", str(tmp_path / "lake"), *where)
    assert exported.code == 0, exported.err
    assert "appointments" in exported.out and "schema version" in exported.out
    kpis = ["no_show_rate", "visit_cycle_time", "days_in_ar", "third_next_available"]  # custom ones included
    request = ["--month", "2026-09", "--by", "location", "--format", "json", *(f"--kpi={k}" for k in kpis)]
    duckdb = run_cli(capsys, "kpis", *where, *request)
    on_spark = run_cli(capsys, "kpis", *where, *request, "--engine", "spark", "--parquet", str(tmp_path / "lake"))
    assert on_spark.code == 0, on_spark.err
    a = pd.DataFrame(json.loads(duckdb.out))
    b = pd.DataFrame(json.loads(on_spark.out))
    assert len(a) == len(b) == 4 * 3 and a["value"].notna().sum() > 10
    assert_same_numbers(a, b, ["kpi_id", "period_start", "location"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "--engine spark reads a Parquet export: give --parquet DIR"),
        (["--parquet", "lake"], "--parquet is read by --engine spark"),
        (["--engine", "spark", "--parquet", "nowhere"], "nowhere holds no clinic-kpis export"),
    ],
)
def test_engine_options_are_checked(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    done = run_cli(capsys, "kpis", *args)
    assert done.code == 1
    assert done.err.count("\n") == 1 and message in done.err
