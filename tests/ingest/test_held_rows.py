"""The rows a file merges with, found by row id or by joining the whole table: the same load.

Why: a file whose rows are few beside a table's finds the warehouse rows of its keys by their
row ids first (`Loader._held_rows`, `HELD_BY_ROWID`; once for all the targets of a phase that
stage the same table, `Loader._held_once`: a transactions export's ledger rows), a larger one joins
the whole table. Both
ways must give the same rows, outcomes, counts, rejects and warnings, for new, unchanged,
changed, stale and waiting rows, and for rows derived after the file (ledger charges, references).

The row-id way looks up record versions only for the keys whose rows it found: a version is
written only with its row, and no row is deleted, so a key its table does not hold has no
version (`_held_rows`). Every version loaded here must therefore name a row of its table.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import load as load_module
from ingest.load import KEY_SEPARATOR, q, read_schema
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
        "versions_without_row": _versions_without_row(wh),
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


def _versions_without_row(wh: Warehouse) -> dict[str, int]:
    """Per table: the record versions whose key no row of the table holds."""
    schema = read_schema(wh.cursor())
    found = {}
    for (table,) in rows(wh, "SELECT DISTINCT table_name FROM record_versions ORDER BY 1"):
        key = f"concat_ws({KEY_SEPARATOR}, {', '.join(f'CAST(t.{q(k)} AS VARCHAR)' for k in schema[table].key)})"
        ((n,),) = rows(
            wh,
            f"SELECT count(*) FROM record_versions v WHERE v.table_name = ? "
            f"AND v.record_key NOT IN (SELECT {key} FROM main.{q(table)} t)",
            table,
        )
        found[table] = n
    return found


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
    # what the row-id way's version look-up relies on: no version without its row
    versions = whole["versions_without_row"]
    assert versions == by_rowid["versions_without_row"]
    assert set(versions) >= {"claims", "claim_lines", "remittances", "remittance_adjustments", "ledger"}
    assert not any(versions.values()), versions
    # the scenario holds what the two ways could differ on
    outcome = whole["results"]
    assert sum(r[3] for r in outcome) > 0 and sum(r[5] for r in outcome) > 0  # inserted, unchanged
    assert sum(r[4] for r in outcome) + sum(r[6] for r in outcome) > 0  # updated or stale
    assert sum(r[9] for r in outcome) > 0  # derived


def test_a_files_new_rows_read_no_record_versions(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """An 837 whose submissions are all new (a replacement and a void of claims another file
    loaded, and a new claim it rejects) stages its claims and lines without reading
    `record_versions`; the same file loaded again, its rows held, reads their versions."""
    staged = _statements_by_row_id(monkeypatch, lambda sql: sql.startswith("CREATE OR REPLACE TEMP TABLE _c"))
    march, april = FIXTURES / "x12" / "claims_2025-03.837", FIXTURES / "x12" / "claims_2025-04.837"
    assert load(warehouse, march)[0].inserted == 2

    def stages(table: str) -> list[str]:
        return [sql for sql in staged if f'FROM main."{table}" WHERE rowid IN' in sql]

    staged.clear()
    (result,) = load(warehouse, april)
    assert (result.read, result.inserted, result.rejected, result.derived) == (3, 2, 1, 2)
    for table in ("claims", "claim_lines"):
        assert stages(table) and not any("record_versions" in sql for sql in stages(table)), table
    # the charges the replacement (170 for 150) and the void (of 80) post after March's
    charges = "SELECT claim_id, amount FROM ledger WHERE entry_type = 'charge' ORDER BY claim_id, posted_date"
    assert rows(warehouse, charges) == [
        ("C100", Decimal("150.00")),
        ("C100", Decimal("20.00")),
        ("C101", Decimal("80.00")),
        ("C101", Decimal("-80.00")),
    ]
    staged.clear()
    (again,) = load(warehouse, march, force=True)
    assert (again.read, again.unchanged) == (2, 2)
    assert all("record_versions" in sql for sql in stages("claims")) and stages("claims")


def test_an_835s_ledger_entries_are_looked_up_only_for_payments_whose_remittance_is_held(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A payment's ledger entries are written only with its remittance (`Target.held_with`): a new
    835 does not look them up, and the same file again finds every entry (no second row of any)."""
    looked_up = _statements_by_row_id(
        monkeypatch, lambda sql: sql.startswith("CREATE OR REPLACE TEMP TABLE _w") and 'FROM main."ledger"' in sql
    )
    remits = FIXTURES / "x12" / "remits_ACME01_2025-04.835"
    load(warehouse, FIXTURES / "x12" / "claims_2025-03.837", FIXTURES / "x12" / "claims_2025-04.837")
    entries = "SELECT entry_id, entry_type, amount FROM ledger WHERE entry_type <> 'charge' ORDER BY entry_id"
    looked_up.clear()
    (first,) = load(warehouse, remits)
    written = rows(warehouse, entries)
    assert first.inserted == first.read > 0 and len(written) > first.read  # payments and adjustments
    (only_new,) = [sql for sql in looked_up if "WHERE NOT _exists" in sql]  # the 835's, not the charges'
    looked_up.clear()
    (again,) = load(warehouse, remits, force=True)
    assert (again.read, again.unchanged, again.inserted) == (first.read, first.read, 0)
    assert rows(warehouse, entries) == written
    assert len(rows(warehouse, "SELECT DISTINCT entry_id FROM ledger")) == len(rows(warehouse, "SELECT * FROM ledger"))


def _statements_by_row_id(monkeypatch: pytest.MonkeyPatch, kept: Callable[[str], bool]) -> list[str]:
    """The loader's statements that `kept` picks, from now on in this test, with every non-empty
    table looked up by row id (the path whose reads these tests are about)."""
    monkeypatch.setattr(load_module, "HELD_BY_ROWID", 0)
    statements: list[str] = []
    init = load_module.Loader.__init__

    class Recording:
        def __init__(self, cur: object) -> None:
            self._cur = cur

        def execute(self, sql: str, *args: object) -> object:
            if kept(sql):
                statements.append(sql)
            return self._cur.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._cur, name)

    monkeypatch.setattr(load_module.Loader, "__init__", lambda self, cur, *a, **k: init(self, Recording(cur), *a, **k))
    return statements
