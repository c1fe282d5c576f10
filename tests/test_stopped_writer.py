"""A writer stopped by SIGTERM (a scheduler's timeout, `kill`, a service stop) rolls back and cleans up.

Killed where it stood, a load or refresh left its copy of the warehouse (`<db>.next`, with its
WAL and DuckDB's spill) on the disk: at 10 M appointments 17 GB, which the next writer only
discards when it runs. SIGTERM now unwinds the command as an error does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from kpis.publication import current_writer, next_path
from tests.conftest import SimulatedPractice


def test_a_refresh_stopped_by_sigterm_rolls_back_removes_its_copy_and_says_so_in_one_line(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    directory = tmp_path / "practice"
    exports = ("fhir", "vendor", "billing", "phones", "portal", "*.wal", "*.next*")
    shutil.copytree(simulated_practice.directory, directory, ignore=shutil.ignore_patterns(*exports))
    db = directory / "clinic_kpis.duckdb"
    before = (db.stat().st_ino, db.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    command = [sys.executable, "-c", "from kpis.cli import main; main()", "refresh", "--full"]
    proc = subprocess.Popen(command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (writer := current_writer(db)) is None or writer.what != "refresh":
            assert proc.poll() is None, f"the refresh ended before it could be stopped: {proc.communicate()}"
            assert time.monotonic() < deadline, "the refresh never took the write lock"
            time.sleep(0.05)
        time.sleep(1.0)  # inside the refresh's statements (a full build of this store takes several seconds)
        assert proc.poll() is None, "the refresh ended before it could be stopped"
        assert next_path(db).exists()  # the copy it works on
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines()[-1] == (
        "error: stopped by SIGTERM; any write in progress was rolled back, nothing was published"
    )
    assert "Traceback" not in err
    assert not next_path(db).exists() and not Path(f"{next_path(db)}.wal").exists()
    assert (db.stat().st_ino, db.read_bytes()) == before
    assert current_writer(db) is None
