"""Portability: every KPI's SQL is written for Spark and Postgres, parses back, and runs on DuckDB.

Snapshots of a few compiled queries live in tests/kpis/snapshots/<dialect>/<kpi>.sql; set
CLINIC_KPIS_UPDATE_SNAPSHOTS=1 to rewrite them after an intended change, and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlglot

from kpis.catalog import shipped_specs
from tests.kpis.builder import Fixture
from tests.kpis.test_revenue_cycle import claims

SNAPSHOTS = Path(__file__).parent / "snapshots"
SNAPSHOT_KPIS = ("no_show_rate", "visit_cycle_time", "days_in_ar", "third_next_available")


@pytest.mark.parametrize("dialect", ["spark", "postgres", "duckdb"])
def test_every_kpi_transpiles_and_parses_back(fx: Fixture, dialect: str) -> None:
    for spec in shipped_specs().values():
        for by in (None, spec.dimensions[0]):
            sql = fx.wh.sql(spec.id, by=by, dialect=dialect, start="2026-01", end="2026-03")
            parsed = sqlglot.parse_one(sql, read=dialect)
            assert parsed.find(sqlglot.exp.Select) is not None, spec.id
            assert "GROUP BY ALL" not in sql.upper(), spec.id
            if dialect == "spark":
                assert "PERCENTILE_CONT(" not in sql and "PERCENTILE_APPROX" not in sql.upper(), spec.id
                if spec.kind == "aggregate" and spec.value.agg in ("median", "p90"):
                    assert "PERCENTILE(" in sql, spec.id


def test_the_sql_shown_is_the_sql_that_runs(fx: Fixture) -> None:
    """Running wh.sql() text on the warehouse gives the numbers compute() reports."""
    claims(fx)
    for kpi in ("denial_rate", "clean_claim_rate", "charge_lag"):
        sql = fx.wh.sql(kpi, by="payer", start="2026-10", end="2026-10")
        ran = fx.wh.cursor().execute(sql).df().set_index("payer")
        computed = fx.wh.compute(kpi, start="2026-10", end="2026-10", by="payer").set_index("payer")
        for payer, row in ran.iterrows():
            assert row["n"] == computed.loc[payer, "n"], (kpi, payer)
            assert row["value"] == pytest.approx(computed.loc[payer, "value"], nan_ok=True), (kpi, payer)


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "postgres"])
@pytest.mark.parametrize("kpi", SNAPSHOT_KPIS)
def test_compiled_sql_snapshots(fx: Fixture, kpi: str, dialect: str) -> None:
    sql = fx.wh.sql(kpi, by="location", dialect=dialect, start="2026-01", end="2026-02") + "\n"
    path = SNAPSHOTS / dialect / f"{kpi}.sql"
    if os.environ.get("CLINIC_KPIS_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with CLINIC_KPIS_UPDATE_SNAPSHOTS=1"
    assert sql == path.read_text(encoding="utf-8")
