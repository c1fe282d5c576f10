"""A file's records counted once each, whether its records have one row or several.

Why: `Loader._counts` finds each record's outcome from its rows' (the record is inserted if its
first row is, updated if any row changed, ...) by aggregating the outcome rows per record. A
file whose rows are one counted target's, one row per record (a FHIR Appointment export, in
chunks), has nothing to aggregate: each record's outcome is its row's, counted as it is. Both
ways must give the same balance: read = inserted + updated + unchanged + stale + waiting + rejected.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.adapters import fhir
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load, loader_statements
from tests.ingest.test_chunked import _appointment


def _count_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The loader's counting statements, from now on in this test."""
    return loader_statements(monkeypatch, lambda sql: sql.startswith("WITH o AS"))


@pytest.mark.parametrize("chunk_lines", [2, 10**9])
def test_records_of_one_row_each_are_counted_without_aggregating(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chunk_lines: int
) -> None:
    monkeypatch.setattr(fhir, "CHUNK_LINES", chunk_lines)
    statements = _count_statements(monkeypatch)
    first, second = tmp_path / "a" / "Appointment.ndjson", tmp_path / "b" / "Appointment.ndjson"
    for path, lines in (
        (first, [_appointment("count-a1"), _appointment("count-a2"), _appointment("count-a3")]),
        (
            second,
            [
                _appointment("count-a1"),  # unchanged
                _appointment("count-a2", minutesDuration=30),  # updated
                _appointment("count-a4"),  # inserted
                _appointment("count-a5", status="later"),  # rejected: unknown status
                "{not json",  # rejected: no row at all
                _appointment("count-a4"),  # the same key again, agreeing: unchanged
            ],
        ),
    ):
        path.parent.mkdir()
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (a,) = load(warehouse, first)
    (b,) = load(warehouse, second)
    assert (a.read, a.inserted) == (3, 3)
    assert (b.read, b.inserted, b.updated, b.unchanged, b.stale, b.waiting, b.rejected) == (6, 1, 1, 2, 0, 0, 2)
    assert len(statements) == 2 and not any("GROUP BY" in sql for sql in statements)


def test_records_of_several_rows_are_counted_per_record(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """An 837's claims and their lines: a record's lines do not count as records of their own."""
    statements = _count_statements(monkeypatch)
    (march,) = load(warehouse, FIXTURES / "x12" / "claims_2025-03.837")
    assert (march.read, march.inserted) == (2, 2)
    assert statements and all("GROUP BY _pos" in sql for sql in statements)
