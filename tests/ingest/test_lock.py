"""Issue 19 item 6, as the serving layer settles it (issue 15): a load writes a copy of the warehouse,
so a reader (the dashboard keeps the published file open) never holds it up; another load or refresh
does, and an ingest waits for it, bounded and saying so, instead of failing at random; when it gives
up, its one-line error says what to do."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kpis.warehouse import Warehouse
from tests.cli_helpers import run_cli
from tests.ingest.conftest import FIXTURES, SECRET

# A second process holding the warehouse open read-only, as the dashboard does.
READER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)
# A second process writing the next snapshot, as another ingest or a refresh does.
WRITER = textwrap.dedent(
    """
    import sys, time
    from kpis.config import load_config
    from kpis.publication import writing
    with writing(load_config(sys.argv[3], db=sys.argv[1]), what="refresh"):
        print("open", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def hold(script: str, db: Path, config: Path, seconds: float) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", script, str(db), str(seconds), str(config)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


@pytest.fixture
def practice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    config = tmp_path / "clinic-kpis.toml"
    config.write_text("")
    return db, config


def test_a_reader_never_holds_up_an_ingest(practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db, config = practice
    config.write_text("[ingest]\nlock_wait_seconds = 1\n")
    reader = hold(READER, db, config, 60)
    try:
        res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(db), "--config", str(config))
    finally:
        reader.kill()
        reader.wait(timeout=30)
    assert res.code == 0, res.err
    assert "waiting" not in res.err and "succeeded" in res.out
    with Warehouse(db, read_only=True) as wh:
        assert wh.cursor().execute("SELECT count(*) FROM portal_messages").fetchone()[0] > 0


def test_an_ingest_waits_for_another_writer_and_then_loads(
    practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = practice
    config.write_text("[ingest]\nlock_wait_seconds = 60\n")
    writer = hold(WRITER, db, config, 3)
    try:
        res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(db), "--config", str(config))
    finally:
        writer.wait(timeout=60)
    assert res.code == 0, res.err
    note = res.err.splitlines()[0]
    assert note.startswith(f"note: waiting for {db}: a refresh (PID {writer.pid}) since ") and "is writing it" in note
    assert "succeeded" in res.out
    with Warehouse(db, read_only=True) as wh:
        assert wh.cursor().execute("SELECT count(*) FROM portal_messages").fetchone()[0] > 0


def test_an_ingest_gives_up_after_the_wait_with_one_line_that_says_what_to_do(
    practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = practice
    config.write_text("[ingest]\nlock_wait_seconds = 1\n")
    writer = hold(WRITER, db, config, 60)
    try:
        res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(db), "--config", str(config))
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert res.code == 1
    error = res.err.splitlines()[-1]
    assert error.startswith(f"error: {db} is still being written by refresh (PID {writer.pid}) after waiting 1 s")
    assert error.endswith("run the ingest again when it is done, or wait longer with [ingest] lock_wait_seconds")
    assert "Traceback" not in res.err
    assert res.out == ""  # nothing was loaded


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'memory = "1GB"',
            "[ingest]: unknown key(s) memory; known: profiles, memory_limit, lock_wait_seconds, earliest_date, "
            "latest_years_ahead",
        ),
        ('lock_wait_seconds = "soon"', "[ingest] lock_wait_seconds must be a number of seconds, 0 or more, got 'soon'"),
        ("lock_wait_seconds = -5", "[ingest] lock_wait_seconds must be a number of seconds, 0 or more, got -5"),
        (
            'earliest_date = "last year"',
            "[ingest] earliest_date must be a date such as \"1980-01-01\", got 'last year'",
        ),
        (
            "latest_years_ahead = 2.5",
            "[ingest] latest_years_ahead must be a whole number of years from 0 to 100, got 2.5",
        ),
        ("profiles = 3", '[ingest] profiles must be a list of paths, e.g. ["profiles/my_system.toml"]'),
        ("memory_limit = 1", '[ingest] memory_limit must be a size such as "1GB", got 1'),
    ],
)
def test_ingest_config_mistakes_name_the_file_and_key(
    practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str], table: str, message: str
) -> None:
    """Issue 14 item 5: `[ingest]` is validated like `[report]`: a typo or a wrong kind of value is
    one line naming the config file and the key, not a setting silently ignored or a traceback."""
    db, config = practice
    config.write_text(f"[ingest]\n{table}\n")
    res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(db), "--config", str(config))
    assert res.code == 1
    assert res.err == f"error: {config}: {message}\n"
    assert res.out == ""


def test_a_memory_limit_duckdb_cannot_read_is_one_line_and_loads_nothing(
    practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, config = practice
    config.write_text('[ingest]\nmemory_limit = "lots"\n')
    res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(db), "--config", str(config))
    assert res.code == 1
    assert res.err.startswith(f"error: {config}: [ingest] memory_limit 'lots' is not a size DuckDB knows (")
    assert res.err.count("\n") == 1 and "Traceback" not in res.err
    assert res.out == ""


def test_a_file_that_needs_more_than_the_memory_limit_loads_again_under_duckdbs_own(
    practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Part of DuckDB's work cannot spill (a large warehouse's key indexes), so a limit can be too
    small for a file: its transaction is rolled back and it loads again, with a warning, not a traceback."""
    db, config = practice
    config.write_text('[ingest]\nmemory_limit = "1MB"\n')
    res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(db), "--config", str(config))
    assert res.code == 0 and "Traceback" not in res.err, res.err
    warning = " ".join(res.err.split())
    assert "portal_messages.csv: it needed more memory than [ingest] memory_limit = 1MB" in warning
    with Warehouse.open(db=db, read_only=True) as wh, wh.cursor() as cur:
        runs = cur.execute("SELECT status, rows_read, rows_inserted, rows_rejected FROM ingest_runs").fetchall()
        assert runs == [("succeeded", 4, 3, 1)]  # once: the rolled-back first try left no run behind
        assert cur.execute("SELECT count(*) FROM portal_messages").fetchone()[0] == 3
        assert cur.execute("SELECT count(*) FROM rejects").fetchone()[0] == 1


def _portal_messages(path: Path, count: int) -> Path:
    """A portal export of `count` messages: enough rows that a load under a few MB spills."""
    with path.open("w", encoding="utf-8") as out:
        out.write(
            "message_id,thread_id,patient_mrn,location,provider_npi,category,received_at,auto_reply_at,"
            "first_staff_reply_at\n"
        )
        for n in range(count):
            out.write(
                f"M{n},TH{n},MRN{n:07d},EAST,1111111111,refill,2025-03-03T08:15:00-05:00,"
                "2025-03-03T08:15:05-05:00,2025-03-03T11:00:00-05:00\n"
            )
    return path


def test_a_file_whose_spill_reaches_its_cap_fails_naming_the_cap_not_memory(
    practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB raises a spill past `[warehouse] max_temp_size` as out of memory: the file fails once,
    in one line naming the cap (it was loaded again under DuckDB's own limit, with a warning that it
    needed more memory than `[ingest] memory_limit`); with room to spill the same file loads."""
    db, config = practice
    export = _portal_messages(db.parent / "portal_messages.csv", 60_000)
    config.write_text('[warehouse]\nmax_temp_size = "1KB"\n\n[ingest]\nmemory_limit = "32MB"\n')
    res = run_cli(capsys, "ingest", str(export), "--db", str(db), "--config", str(config))
    assert res.code == 1 and "warning" not in res.err, res.err
    message = (
        f"{export}: DuckDB's spill folder {db.parent / 'w.duckdb.next.tmp'} reached its cap ([warehouse] "
        "max_temp_size) while loading it; nothing of it was loaded. Raise [warehouse] max_temp_size, point "
        "[warehouse] temp_directory at a larger disk, or raise [ingest] memory_limit so DuckDB spills less"
    )
    assert res.err == f"error: {message}\n"
    with Warehouse.open(db=db, read_only=True) as wh, wh.cursor() as cur:
        assert cur.execute("SELECT status, error FROM ingest_runs").fetchall() == [("failed", message)]
        assert cur.execute("SELECT count(*) FROM portal_messages").fetchone()[0] == 0
    config.write_text('[ingest]\nmemory_limit = "32MB"\n')
    res = run_cli(capsys, "ingest", str(export), "--db", str(db), "--config", str(config))
    assert res.code == 0 and res.err == "", res.err
    with Warehouse.open(db=db, read_only=True) as wh, wh.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM portal_messages").fetchone()[0] == 60_000


def test_a_refresh_limit_duckdb_cannot_come_down_to_after_such_a_file_still_publishes_the_load(
    practice: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """After a file loaded under DuckDB's own limit, DuckDB may hold more than `[refresh] memory_limit`
    and refuse to lower it: the refresh runs under the higher limit, and the load is published (it was
    rolled back with 'not a size DuckDB knows' at 10 M appointments)."""
    db, config = practice
    config.write_text('[ingest]\nmemory_limit = "1MB"\n\n[refresh]\nmemory_limit = "1MB"\n')
    res = run_cli(capsys, "ingest", str(FIXTURES / "portal"), "--db", str(db), "--config", str(config))
    assert res.code == 0 and "not a size DuckDB knows" not in res.err, res.err
    with Warehouse.open(db=db, config=config, read_only=True) as wh:
        assert wh.cursor().execute("SELECT count(*) FROM portal_messages").fetchone()[0] == 3
        assert set(wh.compute("portal_response_time").attrs["answered_from"].values()) == {"results"}
