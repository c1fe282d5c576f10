"""Visit flow KPIs on hand-computed fixtures: medians and p90 on the raw distribution, DST."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tests.kpis.builder import Fixture
from tests.kpis.helpers import one


def visits(fx: Fixture) -> None:
    """Monday 2026-10-05 at EAST (times local). Minutes: check-in -> roomed -> provider -> end -> out.

    e1 09:00 09:10 09:20 09:35 09:45  cycle 45, segments 10/10/15/10, chart +3 h
    e2 10:00 10:05 10:25 10:40 10:50  cycle 50, segments  5/20/15/10, chart +24 h
    e3 11:00 11:02 11:05 11:25 11:30  cycle 30, segments  2/ 3/20/ 5, chart +3 h (a walk-in)
    e4 telehealth 13:00 -> 13:10     excluded from visit flow
    e5 in progress, 14:00 -> 14:05    not finished: only in check-in -> roomed (5)
    e6 finished without a check-out   excluded from the cycle
    Cycle [30, 45, 50]: median 45; p90 = 45 + 0.8 x (50 - 45) = 49 (linear interpolation).
    Check-in -> roomed [2, 5, 5, 10]: median 5. Chart closure [3, 3, 24] h: median 3.
    """
    fx.add(
        "appointments",
        {"appointment_id": "ap1", "scheduled_start": "2026-10-05 09:10"},
        {"appointment_id": "ap2", "scheduled_start": "2026-10-05 09:45"},
    )
    fx.add(
        "encounters",
        {
            "encounter_id": "e1",
            "appointment_id": "ap1",
            "checked_in_at": "2026-10-05 09:00",
            "roomed_at": "2026-10-05 09:10",
            "provider_start_at": "2026-10-05 09:20",
            "provider_end_at": "2026-10-05 09:35",
            "checked_out_at": "2026-10-05 09:45",
            "chart_closed_at": "2026-10-05 12:35",
        },
        {
            "encounter_id": "e2",
            "appointment_id": "ap2",
            "checked_in_at": "2026-10-05 10:00",
            "roomed_at": "2026-10-05 10:05",
            "provider_start_at": "2026-10-05 10:25",
            "provider_end_at": "2026-10-05 10:40",
            "checked_out_at": "2026-10-05 10:50",
            "chart_closed_at": "2026-10-06 10:40",
        },
        {
            "encounter_id": "e3",
            "checked_in_at": "2026-10-05 11:00",
            "roomed_at": "2026-10-05 11:02",
            "provider_start_at": "2026-10-05 11:05",
            "provider_end_at": "2026-10-05 11:25",
            "checked_out_at": "2026-10-05 11:30",
            "chart_closed_at": "2026-10-05 14:25",
        },
        {
            "encounter_id": "e4",
            "is_telehealth": True,
            "checked_in_at": "2026-10-05 13:00",
            "roomed_at": "2026-10-05 13:00",
            "provider_start_at": "2026-10-05 13:00",
            "provider_end_at": "2026-10-05 13:08",
            "checked_out_at": "2026-10-05 13:10",
            "chart_closed_at": "2026-10-05 13:20",
        },
        {
            "encounter_id": "e5",
            "status": "in_progress",
            "checked_in_at": "2026-10-05 14:00",
            "roomed_at": "2026-10-05 14:05",
        },
        {"encounter_id": "e6", "checked_in_at": "2026-10-05 15:00"},
    )


EXPECTED = {
    "visit_cycle_time": (45, 3),
    "visit_cycle_time_p90": (49, 3),
    "visit_segment_checkin_to_roomed": (5, 4),
    "visit_segment_roomed_to_provider": (10, 3),
    "visit_segment_provider_time": (15, 3),
    "visit_segment_provider_to_checkout": (10, 3),
    "chart_closure_lag": (3, 3),
}


def test_visit_flow_medians(fx: Fixture) -> None:
    visits(fx)
    frame = fx.wh.compute(list(EXPECTED), start="2026-10", end="2026-10")
    for kpi_id, (value, n) in EXPECTED.items():
        row = one(frame, kpi_id=kpi_id)
        assert (row.value, row.n) == (pytest.approx(value), n), kpi_id


def test_cycle_time_from_scheduled_start(fx: Fixture) -> None:
    """Variant `scheduled`: e1 arrived 10 min early (35 min from its 09:10 start), e2 came late
    (clock starts at check-in: 50), e3 is a walk-in (check-in: 30). Median 35 instead of 45."""
    visits(fx)
    options = {"visit_cycle_time": {"cycle_start": "scheduled"}}
    frame = fx.wh.compute("visit_cycle_time", start="2026-10", end="2026-10", options=options)
    row = one(frame, kpi_id="visit_cycle_time")
    assert row.value == 35 and row.definition == "visit_cycle_time[cycle_start=scheduled]"


def test_median_is_recomputed_at_each_level_not_a_median_of_medians(fx: Fixture) -> None:
    """WEST gets visits of 10 and 12 minutes. By location: EAST 45, WEST 11 (p90 11.8). The
    practice median of [10, 12, 30, 45, 50] is 30, not the median of medians (45 + 11) / 2 = 28;
    the practice p90 is 45 + 0.6 x 5 = 48. Medians carry no numerator or denominator."""
    visits(fx)
    fx.add(
        "encounters",
        {"location_id": "WEST", "checked_in_at": "2026-10-06 09:00", "checked_out_at": "2026-10-06 09:10"},
        {"location_id": "WEST", "checked_in_at": "2026-10-06 10:00", "checked_out_at": "2026-10-06 10:12"},
    )
    kpis = ["visit_cycle_time", "visit_cycle_time_p90"]
    total = fx.wh.compute(kpis, start="2026-10", end="2026-10")
    by_location = fx.wh.compute(kpis, start="2026-10", end="2026-10", by="location")
    assert one(total, kpi_id="visit_cycle_time").value == 30
    assert one(total, kpi_id="visit_cycle_time_p90").value == pytest.approx(48)
    assert one(by_location, kpi_id="visit_cycle_time", location="WEST").value == 11
    assert one(by_location, kpi_id="visit_cycle_time_p90", location="WEST").value == pytest.approx(11.8)
    assert math.isnan(one(total, kpi_id="visit_cycle_time").numerator)


def test_cycle_time_across_the_dst_change(fx: Fixture) -> None:
    """Sunday 2026-11-01, clocks go back at 02:00 (EDT -04:00 -> EST -05:00).

    A: check-in 01:30 EDT (05:30 UTC), check-out 01:10 EST (06:10 UTC): 40 real minutes,
       although the wall clock says -20.                                  -> local day 11-01
    B: 03:30 UTC on 11-01 is 23:30 EDT on 10-31, 10 minutes               -> local day 10-31
    C: 04:30 UTC on 11-02 is 23:30 EST on 11-01, 20 minutes               -> local day 11-01
       (a fixed EDT offset would put it on 11-02)
    Days: 10-31 median 10 (n 1); 11-01 median of [40, 20] = 30 (n 2); 11-02 nothing.
    """
    fx.add(
        "encounters",
        {
            "checked_in_at": datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
            "checked_out_at": datetime(2026, 11, 1, 6, 10, tzinfo=UTC),
        },
        {
            "checked_in_at": datetime(2026, 11, 1, 3, 30, tzinfo=UTC),
            "checked_out_at": datetime(2026, 11, 1, 3, 40, tzinfo=UTC),
        },
        {
            "checked_in_at": datetime(2026, 11, 2, 4, 30, tzinfo=UTC),
            "checked_out_at": datetime(2026, 11, 2, 4, 50, tzinfo=UTC),
        },
    )
    days = fx.wh.compute("visit_cycle_time", start="2026-10-31", end="2026-11-02", grain="day")
    assert [(r.value, r.n) for r in days.itertuples()][:2] == [(10, 1), (30, 2)]
    assert one(days, period_start="2026-11-02").n == 0


def test_durations_keep_fractions_of_a_second(fx: Fixture) -> None:
    """Exports may state instants to the millisecond (FHIR instants do): 09:00:00.250 to 09:30:01.750
    is 1801.5 s, i.e. 30.025 minutes, not 30.0167 (whole seconds) - on every engine."""
    fx.add(
        "encounters",
        {
            "checked_in_at": "2026-10-05 09:00:00.250",
            "roomed_at": "2026-10-05 09:04:59.500",
            "checked_out_at": "2026-10-05 09:30:01.750",
        },
    )
    frame = fx.wh.compute(["visit_cycle_time", "visit_segment_checkin_to_roomed"], start="2026-10", end="2026-10")
    assert one(frame, kpi_id="visit_cycle_time").value == 1801.5 / 60
    assert one(frame, kpi_id="visit_segment_checkin_to_roomed").value == 299.25 / 60
