"""Writers work on a copy and publish it by rename: readers never wait, nothing is ever half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kpis import Warehouse
from kpis.config import load_config
from kpis.errors import WarehouseError
from kpis.publication import current_writer, next_path, writing

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
