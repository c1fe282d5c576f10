"""Issue 19: loads that never lose, regress or leak, the way practices really load their exports.

The central check: a simulated practice's FHIR, X12 and CSV exports loaded in several orders and
in separate runs (one file per run, months out of order, the Practitioner export only once at
the start, or last) give a warehouse equal, table by table, to one load of everything. Then: an
older export loaded after a newer one keeps the newer state and says so.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ingest import IngestError, ingest_paths
from ingest.adapters.fhir import REFERENCES
from ingest.context import Lookup
from ingest.load import read_schema
from kpis.config import load_config
from kpis.warehouse import Warehouse
from tests.cli_helpers import run_cli
from tests.conftest import clinic_kpis
from tests.ingest.conftest import FIXTURES, SECRET, load, load_one, rows

# Two months of a small practice: every kind of export, a few thousand records, seconds to load.
SAMPLE = ("--months", "2", "--providers", "6", "--scale", "0.5", "--end", "2026-08-31", "--seed", "7")
CONFIG = '[practice]\nname = "Riverbend"\ntimezone = "America/New_York"\n'
# The date that places each FHIR resource in a monthly export (the simulator's deliberately
# broken records may lack it: they go with the first month).
MONTH_OF = {
    "Appointment": lambda r: r.get("start"),
    "Encounter": lambda r: (r.get("period") or {}).get("start"),
    "Slot": lambda r: r.get("start"),
    "DocumentReference": lambda r: r.get("date"),
    "ServiceRequest": lambda r: r.get("authoredOn"),
    "Task": lambda r: r.get("authoredOn"),
}
# Columns that say which run or file wrote a row, not what the warehouse knows.
LINEAGE = {"ingest_run_id", "set_at", "file_path", "position_kind", "position", "reject_id", "run_id"}


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The practice's exports as they arrive month by month: FHIR resources in monthly files."""
    directory = tmp_path_factory.mktemp("incremental")
    (directory / "clinic-kpis.toml").write_text(CONFIG, encoding="utf-8")
    done = clinic_kpis("sample", "--out", "exports", "--workers", "1", *SAMPLE, cwd=directory)
    assert done.returncode == 0, done.stderr
    fhir = directory / "exports" / "fhir"
    for kind, month_of in MONTH_OF.items():
        path = fhir / f"{kind}.ndjson"
        by_month: dict[str, list[str]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            by_month.setdefault((month_of(json.loads(line)) or "2026-07")[:7], []).append(line)
        for month, lines in by_month.items():
            (fhir / month).mkdir(exist_ok=True)
            (fhir / month / f"{kind}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
        path.unlink()
    for extra in ("truth.json", "ASSUMPTIONS.md"):
        (directory / "exports" / extra).unlink()
    return directory / "exports"


def export_files(exports: Path) -> list[Path]:
    """Every export ingest loads (the practice's change_log.csv is read by `changes import`)."""
    return sorted(p for p in exports.rglob("*") if p.is_file() and p.name != "change_log.csv")


def month(path: Path) -> str | None:
    """The month a monthly export covers (from its folder or name), None for the others."""
    for part in (path.parent.name, path.stem.rsplit("_", 1)[-1]):
        if len(part) == 7 and part[4] == "-":
            return part
    return None


@pytest.fixture(scope="session")
def reference(exports: Path, empty_warehouse_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Everything loaded at once, in one run."""
    db = tmp_path_factory.mktemp("reference") / "all.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLINIC_KPIS_SECRET", SECRET)
        run_all(db, empty_warehouse_file, [[exports]])
    return db


def run_all(db: Path, template: Path, runs: list[list[Path]]) -> None:
    """Each run as a separate `clinic-kpis ingest`: the warehouse opened, the files loaded, closed."""
    shutil.copyfile(template, db)
    for paths in runs:
        with Warehouse(db, config=load_config(db=db)) as wh:
            results = ingest_paths(wh, list(paths))
        assert [r.path for r in results if r.status == "failed"] == []


def orders(exports: Path) -> Iterator[tuple[str, list[list[Path]]]]:
    files = export_files(exports)
    practitioner = next(p for p in files if p.name == "Practitioner.ndjson")
    rest = [p for p in files if p != practitioner]
    yield "reverse, one file per run", [[p] for p in reversed(files)]
    shuffled = random.Random(19).sample(rest, len(rest))
    yield "Practitioner once at the start, then one file per run", [[practitioner], *([p] for p in shuffled)]
    months = sorted({m for p in files if (m := month(p))})
    undated = [p for p in files if month(p) is None]
    yield (
        "months out of order, newest first",
        [undated, *([p for p in files if month(p) == m] for m in reversed(months))],
    )
    by_kind = {"csv": [], "x12": [], "other": []}
    for p in files:
        by_kind["csv" if p.suffix == ".csv" else "x12" if p.suffix in (".835", ".837") else "other"].append(p)
    yield "billing first, then the CSVs, then FHIR and phones", [by_kind["x12"], by_kind["csv"], by_kind["other"]]


def differences(a: Path, b: Path) -> dict[str, tuple[int, int]]:
    """Per table, rows of `a` missing from `b` and rows of `b` missing from `a` (lineage aside);
    the rejects by file name and position."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        tables = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'a' AND schema_name = 'main' ORDER BY 1"
            ).fetchall()
            if t not in ("ingest_runs", "schema_migrations")
        ]
        found = {}
        for table in tables:
            columns = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name = 'a' AND schema_name = 'main' "
                    "AND table_name = ? "
                    "ORDER BY column_index",
                    [table],
                ).fetchall()
                if c not in LINEAGE
            ]
            select = ", ".join(f'"{c}"' for c in columns)
            if table == "rejects":  # which file, not which path or run
                select += ", regexp_extract(file_path, '[^/]+/[^/]+$') AS file"
            query = "SELECT count(*) FROM (SELECT {s} FROM {x}.{t} EXCEPT ALL SELECT {s} FROM {y}.{t})"
            n = [
                con.execute(query.format(s=select, x=x, y=y, t=table)).fetchone()[0]
                for x, y in (("a", "b"), ("b", "a"))
            ]
            if any(n):
                found[table] = (n[0], n[1])
        return found
    finally:
        con.close()


ORDER_NAMES = [
    "reverse, one file per run",
    "Practitioner once at the start, then one file per run",
    "months out of order, newest first",
    "billing first, then the CSVs, then FHIR and phones",
]


@pytest.mark.parametrize("order", ORDER_NAMES)
def test_any_order_in_separate_runs_ends_as_one_load_of_everything(
    order: str,
    exports: Path,
    reference: Path,
    empty_warehouse_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    runs = dict(orders(exports))[order]
    assert sorted(p for run in runs for p in run) == export_files(exports)  # each file once
    db = tmp_path / "ordered.duckdb"
    run_all(db, empty_warehouse_file, runs)
    assert differences(reference, db) == {}
    with Warehouse(db, read_only=True) as wh:
        # nothing is left waiting or unresolved: every reference found its target
        assert rows(wh, "SELECT count(*) FROM waiting_rows") == [(0,)]
        for table, column in (("appointments", "provider_id"), ("slots", "location_id"), ("encounters", "provider_id")):
            assert rows(wh, f"SELECT count(*) FROM {table} WHERE source = 'fhir' AND {column} IS NULL") == [(0,)]
        assert rows(wh, "SELECT count(*) FROM appointments WHERE payer_ref IS NOT NULL AND payer_id IS NULL") == [(0,)]


# -- an older export after a newer one --------------------------------------------------------------

APPOINTMENT = {
    "resourceType": "Appointment",
    "id": "ap-1",
    "status": "booked",
    "start": "2026-09-28T09:00:00-04:00",
    "end": "2026-09-28T09:20:00-04:00",
    "created": "2026-09-01T10:00:00-04:00",
    "meta": {"lastUpdated": "2026-09-20T10:00:00-04:00"},
    "participant": [{"actor": {"reference": "Practitioner/pr-1"}}, {"actor": {"reference": "Location/EAST"}}],
}
NO_SHOW = {**APPOINTMENT, "status": "noshow", "meta": {"lastUpdated": "2026-09-28T17:00:00-04:00"}}


def monthly_exports(tmp_path: Path) -> Path:
    """`exports/2026-9` (the appointment booked) and `exports/2026-10` (the same one, a no-show)."""
    for folder, resource in (("2026-9", APPOINTMENT), ("2026-10", NO_SHOW)):
        (tmp_path / "exports" / folder).mkdir(parents=True)
        (tmp_path / "exports" / folder / "Appointment.ndjson").write_text(json.dumps(resource) + "\n")
    return tmp_path / "exports"


def test_a_stale_export_loaded_after_a_newer_one_keeps_the_newer(warehouse: Warehouse, tmp_path: Path) -> None:
    exports = monthly_exports(tmp_path)
    newer = load_one(warehouse, exports / "2026-10" / "Appointment.ndjson")
    older = load_one(warehouse, exports / "2026-9" / "Appointment.ndjson")
    assert (newer.inserted, older.read, older.updated, older.stale) == (1, 1, 0, 1)
    assert "stale: 1 record(s) older than the version already loaded, kept the newer" in older.message
    assert rows(warehouse, "SELECT status FROM appointments") == [("noshow",)]
    assert rows(warehouse, "SELECT rows_stale FROM ingest_runs WHERE run_id = ?", older.run_id) == [(1,)]


def test_a_folder_of_monthly_exports_keeps_the_newest_state(warehouse: Warehouse, tmp_path: Path) -> None:
    """`2026-10` sorts before `2026-9` as text; the versions decide, and the folder loads in month order."""
    results = load(warehouse, monthly_exports(tmp_path))
    assert [Path(r.path).parent.name for r in results] == ["2026-9", "2026-10"]
    assert rows(warehouse, "SELECT status FROM appointments") == [("noshow",)]


def test_the_older_yearly_csv_export_after_the_newer_is_stale(warehouse: Warehouse) -> None:
    """The vendor's 2025 export (taken in January 2026) after its 2026 export: V2 and V4 keep their 2026 state."""
    load_one(warehouse, FIXTURES / "vendor" / "north_appointments_2026.csv")
    newer = rows(warehouse, "SELECT appointment_id, status FROM appointments ORDER BY 1")
    older = load_one(warehouse, FIXTURES / "vendor" / "north_appointments_2025.csv")
    assert (older.inserted, older.stale) == (2, 2)  # V1 and V3 are only in the 2025 export
    kept = dict(rows(warehouse, "SELECT appointment_id, status FROM appointments ORDER BY 1"))
    assert {k: kept[k] for k, _ in newer} == dict(newer)


# -- references across runs --------------------------------------------------------------------------


def test_a_vendor_csv_loaded_before_the_claims_gets_its_payers_when_they_arrive(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    lines = (FIXTURES / "vendor" / "north_appointments_2025.csv").read_text().splitlines()
    export = tmp_path / "north.csv"
    export.write_text("\n".join([lines[0], lines[1].replace(",ACME01,", ",Acme Health,")]) + "\n")
    first = load_one(warehouse, export)
    assert rows(warehouse, "SELECT payer_id, payer_ref FROM appointments") == [(None, "Acme Health")]
    assert "refer to payers not loaded yet (e.g. Acme Health)" in first.warnings[0]
    claims = load_one(warehouse, FIXTURES / "x12" / "claims_2025-03.837")  # introduces ACME01 "ACME HEALTH"
    assert rows(warehouse, "SELECT payer_id FROM appointments") == [("ACME01",)]
    assert claims.derived >= 1


def test_a_vendor_appointments_payer_follows_a_rename_of_the_payer_it_resolved_to(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Only the rows that name a payer a run wrote, or whose payer it renamed, are computed again
    (`again_when`): a payer renamed away from the plan name the export wrote leaves it unresolved."""
    load_one(warehouse, FIXTURES / "x12" / "claims_2025-03.837")  # introduces ACME01 "ACME HEALTH"
    lines = (FIXTURES / "vendor" / "north_appointments_2025.csv").read_text().splitlines()
    export = tmp_path / "north.csv"
    export.write_text("\n".join([lines[0], lines[1].replace(",ACME01,", ",Acme Health,")]) + "\n")
    load_one(warehouse, export)
    assert rows(warehouse, "SELECT payer_id FROM appointments") == [("ACME01",)]
    payers = tmp_path / "payers.csv"
    header = "Id,NAME,OWNERSHIP,AMOUNT_COVERED,AMOUNT_UNCOVERED\n"
    payers.write_text(header + "ACME01,Acme Mutual,PRIVATE,0,0\n")
    renamed = load_one(warehouse, payers)
    assert rows(warehouse, "SELECT name FROM payers WHERE payer_id = 'ACME01'") == [("Acme Mutual",)]
    assert rows(warehouse, "SELECT payer_id, payer_ref FROM appointments") == [(None, "Acme Health")]
    assert renamed.derived == 1
    payers.write_text(header + "ACME01,ACME HEALTH,PRIVATE,0,0\n")
    load_one(warehouse, payers)
    assert rows(warehouse, "SELECT payer_id FROM appointments") == [("ACME01",)]


def test_appointments_get_their_provider_when_the_practitioners_arrive_in_a_later_run(warehouse: Warehouse) -> None:
    fhir = FIXTURES / "fhir"
    load(warehouse, fhir / "Appointment.ndjson", fhir / "Slot.ndjson", fhir / "Encounter.ndjson")
    assert rows(warehouse, "SELECT count(*) FROM appointments WHERE provider_id IS NOT NULL") == [(0,)]
    practitioners = load_one(warehouse, fhir / "Practitioner.ndjson")
    assert practitioners.derived > 0
    assert rows(warehouse, "SELECT provider_id FROM appointments WHERE appointment_id = 'a1'") == [("1111111111",)]
    assert rows(warehouse, "SELECT count(*) FROM slots WHERE provider_id IS NOT NULL") == [(0,)]  # no Schedule yet
    load_one(warehouse, fhir / "Schedule.ndjson")
    assert rows(warehouse, "SELECT provider_id, location_id FROM slots WHERE slot_id = 's1'") == [
        ("1111111111", "EAST")
    ]


def test_a_run_that_writes_providers_derives_again_only_the_rows_they_can_resolve(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """FHIR appointments whose Practitioners are not loaded: a vendor CSV bringing provider
    3333333333 resolves the one naming `Practitioner/3333333333` (the provider of that id); the
    others stay empty, and its run does not read them again (until their Practitioner comes), nor
    the slots waiting for their Schedule."""
    export = tmp_path / "Appointment.ndjson"
    named = {**APPOINTMENT, "id": "ap-npi", "participant": [{"actor": {"reference": "Practitioner/3333333333"}}]}
    export.write_text((FIXTURES / "fhir" / "Appointment.ndjson").read_text() + json.dumps(named) + "\n")
    load(warehouse, export, FIXTURES / "fhir" / "Slot.ndjson")  # and slots, with no Schedule yet
    assert rows(warehouse, "SELECT count(*) FROM appointments WHERE provider_id IS NULL") == [(7,)]
    vendor = load_one(warehouse, FIXTURES / "vendor" / "north_appointments_2025.csv")
    assert rows(
        warehouse, "SELECT appointment_id FROM appointments WHERE source = 'fhir' AND provider_id IS NOT NULL"
    ) == [("ap-npi",)]
    with warehouse.cursor() as cur:
        schema = read_schema(cur)
        # the six still empty, and the slots, are not among the rows a run that wrote no provider
        # of theirs reads again
        for reference in REFERENCES:
            assert cur.execute(reference.derivation(schema, vendor.run_id).sql).fetchall() == [], reference.target
    assert rows(warehouse, "SELECT count(*), count(provider_id), count(location_id) FROM slots") == [(4, 0, 0)]


def test_a_chart_note_loaded_before_its_visit_waits_for_it(warehouse: Warehouse) -> None:
    fhir = FIXTURES / "fhir"
    notes = load_one(warehouse, fhir / "DocumentReference.ndjson")
    assert (notes.waiting, notes.rejected) == (2, 0)  # e1's note and e404's
    load_one(warehouse, fhir / "Encounter.ndjson")
    assert rows(warehouse, "SELECT encounter_id, chart_closed_at IS NOT NULL FROM encounters ORDER BY 1") == [
        ("e1", True),
        ("e2", False),
    ]
    assert rows(warehouse, "SELECT record_key FROM waiting_rows") == [("fhir\x1fe404",)]


# -- plausible dates ----------------------------------------------------------------------------------


def test_dates_outside_the_plausible_range_are_quarantined_and_do_not_stretch_the_data(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Issue 19 item 9: one appointment dated 2999 moved the default window to 2998-2999, and a
    placeholder 1900-01-01 stretched the month slider back to 1900."""
    lines = (FIXTURES / "vendor" / "north_appointments_2025.csv").read_text().splitlines()
    typo = lines[1].replace("V1,03/14/2025", "T1,06/01/2999")
    placeholder = lines[2].replace("V2,12/30/2025", "T2,01/01/1900")
    export = tmp_path / "north.csv"
    export.write_text("\n".join([lines[0], lines[1], typo, placeholder]) + "\n")
    result = load_one(warehouse, export)
    assert (result.inserted, result.rejected) == (1, 2)
    latest = f"{date.today().year + 2}-12-31"
    reasons = rows(warehouse, "SELECT position, field, reason FROM rejects WHERE check_name = 'implausible_date'")
    assert (
        3,
        "scheduled_start",
        f"scheduled_start 2999-06-01 09:30 is outside the plausible range 1901-01-01 to "
        f"{latest}; check the export (the range is [ingest] earliest_date and latest_years_ahead)",
    ) in reasons
    assert {(p, f) for p, f, _ in reasons} >= {(3, "scheduled_start"), (4, "scheduled_start")}
    coverage = warehouse.coverage()
    assert (coverage["period_start"].min().date(), coverage["period_start"].max().date()) == (
        date(2025, 3, 1),
        date(2025, 3, 1),
    )


# -- the pseudonymization key ---------------------------------------------------------------------------


def test_a_different_secret_is_refused_and_rotating_on_purpose_is_explicit(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19 item 7: another key silently gave every patient a second pseudonym (1,169 rows
    'updated'). The warehouse keeps the key's fingerprint (never the key) and refuses another."""
    load(warehouse, FIXTURES / "portal")
    keys = rows(warehouse, "SELECT patient_key FROM portal_messages ORDER BY 1")
    (fingerprint,) = rows(warehouse, "SELECT value FROM warehouse_settings WHERE name = 'key_fingerprint'")
    assert SECRET not in fingerprint[0] and len(fingerprint[0]) == 64

    monkeypatch.setenv("CLINIC_KPIS_SECRET", "another-secret-entirely-0123456789")
    with pytest.raises(IngestError, match="is not the one .* was loaded with .* --rotate-secret"):
        load(warehouse, FIXTURES / "portal", force=True)
    assert rows(warehouse, "SELECT patient_key FROM portal_messages ORDER BY 1") == keys

    path = warehouse.path
    warehouse.close()
    res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(path), "--force")
    assert res.code == 1 and res.err.startswith(f"error: the pseudonymization secret is not the one {path} was")
    res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(path), "--force", "--rotate-secret")
    assert res.code == 0, res.err
    assert "warning: " in res.err and "the pseudonymization secret changed on purpose" in res.err
    with Warehouse(path, read_only=True) as wh:
        assert rows(wh, "SELECT value FROM warehouse_settings WHERE name = 'key_fingerprint'") != [fingerprint]
        assert rows(wh, "SELECT patient_key FROM portal_messages ORDER BY 1") != keys  # loaded again: new keys


# -- one write path ---------------------------------------------------------------------------------------


def test_ledger_charges_derived_from_claims_go_through_the_load_path(warehouse: Warehouse) -> None:
    """Issue 14 item 5: the ledger rows an 837 implies were written by a side step, unchecked and
    uncounted; they now go through the Loader: checked, counted as derived, with the run's lineage."""
    result = load_one(warehouse, FIXTURES / "x12" / "claims_2025-03.837")
    charges = rows(warehouse, "SELECT count(*), min(ingest_run_id), max(ingest_run_id) FROM ledger")
    assert charges == [(2, result.run_id, result.run_id)]
    assert result.derived == 2
    assert rows(warehouse, "SELECT rows_derived FROM ingest_runs WHERE run_id = ?", result.run_id) == [(2,)]


def test_adapters_read_the_warehouse_and_cannot_write_it(warehouse: Warehouse) -> None:
    lookup = Lookup(warehouse.cursor())
    assert lookup.rows("SELECT count(*) FROM appointments") == [(0,)]
    for statement in ("DELETE FROM appointments", "SELECT 1; DROP TABLE appointments", "CREATE TABLE x (a INT)"):
        with pytest.raises(ValueError, match="a lookup runs one SELECT statement"):
            lookup.rows(statement)
