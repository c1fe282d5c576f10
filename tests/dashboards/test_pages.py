"""Every page of the dashboard under Streamlit's AppTest, on the simulated practice's real warehouse.

Expected numbers are asked of the `kpis` API directly and formatted with the shared helper, so
these tests check that each page shows what the API returns for the filters in force.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import charts
from kpis import Warehouse
from kpis.catalog import shipped_specs
from kpis.comparison import findings
from kpis.config import ENV_SECRET, load_config
from kpis.formatting import change_text, format_value, period_text, value_text
from kpis.periods import add_months
from tests.conftest import SimulatedPractice
from tests.dashboards.conftest import Window
from tests.kpis.builder import Fixture

SPECS = shipped_specs()
PAGES = {
    "views/overview.py": "Overview — {month}",
    "views/access.py": "Access & scheduling",
    "views/revenue_cycle.py": "Revenue cycle",
    "views/phones.py": "Phones",
    "views/visit_flow.py": "Visit flow",
    "views/referrals_portal.py": "Referrals & portal",
    "views/data_sources.py": "Data",
    "views/definitions.py": "Definitions",
}


def expected_tiles(practice: SimulatedPractice, window: Window, filters: dict | None = None) -> dict:
    """title -> (value, change vs previous month) of each headline KPI in the window's month, from the
    API's scorecard; checked against compute: the value is that of a complete month."""
    with practice.open() as wh:
        card = wh.scorecard(window.month, filters=filters).set_index("kpi_id")
        out = {}
        for spec in (s for s in wh.catalog() if s.headline):
            row = card.loc[spec.id]
            own = {d: v for d, v in (filters or {}).items() if d in spec.dimensions} or None
            if row["state"] == "final":
                period = row["period_start"]
                raw = wh.compute(spec.id, start=period, end=period, filters=own).iloc[0]
                assert raw["complete"] and raw["value"] == pytest.approx(row["value"]), spec.id
            change = None if pd.isna(row["change_previous"]) else change_text(row["change_previous"], spec)
            value = "n < 11" if row["state"] == "small" else value_text(row["value"], spec)
            out[spec.title] = (value, change)
    return out


def dimension_labels(practice: SimulatedPractice, dimension: str) -> dict[str, str]:
    """id -> the label the sidebar shows for each value of a dimension (the API's dimension_values)."""
    with practice.open() as wh:
        values = wh.dimension_values(dimension)
    return dict(zip(values["id"], values["label"], strict=True))


def shown_tiles(at: AppTest) -> dict[str, tuple[str, str | None]]:
    return {m.label: (m.value, m.delta or None) for m in at.metric}


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_on_a_populated_warehouse(at: AppTest, window: Window, page: str) -> None:
    at.switch_page(page).run()
    no_errors(at)
    assert at.title[0].value == PAGES[page].format(month=period_text(window.month, "month"))
    assert not at.info, [i.value for i in at.info]  # every domain has data: no empty state anywhere


def test_overview_tiles_show_the_api_values_for_the_selected_month(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    no_errors(at)
    expected = expected_tiles(practice, window)
    assert len(expected) >= 8
    assert shown_tiles(at) == expected


def test_location_filter_changes_the_tiles(at: AppTest, practice: SimulatedPractice, window: Window) -> None:
    unfiltered = shown_tiles(at)
    at.multiselect(key="location").set_value(["EAST"]).run()
    no_errors(at)
    filtered = shown_tiles(at)
    assert filtered == expected_tiles(practice, window, {"location": ["EAST"]})
    assert filtered["No-show rate"] != unfiltered["No-show rate"]
    # Every headline KPI here can be split by location, so none is left unfiltered.
    assert not [c.value for c in at.caption if "filter is not applied" in c.value]


def test_payer_filter_is_applied_where_allowed_and_said_where_not(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    payer = next(iter(dimension_labels(practice, "payer")))
    at.multiselect(key="payer").set_value([payer]).run()
    no_errors(at)
    assert shown_tiles(at) == expected_tiles(practice, window, {"payer": [payer]})
    notes = [c.value for c in at.caption if "filter is not applied" in c.value]
    assert any(n.startswith("Call abandonment rate is not broken down by payer") for n in notes)


def test_the_month_range_picks_the_overview_month(at: AppTest, practice: SimulatedPractice, window: Window) -> None:
    month = add_months(window.month, -3)
    at.select_slider(key="months").set_value((window.first.isoformat()[:7], month.isoformat()[:7])).run()
    no_errors(at)
    assert at.title[0].value == f"Overview — {period_text(month, 'month')}"
    with practice.open() as wh:
        row = wh.compute("no_show_rate", start=month, end=add_months(month, 1) - timedelta(days=1)).iloc[0]
    assert shown_tiles(at)["No-show rate"][0] == format_value(row["value"], "pct1")


def test_filters_come_from_the_url_and_survive_a_page_change(
    open_app: Callable, practice: SimulatedPractice, window: Window
) -> None:
    at = open_app(practice.db, practice.config, run=False)
    west = dimension_labels(practice, "location")["WEST"]
    at.query_params["location"] = west  # bound widgets carry their labels in the URL
    at.query_params["grain"] = "quarter"
    at.run()
    no_errors(at)
    assert at.multiselect(key="location").value == ["WEST"]
    assert shown_tiles(at) == expected_tiles(practice, window, {"location": ["WEST"]})
    at.switch_page("views/access.py").run()
    no_errors(at)
    assert at.multiselect(key="location").value == ["WEST"]
    assert at.selectbox(key="grain").value == "quarter"
    table = at.dataframe[0].value  # the numbers behind the no-show trend
    assert set(table["segment"]) == {"all", west}
    with practice.open() as wh:
        quarters = wh.compute("no_show_rate", start=window.first, end=window.end, grain="quarter")
    total = table[table["segment"] == "all"]
    assert total["period"].tolist() == [period_text(p.date(), "quarter") for p in quarters["period_start"]]


def test_kpi_section_table_holds_the_numbers_behind_the_chart(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    at.switch_page("views/access.py").run()
    no_errors(at)
    table = at.dataframe[0].value
    with practice.open() as wh:
        api = wh.compute("no_show_rate", start=window.first, end=window.end)
        split = wh.compute("no_show_rate", start=window.first, end=window.end, by="location")
    total = table[table["segment"] == "all"]
    assert total["numerator"].tolist() == api["numerator"].tolist()
    assert total["denominator"].tolist() == api["denominator"].tolist()
    assert total["value"].tolist() == [format_value(v, "pct1") for v in api["value"]]
    east = table[table["segment"] == dimension_labels(practice, "location")["EAST"]]
    # counts as text when a small cell elsewhere in the table is withheld ("<11"), else numbers
    assert east["n"].astype(str).tolist() == split[split["location"] == "EAST"]["n"].astype(str).tolist()
    assert len(at.get("download_button")) == 4  # one CSV per KPI on the page
    assert {"value (%)", "target (%)"} <= set(table.columns)  # the CSV's columns carry the unit
    assert total["value (%)"].tolist() == pytest.approx([v * 100 for v in api["value"]])


def test_phone_heat_map_counts_every_offered_call(at: AppTest, practice: SimulatedPractice, window: Window) -> None:
    at.switch_page("views/phones.py").run()
    no_errors(at)
    with practice.open() as wh:
        offered = wh.compute("call_abandonment_rate", start=window.first, end=window.end)["denominator"].sum()
    assert any(c.value.startswith(f"{int(offered):,} offered calls") for c in at.caption)


def test_phone_wait_histogram_draws_every_answered_call(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    """The waits are the API's value counts (not the records): each wait and how many answered calls
    waited that long, which add up to the answered calls explain lists month by month."""
    at.switch_page("views/phones.py").run()
    no_errors(at)
    with practice.open() as wh:
        waited = wh.value_counts("average_speed_of_answer", window.first, window.end)
        months = [add_months(window.first, i) for i in range(13)]
        records = pd.concat([wh.explain("average_speed_of_answer", m) for m in months])
    answered = records[records["side"] == "numerator"]
    (histogram,) = [f["data"][0] for f in figures(at) if f["data"][0]["type"] == "histogram"]
    assert histogram["histfunc"] == "sum"
    assert numbers(histogram["x"]) == waited["value"].tolist() == sorted(answered["value"].unique())
    assert numbers(histogram["y"]) == waited["records"].tolist()
    assert waited["records"].sum() == len(answered) > 0
    assert any(c.value.startswith(f"{len(answered):,} answered calls") for c in at.caption)


def test_data_page_lists_runs_rejects_and_coverage(at: AppTest, practice: SimulatedPractice) -> None:
    at.switch_page("views/data_sources.py").run()
    no_errors(at)
    frames = [d.value for d in at.dataframe]
    runs = next(f for f in frames if "rows_read" in f.columns)
    rejects = next(f for f in frames if "reason" in f.columns)
    with practice.open() as wh:
        api_runs, api_rejects = wh.ingest_runs(), wh.rejects()
    assert runs["file_path"].tolist() == api_runs["file_path"].tolist()
    assert rejects["reason"].tolist() == api_rejects["reason"].tolist() and len(rejects) > 0
    assert len(at.get("file_uploader")) == 1


def test_definitions_page_lists_the_whole_catalog(at: AppTest, practice: SimulatedPractice) -> None:
    at.switch_page("views/definitions.py").run()
    no_errors(at)
    table = at.dataframe[0].value
    with practice.open() as wh:
        ids = [s.id for s in wh.catalog()]
    assert table["id"].tolist() == ids
    days = table.set_index("id").loc["days_in_ar"]
    assert days["variant in use"].startswith("days_in_ar[preset=mgma")
    assert days["target"] == "Target ≤ 40.0 days · red > 50.0 days"
    assert any(m.value.startswith("**Days in A/R** — ") for m in at.markdown)


EMPTY_STATES = {
    "views/access.py": "No scheduling data loaded",
    "views/revenue_cycle.py": "No billing data loaded",
    "views/phones.py": "No phone data loaded — here is how to ingest a queue_log",
    "views/visit_flow.py": "No visit timeline data loaded",
    "views/referrals_portal.py": "No referral or portal data loaded",
    "views/overview.py": "No data loaded yet",
    "views/data_sources.py": "Nothing loaded yet",
}


@pytest.mark.parametrize("page", list(EMPTY_STATES))
def test_an_empty_warehouse_shows_how_to_load_data(open_app: Callable, empty_db: Path, page: str) -> None:
    at = open_app(empty_db)
    at.switch_page(page).run()
    no_errors(at)
    assert any(i.value.startswith(EMPTY_STATES[page]) for i in at.info), [i.value for i in at.info]
    assert not at.get("plotly_chart")


def test_definitions_work_on_an_empty_warehouse(open_app: Callable, empty_db: Path) -> None:
    at = open_app(empty_db)
    at.switch_page("views/definitions.py").run()
    no_errors(at)
    assert len(at.dataframe[0].value) > 20


def test_a_missing_warehouse_is_one_clear_sentence(open_app: Callable, tmp_path: Path) -> None:
    at = open_app(tmp_path / "nowhere.duckdb")
    assert not at.exception
    assert at.error[0].value.startswith(f"no warehouse at {tmp_path / 'nowhere.duckdb'}: create one with")


def test_a_load_in_another_process_goes_through_while_the_dashboard_reads(
    open_app: Callable, practice: SimulatedPractice, tmp_path: Path
) -> None:
    """The dashboard keeps its snapshot open; a load writes a copy, publishes it, and the next run shows it."""
    shutil.copy(practice.db, tmp_path / "clinic_kpis.duckdb")
    shutil.copy(practice.config, tmp_path / "clinic-kpis.toml")
    config = load_config(tmp_path / "clinic-kpis.toml")
    at = open_app(config.db_path, config.path)
    no_errors(at)
    writer = (
        "import sys; from kpis import Warehouse\n"
        "with Warehouse.writing(config=sys.argv[1]) as store, store.transaction() as cur:\n"
        "    cur.execute(\"UPDATE appointments SET status = 'noshow' WHERE status IN ('fulfilled', 'arrived')\")\n"
    )
    done = subprocess.run([sys.executable, "-c", writer, str(config.path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    at.run()
    no_errors(at)
    assert shown_tiles(at)["No-show rate"][0] == format_value(1.0, "pct1")


def test_a_warehouse_being_written_shows_a_busy_message(
    open_app: Callable, practice: SimulatedPractice, tmp_path: Path
) -> None:
    """A program that writes the file itself (not through a load, which writes a copy) holds it."""
    db = Path(shutil.copy(practice.db, tmp_path / "busy.duckdb"))
    with Warehouse(db):  # a writer outside clinic-kpis' loads holds the file for the whole page run
        at = open_app(db)
    assert not at.exception
    assert at.error[0].value.startswith(f"{db} is open for writing by another program")
    at.run()  # the writer is gone: the same session recovers
    no_errors(at)


@pytest.mark.parametrize("filters", [{}, {"location": ["WEST"]}], ids=["practice", "west"])
def test_what_changed_names_the_moves_and_their_main_segment(
    at: AppTest, practice: SimulatedPractice, window: Window, filters: dict
) -> None:
    """The moves and their drivers are those of the filtered view (drivers honour the filters), each
    between two final months, and every KPI off target (or with none, on Watch) is named in `findings`' order."""
    for dim, values in filters.items():
        at.multiselect(key=dim).set_value(values).run()
    no_errors(at)
    bullets = what_changed(at)
    with practice.open() as wh:
        moves = wh.movers(window.month, filters=filters or None)
        specs = {s.id: s for s in wh.catalog()}
        card = wh.scorecard(window.month, filters=filters or None)
        ranked = findings(card, wh.friction_costs(window.month, filters or None))
        assert len(bullets) == len(moves) >= 3
        for bullet, move in zip(bullets, moves, strict=True):
            spec = specs[move.kpi_id]
            assert bullet.startswith(f"- **{spec.title}**")
            both = wh.compute(spec.id, start=move.before, end=move.period, filters=own_filters(spec, filters))
            assert both["complete"].all(), f"{spec.id}: a month not final is never compared"
            before, after = both["value"].tolist()
            assert f"{value_text(before, spec)} → {value_text(after, spec)}" in bullet
            assert change_text(after - before, spec) in bullet
            if move.driver is not None:
                assert f"{move.driver.dimension} {move.driver.label}" in bullet
    off = [
        line for m in at.markdown for line in m.value.splitlines() if line.startswith("- **") and "target of" in line
    ]
    listed = "off_target" if (ranked["status"] == "off_target").any() else "watch"  # with nothing off target
    expected = ranked[ranked["status"] == listed]
    assert [line[4 : line.index("**", 4)] for line in off] == [specs[k].title for k in expected["kpi_id"]]


def own_filters(spec: object, filters: dict) -> dict | None:
    return {d: v for d, v in filters.items() if d in spec.dimensions} or None


def what_changed(at: AppTest) -> list[str]:
    """The bullets of "What changed" (the markdown block after its subheader)."""
    blocks = [m.value for m in at.markdown if m.value.startswith("- **") and "→" in m.value]
    return [line for block in blocks for line in block.splitlines() if line.startswith("- **")]


def test_an_open_month_is_never_a_headline_value(at: AppTest, practice: SimulatedPractice, window: Window) -> None:
    """Clean claims of the last month wait for their remittances: the tile shows the last complete
    month's value and says so, and the open month's value only as "so far"."""
    no_errors(at)
    with practice.open() as wh:
        row = wh.scorecard(window.month).set_index("kpi_id").loc["clean_claim_rate"]
        raw = wh.compute("clean_claim_rate", start=window.month, end=window.end).iloc[0]
    assert not raw["complete"] and row["period_start"].date() < window.month
    assert shown_tiles(at)["Clean claim rate"][0] == value_text(row["value"], SPECS["clean_claim_rate"])
    assert shown_tiles(at)["Clean claim rate"][0] != value_text(raw["value"], SPECS["clean_claim_rate"])
    notes = "\n".join(c.value for c in at.caption)
    assert f"For {period_text(row['period_start'].date())}, the latest complete month." in notes
    assert f"{period_text(window.month)} so far: {value_text(raw['value'], SPECS['clean_claim_rate'])}" in notes


def test_a_location_without_billing_says_which_export_is_missing(at: AppTest, practice: SimulatedPractice) -> None:
    """NORTH sends no X12: its claims come from its practice-management export, but no remittance
    (835) does, so denials and clean claims are empty because that export is missing for it."""
    north = dimension_labels(practice, "location")["NORTH"]
    at.multiselect(key="location").set_value(["NORTH"]).run()
    no_errors(at)
    notes = "\n".join(c.value for c in at.caption)
    assert "Not loaded: remittances (X12 835)." in notes
    at.switch_page("views/revenue_cycle.py").run()
    no_errors(at)
    infos = [i.value for i in at.info]
    assert f"No denial rate for location {north}: remittances (X12 835) are not loaded for it." in " ".join(infos)
    assert not any("left out by that filter" in i for i in infos)


def test_phones_break_down_by_queue_first(at: AppTest) -> None:
    """Calls carry a queue, rarely a location: the breakdown starts with the dimension they record."""
    at.switch_page("views/phones.py").run()
    no_errors(at)
    assert at.selectbox(key="by-call_abandonment_rate").value == "queue"


def test_sidebar_says_how_recent_the_data_is(at: AppTest, practice: SimulatedPractice) -> None:
    with practice.open() as wh:
        last = wh.coverage()["last_event_at"].max()
        as_of = wh.snapshot_time()
    assert [c.value for c in at.sidebar.caption] == [
        f"Data through {last:%b %-d, %Y} (latest record loaded).",
        f"Data as of {as_of:%b %-d, %Y %H:%M}.",
    ]


def test_sidebar_says_a_load_is_running_and_the_pages_still_answer(
    open_app: Callable, practice: SimulatedPractice, tmp_path: Path
) -> None:
    """While a load writes the next snapshot, every page shows the previous one, and says so."""
    shutil.copy(practice.db, tmp_path / "clinic_kpis.duckdb")
    shutil.copy(practice.config, tmp_path / "clinic-kpis.toml")
    config = load_config(tmp_path / "clinic-kpis.toml")
    with Warehouse.writing(config=config, what="load") as store:
        with store.transaction() as cur:  # a load in progress, on its copy
            cur.execute("UPDATE appointments SET status = 'noshow'")
        at = open_app(config.db_path, config.path)
        no_errors(at)
        running = Warehouse.load_running(config.db_path)
        caption = at.sidebar.caption[-1].value
        assert caption.endswith(
            f"A load is running since {running.started_at.astimezone(config.tz):%H:%M}; "
            "these pages show the data before it until it is done."
        )
        assert shown_tiles(at) == shown_tiles(open_app(practice.db, practice.config))
    at.run()
    assert "A load is running" not in at.sidebar.caption[-1].value


def numbers(array: list | dict) -> list[float]:
    """A figure's data array: a plain list, or plotly's typed array ({"dtype", "bdata": base64})."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return array


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_charts_carry_targets_units_hover_counts_and_one_colour_per_location(
    at: AppTest, practice: SimulatedPractice, window: Window
) -> None:
    colours = {}
    for page, kpi in (("views/access.py", "no_show_rate"), ("views/visit_flow.py", "visit_cycle_time")):
        at.switch_page(page).run()
        no_errors(at)
        trend, split = figures(at)[:2]
        with practice.open() as wh:
            spec = {s.id: s for s in wh.catalog()}[kpi]
            api = wh.compute(kpi, start=window.first, end=window.end)
        assert trend["layout"]["shapes"][0]["y0"] == spec.target
        assert trend["layout"]["yaxis"]["title"]["text"] == {"percent": "percent"}.get(spec.unit, spec.unit)
        last = trend["data"][0]["customdata"][-1]  # period, value, numerator, denominator, n, status
        assert last[0] == period_text(window.month, "month") and last[4] == f"{api['n'].iloc[-1]:,}"
        assert "numerator %{customdata[2]} / denominator %{customdata[3]}" in trend["data"][0]["hovertemplate"]
        for trace in split["data"]:
            if trace["name"] not in (*charts.NOT_FINAL.values(), charts.WITHHELD):  # the legend's keys
                drawn = trace.get("line") or trace["marker"]  # a withheld value: a cross, no line
                colours.setdefault(trace["name"], set()).add(drawn["color"])
    assert len(colours) == 3 and all(len(c) == 1 for c in colours.values())  # same location, same colour
    assert len({c.pop() for c in colours.values()}) == 3


def test_upload_box_ingests_an_export(
    open_app: Callable, practice: SimulatedPractice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "fresh.duckdb"
    Warehouse(db).close()
    monkeypatch.setenv(ENV_SECRET, "dashboard-tests-secret")  # ingest pseudonymizes with the practice secret
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the upload is written while it loads
    # The simulator's queue_log, cut to its first lines to keep the test fast (a cut call is a reject).
    queue_log = b"".join((practice.exports / "phones" / "queue_log").read_bytes().splitlines(True)[:4000])
    at = open_app(db)
    at.switch_page("views/phones.py").run()
    assert at.info[0].value.startswith("No phone data loaded")
    at.switch_page("views/data_sources.py").run()
    at.file_uploader(key="upload").set_value(("queue_log", queue_log, "text/plain")).run()
    at.button(key="load").click().run()
    no_errors(at)
    with Warehouse.open(db, read_only=True) as wh:
        runs = wh.ingest_runs()
    assert runs["status"].tolist() == ["succeeded"] and runs["adapter"].tolist() == ["queue_log"]
    result = at.dataframe[0].value
    assert result["file"].tolist() == ["uploaded/queue_log"]
    assert result["inserted"].tolist() == runs["rows_inserted"].tolist() and runs["rows_inserted"].iloc[0] > 0
    assert at.success[0].value.startswith("Loaded 1 file(s)")
    assert not list(scratch.iterdir())  # the uploaded export (it holds patient details) is gone
    at.switch_page("views/phones.py").run()
    no_errors(at)
    assert not [i.value for i in at.info if i.value.startswith("No phone data loaded")]


def test_a_failed_upload_is_an_error_with_its_reason_and_success_is_said_of_what_loaded(
    open_app: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: an unknown CSV showed "failed" in a cut-off column beside a green "Loaded 1 file(s)"."""
    db = tmp_path / "fresh.duckdb"
    Warehouse(db).close()
    monkeypatch.setenv(ENV_SECRET, "dashboard-tests-secret")
    unknown = b"colour,shape\nred,round\n"
    queue_log = b"1767261600|1767261600.1|billing|NONE|ENTERQUEUE||5551234|1\n"
    at = open_app(db)
    at.switch_page("views/data_sources.py").run()
    at.file_uploader(key="upload").set_value([("shapes.csv", unknown, "text/csv"), ("queue_log", queue_log, "")]).run()
    at.button(key="load").click().run()
    assert not at.exception
    with Warehouse.open(db, read_only=True) as wh:
        runs = wh.ingest_runs().set_index("file_path")
    assert runs["status"].to_dict() == {"uploaded/shapes.csv": "failed", "uploaded/queue_log": "succeeded"}
    reason = runs.loc["uploaded/shapes.csv", "error"]
    assert reason.startswith("uploaded/shapes.csv: not a recognized export (FHIR, X12 837/835")
    assert [e.value for e in at.error] == [f"Not loaded: {reason}"]  # the reason in full
    assert [s.value for s in at.success] == ["Loaded 1 file(s): uploaded/queue_log. Every page now shows the new data."]
    assert at.dataframe[0].value["file"].tolist() == ["uploaded/queue_log"]  # only what loaded
    # nothing loaded: an error, and no word of success
    at.file_uploader(key="upload").set_value(("other.csv", b"a,b\n1,2\n", "text/csv")).run()
    at.button(key="load").click().run()
    assert [e.value for e in at.error] == ["Not loaded: uploaded/other.csv: " + reason.split(": ", 1)[1]]
    assert not at.success


def test_two_uploads_with_the_same_name_both_load_under_their_names(
    open_app: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 item 3 and issue 18: every Bulk export calls its file Appointment.ndjson; the second
    upload must not replace the first, and the run log names the uploads, not a temporary path."""
    db = tmp_path / "fresh.duckdb"
    Warehouse(db).close()
    monkeypatch.setenv(ENV_SECRET, "dashboard-tests-secret")
    first, second = (
        json.dumps(
            {
                "resourceType": "Appointment",
                "id": appointment_id,
                "status": "fulfilled",
                "start": "2026-09-01T09:00:00-04:00",
                "end": "2026-09-01T09:20:00-04:00",
            }
        ).encode()
        for appointment_id in ("east-1", "west-1")
    )
    at = open_app(db)
    at.switch_page("views/data_sources.py").run()
    upload = at.file_uploader(key="upload")
    upload.set_value([("Appointment.ndjson", first, "application/fhir+ndjson"), ("Appointment.ndjson", second, "")])
    at.run()
    at.button(key="load").click().run()
    no_errors(at)
    with Warehouse.open(db, read_only=True) as wh:
        runs = wh.ingest_runs().sort_values("run_id")
        loaded = wh.cursor().execute("SELECT appointment_id FROM appointments ORDER BY 1").fetchall()
    assert runs["file_path"].tolist() == ["uploaded/Appointment.ndjson", "uploaded/Appointment.ndjson (2)"]
    assert runs["status"].tolist() == ["succeeded", "succeeded"]
    assert loaded == [("east-1",), ("west-1",)]


def test_the_practice_config_sets_targets_and_names(
    open_app: Callable, practice: SimulatedPractice, tmp_path: Path
) -> None:
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        '[locations]\nEAST = "Harbor East"\n\n[targets]\nno_show_rate = { target = 0.05, red = 0.08 }\n',
        encoding="utf-8",
    )
    at = open_app(practice.db, config)  # as `clinic-kpis dashboard --config` passes it on
    no_errors(at)
    assert "Harbor East" in at.multiselect(key="location").options
    captions = [c.value for c in at.caption]
    # The no-show tile now has the practice's own band, the same as call abandonment's default one.
    assert captions.count("Target ≤ 5.0% · red > 8.0%") == 2
    assert "Target ≤ 7.0% · red > 10.0%" not in captions


def test_denial_reasons_stack_up_to_the_denial_rate(at: AppTest, practice: SimulatedPractice, window: Window) -> None:
    """The Revenue cycle page splits each month's denial rate by the payer's reason (CARC); the
    stacked parts of the last month add up to the rate the API gives."""
    at.switch_page("views/revenue_cycle.py").run()
    no_errors(at)
    (chart,) = [f for f in figures(at) if f["layout"]["title"]["text"].startswith("Denial rate by the payer's reason")]
    with practice.open() as wh:
        rate = wh.compute("denial_rate", start=window.first, end=window.end)
    reasons = {trace["name"] for trace in chart["data"]}
    assert reasons and all(r[:3] in ("CO-", "PI-", "OA-", "CLP") for r in reasons)
    month = rate["period_start"].iloc[-1].strftime("%Y-%m-%d")
    stacked = sum(
        y for t in chart["data"] for x, y in zip(t["x"], numbers(t["y"]), strict=True) if str(x)[:10] == month
    )
    assert stacked == pytest.approx(rate["value"].iloc[-1])


def test_a_value_the_export_cannot_give_says_why(open_app: Callable, tmp_path: Path) -> None:
    """Cancellations without an initiator: the late-cancellation numbers show no value and a note
    with the reason, not 0%."""
    fx = Fixture(tmp_path)
    start = pd.Timestamp.now(tz="America/New_York").normalize() - pd.DateOffset(months=1)
    days = [start.replace(day=d) for d in range(1, 25)]
    fx.add("appointments", *({"scheduled_start": d.to_pydatetime().replace(hour=9)} for d in days))
    fx.add(
        "appointments",
        *({"scheduled_start": d.to_pydatetime().replace(hour=10), "status": "cancelled"} for d in days),
    )
    fx.close()
    at = open_app(fx.path)
    at.switch_page("views/access.py").run()
    no_errors(at)
    notes = [n for frame in at.dataframe if "note" in frame.value for n in frame.value["note"].dropna()]
    assert any(n.startswith("Unknown: 24 cancellation(s) without the initiator") for n in notes), notes
