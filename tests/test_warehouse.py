"""The warehouse: DDL applied once, migrations forward-only, constraints enforced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from kpis import Warehouse, storage
from kpis.errors import ConfigError, SchemaVersionError, WarehouseError
from kpis.storage import _BOOTSTRAP, Migration, latest_schema_version, migrations
from tests.cli_helpers import run_cli
from tests.memory_faults import out_of_memory_creating

REQUIRED_TABLES = {
    "locations",
    "providers",
    "payers",
    "appointments",
    "encounters",
    "claims",
    "claim_lines",
    "remittances",
    "remittance_adjustments",
    "ledger",
    "calls",
    "referrals",
    "portal_messages",
    "slots",
    "ingest_runs",
    "rejects",
    "schema_migrations",
}


def ddl_tables() -> set[str]:
    """Table names declared in the shipped DDL files (read independently of the warehouse), schema main."""
    names = set()
    for mig in migrations():
        names |= set(re.findall(r"CREATE TABLE (\w+)\s*\(", mig.sql))
        names -= set(re.findall(r"DROP TABLE (\w+)", mig.sql))
        for old, new in re.findall(r"ALTER TABLE (\w+) RENAME TO (\w+)", mig.sql):  # a table rebuilt
            names = (names - {old}) | {new}
    return names | {"schema_migrations"}


def test_new_warehouse_has_every_table_of_the_ddl(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert set(wh.tables()) == ddl_tables()
        assert set(wh.tables()) >= REQUIRED_TABLES
        assert wh.schema_version() == latest_schema_version()


def test_every_table_states_its_grain(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        rows = (
            wh.cursor()
            .execute("SELECT table_name, comment FROM duckdb_tables() WHERE table_name <> 'schema_migrations'")
            .fetchall()
        )
    missing = [name for name, comment in rows if not comment or not comment.startswith("One row per")]
    assert missing == []


def test_every_table_has_a_key(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        cur = wh.cursor()
        with_pk = {
            r[0]
            for r in cur.execute(
                "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
            ).fetchall()
        }
        # the fact tables and record_versions (migrations 008, 009) have theirs declared in
        # table_keys and kept by the loader, one row per key, without a key index: DuckDB holds
        # the index of the rows a load adds in memory, unspillable (issue 22)
        declared = {r[0] for r in cur.execute("SELECT table_name FROM table_keys").fetchall()}
        assert not with_pk & declared
        assert set(wh.tables()) - with_pk == declared
        assert {"appointments", "calls", "ledger", "slots", "record_versions"} <= declared


def test_reopening_is_a_noop(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with Warehouse(path) as wh:
        wh.cursor().execute("INSERT INTO locations (location_id, name, source) VALUES ('EAST', 'Eastside', 'test')")
    for _ in range(2):
        with Warehouse(path) as wh:
            cur = wh.cursor()
            assert cur.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(migrations())
            assert cur.execute("SELECT name FROM locations").fetchall() == [("Eastside",)]


def test_a_read_only_snapshot_is_not_reopened(tmp_path: Path) -> None:
    """`Store.reopen` is a writer's (its rerun after running out of memory): a read-only warehouse would
    attach the file published since it opened, under the caches of the snapshot it opened."""
    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    with Warehouse(path, read_only=True) as wh:
        with pytest.raises(WarehouseError, match="is open read-only: open it again for the file published now"):
            wh.reopen()
        assert wh.cursor().execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(migrations())


def test_every_cursor_reads_instants_in_utc_whatever_the_machines_zone(tmp_path: Path) -> None:
    """A cursor is its own DuckDB connection and takes the machine's zone unless set: on a machine in
    Los Angeles, 03:00 UTC on New Year's Day cast to a date was still the last day of the year."""
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    script = textwrap.dedent(
        f"""
        from kpis.storage import Store
        ask = "SELECT current_setting('TimeZone'), CAST(TIMESTAMPTZ '2025-01-01 03:00:00+00' AS DATE)::VARCHAR"
        with Store({str(db)!r}) as store:
            print(store.cursor().execute(ask).fetchone())
            with store.transaction(kpi_data=False) as cur:
                print(cur.execute(ask).fetchone())
        with Store({str(db)!r}, read_only=True) as store:
            print(store.cursor().execute(ask).fetchone())
        """
    )
    env = {**os.environ, "TZ": "America/Los_Angeles", "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["('UTC', '2025-01-01')"] * 3, done.stdout


def test_a_writer_checkpoints_so_its_wal_does_not_grow_with_every_update(tmp_path: Path) -> None:
    """DuckDB checkpoints a write-ahead log past `checkpoint_threshold` at commit, unless another
    transaction is open; a result left open by opening the warehouse was one, so at 10 M a
    billing load's updates piled up 4.5 GB of WAL beside its copy."""
    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    wal = tmp_path / "w.duckdb.wal"
    with Warehouse(path) as wh:
        with wh.transaction(tracked=True) as cur:
            cur.execute("SET checkpoint_threshold = '1MB'")
            cur.execute(
                "INSERT INTO locations (location_id, name, source) "
                "SELECT 'L' || i, repeat('x', 200), 'test' FROM range(20000) AS t(i)"
            )
        sizes = []
        for _ in range(4):  # updates are logged row by row: each commit writes ~4 MB of WAL
            with wh.transaction(tracked=True) as cur:
                cur.execute("UPDATE locations SET name = name || 'y'")
            sizes.append(wal.stat().st_size if wal.exists() else 0)
        assert max(sizes) > 3_000_000  # the updates did write a WAL
        assert max(sizes) < 6_000_000, f"the WAL grew with every update: {sizes} bytes"
        wh.cursor().execute("CHECKPOINT")  # without the fix: "there are other write transactions active"


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'from_the_future')")
    con.close()
    with pytest.raises(SchemaVersionError, match=r"schema version 999.*only knows up to version \d+.*upgrade"):
        Warehouse(path)
    with pytest.raises(SchemaVersionError, match="999"):
        Warehouse(path, read_only=True)


def test_read_only_needs_an_existing_current_file(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="no warehouse at .*clinic-kpis init"):
        Warehouse(tmp_path / "absent.duckdb", read_only=True)
    stale = tmp_path / "stale.duckdb"
    duckdb.connect(str(stale)).close()  # a DuckDB file with no schema yet
    with pytest.raises(SchemaVersionError, match="needs migrating.*clinic-kpis init"):
        Warehouse(stale, read_only=True)


def test_where_the_demo_ran_a_missing_warehouse_points_at_the_demos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the repository after `make demo`, `init` would make an empty warehouse: the demo's is the one to read."""
    plain = "no warehouse at clinic_kpis.duckdb: create one with `clinic-kpis init --db clinic_kpis.duckdb`"
    with pytest.raises(WarehouseError, match=re.escape(plain)):
        Warehouse.open(read_only=True)
    # what `clinic-kpis demo` leaves in ./demo: its config, naming its warehouse
    assert run_cli(capsys, "init", "--config", "demo/clinic-kpis.toml", "--db", "demo/clinic_kpis.duckdb").code == 0
    hint = (
        "no warehouse at clinic_kpis.duckdb; the demo's is in demo/: add --config demo/clinic-kpis.toml "
        '(in Python: Warehouse.open(config="demo/clinic-kpis.toml")), or create your own with `clinic-kpis init`'
    )
    with pytest.raises(WarehouseError) as caught:
        Warehouse.open(read_only=True)
    assert str(caught.value) == hint
    for command in (["report", "build"], ["scorecard"], ["dashboard"]):
        res = run_cli(capsys, *command)
        assert res.code == 1 and res.err == f"error: {hint}\n", command
    # the hint, followed as given, opens the demo's warehouse
    with Warehouse.open(config="demo/clinic-kpis.toml", read_only=True) as wh:
        assert wh.path == (tmp_path / "demo" / "clinic_kpis.duckdb")
    assert not (tmp_path / "clinic_kpis.duckdb").exists()
    # a warehouse named on purpose gets the plain advice
    with pytest.raises(WarehouseError, match=re.escape("no warehouse at other.duckdb: create one with")):
        Warehouse.open("other.duckdb", read_only=True)


def test_read_only_warehouse_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    with Warehouse(path, read_only=True) as wh:
        assert wh.schema_version() == latest_schema_version()
        with pytest.raises(WarehouseError, match="read-only"), wh.transaction():
            pass
        with pytest.raises(duckdb.Error):
            wh.cursor().execute("INSERT INTO locations (location_id, source) VALUES ('X', 't')")


def test_not_a_duckdb_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are not the tables you are looking for\n" * 200)
    with pytest.raises(WarehouseError, match="notes.duckdb"):
        Warehouse(path)


def test_failed_transaction_leaves_warehouse_unchanged(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        with pytest.raises(duckdb.ConstraintException), wh.transaction() as cur:
            cur.execute("INSERT INTO locations (location_id, source) VALUES ('A', 't')")
            cur.execute("INSERT INTO locations (location_id, source) VALUES ('A', 't')")
        assert wh.cursor().execute("SELECT count(*) FROM locations").fetchone()[0] == 0


APPT = (
    "INSERT INTO appointments (source, appointment_id, scheduled_start, scheduled_minutes, status) "
    "VALUES ('t', ?, TIMESTAMPTZ '2026-10-01 14:00:00+00', ?, ?)"
)


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        (APPT, ["a1", 20, "showed_up"]),  # not a canonical status
        (APPT, ["a2", -15, "fulfilled"]),  # negative duration
        (APPT, ["a3", 0, "fulfilled"]),  # zero-length appointment
        (
            "INSERT INTO encounters (source, encounter_id, status, checked_in_at, checked_out_at) "
            "VALUES ('t', 'e1', 'finished', TIMESTAMPTZ '2026-10-01 14:30:00+00', "
            "TIMESTAMPTZ '2026-10-01 14:00:00+00')",
            [],
        ),  # checked out before checking in
        (
            "INSERT INTO calls (source, call_id, entered_at, outcome, wait_seconds) "
            "VALUES ('t', 'c1', TIMESTAMPTZ '2026-10-01 14:00:00+00', 'answered', -3)",
            [],
        ),
        (
            "INSERT INTO payers (payer_id, payer_class, source) VALUES ('P', 'private', 't')",
            [],
        ),
        (
            "INSERT INTO remittance_adjustments (remittance_id, seq, group_code, reason_code, amount, source) "
            "VALUES ('r', 1, 'XX', '45', 1.00, 't')",
            [],
        ),
        (
            "INSERT INTO ingest_runs (started_at, file_path, rows_read, rows_inserted, status) "
            "VALUES (now(), 'f.csv', 10, 9, 'succeeded')",
            [],
        ),  # a succeeded run must balance
    ],
    ids=[
        "bad-status",
        "negative-minutes",
        "zero-minutes",
        "checkout-before-checkin",
        "negative-wait",
        "bad-payer-class",
        "bad-cas-group",
        "unbalanced-run",
    ],
)
def test_constraint_violations_are_rejected(tmp_path: Path, sql: str, params: list) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh, pytest.raises(duckdb.ConstraintException):
        wh.cursor().execute(sql, params)


def test_valid_rows_are_accepted_and_money_is_exact(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "w.duckdb") as wh:
        cur = wh.cursor()
        cur.execute(APPT, ["ok", 20, "noshow"])
        cur.execute(
            "INSERT INTO ledger (entry_id, posted_date, entry_type, amount, source) VALUES "
            "('l1', DATE '2026-10-01', 'charge', 0.10, 't'), ('l2', DATE '2026-10-01', 'charge', 0.20, 't')"
        )
        assert str(cur.execute("SELECT sum(amount) FROM ledger").fetchone()[0]) == "0.30"
        assert cur.execute("SELECT status FROM appointments").fetchall() == [("noshow",)]


def _at_schema(path: Path, version: int, messages: int = 3000) -> None:
    """A warehouse file as a clinic-kpis that shipped migrations up to `version` left it, with portal messages."""
    con = duckdb.connect(str(path))
    con.execute(_BOOTSTRAP)
    for mig in migrations()[:version]:
        con.execute(mig.sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [mig.version, mig.name])
    con.execute(
        "INSERT INTO portal_messages (source, message_id, received_at) SELECT 'test', 'M' || i, "
        f"TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL (i) MINUTE FROM range({messages}) t(i)"
    )
    con.close()


def _version(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    finally:
        con.close()


def _config(tmp_path: Path, limit: str, warehouse: str = "") -> Path:
    path = tmp_path / "clinic-kpis.toml"
    text = f'[warehouse]\npath = "w.duckdb"\n{warehouse}\n[refresh]\nmemory_limit = "{limit}"\n'
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("messages", [3000, 300_000])
def test_a_migration_runs_under_the_refresh_memory_limit_and_again_without_it_if_too_little(
    tmp_path: Path, messages: int
) -> None:
    """Migration 009 rewrites every fact table: under DuckDB's default (80% of RAM) it took 9.2 GB
    at 10 M appointments. It runs under `[refresh] memory_limit`; a limit DuckDB does not know
    stops it in one line before anything changes, and one too small for it (64 KB: not even a
    table's first block fits) is retried under DuckDB's own limit, with the limit in force before
    it back afterwards."""
    db = tmp_path / "w.duckdb"
    _at_schema(db, 8, messages)
    with pytest.raises(ConfigError, match=r"\[refresh\] memory_limit .not a size. is not a size DuckDB knows"):
        Warehouse.open(config=_config(tmp_path, "not a size"))
    assert _version(db) == 8

    default = duckdb.connect(":memory:").execute("SELECT current_setting('memory_limit')").fetchone()[0]
    with Warehouse.open(config=_config(tmp_path, "64KB")) as wh:
        cur = wh.cursor()
        assert wh.schema_version() == latest_schema_version()
        assert cur.execute("SELECT count(*) FROM portal_messages").fetchone()[0] == messages
        assert cur.execute("SELECT current_setting('memory_limit')").fetchone()[0] == default
        (indexes,) = cur.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'portal_messages' "
            "AND constraint_type = 'PRIMARY KEY'"
        ).fetchone()
        assert indexes == 0  # 009 did run


def test_a_migration_that_ran_out_creating_a_table_runs_again_on_the_file_opened_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of memory inside a migration's CREATE, DuckDB can keep the new table's catalog entry after
    the ROLLBACK: the rerun under DuckDB's own limit then failed creating it ("Catalog write-write
    conflict"). It runs on the file opened afresh."""
    db = tmp_path / "w.duckdb"
    _at_schema(db, latest_schema_version())
    created = Migration(latest_schema_version() + 1, "created", "CREATE TABLE created AS SELECT 42 AS a;")
    shipped = migrations()
    monkeypatch.setattr(storage, "migrations", lambda: [*shipped, created])
    migrate, ran_out = storage.Store._migrate, []

    def out_of_memory_once(store: storage.Store, mig: Migration) -> None:
        if not ran_out:  # the first try runs out creating the table (and is rolled back)
            ran_out.append(mig.name)
            store._con.execute("BEGIN TRANSACTION")
            try:
                out_of_memory_creating(store._con, "created")
            finally:
                store._con.execute("ROLLBACK")
        migrate(store, mig)

    monkeypatch.setattr(storage.Store, "_migrate", out_of_memory_once)
    with Warehouse.open(config=_config(tmp_path, "1GB")) as wh:
        assert ran_out == ["created"]
        assert wh.schema_version() == created.version
        assert wh.cursor().execute("SELECT a FROM created").fetchall() == [(42,)]


def test_a_migration_spills_where_the_config_says_and_stops_at_its_cap_in_one_line(tmp_path: Path) -> None:
    """`[warehouse] temp_directory` and `max_temp_size` hold for a migration too (it spills under
    `[refresh] memory_limit`): at the cap it is rolled back with a sentence naming the setting."""
    db = tmp_path / "w.duckdb"
    _at_schema(db, 8, 300_000)
    capped = 'temp_directory = "spill"\nmax_temp_size = "1KB"\n'
    with pytest.raises(WarehouseError) as caught:
        Warehouse.open(config=_config(tmp_path, "8MB", capped))
    assert "migrating the schema to version 9 was rolled back" in str(caught.value)
    assert f"spill folder {tmp_path / 'spill'} reached its cap ([warehouse] max_temp_size)" in str(caught.value)
    assert _version(db) == 8
    with Warehouse.open(config=_config(tmp_path, "8MB", 'temp_directory = "spill"\n')) as wh:
        assert wh.schema_version() == latest_schema_version()
        assert wh.cursor().execute("SELECT count(*) FROM portal_messages").fetchone()[0] == 300_000


def test_a_migration_that_builds_a_key_index_commits_it_under_duckdbs_own_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key index cannot spill, and DuckDB merges it at COMMIT: out of memory there it invalidates
    the database, which no retry survives. So the COMMIT runs under DuckDB's own limit (a future
    migration copying 300,000 rows into a keyed table, under 24 MB, failed without it: 20-28 MB here)."""
    db = tmp_path / "w.duckdb"
    _at_schema(db, latest_schema_version(), 300_000)
    keyed = Migration(
        latest_schema_version() + 1,
        "keyed_copy",
        "CREATE TABLE keyed_copy (source VARCHAR, message_id VARCHAR, PRIMARY KEY (source, message_id)); "
        "INSERT INTO keyed_copy SELECT source, message_id FROM portal_messages;",
    )
    shipped = migrations()
    monkeypatch.setattr(storage, "migrations", lambda: [*shipped, keyed])
    with Warehouse.open(config=_config(tmp_path, "24MB")) as wh:
        assert wh.schema_version() == keyed.version
        assert wh.cursor().execute("SELECT count(*) FROM keyed_copy").fetchone()[0] == 300_000
