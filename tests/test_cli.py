"""The command line front door: help, version, clear errors, honest placeholders."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from kpis import Warehouse, __version__
from tests.cli_helpers import run_cli


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "--version")
    assert res.code == 0 and res.out.strip() == f"clinic-kpis {__version__}"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "--help")
    assert res.code == 0
    for command in ("init", "sample", "ingest", "kpis", "report", "dashboard", "demo"):
        assert f"  {command} " in res.out


def test_every_warehouse_command_takes_db_and_config(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (
        ["init"],
        ["sample"],
        ["ingest"],
        ["kpis"],
        ["report", "build"],
        ["report", "send"],
        ["dashboard"],
        ["demo"],
    ):
        res = run_cli(capsys, *command, "--help")
        assert res.code == 0, command
        assert "--db" in res.out and "--config" in res.out, command


def test_newer_schema_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (42, 'future')")
    con.close()
    res = run_cli(capsys, "init", "--db", str(db))
    assert res.code == 1
    assert res.err.startswith("error: ") and "schema version 42" in res.err
    assert "Traceback" not in res.err


def test_bad_config_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "clinic-kpis.toml").write_text('[practice]\ntimezone = "Nowhere/Land"\n')
    res = run_cli(capsys, "init")
    assert res.code == 1 and "Nowhere/Land" in res.err and "Traceback" not in res.err


def test_init_with_a_bad_time_zone_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The option is checked before the config file is written, so the corrected re-run works."""
    res = run_cli(capsys, "init", "--timezone", "Mars/Olympus")
    assert res.code == 1 and res.err.strip() == (
        "error: --timezone 'Mars/Olympus' is not an IANA time zone such as 'America/New_York'"
    )
    assert list(tmp_path.iterdir()) == []
    assert run_cli(capsys, "init", "--timezone", "America/Chicago").code == 0
    assert 'timezone = "America/Chicago"' in (tmp_path / "clinic-kpis.toml").read_text()
