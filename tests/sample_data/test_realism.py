"""A default-size practice behaves like the published evidence says practices do (ASSUMPTIONS.md)."""

from __future__ import annotations

import json
from statistics import mean
from typing import Any

import pytest

from sample_data.practice import Params
from sample_data.simulate import simulate
from tests.sample_data.conftest import truth_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("default")
    simulate(Params(), out)
    return json.loads((out / "truth.json").read_text(encoding="utf-8"))


def _share(truth: dict[str, Any], section: str, key: str) -> float:
    return truth["realism"][section][key]["value"]


def test_no_show_rises_with_lead_time_new_patients_and_mondays(truth: dict[str, Any]) -> None:
    assert _share(truth, "no_show_by_lead_days", ">30") > 1.5 * _share(truth, "no_show_by_lead_days", "0-7")
    assert _share(truth, "no_show_by_patient", "new") > _share(truth, "no_show_by_patient", "established")
    monday = _share(truth, "no_show_by_weekday", "mon")
    assert all(monday > _share(truth, "no_show_by_weekday", d) for d in ("tue", "wed", "thu", "fri"))
    assert _share(truth, "no_show_by_payer_class", "medicaid") > _share(truth, "no_show_by_payer_class", "commercial")


def test_reminder_calls_cut_east_no_shows(truth: dict[str, Any]) -> None:
    change = truth["meta"]["process_change"]
    assert change == {"location": "EAST", "date": "2025-09-01", "what": "reminder calls start"}
    rows = truth_rows(truth, "no_show_rate", "location", "EAST")
    before = sum(r["numerator"] for m, r in rows.items() if m < change["date"]) / sum(
        r["denominator"] for m, r in rows.items() if m < change["date"]
    )
    after = sum(r["numerator"] for m, r in rows.items() if m >= change["date"]) / sum(
        r["denominator"] for m, r in rows.items() if m >= change["date"]
    )
    assert after < 0.75 * before
    west = truth_rows(truth, "no_show_rate", "location", "WEST")
    west_before = mean(r["value"] for m, r in west.items() if m < change["date"])
    west_after = mean(r["value"] for m, r in west.items() if m >= change["date"])
    assert abs(west_after - west_before) < 0.02  # no change where nothing changed


def test_abandonment_peaks_when_phones_are_busiest(truth: dict[str, Any]) -> None:
    lunch = _share(truth, "abandonment_by_hour", "12")
    monday_morning = _share(truth, "abandonment_by_weekday", "mon")
    quiet = _share(truth, "abandonment_by_hour", "16")
    assert lunch > 2 * quiet and monday_morning > _share(truth, "abandonment_by_weekday", "fri")


def test_headline_rates_sit_in_published_ranges(truth: dict[str, Any]) -> None:
    def overall(kpi: str) -> float:
        rows = truth_rows(truth, kpi).values()
        return sum(r["numerator"] for r in rows) / sum(r["denominator"] for r in rows)

    assert 0.05 <= overall("no_show_rate") <= 0.10
    assert 0.04 <= overall("call_abandonment_rate") <= 0.09
    assert 0.04 <= overall("denial_rate") <= 0.12
    last_year = [r for m, r in truth_rows(truth, "days_in_ar").items() if m >= "2025-11-01"]
    assert all(25 <= r["value"] <= 80 for r in last_year)
    complete = [r for r in truth_rows(truth, "referral_completion_rate").values() if r["complete"]]
    closed = sum(r["numerator"] for r in complete) / sum(r["denominator"] for r in complete)
    assert 0.35 <= closed <= 0.65


def test_late_running_providers_have_longer_visits(truth: dict[str, Any]) -> None:
    kinds = truth["realism"]["cycle_minutes_by_provider_kind"]
    assert kinds["runs_late"]["value"] > kinds["on_time"]["value"] + 10


def test_payers_differ_in_lag_and_denials(truth: dict[str, Any]) -> None:
    lag = truth["realism"]["days_to_first_remittance_by_payer_class"]
    assert lag["medicaid"]["value"] > lag["commercial"]["value"] > lag["medicare"]["value"] - 5
    assert _share(truth, "denial_by_payer_class", "medicaid") > _share(truth, "denial_by_payer_class", "medicare")
