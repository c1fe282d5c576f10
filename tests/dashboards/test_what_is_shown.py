"""What the dashboard shows must be true: defects a new user found (session 33's tryout).

The Overview's month held back by a source that ended years before the others, "Nothing is off
target" above tiles on Watch, months that are not final drawn as facts, "most of it" for a third,
ids where names belong, and axes of tiny data. Each test asserts what a person sees: the text,
and the figures' traces and their styles.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import charts
from dashboards.filters import default_month, default_month_text, month_options
from dashboards.formatting import in_sentence
from kpis import Warehouse
from kpis.catalog import shipped_specs
from kpis.comparison import findings
from kpis.config import load_config
from kpis.formatting import STATE_LABELS, period_text, value_text
from tests.conftest import SimulatedPractice
from tests.dashboards.conftest import Window
from tests.dashboards.test_pages import figures, no_errors, numbers

SPECS = shipped_specs()
TITLES = {spec.domain: spec.domain_title for spec in SPECS.values()}
TODAY = date(2026, 12, 7)  # the day the frames below are read on: bookings after it are months to come


def coverage(ends: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """A coverage frame (`Warehouse.coverage`) whose domains run from Jan 2010 to their (month, last record)."""
    rows = []
    for domain, (last_month, last_record) in ends.items():
        for month in pd.date_range("2010-01-01", last_month, freq="MS"):
            rows.append({"domain": domain, "source": "x", "period_start": month, "rows": 5,
                         "last_event_at": min(month + pd.offsets.MonthEnd(0), pd.Timestamp(last_record)),
                         "table_name": domain})  # fmt: skip
    return pd.DataFrame(rows)


# -- 1. the Overview's month -------------------------------------------------------------------------


def test_a_source_that_ended_long_before_the_others_does_not_hold_the_overview_month_back() -> None:
    """Phone records ending Apr 2010 beside appointments through Sep 2025: the Overview opens on the
    last month every current source reaches (Aug 2025: billing runs through Aug 28), and says which
    source holds it there and which one it does not wait for."""
    frame = coverage(
        {
            "access": ("2025-09-01", "2025-09-13"),
            "revenue_cycle": ("2025-08-01", "2025-08-28"),
            "phones": ("2010-04-01", "2010-04-30"),
        }
    )
    months, default = month_options(frame, date(2026, 1, 1))
    assert (months[0], months[-1], default) == (date(2010, 1, 1), date(2025, 9, 1), date(2025, 8, 1))
    chosen = default_month(frame, TODAY)
    assert chosen.holding == {"revenue_cycle": date(2025, 8, 28)} and chosen.stale == {"phones": date(2010, 4, 30)}
    assert default_month_text(chosen, TITLES) == (
        "The Overview opens on Aug 2025, the last month every current source reaches (Revenue cycle through "
        "Aug 28, 2025). Not waited for, ending over 2 months before the most recent data: Phones through Apr 30, 2010."
    )


def test_a_source_two_months_behind_still_holds_the_month_and_every_source_current_says_nothing() -> None:
    behind = coverage({"access": ("2025-09-01", "2025-09-13"), "phones": ("2025-07-01", "2025-07-31")})
    assert default_month(behind, TODAY).month == date(2025, 7, 1) and not default_month(behind, TODAY).stale
    level = coverage({"access": ("2025-09-01", "2025-09-13"), "phones": ("2025-09-01", "2025-09-10")})
    assert default_month_text(default_month(level, TODAY), TITLES) == ""


def test_a_domain_whose_records_have_no_date_holds_no_month_back() -> None:
    """Encounters never checked in (an export without check-in times): their coverage rows have no
    month and no last record. The Overview opens on the dated sources' month, as it did before the
    stale rule (a TypeError comparing NaT with a date raised on every page)."""
    frame = coverage({"access": ("2025-09-01", "2025-09-13"), "revenue_cycle": ("2025-08-01", "2025-08-28")})
    undated = {"domain": "visit_flow", "source": "x", "period_start": pd.NaT, "rows": 40, "last_event_at": pd.NaT,
               "table_name": "encounters"}  # fmt: skip
    frame = pd.concat([frame, pd.DataFrame([undated])], ignore_index=True)
    months, default = month_options(frame, date(2026, 1, 1))
    assert (months[0], months[-1], default) == (date(2010, 1, 1), date(2025, 9, 1), date(2025, 8, 1))
    assert default_month(frame, TODAY) == default_month(frame[frame["domain"] != "visit_flow"], TODAY)
    only_undated = pd.DataFrame([undated])
    assert month_options(only_undated, date(2026, 1, 1)) == month_options(only_undated.iloc[:0], date(2026, 1, 1))


def test_appointments_booked_months_ahead_do_not_make_the_other_sources_stale() -> None:
    """Slots and bookings through March 2027, everything else through December 2026: the Overview
    opens on December, the last month every source reaches, not on a month still to come."""
    ahead = coverage(
        {
            "access": ("2027-03-01", "2027-03-30"),
            "visit_flow": ("2026-12-01", "2026-12-31"),
            "phones": ("2026-12-01", "2026-12-31"),
            "revenue_cycle": ("2026-12-01", "2026-12-28"),
        }
    )
    chosen = default_month(ahead, TODAY)
    assert chosen.month == date(2026, 12, 1) and chosen.stale == {}


def test_with_two_sources_or_half_of_them_old_the_old_ones_are_not_waited_for() -> None:
    """Appointments through Sep 2025 and phone records through Apr 2010 alone, or beside portal
    messages that ended in 2012: the Overview opens on Aug or Sep 2025, not on a month of the old
    sources, which a middle source (the lower median) would count as current."""
    two = coverage({"access": ("2025-09-01", "2025-09-13"), "phones": ("2010-04-01", "2010-04-30")})
    chosen = default_month(two, TODAY)
    assert chosen.month == date(2025, 9, 1) and chosen.stale == {"phones": date(2010, 4, 30)}
    half = coverage(
        {
            "access": ("2025-09-01", "2025-09-13"),
            "revenue_cycle": ("2025-08-01", "2025-08-28"),
            "phones": ("2010-04-01", "2010-04-30"),
            "referrals_portal": ("2012-01-01", "2012-01-30"),
        }
    )
    chosen = default_month(half, TODAY)
    assert chosen.month == date(2025, 8, 1) and set(chosen.stale) == {"phones", "referrals_portal"}
    booked = coverage({"access": ("2027-03-01", "2027-03-30"), "phones": ("2026-11-01", "2026-11-30")})
    assert default_month(booked, TODAY) == default_month(booked, date(2026, 11, 30))
    assert default_month(booked, TODAY).month == date(2026, 11, 1) and not default_month(booked, TODAY).stale


def test_the_sidebar_names_the_source_the_overview_does_not_wait_for(
    open_app: Callable[..., AppTest], practice: SimulatedPractice, window: Window, tmp_path: Path
) -> None:
    """Phone records that stop in February, every other source through September: the Overview
    opens on September, not February, and the sidebar says why."""
    db, config = tmp_path / "clinic_kpis.duckdb", tmp_path / "clinic-kpis.toml"
    shutil.copy(practice.db, db)
    shutil.copy(practice.config, config)
    with Warehouse.writing(config=load_config(config, db=db)) as store, store.transaction() as cur:
        cur.execute("DELETE FROM calls WHERE entered_at >= TIMESTAMPTZ '2026-03-01 05:00:00+00'")
    with Warehouse.open(config=load_config(config, db=db), read_only=True) as wh:
        last_call = wh.coverage().query("domain == 'phones'")["last_event_at"].max()
    at = open_app(db, config)
    no_errors(at)
    assert at.title[0].value == f"Overview — {period_text(window.month)}" and window.month == date(2026, 9, 1)
    assert at.sidebar.caption[1].value == (
        f"Not waited for, ending over 2 months before the most recent data: Phones through {last_call:%b %-d, %Y}."
    )
    assert last_call.month == 2
    said = f"Phones data end {last_call:%b %-d, %Y}: nothing loaded since."
    phones = [c.value for c in at.caption if c.value.startswith(said)]
    assert len(phones) == sum(s.headline for s in SPECS.values() if s.domain == "phones") > 0


def test_the_pages_render_when_no_encounter_has_a_check_in_time(
    open_app: Callable[..., AppTest], practice: SimulatedPractice, window: Window, tmp_path: Path
) -> None:
    """An encounters export without check-in times: the visit-flow domain's coverage has rows but
    no month and no last record. The Overview opens on the other sources' month, and its tiles and
    the Data page's table of where each source ends do not compare or format the missing date."""
    db, config = tmp_path / "clinic_kpis.duckdb", tmp_path / "clinic-kpis.toml"
    shutil.copy(practice.db, db)
    shutil.copy(practice.config, config)
    with Warehouse.writing(config=load_config(config, db=db)) as store, store.transaction() as cur:
        cur.execute("UPDATE encounters SET checked_in_at = NULL")
    with Warehouse.open(config=load_config(config, db=db), read_only=True) as wh:
        visit_flow = wh.coverage().query("domain == 'visit_flow'")
    assert len(visit_flow) and visit_flow["period_start"].isna().all() and visit_flow["last_event_at"].isna().all()
    at = open_app(db, config)
    no_errors(at)
    assert at.title[0].value == f"Overview — {period_text(window.month)}"
    at.switch_page("views/data_sources.py").run()
    no_errors(at)


# -- 2. off target, or to watch ----------------------------------------------------------------------


def test_with_nothing_off_target_the_overview_names_what_is_on_watch(
    open_app: Callable[..., AppTest], practice: SimulatedPractice, window: Window, tmp_path: Path
) -> None:
    """Referral completion (34% against 80%) is the practice's one KPI off target; with its red line
    at 10% it is on Watch, like the others missing their targets: the Overview names them all, as the
    report does ("Nothing is off target; to watch: ..."), not "Nothing is off target." alone."""
    config = tmp_path / "clinic-kpis.toml"
    config.write_text("[targets]\nreferral_completion_rate = { target = 0.8, red = 0.1 }\n", encoding="utf-8")
    with Warehouse.open(config=load_config(config, db=practice.db), read_only=True) as wh:
        specs = {s.id: s for s in wh.catalog()}
        found = findings(wh.scorecard(window.month), wh.friction_costs(window.month))
    assert set(found["status"]) == {"watch"} and "referral_completion_rate" in set(found["kpi_id"])
    at = open_app(practice.db, config)
    no_errors(at)
    captions = [c.value for c in at.caption]
    assert "Nothing is off target; to watch (missing the target, not yet past the red flag):" in captions
    assert "Nothing is off target." not in captions
    (listing,) = [m.value for m in at.markdown if m.value.startswith("- **") and "against a target of" in m.value]
    lines = listing.splitlines()
    assert [line[4 : line.index("**", 4)] for line in lines] == [specs[k].title for k in found["kpi_id"]]
    referral = specs["referral_completion_rate"]
    row = found.set_index("kpi_id").loc["referral_completion_rate"]
    assert (
        f"- **{referral.title}** (for {period_text(row['period_start'].date())}): "
        f"{value_text(row['value'], referral)} against a target of 80.0%" in lines
    )


# -- 3. facts, and what is not one yet -----------------------------------------------------------------


def _state_of(api: pd.DataFrame, kind: str) -> list[float | None]:
    return [v if s == kind else None for v, s in zip(api["value"], api["state"], strict=True)]


def _ys(trace: dict) -> list[float | None]:
    return [None if v is None or np.isnan(v) else pytest.approx(v) for v in numbers(trace["y"])]


def test_charts_draw_facts_as_the_line_and_set_apart_what_is_not_final(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    """Clean claims of the open month (91% -> 42% so far) and days in A/R of its early months (rests
    on a year of ledger the data do not have) are not joined to the facts: the solid line holds the
    facts only, and each other kind is a dotted line of open markers named in the legend."""
    at.switch_page("views/revenue_cycle.py").run()
    no_errors(at)
    shown = {f["layout"]["title"]["text"]: f for f in figures(at)}
    with practice.open() as wh:
        # A/R over 90 days: every month complete, its first year still early (its look-back is a history)
        assert wh.compute("ar_over_90_pct", start=window.first, end=window.end)["complete"].all()
        for kpi, kind in (("clean_claim_rate", "open"), ("days_in_ar", "history"), ("ar_over_90_pct", "history")):
            spec = SPECS[kpi]
            api = wh.facts(kpi, start=window.first, end=window.end)
            assert kind in set(api["state"]) and "final" in set(api["state"]), kpi
            trend = shown[f"{spec.title} by month"]
            facts, apart = trend["data"][:2]
            assert facts["name"] == spec.title and "dash" not in facts["line"] and facts["mode"] == "lines+markers"
            assert _ys(facts) == _state_of(api, "final")
            assert apart["name"] == charts.NOT_FINAL[kind] and apart["line"]["dash"] == "dot"
            assert apart["marker"]["symbol"] == "circle-open" and _ys(apart) == _state_of(api, kind)
            split = shown[f"{spec.title} by location"]
            keys = [t for t in split["data"] if t["name"] == charts.NOT_FINAL[kind]]
            assert len(keys) == 1 and keys[0]["line"]["dash"] == "dot"  # one legend entry says what dots are
            by = wh.facts(kpi, start=window.first, end=window.end, by="location")
            labels = wh.dimension_values("location").set_index("label")["id"]
            for trace in split["data"]:
                if trace.get("showlegend") is False or trace is keys[0]:
                    continue
                rows = by[by["location"] == labels[trace["name"]]]
                assert _ys(trace) == _state_of(rows, "final"), trace["name"]


def test_a_tile_says_how_many_months_its_trend_line_draws(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    """Days in A/R has three final months of the thirteen (the rest early data): its tile says so; in
    the first month it is final, one point would be a flat line: no line, and the tile says why."""
    with practice.open() as wh:
        trend = wh.trend(["days_in_ar"], window.month)
    facts = int(trend["shown"].notna().sum())
    early = int((trend["state"] == "history").sum())
    assert facts == 3 and early == 10
    tile = next(m for m in at.metric if m.label == "Days in A/R")
    assert len(tile.proto.chart_data) == facts
    captions = [c.value for c in at.caption]
    assert any(c.endswith(f"Trend line: the 3 final months of the last 13 ({early} {STATE_LABELS['history']}).")
               for c in captions)  # fmt: skip
    first = trend.loc[trend["state"] == "final", "period_start"].min()
    with practice.open() as wh:
        states = wh.trend(["days_in_ar"], first)["state"].value_counts(sort=False)  # in order of the months
    assert states["final"] == 1
    why = ", ".join(f"{count} {STATE_LABELS[state]}" for state, count in states.items() if state != "final")
    at.select_slider(key="months").set_value((window.first.isoformat()[:7], f"{first:%Y-%m}")).run()
    no_errors(at)
    tile = next(m for m in at.metric if m.label == "Days in A/R")
    assert len(tile.proto.chart_data) == 0
    captions = [c.value for c in at.caption]
    assert any(c.endswith(f"No trend line: 1 final month of the last 13 ({why}).") for c in captions), why


def test_a_withheld_value_is_a_cross_named_in_the_legend_not_a_silent_gap() -> None:
    spec = SPECS["no_show_rate"]
    frame = _frame(["2026-01-01", "2026-02-01", "2026-03-01"], [0.1, 0.5, 0.12], ["final", "small", "final"], spec)
    fig = charts.trend(frame, spec).to_dict()
    facts, withheld = fig["data"]
    assert _ys(facts) == [pytest.approx(0.1), None, pytest.approx(0.12)]
    assert withheld["name"] == "withheld (n < 11)" and withheld["marker"]["symbol"] == "x-thin-open"
    assert list(withheld["y"]) == [0] and str(list(withheld["x"])[0])[:10] == "2026-02-01"


# -- 4. what drove a move ------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", [{}, {"location": ["WEST"]}], ids=["practice", "west"])
def test_most_of_a_move_is_more_than_half_of_it(
    at: AppTest, practice: SimulatedPractice, window: Window, filters: dict
) -> None:
    """A segment that brought a third of the change is "the largest part", not "most of it"."""
    for dim, values in filters.items():
        at.multiselect(key=dim).set_value(values).run()
    no_errors(at)
    text = "\n".join(m.value for m in at.markdown)
    with practice.open() as wh:
        moves = [m for m in wh.movers(window.month, filters=filters or None) if m.driver and m.driver.share]
    parted = [m for m in moves if not m.driver.outweighs]
    assert parted
    for move in parted:
        spec = SPECS[move.kpi_id]
        who = f"{move.driver.dimension.replace('_', ' ')} {move.driver.label}"
        said = "most of it" if move.driver.share > 0.5 else "the largest part"
        assert f"{said} from {who} (" in text, (spec.id, move.driver.share)
    assert {m.driver.share > 0.5 for m in parted} == ({True} if not filters else {False})


# -- 5. names, not ids ---------------------------------------------------------------------------------


def test_titles_in_a_sentence_keep_their_acronyms() -> None:
    assert in_sentence("Days in A/R") == "days in A/R"
    assert in_sentence("A/R over 90 days") == "A/R over 90 days"
    assert in_sentence("No-show rate") == "no-show rate"


def test_revenue_cycle_names_things_as_people_do(at: AppTest) -> None:
    at.switch_page("views/revenue_cycle.py").run()
    no_errors(at)
    labels = [e.label for e in at.get("expander")]
    assert "The numbers behind days in A/R" in labels and "The numbers behind A/R over 90 days" in labels
    (aging,) = [f for f in figures(at) if f["layout"]["title"]["text"].startswith("A/R by age")]
    assert {t["name"] for t in aging["data"]} == {"commercial", "medicaid", "medicare", "self pay"}


def test_the_data_page_names_sources_and_gives_local_times(at: AppTest, practice: SimulatedPractice) -> None:
    at.switch_page("views/data_sources.py").run()
    no_errors(at)
    (coverage_map,) = [f for f in figures(at) if f["layout"]["title"]["text"] == "Rows per month"]
    feeds = set(coverage_map["data"][0]["y"])
    assert "Access & scheduling · appointments (vendor appointments CSV)" in feeds
    assert "Phones · calls (Asterisk queue_log)" in feeds and "Revenue cycle · remittances (X12)" in feeds
    assert not any("csv:" in feed or "_" in feed.replace("queue_log", "") for feed in feeds)  # ids
    frames = [d.value for d in at.dataframe]
    ends = next(f for f in frames if "through (last record)" in f.columns)
    runs = next(f for f in frames if "rows_read" in f.columns)
    config = load_config(practice.config, db=practice.db)
    with practice.open() as wh:
        api = wh.ingest_runs()
        last = wh.coverage()["last_event_at"].max()
    assert ends["through (last record)"].iloc[-1] == f"{last:%b %-d, %Y}" and set(ends["source"]) == feeds
    local = api["started_at"].dt.tz_convert(config.tz).dt.strftime("%b %-d, %Y %H:%M:%S")
    assert runs["started_at"].tolist() == local.tolist()
    assert set(runs["adapter"]) >= {"FHIR", "X12 835", "X12 837", "Asterisk queue_log", "vendor appointments CSV"}


def test_the_improvement_page_points_a_manager_to_the_page_not_the_docs(
    open_app: Callable[..., AppTest], practice_with_changes: SimulatedPractice
) -> None:
    at = open_app(practice_with_changes.db, practice_with_changes.config)
    at.switch_page("views/improvement.py").run()
    no_errors(at)
    text = " ".join(c.value for c in at.caption)
    assert "docs/contracts.md" not in text and "each with its source" in text


# -- 6. tiny data ---------------------------------------------------------------------------------------


def _frame(periods: list[str], values: list[float], states: list[str], spec: object) -> pd.DataFrame:
    """A `Warehouse.facts` frame of one series."""
    n = len(periods)
    return pd.DataFrame(
        {
            "period_start": pd.to_datetime(periods), "grain": ["month"] * n, "value": values,
            "numerator": [1.0] * n, "denominator": [3.0] * n, "n": [3] * n, "state": states,
            "status": [None] * n,
        }
    )  # fmt: skip


def test_a_rate_of_zero_everywhere_gets_a_few_ticks_not_a_thousand() -> None:
    """Late cancellations (no target, one decimal) at 0.0% in every month, or withheld in every month
    (crosses on 0): plotly ranges an axis of zeros over [0, 1], so a tick every 0.1% would be 1,000
    labels on top of each other; the axis runs to 5 steps (0.0% to 0.5%)."""
    spec = SPECS["late_cancel_rate"]
    assert spec.target is None and spec.red is None and spec.fmt == "pct1"
    for state in ("final", "small"):
        frame = _frame(["2010-03-01", "2010-04-01"], [0.0, 0.0], [state, state], spec)
        axis = charts.trend(frame, spec).to_dict()["layout"]["yaxis"]
        assert axis["dtick"] == pytest.approx(0.001) and axis["range"] == pytest.approx([0, 0.005])
    some = charts.trend(_frame(["2010-03-01"], [0.002], ["final"], spec), spec).to_dict()["layout"]["yaxis"]
    assert some["dtick"] == pytest.approx(0.001) and "range" not in some  # plotly's range: [0, ~0.21%]


def test_a_chart_of_two_calls_has_a_tick_per_period_and_per_whole_second() -> None:
    """Two or three calls in March 2010: the period axis says "Mar 2010", not plotly's milliseconds of
    a zoomed date axis, and a value axis of seconds under 5 ticks every second ("0 1 2"), not
    "0 0 0 1 1 1"."""
    spec = SPECS["average_speed_of_answer"]
    fig = charts.trend(_frame(["2010-03-01"], [1.5], ["final"], spec), spec).to_dict()["layout"]
    assert list(fig["xaxis"]["ticktext"]) == ["Mar 2010"]
    assert [str(t)[:10] for t in fig["xaxis"]["tickvals"]] == ["2010-03-01"]
    assert spec.target is None and fig["yaxis"]["dtick"] == 1
    many = charts.trend(_frame(["2010-03-01"], [40.0], ["final"], spec), spec).to_dict()["layout"]
    assert "dtick" not in many["yaxis"]


def test_a_heat_map_of_no_abandoned_call_scales_from_zero_not_below() -> None:
    cells = pd.DataFrame({"hour": [9, 10], "weekday": ["Mon", "Mon"], "value": [0.0, 0.0], "hover": ["a", "b"]})
    fig = charts.heatmap(
        cells, "value", "hour", "weekday", title="t", colorbar="abandoned", tickformat=".0%", step=0.01
    ).to_dict()
    (trace,) = fig["data"]
    assert trace["zmin"] == 0 and trace["zmax"] == 0.01 and trace["colorbar"]["dtick"] == 0.01
    rows = cells.assign(value=[1, 3])
    counted = charts.heatmap(rows, "value", "hour", "weekday", title="t", colorbar="rows", tickformat=",", step=1)
    assert counted.to_dict()["data"][0]["colorbar"]["dtick"] == 1
    assert json.dumps(counted.to_dict()["data"][0]["zmax"]) == "3.0"


def test_a_histogram_of_three_calls_counts_whole_records() -> None:
    fig = charts.histogram(pd.Series([2.0, 9.0]), pd.Series([1, 2]), title="t", x_title="wait (seconds)")
    assert fig.to_dict()["layout"]["yaxis"]["dtick"] == 1
