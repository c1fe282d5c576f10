"""Sign-in on the dashboard under AppTest: required once a user exists, slowed after failures,
expiring, following role changes, and every page read through the signed-in scope."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpis import Warehouse
from kpis.config import load_config
from kpis.formatting import value_text
from kpis.throttle import FREE_FAILURES
from kpis.users import remove_user, set_role
from tests.conftest import SimulatedPractice
from tests.dashboards.conftest import Staff, staffed

# every page of the app, pages added later included
PAGES = sorted(f"views/{p.name}" for p in (Path(__file__).parents[2] / "dashboards" / "views").glob("*.py"))


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").set_value(name)
    at.text_input(key="sign_in_password").set_value(password)
    return at.button[0].click().run()


def shows_the_form_only(at: AppTest) -> bool:
    return (
        [t.value for t in at.title] == ["Sign in"]
        and not at.metric
        and not at.get("plotly_chart")
        and not at.dataframe
        and not at.sidebar.multiselect
        and not at.sidebar.select_slider
    )


@pytest.fixture
def app(open_app: Callable[..., AppTest], staff: Staff) -> AppTest:
    return open_app(staff.db, staff.config)


def test_once_a_user_exists_every_page_asks_to_sign_in_first(open_app: Callable[..., AppTest], staff: Staff) -> None:
    for page in PAGES:
        at = open_app(staff.db, staff.config, run=False)
        at.query_params["location"] = "Westside"
        at.run()
        assert not at.exception
        assert shows_the_form_only(at), page
        at.switch_page(page).run()
        assert shows_the_form_only(at), page


def test_a_signed_in_manager_sees_their_own_numbers_small_cells_included(app: AppTest, staff: Staff) -> None:
    start = datetime.now(UTC)
    sign_in(app, "Mark", staff.password)
    assert not app.exception
    assert app.multiselect(key="location").options == ["Eastside"]
    with staff.owner() as wh:  # the owner's numbers filtered to EAST are the manager's
        card = wh.scorecard(app.select_slider(key="months").value[1] + "-01", filters={"location": "EAST"})
        spec = {s.id: s for s in wh.catalog()}["no_show_rate"]
    tile = next(m for m in app.metric if m.label == spec.title)
    assert tile.value == value_text(card.set_index("kpi_id").loc["no_show_rate", "value"], spec)
    entries = staff.audit(since=start)
    assert entries[["event", "user", "outcome"]].values.tolist()[:2] == [
        ["sign_in", "mark", "success"],
        ["view", "mark", None],
    ]
    assert json.loads(entries["detail"].iloc[1]) == {"scope": "EAST"}


def test_wrong_passwords_are_refused_then_slowed_and_all_audited(app: AppTest, staff: Staff) -> None:
    start = datetime.now(UTC)
    for _ in range(FREE_FAILURES):
        sign_in(app, "mark", "not the password")
        assert [e.value for e in app.error] == ["Wrong name or password."]
    sign_in(app, "mark", staff.password)  # the right one, too soon after three failures
    assert app.error[0].value.startswith("Too many failed sign-ins: try again in")
    assert shows_the_form_only(app)
    sign_in(app, "nobody", "whatever it is")  # same client: slowed too, without a check
    assert app.error[0].value.startswith("Too many failed sign-ins")
    entries = staff.audit(since=start)
    assert entries["event"].tolist() == ["sign_in"] * 5
    assert entries["outcome"].tolist() == ["failure"] * 5
    reasons = [json.loads(d)["reason"] for d in entries["detail"]]
    assert reasons == ["wrong name or password"] * 3 + ["slowed down"] * 2
    assert "not the password" not in staff.audit().to_csv()


def test_a_session_expires(app: AppTest, staff: Staff) -> None:
    sign_in(app, "olivia", staff.password)
    assert not shows_the_form_only(app)
    app.session_state["signed_in"]["since"] -= 8 * 3600 + 1  # the default [access] session_minutes is 480
    start = datetime.now(UTC)
    app.run()
    assert shows_the_form_only(app)
    assert app.info[0].value == "Your session expired: please sign in again."
    entry = staff.audit(since=start).iloc[0]
    assert (entry["event"], entry["user"], json.loads(entry["detail"])["reason"]) == (
        "sign_out",
        "olivia",
        "the session expired",
    )


def test_a_new_role_applies_at_once_and_a_removed_user_is_signed_out(
    open_app: Callable[..., AppTest], simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    staff = staffed(simulated_practice, tmp_path / "own")
    at = open_app(staff.db, staff.config)
    sign_in(at, "ana", staff.password)
    assert len(at.multiselect(key="location").options) == 3  # an analyst: every location
    with _writable(staff) as wh:
        set_role(wh, "ana", "manager", ["WEST"])
    at.run()
    assert at.multiselect(key="location").options == ["Westside"]
    with _writable(staff) as wh:
        remove_user(wh, "ana")
    at.run()
    assert shows_the_form_only(at)


def _writable(staff: Staff) -> AbstractContextManager[Warehouse]:
    """As `clinic-kpis users` writes: on a copy, published (the app holds the published file open)."""
    return Warehouse.writing(config=load_config(staff.config, db=staff.db), what="users change")


def test_a_viewer_sees_aggregates_only(app: AppTest, staff: Staff) -> None:
    sign_in(app, "vera", staff.password)
    app.switch_page("views/access.py").run()
    assert not app.exception
    assert not [s for s in app.selectbox if str(s.label).startswith("The records behind")]
    assert any("not shown to your role" in c.value for c in app.caption)
    app.switch_page("views/phones.py").run()
    assert not app.exception
    app.switch_page("views/data_sources.py").run()
    assert any("cover the whole practice" in c.value for c in app.caption)
    assert not app.dataframe or all("run_id" not in d.value.columns for d in app.dataframe)


@pytest.mark.parametrize("name", ["mark", "vera"])
def test_only_the_whole_practice_records_a_change(app: AppTest, staff: Staff, name: str) -> None:
    """The change log is the practice's: a manager or a viewer reads their locations' changes, and no form."""
    sign_in(app, name, staff.password)
    app.switch_page("views/improvement.py").run()
    assert not app.exception
    assert any("records changes in the practice's change log" in c.value for c in app.caption)
    assert not [b for b in app.button if b.label == "Record the change"]
    assert app.multiselect(key="location").options == ["Eastside"]


def test_only_the_owner_reads_the_audit_log(app: AppTest, staff: Staff) -> None:
    sign_in(app, "olivia", staff.password)
    app.switch_page("views/audit.py").run()
    assert not app.exception
    assert app.title[0].value == "Audit log"
    log = app.dataframe[0].value
    assert {"at", "event", "user", "role", "filters"} <= set(log.columns)
    assert "olivia" in set(log["user"])


@pytest.mark.parametrize("name", ["ana", "mark", "vera"])
def test_the_audit_log_page_is_not_there_for_others(app: AppTest, staff: Staff, name: str) -> None:
    sign_in(app, name, staff.password)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("views/audit.py")
