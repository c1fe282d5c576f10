"""Phone KPIs on hand-computed fixtures: short abandons, timeouts, exit-key, time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.kpis.builder import Fixture
from tests.kpis.helpers import one


def calls(fx: Fixture) -> None:
    """October 2026, wait seconds by outcome (queue billing for c1, c2, c5; appointments otherwise).

    answered: c1 5 s, c2 35 s, c3 20 s
    abandoned: c4 8 s (a short abandon: neither offered nor abandoned), c5 12 s, c8 exactly 10 s
    timeout: c6 300 s (abandoned by default)
    exit_key: c7 60 s (caller chose a callback: excluded); other: c9 (excluded)
    Default: abandoned c5, c6, c8 = 3 of offered 3 + 3 = 6.
    """
    rows = [
        ("c1", "answered", 5, "billing"),
        ("c2", "answered", 35, "billing"),
        ("c3", "answered", 20, "appointments"),
        ("c4", "abandoned", 8, "appointments"),
        ("c5", "abandoned", 12, "billing"),
        ("c6", "timeout", 300, "appointments"),
        ("c7", "exit_key", 60, "appointments"),
        ("c8", "abandoned", 10, "appointments"),
        ("c9", "other", 3, "appointments"),
    ]
    fx.add(
        "calls",
        *(
            {"call_id": cid, "outcome": outcome, "wait_seconds": wait, "queue": queue, "entered_at": "2026-10-07 10:00"}
            for cid, outcome, wait, queue in rows
        ),
    )


@pytest.mark.parametrize(
    ("options", "abandoned", "offered"),
    [
        ({}, 3, 6),
        ({"timeouts_as_abandon": False}, 2, 5),  # c6 leaves both sides
        ({"short_abandon_seconds": 15}, 1, 4),  # c5 (12 s) and c8 (10 s) become short abandons
    ],
)
def test_call_abandonment_rate(fx: Fixture, options: dict, abandoned: int, offered: int) -> None:
    calls(fx)
    frame = fx.wh.compute(
        "call_abandonment_rate", start="2026-10", end="2026-10", options={"call_abandonment_rate": options}
    )
    row = one(frame, period_start="2026-10-01")
    assert (row.numerator, row.denominator, row.n) == (abandoned, offered, offered)
    assert row.value == pytest.approx(abandoned / offered)


def test_by_queue_sums_to_the_total(fx: Fixture) -> None:
    """billing: c5 of c1 c2 c5 = 1/3; appointments: c6 c8 of c3 c6 c8 = 2/3."""
    calls(fx)
    frame = fx.wh.compute("call_abandonment_rate", start="2026-10", end="2026-10", by="queue")
    assert (one(frame, queue="billing").numerator, one(frame, queue="billing").denominator) == (1, 3)
    assert (one(frame, queue="appointments").numerator, one(frame, queue="appointments").denominator) == (2, 3)


@pytest.mark.parametrize(("answer_seconds", "on_time"), [(30, 2), (20, 2), (10, 1)])
def test_service_level_and_speed_of_answer(fx: Fixture, answer_seconds: int, on_time: int) -> None:
    """Answered within 30 s: c1, c3 (20 s is within 20 s too) of the 6 offered. ASA (5+35+20)/3 = 20."""
    calls(fx)
    frame = fx.wh.compute(
        ["service_level", "average_speed_of_answer"],
        start="2026-10",
        end="2026-10",
        options={"service_level": {"answer_seconds": answer_seconds}},
    )
    level = one(frame, kpi_id="service_level")
    assert (level.numerator, level.denominator) == (on_time, 6)
    asa = one(frame, kpi_id="average_speed_of_answer")
    assert (asa.numerator, asa.denominator, asa.value, asa.n) == (60, 3, 20, 3)


DST_CALLS = [  # UTC instants around the spring-forward of Sunday 2026-03-08 (02:00 -> 03:00)
    datetime(2026, 3, 8, 4, 30, tzinfo=UTC),  # New York 03-07 23:30 EST; Chicago 03-07 22:30 CST
    datetime(2026, 3, 8, 5, 30, tzinfo=UTC),  # New York 03-08 00:30 EST; Chicago 03-07 23:30 CST
    datetime(2026, 3, 8, 7, 30, tzinfo=UTC),  # New York 03-08 03:30 EDT; Chicago 03-08 01:30 CST
    datetime(2026, 3, 9, 3, 30, tzinfo=UTC),  # New York 03-08 23:30 EDT; Chicago 03-08 22:30 CDT
    datetime(2026, 3, 9, 4, 30, tzinfo=UTC),  # New York 03-09 00:30 EDT; Chicago 03-08 23:30 CDT
]


@pytest.mark.parametrize(
    ("timezone", "per_day"),
    [("America/New_York", [1, 3, 1]), ("America/Chicago", [2, 3, 0])],
)
def test_days_follow_the_practice_time_zone_across_dst(tmp_path: Path, timezone: str, per_day: list[int]) -> None:
    fx = Fixture(tmp_path, config_text=f'[practice]\ntimezone = "{timezone}"\n')
    fx.add("calls", *({"entered_at": t, "wait_seconds": 10} for t in DST_CALLS))
    frame = fx.wh.compute("average_speed_of_answer", start="2026-03-07", end="2026-03-09", grain="day")
    assert frame["n"].tolist() == per_day
    fx.close()


def test_by_weekday_and_hour_of_day_in_local_time(fx: Fixture) -> None:
    """Local New York times; the first is already Monday in UTC (03:30Z) but Sunday 23:30 here.

    Sun 23:30 abandoned 40 s; Mon 09:15 answered; Mon 09:50 abandoned 20 s; Mon 2 Nov 00:10 (after
    the DST change, 05:10Z) answered. By weekday x hour: Sun 23 -> 1/1, Mon 9 -> 1/2, Mon 0 -> 0/1.
    """
    rows = [
        ("d1", "abandoned", 40, "2026-10-04 23:30"),
        ("d2", "answered", 5, "2026-10-05 09:15"),
        ("d3", "abandoned", 20, "2026-10-05 09:50"),
        ("d4", "answered", 5, "2026-11-02 00:10"),
    ]
    fx.add("calls", *({"call_id": c, "outcome": o, "wait_seconds": w, "entered_at": t} for c, o, w, t in rows))
    frame = fx.wh.compute(
        "call_abandonment_rate", start="2026-01", end="2026-12", grain="year", by=["weekday", "hour_of_day"]
    )
    cells = {(r.weekday, r.hour_of_day): (r.numerator, r.denominator) for r in frame.itertuples() if r.n}
    assert cells == {(7, 23): (1, 1), (1, 9): (1, 2), (1, 0): (0, 1)}
    labels = fx.wh.dimension_values("weekday")
    assert labels["label"].tolist()[:1] == ["Fri"] and len(labels) == 7  # sorted by label, all seven days
    assert fx.wh.dimension_values("hour_of_day")["label"].tolist()[0] == "00:00"
