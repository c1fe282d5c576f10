"""The dashboard served for real by `clinic-kpis dashboard` and driven in headless Chromium.

Playwright drives the system Chromium (never a downloaded browser). The test loads the
Overview, waits for the metrics, compares a tile with the API, switches page and filter, and
screenshots every page, checking each picture is not blank. With CLINIC_KPIS_SCREENSHOTS=DIR
set, the pictures are also copied to DIR (how docs/screenshots/ is regenerated).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from PIL import Image, ImageStat

from kpis.formatting import format_value, money_text, rules_text, value_text
from kpis.spc import CHART_NAMES
from tests.conftest import SimulatedPractice, clinic_kpis, require_tool
from tests.dashboards.conftest import Window

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = [  # (sidebar link, url path, screenshot name)
    ("Overview", "", "overview"),
    ("Access & scheduling", "access", "access"),
    ("Revenue cycle", "revenue_cycle", "revenue_cycle"),
    ("Phones", "phones", "phones"),
    ("Visit flow", "visit_flow", "visit_flow"),
    ("Referrals & portal", "referrals_portal", "referrals_portal"),
    ("Data", "data_sources", "data"),
    ("Definitions", "definitions", "definitions"),
]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
START_SECONDS = 60
SIDEBAR_PX = 320  # the sidebar's width at this viewport


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db: Path, config: Path, log: Path, cwd: Path | None = None, port: int | None = None) -> Iterator[str]:
    """Run `clinic-kpis dashboard --db DB --config CONFIG --port N` until it answers its health check; yield its URL.

    `cwd`: where it starts (Streamlit reads `.streamlit/secrets.toml` there).
    """
    port = port or free_port()
    cli = [sys.executable, "-c", "from kpis.cli import main; main()"]
    cmd = [*cli, "dashboard", "--db", str(db), "--config", str(config), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dashboard did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def dashboard_url(practice: SimulatedPractice, tmp_path: Path) -> Iterator[str]:
    yield from serve(practice.db, practice.config, tmp_path / "dashboard.log")


def nav_link(page, title: str):  # noqa: ANN001, ANN201 (playwright Page and Locator)
    """The sidebar link to a page (its text also holds the icon's ligature name, hence the anchored match)."""
    return page.get_by_test_id("stSidebarNavLink").filter(has_text=re.compile(rf"{re.escape(title)}$"))


def wait_idle(page) -> None:  # noqa: ANN001 (playwright Page)
    """Wait until the script run ends and the charts on the page are drawn."""
    page.wait_for_selector(IDLE, timeout=90_000)
    page.wait_for_timeout(300)  # a rerun may start right after a widget change
    page.wait_for_selector(IDLE, timeout=90_000)
    for chart in page.locator('[data-testid="stPlotlyChart"]').all():
        chart.locator(".main-svg").first.wait_for(timeout=30_000)


def assert_not_blank(path: Path) -> None:
    """The page area right of the sidebar has content: a blank (white) area has a pixel std dev near 0."""
    with Image.open(path) as img:
        main = img.convert("L").crop((SIDEBAR_PX, 0, img.width, img.height))
        spread = ImageStat.Stat(main).stddev[0]
    assert spread > 10, f"{path.name} looks blank right of the sidebar (pixel std dev {spread:.1f})"


@pytest.mark.browser
@pytest.mark.slow
def test_dashboard_in_a_real_browser(
    dashboard_url: str, practice: SimulatedPractice, window: Window, tmp_path: Path, progress: Callable[[str], None]
) -> None:
    progress(f"dashboard serving at {dashboard_url}")
    chromium = require_tool("chromium")
    from playwright.sync_api import expect, sync_playwright

    with practice.open() as wh:
        no_show = wh.compute("no_show_rate", start=window.month, end=window.end)["value"].iloc[0]
        # the tile shows the scorecard's value: withheld ("n < 11") when a count under 11 is behind it
        east_row = wh.scorecard(window.month, filters={"location": "EAST"}).set_index("kpi_id").loc["no_show_rate"]
        east_text = "n < 11" if east_row["state"] == "small" else format_value(east_row["value"], "pct1")
        east_label = wh.dimension_values("location").set_index("id").loc["EAST", "label"]
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(dashboard_url)
        tile = page.get_by_test_id("stMetric").filter(has_text="No-show rate").get_by_test_id("stMetricValue")
        expect(tile).to_have_text(format_value(no_show, "pct1"), timeout=90_000)
        wait_idle(page)
        progress("Overview drawn in Chromium")

        for link, url_path, name in PAGES:
            nav_link(page, link).click()
            page.wait_for_url(f"{dashboard_url}/{url_path}*")
            expect(page.get_by_role("heading", level=1).filter(has_text=link)).to_be_visible(timeout=90_000)
            wait_idle(page)
            shots.append(tmp_path / f"{name}.png")
            page.screenshot(path=shots[-1])
            progress(f"page {link} drawn and captured")

        # A filter in the sidebar: goes into the URL and changes the tile, and stays on when the page changes.
        nav_link(page, "Phones").click()
        wait_idle(page)
        page.get_by_test_id("stMultiSelect").filter(has_text="Location").click()
        page.get_by_role("option", name=east_label, exact=True).click()
        page.wait_for_url(f"**location={quote_plus(east_label)}*")
        wait_idle(page)
        nav_link(page, "Overview").click()
        page.wait_for_url(f"**location={quote_plus(east_label)}*")
        expect(tile).to_have_text(east_text, timeout=60_000)
        wait_idle(page)
        shots.append(tmp_path / "overview_east.png")
        page.screenshot(path=shots[-1])
        progress("the location filter followed to the Overview")
        browser.close()

    for shot in shots:
        assert_not_blank(shot)
    target = os.environ.get("CLINIC_KPIS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots[: len(PAGES)]:
            shutil.copy(shot, Path(target) / shot.name)


@pytest.fixture
def improvement_url(practice_with_changes: SimulatedPractice, tmp_path: Path) -> Iterator[str]:
    yield from serve(practice_with_changes.db, practice_with_changes.config, tmp_path / "dashboard.log")


def table_rows(page, header: str) -> list[dict[str, str]]:  # noqa: ANN001 (playwright Page)
    """The rows of the st.table whose header has `header`, as {column: text}."""
    table = page.get_by_test_id("stTable").filter(has=page.locator("th", has_text=header))
    columns = [c.strip() for c in table.locator("thead th").all_inner_texts()]
    return [
        dict(zip(columns, [c.strip() for c in row.locator("td, th").all_inner_texts()], strict=True))
        for row in table.locator("tbody tr").all()
    ]


@pytest.mark.browser
@pytest.mark.slow
def test_the_improvement_page_in_a_real_browser(
    improvement_url: str, practice_with_changes: SimulatedPractice, window: Window, tmp_path: Path
) -> None:
    """The page served for real shows, per change and KPI, what `clinic-kpis changes list --format
    json` prints, the API's friction costs, and the first change's control chart."""
    chromium = require_tool("chromium")
    from playwright.sync_api import expect, sync_playwright

    done = clinic_kpis("changes", "list", "--format", "json", cwd=practice_with_changes.directory)
    records = json.loads(done.stdout)
    with practice_with_changes.open() as wh:
        specs = {s.id: s for s in wh.catalog()}
        costs = wh.friction_costs(window.month)
        first = wh.change_effects().iloc[0]  # the change whose control chart the page shows first
        control = wh.spc(first["kpi_id"], filters=first["scope"])
        months = control["period_start"]
        facts = wh.facts(first["kpi_id"], start=months.min(), end=months.max(), filters=first["scope"])
    # a ring (and its legend) only where a signalling month's value may be shown: none on a withheld one
    drawn = set(facts.loc[facts["state"] != "small", "period_start"])
    rings = [p for p in control.loc[control["signal"], "period_start"] if p in drawn]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 4200})
        page.goto(f"{improvement_url}/improvement")
        expect(page.get_by_role("heading", level=1).filter(has_text="Improvement")).to_be_visible(timeout=90_000)
        wait_idle(page)
        for header in ("verdict", "cost a month"):  # drawn by a later part of the run on a busy machine
            table = page.get_by_test_id("stTable").filter(has=page.locator("th", has_text=header))
            expect(table).to_be_visible(timeout=90_000)
        verdicts = table_rows(page, "verdict")
        assert len(verdicts) == len(records) == 2
        for row, record in zip(verdicts, records, strict=True):
            spec = specs[record["kpi_id"]]
            assert row["change"] == f"{record['title']} (#{record['change_id']})"
            assert row["chart"] == CHART_NAMES[record["chart"]]
            assert (row["before"], row["after"]) == (
                value_text(record["centre_before"], spec),
                value_text(record["centre_after"], spec),
            )
            assert row["rules fired"] == rules_text(record["rules"])
            assert row["signal"] == ("yes" if record["signal"] else "no")
            assert row["verdict"] == record["verdict"]
        ranking = table_rows(page, "cost a month")
        assert [r["cost a month"] for r in ranking] == [money_text(m) for m in costs["money"]]
        chart = page.get_by_test_id("stPlotlyChart").last
        expect(chart.locator(".annotation-text").filter(has_text="Reminder calls 48 h ahead")).to_have_count(1)
        expect(chart.locator(".legendtext").filter(has_text="3-sigma limits")).to_have_count(1)
        expect(chart.locator(".legendtext").filter(has_text="signal (special cause)")).to_have_count(min(len(rings), 1))
        shot = tmp_path / "improvement.png"
        page.screenshot(path=shot)
        browser.close()
    assert_not_blank(shot)
    target = os.environ.get("CLINIC_KPIS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)
