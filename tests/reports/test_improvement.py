"""The improvement loop in the monthly report: what friction cost, the changes made and what they did.

The practice is the session's simulated one with its change log imported (reminder calls at EAST
from January 2026, a placebo at WEST from March). The section "Changes you made and what they
did" must say what `clinic-kpis changes list --format json` prints, in the HTML and on the PDF's
page; the summary leads with the costliest friction and, in the month a signal first shows, with
that signal.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from kpis.comparison import findings
from kpis.formatting import money_text, rules_text, value_text
from kpis.periods import add_months
from kpis.spc import CHART_NAMES
from reports.build import documents, prepare
from reports.charts import ChartRenderer
from reports.context import ReportContext
from tests.conftest import SimulatedPractice, clinic_kpis, require_tool
from tests.reports.conftest import Built
from tests.reports.test_render import pdf_pages

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MONTH = date(2026, 9, 1)  # the simulation's last month: the report judges the changes on all the data
SECTION = "Changes you made and what they did"


@pytest.fixture(scope="session")
def report(practice_with_changes: SimulatedPractice, renderer: ChartRenderer) -> Built:
    with practice_with_changes.open() as wh:
        ctx = prepare(wh, MONTH, None)
    files = documents(ctx, renderer, ("html", "pdf"), "letter")
    return Built(ctx=ctx, html=files["html"].decode("utf-8"), pdf=files["pdf"])


@pytest.fixture(scope="session")
def records(practice_with_changes: SimulatedPractice) -> list[dict]:
    done = clinic_kpis("changes", "list", "--format", "json", cwd=practice_with_changes.directory)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def text_of(fragment: str) -> str:
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_changes_section_says_what_changes_list_prints(
    report: Built, records: list[dict], practice_with_changes: SimulatedPractice
) -> None:
    with practice_with_changes.open() as wh:
        specs = {s.id: s for s in wh.catalog()}
    blocks = re.findall(r'<div class="change" data-change="(\d+)" data-kpi="(\w+)">(.*?)</div>', report.html, re.S)
    assert [(int(c), k) for c, k, _ in blocks] == [(r["change_id"], r["kpi_id"]) for r in records]
    for (_, _, block), record in zip(blocks, records, strict=True):
        spec = specs[record["kpi_id"]]
        cells = {cls: text_of(body) for cls, body in re.findall(r'<td class="(?:num )?(\w+)">(.*?)</td>', block, re.S)}
        assert cells["chart"] == CHART_NAMES[record["chart"]]
        assert cells["before"] == value_text(record["centre_before"], spec)
        assert cells["after"] == value_text(record["centre_after"], spec)
        assert cells["rules"] == rules_text(record["rules"])
        assert cells["signal"].startswith("yes" if record["signal"] else "no")
        assert text_of(re.search(r'<p class="verdict">(.*?)</p>', block, re.S).group(1)) == record["verdict"]
    # the simulator's truth: the reminder calls worked, the posters did not
    assert [r["signal"] for r in records] == [True, False]


def test_the_changes_section_is_on_a_page_of_the_pdf(report: Built, records: list[dict], tmp_path: Path) -> None:
    pages = pdf_pages(report.pdf, tmp_path)
    (first,) = [n for n, page in enumerate(pages) if SECTION in page]
    text = " ".join(" ".join(pages[first : first + 2]).split())
    section = text[text.index(SECTION) : text.index("Data coverage and freshness")]
    for record in records:
        assert " ".join(record["verdict"].split()) in section, record["verdict"]
        assert CHART_NAMES[record["chart"]] in section
        assert f"{record['centre_before']:.1%}" in section and f"{record['centre_after']:.1%}" in section
    path = tmp_path / "report.pdf"
    path.write_bytes(report.pdf)
    number = str(first + 1)
    subprocess.run(
        [require_tool("pdftoppm"), "-r", "50", "-f", number, "-l", number, "-png", str(path), str(tmp_path / "p")],
        check=True,
    )
    (png,) = tmp_path.glob("p*.png")
    with Image.open(png) as image:
        grey = image.convert("L")
        inked = sum(grey.histogram()[:200]) / (grey.size[0] * grey.size[1])
    assert 0.02 < inked < 0.5


def test_the_friction_section_prints_the_api_costs_with_their_formulas(
    report: Built, practice_with_changes: SimulatedPractice
) -> None:
    with practice_with_changes.open() as wh:
        costs = wh.friction_costs(MONTH)
    rows = re.findall(r'<tr data-cost="(\w+)">(.*?)</tr>', report.html, re.S)
    section = text_of(report.html.split('<div class="friction">')[1].split('<div class="changes">')[0])
    assert [kpi for kpi, _ in rows] == costs["kpi_id"].tolist()  # costliest first
    for (_, row), cost in zip(rows, costs.to_dict(orient="records"), strict=True):
        assert text_of(re.search(r'class="num money">(.*?)</td>', row).group(1)) == money_text(cost["money"])
        assert f"{cost['kpi_title']} : {cost['formula']}." in section  # the title is bold
        for assumption in cost["assumptions"]:
            assert assumption["source"] in section


def _standing_holds(sentence: str, ctx: ReportContext, off: pd.DataFrame) -> None:
    """The summary's off-target sentence lists `off` (the API's ranking) in its order, with each known cost,
    and says which order it is: costliest first when any gap is priced, else furthest first."""
    order = "costliest first" if off["money"].notna().any() else "furthest first"
    assert sentence.startswith(f"Off target, {order}: " if len(off) > 1 else "Off target: "), sentence
    at = [sentence.index(f"{ctx.row(k).title} (") for k in off["kpi_id"]]
    assert at == sorted(at), sentence  # in the API's order
    for start, end, money in zip(at, [*at[1:], len(sentence)], off["money"], strict=True):
        item = sentence[start:end]
        assert item.count("about $") == (0 if pd.isna(money) else 1), item
        assert pd.isna(money) or f"about {money_text(money)} a month" in item, item


def test_the_summary_leads_with_the_costliest_friction(report: Built, practice_with_changes: SimulatedPractice) -> None:
    with practice_with_changes.open() as wh:
        costs = wh.friction_costs(MONTH)
        ranked = findings(wh.scorecard(MONTH), costs)
        first_signals = wh.change_effects(end=add_months(MONTH, 1) - timedelta(days=1))["signal_since"]
    top = costs.iloc[0]
    summary = report.ctx.summary
    assert 3 <= len(summary) <= 5
    assert summary[0].startswith(f"The costliest friction in September 2026 was {top['kpi_title'].lower()}: ")
    assert f"about {money_text(top['money'])} a month" in summary[0]
    new = (first_signals.dt.year == MONTH.year) & (first_signals.dt.month == MONTH.month)
    assert not new.any() and report.ctx.new_signals == ()  # no change's signal first showed in September
    assert not any(s.startswith("New signal") for s in summary)
    off = ranked[ranked["status"] == "off_target"]
    assert len(off) >= 1
    _standing_holds(summary[2], report.ctx, off)


def test_a_location_with_a_priced_gap_off_target_lists_it_costliest_first(
    practice_with_changes: SimulatedPractice,
) -> None:
    """Each location's summary ranks what is off target as the API does; somewhere a priced gap leads."""
    priced = 0
    with practice_with_changes.open() as wh:
        for location in practice_with_changes.truth["meta"]["locations"]:
            ctx = prepare(wh, MONTH, location)
            where = {"location": location}
            ranked = findings(wh.scorecard(MONTH, filters=where), wh.friction_costs(MONTH, filters=where))
            off = ranked[ranked["status"] == "off_target"]
            standing = next(s for s in ctx.summary if s.startswith(("Off target", "Nothing is off target", "Every")))
            if off.empty:
                assert not standing.startswith("Off target"), (location, standing)
                continue
            _standing_holds(standing, ctx, off)
            priced += int(off["money"].notna().any())
    assert priced >= 1  # the simulated practice has a costed gap off target at some location


def test_in_the_month_a_signal_first_shows_the_summary_says_so(practice_with_changes: SimulatedPractice) -> None:
    truth = practice_with_changes.truth["meta"]["changes"]
    injected = next(c for c in truth if not c["placebo"])  # the change the simulator made work
    placebo = next(c for c in truth if c["placebo"])
    start = date.fromisoformat(injected["date"])
    with practice_with_changes.open() as wh:
        ids = wh.changes().set_index("title")["change_id"]
        worked = int(ids[injected["title"]])
        everything = wh.change_effects().set_index("change_id")
        first = everything.loc[worked, "signal_since"].date()  # the month whose data first made it a signal
        ctx = prepare(wh, first, None)
        before = prepare(wh, add_months(first, -1), None)
        effects = wh.change_effects(end=add_months(first, 1) - timedelta(days=1)).set_index("change_id")
        at_placebo = prepare(wh, first, placebo["location"])
    assert first >= start
    assert [c.change_id for c in ctx.new_signals] == [worked] and before.new_signals == ()
    assert ctx.summary[1] == f"New signal this month: {effects.loc[worked, 'verdict']}"
    # judged on the months up to the report's month, as the report saw them, not on all the data loaded
    assert effects.loc[worked, "n_after"] == (first.year - start.year) * 12 + first.month - start.month + 1
    assert effects.loc[worked, "verdict"] != everything.loc[worked, "verdict"]
    lower = injected["no_show_probability_factor"] < 1  # what the simulator did to no-shows
    assert f"shifted {'down' if lower else 'up'}" in ctx.summary[1]
    assert ctx.summary[1].endswith(f"a signal, {'better' if lower else 'worse'}.")
    assert len(ctx.summary) <= 5
    # a location's report: the practice-wide changes and its own (the posters at WEST), no other site's
    logged = date.fromisoformat(placebo["date"]) < add_months(first, 1)
    assert [c.change_id for c in at_placebo.changes] == ([int(ids[placebo["title"]])] if logged else [])
    assert at_placebo.new_signals == ()
