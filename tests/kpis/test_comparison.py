"""Comparison (docs/contracts.md section 5): the month reported, comparisons between facts only,
one ranking of moves, drivers that obey the small-cell rule, range totals, and missing exports."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from kpis.catalog import shipped_specs
from kpis.comparison import _facts_by_segment, findings
from kpis.errors import ClinicKpisError
from kpis.periods import add_months
from tests.kpis.builder import P1, P2, Fixture


def card_row(card, kpi_id: str):
    return card.set_index("kpi_id").loc[kpi_id]


def visits(fx: Fixture) -> None:
    """EAST (Dr. Ada Park, P1): 40 visits a month, 12 no-shows. WEST (Dr. Ben Ito, P2): 8 visits,
    no no-show in September, all 8 missed in October. The practice goes from 12/48 (25.0%) to
    20/48 (41.7%): all of the move comes from a cell of 8 visits. Calls: 110 a month, 11 abandoned
    (10.0%). A little ledger at EAST; no claims at all. October is complete (records to the 31st)."""
    fx.add("locations", {"location_id": "EAST", "name": "Eastside"}, {"location_id": "WEST", "name": "Westside"})
    fx.add("providers", {"provider_id": P1, "name": "Dr. Ada Park"}, {"provider_id": P2, "name": "Dr. Ben Ito"})
    rows, calls = [], []
    for month, west_missed in (("2026-09", 0), ("2026-10", 8)):
        for i in range(40):
            day = 31 if month == "2026-10" and i == 39 else 1 + i % 28
            rows.append({"scheduled_start": f"{month}-{day:02d} 09:00", "status": "noshow" if i < 12 else "fulfilled"})
        for i in range(8):
            rows.append(
                {
                    "scheduled_start": f"{month}-{2 + i:02d} 10:00",
                    "status": "noshow" if i < west_missed else "fulfilled",
                    "location_id": "WEST",
                    "provider_id": P2,
                }
            )
        for i in range(110):
            day = 30 if i == 109 else 1 + i % 28
            lost = i < 11
            calls.append(
                {
                    "entered_at": f"{month}-{day:02d} 11:00",
                    "outcome": "abandoned" if lost else "answered",
                    "wait_seconds": 40 if lost else 5,
                }
            )
    fx.add("appointments", *rows)
    fx.add("calls", *calls)
    fx.add("ledger", {"claim_id": "A", "entry_type": "charge", "posted_date": "2026-10-01", "amount": 100})


def test_a_move_driven_by_a_small_cell_names_no_driver(fx: Fixture) -> None:
    """Issue 19, item 5: the 8 visits of WEST (and of its only provider) are withheld, so no word
    may name them as the driver, nor give their part of the move (which would give the count back)."""
    visits(fx)
    card = fx.wh.scorecard("2026-10")
    no_show = card_row(card, "no_show_rate")
    assert no_show["value"] == pytest.approx(20 / 48) and no_show["change_previous"] == pytest.approx(8 / 48)
    move = next(m for m in fx.wh.movers("2026-10") if m.kpi_id == "no_show_rate")
    assert move.drivers == () and move.dimension == ""
    assert move.note == "No single location or provider stands out."  # appointments here record no payer
    assert "West" not in move.note and "Ben" not in move.note
    west = fx.wh.scorecard("2026-10", filters={"location": "Westside"})
    assert card_row(west, "no_show_rate")["state"] == "small" and card_row(west, "no_show_rate")["value"] is None


def test_a_rate_whose_numerator_counts_under_eleven_is_withheld(fx: Fixture) -> None:
    """September at WEST: 0 no-shows of 8 (n small); the practice's own rates have 12 and 20 no-shows."""
    visits(fx)
    trend = fx.wh.trend("no_show_rate", "2026-10", months=2, filters={"location": "EAST"})
    assert trend["state"].tolist() == ["final", "final"]
    fx.add("appointments", *({"scheduled_start": "2026-10-03 12:00", "location_id": "WEST"} for _ in range(10)))
    west = fx.wh.trend("no_show_rate", "2026-10", months=2, filters={"location": "WEST"})
    # October at WEST: 8 no-shows of 18 visits: over 11 records, but 8 is a small count
    assert west["n"].tolist() == [8, 18] and west["state"].tolist() == ["small", "small"]
    assert west["shown"].isna().all()


def test_findings_are_ordered_by_how_far_off_target(fx: Fixture) -> None:
    visits(fx)
    card = fx.wh.scorecard("2026-10")
    off = findings(card)
    assert off["kpi_id"].tolist()[:2] == ["no_show_rate", "call_abandonment_rate"]
    # in band widths: (41.7% - 7%) / 3 pts and (10% - 5%) / 3 pts
    assert off["gap"].tolist()[:2] == [pytest.approx((20 / 48 - 0.07) / 0.03), pytest.approx(0.05 / 0.03)]


def test_a_location_without_an_export_says_which_one_is_missing(fx: Fixture) -> None:
    visits(fx)
    missing = fx.wh.missing_sources(filters={"location": "Westside"}).set_index("kpi_id")
    assert missing.loc["denial_rate", "export"] == "remittances (X12 835)"  # a claim is judged on its 835
    assert missing.loc["charge_lag", "export"] == "claims (X12 837)"  # no claims anywhere
    assert missing.loc["net_collection_rate", "table"] == "ledger"  # the ledger has EAST rows only
    assert "no_show_rate" not in missing.index
    assert "net_collection_rate" not in fx.wh.missing_sources(filters={"location": "EAST"})["kpi_id"].tolist()
    card = fx.wh.scorecard("2026-10", filters={"location": "WEST"})
    assert card_row(card, "net_collection_rate")["state"] == "no_source"
    assert card_row(card, "net_collection_rate")["missing"].startswith("billing transactions")


def test_range_totals_are_ratios_of_sums_and_medians_refuse(fx: Fixture) -> None:
    visits(fx)
    total = fx.wh.totals("no_show_rate", "2026-09", "2026-10").iloc[0]
    assert (total["numerator"], total["denominator"], total["periods"]) == (32, 96, 2)
    assert total["value"] == pytest.approx(32 / 96) and total["complete"]
    by_site = fx.wh.totals("no_show_rate", "2026-09-01", "2026-10-31", by="location").set_index("location")
    assert by_site.loc["WEST", "value"] == pytest.approx(8 / 16)
    with pytest.raises(ClinicKpisError, match="visit_cycle_time does not add up over a range"):
        fx.wh.totals("visit_cycle_time", "2026-09", "2026-10")
    parts = fx.wh.parts("no_show_rate", "2026-10", "2026-10", by="location")
    assert parts["part"].sum() == pytest.approx(20 / 48)


def ledger_months(fx: Fixture, first: date, months: int) -> None:
    """Twelve charges of $100 and twelve payments a month, from `first` on; payments of $95,
    but $80 in the last month. Service and posting in the same month; entries to the month's end."""
    rows = []
    for k in range(months):
        month = add_months(first, k)
        paid = 80 if k == months - 1 else 95
        for i in range(12):
            day = f"{month:%Y-%m}-{(1 + i) if i < 11 else 28:02d}"
            claim = f"C{k}-{i}"
            rows.append(
                {"claim_id": claim, "entry_type": "charge", "posted_date": day, "service_date": day, "amount": 100}
            )
            rows.append(
                {"claim_id": claim, "entry_type": "payment", "posted_date": day, "service_date": day, "amount": paid}
            )
    fx.add("ledger", *rows)


@pytest.mark.parametrize("kpi", ["days_in_ar", "ar_over_90_pct", "net_collection_rate"])
def test_the_first_year_of_ledger_data_is_never_compared(fx: Fixture, kpi: str) -> None:
    """Ledger from January 2025 to February 2026. February 2026 rests on a covered year: it is a
    fact and is compared with January; the same month a year before (February 2025) is not
    covered: no "vs last year". June 2025 itself is early data: not a fact, shown only as such."""
    ledger_months(fx, date(2025, 1, 1), 14)
    card = card_row(fx.wh.scorecard("2026-02", kpis=[kpi]), kpi)
    assert card["state"] == "final" and card["value"] is not None
    assert card["previous_state"] == "final" and card["change_previous"] is not None
    assert card["year_state"] == "history" and card["change_year"] is None and card["effect_year"] is None
    early = card_row(fx.wh.scorecard("2025-06", kpis=[kpi]), kpi)
    assert early["state"] == "history" and early["value"] is None and early["change_previous"] is None
    assert early["asked_state"] == "history" and early["asked_value"] is not None
    # December 2025 is the first month with a whole year of ledger behind it (from January 1)
    trend = fx.wh.trend(kpi, "2026-02", months=14)
    assert trend["state"].tolist() == ["history"] * 11 + ["final"] * 3


def test_an_open_month_is_reported_as_its_latest_complete_month(fx: Fixture) -> None:
    """Referral completion waits 90 days: asked about October, it is reported for an earlier
    complete month, and October's own value is given apart, as not final."""
    referrals = []
    for month in ("2026-05", "2026-06", "2026-07", "2026-10"):
        for i in range(20):
            created = f"{month}-{1 + i:02d} 09:00"
            closed = f"{add_months(date.fromisoformat(month + '-01'), 1):%Y-%m}-{1 + i:02d} 09:00"
            referrals.append({"created_at": created, "report_received_at": closed if i < 15 else None})
    fx.add("referrals", *referrals)
    fx.add("referrals", {"created_at": "2026-10-30 09:00", "report_received_at": "2026-10-31 09:00"})
    card = card_row(fx.wh.scorecard("2026-10", kpis=["referral_completion_rate"]), "referral_completion_rate")
    assert card["asked_state"] == "open" and card["period_start"].date() == date(2026, 7, 1)
    assert card["value"] == pytest.approx(15 / 20) and card["state"] == "final"
    assert card["change_previous"] == pytest.approx(0.0) and card["effect_previous"] == "steady"
    assert card["asked_value"] is not None and card["wait_days"] == 90
    moves = fx.wh.movers("2026-10")
    assert all(m.kpi_id != "referral_completion_rate" for m in moves)  # a steady month is not a move


def test_findings_rank_by_what_a_gap_costs_where_known_then_by_gap(fx: Fixture) -> None:
    """No-show rate is further off target than abandonment, but a known cost ranks first; a cost for
    another month than the one reported does not count."""
    visits(fx)
    card = fx.wh.scorecard("2026-10")
    october, september = pd.Timestamp("2026-10-01"), pd.Timestamp("2026-09-01")

    def ranked(rows: list[tuple[str, pd.Timestamp, float | None]]) -> list[tuple[str, float | None]]:
        costs = pd.DataFrame(rows, columns=["kpi_id", "period_start", "money"])
        off = findings(card, costs)
        return [(k, None if pd.isna(m) else m) for k, m in zip(off["kpi_id"], off["money"], strict=True)][:2]

    assert ranked([("call_abandonment_rate", october, 120.0), ("no_show_rate", september, 5000.0)]) == [
        ("call_abandonment_rate", 120.0),
        ("no_show_rate", None),
    ]
    assert ranked([("call_abandonment_rate", october, 120.0), ("no_show_rate", october, 50.0)]) == [
        ("call_abandonment_rate", 120.0),
        ("no_show_rate", 50.0),
    ]
    assert ranked([("call_abandonment_rate", october, 120.0), ("no_show_rate", october, 500.0)]) == [
        ("no_show_rate", 500.0),
        ("call_abandonment_rate", 120.0),
    ]
    assert ranked([("call_abandonment_rate", october, None)]) == [
        ("no_show_rate", None),
        ("call_abandonment_rate", None),
    ]
    # the API's costs: no 835 (no visit value) and no booking queue, so nothing is priced: the order by gap
    priced = findings(card, fx.wh.friction_costs("2026-10"))
    assert priced["kpi_id"].tolist() == findings(card)["kpi_id"].tolist() and priced["money"].isna().all()


def test_friction_costs_withhold_a_value_that_rests_on_a_small_cell(fx: Fixture) -> None:
    visits(fx)
    west = fx.wh.friction_costs("2026-10", filters={"location": "Westside"}).set_index("kpi_id")
    row = west.loc["no_show_rate"]  # 8 no-shows of 8 visits
    assert row["note"] == "withheld: a count under 11 behind it (small-cell rule)"
    assert row["value"] is None and row["money"] is None and row["volume"] is None and row["excess"] is None
    east = fx.wh.friction_costs("2026-10", filters={"location": "EAST"}).set_index("kpi_id")
    assert east.loc["no_show_rate", "value"] == pytest.approx(12 / 40)


def test_a_periods_facts_by_segment_are_known_values_with_records_not_withheld() -> None:
    """The movers' segments that may be named: a segment, a known value, records (a missing n is not
    zero), and, where the scope withholds small cells, neither n nor a counted numerator under 11."""
    spec = shipped_specs()["no_show_rate"]  # a rate whose numerator counts visits
    segments = [None, "A", "B", "C", "D", "E", "F", "G"]
    values = np.array([0.5, np.nan, 0.2, 0.3, 0.4, 0.1, 0.0, 0.25])
    ns = np.array([40, 50, 0, np.nan, 5, 40, 40, 44])
    numerators = np.array([20, 2, 0, 3, 2, 4, 0, 11])
    shown = _facts_by_segment(segments, values, ns, numerators, spec, small_cells=False)
    assert shown == {"C": 0.3, "D": 0.4, "E": 0.1, "F": 0.0, "G": 0.25}
    assert list(shown) == ["C", "D", "E", "F", "G"]  # in the rows' order
    assert _facts_by_segment(segments, values, ns, numerators, spec, small_cells=True) == {"F": 0.0, "G": 0.25}


def test_an_export_that_ended_over_a_year_before_is_not_said_to_be_still_arriving(fx: Fixture) -> None:
    """Appointments and calls end in October 2026. Asked about December 2027, no month within the
    year before is complete and December holds nothing: no data, and since when, not "records may
    still arrive". Asked about December 2026, October is reported, as before."""
    visits(fx)
    late = card_row(fx.wh.scorecard("2027-12", kpis=["no_show_rate"]), "no_show_rate")
    assert late["state"] == "empty" and late["value"] is None and late["period_start"] is pd.NaT
    assert late["note"] == "No records after Oct 2026: nothing complete to report in the 12 months before Dec 2027."
    far = card_row(fx.wh.scorecard("2028-12", kpis=["no_show_rate"]), "no_show_rate")
    assert far["state"] == "empty" and far["note"] == "No records in the 24 months up to Dec 2028."
    soon = card_row(fx.wh.scorecard("2026-12", kpis=["no_show_rate"]), "no_show_rate")
    assert soon["asked_state"] == "open" and soon["state"] == "final"
    assert soon["period_start"].date() == date(2026, 10, 1)
    assert soon["note"] is None


def test_a_month_after_early_data_only_is_still_arriving_not_an_export_that_ended(fx: Fixture) -> None:
    """Ledger from January to June 2025: every month is early data (a year's look-back not covered),
    none complete. Asked about July, which holds nothing yet, net collection is not final (records
    may still arrive), as before: the ledger ended a month before, not over a year before."""
    ledger_months(fx, date(2025, 1, 1), 6)
    july = card_row(fx.wh.scorecard("2025-07", kpis=["net_collection_rate"]), "net_collection_rate")
    assert july["asked_state"] == "open" and july["state"] == "open"
    assert july["value"] is None and july["period_start"] is pd.NaT and july["note"] is None
    later = card_row(fx.wh.scorecard("2026-07", kpis=["net_collection_rate"]), "net_collection_rate")
    assert later["state"] == "empty"
    assert later["note"] == "No records after Jun 2025: nothing complete to report in the 12 months before Jul 2026."
