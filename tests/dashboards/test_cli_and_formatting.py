"""`clinic-kpis dashboard` argument handling, and the chart-only formatting (the rest is kpis.formatting)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dashboards.cli import APP, streamlit_argv
from dashboards.formatting import axis_title, tick_format
from kpis.catalog import shipped_specs
from kpis.users import add_user
from kpis.warehouse import Warehouse
from tests.cli_helpers import run_cli
from tests.conftest import CHEAP_HASHER as CHEAP


def test_dashboard_without_a_warehouse_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = run_cli(capsys, "dashboard", "--db", "missing.duckdb", "--port", "8999")
    assert result.code == 1
    missing = tmp_path / "missing.duckdb"  # tests run in tmp_path
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
    assert allowed.err.startswith(f"warning: serving on {address} with --no-auth: anyone who can reach")


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
