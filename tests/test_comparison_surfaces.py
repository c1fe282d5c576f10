"""Every surface tells the same, complete story: the dashboard, the report, the CLI and the API.

On the session's simulated practice (tests/conftest.py: 14 months, August 2025 to September
2026), loaded with the real commands:

* the dashboard's "What changed" and the report's movers name the same KPIs, values and drivers,
  month after month (both read `Warehouse.movers`);
* its ledger starts in August 2025, so days in A/R, A/R over 90 days and net collection have no
  covered year-ago month anywhere in it: no surface shows a "vs last year" for them, while the
  KPIs without a look-back do have one.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from collections.abc import Callable
from datetime import date

import pytest
from streamlit.testing.v1 import AppTest

from kpis.formatting import change_text, value_text
from kpis.periods import add_months
from reports.build import prepare
from reports.render import render_html
from tests.conftest import SimulatedPractice, clinic_kpis
from tests.dashboards.conftest import APP, TIMEOUT

LAST = date(2026, 9, 1)  # the simulation's last month
LOOK_BACK = ("days_in_ar", "ar_over_90_pct", "net_collection_rate")


@pytest.fixture
def app(simulated_practice: SimulatedPractice, monkeypatch: pytest.MonkeyPatch) -> Callable[[date], AppTest]:
    """The dashboard on the simulated practice, its month range ending with `month`."""
    monkeypatch.setenv("CLINIC_KPIS_DB", str(simulated_practice.db))
    monkeypatch.setenv("CLINIC_KPIS_CONFIG", str(simulated_practice.config))

    def open_at(month: date) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        first = add_months(month, -12)
        at.select_slider(key="months").set_value((f"{first:%Y-%m}", f"{month:%Y-%m}")).run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.title[0].value.endswith(month.strftime("%b %Y"))
        return at

    return open_at


def dashboard_moves(at: AppTest) -> list[tuple[str, str, str | None]]:
    """(title, "before → after", driver label) of each "What changed" bullet."""
    blocks = [m.value for m in at.markdown if m.value.startswith("- **") and "→" in m.value]
    out = []
    for line in (line for block in blocks for line in block.splitlines() if line.startswith("- **")):
        title = line[4 : line.index("**", 4)]
        values = re.search(r": (\S+(?: \w+)? → \S+(?: \w+)?);", line).group(1)
        driver = re.search(r"(?:from|at) (?:location|provider|payer|queue|specialty) (.+?) \(", line)
        out.append((title, values, driver.group(1) if driver else None))
    return out


def report_moves(html: str) -> list[tuple[str, str, str | None]]:
    """The same from the report's "Biggest movers" section (HTML)."""
    out = []
    for body in re.findall(r'<div class="mover" data-mover="[a-z0-9_]+">(.*?)</div>', html, flags=re.S):
        heading = html_lib.unescape(re.sub(r"<[^>]+>", "", re.search(r"<h3>(.*?)</h3>", body, flags=re.S).group(1)))
        title, values = " ".join(heading.split()).split(": ", 1)
        values = values.split(" (")[0].strip()
        first = re.search(r"<tr>\s*<td>(.*?)</td>", body, flags=re.S)
        out.append((title, values, html_lib.unescape(first.group(1)) if first else None))
    return out


@pytest.mark.slow
def test_what_changed_and_the_report_movers_tell_the_same_story(
    app: Callable[[date], AppTest], simulated_practice: SimulatedPractice
) -> None:
    compared = 0
    for month in (LAST, add_months(LAST, -1), add_months(LAST, -2)):
        shown = dashboard_moves(app(month))
        with simulated_practice.open() as wh:
            ctx = prepare(wh, month, None)
            api = wh.movers(month)
        written = report_moves(render_html(ctx, {t.row.id: "data:," for t in ctx.trends}))
        assert shown == written, month
        specs = {s.id: s for s in ctx.rows}
        expected = [
            (m.title, f"{value_text(m.previous, specs[m.kpi_id])} → {value_text(m.value, specs[m.kpi_id])}",
             m.driver.label if m.driver else None)
            for m in api
        ]  # fmt: skip
        assert shown == expected, month
        assert len(shown) >= 2 and any(driver for *_, driver in shown)
        compared += len(shown)
    assert compared >= 8


@pytest.mark.slow
def test_the_first_year_of_ledger_has_no_vs_last_year_on_any_surface(
    app: Callable[[date], AppTest], simulated_practice: SimulatedPractice
) -> None:
    month = LAST
    # the API: no comparison, and why
    with simulated_practice.open() as wh:
        card = wh.scorecard(month).set_index("kpi_id")
        specs = {s.id: s for s in wh.catalog()}
        ctx = prepare(wh, month, None)
    for kpi in LOOK_BACK:
        assert card.loc[kpi, "state"] == "final" and card.loc[kpi, "year_state"] == "history", kpi
        assert card.loc[kpi, "change_year"] is None or card.loc[kpi, "change_year"] != card.loc[kpi, "change_year"]
    assert card.loc["no_show_rate", "year_state"] == "final"  # a KPI without a look-back is compared
    no_show_year = change_text(card.loc["no_show_rate", "change_year"], specs["no_show_rate"])

    # the dashboard: each tile's caption
    at = app(month)
    tiles = {}
    for column in at.columns:
        if len(column.metric) == 1:
            tiles[column.metric[0].label] = " ".join(c.value for c in column.caption)
    for kpi in LOOK_BACK:
        assert f"vs {add_months(month, -12):%b %Y}: — (early data)" in tiles[specs[kpi].title], kpi
    assert f"({no_show_year})" in tiles["No-show rate"]

    # the report: the table's "vs last year" cell
    html = render_html(ctx, {t.row.id: "data:," for t in ctx.trends})
    for kpi in LOOK_BACK:
        row = ctx.row(kpi)
        assert row.change_year is None and row.year_state == "history" and row.value is not None
        cell = re.search(rf'<tr data-kpi="{kpi}".*?<td class="num [a-z]* ?year-change">(.*?)</td>', html, re.S)
        assert re.sub(r"<[^>]+>", " ", cell.group(1)).split() == ["—", "early", "data"], kpi
    assert ctx.row("no_show_rate").change_year is not None

    # the command line: the scorecard, as a table and as JSON
    where = ("--db", str(simulated_practice.db), "--config", str(simulated_practice.config), "--month", "2026-09")
    table = clinic_kpis("scorecard", *where, cwd=simulated_practice.directory)
    assert table.returncode == 0, table.stderr
    for kpi in LOOK_BACK:
        line = next(x for x in table.stdout.splitlines() if x.split("│")[0].strip() == specs[kpi].title)
        cells = [c.strip() for c in line.split("│")]
        assert cells[4] == "—" and "vs last year: early data" in cells[-1], line
    done = clinic_kpis("scorecard", *where, "--format", "json", cwd=simulated_practice.directory)
    rows = {r["kpi_id"]: r for r in json.loads(done.stdout)}
    assert all(rows[k]["change_year"] is None and rows[k]["year_state"] == "history" for k in LOOK_BACK)
    assert rows["no_show_rate"]["change_year"] is not None
