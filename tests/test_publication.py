"""Writers work on a copy and publish it by rename: readers never wait, nothing is ever half-written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kpis import Warehouse
from kpis.config import load_config
from kpis.errors import WarehouseError
from kpis.publication import current_writer, next_path, writing
from tests.conftest import SIMULATED_CONFIG, SimulatedPractice, clinic_kpis

CONFIG = """\
[practice]
name = "Copy Test"
timezone = "America/New_York"

[warehouse]
path = "w.duckdb"
"""


@pytest.fixture
def config(tmp_path: Path):
    (tmp_path / "clinic-kpis.toml").write_text(CONFIG, encoding="utf-8")
    cfg = load_config(tmp_path / "clinic-kpis.toml")
    with writing(cfg, what="init") as store, store.transaction() as cur:
        cur.execute("INSERT INTO locations VALUES ('EAST', 'Eastside', 'test', 1)")
    return cfg


def locations(db: Path) -> list[str]:
    with Warehouse(db, read_only=True) as wh:
        return [r[0] for r in wh.cursor().execute("SELECT location_id FROM locations ORDER BY 1").fetchall()]


def test_a_failed_write_leaves_the_published_file_as_it_was(config) -> None:
    db = config.db_path
    before = (db.stat().st_ino, db.read_bytes())
    with pytest.raises(RuntimeError, match="the load broke"), writing(config, what="load") as store:
        with store.transaction() as cur:
            cur.execute("INSERT INTO locations VALUES ('WEST', 'Westside', 'test', 2)")
        raise RuntimeError("the load broke")
    assert (db.stat().st_ino, db.read_bytes()) == before
    assert locations(db) == ["EAST"]
    assert current_writer(db) is None


def test_a_reader_keeps_its_snapshot_while_a_writer_publishes(config) -> None:
    db = config.db_path
    with Warehouse(db, read_only=True, config=config) as reader:
        with writing(config, what="load") as store, store.transaction() as cur:
            cur.execute("INSERT INTO locations VALUES ('WEST', 'Westside', 'test', 2)")
            assert current_writer(db).what == "load"
        # the reader was never blocked, and still reads the file it opened
        assert [r[0] for r in reader.cursor().execute("SELECT location_id FROM locations").fetchall()] == ["EAST"]
    assert locations(db) == ["EAST", "WEST"]  # the next open sees the published file


def test_a_killed_writer_leaves_the_published_file_and_the_next_one_proceeds(config) -> None:
    db = config.db_path
    killed = (
        "import os, sys; from kpis.config import load_config; from kpis.publication import writing\n"
        "with writing(load_config(sys.argv[1]), what='load') as store:\n"
        "    with store.transaction() as cur:\n"
        "        cur.execute(\"INSERT INTO locations VALUES ('NORTH', 'Northside', 'test', 3)\")\n"
        "    os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", killed, str(config.path)], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert next_path(db).exists()  # what it left
    assert locations(db) == ["EAST"]
    with writing(config, what="load") as store, store.transaction() as cur:
        cur.execute("INSERT INTO locations VALUES ('WEST', 'Westside', 'test', 2)")
    assert locations(db) == ["EAST", "WEST"]


def test_a_second_writer_waits_and_is_told_who_holds_the_lock(config) -> None:
    db = config.db_path
    told = []
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with writing(config, what="load"):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    try:
        held = r"another load \(pid \d+\) since .* still holds the write lock"
        with (
            pytest.raises(WarehouseError, match=held),
            writing(config, what="refresh", wait_seconds=0.5, on_wait=told.append),
        ):
            pass
        assert [w.pid for w in told] == [os.getpid()]
        running = Warehouse.load_running(db)
        assert running.what == "load" and running.started_at is not None
    finally:
        release.set()
        thread.join()
    assert Warehouse.load_running(db) is None


def test_the_next_writer_starts_from_the_copy_made_after_publishing(config) -> None:
    """The full copy is made after a publication, off the next load's way; a stale one is not used."""
    db = config.db_path
    copy, note = next_path(db), db.with_name(db.name + ".next.ready")
    assert copy.exists() and json.loads(note.read_text())["inode"] == db.stat().st_ino
    standby = copy.stat().st_ino
    with writing(config, what="load") as store, store.transaction() as cur:
        cur.execute("INSERT INTO locations VALUES ('WEST', 'Westside', 'test', 2)")
    assert db.stat().st_ino == standby  # the prepared copy became the published file
    with Warehouse(db, config=config) as direct, direct.transaction() as cur:  # a writer outside clinic-kpis
        cur.execute("INSERT INTO locations VALUES ('NORTH', 'Northside', 'test', 3)")
    with writing(config, what="load"):  # the copy made before that write is stale: not used
        pass
    assert locations(db) == ["EAST", "NORTH", "WEST"]


def _capped(directory: Path, cap: str, spill: str = "", memory: str = "32MB") -> None:
    """The simulated practice's config with DuckDB's spill capped at `cap` (in the folder `spill`, if
    given) and a refresh's memory below what its full build holds (it must spill; with much less,
    DuckDB may fail an allocation it cannot spill before it tries to spill)."""
    folder = f'temp_directory = "{spill}"\n' if spill else ""
    text = SIMULATED_CONFIG.replace(
        'path = "clinic_kpis.duckdb"\n', f'path = "clinic_kpis.duckdb"\nmax_temp_size = "{cap}"\n{folder}'
    )
    (directory / "clinic-kpis.toml").write_text(text + f'\n[refresh]\nmemory_limit = "{memory}"\n', encoding="utf-8")


def _one_line_disk_error(
    done: subprocess.CompletedProcess[str], directory: Path, what: str, spill: str = "clinic_kpis.duckdb.next.tmp"
) -> None:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert f"the {what} was rolled back, nothing was published" in lines[0]
    assert f"spill folder {directory / spill} reached its cap ([warehouse] max_temp_size)" in lines[0]
    assert f" GB free on the disk holding {directory}" in lines[0] and "temp_directory" in lines[0]
    assert not next_path(directory / "clinic_kpis.duckdb").exists()
    assert not (directory / "clinic_kpis.duckdb.next.tmp").exists()


def test_a_refresh_whose_spill_passes_its_cap_is_rolled_back_with_one_line(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    """DuckDB's own cap on its spill folder (`[warehouse] max_temp_size`, no mock) hit by a full
    build: one line naming the folder, the setting and the disk's free space, exit 1, the
    published file as it was; with room to spill the same refresh publishes."""
    for name in ("clinic_kpis.duckdb", ".clinic-kpis.secret"):
        shutil.copy(simulated_practice.directory / name, tmp_path / name)
    db = tmp_path / "clinic_kpis.duckdb"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    _capped(tmp_path, "1KB")
    _one_line_disk_error(clinic_kpis("refresh", "--full", cwd=tmp_path), tmp_path, "refresh")
    _capped(tmp_path, "1KB", spill="spill")  # DuckDB's spill in a folder of one's choice
    _one_line_disk_error(clinic_kpis("refresh", "--full", cwd=tmp_path), tmp_path, "refresh", spill="spill")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    _capped(tmp_path, "2GB")
    done = clinic_kpis("refresh", "--full", cwd=tmp_path)
    assert done.returncode == 0 and "rebuilt: appointments" in done.stdout, done.stderr


def test_a_load_whose_refresh_spill_passes_its_cap_is_rolled_back_with_one_line(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    """The same for `clinic-kpis ingest`: its files loaded, the store's first build spilled past the
    cap; the load is rolled back (the warehouse stays empty) and says so in one line."""
    _capped(tmp_path, "1KB", memory="8MB")  # the portal's messages alone: a smaller build
    assert clinic_kpis("init", cwd=tmp_path).returncode == 0
    done = clinic_kpis("ingest", str(simulated_practice.exports / "portal"), cwd=tmp_path)
    _one_line_disk_error(done, tmp_path, "load")
    with (
        Warehouse.open(tmp_path / "clinic_kpis.duckdb", config=tmp_path / "clinic-kpis.toml", read_only=True) as wh,
        wh.cursor() as cur,
    ):
        assert cur.execute("SELECT count(*) FROM portal_messages").fetchone() == (0,)
