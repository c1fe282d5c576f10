"""The change log (add, edit, remove, import: every version kept), the control chart API and the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from kpis.changes import ChangeLogError
from kpis.errors import ClinicKpisError
from tests.cli_helpers import run_cli
from tests.kpis.builder import Fixture

CONFIG = """\
[locations]
EAST = "Eastside"
WEST = "Westside"
"""

# EAST no-shows per 100 kept-or-missed visits, Jan 2025 - Sep 2026; reminders start 1 Jan 2026.
BEFORE = [10, 8, 12, 9, 11, 10, 9, 11, 10, 12, 8, 10]
AFTER = [5, 4, 6, 5, 4, 5, 6, 4, 5]
WEST_ALL = [9, 11, 10, 8, 12, 10, 11, 9, 10, 9, 11, 10, 8, 12, 10, 9, 11, 10, 9, 11, 10]


def _months() -> list[date]:
    return [date(2025 + (m // 12), m % 12 + 1, 1) for m in range(21)]


@pytest.fixture
def fx(tmp_path: Path) -> Fixture:
    fixture = Fixture(tmp_path, CONFIG)
    rows = []
    for month, east, west in zip(_months(), BEFORE + AFTER, WEST_ALL, strict=True):
        for location, noshows in (("EAST", east), ("WEST", west)):
            for i in range(100):
                day = month.replace(day=1 + i % 28)
                rows.append(
                    {
                        "scheduled_start": f"{day} 09:00",
                        "status": "noshow" if i < noshows else "fulfilled",
                        "location_id": location,
                    }
                )
    rows.append({"scheduled_start": "2026-09-30 16:00", "status": "fulfilled", "location_id": "WEST"})  # data end
    fixture.add("appointments", *rows)
    yield fixture
    fixture.close()


def test_every_edit_is_kept_with_its_time_and_author(fx: Fixture) -> None:
    wh = fx.wh
    cid = wh.add_change("2026-01-01", "Reminder calls", ["no_show_rate"], ["location=EAST"], by="Ann")
    assert wh.edit_change(cid, title="Reminder calls 48 h ahead", description="front desk", by="Bob") == 2
    other = wh.add_change(date(2026, 3, 1), "Posters", "no_show_rate", {"location": "WEST"})
    wh.remove_change(other, by="Ann")
    log = wh.changes()
    assert log["change_id"].tolist() == [cid]
    assert log.loc[0, "title"] == "Reminder calls 48 h ahead" and log.loc[0, "description"] == "front desk"
    assert log.loc[0, "scope"] == {"location": ["EAST"]} and log.loc[0, "kpis"] == ["no_show_rate"]
    assert log.loc[0, "version"] == 2 and log.loc[0, "updated_at"] >= log.loc[0, "created_at"]
    assert wh.changes(include_removed=True)["removed"].tolist() == [False, True]
    history = wh.change_history(cid)
    assert history["title"].tolist() == ["Reminder calls", "Reminder calls 48 h ahead"]
    assert history["recorded_by"].tolist() == ["Ann", "Bob"]
    assert history["recorded_at"].is_monotonic_increasing
    assert len(wh.change_history()) == 4  # two versions of each change, the removal included
    with pytest.raises(ChangeLogError, match="already removed"):
        wh.remove_change(other)
    with pytest.raises(ChangeLogError, match="no change with id 99"):
        wh.edit_change(99, title="x")


def test_bad_changes_are_refused_with_the_messages_of_compute(fx: Fixture) -> None:
    wh = fx.wh
    with pytest.raises(ClinicKpisError, match=r"unknown KPI 'no_show_rat' \(did you mean no_show_rate\?\)"):
        wh.add_change("2026-01-01", "x", ["no_show_rat"])
    with pytest.raises(ClinicKpisError, match="call_abandonment_rate cannot be broken down or filtered by provider"):
        wh.add_change("2026-01-01", "x", ["call_abandonment_rate"], ["provider=1000000001"])
    known = r"known: Eastside \(EAST\), Westside \(WEST\)"
    with pytest.raises(ChangeLogError, match=rf"location=EASTT: no location 'EASTT' in the warehouse; {known}"):
        wh.add_change("2026-01-01", "x", ["no_show_rate"], ["location=EASTT"])
    with pytest.raises(
        ChangeLogError, match=r"location=east: no location 'east' in the warehouse \(did you mean EAST\?\)"
    ):
        wh.add_change("2026-01-01", "x", ["no_show_rate"], ["location=east"])
    with pytest.raises(ChangeLogError, match="date: expected YYYY-MM-DD"):
        wh.add_change("01/03/2026", "x", ["no_show_rate"])
    with pytest.raises(ChangeLogError, match="title"):
        wh.add_change("2026-01-01", " ", ["no_show_rate"])
    assert wh.changes().empty
    named = wh.add_change("2026-01-01", "by name", ["no_show_rate"], ["location=Westside"])
    assert wh.changes().set_index("change_id").loc[named, "scope"] == {"location": ["WEST"]}


def test_cli_errors_are_one_line_and_match_the_kpis_command(fx: Fixture, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(fx.path)
    fx.close()
    mine = run_cli(capsys, "changes", "add", "--db", db, "--date", "2026-01-01", "--title", "x",
                   "--kpi", "no_show_rate", "--scope", "location=EASTT")  # fmt: skip
    theirs = run_cli(capsys, "kpis", "--db", db, "--kpi", "no_show_rate", "--filter", "location=EASTT")
    assert mine.code == theirs.code == 1
    assert mine.err.count("\n") == 1
    assert mine.err == theirs.err.replace("error: ", "error: --scope location=EASTT: ", 1)
    bad_kpi = run_cli(capsys, "changes", "add", "--db", db, "--date", "2026-01-01", "--title", "x", "--kpi", "nope")
    assert bad_kpi.code == 1 and bad_kpi.err.startswith("error: unknown KPI 'nope'")


def test_import_csv_and_toml_skips_what_is_logged_and_checks_every_row_first(fx: Fixture, tmp_path: Path) -> None:
    wh = fx.wh
    csv_file = tmp_path / "changes.csv"
    csv_file.write_text(
        "date,title,kpis,scope,description,recorded_by\n"
        "2026-01-01,Reminder calls,no_show_rate,location=EAST,calls 48 h ahead,Ann\n"
        "2026-03-01,Posters,no_show_rate;late_cancel_rate,location=WEST,,\n",
        encoding="utf-8",
    )
    result = wh.import_changes(csv_file, by="import")
    assert result.added == [1, 2] and result.skipped == 0
    log = wh.changes()
    assert log["kpis"].tolist() == [["no_show_rate"], ["no_show_rate", "late_cancel_rate"]]
    assert log["recorded_by"].tolist() == ["Ann", "import"]
    again = wh.import_changes(csv_file)
    assert again.added == [] and again.skipped == 2
    toml_file = tmp_path / "changes.toml"
    toml_file.write_text(
        '[[changes]]\ndate = 2026-02-01\ntitle = "Intake script"\nkpis = ["no_show_rate"]\n'
        'scope = { location = ["EAST", "WEST"] }\n',
        encoding="utf-8",
    )
    assert wh.import_changes(toml_file).added == [3]
    assert wh.change(3).scope == {"location": ("EAST", "WEST")}
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "date,title,kpis,scope\n2026-04-01,Fine,no_show_rate,location=EAST\n2026-04-02,Typo,no_show_rate,location=ESAT\n",
        encoding="utf-8",
    )
    with pytest.raises(ChangeLogError, match=r"bad.csv: line 3: --scope location=ESAT: no location 'ESAT'"):
        wh.import_changes(bad)
    assert len(wh.changes()) == 3  # nothing of the bad file was written
    with pytest.raises(ChangeLogError, match=r"cols.csv: line 1: missing column\(s\) kpis"):
        (tmp_path / "cols.csv").write_text("date,title,kpi\n", encoding="utf-8")
        wh.import_changes(tmp_path / "cols.csv")


def test_spc_freezes_the_baseline_and_judges_the_points_after_it(fx: Fixture) -> None:
    wh = fx.wh
    cid = wh.add_change("2026-01-01", "Reminder calls", ["no_show_rate"], ["location=EAST"])
    chart = wh.spc("no_show_rate", filters={"location": "EAST"})
    assert chart.attrs["chart"] == "p" and chart.attrs["chart_name"] == "P chart"
    assert chart["period_start"].dt.date.tolist() == _months()  # from the first month with data
    assert chart["included"].all()
    base = chart[chart["phase"] == 0]
    after = chart[chart["phase"] == 1]
    p_bar = sum(BEFORE) / 1200
    assert base["phase_centre"].iloc[0] == pytest.approx(p_bar)
    assert after["centre"].tolist() == pytest.approx([p_bar] * 9)  # judged against the frozen baseline
    assert after["phase_centre"].iloc[0] == pytest.approx(sum(AFTER) / 900)
    sigma = (p_bar * (1 - p_bar) / 100) ** 0.5
    assert after["ucl"].iloc[0] == pytest.approx(p_bar + 3 * sigma)
    assert after["lcl"].iloc[0] == pytest.approx(max(0.0, p_bar - 3 * sigma))
    assert after["change_id"].tolist() == [cid] * 9
    assert not base["signal"].any()  # a stable baseline
    assert after["in_run"].all()  # nine months below the baseline centre: a run longer than 7
    (effect,) = chart.attrs["effects"]
    assert effect["signal"] and effect["direction"] == "down" and effect["better"] is True
    assert "long_run" in effect["rules"]
    assert effect["verdict"] == (
        "Since Reminder calls (1 Jan 2026), no-show rate at Eastside shifted down: 9 of 9 months below "
        "the baseline centre (10.0% → 4.9%) — a signal, better."
    )
    west = wh.spc("no_show_rate", filters={"location": "WEST"}, changes=[cid])  # the same date elsewhere
    assert west.attrs["effects"][0]["signal"] is False
    assert west.attrs["effects"][0]["status"] == "no_signal"


def test_the_month_a_change_falls_inside_and_open_months_are_left_out(fx: Fixture) -> None:
    wh = fx.wh
    fx.add("appointments", {"scheduled_start": "2026-10-03 09:00", "status": "noshow"})  # October is open
    cid = wh.add_change("2026-01-15", "Mid-month start", ["no_show_rate"], ["location=EAST"])
    chart = wh.spc("no_show_rate", filters={"location": "EAST"})
    starts = chart["period_start"].dt.date
    jan = chart[starts == date(2026, 1, 1)].iloc[0]
    assert not jan["included"] and jan["phase"] == 1  # neither baseline nor after
    october = chart[starts == date(2026, 10, 1)].iloc[0]
    assert not october["complete"] and not october["included"]
    effect = chart.attrs["effects"][0]
    assert (effect["n_before"], effect["n_after"]) == (12, 8)
    assert wh.change_effects()["change_id"].tolist() == [cid]


def test_changes_list_json_gives_each_change_and_kpi(fx: Fixture, capsys: pytest.CaptureFixture[str]) -> None:
    wh = fx.wh
    wh.add_change("2026-01-01", "Reminder calls", ["no_show_rate", "late_cancel_rate"], ["location=EAST"], by="Ann")
    wh.add_change("2026-08-01", "Posters", ["no_show_rate"], ["location=WEST"])
    db = str(fx.path)
    fx.close()
    done = run_cli(capsys, "changes", "list", "--db", db, "--format", "json")
    assert done.code == 0, done.err
    records = json.loads(done.out)
    assert [(r["change_id"], r["kpi_id"]) for r in records] == [
        (1, "late_cancel_rate"),
        (1, "no_show_rate"),
        (2, "no_show_rate"),
    ]
    reminder = records[1]
    assert reminder["chart"] == "p" and reminder["signal"] is True and reminder["rules"]
    assert reminder["centre_before"] == pytest.approx(sum(BEFORE) / 1200)
    assert reminder["centre_after"] == pytest.approx(sum(AFTER) / 900)
    assert reminder["scope"] == {"location": ["EAST"]} and reminder["recorded_by"] == "Ann"
    posters = records[2]
    assert posters["signal"] is False and posters["status"] == "too_early"
    assert posters["verdict"].startswith("No signal yet for no-show rate at Westside: 2 months after Posters")
    table = run_cli(capsys, "changes", "list", "--db", db)
    assert "Reminder calls" in table.out and "a signal, better" in table.out.replace("\n", " ").replace("  ", " ")
    csv_out = run_cli(capsys, "changes", "list", "--db", db, "--format", "csv")
    assert csv_out.out.splitlines()[0].startswith("change_id,date,title,description,scope,recorded_by,kpi_id,chart")
    assert "location=EAST" in csv_out.out


def test_a_signal_dates_from_the_first_month_whose_data_made_it_one(fx: Fixture) -> None:
    """Five months below the baseline centre are not yet a signal; the sixth is (no crossing in six
    points: fewer than qbinom(0.05, 5, 0.5) = 1). Judged up to May, then June, then on all the data."""
    wh = fx.wh
    cid = wh.add_change("2026-01-01", "Reminder calls", ["no_show_rate"], ["location=EAST"])
    may = wh.change_effects(end="2026-05-31").iloc[0]
    assert (may["status"], may["signal"], may["n_after"]) == ("too_early", False, 5) and pd.isna(may["signal_since"])
    june = wh.change_effects(end="2026-06-30").iloc[0]
    assert (june["status"], june["rules"], june["n_after"]) == ("signal", ["few_crossings"], 6)
    assert june["signal_since"] == pd.Timestamp("2026-06-01")
    assert "6 of 6 months below the baseline centre" in june["verdict"]
    everything = wh.change_effects().iloc[0]
    assert everything["signal_since"] == pd.Timestamp("2026-06-01") and everything["n_after"] == 9
    assert everything["where"] == "at Eastside"
    # the changes a chart starts phases at: this KPI, exactly this scope (a location by id or name)
    assert wh.changes_for("no_show_rate", {"location": "EAST"})["change_id"].tolist() == [cid]
    assert wh.changes_for("no_show_rate", {"location": ["Eastside"]})["change_id"].tolist() == [cid]
    assert len(wh.spc("no_show_rate", filters={"location": "Eastside"}).attrs["phases"]) == 2
    assert wh.changes_for("no_show_rate").empty and wh.changes_for("no_show_rate", {"location": "WEST"}).empty
    assert wh.changes_for("late_cancel_rate", {"location": "EAST"}).empty
