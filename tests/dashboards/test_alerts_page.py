"""The Alerts inbox and the Overview's alert marks, under AppTest, on the report's known-answer practice.

After one evaluation of the default rules (tests/reports/test_alerts_delivery.py says which five
alerts October 2026 raises: the no-show rate of the practice and Eastside beyond the red line, and
of the practice, Eastside and Westside off target for three months), the inbox lists them, a
location filter narrows them to that location's, and acknowledging one writes it through the
kpis API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpis import Warehouse
from kpis.audit import AuditLog
from kpis.config import load_config
from kpis.users import add_user
from tests.conftest import CHEAP_HASHER
from tests.reports.practice import build_practice

EAST_RED = "No-show rate at Eastside was 30.0% in October 2026, above its red line of 10.0% (target 7.0%)."


@pytest.fixture
def practice(tmp_path: Path) -> tuple[Path, Path]:
    db = build_practice(tmp_path)
    return db, tmp_path / "clinic-kpis.toml"


def evaluate(db: Path, config: Path) -> None:
    """What `clinic-kpis alerts check` records: on a copy, published (the app may hold the file open)."""
    with Warehouse.writing(config=load_config(config, db=db), what="alerts check") as wh:
        assert len(wh.evaluate_alerts().raised) == 5


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def messages(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("No-show rate")]


def test_the_inbox_lists_the_alerts_and_acknowledges_through_the_api(
    open_app: Callable[..., AppTest], practice: tuple[Path, Path]
) -> None:
    db, config = practice
    evaluate(db, config)
    at = open_app(db, config)
    at.switch_page("views/alerts.py").run()
    no_errors(at)
    assert at.title[0].value == "Alerts"
    assert at.segmented_control(key="alert_status").value == "open"
    assert len(messages(at)) == 5 and EAST_RED in messages(at)
    rules = [c.value for c in at.caption if c.value.startswith("Rule")]  # in words, not the config's rule ids
    assert len(rules) == 5 and all(r.startswith("Rule: No-show rate ") for r in rules), rules
    assert not any("no_show_rate." in r for r in rules)

    east = next(b.key for b, m in zip(at.button, messages(at), strict=True) if m == EAST_RED)
    at.text_input(key="ack_by").set_value("Office manager").run()
    at.button(key=east).click().run()
    no_errors(at)
    assert len(messages(at)) == 4 and EAST_RED not in messages(at)
    with Warehouse.open(config=load_config(config, db=db), read_only=True) as wh:
        acknowledged = wh.alerts(status="acknowledged")
    assert acknowledged["message"].tolist() == [EAST_RED]
    assert acknowledged["acknowledged_by"].tolist() == ["Office manager"]
    at.segmented_control(key="alert_status").set_value("acknowledged").run()
    no_errors(at)
    assert messages(at) == [EAST_RED]
    assert any("Acknowledged by Office manager" in c.value for c in at.caption)


def test_a_location_filter_shows_that_locations_alerts_only(
    open_app: Callable[..., AppTest], practice: tuple[Path, Path]
) -> None:
    db, config = practice
    evaluate(db, config)
    at = open_app(db, config, run=False)
    at.query_params["location"] = "Westside"
    at.run()
    at.switch_page("views/alerts.py").run()
    no_errors(at)
    assert messages(at) == [
        "No-show rate at Westside has missed its target of 7.0% 3 months in a row, August 2026 to October 2026: "
        "10.0%, 10.0%, 10.0%."
    ]


def test_the_overview_marks_the_tiles_with_open_alerts(
    open_app: Callable[..., AppTest], practice: tuple[Path, Path]
) -> None:
    db, config = practice
    at = open_app(db, config)
    no_errors(at)
    assert not [m.value for m in at.markdown if "notifications:" in m.value]  # nothing evaluated yet
    evaluate(db, config)
    at = open_app(db, config)
    no_errors(at)
    marks = [m.value for m in at.markdown if "notifications:" in m.value]
    assert marks == [":red-badge[:material/notifications: 5 alerts]"]  # the no-show tile's five, no other
    west = open_app(db, config, run=False)
    west.query_params["location"] = "Westside"
    west.run()
    no_errors(west)
    assert [m.value for m in west.markdown if "notifications:" in m.value] == [
        ":red-badge[:material/notifications: 1 alert]"
    ]


def test_before_any_evaluation_the_inbox_says_how_alerts_are_made(
    open_app: Callable[..., AppTest], practice: tuple[Path, Path]
) -> None:
    db, config = practice
    at = open_app(db, config)
    at.switch_page("views/alerts.py").run()
    no_errors(at)
    assert "clinic-kpis alerts check" in at.info[0].value


def test_acknowledging_while_a_load_writes_says_so_and_records_nothing(
    open_app: Callable[..., AppTest], practice: tuple[Path, Path]
) -> None:
    db, config = practice
    evaluate(db, config)
    at = open_app(db, config)
    at.switch_page("views/alerts.py").run()
    first = at.button[0].key
    with Warehouse.writing(config=load_config(config, db=db), what="load"):  # a load holds the write lock
        at.button(key=first).click().run()
    no_errors(at)
    assert len(at.warning) == 1
    assert at.warning[0].value == "a load is writing the warehouse right now: acknowledge again when it is done"
    assert len(messages(at)) == 5
    with Warehouse.open(config=load_config(config, db=db), read_only=True) as wh:
        assert wh.alerts(status="acknowledged").empty and len(wh.alerts(status="open")) == 5


def test_signed_in_the_acknowledgement_is_the_users_and_audited_and_a_viewer_cannot_acknowledge(
    open_app: Callable[..., AppTest], practice: tuple[Path, Path]
) -> None:
    db, config = practice
    password = "a long enough passphrase"
    with Warehouse.open(config=load_config(config, db=db)) as wh:
        add_user(wh, "mark", "manager", ("EAST",), password, hasher=CHEAP_HASHER)
        add_user(wh, "vera", "viewer", ("EAST",), password, hasher=CHEAP_HASHER)
    evaluate(db, config)

    def signed_in(name: str) -> AppTest:
        at = open_app(db, config)
        at.text_input(key="sign_in_name").set_value(name)
        at.text_input(key="sign_in_password").set_value(password)
        at.button[0].click().run()
        at.switch_page("views/alerts.py").run()
        no_errors(at)
        return at

    viewer = signed_in("vera")
    assert EAST_RED in messages(viewer)
    assert not [b for b in viewer.button if b.label == "Acknowledge"]
    assert any("a viewer reads the inbox" in c.value for c in viewer.caption)

    manager = signed_in("mark")
    assert not [t for t in manager.text_input if t.key == "ack_by"]  # no name to type: it is theirs
    acknowledge = [b for b in manager.button if b.label == "Acknowledge"]
    east = next(b.key for b, m in zip(acknowledge, messages(manager), strict=True) if m == EAST_RED)
    manager.button(key=east).click().run()
    no_errors(manager)
    with Warehouse.open(config=load_config(config, db=db), read_only=True) as wh:
        acknowledged = wh.alerts(status="acknowledged")
    assert acknowledged[["message", "acknowledged_by"]].values.tolist() == [[EAST_RED, "mark"]]
    entries = AuditLog.beside(db).entries()
    done = entries[entries["event"] == "alert_acknowledged"]
    assert done[["user", "role", "kpi"]].values.tolist() == [["mark", "manager", "no_show_rate"]]
