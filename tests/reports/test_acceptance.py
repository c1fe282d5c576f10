"""Acceptance: the report built on the simulator's warehouse (simulate -> ingest -> report).

The practice is the session's simulated practice (tests/conftest.py: 14 months, half volume,
simulated and loaded with the real `clinic-kpis init`, `sample` and `ingest` commands). The
report for its last month must show the KPI API's numbers, a summary whose directions and
drivers the API confirms, a PDF of the expected length whose first page is drawn, and no small
count or patient key.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from kpis import Warehouse
from kpis.formatting import value_text
from kpis.periods import add_months
from reports.build import documents, prepare
from reports.charts import ChartRenderer
from tests.conftest import SimulatedPractice, require_tool
from tests.reports.conftest import Built, Practice
from tests.reports.test_render import kpi_cells, pdf_pages

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MONTH = date(2026, 9, 1)  # the simulation's last month (September 30 is a weekday: the month is complete)


@pytest.fixture(scope="session")
def simulated(simulated_practice: SimulatedPractice) -> Practice:
    return Practice(db=simulated_practice.db, config=simulated_practice.config)


@pytest.fixture(scope="session")
def sim_report(simulated: Practice, renderer: ChartRenderer) -> Built:
    with simulated.open() as wh:
        ctx = prepare(wh, MONTH, None)
    files = documents(ctx, renderer, ("html", "pdf"), "letter")
    return Built(ctx=ctx, html=files["html"].decode("utf-8"), pdf=files["pdf"])


@pytest.fixture
def sim_wh(simulated: Practice) -> Iterator[Warehouse]:
    with simulated.open() as wh:
        yield wh


def test_html_numbers_equal_the_kpi_api(sim_report: Built, sim_wh: Warehouse) -> None:
    api = sim_wh.compute(start=add_months(MONTH, -12), end=MONTH)
    api["period"] = api["period_start"].dt.date
    specs = {s.id: s for s in sim_wh.catalog()}
    cells = kpi_cells(sim_report.html)
    shown = 0
    for row in sim_report.ctx.rows:
        spec = specs[row.id]
        record = api[(api["kpi_id"] == row.id) & (api["period"] == row.period)].iloc[0]
        assert record["complete"], row.id  # never an open month as the value
        expected = "n < 11" if row.suppressed else value_text(record["value"], spec)
        assert cells[row.id]["value"] == expected, row.id
        shown += expected not in ("—", "n < 11")
    assert shown >= 18  # nearly every KPI has a value on the simulated practice
    assert sum(r.period == MONTH for r in sim_report.ctx.rows) >= 18


def test_summary_directions_and_drivers_agree_with_the_api(sim_report: Built, sim_wh: Warehouse) -> None:
    ctx = sim_report.ctx
    assert 3 <= len(ctx.summary) <= 5
    checked = 0
    for move in ctx.movers:
        sentence = next((s for s in ctx.summary if s.startswith(move.title + " ")), None)
        if sentence is None:
            continue
        frame = sim_wh.compute(move.kpi_id, start=move.before, end=move.period)
        assert frame["complete"].all()  # a move is between two final months
        before, after = frame["value"].tolist()
        assert (" rose to " in sentence) == (after > before), sentence
        assert (" fell to " in sentence) == (after < before), sentence
        driver = move.driver
        if driver is not None and driver.contribution is not None:
            drivers = sim_wh.drivers(move.kpi_id, move.period, compare_to=move.before, by=driver.dimension)
            part = drivers.set_index("segment").loc[driver.segment, "contribution"]
            assert part == pytest.approx(driver.contribution) and (part > 0) == (after > before)
            who = f"the {driver.label} queue" if driver.dimension == "queue" else driver.label
            assert f"driven by {who} " in sentence, sentence
        checked += 1
    assert checked >= 1


def test_pdf_has_the_expected_pages_and_a_drawn_first_page(sim_report: Built, tmp_path: Path) -> None:
    pages = pdf_pages(sim_report.pdf, tmp_path)
    assert 5 <= len(pages) <= 10
    assert all("Scope: Whole practice (all locations)" in " ".join(p.split()) for p in pages)
    path = tmp_path / "report.pdf"
    path.write_bytes(sim_report.pdf)
    pdftoppm = require_tool("pdftoppm")
    subprocess.run([pdftoppm, "-r", "50", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "p")], check=True)
    (png,) = tmp_path.glob("p*.png")
    with Image.open(png) as image:
        grey = image.convert("L")
        inked = sum(grey.histogram()[:200]) / (grey.size[0] * grey.size[1])
    assert 0.02 < inked < 0.5


def test_small_counts_and_patient_keys_never_reach_the_report(sim_report: Built, simulated: Practice) -> None:
    truth = json.loads((simulated.db.parent / "exports" / "truth.json").read_text(encoding="utf-8"))
    small = {f: n for f, n in truth["rejects"].items() if 0 < n < 11}
    assert small  # the simulator quarantines a handful of records per file
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", sim_report.html))
    for file in small:
        if file in text:
            assert re.search(re.escape(file) + r" \(<11\)", text), file
    for cell in re.findall(r'<td class="num">([0-9,]+)</td>', sim_report.html):
        assert int(cell.replace(",", "")) == 0 or int(cell.replace(",", "")) >= 11 or not cell
    with duckdb.connect(str(simulated.db), read_only=True) as con:
        keys = [k for (k,) in con.execute("SELECT DISTINCT patient_key FROM appointments LIMIT 500").fetchall() if k]
    assert keys and not any(k in sim_report.html for k in keys)
    assert re.search(r"\b[0-9a-f]{64}\b", sim_report.html) is None
