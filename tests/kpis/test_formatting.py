"""The one vocabulary: values with units, changes in points, targets, statuses, periods, reasons."""

from __future__ import annotations

from datetime import date

import pytest

from kpis.catalog import shipped_specs
from kpis.formatting import (
    change_text,
    column_header,
    count_text,
    in_unit,
    n_text,
    period_text,
    state_text,
    status_text,
    target_text,
    value_text,
)

SPECS = shipped_specs()


@pytest.mark.parametrize(
    ("kpi", "value", "text"),
    [("no_show_rate", 0.1423, "14.2%"), ("days_in_ar", 46.26, "46.3 days"), ("visit_cycle_time", 31.0, "31 min"),
     ("portal_response_time", 4.53, "4.5 h"), ("average_speed_of_answer", 7.2, "7 s"), ("no_show_rate", None, "—"),
     ("no_show_rate", float("nan"), "—")],
)  # fmt: skip
def test_values_carry_their_unit(kpi: str, value: float | None, text: str) -> None:
    assert value_text(value, SPECS[kpi]) == text


@pytest.mark.parametrize(
    ("kpi", "change", "text", "words"),
    [("no_show_rate", 0.021, "+2.1 pts", "2.1 points"), ("no_show_rate", -0.021, "−2.1 pts", "2.1 points"),
     ("no_show_rate", 0.0004, "±0.0 pts", "0.0 points"), ("days_in_ar", -3.04, "−3.0 days", "3.0 days"),
     ("average_speed_of_answer", -1.0, "−1 s", "1 second"), ("average_speed_of_answer", 2.0, "+2 s", "2 seconds"),
     ("days_in_ar", float("nan"), "—", "—")],
)  # fmt: skip
def test_changes_are_signed_and_percentages_are_points(kpi: str, change: float, text: str, words: str) -> None:
    assert change_text(change, SPECS[kpi]) == text
    assert change_text(change, SPECS[kpi], words=True) == words


def test_targets_statuses_counts_and_headers() -> None:
    assert target_text(SPECS["no_show_rate"]) == "Target ≤ 7.0% · red > 10.0%"
    assert target_text(SPECS["clean_claim_rate"]) == "Target ≥ 95.0% · red < 90.0%"
    assert target_text(SPECS["days_in_ar"]) == "Target ≤ 40.0 days · red > 50.0 days"
    assert target_text(SPECS["late_cancel_rate"]) == ""
    assert [status_text(s) for s in ("on_target", "watch", "off_target", None)] == [
        "On target", "Watch", "Off target", "—",
    ]  # fmt: skip
    assert [count_text(c) for c in (0, "<11", 12_345, None, 12.5)] == ["0", "<11", "12,345", "—", "12.50"]
    assert n_text(7, SPECS["no_show_rate"]) == "<11" and n_text(7, SPECS["third_next_available"]) == "7"
    assert column_header("value", SPECS["no_show_rate"]) == "value (%)"
    assert column_header("value", SPECS["days_in_ar"]) == "value (days)"
    assert in_unit(0.0737, SPECS["no_show_rate"]) == pytest.approx(7.37) and in_unit(None, SPECS["days_in_ar"]) is None


def test_periods_and_reasons_are_named_for_people() -> None:
    assert period_text(date(2026, 10, 1), "month") == "Oct 2026"
    assert period_text(date(2026, 10, 1), "quarter") == "2026-Q4"
    assert period_text(date(2026, 1, 1), "year") == "2026"
    assert period_text(date(2026, 10, 5), "week") == "week of 2026-10-05"
    assert period_text(date(2026, 10, 5), "day") == "2026-10-05"
    assert state_text("open", wait_days=90) == "not final: records may still arrive (it waits 90 days after the month)"
    assert state_text("history", history_days=365).startswith("not comparable yet: it rests on 12 months of data")
    assert state_text("no_source", missing_sources="claims (X12 837)") == "not loaded: claims (X12 837)"
    assert state_text("small") == "withheld: a count under 11 behind it (small-cell rule)"
