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
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from kpis.formatting import money_text, rules_text, value_text
from kpis.spc import CHART_NAMES
from reports.build import documents, prepare
from reports.charts import ChartRenderer
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


def test_the_summary_leads_with_the_costliest_friction(report: Built, practice_with_changes: SimulatedPractice) -> None:
    with practice_with_changes.open() as wh:
        top = wh.friction_costs(MONTH).iloc[0]
    summary = report.ctx.summary
    assert 3 <= len(summary) <= 5
    assert summary[0].startswith(f"The costliest friction in September 2026 was {top['kpi_title'].lower()}: ")
    assert f"about {money_text(top['money'])} a month" in summary[0]
    assert report.ctx.new_signals == ()  # the reminder calls' signal first showed in June, not September
    assert not any(s.startswith("New signal") for s in summary)
    assert summary[2].startswith("Off target, costliest first: ")


def test_in_the_month_a_signal_first_shows_the_summary_says_so(practice_with_changes: SimulatedPractice) -> None:
    june = date(2026, 6, 1)
    with practice_with_changes.open() as wh:
        ctx = prepare(wh, june, None)
        effects = wh.change_effects(end="2026-06-30").set_index("change_id")
        west = prepare(wh, june, "WEST")
    assert [c.change_id for c in ctx.new_signals] == [1]
    assert ctx.summary[1] == f"New signal this month: {effects.loc[1, 'verdict']}"
    assert "6 of 6 months" in ctx.summary[1]  # judged on the months up to June, as the report saw them
    assert len(ctx.summary) <= 5
    # a location's report: the practice-wide changes and its own (the posters at WEST), no other site's
    assert [c.change_id for c in west.changes] == [2] and west.new_signals == ()
