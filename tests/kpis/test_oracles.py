"""The two custom queries against brute-force Python oracles, on random data.

Third next available and A/R balances are computed in SQL with shortcuts (ranks and running
counts; per-account balance intervals) so that they scale. Here each is recomputed the slow,
obvious way from the same rows (tests/kpis/oracles.py, which holds every KPI's definition in
plain Python), and the results must agree exactly.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kpis import oracles
from tests.kpis.builder import P1, P2, Fixture

TZ = ZoneInfo("America/New_York")
ORACLE_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MONDAYS = [date(2026, 10, 5) + timedelta(days=7 * i) for i in range(2)]


def clear(fx: Fixture, *tables: str) -> None:
    with fx.wh.transaction() as cur:
        for table in tables:
            cur.execute(f"DELETE FROM {table}")


DAYS, PER_DAY = 16, 3  # a dense grid, so that most slots are taken at some snapshot
mostly = st.integers(0, 9).map(lambda x: x > 0)  # True 9 times in 10
slot_plan = st.lists(  # one (exists, not blocked) per grid position: provider x day x slot of the day
    st.tuples(mostly, mostly),
    min_size=2 * DAYS * PER_DAY,
    max_size=2 * DAYS * PER_DAY,
)
booking_plan = st.lists(
    st.tuples(
        st.sampled_from([P1, P2]),
        st.integers(0, DAYS - 1),  # day of the visit after 10-04
        st.integers(0, PER_DAY - 1),  # slot of the day (09:00 + 30 min steps)
        st.integers(1, 20),  # days booked ahead
        st.one_of(st.none(), st.integers(0, 20)),  # days after booking it was cancelled
        st.sampled_from([30, 60]),  # minutes
    ),
    max_size=60,
)


def at(day: int, slot: int) -> datetime:
    return datetime.combine(date(2026, 10, 4) + timedelta(days=day), time(9, 0), tzinfo=TZ) + timedelta(
        minutes=30 * slot
    )


TNA_CASES = (slot_plan, booking_plan)


@ORACLE_SETTINGS
@given(*TNA_CASES)
def test_third_next_available_matches_a_brute_force_count(fx: Fixture, slots: list, bookings: list) -> None:
    clear(fx, "slots", "appointments")
    slot_rows = {}
    grid = [(p, d, k) for p in (P1, P2) for d in range(DAYS) for k in range(PER_DAY)]
    for (provider, day, slot), (exists, open_) in zip(grid, slots, strict=True):
        if not exists:
            continue
        blocked = not open_
        slot_rows[provider, day, slot] = {
            "slot_id": f"{provider}-{day}-{slot}",
            "provider_id": provider,
            "start_at": at(day, slot),
            "minutes": 30,
            "status": "blocked" if blocked else "free",
        }
    booking_rows = []
    for i, (provider, day, slot, ahead, cancel_after, minutes) in enumerate(bookings):
        start = at(day, slot)
        booked = start - timedelta(days=ahead)
        cancelled = None if cancel_after is None else booked + timedelta(days=cancel_after, hours=1)
        booking_rows.append(
            {
                "appointment_id": f"b{i}",
                "provider_id": provider,
                "scheduled_start": start,
                "scheduled_minutes": minutes,
                "booked_at": booked,
                "cancelled_at": cancelled,
                "status": "cancelled" if cancelled else "fulfilled",
            }
        )
    if slot_rows:
        fx.add("slots", *slot_rows.values())
    if booking_rows:
        fx.add("appointments", *booking_rows)

    pairs = oracles.third_next_available_pairs(fx.rows("slots"), fx.rows("appointments"), MONDAYS)
    expected = {(monday, provider): days for (monday, provider, _location), days in pairs.items()}

    got = fx.wh.explain("third_next_available", "2026-10")
    actual = {
        (row.event_time.tz_convert(TZ).date(), row.provider): int(row.value) for row in got.itertuples(index=False)
    }
    assert actual == expected


ledger_plan = st.lists(
    st.tuples(
        st.integers(0, 5),  # claim
        st.sampled_from(["charge", "payment", "adjustment", "writeoff", "refund"]),
        st.integers(0, 400),  # posted, days after 2025-09-01
        st.integers(1, 500),  # amount in dollars
        st.booleans(),  # contractual (CO-45) when an adjustment
        st.sampled_from(["PAY1", "PAY2"]),
    ),
    min_size=1,
    max_size=40,
)
SERVICE = {claim: date(2025, 9, 1) + timedelta(days=40 * claim) for claim in range(6)}
UNDATED = 5  # claim C5's entries carry no date of service: its balance ages from its first posting


AR_CASES = (
    ledger_plan,
    st.sampled_from(["mgma", "hfma", "aafp"]),
    st.sampled_from(["service", "first_bill"]),
    st.sampled_from(["include", "exclude"]),
)


@ORACLE_SETTINGS
@given(*AR_CASES)
def test_ar_balances_match_a_brute_force_ledger(
    fx: Fixture, entries: list, preset: str, age_from: str, credits: str
) -> None:
    clear(fx, "ledger", "claims")
    rows = []
    for i, (claim, kind, posted, amount, contractual, payer) in enumerate(entries):
        row = {
            "entry_id": f"l{i}",
            "claim_id": f"C{claim}",
            "entry_type": kind,
            "posted_date": date(2025, 9, 1) + timedelta(days=posted),
            "service_date": None if claim == UNDATED else SERVICE[claim],
            "amount": Decimal(amount),
            "payer_id": payer,
        }
        if kind == "adjustment":
            row |= {"group_code": "CO", "reason_code": "45" if contractual else "97"}
        rows.append(row)
    fx.add("ledger", *rows)
    fx.add(  # claims 0-2 were first billed 20 days after service (aging from first bill)
        "claims",
        *(
            {
                "claim_id": f"C{c}",
                "submitted_at": datetime.combine(SERVICE[c] + timedelta(days=20), time(12), tzinfo=TZ),
                "service_date": SERVICE[c],
                "billed_amount": Decimal(1),
            }
            for c in range(3)
        ),
    )
    options = {"days_in_ar": {"preset": preset}, "ar_over_90_pct": {"age_from": age_from, "credit_balances": credits}}
    frame = fx.wh.compute(["days_in_ar", "ar_over_90_pct"], start="2025-10", end="2026-09", by="payer", options=options)

    ends = [oracles.month_end(date(2025 + (9 + k) // 12, (9 + k) % 12 + 1, 1)) for k in range(12)]
    loaded = {"ledger": fx.rows("ledger"), "claims": fx.rows("claims")}
    expected = oracles.ar_balances(loaded, ends, lambda e: e["payer_id"], preset, age_from, credits)
    for row in frame.itertuples(index=False):
        want = expected[row.kpi_id].get((row.period_start.date(), row.payer))
        if want is None:  # a payer without entries by then
            assert row.n == 0 and row.numerator == 0 and row.denominator == 0
            continue
        assert (row.numerator, row.n) == (want.numerator, want.n)
        assert abs(row.denominator - want.denominator) < 1e-9
        assert (math.isnan(row.value) and want.value is None) or abs(row.value - want.value) < 1e-9
