"""`clinic-kpis dashboard` argument handling, and the chart-only formatting (the rest is kpis.formatting)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dashboards.cli import APP, streamlit_argv
from dashboards.formatting import axis_title, tick_format
from kpis.catalog import shipped_specs
from kpis.warehouse import Warehouse
from tests.cli_helpers import run_cli


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


@pytest.mark.parametrize(("address", "warned"), [("0.0.0.0", True), ("192.168.1.20", True), ("127.0.0.1", False)])
def test_serving_beyond_this_machine_warns_that_there_is_no_sign_in(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, address: str, warned: bool
) -> None:
    """Issue 19 item 11: `--address 0.0.0.0` served the practice's data to the network silently."""
    Warehouse(tmp_path / "w.duckdb").close()
    served: list[list[str]] = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: served.append(argv))
    result = run_cli(capsys, "dashboard", "--db", str(tmp_path / "w.duckdb"), "--address", address)
    assert result.code == 0 and served and served[0][served[0].index("--server.address") + 1] == address
    warning = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert bool(warning) == warned
    if warned:
        assert warning[0].startswith(f"warning: serving on {address}: the dashboard has no sign-in yet")


SPECS = shipped_specs()


def test_chart_axes_follow_the_spec() -> None:
    assert tick_format(SPECS["no_show_rate"]) == ".1%"
    assert tick_format(SPECS["days_in_ar"]) == ",.1f"
    assert axis_title(SPECS["no_show_rate"]) == "percent" and axis_title(SPECS["days_in_ar"]) == "days"
