"""A tiny warehouse per test: typed rows inserted into the real canonical tables of a real file.

Rows are plain dicts naming only what a case is about; the builder fills the other required
columns with neutral defaults. Instants may be written as naive local times
("2026-10-05 09:00"), read in the practice time zone as the exports would state them.

While `Fixture.spark` holds a Spark session (tests/kpis/test_on_spark.py sets it), every
fixture's KPI methods answer from Spark instead (see `OnSpark`), so the same hand-computed
cases check both engines.
"""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kpis import Warehouse
from kpis.config import load_config
from kpis.export import export_parquet
from kpis.spark import SparkLake

TZ = "America/New_York"
P1, P2 = "1000000001", "1000000002"

_DEFAULTS: dict[str, dict[str, Any]] = {
    "appointments": {
        "source": "fhir",
        "location_id": "EAST",
        "provider_id": P1,
        "scheduled_minutes": 20,
        "status": "fulfilled",
    },
    "encounters": {"source": "fhir", "location_id": "EAST", "provider_id": P1, "status": "finished"},
    "calls": {"source": "asterisk", "queue": "appointments", "outcome": "answered", "wait_seconds": 0},
    "claims": {"source": "x12", "frequency_code": "1", "location_id": "EAST", "provider_id": P1, "payer_id": "PAY1"},
    "remittances": {"source": "x12", "claim_status_code": "1", "payer_id": "PAY1"},
    "remittance_adjustments": {"source": "x12"},
    "ledger": {"source": "x12", "location_id": "EAST", "provider_id": P1, "payer_id": "PAY1"},
    "referrals": {"source": "fhir", "location_id": "EAST", "referring_provider_id": P1, "status": "sent"},
    "portal_messages": {"source": "csv", "location_id": "EAST", "provider_id": P1},
    "slots": {"source": "fhir", "provider_id": P1, "location_id": "EAST", "minutes": 20, "status": "free"},
    "locations": {"source": "test"},
    "providers": {"source": "test"},
    "payers": {"source": "test"},
}
_KEYS = {
    "appointments": "appointment_id",
    "encounters": "encounter_id",
    "calls": "call_id",
    "claims": "submission_id",
    "remittances": "remittance_id",
    "ledger": "entry_id",
    "referrals": "referral_id",
    "portal_messages": "message_id",
    "slots": "slot_id",
}
_REMIT_STATUS = {"1": "paid", "2": "paid", "3": "paid", "4": "denied", "22": "reversed"}
_INSTANT_SUFFIXES = ("_at", "scheduled_start")


class Fixture:
    """A warehouse file under `tmp_path` and helpers to fill it."""

    spark: Any = None  # a Spark session: the KPI methods of `wh` then run on Spark

    def __init__(self, tmp_path: Path, config_text: str | None = None) -> None:
        self.path = tmp_path / "fixture.duckdb"
        config_path = None
        if config_text is not None:
            config_path = tmp_path / "clinic-kpis.toml"
            config_path.write_text(config_text, encoding="utf-8")
        self.config = load_config(config_path, db=self.path)
        self.tz = ZoneInfo(self.config.timezone)
        self.wh = Warehouse(self.path, config=self.config)
        if Fixture.spark is not None:
            self.wh = OnSpark(self.wh, Fixture.spark, tmp_path / "lake")
        self._ids = itertools.count(1)

    def add(self, table: str, *rows: dict[str, Any]) -> Fixture:
        """Insert rows (dicts of column -> value) into a canonical table, in one transaction."""
        batches: dict[tuple[str, ...], list[list[Any]]] = {}
        for row in rows:
            full = {**_DEFAULTS.get(table, {}), **row}
            key = _KEYS.get(table)
            if key and key not in full:
                full[key] = self._key(table, full)
            if table == "remittances":
                full.setdefault("status", _REMIT_STATUS.get(full["claim_status_code"], "other"))
            if table == "remittance_adjustments" and "seq" not in full:
                full["seq"] = next(self._ids)
            batches.setdefault(tuple(full), []).append([self._value(c, v) for c, v in full.items()])
        with self.wh.transaction() as cur:
            for columns, values in batches.items():
                marks = ", ".join("?" for _ in columns)
                cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
        return self

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table as the warehouse holds it (what SQL sees), as plain dicts."""
        cur = self.wh.cursor().execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]

    def local(self, text: str) -> datetime:
        """A naive local time as an aware instant in the practice time zone."""
        return datetime.fromisoformat(text).replace(tzinfo=self.tz)

    def _key(self, table: str, row: dict[str, Any]) -> str:
        if table == "claims":
            return f"{row['claim_id']}|{row['frequency_code']}|{row['submitted_at']}"
        return f"{table[:3]}{next(self._ids)}"

    def _value(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column.endswith(_INSTANT_SUFFIXES) and isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=self.tz)
        if column.endswith("_date") and isinstance(value, str):
            return date.fromisoformat(value)
        if isinstance(value, float):
            return Decimal(str(value))
        return value

    def close(self) -> None:
        self.wh.close()


class OnSpark:
    """A fixture's warehouse whose KPI methods answer from Spark, over a Parquet export of it.

    Rows still go into the DuckDB file (`Fixture.add`, `transaction`, `cursor`). A KPI call
    after any such access exports the file again (so Spark sees every row added, and not the
    rows deleted) and opens a new `SparkLake` over the export.
    """

    FROM_SPARK = frozenset(
        {"compute", "compute_groupings", "explain", "drivers", "drivers_by", "ar_aging", "dimension_values", "data_end"}
    )

    def __init__(self, duckdb: Warehouse, spark: Any, directory: Path) -> None:
        self.duckdb, self.spark, self.directory = duckdb, spark, directory
        self._lake: SparkLake | None = None

    def __getattr__(self, name: str) -> Any:
        if name not in self.FROM_SPARK:
            self._lake = None  # the warehouse may change through what is handed out
            return getattr(self.duckdb, name)
        if self._lake is None:
            export_parquet(self.duckdb, self.directory)
            self._lake = SparkLake(self.directory, config=self.duckdb.config, spark=self.spark)
        return getattr(self._lake, name)
