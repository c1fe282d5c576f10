"""`clinic-kpis sample` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

TINY = ["--months", "2", "--providers", "3", "--end", "2025-06-30", "--seed", "5"]


def test_sample_writes_exports_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "practice"
    res = run_cli(capsys, "sample", "--out", str(out), *TINY)
    assert res.code == 0, res.err
    assert "simulated 2 months (2025-05-01 to 2025-06-30), seed 5, 3 providers at 3 locations" in res.out
    assert "appointments" in res.out and "truth.json" in res.out
    assert "\x1b[" not in res.out + res.err  # no progress bar or colour when not on a terminal
    truth = json.loads((out / "truth.json").read_text())
    assert truth["meta"]["seed"] == 5 and truth["meta"]["locations"] == ["EAST", "WEST", "NORTH"]
    assert (out / "ASSUMPTIONS.md").read_text().startswith("# ")
    for rel in (
        "fhir/Appointment.ndjson",
        "billing/claims_2025-06.837",
        "phones/queue_log",
        "portal/portal_messages.csv",
        "vendor/north_appointments_2025.csv",
    ):
        assert (out / rel).stat().st_size > 0, rel


def test_non_empty_out_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = run_cli(capsys, "sample", "--out", str(out), *TINY)
    assert res.code == 1 and "is not empty" in res.err and "--force" in res.err and "Traceback" not in res.err
    assert run_cli(capsys, "sample", "--out", str(out), *TINY, "--force").code == 0
    assert (out / "truth.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--months", "0"], "--months must be at least 1"),
        (["--end", "31/10/2026"], "--end must be a date"),
        (["--providers", "2"], "every location needs at least one provider"),
        ([], "--out DIR is required"),
    ],
)
def test_bad_options_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = ["--out", str(tmp_path / "x")] if args else []
    res = run_cli(capsys, "sample", *out, *args)
    assert res.code == 1 and message in res.err and res.err.count("\n") == 1
