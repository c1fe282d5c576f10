"""Loads refresh the results store incrementally, and leave it equal to a full rebuild.

A simulated practice's exports are cut into monthly exports, as a practice that loads every month
has them (each FHIR resource, CSV row and queue_log call in the month of its date; the 837/835
files are monthly already), then loaded one month per run through the real write path
(`Warehouse.writing` + `ingest_paths`, which refreshes the store before publishing). Then the
awkward loads: an 835 held back and loaded last (it reverses a claim's payment months back), an
837 held back (claims for old dates of service, after their remittances), and a corrected
appointment export reloaded with --force (one visit moved to another day, one turned into a
no-show). After every load the store answers as the raw engine does; at the end every table of
the store equals, row for row, the same warehouse's store rebuilt from scratch.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ingest import ingest_paths
from kpis import Warehouse
from kpis.config import Config, load_config
from kpis.coverage import coverage_sql
from kpis.serving import refresh as serving_refresh
from kpis.serving.refresh import refresh
from kpis.storage import Store
from tests.conftest import SimulatedPractice
from tests.kpis.test_serving import (
    assert_each_payer_by_location_and_provider_from_results,
    assert_same,
    assert_same_aging,
)
from tests.monthly_exports import MONTHS


def load(directory: Path, paths: list[Path], *, force: bool = False) -> None:
    config = load_config(directory / "clinic-kpis.toml")
    with Warehouse.writing(config=config) as store:
        results = ingest_paths(store, paths, force=force)
    assert all(r.status != "failed" for r in results), [r.message for r in results if r.status == "failed"]


def store_equals_raw(db: Path, config: Path) -> None:
    with Warehouse.open(db, config=config, read_only=True) as wh:
        for grain, by in (("month", "provider"), ("month", None), ("week", "location")):
            args = dict(start="2026-06", end="2026-09", grain=grain, by=by)
            kpis = [s.id for s in wh.catalog() if by is None or by in s.dimensions]
            store = wh.compute(kpis, **args, via="store")
            assert "raw" not in store.attrs["answered_from"].values()
            assert_same(store, wh.compute(kpis, **args, via="raw"))
        for month in ("2026-03", "2026-06", "2026-09"):
            for by, filters in (((), {}), (("payer_class",), {}), (("provider",), {"location": "EAST"})):
                # "auto": while an account's entries span cells (a remittance before its claim), the raw engine
                assert_same_aging(wh, month, by, filters, via="auto")


def held_back_835(files: list[Path]) -> Path:
    """An 835 of a later month that reverses a payment or denial of an earlier claim (CLP02 = 22)."""
    for path in files:
        if path.suffix == ".835" and "*22*" in path.read_text(encoding="utf-8"):
            return path
    raise AssertionError("no reversal in the simulated 835s")


def corrected(path: Path) -> int:
    """Rewrite an Appointment export as its corrected version: one visit a day later, one a no-show."""
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = 0
    out = []
    for line in lines:
        resource = json.loads(line)
        if changed == 0 and resource["status"] == "fulfilled":
            for key in ("start", "end"):
                resource[key] = (datetime.fromisoformat(resource[key]) + timedelta(days=1)).isoformat()
            changed += 1
        elif changed == 1 and resource["status"] == "fulfilled":
            resource["status"] = "noshow"
            changed += 1
        out.append(json.dumps(resource))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return changed


@pytest.mark.slow
def test_loads_month_by_month_then_late_and_corrected_files_leave_the_store_as_a_full_rebuild(
    monthly_practice: tuple[Path, dict[str, list[Path]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, months = monthly_practice
    # every refresh sorts the fact tables it updated by day again (at scale: past 5% appended)
    monkeypatch.setattr(serving_refresh, "ROW_GROUP_ROWS", 0)
    monkeypatch.setattr(serving_refresh, "UNSORTED_SHARE", 0)
    # every table updated in place, however much of it a month touches (not rebuilt past half)
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))
    directory = tmp_path / "practice"  # a copy: the monthly exports are shared, this warehouse is not
    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("exports", "monthly"))
    config = directory / "clinic-kpis.toml"
    db = directory / "clinic_kpis.duckdb"
    late_835 = held_back_835([p for m in MONTHS[1:] for p in months[m]])
    late_837 = next(p for p in months[MONTHS[1]] if p.suffix == ".837")
    held = {late_835, late_837}
    for month in MONTHS:
        load(directory, [p for p in months[month] if p not in held])
        store_equals_raw(db, config)

    load(directory, [late_835])  # reverses a claim's first outcome months back
    store_equals_raw(db, config)
    load(directory, [late_837])  # claims for old dates of service, after their remittances
    store_equals_raw(db, config)

    appointments = directory / "corrected" / "Appointment.ndjson"
    appointments.parent.mkdir()
    shutil.copy(next(p for p in months[MONTHS[2]] if p.name == "Appointment.ndjson"), appointments)
    assert corrected(appointments) == 2
    load(directory, [appointments], force=True)
    store_equals_raw(db, config)
    load(directory, [appointments], force=True)  # the same file again: nothing changes
    store_equals_raw(db, config)

    with Warehouse.open(db, config=config, read_only=True) as wh:
        assert wh.ar_aging("2026-09").attrs["answered_from"] == {"ar_over_90_pct": "results"}
    store_equals_a_rebuild(db, config, tmp_path)


def store_equals_a_rebuild(db: Path, config: Path, tmp_path: Path, *, billing: bool = True) -> None:
    """Every table of `db`'s store equals, row for row, the same warehouse's store rebuilt from scratch
    (`billing`: the warehouse holds billing and scheduling, so the ledger and its tables are there)."""
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copyfile(db, rebuilt)
    with Warehouse.open(rebuilt, config=config) as wh, wh.cursor() as cur:
        for (table,) in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'serving' AND table_name <> 'meta'"
        ).fetchall():
            cur.execute(f"DROP TABLE serving.{table}")
        cur.execute("DELETE FROM serving.meta")
        summary = refresh(cur, wh.config, full=True, progress=False)
        assert not billing or ("ledger" in summary.rebuilt and "third_next_available" in summary.rebuilt)

    con = duckdb.connect()
    con.execute(f"ATTACH '{db}' AS incremental (READ_ONLY)")
    con.execute(f"ATTACH '{rebuilt}' AS full_rebuild (READ_ONLY)")
    tables = [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'full_rebuild' AND schema_name = 'serving' "
            "ORDER BY table_name"
        ).fetchall()
    ]
    required = {"facts_appointments", "results", "cells", "coverage"}
    assert required | ({"facts_ledger", "facts_third_next_available", "ar_aging"} if billing else set()) <= set(tables)
    for table in tables:
        a, b = f"incremental.serving.{table}", f"full_rebuild.serving.{table}"
        if table == "meta":
            # when each table was last sorted by day differs: not a result
            a = f"(SELECT * FROM {a} WHERE key <> 'refreshed_at' AND key NOT LIKE 'appended:%')"
            b = f"(SELECT * FROM {b} WHERE key <> 'refreshed_at' AND key NOT LIKE 'appended:%')"
        (rows,) = con.execute(f"SELECT count(*) FROM {b}").fetchone()
        (extra,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()
        (missing,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()
        assert (extra, missing) == (0, 0), f"serving.{table}: {extra} rows only incremental, {missing} only rebuilt"
        assert rows > 0 or table.startswith("values_") or not billing, table
    con.close()


@pytest.mark.slow
def test_a_first_billing_load_after_the_scheduling_data_rebuilds_its_groups_as_a_full_rebuild_would(
    monthly_practice: tuple[Path, dict[str, list[Path]]], tmp_path: Path
) -> None:
    """The store is built with the scheduling, phone and portal data; then the whole billing
    history loads at once. Every ledger entry, claim and remittance is new: the billing groups
    are rebuilt (written straight into their tables, as a full build does) rather than updated
    (which at 10 M held every new row, its diff and the restricted reads at once and filled the
    disk with DuckDB's spill), and the store equals a full rebuild's."""
    source, months = monthly_practice
    directory = tmp_path / "practice"
    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("exports", "monthly"))
    config = directory / "clinic-kpis.toml"
    db = directory / "clinic_kpis.duckdb"
    files = [p for m in MONTHS for p in months[m]]
    billing = [p for p in files if "billing" in p.parts]
    assert billing and any(p.suffix == ".835" for p in billing)
    load(directory, [p for p in files if p not in billing])

    settings = load_config(config)
    with Store(settings.db_path, config=settings) as store:
        assert all(r.status == "succeeded" for r in ingest_paths(store, billing))
        with store.cursor() as cur:
            (entries,) = cur.execute("SELECT count(*) FROM main.ledger").fetchone()
            summary = refresh(cur, settings, progress=False)
    assert entries > 0 and summary.recomputed_rows["ledger"] == entries
    assert {"ledger", "claim_outcomes", "ar_aging"} <= set(summary.rebuilt)
    store_equals_raw(db, config)
    store_equals_a_rebuild(db, config, tmp_path)


X12 = Path(__file__).parent / "ingest" / "fixtures" / "x12"
MARCH_837, APRIL_837 = X12 / "claims_2025-03.837", X12 / "claims_2025-04.837"
REMITS_835 = X12 / "remits_ACME01_2025-04.835"  # C100 paid, C101 denied (CO-97), C100's payment reversed


def aging_tables_equal_a_rebuild(db: Path, config: Path, tmp_path: Path) -> None:
    """serving.ar_aging and its meta equal those of the same warehouse's store rebuilt from scratch."""
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copyfile(db, rebuilt)
    with Warehouse.open(rebuilt, config=config) as wh, wh.cursor() as cur:
        assert "ar_aging" in refresh(cur, wh.config, full=True, progress=False).rebuilt
    con = duckdb.connect()
    con.execute(f"ATTACH '{db}' AS incremental (READ_ONLY)")
    con.execute(f"ATTACH '{rebuilt}' AS full_rebuild (READ_ONLY)")
    meta = "(SELECT * FROM {}.serving.meta WHERE key LIKE 'ar_aging%')"
    for a, b in (
        ("incremental.serving.ar_aging", "full_rebuild.serving.ar_aging"),
        (meta.format("incremental"), meta.format("full_rebuild")),
    ):
        (extra,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()
        (missing,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()
        assert (extra, missing) == (0, 0), f"{a}: {extra} rows only incremental, {missing} only rebuilt"
    con.close()
    rebuilt.unlink()


@pytest.mark.parametrize(
    "order",
    [
        [MARCH_837, APRIL_837, REMITS_835],
        [MARCH_837, REMITS_835, APRIL_837],  # the replacement 837 after the 835
        [REMITS_835, MARCH_837, APRIL_837],  # the 835 first: its payments before their charges
        [APRIL_837, REMITS_835, MARCH_837],  # the originals (old dates of service) last
    ],
    ids=["in order", "late 837", "835 first", "originals last"],
)
def test_hand_made_claims_and_remittances_in_any_order_keep_ar_aging_exact(
    order: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand-made 837s and an 835 (a denial, a payment and its reversal), one file per load, in
    several orders: after each load ar_aging from the store equals the raw engine's at every
    month end, by payer class and filtered; at the end the aging kept equals a full rebuild's."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))  # each file touches most of the ledger
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n', encoding="utf-8"
    )
    db = tmp_path / "clinic_kpis.duckdb"
    for path in order:
        load(tmp_path, [path])
        with Warehouse.open(db, config=config, read_only=True) as wh:
            last = f"{wh.data_end():%Y-%m}"  # month ends after the data's last month: the raw engine
            for month in (m for m in ("2025-02", "2025-03", "2025-04") if m <= last):
                for by, filters in (((), {}), (("payer_class",), {}), (("location",), {"payer": "ACME01"})):
                    assert_same_aging(wh, month, by, filters)
    with Warehouse.open(db, config=config, read_only=True) as wh:
        aging = wh.ar_aging("2025-04")
        assert aging["amount"].sum() > 0 and aging.attrs["answered_from"] == {"ar_over_90_pct": "results"}
    aging_tables_equal_a_rebuild(db, config, tmp_path)


def _appointments_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """A practice with the fixture's Appointment export loaded and its store built: (config, the
    export, its text), for a test that corrects the export and loads it again."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n', encoding="utf-8"
    )
    export = tmp_path / "fhir" / "Appointment.ndjson"
    export.parent.mkdir()
    shutil.copy(Path(__file__).parent / "ingest" / "fixtures" / "fhir" / "Appointment.ndjson", export)
    load(tmp_path, [export])
    text = export.read_text(encoding="utf-8")
    return config, export, text


def test_rows_moved_to_other_days_recount_coverage_for_their_old_and_new_days_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrected Appointment export reloaded with --force moves a visit two days later: its old
    day loses a row that no changed row names any more. The refresh finds that day from the
    replaced facts and recounts the two days (not the whole table), and the coverage kept equals
    a count of the whole warehouse."""
    config, export, text = _appointments_loaded(tmp_path, monkeypatch)
    assert text.count('"start":"2025-03-03T09:00:00-05:00"') == 1
    export.write_text(text.replace('"start":"2025-03-03T09:00:00-05:00"', '"start":"2025-03-05T09:00:00-05:00"'))

    settings = load_config(config)
    with Store(settings.db_path, config=settings) as store:
        ingest_paths(store, [export], force=True)
        with store.cursor() as cur:
            summary = refresh(cur, settings, progress=False)
            assert summary.recomputed_rows["appointments"] >= 1
            assert summary.coverage_recounted == []
            fresh = f"SELECT * FROM ({coverage_sql(settings.timezone, 'day')})"
            kept = "SELECT * FROM serving.coverage"
            for a, b in ((kept, fresh), (fresh, kept)):
                (rows,) = cur.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()
                assert rows == 0
            days = cur.execute(
                "SELECT period_start, rows FROM serving.coverage WHERE table_name = 'appointments' "
                "AND period_start IN (DATE '2025-03-03', DATE '2025-03-05') ORDER BY 1"
            ).fetchall()
            moved = [text.count('"start":"2025-03-03') - 1, text.count('"start":"2025-03-05') + 1]
            assert [r for _, r in days] == moved


def test_fact_rows_appended_out_of_day_order_are_sorted_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh appends its new fact rows at the end of the table, whatever their days; past the
    share of the table allowed (here none) it sorts the table by day again, so a month's read
    stays on its own row groups. The rows are the same, in day order."""
    monkeypatch.setattr(serving_refresh, "ROW_GROUP_ROWS", 0)
    monkeypatch.setattr(serving_refresh, "UNSORTED_SHARE", 0)
    config, export, text = _appointments_loaded(tmp_path, monkeypatch)
    export.write_text(text.replace('"start":"2025-03-03T09:00:00-05:00"', '"start":"2025-02-20T09:00:00-05:00"'))

    settings = load_config(config)
    with Store(settings.db_path, config=settings) as store:
        ingest_paths(store, [export], force=True)
        with store.cursor() as cur:
            before = cur.execute("SELECT * FROM serving.facts_appointments ORDER BY _key").fetchall()
            summary = refresh(cur, settings, progress=False)
            assert summary.sorted == ["appointments"]
            days = [d for (d,) in cur.execute("SELECT day_scheduled_start FROM serving.facts_appointments").fetchall()]
            assert days == sorted(days) and min(days).isoformat() == "2025-02-20"
            after = cur.execute("SELECT * FROM serving.facts_appointments ORDER BY _key").fetchall()
            assert len(after) == len(before) and after != before  # the moved visit, now first
            (appended,) = cur.execute("SELECT value FROM serving.meta WHERE key = 'appended:appointments'").fetchone()
            assert appended == "0"
    with Warehouse.open(settings.db_path, config=config, read_only=True) as wh:
        args = dict(start="2025-02", end="2025-03", grain="month", by="provider")
        assert_same(wh.compute(["no_show_rate"], **args, via="store"), wh.compute(["no_show_rate"], **args, via="raw"))


def test_a_day_reloaded_moves_the_additive_month_results_as_a_full_rebuild_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrected export reloaded with --force: a visit moved a month back (a late, old-dated row,
    in a month without results yet), a no-show turned into a visit, a cancellation moved a day.
    Appointments' KPIs are counts: their month results are moved by the changed rows' signed
    contributions (no month re-aggregated), and every table of the store, the kept cell counts
    included, equals a full rebuild. Reloading the original file moves them back: the old-dated
    month's cells are emptied and dropped, as a rebuild would not have them."""
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))  # 3 of 8 rows: updated, not rebuilt
    config, export, text = _appointments_loaded(tmp_path, monkeypatch)
    original = text
    for old, new in (
        ('"start":"2025-03-03T09:00:00-05:00"', '"start":"2025-02-27T09:00:00-05:00"'),
        ('"id":"a2","status":"noshow"', '"id":"a2","status":"fulfilled"'),
        ('"start":"2025-03-05T09:00:00-05:00"', '"start":"2025-03-06T09:00:00-05:00"'),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    settings = load_config(config)
    for contents, months in ((text, 2), (original, 2)):
        export.write_text(contents, encoding="utf-8")
        with Store(settings.db_path, config=settings) as store:
            ingest_paths(store, [export], force=True)
            with store.cursor() as cur:
                summary = refresh(cur, settings, progress=False)
                (february,) = cur.execute(
                    "SELECT count(*) FROM serving.results WHERE period_start = DATE '2025-02-01'"
                ).fetchone()
        assert summary.moved == {"appointments": months}, summary
        assert "appointments" not in summary.months  # nothing of it recomputed
        assert (february > 0) == (contents == text)
        store_equals_a_rebuild(settings.db_path, config, tmp_path, billing=False)
        with Warehouse.open(settings.db_path, config=config, read_only=True) as wh:
            args = dict(start="2025-02", end="2025-03", grain="month", by="provider")
            kpis = ["no_show_rate", "late_cancel_rate"]
            assert_same(wh.compute(kpis, **args, via="store"), wh.compute(kpis, **args, via="raw"))


def test_a_ledger_entry_moved_to_another_claim_replaces_both_claims_facts_found_by_row_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrected transaction export reloaded with --force: a payment moved from one claim to
    another. The old claim's other entries change with it (settled or not) though none of them
    changed: only the moved entry's previous fact names that claim. What changed finds the
    ledger's previous facts once (by the claims touched now, the moved entry by its key, then its
    previous claim's entries): the refresh replaces them by those row ids, reads the canonical
    rows of both claims by row id, and leaves every table of the store equal to a full rebuild;
    the store answers as the raw engine."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))  # every entry touched: updated, not rebuilt
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n', encoding="utf-8"
    )
    export = tmp_path / "billing" / "north_transactions.csv"
    export.parent.mkdir()
    fixture = Path(__file__).parent / "ingest" / "fixtures" / "billing" / "north_transactions.csv"
    text = fixture.read_text(encoding="utf-8").replace(",1O0.00,", ",100.00,")  # the fixture's typo fixed
    export.write_text(text, encoding="utf-8")
    load(tmp_path, [export])
    assert text.count("\nT2,CL1,") == 1
    export.write_text(text.replace("\nT2,CL1,", "\nT2,CL2,"), encoding="utf-8")

    settings = load_config(config)
    with Store(settings.db_path, config=settings) as store:
        ingest_paths(store, [export], force=True)
        with store.cursor() as cur:
            claims, entries = cur.execute("SELECT count(DISTINCT claim_id), count(*) FROM main.ledger").fetchone()
            summary = refresh(cur, settings, progress=False)
            (moved,) = cur.execute("SELECT _claim FROM serving.facts_ledger WHERE _key LIKE '%T2'").fetchone()
    assert claims == 2 and moved == "CL2"
    assert summary.found_by_row_id == ["ledger", "ar_aging"] and "ledger" not in summary.rebuilt
    assert summary.recomputed_rows["ledger"] == entries  # every entry of both claims
    store_equals_a_rebuild(settings.db_path, config, tmp_path, billing=False)
    with Warehouse.open(settings.db_path, config=config, read_only=True) as wh:
        kpis = [s.id for s in wh.catalog() if s.relation == "ledger"]
        args = dict(start="2025-03", end="2025-05", grain="month", by=None)
        assert_same(wh.compute(kpis, **args, via="store"), wh.compute(kpis, **args, via="raw"))


def test_a_slot_reloaded_is_still_booked_by_an_appointment_that_ends_on_its_day_days_after_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot's facts are recomputed from the appointments of its provider whose start or end falls
    on its day, which the refresh finds by a range of scheduled starts: the slot's days widened by
    the longest appointment. Here a three-day appointment ends on the slot's day; the slot's status
    changes in a corrected Slot export reloaded with --force: the slot stays booked, as a full
    rebuild says."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))  # one slot of six: updated, not rebuilt
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n', encoding="utf-8"
    )
    fixtures = Path(__file__).parent / "ingest" / "fixtures" / "fhir"
    (tmp_path / "fhir").mkdir()
    for name in ("Appointment", "Location", "Practitioner", "Schedule", "Slot"):
        shutil.copy(fixtures / f"{name}.ndjson", tmp_path / "fhir" / f"{name}.ndjson")
    long_visit = {
        "resourceType": "Appointment",
        "id": "a-long",
        "status": "booked",
        "start": "2025-03-01T09:00:00-05:00",
        "minutesDuration": 3 * 24 * 60 + 60,  # to 2025-03-04 10:00
        "created": "2025-02-20T10:00:00-05:00",
        "participant": [{"actor": {"reference": "Practitioner/pr-1"}, "status": "accepted"}],
    }
    slot = {
        "resourceType": "Slot",
        "id": "s-end-day",
        "schedule": {"reference": "Schedule/sch-1"},
        "status": "free",
        "start": "2025-03-04T09:00:00-05:00",
        "end": "2025-03-04T09:20:00-05:00",
    }
    with (tmp_path / "fhir" / "Appointment.ndjson").open("a", encoding="utf-8") as f:
        f.write(json.dumps(long_visit) + "\n")
    slots = tmp_path / "fhir" / "Slot.ndjson"
    text = slots.read_text(encoding="utf-8")
    slots.write_text(text + json.dumps(slot) + "\n", encoding="utf-8")
    load(tmp_path, [tmp_path / "fhir"])
    slots.write_text(text + json.dumps(slot | {"status": "busy"}) + "\n", encoding="utf-8")

    settings = load_config(config)
    with Store(settings.db_path, config=settings) as store:
        ingest_paths(store, [slots], force=True)
        with store.cursor() as cur:
            summary = refresh(cur, settings, progress=False)
            (booked,) = cur.execute(
                "SELECT slot_utilization__num FROM serving.facts_slots WHERE _key LIKE '%s-end-day'"
            ).fetchone()
    assert summary.recomputed_rows["slots"] == 1 and "slots" not in summary.rebuilt
    assert booked == 20  # its minutes, booked
    store_equals_a_rebuild(settings.db_path, config, tmp_path, billing=False)


def test_a_claim_billed_to_another_payer_moves_its_results_by_location_and_provider_under_each_payer(
    simulated_practice: SimulatedPractice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrected 837 bills a claim to another payer (Keystone to Summit), loaded again with --force
    into a copy of the simulated practice: the refresh updates the billing facts in place, and the
    month results by location and by provider under each payer (what the Overview's movers look up
    after a payer change) equal the raw engine's, the claim's old and new payer's alike; every table
    of the store equals a full rebuild."""
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))  # a month of claims: updated, not rebuilt
    directory = tmp_path / "practice"
    directory.mkdir()
    for name in ("clinic-kpis.toml", ".clinic-kpis.secret", "clinic_kpis.duckdb"):
        shutil.copyfile(simulated_practice.directory / name, directory / name)
    config = directory / "clinic-kpis.toml"
    settings = load_config(config)
    text = (simulated_practice.exports / "billing" / "claims_2025-10.837").read_text(encoding="utf-8")
    old, new = "NM1*PR*2*KEYSTONE BLUE PLAN*****PI*39026~\n", "NM1*PR*2*SUMMIT MUTUAL HEALTH*****PI*60054~\n"
    assert text.split(old, 1)[1].startswith("CLM*E0100000452*")  # the file's first Keystone claim, billed once
    export = directory / "corrected" / "claims_2025-10.837"
    export.parent.mkdir()
    export.write_text(text.replace(old, new, 1), encoding="utf-8")

    def split(wh: Warehouse) -> pd.DataFrame:  # Summit's October by provider, from the store
        return wh.compute_groupings(
            start="2025-10", end="2025-10", groupings=[("provider",)], filters={"payer": "60054"}, via="store"
        )

    with Warehouse.open(settings.db_path, config=config, read_only=True) as wh:
        before = split(wh)
    with Store(settings.db_path, config=settings) as store:
        assert all(r.status == "succeeded" for r in ingest_paths(store, [export], force=True))
        with store.cursor() as cur:
            summary = refresh(cur, settings, progress=False)
            payers = cur.execute("SELECT DISTINCT payer_id FROM claims WHERE claim_id = 'E0100000452'").fetchall()
    assert payers == [("60054",)]
    assert not {"claim_outcomes", "ledger"} & set(summary.rebuilt), summary
    assert summary.recomputed_rows["claim_outcomes"] > 0 and summary.recomputed_rows["ledger"] > 0
    with Warehouse.open(settings.db_path, config=config, read_only=True) as wh:
        after = split(wh)
        assert_each_payer_by_location_and_provider_from_results(wh, "2025-09", "2026-09")
    assert not before[["numerator", "denominator"]].equals(after[["numerator", "denominator"]])  # Summit's moved
    store_equals_a_rebuild(settings.db_path, config, tmp_path)


def _claims_practice(tmp_path: Path) -> tuple[Config, Path]:
    """A practice's config in tmp_path, and a copy of the March 837 whose C101 is C109: a claim no
    835 fixture remits."""
    (tmp_path / "clinic-kpis.toml").write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n', encoding="utf-8"
    )
    unremitted = tmp_path / "claims_c109.837"
    unremitted.write_text(MARCH_837.read_text(encoding="utf-8").replace("C101", "C109"), encoding="utf-8")
    return load_config(tmp_path / "clinic-kpis.toml"), unremitted


def test_claims_updated_in_parts_keep_the_outcomes_of_a_full_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hand-made file touches most of the claims: the claim outcomes are updated in parts of the
    touched claims (of a full build's three, as at scale), and equal a full rebuild's in one statement.
    Last comes a claim (C109) without a remittance of its own from a source that sends remittances:
    it counts in the clean claim rate (remits_loaded) as in a rebuild."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))
    monkeypatch.setattr(serving_refresh, "PARTS", 3)
    settings, unremitted = _claims_practice(tmp_path)
    facts = "SELECT * FROM serving.facts_claim_outcomes ORDER BY ALL"
    with Store(settings.db_path, config=settings) as store, store.cursor() as cur:
        refresh(cur, settings, progress=False)
        for path in (MARCH_837, REMITS_835, unremitted):
            assert all(r.status == "succeeded" for r in ingest_paths(store, [path]))
            summary = refresh(cur, settings, progress=False)
            if path is REMITS_835:  # the source's first remittance: every claim of it may change, rebuilt
                assert "claim_outcomes" in summary.rebuilt
            else:
                assert summary.parts["claim_outcomes"] > 1 and "claim_outcomes" not in summary.rebuilt
        incremental = cur.execute(facts).fetchall()
        counted = cur.execute("SELECT clean_claim_rate__den FROM serving.facts_claim_outcomes WHERE _key = 'C109'")
        counted = counted.fetchall()
        monkeypatch.setattr(serving_refresh, "PARTS", 1)
        assert refresh(cur, settings, full=True, progress=False).parts["claim_outcomes"] == 1
        assert cur.execute(facts).fetchall() == incremental
    assert counted == [(True,)] and len(incremental) == 3


def test_a_sources_first_remittance_counts_its_unremitted_claims_as_a_rebuild_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims loaded in runs before any 835, then the source's first 835 (for C100 and C101 only):
    every claim of the source now sends remittances (remits_loaded), C109 included, which no
    changed row names. The store counts C109 in the clean claim rate as a full rebuild does."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))  # updated in place where it can be
    settings, unremitted = _claims_practice(tmp_path)
    facts = "SELECT * FROM serving.facts_claim_outcomes ORDER BY ALL"
    counted = "SELECT clean_claim_rate__den FROM serving.facts_claim_outcomes WHERE _key = 'C109'"
    with Store(settings.db_path, config=settings) as store, store.cursor() as cur:
        refresh(cur, settings, progress=False)
        for path in (MARCH_837, unremitted):
            assert all(r.status == "succeeded" for r in ingest_paths(store, [path]))
            refresh(cur, settings, progress=False)
        assert cur.execute(counted).fetchall() == [(False,)]  # no remittances from any source yet
        assert all(r.status == "succeeded" for r in ingest_paths(store, [REMITS_835]))
        refresh(cur, settings, progress=False)
        incremental = cur.execute(facts).fetchall()
        assert cur.execute(counted).fetchall() == [(True,)]
        assert refresh(cur, settings, progress=False).rebuilt == []  # nothing new: the state is kept
        refresh(cur, settings, full=True, progress=False)
        assert cur.execute(facts).fetchall() == incremental


def test_a_refresh_without_a_memory_limit_builds_the_claim_outcomes_in_one_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[refresh] memory_limit = "none"` (DuckDB: no limit, read back as "16383.9 PiB"): the part
    count of the claim outcomes reads that limit, and the refresh builds them in one statement."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    (tmp_path / "clinic-kpis.toml").write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n\n'
        '[refresh]\nmemory_limit = "none"\n',
        encoding="utf-8",
    )
    settings = load_config(tmp_path / "clinic-kpis.toml")
    with Store(settings.db_path, config=settings) as store, store.cursor() as cur:
        assert all(r.status == "succeeded" for r in ingest_paths(store, [MARCH_837]))
        summary = refresh(cur, settings, full=True, progress=False)
        (claims,) = cur.execute("SELECT count(*) FROM serving.facts_claim_outcomes").fetchone()
    assert summary.parts["claim_outcomes"] == 1 and not summary.unbounded and claims == 2
