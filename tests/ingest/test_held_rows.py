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

When neither way finds any row of the file, the stage merges nothing: the staged rows are read as
they are (`_cN` a view of them for a target that derives no column), so whether a file holds a
row must be decided over all its rows, not over a chunk of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from ingest import load as load_module
from ingest.adapters import fhir
from ingest.load import KEY_SEPARATOR, q, read_schema
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load, loader_statements, rows, snapshot

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
    `record_versions` or their tables' rows, and without copying them: `_cN` is a view of the
    staged rows; the same file loaded again, its rows held, reads their versions."""
    stages = _stages(monkeypatch)
    march, april = FIXTURES / "x12" / "claims_2025-03.837", FIXTURES / "x12" / "claims_2025-04.837"
    assert load(warehouse, march)[0].inserted == 2

    def made(table: str, kind: str) -> list[str]:  # the stage's `_cN` of the table, as a view or a table
        return [
            sql
            for name, ran in stages
            if name == table
            for sql in ran
            if sql.startswith(f"CREATE OR REPLACE {kind} _c")
        ]

    stages.clear()
    (result,) = load(warehouse, april)
    assert (result.read, result.inserted, result.rejected, result.derived) == (3, 2, 1, 2)
    for table in ("claims", "claim_lines"):
        (view,) = made(table, "TEMP VIEW")
        assert not made(table, "TEMP TABLE") and "record_versions" not in view and "main." not in view, table
    # the charges the replacement (170 for 150) and the void (of 80) post after March's
    charges = "SELECT claim_id, amount FROM ledger WHERE entry_type = 'charge' ORDER BY claim_id, posted_date"
    assert rows(warehouse, charges) == [
        ("C100", Decimal("150.00")),
        ("C100", Decimal("20.00")),
        ("C101", Decimal("80.00")),
        ("C101", Decimal("-80.00")),
    ]
    stages.clear()
    (again,) = load(warehouse, march, force=True)
    assert (again.read, again.unchanged) == (2, 2)
    (copied,) = made("claims", "TEMP TABLE")
    assert "record_versions" in copied and not made("claims", "TEMP VIEW")


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


def _practitioner(id_: str, npi: str, name: str) -> str:
    identifier = [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]
    return json.dumps({"resourceType": "Practitioner", "id": id_, "identifier": identifier, "name": [{"text": name}]})


@pytest.mark.parametrize("chunk_lines", [1, 10**9])
def test_a_file_of_held_and_new_rows_merges_the_held_ones(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chunk_lines: int
) -> None:
    """Whether a file's rows are held is looked up for the whole file, not per chunk: a file whose
    first record's row is held and whose later ones are new (in chunks of a line, and whole)
    updates the held row and inserts the new ones, each key once; a file of new rows only (its
    `_cN` a view of the staged rows) loads them as given."""
    monkeypatch.setattr(fhir, "CHUNK_LINES", chunk_lines)
    stages = _stages(monkeypatch)
    new, mixed = tmp_path / "new" / "Practitioner.ndjson", tmp_path / "mixed" / "Practitioner.ndjson"
    for path, lines in (
        (new, [_practitioner("pr-a", "1000000001", "Ann Held"), _practitioner("pr-b", "1000000002", "Bo Held")]),
        (
            mixed,
            [
                _practitioner("pr-a", "1000000001", "Ann Renamed"),  # held, changed
                _practitioner("pr-c", "1000000003", "Cy New"),
                _practitioner("pr-b", "1000000002", "Bo Held"),  # held, unchanged
                _practitioner("pr-d", "1000000004", "Di New"),
            ],
        ),
    ):
        path.parent.mkdir()
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (first,) = load(warehouse, new)
    assert (first.read, first.inserted) == (2, 2)
    assert [name for name, ran in stages if any(sql.startswith("CREATE OR REPLACE TEMP VIEW _c") for sql in ran)] == [
        "providers",
        "source_references",
    ]
    stages.clear()
    (second,) = load(warehouse, mixed)
    assert (second.read, second.inserted, second.updated, second.unchanged) == (4, 2, 1, 1)
    assert not [name for name, ran in stages if any(sql.startswith("CREATE OR REPLACE TEMP VIEW _c") for sql in ran)]
    assert rows(warehouse, "SELECT provider_id, name, npi FROM providers ORDER BY npi") == [
        ("1000000001", "Ann Renamed", "1000000001"),
        ("1000000002", "Bo Held", "1000000002"),
        ("1000000003", "Cy New", "1000000003"),
        ("1000000004", "Di New", "1000000004"),
    ]
    assert rows(warehouse, "SELECT reference, provider_id FROM source_references ORDER BY 1") == [
        (f"Practitioner/pr-{c}", f"100000000{i}") for i, c in enumerate("abcd", 1)
    ]


def _statements_by_row_id(monkeypatch: pytest.MonkeyPatch, kept: Callable[[str], bool]) -> list[str]:
    """The loader's statements that `kept` picks, from now on in this test, with every non-empty
    table looked up by row id (the path whose reads these tests are about)."""
    monkeypatch.setattr(load_module, "HELD_BY_ROWID", 0)
    return loader_statements(monkeypatch, kept)


def _stages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Each stage (`Loader._stage`) from now on in this test, with every non-empty table looked up
    by row id: the table it stages and the statements it ran."""
    statements = _statements_by_row_id(monkeypatch, lambda sql: True)
    stages: list[tuple[str, list[str]]] = []
    original = load_module.Loader._stage

    def stage(self: load_module.Loader, slot: load_module._Slot) -> str:
        start = len(statements)
        try:
            return original(self, slot)
        finally:
            stages.append((slot.target.table, statements[start:]))

    monkeypatch.setattr(load_module.Loader, "_stage", stage)
    return stages
