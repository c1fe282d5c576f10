"""What `make test` prints besides pass/fail: progress of the long tests, and how to run the skipped ones.

A small test module runs under a real pytest in a subprocess, with this suite's conftest as a
plugin, as on a fresh clone (no external files, not CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

MODULE = """
def test_a_long_one(progress):
    progress("first half done")
    progress("second half done")

def test_on_real_files(external):
    pass
"""


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(MODULE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_") and k != "CI"}
    env |= {"CLINIC_KPIS_EXTERNAL": str(tmp_path / "no-such-folder"), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", *args]
    return subprocess.run(
        [*command, "--rootdir", str(tmp_path), "test_sample.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_skipped_external_tests_are_explained_in_one_line(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    line = (
        f"1 test(s) on real third-party files skipped: none at {tmp_path / 'no-such-folder'}. "
        "tests/EXTERNAL.md says where to get them; then set CLINIC_KPIS_EXTERNAL to their folder."
    )
    assert done.stdout.count(line) == 1, done.stdout
    assert (REPO / "tests" / "EXTERNAL.md").is_file()


def test_a_long_test_prints_its_progress_as_it_goes(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "-q")
    lines = done.stdout.splitlines()
    assert "  test_a_long_one: first half done (0 s)" in lines, done.stdout
    assert "  test_a_long_one: second half done (0 s)" in lines
    assert "first half done" not in run_pytest(tmp_path, "-qq").stdout  # quiet when asked to be
