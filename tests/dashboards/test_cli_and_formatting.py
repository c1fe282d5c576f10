"""`clinic-kpis dashboard` argument handling, and the chart-only formatting (the rest is kpis.formatting)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest

from dashboards.cli import APP, DEFAULT_PORT, streamlit_argv
from dashboards.formatting import axis_title, tick_format
from kpis.catalog import shipped_specs
from kpis.cli_options import serving_port
from kpis.users import add_user
from kpis.warehouse import Warehouse
from tests.cli_helpers import run_cli
from tests.conftest import CHEAP_HASHER as CHEAP
from tests.conftest import clinic_kpis, taken_port


def test_a_taken_port_gives_way_to_the_next_free_one_unless_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    with taken_port() as port:
        capsys.readouterr()
        free = serving_port("127.0.0.1", port, chosen=False)
        assert free > port
        assert capsys.readouterr().err == (
            f"port {port} is in use (perhaps a dashboard still running): serving on port {free} instead\n"
        )
        with pytest.raises(Exception, match=rf"port {port} on 127.0.0.1 is in use .*: stop it, or choose another"):
            serving_port("127.0.0.1", port, chosen=True)


def test_a_taken_port_given_with_port_stops_before_serving_and_names_a_free_one(tmp_path: Path, empty_db: Path) -> None:
    with taken_port() as port:
        done = clinic_kpis("dashboard", "--db", str(empty_db), "--port", str(port), cwd=tmp_path, timeout=120)
    assert done.returncode == 1
    fix = re.fullmatch(
        rf"error: port {port} on 127\.0\.0\.1 is in use \(by another program, perhaps a dashboard still running\): "
        r"stop it, or choose another port, e\.g\. --port (\d+) \(free now\)\n",
        done.stderr,
    )
    assert fix and int(fix[1]) > port, done.stderr  # and nothing was served first


@pytest.mark.slow
def test_with_the_default_port_taken_the_dashboard_serves_on_the_next_free_one(empty_db: Path) -> None:
    with ExitStack() as held:
        with suppress(OSError):  # held here, or by another program already
            held.enter_context(taken_port(DEFAULT_PORT))
        cmd = [sys.executable, "-c", "from kpis.cli import main; main()", "dashboard", "--db", str(empty_db)]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            moved = proc.stderr.readline()
            serving = proc.stderr.readline()
            port = int(re.fullmatch(rf"port {DEFAULT_PORT} is in use .*: serving on port (\d+) instead\n", moved)[1])
            assert serving == f"Serving {empty_db} at http://127.0.0.1:{port} (Ctrl+C stops it)\n"
            deadline = time.monotonic() + 60
            while True:
                with suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as resp:
                    assert resp.read() == b"ok"
                    break
                assert proc.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.3)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_dashboard_without_a_warehouse_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "dashboard", "--db", "missing.duckdb", "--port", "8999")
    assert result.code == 1
    missing = "missing.duckdb"  # named as given, like every other command
    assert result.err.startswith(f"error: no warehouse at {missing}: create one with `clinic-kpis init --db {missing}`")
    assert result.err.count("\n") == 1


def test_dashboard_rejects_a_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "dashboard", "--port", "70000")
    assert result.code == 2
    assert "Invalid value for '--port'" in result.err


def test_streamlit_is_served_headless_on_loopback_from_this_python() -> None:
    argv = streamlit_argv(8600, "127.0.0.1")
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)]
    options = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert options["--server.port"] == "8600"
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert options["--server.fileWatcherType"] == "none"
    assert Path(APP).is_file()


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.20"])
def test_serving_beyond_this_machine_without_sign_in_is_refused_unless_no_auth_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, address: str
) -> None:
    """Issue 19 item 11 warned; issue 20 refuses: `--address 0.0.0.0` would serve the practice to the network."""
    db = str(tmp_path / "w.duckdb")
    Warehouse(db).close()
    served: list[list[str]] = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: served.append(argv))
    refused = run_cli(capsys, "dashboard", "--db", db, "--address", address)
    assert refused.code == 1 and not served and refused.err.count("\n") == 1
    assert refused.err.startswith(f"error: refusing to serve on {address} without sign-in")
    assert "clinic-kpis users add NAME --role owner" in refused.err and "--no-auth" in refused.err
    allowed = run_cli(capsys, "dashboard", "--db", db, "--address", address, "--no-auth")
    assert allowed.code == 0 and served[0][served[0].index("--server.address") + 1] == address
    warning = f"warning: serving on {address} with --no-auth: anyone who can reach"  # after a taken port's notice
    assert any(line.startswith(warning) for line in allowed.err.splitlines())


def test_serving_beyond_this_machine_with_sign_in_needs_no_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        add_user(wh, "ann", "owner", password="a long enough passphrase", hasher=CHEAP)
    served: list[list[str]] = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: served.append(argv))
    result = run_cli(capsys, "dashboard", "--db", str(db), "--address", "0.0.0.0")
    assert result.code == 0 and served and "warning" not in result.err
    loopback = run_cli(capsys, "dashboard", "--db", str(db), "--no-auth")  # it never turns sign-in off
    assert loopback.code == 1 and loopback.err.startswith("error: --no-auth: sign-in is on (1 user(s) in w.duckdb)")


def test_serving_on_loopback_needs_neither(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    Warehouse(tmp_path / "w.duckdb").close()
    served: list[list[str]] = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: served.append(argv))
    result = run_cli(capsys, "dashboard", "--db", str(tmp_path / "w.duckdb"))
    assert result.code == 0 and served and "warning" not in result.err


SPECS = shipped_specs()


def test_chart_axes_follow_the_spec() -> None:
    assert tick_format(SPECS["no_show_rate"]) == ".1%"
    assert tick_format(SPECS["days_in_ar"]) == ",.1f"
    assert axis_title(SPECS["no_show_rate"]) == "percent" and axis_title(SPECS["days_in_ar"]) == "days"
