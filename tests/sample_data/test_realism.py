"""A default-size practice behaves like the published evidence says practices do (ASSUMPTIONS.md)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

import sample_data
from kpis.catalog import shipped_specs
from kpis.demo import DEFAULT_MONTHS, SIMULATION
from sample_data.clock import add_months
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


def bands() -> dict[str, tuple[float, float]]:
    """KPI -> (low, high): the typical bands of ASSUMPTIONS.md (the one place they are written)."""
    text = (Path(sample_data.__file__).parent / "ASSUMPTIONS.md").read_text(encoding="utf-8")
    table = text[text.index("<!-- bands:start -->") : text.index("<!-- bands:end -->")]
    rows = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    return {kpi.strip(): (float(low), float(high)) for kpi, low, high, _ in rows[1:]}


WARM_UP_MONTHS = 5  # the practice "opens" on the first day: A/R and its aging fill up first (ASSUMPTIONS.md)


@pytest.fixture(scope="module")
def demo_truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The half-size practice `clinic-kpis demo` simulates, over its 13 months."""
    out = tmp_path_factory.mktemp("demo")
    simulate(Params(months=DEFAULT_MONTHS, end=date(2026, 9, 30), **SIMULATION), out)
    return json.loads((out / "truth.json").read_text(encoding="utf-8"))


def test_the_bands_cover_every_headline_kpi() -> None:
    assert set(bands()) == {s.id for s in shipped_specs().values() if s.headline}


@pytest.mark.parametrize("practice", ["default", "demo"])
def test_headline_kpis_land_in_their_typical_bands(practice: str, request: pytest.FixtureRequest) -> None:
    """After the warm-up, every headline KPI of the practice lands in its typical band over the
    complete months, and no month strays more than 25% beyond the band's ends."""
    truth = request.getfixturevalue("truth" if practice == "default" else "demo_truth")
    start = date.fromisoformat(truth["meta"]["start"])
    steady = add_months(start, WARM_UP_MONTHS).isoformat()
    year_in = add_months(start, 11).isoformat()  # days in A/R's 365-day window is within the data
    problems = []
    for kpi, (low, high) in bands().items():
        rows = [r for m, r in sorted(truth_rows(truth, kpi).items()) if m >= steady and r["complete"]]
        if kpi == "days_in_ar":
            rows = [r for r in rows if r["period_start"] >= year_in]
        if kpi == "clean_claim_rate":  # a month stays open until its claims are remitted
            rows = rows[:-1]
        assert rows, kpi
        monthly = [r["value"] for r in rows]
        if kpi in ("visit_cycle_time", "days_in_ar"):  # a median and a stock: their months' mean
            overall = mean(monthly)
        else:
            overall = sum(r["numerator"] for r in rows) / sum(r["denominator"] for r in rows)
        if not low <= overall <= high:
            problems.append((kpi, "overall", round(overall, 3)))
        strays = [(r["period_start"], round(v, 3)) for r, v in zip(rows, monthly, strict=True)]
        strays = [(m, v) for m, v in strays if not 0.75 * low <= v <= 1.25 * high]
        if strays:
            problems.append((kpi, "months", strays))
    assert problems == []


@pytest.mark.parametrize("practice", ["default", "demo"])
def test_no_location_collects_far_above_its_net_charges(practice: str, request: pytest.FixtureRequest) -> None:
    truth = request.getfixturevalue("truth" if practice == "default" else "demo_truth")
    steady = add_months(date.fromisoformat(truth["meta"]["start"]), WARM_UP_MONTHS).isoformat()
    high = {
        (r["dimension_value"], r["period_start"]): round(r["value"], 3)
        for r in truth["kpis"]
        if r["kpi_id"] == "net_collection_rate" and r["dimension"] == "location" and r["period_start"] >= steady
        if r["value"] > 1.20
    }
    assert high == {}


def test_late_running_providers_have_longer_visits(truth: dict[str, Any]) -> None:
    kinds = truth["realism"]["cycle_minutes_by_provider_kind"]
    assert kinds["runs_late"]["value"] > kinds["on_time"]["value"] + 10


def test_payers_differ_in_lag_and_denials(truth: dict[str, Any]) -> None:
    lag = truth["realism"]["days_to_first_remittance_by_payer_class"]
    assert lag["medicaid"]["value"] > lag["commercial"]["value"] > lag["medicare"]["value"] - 5
    assert _share(truth, "denial_by_payer_class", "medicaid") > _share(truth, "denial_by_payer_class", "medicare")
