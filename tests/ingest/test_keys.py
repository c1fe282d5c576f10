"""The fact tables' keys, kept unique by the load path without a key index (migration 009).

Why: DuckDB holds the key index of the rows a transaction adds in memory until it commits and
cannot spill it (~55 bytes a new key: 17.3 M calls of a 10 M practice's queue_log did not fit
`[ingest] memory_limit`), so the large tables have none; `table_keys` declares their keys and
the loader inserts a key only if neither the table nor the file has it already. These tests hold
it to that: loads again, `--force`, files overlapping what is loaded, and two targets of one
phase that would write the same key.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from ingest.batch import Batch, Phase, Target
from ingest.errors import IngestError
from ingest.load import Loader, read_schema
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load, rows

FACT_TABLES = {
    "appointments",
    "encounters",
    "slots",
    "calls",
    "portal_messages",
    "referrals",
    "claims",
    "claim_lines",
    "remittances",
    "remittance_adjustments",
    "ledger",
}
FOLDERS = ("fhir", "vendor", "x12", "billing", "phones", "phones_csv", "portal", "referrals")


def _repeated_keys(wh: Warehouse, keyed: dict[str, list[str]]) -> dict[str, int]:
    found = {}
    for table, key in keyed.items():
        columns = ", ".join(f'"{k}"' for k in key)
        ((n,),) = rows(wh, f"SELECT count(*) FROM (SELECT {columns} FROM {table} GROUP BY ALL HAVING count(*) > 1)")
        found[table] = n
    return found


def _overlapping(source: Path, target: Path, keep: slice) -> Path:
    """A file holding part of `source`'s records again (its header, if a CSV, kept)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[:1] if source.suffix == ".csv" else []
    body = lines[1:] if header else lines
    target.write_text("".join(header + body[keep]), encoding="utf-8")
    return target


def test_the_fact_tables_have_no_key_index_and_keep_one_row_per_key(warehouse: Warehouse, tmp_path: Path) -> None:
    keyed = dict(rows(warehouse, "SELECT table_name, key_columns FROM table_keys"))
    assert set(keyed) >= FACT_TABLES
    assert (
        rows(
            warehouse,
            "SELECT DISTINCT table_name FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE') "
            "AND table_name IN (SELECT table_name FROM table_keys)",
        )
        == []
    )
    with warehouse.cursor() as cur:
        schema = read_schema(cur)
    assert {t: list(schema[t].key) for t in keyed} == keyed  # the loader reads the declared keys

    results = load(warehouse, *(FIXTURES / name for name in FOLDERS))
    assert all(r.status == "succeeded" for r in results), results
    counts = {t: rows(warehouse, f"SELECT count(*) FROM {t}")[0][0] for t in keyed}
    assert all(counts[t] for t in FACT_TABLES), counts

    again = load(warehouse, *(FIXTURES / name for name in FOLDERS), force=True)
    assert all(r.status == "succeeded" and not r.inserted for r in again), again
    # files holding records already loaded, under new names: every second vendor line, the
    # queue_log but its first line, the portal's messages but the last, the remittances again
    vendor = FIXTURES / "vendor/north_appointments_2025.csv"
    parts = [
        _overlapping(vendor, tmp_path / "vendor_again.csv", slice(None, None, 2)),
        _overlapping(FIXTURES / "phones/queue_log", tmp_path / "queue_log", slice(1, None)),
        _overlapping(FIXTURES / "portal/portal_messages.csv", tmp_path / "portal_again.csv", slice(None, -1)),
    ]
    (tmp_path / "remits_again.835").write_bytes((FIXTURES / "x12/remits_ACME01_2025-04.835").read_bytes() + b"\n")
    overlapping = load(warehouse, *parts, tmp_path / "remits_again.835")
    assert all(r.status == "succeeded" and r.read and not r.inserted for r in overlapping), overlapping

    assert {t: rows(warehouse, f"SELECT count(*) FROM {t}")[0][0] for t in keyed} == counts
    assert _repeated_keys(warehouse, keyed) == dict.fromkeys(keyed, 0)


def _ledger(kind: str) -> pa.Table:
    return pa.table(
        {
            "_pos": pa.array([1], pa.int64()),
            "entry_id": ["e1"],
            "posted_date": [date(2025, 3, 3)],
            "entry_type": [kind],
            "amount": pa.array([Decimal("10.00")], pa.decimal128(18, 2)),
            "source": ["test"],
        }
    )


def test_two_targets_of_a_phase_inserting_the_same_key_fail_the_file_in_one_sentence(warehouse: Warehouse) -> None:
    """Each target is staged against the table before the other writes: without a key index the
    loader itself must refuse a second row of the same key (before 009 the index raised a
    DuckDB constraint error and a traceback)."""
    phase = Phase([(Target("ledger"), _ledger("charge")), (Target("ledger"), _ledger("payment"))])
    batch = Batch(adapter="test", position_kind="line", phases=[phase])
    with (
        pytest.raises(IngestError, match=r"^line 1 writes the ledger row entry_id e1 twice"),
        warehouse.transaction(tracked=True) as cur,
    ):
        Loader(cur, read_schema(cur), "America/New_York").load(batch, 1, "two.csv")
    assert rows(warehouse, "SELECT count(*) FROM ledger") == [(0,)]
    # one of them alone loads
    alone = Batch(adapter="test", position_kind="line", phases=[Phase([(Target("ledger"), _ledger("charge"))])])
    with warehouse.transaction(tracked=True) as cur:
        counts = Loader(cur, read_schema(cur), "America/New_York").load(alone, 1, "one.csv")
    assert (counts.read, counts.inserted) == (1, 1)
