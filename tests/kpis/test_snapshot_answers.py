"""What a published snapshot keeps between calls (the scorecard, every location's average payment)
and the shortcuts a filter change takes give the same answers as computing them afresh."""

from __future__ import annotations

from datetime import date

import pandas as pd

from kpis import costs
from kpis.api import SnapshotMemo
from kpis.scope import Scope
from kpis.sql_literals import sql_literal
from tests.conftest import SimulatedPractice

PAYMENTS = (
    "SELECT SUM(r.paid_amount), COUNT(DISTINCT r.claim_id) FILTER (WHERE r.status = 'paid') "
    "FROM remittances r LEFT JOIN (SELECT DISTINCT claim_id, location_id, provider_id FROM claims) c "
    "USING (claim_id) WHERE r.paid_date >= ? AND r.paid_date < ?"
)


def _statement(wh, month: date, where: str = "") -> float | None:
    """The average payment as the filtered statement computes it (the path before the snapshot kept it)."""
    end = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    start = date(end.year - 1, end.month, 1)
    paid, claims = wh.cursor().execute(PAYMENTS + where, [start, end]).fetchone()
    return None if not claims or paid is None else float(paid) / int(claims)


def test_a_snapshots_average_payment_equals_the_filtered_statement(simulated_practice: SimulatedPractice) -> None:
    with simulated_practice.open() as wh:
        assert wh.read_only
        locations = wh.dimension_values("location")["id"].tolist()
        providers = wh.dimension_values("provider")["id"].tolist()
        checked = 0
        for month in (date(2026, 9, 1), date(2026, 3, 1), date(2025, 8, 1)):
            assert costs.average_payment(wh, month, {}) == _statement(wh, month)
            for location in [*locations, "NOWHERE"]:
                where = f" AND c.location_id IN ({sql_literal(location)})"
                expected = _statement(wh, month, where)
                assert costs.average_payment(wh, month, {"location": location}) == expected
                assert costs.average_payment(wh, month, {"location": [location]}) == expected
                checked += expected is not None
            # two locations, or a provider: the filtered statement itself
            both = f" AND c.location_id IN ({', '.join(sql_literal(x) for x in locations[:2])})"
            assert costs.average_payment(wh, month, {"location": locations[:2]}) == _statement(wh, month, both)
            where = f" AND c.provider_id IN ({sql_literal(providers[0])})"
            assert costs.average_payment(wh, month, {"provider": providers[0]}) == _statement(wh, month, where)
        assert checked >= 2 * len(locations)  # real figures were compared, not only "no payment"
        assert costs.average_payment(wh, date(2020, 1, 1), {"location": locations[0]}) is None


def test_a_snapshot_keeps_its_scorecard_and_hands_out_copies(simulated_practice: SimulatedPractice) -> None:
    with simulated_practice.open() as wh:
        location = wh.dimension_values("location")["id"].iloc[0]
        for filters in (None, {"location": location}):
            fresh = wh._scorecard(wh._asked_month("2026-09"), wh.catalog(), filters, None)
            kept = wh.scorecard("2026-09", filters=filters)
            pd.testing.assert_frame_equal(kept, fresh)
            kept.loc[:, "value"] = -1.0  # a caller changing its copy changes nothing kept
            pd.testing.assert_frame_equal(wh.scorecard("2026-09", filters=filters), fresh)
        # the movers start from the kept card: the same moves as from a card computed afresh
        moves = wh.movers("2026-09", filters={"location": location})
        wh.__dict__["_snapshot_memo"].clear()
        assert wh.movers("2026-09", filters={"location": location}) == moves
        # a narrower scope does not see the wider one's card (its cells are withheld, its KPIs fewer)
        narrow = wh.narrowed(Scope.of_locations([location], small_cells=True))
        expected = narrow._scorecard(narrow._asked_month("2026-09"), narrow.catalog(), None, None)
        pd.testing.assert_frame_equal(narrow.scorecard("2026-09"), expected)


def test_trends_after_a_scorecard_are_its_rows(simulated_practice: SimulatedPractice) -> None:
    with simulated_practice.open() as wh:
        location = wh.dimension_values("location")["id"].iloc[0]
        # calls have no location: with a location filter they come in a group of their own, after the others
        asked = ["no_show_rate", "call_abandonment_rate", "days_in_ar", "visit_cycle_time"]
        for filters in (None, {"location": location}):
            wh.__dict__["_snapshot_memo"].clear()
            fresh = [wh.trend(asked, "2026-09", filters=filters), wh.trend(None, "2026-09", 25, filters=filters)]
            assert (
                wh._card_facts([wh._spec(k) for k in asked], date(2025, 9, 1), date(2026, 9, 1), filters, None) is None
            )
            wh.scorecard("2026-09", filters=filters)
            taken = wh._card_facts([wh._spec(k) for k in asked], date(2025, 9, 1), date(2026, 9, 1), filters, None)
            assert taken is not None  # the trends below are the kept rows, not a computation of their own
            pd.testing.assert_frame_equal(wh.trend(asked, "2026-09", filters=filters), fresh[0])
            pd.testing.assert_frame_equal(wh.trend(None, "2026-09", 25, filters=filters), fresh[1])
            assert fresh[0]["state"].eq("final").any() and set(fresh[0]["kpi_id"]) == set(asked)


def test_a_filtered_scorecard_takes_the_unfiltered_kpis_rows_from_the_practices(
    simulated_practice: SimulatedPractice,
) -> None:
    with simulated_practice.open() as wh:
        provider = wh.dimension_values("provider")["id"].iloc[0]
        wh.__dict__["_snapshot_memo"].clear()
        alone = wh.scorecard("2026-09", filters={"provider": provider})  # every group computed for itself
        alone_trend = wh.trend(None, "2026-08", filters={"provider": provider})
        wh.__dict__["_snapshot_memo"].clear()
        wh.scorecard("2026-09")  # the practice's: the phone KPIs' rows, which a provider filter leaves unfiltered
        asked = []
        real = type(wh).compute

        def counted(self, kpis, *args, **kwargs):
            asked.append([kpis] if isinstance(kpis, str) else list(kpis))
            return real(self, kpis, *args, **kwargs)

        type(wh).compute = counted
        try:
            taken = wh.scorecard("2026-09", filters={"provider": provider})
            card_asked = list(asked)
            taken_trend = wh.trend(None, "2026-08", filters={"provider": provider})
        finally:
            type(wh).compute = real
        pd.testing.assert_frame_equal(taken, alone)
        pd.testing.assert_frame_equal(taken_trend, alone_trend)
        phones = [s.id for s in wh.catalog() if "provider" not in s.dimensions]  # calls record no provider
        assert phones and len(card_asked) == 1 and not set(phones) & set(card_asked[0])  # the provider group only
        assert alone.set_index("kpi_id").loc[phones, "value"].notna().any()


def test_movers_from_kept_driver_rows_equal_movers_computed_alone(simulated_practice: SimulatedPractice) -> None:
    """The movers' rows by driver dimension are kept per KPI, filters and months: a payer or provider
    change takes the rows of the KPIs it cannot narrow from the practice's movers, and the moves and
    drivers are those computed afresh."""
    with simulated_practice.open() as wh:
        asked: list[list[str]] = []
        real = type(wh).compute_groupings

        def counted(self, kpis, *args, **kwargs):
            asked.append([kpis] if isinstance(kpis, str) else list(kpis))
            return real(self, kpis, *args, **kwargs)

        practice = wh.movers("2026-09")
        unfiltered = {m.kpi_id for m in practice if m.dimension}
        for dimension in ("payer", "provider"):
            for value in wh.dimension_values(dimension)["id"].iloc[:2]:
                filters = {dimension: (value,)}
                wh.__dict__["_snapshot_memo"].clear()
                alone = wh.movers("2026-09", filters=filters)
                wh.__dict__["_snapshot_memo"].clear()
                assert wh.movers("2026-09") == practice
                type(wh).compute_groupings = counted
                try:
                    asked.clear()
                    taken = wh.movers("2026-09", filters=filters)
                finally:
                    type(wh).compute_groupings = real
                assert taken == alone and any(m.drivers for m in taken)
                kept = {m.kpi_id for m in taken if dimension not in wh._spec(m.kpi_id).dimensions} & unfiltered
                assert not kept & {k for kpis in asked for k in kpis}  # not computed again
                if dimension == "payer":
                    assert kept  # the phones' and portal's KPIs record no payer


def test_friction_costs_after_a_scorecard_take_its_rows_and_equal_them_computed_alone(
    simulated_practice: SimulatedPractice,
) -> None:
    with simulated_practice.open() as wh:
        location, provider = (wh.dimension_values(d)["id"].iloc[0] for d in ("location", "provider"))
        payer = wh.dimension_values("payer")["id"].iloc[-1]
        asked = []
        real = type(wh).compute

        def counted(self, kpis, *args, **kwargs):
            asked.append([kpis] if isinstance(kpis, str) else list(kpis))
            return real(self, kpis, *args, **kwargs)

        for filters in (None, {"location": (location,)}, {"provider": (provider,)}, {"payer": (payer,)}):
            wh.__dict__["_snapshot_memo"].clear()
            alone = wh.friction_costs("2026-09", filters=filters)
            wh.scorecard("2026-09", filters=filters)
            asked.clear()
            type(wh).compute = counted
            try:
                taken = wh.friction_costs("2026-09", filters=filters)
            finally:
                type(wh).compute = real
            # the month's rows came from the scorecard's kept facts (the booking share asks its own)
            assert [kpis for kpis in asked if kpis != ["call_abandonment_rate"]] == []
            pd.testing.assert_frame_equal(taken, alone)
            assert alone["money"].notna().any() or filters


def test_a_snapshot_keeps_at_most_its_memos_size_the_least_recently_used_dropped(
    simulated_practice: SimulatedPractice,
) -> None:
    """A snapshot lives until the next load publishes: what it keeps per filter is bounded, the
    least recently used answer going first and computed again, the same, when asked."""
    memo = SnapshotMemo(size=3)
    for key in ("a", "b", "c"):
        memo.put((key,), key.upper())
    assert memo.get(("a",)) == "A"  # now the most recently used
    memo.put(("d",), "D")
    assert (memo.get(("b",)), len(memo)) == (None, 3)
    assert [memo.get((k,)) for k in "acd"] == ["A", "C", "D"]

    with simulated_practice.open() as wh:
        wh.__dict__["_snapshot_memo"] = SnapshotMemo(size=4)
        first = wh.movers("2026-09")
        for value in wh.dimension_values("provider")["id"]:
            wh.movers("2026-09", filters={"provider": (value,)})
        assert len(wh.__dict__["_snapshot_memo"]) == 4
        assert wh.movers("2026-09") == first  # dropped, computed again
