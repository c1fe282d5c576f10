"""Shared fixtures: where the external real files are, a clean environment per test, and progress
lines for the long tests (pytest itself shows nothing until a test ends)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest

from kpis import Warehouse
from kpis.config import load_config

REPO = Path(__file__).resolve().parent.parent


def external_dir() -> Path:
    """`../shared/external` (real files written outside this project), or $CLINIC_KPIS_EXTERNAL."""
    return Path(os.environ.get("CLINIC_KPIS_EXTERNAL") or REPO.parent / "shared" / "external")


EXTERNAL_SKIP = "external test files not found at"


@pytest.fixture
def external() -> Path:
    path = external_dir()
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"external test files missing at {path}")
        pytest.skip(f"{EXTERNAL_SKIP} {path}")
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line saying how to run the tests that were skipped for want of the external files."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if EXTERNAL_SKIP in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} test(s) on real third-party files skipped: none at {external_dir()}. "
            "tests/EXTERNAL.md says where to get them; then set CLINIC_KPIS_EXTERNAL to their folder.",
            yellow=True,
            bold=True,
        )


def say(config: pytest.Config, text: str) -> None:
    """`text` on the terminal now, on a line of its own, even while a test's output is captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.get_verbosity() < -1:  # -qq: quiet
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
        reporter.ensure_newline()
        reporter.write_line(f"  {text}")


@pytest.fixture
def progress(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Tell how a long test is getting on: `progress("Overview drawn")` prints `  test_x: Overview drawn (12 s)`."""
    started = time.monotonic()

    def step(text: str) -> None:
        say(request.config, f"{request.node.name}: {text} ({time.monotonic() - started:.0f} s)")

    return step


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may read the developer's config, warehouse or secret, or write into the repo."""
    for var in ("CLINIC_KPIS_CONFIG", "CLINIC_KPIS_DB", "CLINIC_KPIS_SECRET", "CLINIC_KPIS_SMTP_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def require_tool(name: str) -> str:
    """Path of a system tool (chromium, pdftoppm); skip without it unless CI demands it."""
    found = os.environ.get("CHROMIUM_PATH") if name == "chromium" else None
    found = found or shutil.which(name)
    if found:
        return found
    if os.environ.get("CLINIC_KPIS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{name} is required here (CLINIC_KPIS_REQUIRE_BROWSER=1) but not installed")
    pytest.skip(f"{name} not installed")


@contextmanager
def taken_port(port: int = 0) -> Iterator[int]:
    """A port another program listens on (127.0.0.1; any free one by default), for the length of the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock.getsockname()[1]


# -- the simulated practice shared by the end-to-end tests --------------------------------------

SIMULATED_CONFIG = """\
[practice]
name = "Riverbend Family Medicine"
timezone = "America/New_York"

[warehouse]
path = "clinic_kpis.duckdb"

[locations]
EAST = "Eastside"
WEST = "Westside"
NORTH = "Northside"
"""

# 14 months, so every month of the last year has a year-ago month; half volume keeps it quick.
SIMULATED_ARGS = ("--months", "14", "--providers", "6", "--scale", "0.5", "--end", "2026-09-30", "--seed", "7")


@dataclass(frozen=True)
class SimulatedPractice:
    """A practice simulated by `clinic-kpis sample` and loaded by `clinic-kpis ingest`, as a user would."""

    directory: Path
    exports: Path
    db: Path
    config: Path

    @property
    def truth(self) -> dict:
        return json.loads((self.exports / "truth.json").read_text(encoding="utf-8"))

    def open(self) -> Warehouse:
        """Read-only, as the dashboard and the report open it (tests must not change it)."""
        return Warehouse.open(config=load_config(self.config, db=self.db), read_only=True)


def clinic_kpis(
    *args: str, cwd: Path, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a clean environment (no CLINIC_KPIS_* from the caller; `env` on top)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}, **(env or {})}
    command = [sys.executable, "-c", "from kpis.cli import main; main()", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def simulated_practice(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> SimulatedPractice:
    """One simulated practice per test session: init, sample, ingest through the real CLI."""
    directory = tmp_path_factory.mktemp("simulated")
    (directory / "clinic-kpis.toml").write_text(SIMULATED_CONFIG, encoding="utf-8")
    started = time.monotonic()  # a minute or two: say what is happening
    for args in (["init"], ["sample", "--out", "exports", *SIMULATED_ARGS], ["ingest", "exports"]):
        elapsed = time.monotonic() - started
        say(request.config, f"the session's simulated practice: clinic-kpis {args[0]} ({elapsed:.0f} s)")
        done = clinic_kpis(*args, cwd=directory)
        assert done.returncode == 0, f"clinic-kpis {' '.join(args)}: {done.stderr}"
    return SimulatedPractice(
        directory=directory,
        exports=directory / "exports",
        db=directory / "clinic_kpis.duckdb",
        config=directory / "clinic-kpis.toml",
    )
