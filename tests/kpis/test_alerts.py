"""Alert rules on hand-made warehouses: raised once on complete periods, quiet, cleared, re-armed.

Each month of appointments is loaded as a practice would load it (one month after the other,
240 visits a month at EAST, the last on the month's last day so the month is complete), and the
rules are evaluated after each load, the way `clinic-kpis alerts check` runs after each ingest.
No-show rate: target 7%, red line 10% (the shipped defaults); 12 no-shows are 5%, 24 10%, 36
15%, 48 20%, 60 25%: every count passes the small-cell rule (0, or 11 and more).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from kpis import Warehouse
from kpis.alerts import rules_in_force
from kpis.config import load_config
from kpis.errors import ConfigError
from tests.kpis.builder import P1, Fixture

CONFIG = """
[practice]
name = "Riverbend Family Medicine"
timezone = "America/New_York"

[locations]
EAST = "Eastside"
"""
NO_SHOW_DEFAULTS_OFF = """
[[alerts]]
name = "no_show_rate.red_line"
enabled = false

[[alerts]]
name = "no_show_rate.off_target"
enabled = false
"""
RED_LINE_ONLY = (  # of the rules that have data here: the red line, for the practice
    CONFIG
    + """
[[alerts]]
name = "no_show_rate.red_line"
scope = "practice"

[[alerts]]
name = "no_show_rate.off_target"
enabled = false
"""
)


class Practice:
    """A warehouse filled month by month, and its rules evaluated as a scheduled run would."""

    def __init__(self, tmp_path: Path, config_text: str) -> None:
        self.fx = Fixture(tmp_path, config_text=config_text)
        self.fx.add("locations", {"location_id": "EAST", "name": "Eastside"})
        self.months = 0

    @property
    def wh(self) -> Warehouse:
        return self.fx.wh

    def month(self, first: date, noshows: int, visits: int = 240, *, last_day: bool = True) -> None:
        """`visits` appointments at EAST in the month of `first`, `noshows` of them missed."""
        end = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).day
        rows = []
        for i in range(visits):
            day = end if (i == visits - 1 and last_day) else 1 + i % (27 if last_day else 15)
            rows.append(
                {
                    "scheduled_start": self.fx.local(f"{first:%Y-%m}-{day:02d} {9 + i % 8:02d}:00"),
                    "status": "noshow" if i < noshows else "fulfilled",
                    "patient_key": f"{self.months:02d}{i:062x}",
                    "provider_id": P1,
                }
            )
        self.months += 1
        self.fx.add("appointments", *rows)

    def check(self):
        return self.wh.evaluate_alerts()


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    p = Practice(tmp_path, RED_LINE_ONLY)
    yield p
    p.fx.close()


def test_an_alert_is_raised_once_clears_and_raises_again(practice: Practice) -> None:
    practice.month(date(2026, 1, 1), 12)  # 5%: within the red line
    first = practice.check()
    assert first.raised.empty and first.judged == 1

    practice.month(date(2026, 2, 1), 36)  # 15%: crosses the red line
    raised = practice.check().raised
    assert raised[["rule_name", "scope_label", "value", "status"]].to_dict(orient="records") == [
        {"rule_name": "no_show_rate.red_line", "scope_label": "Whole practice", "value": 0.15, "status": "open"}
    ]
    assert raised["period_start"].iloc[0] == pd.Timestamp("2026-02-01")
    assert raised["message"].iloc[0] == (
        "No-show rate was 15.0% in February 2026, above its red line of 10.0% (target 7.0%)."
    )
    assert practice.check().raised.empty  # a re-run raises nothing new

    practice.month(date(2026, 3, 1), 48)  # 20%: still beyond it, so quiet
    again = practice.check()
    assert again.raised.empty and again.cleared == ()
    (alert,) = practice.wh.alerts().to_dict(orient="records")
    assert alert["last_period"] == pd.Timestamp("2026-03-01") and alert["status"] == "open"

    practice.month(date(2026, 4, 1), 12)  # 5%: recovered, the alert clears and re-arms
    cleared = practice.check()
    assert cleared.raised.empty and cleared.cleared == (alert["alert_id"],)
    assert practice.check().cleared == ()

    practice.month(date(2026, 5, 1), 36)  # crosses again: a new alert
    second = practice.check().raised
    assert len(second) == 1 and second["alert_id"].iloc[0] != alert["alert_id"]
    assert second["period_start"].iloc[0] == pd.Timestamp("2026-05-01")
    assert practice.check().raised.empty

    inbox = practice.wh.alerts()
    assert inbox["status"].tolist() == ["open", "cleared"]
    assert inbox["cleared_period"].iloc[1] == pd.Timestamp("2026-04-01")
    assert inbox["cleared_reason"].iloc[1] == "recovered"
    events = practice.wh.alert_events()
    assert events["event"].tolist() == ["raised", "cleared", "raised"]
    runs = practice.wh.alert_evaluations().sort_values("evaluation_id")
    assert runs["raised"].tolist() == [0, 1, 0, 0, 0, 0, 1, 0]
    assert runs["cleared"].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert runs["still_open"].tolist() == [0, 1, 1, 1, 0, 0, 1, 1]
    assert (runs["data_end"] == pd.Timestamp("2026-05-31")).iloc[-1]


def test_only_complete_periods_are_judged(practice: Practice) -> None:
    practice.month(date(2026, 1, 1), 36)  # 15%: raised
    assert len(practice.check().raised) == 1
    # February so far (its first half): 0 no-shows, but the month is open
    practice.month(date(2026, 2, 1), 0, visits=150, last_day=False)
    run = practice.check()
    assert run.cleared == () and run.findings[0].period == date(2026, 1, 1)


@pytest.mark.parametrize(
    ("noshows", "visits"),
    [(5, 10), (9, 60)],  # 50% of 10 visits; 15% of 60, but 9 no-shows: both small cells
)
def test_a_value_withheld_by_the_small_cell_rule_is_not_judged(practice: Practice, noshows: int, visits: int) -> None:
    practice.month(date(2026, 1, 1), noshows, visits=visits)
    run = practice.check()
    assert run.raised.empty and run.findings[0].period is None


def test_acknowledged_alerts_stay_until_they_clear(practice: Practice) -> None:
    practice.month(date(2026, 1, 1), 36)
    alert_id = int(practice.check().raised["alert_id"].iloc[0])
    practice.wh.acknowledge_alert(alert_id, by="Office manager")
    practice.month(date(2026, 2, 1), 36)
    assert practice.check().raised.empty
    (row,) = practice.wh.alerts().to_dict(orient="records")
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "Office manager"
    practice.month(date(2026, 3, 1), 0)
    practice.check()
    assert practice.wh.alerts()["status"].tolist() == ["cleared"]
    assert practice.wh.alert_events()["event"].tolist() == ["raised", "acknowledged", "cleared"]
    with pytest.raises(Exception, match="has cleared"):
        practice.wh.acknowledge_alert(alert_id)


def test_a_dry_run_writes_nothing(practice: Practice) -> None:
    practice.month(date(2026, 1, 1), 36)
    run = practice.wh.evaluate_alerts(record=False)
    assert run.evaluation_id is None and len(run.raised) == 1 and run.raised["alert_id"].iloc[0] is None
    assert practice.wh.alerts().empty and practice.wh.alert_evaluations().empty


def rules_practice(tmp_path: Path, rules: str) -> Practice:
    return Practice(tmp_path, CONFIG + rules)


def test_off_target_needs_that_many_complete_months_in_a_row(tmp_path: Path) -> None:
    p = rules_practice(
        tmp_path,
        '[[alerts]]\nname = "no_show_rate.off_target"\nperiods = 2\nscope = "location=EAST"\n\n'
        '[[alerts]]\nname = "no_show_rate.red_line"\nenabled = false\n',
    )
    try:
        for month, noshows in ((1, 24), (2, 12), (3, 24)):  # 10%, 5%, 10%: never two misses in a row
            p.month(date(2026, month, 1), noshows)
            assert p.check().raised.empty
        p.month(date(2026, 4, 1), 24)  # 10% again: March and April missed the 7% target
        raised = p.check().raised
        assert raised["rule_name"].tolist() == ["no_show_rate.off_target"]
        assert raised["scope_label"].tolist() == ["Eastside (EAST)"]
        assert raised["message"].iloc[0] == (
            "No-show rate at Eastside has missed its target of 7.0% 2 months in a row, "
            "March 2026 to April 2026: 10.0%, 10.0%."
        )
    finally:
        p.fx.close()


def test_change_rules_in_points_or_percent_and_direction(tmp_path: Path) -> None:
    rules = (
        NO_SHOW_DEFAULTS_OFF
        + """
[[alerts]]
name = "up 5 points"
kpi = "no_show_rate"
condition = "change"
points = 5
scope = "practice"

[[alerts]]
name = "half again"
kpi = "no_show_rate"
condition = "change"
percent = 50
direction = "either"
scope = "practice"

[[alerts]]
name = "better by 5 points"
kpi = "no_show_rate"
condition = "change"
points = 5
direction = "better"
scope = "practice"
"""
    )
    p = rules_practice(tmp_path, rules)
    try:
        p.month(date(2026, 1, 1), 24)  # 10%
        p.check()
        p.month(date(2026, 2, 1), 36)  # 15%: +5 points (not more than 5), +50% (not more than 50%)
        assert p.check().raised.empty
        p.month(date(2026, 3, 1), 60)  # 25%: +10 points, +67%
        raised = p.check().raised.set_index("rule_name")
        assert set(raised.index) == {"up 5 points", "half again"}
        assert raised.loc["up 5 points", "message"] == (
            "No-show rate rose 10.0 points in March 2026, from 15.0% to 25.0% (worse)."
        )
        assert raised.loc["up 5 points", "reference"] == pytest.approx(0.15)
        p.month(date(2026, 4, 1), 12)  # 5%: -20 points: "better" fires, the others clear
        run = p.check()
        assert run.raised["rule_name"].tolist() == ["better by 5 points"]
        assert len(run.cleared) == 1  # "half again" (either way) keeps firing: -80%
    finally:
        p.fx.close()


def test_a_rule_taken_out_of_the_config_clears_its_alerts(tmp_path: Path) -> None:
    p = Practice(tmp_path, RED_LINE_ONLY)
    p.month(date(2026, 1, 1), 36)
    assert len(p.check().raised) == 1
    p.fx.close()
    other = tmp_path / "other.toml"
    other.write_text(CONFIG + '[[alerts]]\nname = "no_show_rate.red_line"\nenabled = false\n', encoding="utf-8")
    with Warehouse.open(config=load_config(other, db=p.fx.path)) as wh:
        assert "no_show_rate.red_line" not in {r.name for r in wh.alert_rules()}
        run = wh.evaluate_alerts()
        assert len(run.cleared) == 1
        assert wh.alerts()["cleared_reason"].tolist() == ["rule_removed"]


def test_a_scope_taken_out_of_a_rule_clears_its_alerts(tmp_path: Path) -> None:
    p = Practice(tmp_path, RED_LINE_ONLY)
    p.month(date(2026, 1, 1), 36)
    assert len(p.check().raised) == 1
    p.fx.close()
    other = tmp_path / "other.toml"
    other.write_text(RED_LINE_ONLY.replace('scope = "practice"', 'scope = "locations"'), encoding="utf-8")
    with Warehouse.open(config=load_config(other, db=p.fx.path)) as wh:
        run = wh.evaluate_alerts()
        assert run.raised["scope_label"].tolist() == ["Eastside (EAST)"]  # the rule's new scope fires on its own
        assert len(run.cleared) == 1
        assert wh.alerts(status="cleared")["scope_label"].tolist() == ["Whole practice"]
        assert wh.alerts(status="cleared")["cleared_reason"].tolist() == ["rule_removed"]


def test_the_defaults_cover_every_headline_kpi_and_can_be_changed(tmp_path: Path) -> None:
    p = Practice(tmp_path, CONFIG + '[[alerts]]\nname = "days_in_ar.off_target"\nperiods = 6\n')
    try:
        rules = {r.name: r for r in p.wh.alert_rules()}
        headline = [s for s in p.wh.catalog() if s.headline]
        assert set(rules) == {f"{s.id}.{c}" for s in headline for c in ("red_line", "off_target")}
        assert all(r.scope == ("practice", "locations") and r.grain == "month" for r in rules.values())
        assert rules["days_in_ar.off_target"].periods == 6 and rules["no_show_rate.off_target"].periods == 3
    finally:
        p.fx.close()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            'kpi = "no_show_rates"\ncondition = "red_line"',
            "[[alerts]] #1: unknown KPI 'no_show_rates' (did you mean no_show_rate?)",
        ),
        (
            'kpi = "no_show_rate"\ncondition = "red_line"\nscope = "queues"',
            "[[alerts]] #1: unknown scope 'queues'; use practice, locations, providers, payers, or location=ID",
        ),
        (
            'name = "phones"\nkpi = "call_abandonment_rate"\ncondition = "red_line"\nscope = "providers"',
            "[[alerts]] #1 (phones): scope providers: call_abandonment_rate cannot be broken down by provider",
        ),
        (
            'kpi = "late_cancel_rate"\ncondition = "red_line"',
            "[[alerts]] #1: late_cancel_rate has no red line; set one in [targets] or use another condition",
        ),
        ('kpi = "no_show_rate"\ncondition = "change"', "a change rule needs either points or percent"),
        ('name = "no_show_rate.redline"\nperiods = 2', "no default rule is named 'no_show_rate.redline' (did you mean"),
    ],
)
def test_a_bad_rule_is_an_error_naming_it(tmp_path: Path, rule: str, message: str) -> None:
    path = tmp_path / "clinic-kpis.toml"
    path.write_text(CONFIG + "[[alerts]]\n" + rule + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config = load_config(path, db=tmp_path / "w.duckdb")
        with Warehouse.open(config=config) as wh:
            wh.alert_rules()
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('kpi = "no_show_rate"\ncondition = "crosses"', "unknown condition 'crosses'; use one of red_line, off_target"),
        ('kpi = "no_show_rate"\ncondition = "off_target"\nperiods = 0', "periods must be a whole number >= 1, got 0"),
        ('kpi = "no_show_rate"', "a rule needs a kpi and a condition"),
        ('kpi = "no_show_rate"\ncondition = "red_line"\nwhen = "daily"', "unknown key(s) when"),
    ],
)
def test_a_malformed_rule_fails_when_the_config_is_loaded(tmp_path: Path, rule: str, message: str) -> None:
    path = tmp_path / "clinic-kpis.toml"
    path.write_text(CONFIG + "[[alerts]]\n" + rule + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alerts") as caught:
        load_config(path)
    assert message in str(caught.value) and "[[alerts]] #1" in str(caught.value)


def test_an_unknown_scope_value_is_found_before_anything_is_evaluated(tmp_path: Path) -> None:
    p = Practice(
        tmp_path, CONFIG + '[[alerts]]\nkpi = "no_show_rate"\ncondition = "red_line"\nscope = "location=east"\n'
    )
    try:
        p.month(date(2026, 1, 1), 36)
        with pytest.raises(
            ConfigError, match=r"scope location=east: no such location in the warehouse \(did you mean EAST\?\)"
        ):
            p.wh.evaluate_alerts()
        assert p.wh.alert_evaluations().empty
    finally:
        p.fx.close()


def test_a_pending_delivery_is_never_lost_and_a_sent_one_never_due_again(practice: Practice) -> None:
    practice.month(date(2026, 1, 1), 36)
    alert_id = int(practice.check().raised["alert_id"].iloc[0])
    owner, manager = "owner@riverbend.example", "east@riverbend.example"
    assert practice.wh.alerts_to_deliver(owner)["alert_id"].tolist() == [alert_id]
    assert practice.wh.alerts_to_deliver(manager, ["EAST"]).empty  # a practice-wide alert: not a location's
    practice.wh.record_delivery([alert_id], owner, "practice", sent=False, attempts=0)
    practice.wh.record_delivery([alert_id], owner, "practice", sent=False, attempts=3, error="connection refused")
    practice.month(date(2026, 2, 1), 0)
    assert practice.check().cleared == (alert_id,)
    due = practice.wh.alerts_to_deliver(owner)
    assert due["alert_id"].tolist() == [alert_id] and due["status"].tolist() == ["cleared"]
    practice.wh.record_delivery([alert_id], owner, "practice", sent=True, attempts=1, message_id="<m@x>")
    assert practice.wh.alerts_to_deliver(owner).empty
    (row,) = practice.wh.alert_deliveries().to_dict(orient="records")
    assert (row["status"], row["attempts"], row["last_error"], row["message_id"]) == ("sent", 4, None, "<m@x>")
    assert practice.wh.alerts_to_deliver("new.partner@riverbend.example").empty  # cleared before they joined


def test_the_config_template_documents_the_default_rules() -> None:
    """The config `init` writes names the KPIs that have default rules, and the rules' names."""
    from kpis.catalog import shipped_specs
    from kpis.config import CONFIG_TEMPLATE, Config

    listed = CONFIG_TEMPLATE.split("# for no_show_rate", 1)[1].split("\n# An [[alerts]]", 1)[0]
    kpis = {"no_show_rate", *re.findall(r"[a-z0-9]+(?:_[a-z0-9]+)+", listed)}
    defaults = rules_in_force(Config(), shipped_specs())
    assert kpis == {rule.kpi for rule in defaults}
    assert {rule.name.split(".")[1] for rule in defaults} == {"red_line", "off_target"}
    assert "<kpi>.red_line" in CONFIG_TEMPLATE and "<kpi>.off_target" in CONFIG_TEMPLATE
