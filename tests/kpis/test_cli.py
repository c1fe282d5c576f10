"""`clinic-kpis kpis`: table, CSV and JSON output, options, filters, SQL, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import sqlglot

from tests.cli_helpers import run_cli
from tests.kpis.builder import P1, P2, Fixture

COLUMNS = [
    "kpi_id",
    "period_start",
    "grain",
    "numerator",
    "denominator",
    "value",
    "unit",
    "n",
    "complete",
    "definition",
    "target",
    "status",
    "note",
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """October 2026: EAST 1 no-show of 2 kept/no-show visits (plus a late cancellation), WEST 0 of 1."""
    fx = Fixture(tmp_path)
    fx.add(
        "locations", {"location_id": "EAST", "name": "Eastside"}, {"location_id": "WEST", "name": "Northgate Clinic"}
    )
    fx.add("providers", {"provider_id": P1, "name": "Dr. Ada Park"}, {"provider_id": P2, "name": "Dr. Ben Ito"})
    fx.add(
        "appointments",
        {"scheduled_start": "2026-10-05 09:00", "status": "noshow"},
        {"scheduled_start": "2026-10-06 09:00", "status": "fulfilled"},
        {"scheduled_start": "2026-10-07 09:00", "status": "fulfilled", "location_id": "WEST", "provider_id": P2},
        {
            "scheduled_start": "2026-10-08 09:00",
            "status": "cancelled",
            "cancel_initiator": "patient",
            "cancelled_at": "2026-10-08 07:00",
        },
    )
    fx.close()
    return fx.path


def test_json_is_an_array_of_rows_with_the_dataframe_columns(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "kpis", "--db", str(db), "--month", "2026-10", "--kpi", "no_show_rate", "--format", "json")
    assert res.code == 0, res.err
    rows = json.loads(res.out)
    assert len(rows) == 1 and list(rows[0]) == COLUMNS
    row = rows[0]
    assert (row["period_start"], row["numerator"], row["denominator"], row["n"]) == ("2026-10-01", 1, 3, 3)
    assert row["value"] == pytest.approx(1 / 3) and row["complete"] is False and row["status"] == "off_target"
    assert row["unit"] == "percent"


def test_json_with_a_breakdown_and_missing_values(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(
        capsys,
        "kpis",
        "--db",
        str(db),
        "--month",
        "2026-09",
        "--kpi",
        "no_show_rate",
        "--by",
        "location",
        "--format",
        "json",
    )
    rows = json.loads(res.out)
    assert [(r["location"], r["location_name"]) for r in rows] == [("EAST", "Eastside"), ("WEST", "Northgate Clinic")]
    assert all(r["value"] is None and r["n"] == 0 and r["status"] is None for r in rows)


def test_csv(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(
        capsys, "kpis", "--db", str(db), "--start", "2026-09", "--end", "2026-10", "--kpi", "no_show_rate",
        "--kpi", "late_cancel_rate", "--format", "csv",
    )  # fmt: skip
    assert res.code == 0, res.err
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert list(rows[0]) == COLUMNS and len(rows) == 4
    late = [r for r in rows if r["kpi_id"] == "late_cancel_rate" and r["period_start"] == "2026-10-01"][0]
    assert (late["numerator"], late["denominator"], late["complete"]) == ("1.0", "4.0", "False")


def test_table_formats_values_by_the_spec(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "kpis", "--db", str(db), "--month", "2026-10", "--kpi", "no_show_rate", "--by", "location")
    assert res.code == 0, res.err
    east = next(line for line in res.out.splitlines() if "EAST" in line)
    assert "Eastside (EAST)" in east
    assert "50.0%" in east and "7.0%" in east and "Off target" in east and east.rstrip().endswith("not yet")
    header = [cell.strip() for cell in res.out.splitlines()[0].split("┃")]
    assert "value (%)" in header and "target (%)" in header and header[-2:] == ["status", "final"]


def test_table_by_provider_shows_names(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "kpis", "--db", str(db), "--month", "2026-10", "--by", "provider", "--kpi", "no_show_rate")
    assert res.code == 0, res.err
    ada = next(line for line in res.out.splitlines() if "Ada" in line)
    assert f"Dr. Ada Park ({P1})" in ada and "50.0%" in ada
    assert f"Dr. Ben Ito ({P2})" in res.out


def test_table_with_several_units_writes_each_value_with_its_own(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(
        capsys, "kpis", "--db", str(db), "--month", "2026-10", "--kpi", "no_show_rate", "--kpi", "third_next_available"
    )
    assert res.code == 0, res.err
    header = [cell.strip() for cell in res.out.splitlines()[0].split("┃")]
    assert "value" in header and "target" in header
    third = next(line for line in res.out.splitlines() if "third_next_available" in line)
    assert "10.0 days" in third  # its target, in days


def test_a_filter_takes_a_name_or_an_id(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["kpis", "--db", str(db), "--month", "2026-10", "--kpi", "no_show_rate", "--format", "json"]
    by_name = json.loads(run_cli(capsys, *args, "--filter", "location=Northgate Clinic").out)
    by_id = json.loads(run_cli(capsys, *args, "--filter", "location=WEST").out)
    assert by_name == by_id and (by_id[0]["numerator"], by_id[0]["denominator"]) == (0, 1)


def test_table_says_why_a_value_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cancellation without its initiator makes October's late-cancellation rate unknown: the
    table shows no value and a note line says why."""
    fx = Fixture(tmp_path)
    fx.add(
        "appointments",
        {"scheduled_start": "2026-10-05 09:00", "status": "fulfilled"},
        {"scheduled_start": "2026-10-08 09:00", "status": "cancelled", "cancelled_at": "2026-10-08 07:00"},
    )
    fx.close()
    res = run_cli(capsys, "kpis", "--db", str(fx.path), "--month", "2026-10", "--kpi", "late_cancel_rate")
    assert res.code == 0, res.err
    assert res.out.splitlines()[-1] == (
        "note: late_cancel_rate (2026-10-01): Unknown: 1 cancellation(s) without the initiator or the time in the "
        "export: whether they were late patient cancellations is unknown."
    )


def test_table_hides_the_segments_without_data(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """September has no appointment: its EAST and WEST rows are empty, left out on screen, kept in CSV."""
    args = [
        "kpis",
        "--db",
        str(db),
        "--start",
        "2026-09",
        "--end",
        "2026-10",
        "--kpi",
        "no_show_rate",
        "--by",
        "location",
    ]
    table = run_cli(capsys, *args).out.splitlines()
    assert [line.split()[2] for line in table if "no_show_rate" in line] == ["2026-10-01", "2026-10-01"]
    assert table[-1] == "2 rows without data not shown (--format csv or json lists every row)"
    csv_rows = list(csv.DictReader(io.StringIO(run_cli(capsys, *args, "--format", "csv").out)))
    assert [(r["period_start"], r["n"]) for r in csv_rows if r["location"] == "WEST"] == [
        ("2026-09-01", "0"),
        ("2026-10-01", "1"),
    ]


def test_options_and_filters(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(
        capsys, "kpis", "--db", str(db), "--month", "2026-10", "--kpi", "no_show_rate", "--format", "json",
        "--option", "no_show_rate.late_cancel=as_noshow", "--option", "no_show_rate.late_cancel_hours=1",
        "--filter", "location=EAST",
    )  # fmt: skip
    assert res.code == 0, res.err
    (row,) = json.loads(res.out)
    assert "late_cancel=as_noshow" in row["definition"] and "late_cancel_hours=1" in row["definition"]
    assert (row["numerator"], row["denominator"]) == (1, 2)  # a 2-hour cancellation is not late within 1 hour


def test_show_sql_for_another_engine(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(
        capsys, "kpis", "--db", str(db), "--month", "2026-10", "--kpi", "visit_cycle_time", "--show-sql",
        "--dialect", "spark",
    )  # fmt: skip
    assert res.code == 0, res.err
    assert res.out.startswith("-- visit_cycle_time\n")
    sqlglot.parse_one(res.out.split("\n", 1)[1].rstrip().rstrip(";"), read="spark")
    assert "PERCENTILE(" in res.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kpi", "no_shows"], "unknown KPI 'no_shows' (did you mean no_show_rate?)"),
        (["--option", "days_in_ar=hfma"], "expected KPI.OPTION=VALUE"),
        (["--option", "days_in_ar.preset=cms"], "'cms' is not one of mgma, hfma, aafp"),
        (["--filter", "EAST"], "expected DIMENSION=VALUE"),
        (["--filter", "location=east"], "no location 'east' in the warehouse (did you mean EAST?)"),
        (["--filter", "location=MARS"], "no location 'MARS' in the warehouse; known: Eastside (EAST), Northgate"),
        (["--month", "2026-10", "--start", "2026-01"], "--month cannot be combined"),
        (["--month", "October"], "--month 'October' is not a date"),
        (["--kpi", "no_show_rate", "--by", "queue"], "cannot be broken down or filtered by queue"),
        (["--grain", "fortnight"], "unknown grain 'fortnight'"),
    ],
)
def test_mistakes_are_one_line_errors(db: Path, capsys: pytest.CaptureFixture[str], args: list, message: str) -> None:
    res = run_cli(capsys, "kpis", "--db", str(db), *args)
    assert res.code == 1, res.out
    assert res.err.startswith("error: ") and message in res.err and res.err.count("\n") == 1
    assert "Traceback" not in res.err


def test_a_missing_warehouse_says_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "kpis", "--db", str(tmp_path / "none.duckdb"))
    assert res.code == 1 and "clinic-kpis init" in res.err
