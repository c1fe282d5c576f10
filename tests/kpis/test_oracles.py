"""The two custom queries against brute-force Python oracles, on random data.

Third next available and A/R balances are computed in SQL with shortcuts (ranks and running
counts; per-account balance intervals) so that they scale. Here each is recomputed the slow,
obvious way from the same rows, and the results must agree exactly.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

    expected: dict[tuple[date, str], int] = {}
    first_slot = min((s["start_at"] for s in slot_rows.values()), default=None)
    last_booking = max((b["booked_at"] for b in booking_rows), default=None)
    for monday in MONDAYS:
        t = datetime.combine(monday, time(8, 0), tzinfo=TZ)
        if first_slot is None or last_booking is None or not first_slot <= t <= last_booking:
            continue
        for provider in (P1, P2):
            open_slots = []
            for s in sorted(slot_rows.values(), key=lambda s: (s["start_at"], s["slot_id"])):
                if s["provider_id"] != provider or s["status"] == "blocked" or s["start_at"] <= t:
                    continue
                end = s["start_at"] + timedelta(minutes=s["minutes"])
                held = any(
                    b["provider_id"] == provider
                    and b["scheduled_start"] < end
                    and b["scheduled_start"] + timedelta(minutes=b["scheduled_minutes"]) > s["start_at"]
                    and b["booked_at"] <= t
                    and (b["cancelled_at"] is None or b["cancelled_at"] > t)
                    for b in booking_rows
                )
                if not held:
                    open_slots.append(s)
            if len(open_slots) >= 3:
                expected[monday, provider] = (open_slots[2]["start_at"].astimezone(TZ).date() - monday).days

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

    lookback = 365 if preset == "mgma" else 90
    for row in frame.itertuples(index=False):
        end = row.period_start.date().replace(day=28) + timedelta(days=4)
        end -= timedelta(days=end.day)  # the month's last day
        mine = [r for r in rows if r["payer_id"] == row.payer]
        balances: dict[str, Decimal] = defaultdict(Decimal)
        for r in mine:
            if r["posted_date"] <= end:
                sign = 1 if r["entry_type"] in ("charge", "refund") else -1
                balances[r["claim_id"]] += sign * r["amount"]
        if row.kpi_id == "days_in_ar":
            keep = (lambda b: b) if preset == "mgma" else (lambda b: max(b, Decimal(0)))
            ar = sum((keep(b) for b in balances.values()), Decimal(0))
            window = [r for r in mine if end - timedelta(days=lookback) < r["posted_date"] <= end]
            charges = sum((r["amount"] for r in window if r["entry_type"] == "charge"), Decimal(0))
            if preset == "mgma":
                charges -= sum((r["amount"] for r in window if r.get("reason_code") == "45"), Decimal(0))
            elif preset == "hfma":
                charges -= sum((r["amount"] for r in window if r["entry_type"] == "adjustment"), Decimal(0))
            assert row.numerator == float(ar)
            assert (
                row.denominator == float(charges / lookback) or abs(row.denominator - float(charges) / lookback) < 1e-9
            )
            assert row.n == sum(1 for r in window if r["entry_type"] == "charge")
        else:
            kept = {c: b for c, b in balances.items() if credits == "include" or b > 0}
            aged = [b for c, b in kept.items() if (end - aging_start(c, age_from, mine)).days > 90]
            assert row.denominator == float(sum(kept.values(), Decimal(0)))
            assert row.numerator == float(sum(aged, Decimal(0)))
            assert row.n == sum(1 for r in mine if r["posted_date"] <= end)


def aging_start(claim: str, age_from: str, rows: list[dict]) -> date:
    """The date a claim's balance ages from: service, or first bill (claims C0-C2 only have a bill);
    without either (claim C5), its first posting among `rows` (an account is a claim in one segment)."""
    index = int(claim[1:])
    if age_from == "first_bill" and index < 3:
        return SERVICE[index] + timedelta(days=20)
    if index == UNDATED:
        return min(r["posted_date"] for r in rows if r["claim_id"] == claim)
    return SERVICE[index]
