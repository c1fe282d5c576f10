"""The data views of the API: dimension values, ingest runs, rejects, coverage and the catalog."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kpis.errors import ClinicKpisError
from tests.kpis.builder import P1, P2, Fixture


def test_dimension_values_come_from_reference_tables_and_facts(tmp_path: Path) -> None:
    fx = Fixture(tmp_path, config_text='[locations]\nEAST = "Eastside Family Medicine"\n')
    fx.add("locations", {"location_id": "EAST", "name": "East"}, {"location_id": "WEST", "name": "Westgate"})
    fx.add("providers", {"provider_id": P1, "name": "Dr. Ada Park"})
    fx.add("payers", {"payer_id": "PAY1", "name": "Acme Health", "payer_class": "commercial"})
    fx.add(
        "appointments",
        {"scheduled_start": "2026-10-01 09:00", "location_id": "NORTH", "provider_id": P2, "is_new_patient": True},
        {"scheduled_start": "2026-10-01 10:00", "visit_type": "annual", "is_new_patient": False},
    )
    fx.add("calls", {"entered_at": "2026-10-01 09:00", "queue": "billing"})
    locations = fx.wh.dimension_values("location")
    assert dict(zip(locations["id"], locations["label"], strict=True)) == {
        "EAST": "Eastside Family Medicine",  # the config's display name wins
        "NORTH": "NORTH",  # only seen in the facts
        "WEST": "Westgate",
    }
    providers = fx.wh.dimension_values("provider")
    assert dict(zip(providers["id"], providers["label"], strict=True)) == {P1: "Dr. Ada Park", P2: P2}
    assert fx.wh.dimension_values("payer_class")["id"].tolist() == ["commercial"]
    assert fx.wh.dimension_values("new_patient")["label"].tolist() == ["established", "new"]
    assert fx.wh.dimension_values("queue")["id"].tolist() == ["billing"]
    assert fx.wh.dimension_values("visit_type")["id"].tolist() == ["annual"]
    with pytest.raises(ClinicKpisError, match="unknown dimension 'site'"):
        fx.wh.dimension_values("site")
    fx.close()


def test_ingest_runs_newest_first_and_rejects_in_file_order(fx: Fixture) -> None:
    cur = fx.wh.cursor()
    for started, path in ((datetime(2026, 10, 1, tzinfo=UTC), "a.csv"), (datetime(2026, 10, 2, tzinfo=UTC), "b.csv")):
        cur.execute(
            "INSERT INTO ingest_runs (started_at, file_path, rows_read, rows_inserted, rows_rejected, status) "
            "VALUES (?, ?, 3, 1, 2, 'succeeded')",
            [started, path],
        )
    for run, position in ((1, 7), (1, 3), (2, 1)):
        cur.execute(
            "INSERT INTO rejects (run_id, file_path, position_kind, position, field, check_name, reason) "
            "VALUES (?, 'a.csv', 'line', ?, 'start', 'required', 'start is missing')",
            [run, position],
        )
    assert fx.wh.ingest_runs()["file_path"].tolist() == ["b.csv", "a.csv"]
    assert fx.wh.rejects()["position"].tolist() == [3, 7, 1]
    assert fx.wh.rejects(run_id=1, limit=1)["position"].tolist() == [3]


def test_coverage_counts_rows_per_source_and_local_month(fx: Fixture) -> None:
    """A call at 2026-11-01 03:00 UTC is still October in New York."""
    fx.add(
        "calls",
        {"entered_at": datetime(2026, 11, 1, 3, 0, tzinfo=UTC)},
        {"entered_at": "2026-10-05 09:00"},
        {"entered_at": "2026-11-05 09:00"},
    )
    fx.add("ledger", {"entry_type": "charge", "amount": 10.0, "posted_date": "2026-10-03"})
    frame = fx.wh.coverage()
    phones = frame[frame["domain"] == "phones"]
    assert phones["period_start"].dt.strftime("%Y-%m").tolist() == ["2026-10", "2026-11"]
    assert phones["rows"].tolist() == [2, 1] and (phones["source"] == "asterisk").all()
    assert str(phones["last_event_at"].iloc[0]) == "2026-10-31 23:00:00"
    ledger = frame[frame["table_name"] == "ledger"]
    assert (ledger["domain"].iloc[0], ledger["rows"].iloc[0]) == ("revenue_cycle", 1)
    assert list(frame.columns[:5]) == ["domain", "source", "period_start", "rows", "last_event_at"]


def test_catalog_entries_carry_what_presentation_needs(fx: Fixture) -> None:
    spec = {s.id: s for s in fx.wh.catalog()}["days_in_ar"]
    assert (spec.unit, spec.fmt, spec.better, spec.domain, spec.headline) == (
        "days",
        "num1",
        "lower",
        "revenue_cycle",
        True,
    )
    assert spec.options["preset"] == "mgma" and "location" in spec.dimensions
    assert spec.target == 40 and spec.red == 50 and "AAFP" in spec.target_source
    assert "MGMA" in spec.authority and spec.formula and spec.event_time


def test_data_end_is_the_last_day_any_data_covers(fx: Fixture) -> None:
    assert fx.wh.data_end() is None
    fx.add("calls", {"entered_at": "2026-10-05 09:00"})
    fx.add("ledger", {"entry_type": "charge", "amount": 1.0, "posted_date": "2026-10-09"})
    assert str(fx.wh.data_end()) == "2026-10-09"
