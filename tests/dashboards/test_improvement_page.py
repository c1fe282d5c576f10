"""The improvement loop on the dashboard, under AppTest: the Improvement page, the control-chart
toggle of every KPI chart, and the Overview's findings ranked by cost.

The practice is the session's simulated one with its change log imported (reminder calls at EAST,
a placebo at WEST). What the page shows is compared with `clinic-kpis changes list --format json`
and with the API; the friction-cost figures are recomputed from the numbers the page prints.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from kpis import Warehouse
from kpis.comparison import findings
from kpis.formatting import hours_text, money_text, rules_text, value_text
from kpis.spc import CHART_NAMES
from tests.conftest import SimulatedPractice, clinic_kpis
from tests.dashboards.conftest import Window, staffed
from tests.dashboards.test_pages import figures, no_errors, numbers

PAGE = "views/improvement.py"


def listed(practice: SimulatedPractice, db: Path | None = None) -> list[dict]:
    """What `clinic-kpis changes list --format json` prints for the practice (or another copy of it)."""
    where = ["--db", str(db), "--config", str(practice.config)] if db else []
    done = clinic_kpis("changes", "list", "--format", "json", *where, cwd=practice.directory)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    (table,) = [t.value for t in at.table if column in t.value.columns]
    return table


def assert_shows_the_changes_list(at: AppTest, records: list[dict], practice: SimulatedPractice) -> None:
    """The page's verdict table holds, per change and KPI, what the command line prints."""
    with practice.open() as wh:
        specs = {s.id: s for s in wh.catalog()}
    table = table_with(at, "verdict")
    assert len(table) == len(records)
    for row, record in zip(table.to_dict(orient="records"), records, strict=True):
        spec = specs[record["kpi_id"]]
        assert row["change"] == f"{record['title']} (#{record['change_id']})"
        assert row["measure"] == spec.title
        assert row["chart"] == CHART_NAMES[record["chart"]]
        assert row["before"] == value_text(record["centre_before"], spec)
        assert row["after"] == value_text(record["centre_after"], spec)
        assert row["rules fired"] == rules_text(record["rules"])
        assert row["signal"] == ("yes" if record["signal"] else "no")
        assert row["verdict"] == record["verdict"]


@pytest.fixture
def improvement(open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice) -> AppTest:
    at = open_app(practice_with_changes.db, practice_with_changes.config)
    at.switch_page(PAGE).run()
    no_errors(at)
    return at


def test_the_page_shows_each_change_as_changes_list_prints_it(
    improvement: AppTest, practice_with_changes: SimulatedPractice
) -> None:
    records = listed(practice_with_changes)
    assert_shows_the_changes_list(improvement, records, practice_with_changes)
    # the simulator's truth: the reminder calls lowered EAST's no-shows, the posters did nothing
    verdicts = table_with(improvement, "verdict").set_index("where")
    assert verdicts.loc["at Eastside", "signal"] == "yes" and "shifted down" in verdicts.loc["at Eastside", "verdict"]
    assert verdicts.loc["at Westside", "signal"] == "no"
    assert improvement.selectbox(key="change-chart").value == 0
    chart = figures(improvement)[0]
    assert chart["layout"]["annotations"][-1]["text"] == "Reminder calls 48 h ahead"


# -- friction costs: every printed figure recomputed from the printed numbers --------------------


def _numbers(text: str) -> list[tuple[float, float]]:
    """Each number printed in `text`, with half its last printed digit (how far rounding may have moved it)."""
    found = []
    for token in re.findall(r"\d[\d,]*(?:\.\d+)?", text):
        digits = token.split(".")[1] if "." in token else ""
        found.append((float(token.replace(",", "")), 0.5 * 10 ** -len(digits)))
    return found


def _product(*factors: tuple[float, float]) -> tuple[float, float]:
    """The range a product of printed (positive) numbers can take, given each one's rounding."""
    low = high = 1.0
    for value, error in factors:
        low *= value - error
        high *= value + error
    return low, high


def _close(printed: tuple[float, float], bounds: tuple[float, float]) -> bool:
    value, error = printed
    return bounds[0] - error - 1e-9 <= value <= bounds[1] + error + 1e-9


def _check_formula(kpi: str, formula: str) -> tuple[float, float | None]:
    """Redo a formula's arithmetic from its printed numbers; return its money and staff hours."""
    n = _numbers(formula)
    value, target, gap, volume, excess = n[:5]
    # every costed KPI is better lower: the gap is how far the value is above its target, 0 when it is not
    low, high = value[0] - target[0] - value[1] - target[1], value[0] - target[0] + value[1] + target[1]
    assert _close(gap, (max(low, 0.0), max(high, 0.0))), (kpi, formula)
    percent = 0.01 if kpi in ("no_show_rate", "denial_rate", "call_abandonment_rate") else 1.0
    assert _close(excess, _product(gap, volume, (percent, 0))), (kpi, formula)
    if kpi in ("no_show_rate", "denial_rate"):
        price, money, minutes, hours = n[5:]
        assert _close(money, _product(excess, price)), formula
    elif kpi == "call_abandonment_rate":
        share, visit, money, minutes, hours = n[5:]
        assert _close(money, _product(excess, share, visit, (0.01, 0))), formula
    elif kpi == "days_in_ar":
        rate, twelve, money = n[5:]
        assert twelve[0] == 12 and _close(money, _product(excess, rate, (0.01 / 12, 0))), formula
        return money[0], None
    else:  # visit_cycle_time: patient-minutes = hours of staff time, at a staff cost per hour
        hours, rate, money = n[5:]
        assert _close(hours, _product(excess, (1 / 60, 0))) and _close(money, _product(hours, rate)), formula
        return money[0], hours[0]
    assert _close(hours, _product(excess, minutes, (1 / 60, 0))), formula
    return money[0], hours[0]


def test_every_friction_cost_on_the_page_is_reproducible_from_the_numbers_it_prints(
    improvement: AppTest, practice_with_changes: SimulatedPractice, window: Window
) -> None:
    ranking = table_with(improvement, "cost a month")
    texts = [m.value.replace("\\$", "$") for m in improvement.markdown]
    with practice_with_changes.open() as wh:
        costs = wh.friction_costs(window.month)
        specs = {s.id: s for s in wh.catalog()}
    assert ranking["measure"].tolist() == [specs[k].title for k in costs["kpi_id"]]
    priced = 0
    for rank, row in enumerate(costs.to_dict(orient="records"), start=1):
        shown = ranking.iloc[rank - 1]
        assert shown["this month"] == value_text(row["value"], specs[row["kpi_id"]])
        assert shown["cost a month"] == money_text(row["money"])
        heading = next(t for t in texts if t.startswith(f"**{rank}. {specs[row['kpi_id']].title}**"))
        assert money_text(row["money"]) in heading
        formula = texts[texts.index(heading) + 1]
        if row["money"] is None:
            assert formula == f"_{row['note']}_"
            continue
        money, hours = _check_formula(row["kpi_id"], formula)
        assert shown["cost a month"] == f"${money:,.2f}"  # the ranking's figure is the formula's
        if hours is not None:
            assert shown["staff hours a month"] == hours_text(hours)
        assumptions = [t.value for t in improvement.table if "source" in t.value.columns][rank - 1]
        for value in assumptions["value"]:
            assert value in formula, (value, formula)  # every assumption used is a number of the formula
        priced += 1
    assert priced == len(costs) == 5  # the practice has 835s and booking queues: every costed KPI can be priced
    money = [float(m.strip("$").replace(",", "")) for m in ranking["cost a month"]]
    assert money == sorted(money, reverse=True)
    above = [r["value"] > r["target"] for r in costs.to_dict(orient="records")]
    assert [m > 0 for m in money] == above  # a gap costs money exactly where the value is worse than its target
    assert any(above)


# -- recording a change -----------------------------------------------------------------------------


@pytest.fixture
def writable(practice_with_changes: SimulatedPractice, tmp_path: Path) -> Path:
    """A copy of the practice's warehouse the form may write to."""
    return Path(shutil.copy(practice_with_changes.db, tmp_path / "clinic_kpis.duckdb"))


def fill_form(
    at: AppTest, title: str, kpis: list[str], locations: list[str], by: str | None = "Office manager"
) -> None:
    at.date_input(key="change-date").set_value(date(2026, 2, 1))
    at.text_input(key="change-title").input(title)
    at.multiselect(key="change-kpis").set_value(kpis)
    at.multiselect(key="change-locations").set_value(locations)
    at.text_area(key="change-description").input("Front desk confirms insurance at booking")
    if by is not None:
        at.text_input(key="change-by").input(by)
    next(b for b in at.button if b.label == "Record the change").click().run()


def test_the_form_records_a_change_through_the_api_and_the_page_shows_its_verdicts(
    open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice, writable: Path
) -> None:
    at = open_app(writable, practice_with_changes.config)
    at.switch_page(PAGE).run()
    fill_form(at, "New-patient intake script", ["no_show_rate", "late_cancel_rate"], ["NORTH"])
    no_errors(at)
    assert at.success[0].value == "Change #3 recorded: New-patient intake script from 1 Feb 2026."
    with Warehouse.open(writable, read_only=True) as wh:
        change = wh.change(3)
    assert (change.date, change.kpis, dict(change.scope)) == (
        date(2026, 2, 1),
        ("no_show_rate", "late_cancel_rate"),
        {"location": ("NORTH",)},
    )
    assert (change.recorded_by, change.description) == ("Office manager", "Front desk confirms insurance at booking")
    records = listed(practice_with_changes, writable)
    assert [r["change_id"] for r in records] == [1, 3, 3, 2]  # by date: 1 Jan, 1 Feb (two KPIs), 1 Mar
    assert_shows_the_changes_list(at, records, practice_with_changes)


def test_signed_in_the_change_is_recorded_as_the_users_and_audited(
    open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice, tmp_path: Path
) -> None:
    staff = staffed(practice_with_changes, tmp_path / "staffed")
    at = open_app(staff.db, staff.config)
    at.text_input(key="sign_in_name").set_value("ana")
    at.text_input(key="sign_in_password").set_value(staff.password)
    at.button[0].click().run()
    at.switch_page(PAGE).run()
    no_errors(at)
    assert not [t for t in at.text_input if t.key == "change-by"]  # no name to type: the analyst's own
    fill_form(at, "Intake script", ["no_show_rate"], ["NORTH"], by=None)
    no_errors(at)
    with Warehouse.open(staff.db, read_only=True) as wh:
        assert wh.change(3).recorded_by == "ana"
    entries = staff.audit()
    recorded = entries[entries["event"] == "change_recorded"]
    assert recorded[["user", "role"]].values.tolist() == [["ana", "analyst"]]
    assert json.loads(recorded["detail"].iloc[0])["change_id"] == 3


def test_a_mistake_in_the_form_is_one_sentence_and_writes_nothing(
    open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice, writable: Path
) -> None:
    at = open_app(writable, practice_with_changes.config)
    at.switch_page(PAGE).run()
    fill_form(at, "Intake script", [], ["NORTH"])
    assert not at.exception
    assert at.error[0].value.startswith("Not recorded: kpis: name at least one KPI id the change targets")
    with Warehouse.open(writable, read_only=True) as wh:
        assert wh.changes()["change_id"].tolist() == [1, 2]


def test_a_busy_warehouse_is_said_and_the_change_can_be_sent_again(
    open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice, writable: Path
) -> None:
    at = open_app(writable, practice_with_changes.config)
    at.switch_page(PAGE).run()
    with Warehouse.writing(writable, config=practice_with_changes.config, what="load"):  # a load holds the lock
        fill_form(at, "Intake script", ["no_show_rate"], ["NORTH"])
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Not recorded: a load is writing the warehouse right now: the change was not recorded; submit it again "
        "when it is done"
    ]
    next(b for b in at.button if b.label == "Record the change").click().run()  # the writer is gone
    no_errors(at)
    assert at.success[0].value == "Change #3 recorded: Intake script from 1 Feb 2026."


# -- the control chart on every KPI chart -------------------------------------------------------------


def traces(figure: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for trace in figure["data"]:
        out.setdefault(trace.get("name", ""), []).append(trace)
    return out


def test_a_kpi_chart_shows_its_control_chart_where_a_change_exists_for_its_scope(
    open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice, window: Window
) -> None:
    at = open_app(practice_with_changes.db, practice_with_changes.config)
    at.switch_page("views/access.py").run()
    no_errors(at)
    assert at.toggle(key="spc-no_show_rate").value is False  # no change logged for the whole practice
    assert "3-sigma limits" not in traces(figures(at)[0])

    at.multiselect(key="location").set_value(["EAST"]).run()  # the reminder calls' scope
    no_errors(at)
    assert at.toggle(key="spc-no_show_rate@location=EAST").value is True  # each scope has its own toggle
    assert at.toggle(key="spc-late_cancel_rate@location=EAST").value is False
    trend = figures(at)[0]
    lines = traces(trend)
    with practice_with_changes.open() as wh:
        chart = wh.spc("no_show_rate", filters={"location": "EAST"})
        facts = wh.facts("no_show_rate", start=window.first, end=window.end, filters={"location": "EAST"})
    shown = chart[chart["period_start"].isin(facts["period_start"])]
    after = shown[shown["phase"] == 1]
    ucl = next(t for t in lines["3-sigma limits"] if len(numbers(t["y"])) == len(after))
    assert numbers(ucl["y"]) == pytest.approx(after["ucl"].tolist())
    centre = lines["phase centre (before/after)"]
    assert [numbers(t["y"])[0] for t in centre] == pytest.approx([p["centre"] for p in chart.attrs["phases"]])
    assert numbers(lines["centre judged by"][0]["y"])[0] == pytest.approx(chart.attrs["phases"][0]["centre"])
    # a ring on every signalling point whose value may be shown, never on a withheld one (the API's signal
    # here may be a month whose count is under 11: test_the_control_chart_rings_every_signal_it_may_show
    # checks rings where they are drawn)
    assert shown["signal"].any()  # the reminder calls lowered EAST's no-shows (truth.json) and the chart says so
    drawn = set(facts.loc[facts["state"] != "small", "period_start"])
    expected = [p for p in shown.loc[shown["signal"], "period_start"] if p in drawn]
    (rings,) = lines["signal (special cause)"]
    assert [pd.Timestamp(x) for x in rings["x"]] == expected
    assert [
        (pd.Timestamp(s["x0"]), a["text"])
        for s, a in zip(trend["layout"]["shapes"][2:], trend["layout"]["annotations"][2:], strict=True)
    ] == [(pd.Timestamp("2026-01-01"), "Reminder calls 48 h ahead")]
    assert trend["layout"]["title"]["text"].endswith(" · P chart")

    at.toggle(key="spc-no_show_rate@location=EAST").set_value(False).run()  # the manager turns it off
    assert "3-sigma limits" not in traces(figures(at)[0])
    at.toggle(key="spc-late_cancel_rate@location=EAST").set_value(True).run()  # and one on where no change exists
    late = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith("Late cancellation rate by month"))
    assert "3-sigma limits" in traces(late) and "signal (special cause)" in traces(late)
    assert not [a for a in late["layout"].get("annotations", []) if a["text"] == "Reminder calls 48 h ahead"]


def test_the_control_chart_rings_every_signal_it_may_show(
    open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice, writable: Path, window: Window
) -> None:
    """The change the simulator made work (truth.json), logged for the whole practice, where no cell is
    small: its chart is on by default and rings every month that signals, at the value drawn."""
    injected = next(c for c in practice_with_changes.truth["meta"]["changes"] if not c["placebo"])
    kpi = injected["kpi"]
    with Warehouse.open(writable) as wh:
        wh.add_change(injected["date"], injected["title"] + " (practice-wide)", [kpi])
    with Warehouse.open(writable, read_only=True) as wh:
        chart = wh.spc(kpi)
        facts = wh.facts(kpi, start=window.first, end=window.end)
    at = open_app(writable, practice_with_changes.config)
    at.switch_page("views/access.py").run()
    no_errors(at)
    assert at.toggle(key=f"spc-{kpi}").value is True
    lines = traces(figures(at)[0])
    shown = chart[chart["period_start"].isin(facts["period_start"])].set_index("period_start")
    values = facts.set_index("period_start")["value"].where(facts.set_index("period_start")["state"] != "small")
    expected = [p for p in shown.index[shown["signal"]] if not pd.isna(values[p])]
    assert len(expected) >= 1  # a third of the visits with far fewer no-shows moves the practice's chart
    (rings,) = lines["signal (special cause)"]
    assert [pd.Timestamp(x) for x in rings["x"]] == expected
    assert numbers(rings["y"]) == pytest.approx([values[p] for p in expected])
    why = {True: "beyond the 3-sigma limits", False: "part of an unusually long run"}
    assert [c[1] for c in rings["customdata"]] == [why[bool(shown.loc[p, "outside"])] for p in expected]


# -- the Overview's findings and empty warehouses ---------------------------------------------------


def test_the_overview_lists_what_is_off_target_costliest_first(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    """For the whole practice and each location: the KPIs off target in the API's order (`findings`: a
    known cost first, costliest first, then the distance to target), each with its cost when known."""
    with practice.open() as wh:
        specs = {s.id: s for s in wh.catalog()}
    priced = 0
    for location in [None, *practice.truth["meta"]["locations"]]:
        where = {"location": [location]} if location else {}
        if location:
            at.multiselect(key="location").set_value([location]).run()
            no_errors(at)
        with practice.open() as wh:
            ranked = findings(wh.scorecard(window.month, filters=where), wh.friction_costs(window.month, where))
        off = ranked[ranked["status"] == "off_target"]
        if off.empty:  # then what is on Watch is listed (as in the report), in the same order
            watch = ranked[ranked["status"] == "watch"]
            said = "Nothing is off target; to watch (missing the target, not yet past the red flag):"
            assert said in [c.value for c in at.caption] and len(watch), location
            (listing,) = [m.value for m in at.markdown if m.value.startswith("- **")][:1]
            assert [line.split("**")[1] for line in listing.split("\n")] == [specs[k].title for k in watch["kpi_id"]]
            continue
        (listing,) = [m.value for m in at.markdown if m.value.startswith("- **")][:1]
        lines = listing.replace("\\$", "$").split("\n")
        assert [line.split("**")[1] for line in lines] == [specs[k].title for k in off["kpi_id"]], location
        assert off["money"].notna().tolist() == sorted(off["money"].notna(), reverse=True)
        for line, money in zip(lines, off["money"], strict=True):
            if pd.isna(money):
                assert "costs about" not in line, line
            else:
                assert line.endswith(f"costs about {money_text(money)} a month"), line
        priced += int(off["money"].notna().any())
    assert priced >= 1  # somewhere in the simulated practice a gap with a known cost is off target


def test_an_empty_warehouse_says_what_to_load(open_app: Callable[..., AppTest], empty_db: Path) -> None:
    at = open_app(empty_db)
    at.switch_page(PAGE).run()
    no_errors(at)
    assert at.info[0].value.startswith("No data loaded yet: friction costs and control charts need your exports")
