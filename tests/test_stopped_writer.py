"""A writer stopped by SIGTERM (a scheduler's timeout, `kill`, a service stop) rolls back and cleans up.

Killed where it stood, a load or refresh left its copy of the warehouse (`<db>.next`, with its
WAL and DuckDB's spill) on the disk: at 10 M appointments 17 GB, which the next writer only
discards when it runs. SIGTERM now unwinds the command as an error does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kpis.publication import current_writer, next_path
from tests.conftest import SIMULATED_CONFIG, SimulatedPractice, clinic_kpis


def test_a_load_stopped_by_sigterm_rolls_back_removes_its_copy_and_says_so_in_one_line(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    (tmp_path / "clinic-kpis.toml").write_text(SIMULATED_CONFIG, encoding="utf-8")
    assert clinic_kpis("init", cwd=tmp_path).returncode == 0
    db = tmp_path / "clinic_kpis.duckdb"
    before = (db.stat().st_ino, db.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    command = [sys.executable, "-c", "from kpis.cli import main; main()", "ingest", str(simulated_practice.exports)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (writer := current_writer(db)) is None or writer.what != "load" or not next_path(db).exists():
            assert proc.poll() is None, f"the load ended before it could be stopped: {proc.communicate()}"
            assert time.monotonic() < deadline, "the load never took the write lock"
            time.sleep(0.05)
        time.sleep(1.0)  # among the files (the whole practice takes well over ten seconds to load)
        assert proc.poll() is None, "the load ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines()[-1] == "error: stopped by SIGTERM; a load or refresh not yet published was rolled back"
    assert "Traceback" not in err
    assert not next_path(db).exists() and not Path(f"{next_path(db)}.wal").exists()
    assert (db.stat().st_ino, db.read_bytes()) == before  # nothing of the load was published
    assert current_writer(db) is None
