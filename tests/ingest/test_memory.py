"""What a large file's load keeps in memory (issue 22: a 10 M-appointment file within `[ingest] memory_limit`).

Why: DuckDB's buffer pool is bounded by the limit and spills past it, but two things were not:
the Arrow chunks a file was staged from (kept alive inside the file's transaction until it
committed, outside DuckDB's limit) and the key index (ART) DuckDB builds for the rows a
transaction adds to a table with a key, which cannot spill (`record_versions` gets one row per
versioned record of every file, so it no longer has one; the loader keeps its keys unique).
"""

from __future__ import annotations

import gc
import json
import shutil
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from ingest import load as load_module
from ingest import run as ingest_run
from ingest.batch import Batch, Chunk, Phase, Target
from ingest.load import Loader, read_schema
from ingest.lock import open_for_ingest
from kpis import storage
from kpis.config import load_config
from kpis.serving import refresh as serving_refresh
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, SECRET, load, load_one, rows
from tests.memory_faults import appointments_run_out_once

CHUNKS, ROWS = 12, 10_000


def _chunks(allocated: list[int]) -> Iterator[Chunk]:
    """Chunks of appointments with a long text each (2 MB of Arrow buffers a chunk); notes how
    much Arrow memory is held before each chunk is made."""
    start = datetime(2025, 3, 3, 14, tzinfo=UTC)
    for c in range(CHUNKS):
        allocated.append(pa.total_allocated_bytes())
        first = c * ROWS + 1
        rows = pa.table(
            {
                "_pos": pa.array(range(first, first + ROWS), pa.int64()),
                "source": pa.array(["test"] * ROWS),
                "appointment_id": pa.array([f"a{n}" for n in range(first, first + ROWS)]),
                "scheduled_start": pa.array(
                    [start + timedelta(minutes=n) for n in range(ROWS)], pa.timestamp("us", "UTC")
                ),
                "status": pa.array(["booked"] * ROWS),
                "status_source": pa.array([f"{n:0>200}" for n in range(first, first + ROWS)]),
            }
        )
        yield Chunk([Phase([(Target("appointments"), rows)])])


def test_a_files_chunks_are_freed_as_they_are_staged_not_when_it_commits(warehouse: Warehouse) -> None:
    allocated: list[int] = []
    batch = Batch(adapter="test", position_kind="line", chunks=_chunks(allocated))
    with warehouse.transaction(tracked=True) as cur:
        counts = Loader(cur, read_schema(cur), "America/New_York").load(batch, 1, "many.ndjson")
        held = max(allocated) - allocated[0]
        # one chunk is alive while the next is made (the loader's loop variable), not all of them
        assert held < 3 * 2_000_000, f"{held:,} bytes of Arrow chunks still held after {CHUNKS} chunks"
    assert (counts.read, counts.inserted, counts.rejected) == (CHUNKS * ROWS, CHUNKS * ROWS, 0)
    assert rows(warehouse, "SELECT count(*), max(appointment_id) FROM appointments") == [(CHUNKS * ROWS, "a99999")]


def test_record_versions_has_no_key_index_and_keeps_one_version_per_record(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    assert rows(
        warehouse,
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'record_versions' "
        "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
    ) == [(0,)]
    results = load(warehouse, FIXTURES / "fhir", FIXTURES / "vendor")
    assert all(r.status == "succeeded" for r in results), results
    (before,) = rows(warehouse, "SELECT count(*) FROM record_versions")
    assert before[0] > 0
    again = load(warehouse, FIXTURES / "fhir", FIXTURES / "vendor", force=True)  # the same versions again: no new row
    assert all(r.status == "succeeded" and not r.inserted for r in again), again
    assert rows(warehouse, "SELECT count(*) FROM record_versions") == [before]
    assert rows(
        warehouse,
        "SELECT count(*) FROM (SELECT table_name, writer, record_key FROM record_versions "
        "GROUP BY ALL HAVING count(*) > 1)",
    ) == [(0,)]
    # versions of one appointment: a newer replaces the one held, in place; an older is stale
    for day, status in ((10, "booked"), (12, "fulfilled"), (11, "noshow")):
        resource = {**APPOINTMENT, "status": status, "meta": {"lastUpdated": f"2025-03-{day}T08:00:00Z"}}
        (tmp_path / f"v{day}.ndjson").write_text(json.dumps(resource) + "\n", encoding="utf-8")
    first, newer, older = (load_one(warehouse, tmp_path / f"v{day}.ndjson") for day in (10, 12, 11))
    assert (first.inserted, newer.updated, older.stale) == (1, 1, 1), (first, newer, older)
    assert rows(
        warehouse,
        "SELECT version_at, ingest_run_id FROM record_versions WHERE table_name = 'appointments' "
        "AND record_key = 'fhir' || chr(31) || 'versioned-1'",
    ) == [(datetime(2025, 3, 12, 8, tzinfo=UTC), newer.run_id)]
    assert rows(warehouse, "SELECT status FROM appointments WHERE appointment_id = 'versioned-1'") == [("fulfilled",)]
    assert rows(warehouse, "SELECT count(*) FROM record_versions") == [(before[0] + 1,)]


APPOINTMENT = {
    "resourceType": "Appointment",
    "id": "versioned-1",
    "start": "2025-03-03T09:00:00-05:00",
    "minutesDuration": 20,
    "participant": [{"actor": {"reference": "Patient/p1"}}, {"actor": {"reference": "Location/EAST"}}],
}


def test_records_counted_a_span_of_positions_at_a_time_give_the_same_counts(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rejected, stale, unchanged and multi-row records (a claim and its lines) counted one
    position per statement give the counts of one statement for the whole file."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    folders = [FIXTURES / name for name in ("fhir", "vendor", "x12", "billing", "corrupted")]
    outcomes = []
    for span in (load_module.COUNT_SPAN, 1):
        monkeypatch.setattr(load_module, "COUNT_SPAN", span)
        path = tmp_path / f"span{span}.duckdb"
        shutil.copyfile(empty_warehouse_file, path)
        with Warehouse(path) as wh:
            results = [*load(wh, *folders), *load(wh, *folders, force=True)]
        outcomes.append(
            [(r.path, r.status, r.read, r.inserted, r.updated, r.unchanged, r.rejected, r.stale) for r in results]
        )
    assert outcomes[0] == outcomes[1]
    counted = [o for o in outcomes[0] if o[1] == "succeeded"]
    assert any(o[6] for o in counted) and any(o[5] for o in counted) and any(o[3] > 1 for o in counted), counted


def test_a_files_new_keys_hold_no_key_index_in_memory_until_it_commits(warehouse: Warehouse) -> None:
    """DuckDB cannot spill the key index of the rows a transaction adds (~55 bytes a key): the
    fact tables have none (migration 009), so 120,000 new appointments hold none (6.6 MB with
    the primary key they had), and a file's memory does not grow with its number of new keys."""
    batch = Batch(adapter="test", position_kind="line", chunks=_chunks([]))
    with warehouse.transaction(tracked=True) as cur:
        counts = Loader(cur, read_schema(cur), "America/New_York").load(batch, 1, "many.ndjson")
        ((art,),) = cur.execute("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'ART_INDEX'").fetchall()
    assert counts.inserted == CHUNKS * ROWS
    assert art < 500_000, f"{art:,} bytes of key index held for {CHUNKS * ROWS:,} new keys"


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(storage._MALLOC_TRIM is None, reason="malloc_trim is glibc's")
def test_memory_freed_but_kept_by_the_c_heap_goes_back_to_the_system() -> None:
    """A parse leaves its freed objects' pages in glibc's heap, between the objects still alive: they
    stay in the process's RSS (no later allocation of the refresh reuses them: its memory is DuckDB's)
    until `release_freed_memory` gives them back."""
    held = [bytes(1000) + n.to_bytes(4) for n in range(200_000)]  # ~200 MB from malloc (past pymalloc's 512 bytes)
    alive = held[::10]
    del held
    before = _rss_bytes()
    storage.release_freed_memory()
    given_back = before - _rss_bytes()
    assert given_back > 60_000_000, f"{given_back:,} bytes given back of ~180 MB freed"
    assert len(alive) == 20_000


def test_an_ingest_gives_back_what_its_loads_freed_before_the_store_refreshes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_warehouse_file: Path
) -> None:
    """The refresh after a load runs in its process, under `[refresh] memory_limit`: what the loads
    freed is given back first, not held on top of that limit."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    db = tmp_path / "w.duckdb"
    shutil.copyfile(empty_warehouse_file, db)
    (tmp_path / "clinic-kpis.toml").write_text("", encoding="utf-8")
    calls: list[str] = []
    refresh = serving_refresh.refresh
    monkeypatch.setattr(serving_refresh, "release_freed_memory", lambda: calls.append("release"))

    def refreshing(*args: object, **options: object) -> serving_refresh.RefreshSummary:
        calls.append("refresh")
        return refresh(*args, **options)

    monkeypatch.setattr(serving_refresh, "refresh", refreshing)
    with open_for_ingest(load_config(tmp_path / "clinic-kpis.toml", db=db)) as store:
        calls.append("load")
        assert [r.status for r in load(store, FIXTURES / "portal")] == ["succeeded"]
    assert calls == ["load", "release", "refresh"]


def test_an_ingest_whose_refresh_outgrew_its_memory_limit_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], empty_warehouse_file: Path
) -> None:
    """When DuckDB runs out under `[refresh] memory_limit`, the refresh after a load runs again under
    DuckDB's own limit, which can take many times the configured memory: the load still publishes,
    and whoever set the limit hears which step ran out. (DuckDB running out is made to happen once,
    at the first step: a real one needs a warehouse far larger than a test's.)"""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    db = tmp_path / "w.duckdb"
    shutil.copyfile(empty_warehouse_file, db)
    (tmp_path / "clinic-kpis.toml").write_text("", encoding="utf-8")
    run = serving_refresh._run
    calls: list[str] = []

    def out_of_memory_once(cursor: object, job: serving_refresh._Refresh, progress: bool) -> None:
        calls.append(f"run {len(calls)}")
        if len(calls) == 1:
            job.step = "facts of appointments"
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB")
        run(cursor, job, progress)

    monkeypatch.setattr(serving_refresh, "_run", out_of_memory_once)
    with open_for_ingest(load_config(tmp_path / "clinic-kpis.toml", db=db)) as store:
        assert [r.status for r in load(store, FIXTURES / "vendor")] == ["succeeded"] * 2
    assert calls == ["run 0", "run 1"]
    err = capsys.readouterr().err
    assert (
        "warning: results store: [refresh] memory_limit was too low for this refresh "
        "(facts of appointments ran out): it ran with DuckDB's default" in err
    ), err
    with Warehouse.open(db=db, config=tmp_path / "clinic-kpis.toml", read_only=True) as wh:
        assert set(wh.compute("no_show_rate").attrs["answered_from"].values()) == {"results"}


def test_a_refresh_that_ran_out_creating_a_table_runs_again_on_the_file_opened_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], empty_warehouse_file: Path
) -> None:
    """DuckDB can keep the catalog entry of a table whose CREATE ran out of memory after the
    transaction is rolled back: a rerun in the same database then fails with "Catalog write-write
    conflict" (CI, with `[refresh] memory_limit = "1MB"`). The rerun after running out runs on the
    file opened afresh, and the load publishes."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    db = tmp_path / "w.duckdb"
    shutil.copyfile(empty_warehouse_file, db)
    (tmp_path / "clinic-kpis.toml").write_text("", encoding="utf-8")
    ran_out = appointments_run_out_once(monkeypatch)
    config = load_config(tmp_path / "clinic-kpis.toml", db=db)
    with open_for_ingest(config) as store:
        assert [r.status for r in load(store, FIXTURES / "vendor")] == ["succeeded"] * 2
        with store.cursor() as cur, pytest.raises(duckdb.TransactionException, match="write-write conflict"):
            serving_refresh.refresh(cur, config)  # DuckDB's catalog as it was left: no rerun in it
        store.reopen()  # a clean catalog again (else the next CREATE fails at once, not out of memory)
        ran_out.clear()  # once more, through the publication
    assert ran_out == ["facts of appointments"]
    assert "(facts of appointments ran out): it ran with DuckDB's default" in capsys.readouterr().err
    with Warehouse.open(db=db, config=tmp_path / "clinic-kpis.toml", read_only=True) as wh:
        assert set(wh.compute("no_show_rate").attrs["answered_from"].values()) == {"results"}
        assert wh.cursor().execute("SELECT count(*) FROM serving.facts_appointments").fetchone()[0] > 0


def test_a_files_parse_gives_back_what_it_freed_before_the_files_writes(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse's memory (glibc's heap, Arrow's pool) is given back once its last chunk is read:
    the file's writes and COMMIT then run under DuckDB's limit without it beside them. Only the young
    generation is collected: the parse made its objects with the collector paused, and a full
    collection walked every older object of the process too (0.03 s CPU a file)."""
    events: list[str] = []
    phase = Loader._phase
    monkeypatch.setattr(ingest_run, "release_freed_memory", lambda generation=2: events.append(f"release {generation}"))

    def writing(self: Loader, *args: object) -> None:
        events.append("writes")
        phase(self, *args)

    monkeypatch.setattr(Loader, "_phase", writing)
    result = load_one(warehouse, FIXTURES / "vendor" / "north_appointments_2025.csv")
    assert result.status == "succeeded" and result.inserted > 0, result
    assert events[0] == "release 0" and events.count("release 0") == 1 and "writes" in events, events


def test_a_young_collection_frees_the_cycles_made_while_the_collector_was_paused() -> None:
    """What `release_freed_memory(generation=0)` relies on after a file's parse: objects made while
    the collector is paused stay in the young generation, so the young collection finds their cycles."""
    gc.collect()
    gc.disable()
    try:
        cycle = _Node()
        cycle.other = _Node()
        cycle.other.other = cycle
        gone = weakref.ref(cycle)
        del cycle
        storage.release_freed_memory(generation=0)
        assert gone() is None
    finally:
        gc.enable()


class _Node:
    other: _Node | None = None
