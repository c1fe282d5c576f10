"""Sign-in and scopes in a real browser: the dashboard served by `clinic-kpis dashboard`, driven in
headless Chromium (Playwright with the system Chromium).

* A visitor who is not signed in gets the sign-in form and no number, on every page and whatever
  the address says.
* EAST's manager sees EAST only: on every page, with another location's id, its name or a crafted
  value in the address, in every CSV download and in the records behind a value; and their own
  numbers as they are (small cells included), equal to the owner's view filtered to EAST.
* EAST's viewer gets the aggregates only (small cells withheld), never a record.
* The audit log holds what each of them did, in order, with who and which filters.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus, urlparse

import pandas as pd
import pytest

from kpis.formatting import value_text
from kpis.scope import Scope
from tests.conftest import require_tool
from tests.dashboards.conftest import Staff
from tests.dashboards.test_browser import CHROMIUM_ARGS, nav_link, serve, wait_idle
from tests.kpis.helpers import elsewhere_only

pytestmark = [pytest.mark.browser, pytest.mark.slow]
KEPT = re.compile(r"^[0-9a-f]{64}$")  # what a patient key looks like: an HMAC, never an id


@pytest.fixture(scope="module")
def url(staff: Staff, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(staff.db, staff.config, tmp_path_factory.mktemp("signin") / "dashboard.log")


@pytest.fixture(scope="module")
def foreign(staff: Staff) -> frozenset[str]:
    with staff.owner() as wh:
        return elsewhere_only(wh, "EAST")


@pytest.fixture
def browser_page():  # noqa: ANN201 (a Playwright Page)
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        browser.close()


def sign_in(page, address: str, name: str, password: str) -> None:  # noqa: ANN001 (Playwright Page)
    page.goto(address)
    page.get_by_role("heading", name="Sign in").wait_for(timeout=90_000)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=90_000)
    wait_idle(page)


# every page the app has, by url path (the default page is also ""): pages added later included
VIEW_PATHS = sorted(p.stem for p in (Path(__file__).parents[2] / "dashboards" / "views").glob("*.py"))


def walk_the_sidebar(page) -> Iterator[str]:  # noqa: ANN001 (Playwright Page)
    """Click every page the sidebar offers, in order, and yield each page's url path once it is drawn."""
    hrefs = [link.get_attribute("href") or "" for link in page.get_by_test_id("stSidebarNavLink").all()]
    for href in hrefs:
        path, here = urlparse(href).path.strip("/"), urlparse(page.url).path.strip("/")
        before = page.get_by_role("heading", level=1).first.inner_text()
        page.locator(f'[data-testid="stSidebarNavLink"][href="{href}"]').click()
        if path != here:  # another page: wait for its own heading (every page's title differs)
            page.wait_for_function(
                "old => { const h = document.querySelector('h1'); return h && h.innerText !== old }", arg=before
            )
        wait_idle(page)
        yield path


def overview_month(page) -> str:  # noqa: ANN001 (Playwright Page)
    """The month the Overview reports (its heading: "Overview — Sep 2026"), as 2026-09-01."""
    heading = page.get_by_role("heading", level=1).filter(has_text="Overview").inner_text()
    return datetime.strptime(heading.split("—")[-1].strip(), "%b %Y").date().isoformat()


def assert_only_east(text: str, foreign: frozenset[str], where: str) -> None:
    found = sorted(token for token in foreign if token in text)
    assert not found, f"{where}: another location's ids or names: {found}"


def download(page, container) -> bytes:  # noqa: ANN001 (Playwright Page, Locator)
    """The file a download button gives, as a user gets it: clicked again if the first click was lost.

    The button itself is clicked (Playwright then waits until it is enabled), not its container.
    Under a loaded CI machine a click landing while the frontend redraws the button can start no
    download (seen once in CI); a user clicks again, and so does this, once.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    button = container.get_by_role("button")
    button.wait_for(timeout=60_000)
    wait_idle(page)  # a click during a rerun can be lost
    for attempt in (1, 2):
        try:
            with page.expect_download(timeout=30_000 * attempt) as info:
                button.click()
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            print("  no download after the first click: clicking again")
            wait_idle(page)
    content = Path(info.value.path()).read_bytes()
    wait_idle(page)  # the click's rerun, which writes the download to the audit log, may come after the file
    return content


def after(entries: pd.DataFrame, *steps: tuple[str, str | None]) -> None:
    """The (event, page or kpi) steps appear in the audit entries in this order (others may come between)."""
    rows = list(zip(entries["event"], entries["page"], entries["kpi"], strict=True))
    position = 0
    for event, what in steps:
        while position < len(rows) and not (rows[position][0] == event and what in (None, *rows[position][1:])):
            position += 1
        assert position < len(rows), f"audit log: {(event, what)} missing after the steps before it in {rows}"
        position += 1


def test_a_visitor_not_signed_in_sees_a_sign_in_form_and_no_number(url: str, browser_page) -> None:  # noqa: ANN001
    page = browser_page
    for path in VIEW_PATHS:
        for query in ("", "?location=WEST&grain=day", "?location=%27%20OR%201%3D1%20--"):
            page.goto(f"{url}/{path}{query}")
            page.get_by_role("heading", name="Sign in").wait_for(timeout=90_000)
            wait_idle(page)
            main = page.get_by_test_id("stMain").inner_text()
            assert not re.search(r"\d", main), f"/{path}{query}: a number before sign-in: {main!r}"
            for element in ("stMetric", "stPlotlyChart", "stDataFrame", "stSidebarNav", "stMultiSelect"):
                assert page.get_by_test_id(element).count() == 0, f"/{path}{query}: {element} before sign-in"


def test_a_manager_sees_only_their_location_everywhere(
    url: str,
    staff: Staff,
    foreign: frozenset[str],
    browser_page,  # noqa: ANN001
) -> None:
    page = browser_page
    start = datetime.now(UTC)
    sign_in(page, url, "mark", staff.password)
    month = overview_month(page)
    with staff.owner() as wh:  # the manager's numbers are the owner's filtered to EAST, small cells included
        card = wh.scorecard(month, filters={"location": "EAST"}).set_index("kpi_id")
        spec = {s.id: s for s in wh.catalog()}["no_show_rate"]
    tile = page.get_by_test_id("stMetric").filter(has_text=spec.title).get_by_test_id("stMetricValue")
    assert tile.inner_text() == value_text(card.loc["no_show_rate", "value"], spec)
    assert nav_link(page, "Audit log").count() == 0

    # every page the sidebar offers (a page added later is walked too, and must be offered)
    walked = []
    for path in walk_the_sidebar(page):
        walked.append(path)
        assert_only_east(page.locator("body").inner_text(), foreign, f"page /{path}")
        assert page.get_by_test_id("stException").count() == 0, f"page /{path}"
    assert {p or "overview" for p in walked} == set(VIEW_PATHS) - {"audit"}, walked

    # every filter value in the address: another location's id, its name, a crafted value, a provider of WEST
    with staff.owner() as wh:
        west_provider = sorted(foreign & set(wh.dimension_values("provider")["label"].astype(str)))[0]
    crafted = "location=%27%20OR%201%3D1%20--"
    for query in ("location=WEST", "location=Westside", crafted, f"provider={quote_plus(west_provider)}",
                  "location=Eastside&location=Northside"):  # fmt: skip
        sign_in(page, f"{url}/access?{query}", "mark", staff.password)
        page.get_by_role("heading", level=1).filter(has_text="Access & scheduling").wait_for()
        assert_only_east(page.locator("body").inner_text() + page.url, foreign, f"/access?{query}")
        assert page.get_by_test_id("stException").count() == 0
        chosen = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").first.inner_text()
        assert "Westside" not in chosen and "Northside" not in chosen

    # a CSV download and the records behind a value (and their CSV)
    section = page.get_by_test_id("stExpander").filter(has_text="The numbers behind no-show rate")
    section.click()
    numbers = download(page, section.get_by_test_id("stDownloadButton"))
    assert_only_east(numbers.decode(), foreign, "numbers CSV")
    segments = set(pd.read_csv(io.BytesIO(numbers))["segment"])
    assert segments <= {"all", "Eastside"} or not segments & {"Westside", "Northside"}
    records_box = page.get_by_test_id("stSelectbox").filter(has_text="The records behind no-show rate in")
    records_box.click()
    month = page.get_by_role("option").nth(1)
    month_text = month.inner_text()
    month.click()
    wait_idle(page)
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=90_000)
    records_csv = download(
        page, page.get_by_test_id("stDownloadButton").filter(has_text="Download these records (CSV)")
    )
    records = pd.read_csv(io.BytesIO(records_csv), dtype=str)
    assert len(records) > 0 and set(records["location"]) == {"EAST"}
    assert records["patient_key"].dropna().str.match(KEPT).all()
    assert_only_east(records_csv.decode(), foreign, "records CSV")

    # the audit log: what the manager did, in order, with the filters
    entries = staff.audit(since=start)
    mine = entries[entries["user"] == "mark"].reset_index(drop=True)
    after(
        mine,
        ("sign_in", None), ("view", "overview"), *(("view", p) for p in walked if p not in ("", "overview")),
        ("sign_in", None), ("view", "access"), ("download", "no_show_rate"), ("records", "no_show_rate"),
        ("download", "no_show_rate"),
    )  # fmt: skip
    assert set(mine["role"].dropna()) == {"manager"}
    views = mine[mine["event"] == "view"]
    assert all(json.loads(d)["scope"] == "EAST" for d in views["detail"])
    assert any(json.loads(f).get("grain") == "month" for f in views["filters"])
    records_entry = mine[mine["event"] == "records"].iloc[-1]
    assert json.loads(records_entry["filters"]) == {"location": ["EAST"]}
    assert records_entry["period"].startswith(str(pd.Period(month_text, freq="M")))
    downloads = [json.loads(d)["what"] for d in mine.loc[mine["event"] == "download", "detail"]]
    assert downloads[-2:] == ["numbers", "records"]


def test_a_viewer_gets_aggregates_and_no_record(url: str, staff: Staff, foreign: frozenset[str], browser_page) -> None:  # noqa: ANN001
    page = browser_page
    start = datetime.now(UTC)
    sign_in(page, url, "vera", staff.password)
    month = overview_month(page)
    with staff.owner() as wh:  # a viewer's numbers withhold small cells, as a report does
        viewer = wh.narrowed(Scope(locations=frozenset({"EAST"}), small_cells=True))
        card = viewer.scorecard(month).set_index("kpi_id")
        spec = {s.id: s for s in wh.catalog()}["no_show_rate"]
    tile = page.get_by_test_id("stMetric").filter(has_text=spec.title).get_by_test_id("stMetricValue")
    row = card.loc["no_show_rate"]
    assert tile.inner_text() == ("n < 11" if row["state"] == "small" else value_text(row["value"], spec))
    for link in ("Access & scheduling", "Phones", "Revenue cycle"):
        nav_link(page, link).click()
        page.get_by_role("heading", level=1).filter(has_text=link).wait_for(timeout=90_000)
        wait_idle(page)
        assert page.get_by_test_id("stSelectbox").filter(has_text="The records behind").count() == 0
        assert page.get_by_test_id("stDownloadButton").filter(has_text="records").count() == 0
        if link != "Phones":  # (EAST has no calls: the queue_log names no location)
            assert page.get_by_text("not shown to your role").count() > 0
        assert_only_east(page.locator("body").inner_text(), foreign, link)
    entries = staff.audit(since=start)
    mine = entries[entries["user"] == "vera"]
    assert "records" not in set(mine["event"])
    after(mine.reset_index(drop=True), ("sign_in", None), ("view", "overview"), ("view", "access"), ("view", "phones"))
