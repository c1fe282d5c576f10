"""The rows a file merges with, found by row id or by joining the whole table: the same load.

Why: a file whose rows are few beside a table's finds the warehouse rows of its keys by their
row ids first (`Loader._held_rows`, `HELD_BY_ROWID`; once for all the targets of a phase that
stage the same table, `Loader._held_once`: a transactions export's ledger rows), a larger one joins
the whole table. Both
ways must give the same rows, outcomes, counts, rejects and warnings, for new, unchanged,
changed, stale and waiting rows, and for rows derived after the file (ledger charges, references).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import load as load_module
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load, rows, snapshot

# every fixture folder that loads (the corrupted files fail on purpose, in test_corrupted)
FOLDERS = ("fhir", "x12", "billing", "vendor", "portal", "referrals", "phones", "phones_csv")


def _files() -> list[Path]:
    return [path for folder in FOLDERS for path in sorted((FIXTURES / folder).iterdir())]


def _run(wh: Warehouse) -> dict:
    """Every fixture file in order, then again with --force in reverse order (so that rows are
    held, unchanged or older than what is loaded), then the X12 files newest first."""
    results = []
    files = _files()
    for path in files:
        results += load(wh, path)
    for path in reversed(files):
        results += load(wh, path, force=True)
    for path in sorted((FIXTURES / "x12").iterdir(), reverse=True):
        results += load(wh, path, force=True)
    return {
        "results": [
            (r.path, r.status, r.read, r.inserted, r.updated, r.unchanged, r.stale, r.waiting, r.rejected, r.derived)
            for r in results
        ],
        "messages": [(r.message, r.warnings) for r in results],
        "tables": snapshot(wh),
        "rejects": rows(
            wh,
            "SELECT file_path, position_kind, position, target_table, field, check_name, reason, value_masked, "
            "record_masked FROM rejects ORDER BY ALL",
        ),
    }


def test_rows_held_by_row_id_load_as_the_whole_table_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_warehouse_file: Path
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    outcomes = {}
    for name, factor in (("whole", 10**9), ("rowid", 0)):  # 0: every non-empty table by row id
        monkeypatch.setattr(load_module, "HELD_BY_ROWID", factor)
        path = tmp_path / f"{name}.duckdb"
        path.write_bytes(empty_warehouse_file.read_bytes())
        with Warehouse(path) as wh:
            outcomes[name] = _run(wh)
    whole, by_rowid = outcomes["whole"], outcomes["rowid"]
    assert by_rowid["results"] == whole["results"]
    assert by_rowid["messages"] == whole["messages"]
    assert by_rowid["rejects"] == whole["rejects"]
    assert by_rowid["tables"] == whole["tables"]
    # the scenario holds what the two ways could differ on
    outcome = whole["results"]
    assert sum(r[3] for r in outcome) > 0 and sum(r[5] for r in outcome) > 0  # inserted, unchanged
    assert sum(r[4] for r in outcome) + sum(r[6] for r in outcome) > 0  # updated or stale
    assert sum(r[9] for r in outcome) > 0  # derived
