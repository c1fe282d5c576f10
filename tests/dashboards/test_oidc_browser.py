"""Sign-in through a real OpenID Connect provider running in the test (oidc-provider-mock), with
Streamlit's st.login configured in `.streamlit/secrets.toml` where the dashboard starts.

The provider's `email` claim names a user of the warehouse (who needs no password), a configured
group gives its members a role ([access] oidc_groups), anyone else is refused; each outcome is
in the audit log, and a sign-in at the provider longer ago than [access] session_minutes has to
be renewed. One host name (127.0.0.1) everywhere: the redirect URI, the browser and the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from kpis import Warehouse
from kpis.config import load_config
from kpis.users import add_user
from tests.conftest import SimulatedPractice, require_tool
from tests.dashboards.conftest import Staff, staffed
from tests.dashboards.test_browser import CHROMIUM_ARGS, free_port, serve, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NINA = "nina@clinic.example"  # WEST's manager, known here, without a password


@dataclass(frozen=True)
class Served:
    url: str
    staff: Staff


@pytest.fixture(scope="module")
def served(simulated_practice: SimulatedPractice, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from oidc_provider_mock import User, run_server_in_thread

    folder = tmp_path_factory.mktemp("oidc")
    staff = staffed(simulated_practice, folder / "practice")
    with staff.config.open("a", encoding="utf-8") as config:
        config.write('\n[access]\noidc_groups = { "kpi-analysts" = "analyst" }\nsession_minutes = 60\n')
    with Warehouse.open(config=load_config(staff.config, db=staff.db)) as wh:
        add_user(wh, NINA, "manager", ["WEST"], password=None)
    users = [
        User(sub="nina", claims={"email": NINA}),
        User(sub="eve", claims={"email": "eve@clinic.example", "groups": ["kpi-analysts"]}),
        User(sub="mallory", claims={"email": "mallory@elsewhere.example", "groups": ["other"]}),
        User(sub="nina-yesterday", claims={"email": NINA, "auth_time": int(time.time()) - 2 * 3600}),
    ]
    port = free_port()
    with run_server_in_thread(user_claims=users) as provider:
        run = folder / "run"
        (run / ".streamlit").mkdir(parents=True)
        (run / ".streamlit" / "secrets.toml").write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            'cookie_secret = "a-cookie-secret-only-this-test-uses-0123456789"\n'
            'client_id = "clinic-kpis"\n'
            'client_secret = "the mock accepts any"\n'
            f'server_metadata_url = "http://127.0.0.1:{provider.server_port}/.well-known/openid-configuration"\n',
            encoding="utf-8",
        )
        for url in serve(staff.db, staff.config, folder / "dashboard.log", cwd=run, port=port):
            yield Served(url, staff)


@pytest.fixture
def browser_page():  # noqa: ANN201 (a Playwright Page, in a fresh browser: no identity cookie)
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1400})
        browser.close()


def through_the_provider(page, url: str, sub: str) -> None:  # noqa: ANN001 (Playwright Page)
    page.goto(url)
    page.get_by_role("heading", name="Sign in").wait_for(timeout=90_000)
    page.get_by_role("button", name="Sign in with your organization's account").click()
    page.locator('input[name="sub"]').wait_for(timeout=30_000)  # the provider's own page
    page.locator('input[name="sub"]').fill(sub)
    page.get_by_role("button", name="Authorize").first.click()


def locations_offered(page) -> list[str]:  # noqa: ANN001
    """The options of the sidebar's Location filter, once the page is drawn.

    The filter is found by its label, after the script run ends: a click during the first run
    once opened the payer filter instead (CI, under load)."""
    wait_idle(page)
    page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").filter(has_text="Location").click()
    page.get_by_role("option").first.wait_for(timeout=30_000)
    options = [o.inner_text() for o in page.get_by_role("option").all() if o.inner_text() != "Select all"]
    page.keyboard.press("Escape")
    return options


def test_a_user_of_the_warehouse_signs_in_through_the_provider(served: Served, browser_page) -> None:  # noqa: ANN001
    page = browser_page
    start = datetime.now(UTC)
    through_the_provider(page, served.url, "nina")
    page.get_by_text(f"Signed in as {NINA}").wait_for(timeout=90_000)
    assert locations_offered(page) == ["Westside"]
    entry = served.staff.audit(since=start).iloc[0]
    assert (entry["event"], entry["user"], entry["role"], entry["outcome"]) == ("sign_in", NINA, "manager", "success")
    assert json.loads(entry["detail"]) == {"method": "oidc"}


def test_a_group_gives_its_role_and_a_stranger_is_refused(served: Served, browser_page) -> None:  # noqa: ANN001
    page = browser_page
    start = datetime.now(UTC)
    through_the_provider(page, served.url, "eve")
    page.get_by_text("Signed in as eve@clinic.example").wait_for(timeout=90_000)
    assert sorted(locations_offered(page)) == ["Eastside", "Northside", "Westside"]  # an analyst
    page.context.clear_cookies()
    through_the_provider(page, served.url, "mallory")
    page.get_by_text("mallory@elsewhere.example may not use this dashboard").wait_for(timeout=90_000)
    assert page.get_by_test_id("stMetric").count() == 0 and page.get_by_test_id("stSidebarNav").count() == 0
    entries = served.staff.audit(since=start)
    outcomes = list(zip(entries["event"], entries["user"], entries["outcome"], strict=True))
    assert ("sign_in", "eve@clinic.example", "success") in outcomes
    assert ("sign_in", "mallory@elsewhere.example", "failure") in outcomes


def test_a_sign_in_at_the_provider_older_than_the_session_is_renewed(served: Served, browser_page) -> None:  # noqa: ANN001
    page = browser_page
    start = datetime.now(UTC)
    through_the_provider(page, served.url, "nina-yesterday")  # signed in at the provider two hours ago
    # the dashboard signs out at the provider too (else its cookie would sign straight in again)
    page.get_by_role("button", name="End session").click(timeout=90_000)
    page.wait_for_url(f"{served.url}/**", timeout=30_000)
    page.get_by_role("heading", name="Sign in").wait_for(timeout=90_000)
    wait_idle(page)
    assert page.get_by_test_id("stMetric").count() == 0
    entries = served.staff.audit(since=start)
    reasons = [json.loads(d).get("reason") for d in entries.loc[entries["event"] == "sign_out", "detail"]]
    assert "the session expired" in reasons
