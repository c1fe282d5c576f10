"""Shared fixtures: where the external real files are, a clean environment per test, and progress
lines for the long tests (pytest itself shows nothing until a test ends)."""

from __future__ import annotations

import importlib.util
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
from typing import Any, NoReturn

import argon2
import pytest

from kpis import Warehouse
from kpis.config import load_config

REPO = Path(__file__).resolve().parent.parent
# argon2 at its cheapest (~0.1 ms instead of ~0.25 s): users added by tests; verifying reads the hash's own parameters
CHEAP_HASHER = argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


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


def require_tool(name: str, demanded_by: str = "CLINIC_KPIS_REQUIRE_BROWSER") -> str:
    """Path of a system tool (chromium, pdftoppm, java); skip without it unless CI demands it."""
    found = os.environ.get("CHROMIUM_PATH") if name == "chromium" else None
    found = found or shutil.which(name)
    if found:
        return found
    missing(f"{name} is not installed", demanded_by)


def missing(what: str, demanded_by: str) -> NoReturn:
    """Skip a test for want of `what`, or fail it where the environment variable says it must run."""
    if os.environ.get(demanded_by) == "1":
        pytest.fail(f"{what}, but it is required here ({demanded_by}=1)")
    pytest.skip(what)


# -- one Spark session per run ---------------------------------------------------------------

# RECIPES.md, Spark local: one core, no UI, driver on loopback (kpis.spark does those for a local
# master), one shuffle partition, and a JVM that starts in half the time. For the tiny fixtures,
# compiling each query to Java (whole-stage codegen) and re-planning it (adaptive execution) cost
# more than they save: off here, which makes the Spark tests a third faster. The test on the
# simulated practice turns both back on, as a user's session has them.
SPARK_TEST_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
}


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local Spark session shared by every Spark test (starting one takes ~10 s).

    Skipped without Java or pyspark (`pip install -e ".[dev,spark]"`), unless
    CLINIC_KPIS_REQUIRE_SPARK=1 (as .ci/run sets), which makes either missing a failure.
    """
    require_tool("java", "CLINIC_KPIS_REQUIRE_SPARK")
    if importlib.util.find_spec("pyspark") is None:
        missing("pyspark is not installed", "CLINIC_KPIS_REQUIRE_SPARK")
    from kpis.spark import spark_session

    session = spark_session("local[1]", SPARK_TEST_CONF)
    yield session
    session.stop()


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


@pytest.fixture(scope="session")
def practice_with_changes(
    simulated_practice: SimulatedPractice, tmp_path_factory: pytest.TempPathFactory
) -> SimulatedPractice:
    """The session's practice with the simulator's change log imported by `clinic-kpis changes import`,
    in a copy (the shared practice stays without one): reminder calls at EAST, a placebo at WEST."""
    directory = tmp_path_factory.mktemp("with-changes") / "practice"
    exports = ("fhir", "vendor", "billing", "phones", "portal", "*.wal")  # not needed: the warehouse is loaded
    shutil.copytree(simulated_practice.directory, directory, ignore=shutil.ignore_patterns(*exports))
    done = clinic_kpis("changes", "import", "exports/change_log.csv", cwd=directory)
    assert done.returncode == 0, done.stderr
    return SimulatedPractice(
        directory=directory,
        exports=directory / "exports",
        db=directory / "clinic_kpis.duckdb",
        config=directory / "clinic-kpis.toml",
    )


@pytest.fixture(scope="session")
def monthly_practice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Path]]]:
    """A practice's exports cut into four monthly exports (tests/monthly_exports.py), with a config.

    The warehouse is created but empty: a test loads the months it needs (and must copy the
    directory if it changes it and others use it too).
    """
    from tests.monthly_exports import SAMPLE, split_by_month

    directory = tmp_path_factory.mktemp("monthly")
    (directory / "clinic-kpis.toml").write_text(SIMULATED_CONFIG, encoding="utf-8")
    for args in (["init"], ["sample", "--out", "exports", *SAMPLE]):
        done = clinic_kpis(*args, cwd=directory)
        assert done.returncode == 0, done.stderr
    return directory, split_by_month(directory / "exports", directory / "monthly")
