"""`clinic-kpis dashboard` argument handling, and the one formatting helper every page uses."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path

import pytest

from dashboards.cli import APP, streamlit_argv
from dashboards.formatting import change_text, period_text, target_text, tick_format, value_text
from kpis.catalog import shipped_specs
from kpis.warehouse import Warehouse
from tests.cli_helpers import run_cli


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


@pytest.mark.parametrize(
    ("kpi", "value", "text"),
    [("no_show_rate", 0.07884615, "7.9%"), ("days_in_ar", 41.25, "41.2"), ("visit_cycle_time", 41.5, "42"),
     ("no_show_rate", None, "—"), ("no_show_rate", float("nan"), "—")],
)  # fmt: skip
def test_values_follow_the_spec_format(kpi: str, value: float | None, text: str) -> None:
    assert value_text(value, SPECS[kpi]) == text


@pytest.mark.parametrize(
    ("kpi", "change", "text"),
    [("no_show_rate", 0.0123, "+1.2 pp"), ("no_show_rate", -0.005, "-0.5 pp"), ("days_in_ar", -3.04, "-3.0 days"),
     ("visit_cycle_time", 2.0, "+2 minutes"), ("average_speed_of_answer", 12.4, "+12 seconds"),
     ("days_in_ar", float("nan"), "—")],
)  # fmt: skip
def test_changes_are_signed_and_in_the_kpi_unit(kpi: str, change: float, text: str) -> None:
    assert change_text(change, SPECS[kpi]) == text


def test_targets_read_in_the_direction_that_is_better() -> None:
    assert target_text(SPECS["no_show_rate"]) == "Target ≤ 7.0% · red > 10.0%"
    assert target_text(SPECS["clean_claim_rate"]) == "Target ≥ 95.0% · red < 90.0%"
    assert target_text(SPECS["late_cancel_rate"]) == ""
    assert tick_format(SPECS["no_show_rate"]) == ".1%"
    assert tick_format(SPECS["days_in_ar"]) == ",.1f"


def test_periods_are_named_for_people() -> None:
    assert period_text(date(2026, 10, 1), "month") == "Oct 2026"
    assert period_text(date(2026, 10, 1), "quarter") == "2026-Q4"
    assert period_text(date(2026, 1, 1), "year") == "2026"
    assert period_text(date(2026, 10, 5), "week") == "week of 2026-10-05"
    assert period_text(date(2026, 10, 5), "day") == "2026-10-05"
