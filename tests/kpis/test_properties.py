"""Properties that hold for any data: roll-ups add up, rates are rates, row order does not matter."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kpis.builder import P1, P2, Fixture

P3 = "1000000003"
START = datetime(2026, 10, 1, 8, 0)
TABLES = ("appointments", "calls", "encounters")
PROPERTY_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

appointment = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["booked", "arrived", "fulfilled", "noshow", "cancelled", "entered_in_error"]),
        "provider_id": st.sampled_from([P1, P2, P3]),
        "location_id": st.sampled_from(["EAST", "WEST"]),
        "start_hours": st.integers(0, 24 * 60),
        "cancel_initiator": st.sampled_from(["patient", "provider", "practice", None]),
        "cancel_hours_before": st.integers(0, 72),
        "rebooks": st.booleans(),
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
    }
)
data = st.fixed_dictionaries(
    {
        "appointments": st.lists(appointment, max_size=30),
        "calls": st.lists(call, max_size=30),
        "encounters": st.lists(encounter, max_size=15),
    }
)


def rows(generated: dict) -> dict[str, list[dict]]:
    """Canonical rows from generated facts (ids fixed, so a shuffle keeps every row identical)."""
    out: dict[str, list[dict]] = {name: [] for name in TABLES}
    for i, a in enumerate(generated["appointments"]):
        start = START + timedelta(hours=a["start_hours"])
        row = {
            "appointment_id": f"a{i}",
            "status": a["status"],
            "provider_id": a["provider_id"],
            "location_id": a["location_id"],
            "scheduled_start": start,
            "booked_at": start - timedelta(days=10),
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
                "provider_id": e["provider_id"],
                "is_telehealth": e["telehealth"],
                "checked_in_at": t[0],
                "roomed_at": t[1],
                "provider_start_at": t[2],
                "provider_end_at": t[3],
                "checked_out_at": t[4],
                "chart_closed_at": t[4] + timedelta(hours=e["start_hours"] % 50),
            }
        )
    return out


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
