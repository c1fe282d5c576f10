"""explain (the records behind a value) and drivers (who moved the number, rate vs mix)."""

from __future__ import annotations

import pandas as pd
import pytest

from kpis.errors import ClinicKpisError
from tests.kpis.builder import P1, Fixture
from tests.kpis.helpers import one
from tests.kpis.test_access import schedule
from tests.kpis.test_revenue_cycle import ledger


def test_explain_lists_each_record_with_its_side_and_reason(fx: Fixture) -> None:
    """October of the access schedule: a2 is the no-show (numerator); a1, a3, a7 were kept
    (denominator only); the seven others are excluded because their status is not expected."""
    schedule(fx)
    frame = fx.wh.explain("no_show_rate", "2026-10")
    assert list(frame.columns[:6]) == ["record_id", "patient_key", "event_time", "side", "reason", "value"]
    sides = frame.groupby("side")["record_id"].apply(sorted).to_dict()
    assert sides["numerator"] == ["fhir:a2"]
    assert sides["denominator"] == ["fhir:a1", "fhir:a3", "fhir:a7"]
    assert len(sides["excluded"]) == 7
    excluded = frame[frame["side"] == "excluded"]
    assert excluded["reason"].str.contains("status IN ('fulfilled', 'arrived', 'noshow')", regex=False).all()
    assert frame.loc[frame["side"] != "excluded", "reason"].isna().all()
    assert str(frame["event_time"].iloc[0]) == "2026-10-05 09:00:00"  # local wall-clock time
    # the records add up to the computed value
    row = one(fx.wh.compute("no_show_rate", start="2026-10", end="2026-10"), period_start="2026-10-01")
    assert (row.numerator, row.denominator) == (1, 1 + 3)


def test_explain_follows_options_and_filters(fx: Fixture) -> None:
    schedule(fx)
    options = {"no_show_rate": {"late_cancel": "as_noshow"}}
    frame = fx.wh.explain("no_show_rate", "2026-10", options=options, filters={"location": "EAST"})
    assert sorted(frame.loc[frame["side"] == "numerator", "record_id"]) == ["fhir:a2", "fhir:a4"]
    fx.add("locations", {"location_id": "WEST", "name": "Westside"})  # known, with no appointments
    assert fx.wh.explain("no_show_rate", "2026-10", filters={"location": "WEST"}).empty
    assert len(fx.wh.explain("no_show_rate", "2026-10", filters={"location": "Westside"})) == 0


def test_an_unknown_filter_value_is_an_error_not_an_empty_result(fx: Fixture) -> None:
    """`location="Nope"` is a typo far more often than a wish for no rows: every method says so."""
    schedule(fx)
    fx.add("locations", {"location_id": "EAST", "name": "Northgate Clinic"})
    named = fx.wh.compute("no_show_rate", start="2026-10", end="2026-10", filters={"location": "northgate clinic"})
    by_id = fx.wh.compute("no_show_rate", start="2026-10", end="2026-10", filters={"location": "EAST"})
    assert named["numerator"].tolist() == by_id["numerator"].tolist() and by_id["n"].iloc[0] > 0
    message = r"no location 'Nope' in the warehouse; known: Northgate Clinic \(EAST\)"
    with pytest.raises(ClinicKpisError, match=message):
        fx.wh.explain("no_show_rate", "2026-10", filters={"location": "Nope"})
    with pytest.raises(ClinicKpisError, match=message):
        fx.wh.compute("no_show_rate", filters={"location": ["EAST", "Nope"]})
    with pytest.raises(ClinicKpisError, match=r"no location 'east' in the warehouse \(did you mean EAST\?\)"):
        fx.wh.drivers("no_show_rate", "2026-10", by="provider", filters={"location": "east"})


def test_explain_days_in_ar_shows_open_accounts_and_window_entries(fx: Fixture) -> None:
    """At 10-31: accounts A 100, B 100, E 350 make the A/R; the 365-day window holds the charges
    (1000, 500, 200, 300, 400) and the CO-45 adjustments (-300, -100) = 2000."""
    ledger(fx)
    frame = fx.wh.explain("days_in_ar", "2026-10")
    accounts = frame[frame["side"] == "numerator"].set_index("record_id")["value"].to_dict()
    assert accounts == {"A": 100, "B": 100, "E": 350}
    window = frame[frame["side"] == "denominator"]["value"]
    assert sorted(window.tolist()) == [-300, -100, 200, 300, 400, 500, 1000]
    assert window.sum() == 2000


def test_explain_credit_balances_are_excluded_when_the_preset_says_so(fx: Fixture) -> None:
    ledger(fx)
    frame = fx.wh.explain("days_in_ar", "2026-09", options={"days_in_ar": {"preset": "hfma"}})
    credit = one(frame, record_id="C")
    assert (credit.side, credit.value) == ("excluded", -50)
    assert "credit balance" in credit.reason


def drivers_fixture(fx: Fixture) -> None:
    """No-shows by location. September: EAST 1 of 4, WEST 2 of 4 (3/8 = 0.375).
    October: EAST 3 of 6, WEST 1 of 2, NORTH 0 of 2 (4/10 = 0.4); change +0.025.

    EAST  w 0.5 -> 0.6, r 0.25 -> 0.5: contribution 3/10 - 1/8 = 0.175,
          rate (0.5 - 0.25) x (0.5 + 0.6)/2 = 0.1375, mix 0.0375
    WEST  w 0.5 -> 0.2, r 0.5 -> 0.5: contribution 1/10 - 2/8 = -0.15, rate 0, mix -0.15
    NORTH new, rate 0: contribution 0 (its weight comes out of the others' weights)
    """
    rows = []
    for month, location, noshows, kept in (
        ("2026-09", "EAST", 1, 3),
        ("2026-09", "WEST", 2, 2),
        ("2026-10", "EAST", 3, 3),
        ("2026-10", "WEST", 1, 1),
        ("2026-10", "NORTH", 0, 2),
    ):
        for i in range(noshows + kept):
            status = "noshow" if i < noshows else "fulfilled"
            rows.append({"scheduled_start": f"{month}-{10 + i} 09:00", "status": status, "location_id": location})
    fx.add("appointments", *rows)


def test_drivers_split_the_change_into_rate_and_mix(fx: Fixture) -> None:
    drivers_fixture(fx)
    out = fx.wh.drivers("no_show_rate", "2026-10")
    assert list(out.columns) == [
        "segment",
        "value_before",
        "value_after",
        "weight_before",
        "weight_after",
        "rate_effect",
        "mix_effect",
        "contribution",
    ]
    assert out["segment"].tolist() == ["EAST", "WEST", "NORTH"]
    east, west, north = (out.iloc[i] for i in range(3))
    assert (east.contribution, east.rate_effect, east.mix_effect) == pytest.approx((0.175, 0.1375, 0.0375))
    assert (west.contribution, west.rate_effect, west.mix_effect) == pytest.approx((-0.15, 0.0, -0.15))
    assert north.contribution == 0 and north.weight_after == pytest.approx(0.2)
    assert out["contribution"].sum() == pytest.approx(0.4 - 0.375)
    assert out.attrs["value_before"] == pytest.approx(0.375) and out.attrs["value_after"] == pytest.approx(0.4)
    assert out.attrs["compare_to"] == "2026-09-01"


def test_drivers_against_an_explicit_period_and_for_medians(fx: Fixture) -> None:
    drivers_fixture(fx)
    out = fx.wh.drivers("no_show_rate", "2026-10", compare_to="2026-10")
    assert (out["contribution"] == 0).all()
    with pytest.raises(ClinicKpisError, match="visit_cycle_time is a median"):
        fx.wh.drivers("visit_cycle_time", "2026-10")


def test_drivers_honour_filters(fx: Fixture) -> None:
    """Within EAST only (filter), every appointment is provider P1's: EAST's own move, 0.25 -> 0.5,
    is all P1's; unfiltered, the practice moved 0.375 -> 0.4."""
    drivers_fixture(fx)
    out = fx.wh.drivers("no_show_rate", "2026-10", by="provider", filters={"location": "EAST"})
    assert out["segment"].tolist() == [P1]
    assert (out.attrs["value_before"], out.attrs["value_after"]) == pytest.approx((0.25, 0.5))
    assert out["contribution"].sum() == pytest.approx(0.25)
    practice = fx.wh.drivers("no_show_rate", "2026-10", by="provider")
    assert (practice.attrs["value_before"], practice.attrs["value_after"]) == pytest.approx((0.375, 0.4))


def test_drivers_by_several_dimensions_equal_one_call_per_dimension(fx: Fixture) -> None:
    """One grouped computation serves location and provider alike, with and without a filter."""
    drivers_fixture(fx)
    for filters in (None, {"location": "EAST"}):
        both = fx.wh.drivers_by("no_show_rate", "2026-10", ["location", "provider"], filters=filters)
        assert list(both) == ["location", "provider"]
        for dim, split in both.items():
            alone = fx.wh.drivers("no_show_rate", "2026-10", by=dim, filters=filters)
            pd.testing.assert_frame_equal(split.reset_index(drop=True), alone.reset_index(drop=True))
            assert split.attrs == alone.attrs and split.attrs["by"] == dim
    assert both["provider"]["segment"].tolist() == [P1]


def test_contributions_from_plain_columns_equal_decompose_bit_for_bit() -> None:
    """The movers' split (`contributions`, from arrays) gives each segment decompose's contribution, the
    same float: segments in one period only, a zero denominator, a missing numerator and a missing
    segment (None, one segment in both periods), over enough segments that a float sum's order matters."""
    import numpy as np

    from kpis.drivers import _columns, contributions, decompose

    rng = np.random.default_rng(3)
    ids = [f"P{i}" for i in range(300)]
    before = pd.DataFrame({"provider": pd.Series([None, *ids[:250]], dtype=object)})
    before["numerator"], before["denominator"] = rng.random(251) * 40, rng.random(251) * 90
    after = pd.DataFrame({"provider": pd.Series([*ids[100:][::-1], None], dtype=object)})
    after["numerator"], after["denominator"] = rng.random(201) * 40, rng.random(201) * 90
    before.loc[5, "denominator"], after.loc[7, "numerator"] = 0.0, np.nan
    split = decompose(before, after, "provider")
    found = contributions(_columns(before, "provider"), _columns(after, "provider"))
    expected = {s: c for s, c in zip(split["segment"], split["contribution"], strict=True) if isinstance(s, str)}
    assert len(found) == 301  # the missing segment of both periods is one segment
    assert sum(found.values()) == pytest.approx(split.attrs["change"])
    found.pop(None)
    assert found == expected  # exactly equal floats, every named segment
