"""Properties that hold for any data: roll-ups add up, rates are rates, row order does not matter,
and every KPI follows its documented definition whichever optional column an export leaves empty."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kpis import oracles
from tests.kpis.builder import P1, P2, Fixture

P3 = "1000000003"
START = datetime(2026, 10, 1, 8, 0)
TABLES = (
    "appointments",
    "calls",
    "encounters",
    "slots",
    "claims",
    "remittances",
    "remittance_adjustments",
    "ledger",
    "referrals",
    "portal_messages",
)
PROPERTY_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

appointment = st.fixed_dictionaries(
    {
        # cancelled first: the simplest examples hypothesis tries then hold cancellations
        "status": st.sampled_from(["cancelled", "booked", "arrived", "fulfilled", "noshow", "entered_in_error"]),
        "provider_id": st.sampled_from([P1, P2, P3]),
        "location_id": st.sampled_from(["EAST", "WEST"]),
        "start_hours": st.integers(0, 24 * 60),
        "cancel_initiator": st.sampled_from(["patient", "provider", "practice", None]),
        "cancel_hours_before": st.integers(0, 72),
        "rebooks": st.booleans(),
        "lead_hours": st.integers(1, 400),
        "minutes": st.sampled_from([20, 40]),
        "payer_id": st.sampled_from(["PAY1", "PAY2"]),
        "visit_type": st.sampled_from(["followup", "new"]),
    }
)
call = st.fixed_dictionaries(
    {
        "outcome": st.sampled_from(["answered", "abandoned", "timeout", "exit_key", "other"]),
        "wait_seconds": st.integers(0, 400),
        "queue": st.sampled_from(["appointments", "billing", "nurse"]),
        "location_id": st.sampled_from(["EAST", "WEST", None]),
        "start_hours": st.integers(0, 24 * 60),
    }
)
encounter = st.fixed_dictionaries(
    {
        "provider_id": st.sampled_from([P1, P2, P3]),
        "start_hours": st.integers(0, 24 * 60),
        "minutes": st.lists(st.integers(0, 40), min_size=4, max_size=4),
        "telehealth": st.booleans(),
        "finished": st.integers(0, 5).map(lambda x: x > 0),
        "appointment": st.one_of(st.none(), st.integers(0, 29)),
    }
)
data = st.fixed_dictionaries(
    {
        "appointments": st.lists(appointment, max_size=30),
        "calls": st.lists(call, max_size=30),
        "encounters": st.lists(encounter, max_size=15),
    }
)
# the other facts, for the tests that cover every KPI
slot = st.fixed_dictionaries(
    {
        "provider_id": st.sampled_from([P1, P2]),
        "location_id": st.sampled_from(["EAST", "WEST"]),
        "day": st.integers(0, 20),
        "slot": st.integers(0, 7),
        "blocked": st.integers(0, 9).map(lambda x: x == 0),
    }
)
remit = st.fixed_dictionaries(
    {
        "days_after": st.integers(5, 40),
        "status": st.sampled_from(["1", "1", "4", "22"]),
        "paid": st.sampled_from([0, 60]),
        "adjustments": st.lists(st.sampled_from([("CO", "45"), ("PR", "2"), ("CO", "18"), ("CO", "97")]), max_size=2),
    }
)
claim = st.fixed_dictionaries(
    {
        "service_day": st.integers(0, 50),
        "lag_days": st.integers(0, 12),
        "rework_after": st.one_of(st.none(), st.integers(1, 30)),
        "remits": st.lists(remit, max_size=2),
        "location_id": st.sampled_from(["EAST", "WEST"]),
    }
)
ledger_entry = st.fixed_dictionaries(
    {
        "claim": st.integers(0, 5),
        "kind": st.sampled_from(["charge", "charge", "payment", "adjustment", "writeoff", "refund"]),
        "day": st.integers(0, 170),  # posted, days after 2026-06-01
        "amount": st.integers(1, 300),
        "contractual": st.booleans(),
        "location_id": st.sampled_from(["EAST", "WEST"]),
    }
)
referral = st.fixed_dictionaries(
    {
        "hours": st.integers(0, 24 * 60),
        "cancelled": st.integers(0, 9).map(lambda x: x == 0),
        "report_days": st.one_of(st.none(), st.integers(1, 120)),
    }
)
message = st.fixed_dictionaries(
    {"hours": st.integers(0, 24 * 60), "reply_minutes": st.one_of(st.none(), st.integers(1, 6000))}
)
practice = st.fixed_dictionaries(
    {
        "appointments": st.lists(appointment, min_size=6, max_size=25),
        "calls": st.lists(call, min_size=3, max_size=15),
        "encounters": st.lists(encounter, min_size=3, max_size=12),
        "slots": st.lists(slot, min_size=6, max_size=25),
        "claims": st.lists(claim, min_size=3, max_size=8),
        "ledger": st.lists(ledger_entry, min_size=4, max_size=20),
        "referrals": st.lists(referral, min_size=3, max_size=10),
        "portal_messages": st.lists(message, min_size=3, max_size=10),
    }
)


def rows(generated: dict) -> dict[str, list[dict]]:
    """Canonical rows from generated facts (ids fixed, so a shuffle keeps every row identical).

    Instants are naive local times (the builder reads them in the practice time zone).
    """
    out: dict[str, list[dict]] = {name: [] for name in TABLES}
    for i, a in enumerate(generated["appointments"]):
        start = START + timedelta(hours=a["start_hours"])
        row = {
            "appointment_id": f"a{i}",
            "status": a["status"],
            "provider_id": a["provider_id"],
            "location_id": a["location_id"],
            "scheduled_start": start,
            "booked_at": start - timedelta(hours=a["lead_hours"]),
            "scheduled_minutes": a["minutes"],
            "payer_id": a["payer_id"],
            "visit_type": a["visit_type"],
            "is_new_patient": a["visit_type"] == "new",
            "patient_key": f"pk{i % 7}",
        }
        if a["status"] == "cancelled":
            row["cancel_initiator"] = a["cancel_initiator"]
            row["cancelled_at"] = start - timedelta(hours=a["cancel_hours_before"])
        if a["rebooks"] and i > 0:
            row["rebooked_from_id"] = f"a{i - 1}"
        out["appointments"].append(row)
    for i, c in enumerate(generated["calls"]):
        out["calls"].append(
            {
                "call_id": f"c{i}",
                "outcome": c["outcome"],
                "wait_seconds": c["wait_seconds"],
                "queue": c["queue"],
                "location_id": c["location_id"],
                "entered_at": START + timedelta(hours=c["start_hours"]),
            }
        )
    for i, e in enumerate(generated["encounters"]):
        t = [START + timedelta(hours=e["start_hours"])]
        for minutes in e["minutes"]:
            t.append(t[-1] + timedelta(minutes=minutes))
        out["encounters"].append(
            {
                "encounter_id": f"e{i}",
                "appointment_id": None if e["appointment"] is None else f"a{e['appointment']}",
                "provider_id": e["provider_id"],
                "location_id": "EAST" if i % 3 else "WEST",
                "status": "finished" if e["finished"] else "in_progress",
                "is_telehealth": e["telehealth"],
                "checked_in_at": t[0],
                "roomed_at": t[1],
                "provider_start_at": t[2],
                "provider_end_at": t[3],
                "checked_out_at": t[4],
                "chart_closed_at": t[4] + timedelta(hours=e["start_hours"] % 50),
            }
        )
    _billing_rows(generated, out)
    _other_rows(generated, out)
    return out


def _billing_rows(generated: dict, out: dict[str, list[dict]]) -> None:
    """Claims with their submissions, remittances and adjustments; ledger entries of six claims."""
    for i, c in enumerate(generated.get("claims", [])):
        service = date(2026, 9, 20) + timedelta(days=c["service_day"])
        submitted = datetime.combine(service + timedelta(days=c["lag_days"]), datetime.min.time()) + timedelta(hours=17)
        claim = {"claim_id": f"C{i}", "service_date": service, "location_id": c["location_id"], "billed_amount": 100}
        out["claims"].append(claim | {"submitted_at": submitted, "frequency_code": "1", "patient_key": f"pk{i}"})
        if c["rework_after"] is not None:
            rework = submitted + timedelta(days=c["rework_after"])
            out["claims"].append(claim | {"submitted_at": rework, "frequency_code": "7", "patient_key": f"pk{i}"})
        for j, r in enumerate(c["remits"]):
            remittance_id = f"R{i}-{j}"
            paid = submitted.date() + timedelta(days=r["days_after"])
            out["remittances"].append(
                {
                    "remittance_id": remittance_id,
                    "claim_id": f"C{i}",
                    "paid_date": paid,
                    "claim_status_code": r["status"],
                    "paid_amount": 0 if r["status"] == "4" else r["paid"],
                    "billed_amount": 100,
                }
            )
            for group, reason in r["adjustments"]:
                out["remittance_adjustments"].append(
                    {"remittance_id": remittance_id, "group_code": group, "reason_code": reason, "amount": 40}
                )
    for i, e in enumerate(generated.get("ledger", [])):
        row = {
            "entry_id": f"l{i}",
            "claim_id": f"C{e['claim']}",
            "entry_type": e["kind"],
            "posted_date": date(2026, 6, 1) + timedelta(days=e["day"]),
            "service_date": date(2026, 5, 20) + timedelta(days=30 * e["claim"]),
            "amount": Decimal(e["amount"]),
            "location_id": e["location_id"],
            "payer_id": "PAY1" if e["claim"] % 2 else "PAY2",
            "party": "payer",
        }
        if e["kind"] == "adjustment":
            row |= {"group_code": "CO", "reason_code": "45" if e["contractual"] else "97"}
        out["ledger"].append(row)


def _other_rows(generated: dict, out: dict[str, list[dict]]) -> None:
    """Template slots, referrals and portal messages."""
    for s in generated.get("slots", []):
        start = datetime.combine(date(2026, 10, 1) + timedelta(days=s["day"]), datetime.min.time())
        start += timedelta(hours=9, minutes=30 * s["slot"])
        slot_id = f"s-{s['provider_id']}-{s['day']}-{s['slot']}"
        if any(r["slot_id"] == slot_id for r in out["slots"]):
            continue
        out["slots"].append(
            {
                "slot_id": slot_id,
                "provider_id": s["provider_id"],
                "location_id": s["location_id"],
                "visit_type": "followup",
                "start_at": start,
                "minutes": 30,
                "status": "blocked" if s["blocked"] else "free",
            }
        )
    for i, r in enumerate(generated.get("referrals", [])):
        created = START + timedelta(hours=r["hours"])
        report = None if r["report_days"] is None else created + timedelta(days=r["report_days"])
        out["referrals"].append(
            {
                "referral_id": f"r{i}",
                "created_at": created,
                "sent_at": created + timedelta(hours=2),
                "scheduled_at": created + timedelta(days=3),
                "seen_at": created + timedelta(days=20),
                "report_received_at": report,
                "status": "cancelled" if r["cancelled"] else ("closed" if report else "sent"),
                "specialty": "cardiology",
            }
        )
    for i, m in enumerate(generated.get("portal_messages", [])):
        received = START + timedelta(hours=m["hours"], minutes=17)
        reply = None if m["reply_minutes"] is None else received + timedelta(minutes=m["reply_minutes"])
        out["portal_messages"].append(
            {"message_id": f"m{i}", "received_at": received, "first_response_at": reply, "category": "refill"}
        )


def load(fx: Fixture, tables: dict[str, list[dict]]) -> None:
    with fx.wh.transaction() as cur:
        for name in TABLES:
            cur.execute(f"DELETE FROM {name}")
    for name in TABLES:
        if tables[name]:
            fx.add(name, *tables[name])


RATIO_KPIS = {
    "provider": ["no_show_rate", "late_cancel_rate"],
    "queue": ["call_abandonment_rate", "service_level", "average_speed_of_answer"],
    "location": ["no_show_rate", "call_abandonment_rate", "service_level", "average_speed_of_answer"],
}


@PROPERTY_SETTINGS
@given(data)
def test_breakdowns_add_up_to_the_practice_total(fx: Fixture, generated: dict) -> None:
    load(fx, rows(generated))
    for dim, kpis in RATIO_KPIS.items():
        total = fx.wh.compute(kpis, start="2026-10", end="2026-12")
        parts = fx.wh.compute(kpis, start="2026-10", end="2026-12", by=dim)
        expected = total.set_index(["kpi_id", "period_start"])[["numerator", "denominator", "n"]]
        summed = parts.groupby(["kpi_id", "period_start"])[["numerator", "denominator", "n"]].sum()
        summed = summed.reindex(expected.index, fill_value=0)  # no provider known: nothing to add
        pd.testing.assert_frame_equal(summed, expected, check_dtype=False)


@PROPERTY_SETTINGS
@given(data)
def test_rates_are_between_zero_and_one(fx: Fixture, generated: dict) -> None:
    load(fx, rows(generated))
    frame = fx.wh.compute(start="2026-10", end="2026-12", grain="week", by="location")
    percent = {s.id for s in fx.wh.catalog() if s.unit == "percent" and s.id != "net_collection_rate"}
    rates = frame[frame["kpi_id"].isin(percent)]
    known = rates["value"].dropna()
    assert ((known >= 0) & (known <= 1)).all()
    assert (rates["numerator"] <= rates["denominator"]).all()
    assert (rates.loc[rates["n"] == 0, "value"].isna()).all()


@PROPERTY_SETTINGS
@given(data, st.randoms(use_true_random=False))
def test_results_do_not_depend_on_row_order(fx: Fixture, generated: dict, rnd: random.Random) -> None:
    tables = rows(generated)
    kpis = [s.id for s in fx.wh.catalog() if s.domain in ("access", "visit_flow", "phones")]
    load(fx, tables)
    first = fx.wh.compute(kpis, start="2026-10", end="2026-11", by="location")
    shuffled = {name: rnd.sample(table, len(table)) for name, table in tables.items()}
    load(fx, shuffled)
    second = fx.wh.compute(kpis, start="2026-10", end="2026-11", by="location")
    pd.testing.assert_frame_equal(first, second)


# -- every KPI against its documented definition, with each optional column left empty ------------

# The nullable canonical columns the relations read, by table (docs/contracts.md: an export may
# leave any of them out). Each is set to NULL in turn, in a generated share of the rows.
NULLABLE = {
    "appointments": [
        "location_id",
        "provider_id",
        "payer_id",
        "visit_type",
        "is_new_patient",
        "booked_at",
        "scheduled_minutes",
        "cancelled_at",
        "cancel_initiator",
        "rebooked_from_id",
    ],
    "encounters": [
        "appointment_id",
        "location_id",
        "checked_in_at",
        "roomed_at",
        "provider_start_at",
        "provider_end_at",
        "checked_out_at",
        "chart_closed_at",
    ],
    "slots": ["provider_id", "location_id"],
    "calls": ["location_id", "queue"],
    "claims": ["location_id", "payer_id"],
    "remittances": ["payer_id", "billed_amount"],
    "ledger": ["claim_id", "service_date", "payer_id", "group_code", "reason_code", "location_id"],
    "referrals": ["location_id", "scheduled_at", "seen_at", "report_received_at"],
    "portal_messages": ["location_id", "first_response_at"],
}
# the KPIs whose relation reads each table (beyond reference data for dimensions)
READERS = {
    "appointments": ["no_show_rate", "late_cancel_rate", "slot_utilization", "third_next_available"],
    "encounters": [
        "visit_cycle_time",
        "visit_cycle_time_p90",
        "visit_segment_checkin_to_roomed",
        "visit_segment_roomed_to_provider",
        "visit_segment_provider_time",
        "visit_segment_provider_to_checkout",
        "chart_closure_lag",
    ],
    "slots": ["slot_utilization", "third_next_available"],
    "calls": ["call_abandonment_rate", "average_speed_of_answer", "service_level"],
    "claims": ["denial_rate", "clean_claim_rate", "charge_lag"],
    "remittances": ["denial_rate", "clean_claim_rate"],
    "ledger": ["net_collection_rate", "days_in_ar", "ar_over_90_pct"],
    "referrals": ["referral_completion_rate"],
    "portal_messages": ["portal_response_time"],
}
MONTHS = [date(2026, 10, 1), date(2026, 11, 1)]
MONDAYS = [date(2026, 10, 5) + timedelta(days=7 * i) for i in range(8)]
NULL_SETTINGS = settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))


def by_location(row: dict) -> str | None:
    return row.get("location_id")


# named variants whose definitions read optional columns, checked too
VARIANTS = [
    {"denominator": "scheduled"},
    {"denominator": "scheduled", "late_cancel": "exclude"},
    {"late_cancel": "as_noshow"},
]


def expected(kpi: str, tables: dict[str, list[dict]], group: oracles.Group, options: dict | None = None) -> dict:
    if options:
        return oracles.no_show_rate(tables, group, **options)
    if kpi in ("days_in_ar", "ar_over_90_pct"):
        return oracles.ar_balances(tables, [oracles.month_end(m) for m in MONTHS], group)[kpi]
    if kpi == "third_next_available":
        return oracles.third_next_available(tables, group, MONDAYS)
    return oracles.SPEC_ORACLES[kpi](tables, group)


def same(a: float | None, b: float | None) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return b is not None and not math.isnan(b) and abs(a - b) <= 1e-9 * max(1.0, abs(a))


@pytest.mark.parametrize(("table", "column"), [(t, c) for t, columns in NULLABLE.items() for c in columns])
@NULL_SETTINGS
@given(generated=practice, nth=st.integers(1, 3))
def test_every_kpi_follows_its_definition_with_an_optional_column_empty(
    fx: Fixture, table: str, column: str, generated: dict, nth: int
) -> None:
    """Three-valued logic check: NULL in any optional column must mean what the definition says
    (an unknown initiator counts as a booking, a missing time places nothing, ...), never drop a
    row by accident. Each KPI reading the table is compared with its plain-Python oracle, for the
    practice and by location (a NULL location is a group of its own)."""
    tables = rows(generated)
    for i, row in enumerate(tables[table]):  # every row, or every 2nd or 3rd: a column empty in some rows
        if i % nth == 0:
            row[column] = None
    load(fx, tables)
    loaded = {name: fx.rows(name) for name in TABLES}
    requests = [(READERS[table], None)]
    if table == "appointments":
        requests += [(["no_show_rate"], variant) for variant in VARIANTS]
    for kpis, variant in requests:
        options = {"no_show_rate": variant} if variant else None
        groupings = [(), ("location",)]
        both = fx.wh.compute_groupings(kpis, start="2026-10", end="2026-11", groupings=groupings, options=options)
        check(both, kpis, loaded, variant)


def check(both: pd.DataFrame, kpis: list[str], loaded: dict[str, list[dict]], variant: dict | None) -> None:
    """Each KPI of a practice-and-location result equals its oracle, value for value."""
    for group, by in ((oracles.total, None), (by_location, "location")):
        frame = both[both["grouping_id"] == (1 if by is None else 0)]
        for kpi in kpis:
            want = {k: v for k, v in expected(kpi, loaded, group, variant).items() if k[0] in MONTHS}
            mine = frame[frame["kpi_id"] == kpi]
            got = {}
            for r in mine.itertuples(index=False):
                key = (r.period_start.date(), None if by is None or pd.isna(getattr(r, by)) else getattr(r, by))
                sums = [v for v in (r.numerator, r.denominator) if pd.notna(v) and v]
                if r.n or sums or isinstance(r.note, str):  # data, or a note on data of unknown side
                    got[key] = r
            assert set(got) == set(want), (kpi, by, variant, sorted(got, key=str), sorted(want, key=str))
            for key, w in want.items():
                g = got[key]
                assert g.n == w.n, (kpi, key, g.n, w.n)
                if w.numerator is not None:
                    assert same(w.numerator, g.numerator) and same(w.denominator, g.denominator), (kpi, key, g, w)
                assert same(w.value, g.value), (kpi, key, g.value, w.value)
                if w.unknown or (w.value is None and w.n):
                    assert g.status is None and isinstance(g.note, str), (kpi, key, g)
