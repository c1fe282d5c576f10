"""Referral loop closure (windows, stages, open periods) and portal business-hour response times."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kpis.builder import Fixture
from tests.kpis.helpers import one


def referrals(fx: Fixture) -> None:
    """Referrals (local times), with each stage reached.

    r1 07-10 10:00  scheduled 07-12, seen 07-25, report 08-01             closed in 22 days
    r2 07-15 10:00  scheduled 07-20, seen 11-20, report 11-01 (109 days)  not closed within 90
    r3 07-20 10:00  cancelled                                              out of the denominator
    r4 07-25 10:00  scheduled 08-01, seen 08-20, no report                completed, not closed
    r5 07-31 23:00  scheduled 08-02, seen 08-15, report 10-29 23:00       exactly 90 days: closed
    r6 07-05 10:00  scheduled 07-06, seen 08-01, report 10-03 09:00       closed with an hour to spare
    r7 08-25 10:00  sent, nothing yet                                      inside its open window
    July: closed 3/5, completed (seen within 90 days) 4/5, scheduled 5/5; with a 120-day window
    r2 closes too (4/5). The data end on 11-20 (r2 seen): July + 90 days is over, August is not.
    """
    rows = [
        ("r1", "2026-07-10 10:00", "2026-07-12 10:00", "2026-07-25 10:00", "2026-08-01 10:00", "closed"),
        ("r2", "2026-07-15 10:00", "2026-07-20 10:00", "2026-11-20 10:00", "2026-11-01 10:00", "closed"),
        ("r3", "2026-07-20 10:00", None, None, None, "cancelled"),
        ("r4", "2026-07-25 10:00", "2026-08-01 10:00", "2026-08-20 10:00", None, "seen"),
        ("r5", "2026-07-31 23:00", "2026-08-02 10:00", "2026-08-15 10:00", "2026-10-29 23:00", "closed"),
        ("r6", "2026-07-05 10:00", "2026-07-06 10:00", "2026-08-01 10:00", "2026-10-03 09:00", "closed"),
        ("r7", "2026-08-25 10:00", None, None, None, "sent"),
    ]
    fx.add(
        "referrals",
        *(
            {
                "referral_id": rid,
                "created_at": created,
                "scheduled_at": scheduled,
                "seen_at": seen,
                "report_received_at": report,
                "status": status,
                "specialty": "cardiology",
            }
            for rid, created, scheduled, seen, report, status in rows
        ),
    )


@pytest.mark.parametrize(
    ("options", "july", "july_complete"),
    [
        ({}, (3, 5), True),
        ({"stage": "completed"}, (4, 5), True),
        ({"stage": "scheduled"}, (5, 5), True),
        ({"window_days": 120}, (4, 5), False),  # 07-31 + 120 days is after the data's end
    ],
)
def test_referral_completion_rate(fx: Fixture, options: dict, july: tuple, july_complete: bool) -> None:
    referrals(fx)
    options = {"referral_completion_rate": options}
    frame = fx.wh.compute("referral_completion_rate", start="2026-07", end="2026-08", options=options)
    jul, aug = one(frame, period_start="2026-07-01"), one(frame, period_start="2026-08-01")
    assert (jul.numerator, jul.denominator) == july
    assert bool(jul.complete) == july_complete
    # r7 is still inside its window: counted as open (0 of 1) and the month flagged incomplete.
    assert (aug.numerator, aug.denominator, bool(aug.complete)) == (0, 1, False)


def test_the_referral_window_counts_days_of_24_hours(fx: Fixture) -> None:
    """Created 2026-08-05 10:00 EDT; 90 x 24 h later is 11-03 14:00 UTC = 09:00 EST (clocks went back
    on 11-01). A report at 09:30 EST is outside the window, although on the wall clock 10:00 of the
    90th day is not yet reached. The same report closes a referral made at 11:00 EDT."""
    fx.add(
        "referrals",
        {"created_at": "2026-08-05 10:00", "report_received_at": "2026-11-03 09:30", "status": "closed"},
        {"created_at": "2026-08-05 11:00", "report_received_at": "2026-11-03 09:30", "status": "closed"},
    )
    row = one(fx.wh.compute("referral_completion_rate", start="2026-08", end="2026-08"), period_start="2026-08-01")
    assert (row.numerator, row.denominator) == (1, 2)


def messages(fx: Fixture) -> None:
    """Portal messages in the week of Monday 2026-10-05 (business hours Mon-Fri 08:00-17:00).

    m1 Mon 10:00 -> Mon 13:30            3.5 h
    m2 Fri 16:00 -> Mon 09:00            1 + 1 = 2 h
    m3 Sat 11:00 -> Mon 08:30            0.5 h (the weekend does not count)
    m4 Tue 18:00 -> Wed 07:30            0 h (both outside opening hours)
    m5 Wed 09:00, no staff reply         not in the population
    m6 Thu 16:30 -> Fri 08:15            0.5 + 0.25 = 0.75 h
    Median of [0, 0.5, 0.75, 2, 3.5] = 0.75 h, n = 5.
    """
    rows = [
        ("m1", "2026-10-05 10:00", "2026-10-05 13:30"),
        ("m2", "2026-10-09 16:00", "2026-10-12 09:00"),
        ("m3", "2026-10-10 11:00", "2026-10-12 08:30"),
        ("m4", "2026-10-06 18:00", "2026-10-07 07:30"),
        ("m5", "2026-10-07 09:00", None),
        ("m6", "2026-10-08 16:30", "2026-10-09 08:15"),
    ]
    fx.add(
        "portal_messages",
        *({"message_id": m, "received_at": recv, "first_response_at": reply} for m, recv, reply in rows),
    )


def test_portal_response_time(fx: Fixture) -> None:
    messages(fx)
    row = one(fx.wh.compute("portal_response_time", start="2026-10", end="2026-10"), period_start="2026-10-01")
    assert (row.value, row.n) == (0.75, 5)
    values = fx.wh.explain("portal_response_time", "2026-10").set_index("record_id")["value"]
    assert values.to_dict() == pytest.approx(
        {"csv:m1": 3.5, "csv:m2": 2.0, "csv:m3": 0.5, "csv:m4": 0.0, "csv:m5": float("nan"), "csv:m6": 0.75},
        nan_ok=True,
    )


def test_portal_business_hours_and_holidays_come_from_config(tmp_path: Path) -> None:
    """Monday 10-12 declared a holiday: m2 counts only Friday's last hour (1 h), m3 nothing (0 h).
    With opening hours 09:00-17:00 Mon-Sat instead, m3 (Saturday 11:00) waits 6 h on Saturday."""
    fx = Fixture(tmp_path, config_text='[business_hours]\nholidays = ["2026-10-12"]\n')
    messages(fx)
    values = fx.wh.explain("portal_response_time", "2026-10").set_index("record_id")["value"]
    assert (values["csv:m2"], values["csv:m3"]) == (1.0, 0.0)
    fx.close()
    (tmp_path / "fixture.duckdb").unlink()
    six_days = '[business_hours]\nstart = "09:00"\ndays = ["mon", "tue", "wed", "thu", "fri", "sat"]\n'
    fx = Fixture(tmp_path, config_text=six_days)
    messages(fx)
    values = fx.wh.explain("portal_response_time", "2026-10").set_index("record_id")["value"]
    assert (values["csv:m1"], values["csv:m3"], values["csv:m6"]) == (3.5, 6.0, 0.5)
    fx.close()


def test_portal_business_hours_across_the_dst_change(fx: Fixture) -> None:
    """Fri 2026-10-30 16:00 EDT -> Mon 11-02 09:00 EST: 1 h + 1 h of opening hours, although 66 real
    hours (not 65) passed over the weekend."""
    fx.add("portal_messages", {"received_at": "2026-10-30 16:00", "first_response_at": "2026-11-02 09:00"})
    assert fx.wh.explain("portal_response_time", "2026-10")["value"].tolist() == [2.0]
