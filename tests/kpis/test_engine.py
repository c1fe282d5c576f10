"""The engine's contract: columns, grains, ranges, filling, groupings, options, targets, errors."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

from kpis.catalog import shipped_specs
from kpis.engine import status
from kpis.errors import ClinicKpisError, ConfigError
from tests.kpis.builder import P1, P2, Fixture
from tests.kpis.helpers import one

CONTRACT_COLUMNS = [
    "kpi_id",
    "period_start",
    "grain",
    "numerator",
    "denominator",
    "value",
    "n",
    "complete",
    "definition",
    "target",
    "status",
    "note",
]


def visits(fx: Fixture) -> None:
    """Five appointments; NORTH is a known location without any.

    2026-01-05 EAST P1 fulfilled     2026-01-20 EAST P1 no-show      -> January EAST 1/2
    2026-02-10 WEST P2 fulfilled                                      -> February WEST 0/1
    2026-10-02 WEST P2 no-show       2026-10-30 EAST P1 fulfilled     -> October 1/2
    """
    fx.add("locations", {"location_id": "EAST", "name": "Eastside"}, {"location_id": "NORTH", "name": "North"})
    fx.add(
        "appointments",
        {"scheduled_start": "2026-01-05 09:00", "status": "fulfilled"},
        {"scheduled_start": "2026-01-20 09:00", "status": "noshow"},
        {"scheduled_start": "2026-02-10 09:00", "status": "fulfilled", "location_id": "WEST", "provider_id": P2},
        {"scheduled_start": "2026-10-02 09:00", "status": "noshow", "location_id": "WEST", "provider_id": P2},
        {"scheduled_start": "2026-10-30 09:00", "status": "fulfilled"},
    )


def test_columns_and_types_follow_the_contract(fx: Fixture) -> None:
    visits(fx)
    frame = fx.wh.compute("no_show_rate", start="2026-01", end="2026-02", by="location")
    assert list(frame.columns) == CONTRACT_COLUMNS[:3] + ["location"] + CONTRACT_COLUMNS[3:]
    assert str(frame["period_start"].dtype).startswith("datetime64")
    assert frame["n"].dtype == "int64" and frame["complete"].dtype == bool
    assert frame["value"].dtype == "float64" and frame["grain"].unique().tolist() == ["month"]


def test_default_range_is_thirteen_months_ending_with_the_last_month_of_data(fx: Fixture) -> None:
    visits(fx)
    frame = fx.wh.compute("no_show_rate")
    months = frame["period_start"].dt.strftime("%Y-%m").tolist()
    assert months[0] == "2025-10" and months[-1] == "2026-10" and len(months) == 13
    assert one(frame, period_start="2026-10-01").value == 0.5


@pytest.mark.parametrize(
    ("grain", "start", "end", "starts"),
    [
        ("quarter", "2026-01", "2026-12", ["2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01"]),
        ("year", "2026", "2026", ["2026-01-01"]),
        ("week", "2026-01-01", "2026-01-20", ["2026-01-05", "2026-01-12", "2026-01-19"]),
        ("day", "2026-01-04", "2026-01-06", ["2026-01-04", "2026-01-05", "2026-01-06"]),
    ],
)
def test_grains(fx: Fixture, grain: str, start: str, end: str, starts: list[str]) -> None:
    visits(fx)
    frame = fx.wh.compute("no_show_rate", start=start, end=end, grain=grain)
    assert frame["period_start"].dt.strftime("%Y-%m-%d").tolist() == starts
    assert (frame["grain"] == grain).all()
    if grain == "quarter":
        assert frame["denominator"].tolist() == [3, 0, 0, 2]
    if grain == "week":  # the week of 01-19 holds the no-show of 01-20 and runs past the end bound
        assert frame["numerator"].tolist() == [0, 0, 1]


def test_every_known_dimension_value_is_present_in_every_period(fx: Fixture) -> None:
    """NORTH (in the locations table) never had an appointment; WEST only in some months."""
    visits(fx)
    frame = fx.wh.compute("no_show_rate", start="2026-01", end="2026-02", by="location")
    assert sorted(frame["location"].unique()) == ["EAST", "NORTH", "WEST"]
    assert len(frame) == 6
    north = frame[frame["location"] == "NORTH"]
    assert (north["n"] == 0).all() and north["value"].isna().all()
    assert one(frame, location="EAST", period_start="2026-01-01").value == 0.5


def test_filters_restrict_rows_and_groups(fx: Fixture) -> None:
    visits(fx)
    east = fx.wh.compute("no_show_rate", start="2026-01", end="2026-10", filters={"location": "EAST"})
    assert east["denominator"].sum() == 3
    by_location = fx.wh.compute(
        "no_show_rate", start="2026-01", end="2026-01", by="location", filters={"location": ["EAST", "WEST"]}
    )
    assert sorted(by_location["location"]) == ["EAST", "WEST"]


def test_several_groupings_in_one_request_match_separate_requests(fx: Fixture) -> None:
    visits(fx)
    kpis = ["no_show_rate", "late_cancel_rate"]
    together = fx.wh.compute_groupings(
        kpis, start="2026-01", end="2026-10", groupings=[(), ("location",), ("provider",)]
    )
    assert set(together["grouping_id"]) == {3, 1, 2}  # GROUPING(location, provider)
    for dims, gid in (((), 3), (("location",), 1), (("provider",), 2)):
        alone = fx.wh.compute(kpis, start="2026-01", end="2026-10", by=list(dims) or None)
        part = together[together["grouping_id"] == gid]
        key = ["kpi_id", "period_start", *dims]
        merged = alone.merge(part, on=key, suffixes=("", "_g"), validate="one_to_one")
        assert len(merged) == len(alone) == len(part)
        for column in ("numerator", "denominator", "n"):
            assert (merged[column] == merged[f"{column}_g"]).all()
        assert merged["value"].equals(merged["value_g"]) or ((merged["value"] - merged["value_g"]).abs().max() < 1e-12)


def test_kpis_none_picks_the_kpis_that_allow_the_breakdown(fx: Fixture) -> None:
    fx.add("calls", {"entered_at": "2026-10-01 09:00", "queue": "nurse"})
    frame = fx.wh.compute(start="2026-10", end="2026-10", by="queue")
    assert set(frame["kpi_id"]) == {"call_abandonment_rate", "average_speed_of_answer", "service_level"}


def test_options_from_config_then_from_the_call(tmp_path: Path) -> None:
    fx = Fixture(tmp_path, config_text='[kpi_options]\nno_show_rate = { late_cancel = "as_noshow" }\n')
    visits(fx)
    from_config = fx.wh.compute("no_show_rate", start="2026-01", end="2026-01")
    assert "late_cancel=as_noshow" in from_config["definition"].iloc[0]
    from_call = fx.wh.compute(
        "no_show_rate", start="2026-01", end="2026-01", options={"no_show_rate": {"late_cancel": "exclude"}}
    )
    assert "late_cancel=exclude" in from_call["definition"].iloc[0]
    fx.close()


def test_targets_from_config_and_status(tmp_path: Path) -> None:
    """no_show_rate target 0.30 / watch 0.45 / red 0.55: 0.5 is 'watch', 0 on target, 1 off target.
    slot_utilization (higher is better) gets a target from config: 0.75 with red 0.5."""
    text = "[targets]\nno_show_rate = { target = 0.30, watch = 0.45, red = 0.55 }\n"
    text += "slot_utilization = { target = 0.75, red = 0.5 }\n"
    fx = Fixture(tmp_path, config_text=text)
    visits(fx)
    frame = fx.wh.compute("no_show_rate", start="2026-01", end="2026-10", by="location")
    assert one(frame, location="EAST", period_start="2026-01-01").status == "watch"
    assert one(frame, location="WEST", period_start="2026-02-01").status == "on_target"
    assert one(frame, location="WEST", period_start="2026-10-01").status == "off_target"  # 1 of 1
    assert one(frame, location="NORTH", period_start="2026-01-01").status is None
    spec = {s.id: s for s in fx.wh.catalog()}["slot_utilization"]
    assert (spec.target, spec.watch, spec.red, spec.target_source) == (0.75, 0.75, 0.5, "practice config")
    fx.close()


@pytest.mark.parametrize(
    ("better", "values", "expected"),
    [
        # a negative value (A/R from payments without their charges) has no status, not "on target"
        (
            "lower",
            [0.05, 0.07, 0.08, 0.10, 0.11, float("nan"), -3.0],
            ["on", "on", "watch", "watch", "off", None, None],
        ),
        ("higher", [0.97, 0.95, 0.92, 0.90, 0.89], ["on", "on", "watch", "watch", "off"]),
    ],
)
def test_status_respects_the_better_direction(better: str, values: list, expected: list) -> None:
    base = shipped_specs()["no_show_rate"]
    bands = {"lower": (0.07, 0.07, 0.10), "higher": (0.95, 0.95, 0.90)}[better]
    spec = dataclasses.replace(base, better=better, target=bands[0], watch=bands[1], red=bands[2])
    names = {"on": "on_target", "off": "off_target", "watch": "watch", None: None}
    assert status(pd.Series(values), spec).tolist() == [names[e] for e in expected]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[targets]\nno_show_rat = { target = 0.1 }\n", r"\[targets\] names unknown KPI\(s\) no_show_rat"),
        ("[targets]\nno_show_rate = { target = 0.1, red = 0.05 }\n", r"target <= watch <= red"),
        ("[targets]\nno_show_rate = { goal = 0.1 }\n", r"no_show_rate: unknown key\(s\) goal"),
        (
            "[kpi_options]\ndays_in_ar = { preset = 'cms' }\n",
            r"days_in_ar.preset: 'cms' is not one of mgma, hfma, aafp",
        ),
        ("[kpi_options]\ndays_in_ar = { lookback = 30 }\n", r"days_in_ar has no option 'lookback'"),
    ],
)
def test_bad_targets_and_options_in_config_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    fx = Fixture(tmp_path, config_text=text)
    with pytest.raises(ClinicKpisError, match=message) as info:
        fx.wh.compute("no_show_rate", start="2026-01", end="2026-01")
    assert "clinic-kpis.toml" in str(info.value)
    if "targets" in text:
        assert isinstance(info.value, ConfigError)
    fx.close()


def test_incomplete_periods(fx: Fixture) -> None:
    """Appointment outcomes are known up to Friday 2026-10-30; October ends on Saturday the 31st,
    when the practice is closed (Mon-Fri by default), so October is complete. November is after
    the data; September is complete though empty. With the last visit on Thursday the 29th
    instead, October is incomplete."""
    visits(fx)
    frame = fx.wh.compute("no_show_rate", start="2026-09", end="2026-11")
    assert frame["complete"].tolist() == [True, True, False]
    fx.wh.cursor().execute("DELETE FROM appointments WHERE scheduled_start > TIMESTAMPTZ '2026-10-29 12:00:00+00'")
    fx.add("appointments", {"scheduled_start": "2026-10-29 09:00", "status": "fulfilled"})
    frame = fx.wh.compute("no_show_rate", start="2026-09", end="2026-11")
    assert frame["complete"].tolist() == [True, False, False]


def test_a_holiday_at_the_end_of_a_period_does_not_make_it_incomplete(tmp_path: Path) -> None:
    """Thursday 2026-12-31 declared a holiday: data through Wednesday the 30th complete December."""
    fx = Fixture(tmp_path, config_text='[business_hours]\nholidays = ["2026-12-31"]\n')
    fx.add("calls", {"entered_at": "2026-12-30 16:00"})
    frame = fx.wh.compute("call_abandonment_rate", start="2026-11", end="2026-12")
    assert frame["complete"].tolist() == [True, True]
    fx.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kpis": "no_shows"}, r"unknown KPI 'no_shows' \(did you mean no_show_rate\?\)"),
        ({"kpis": []}, r"no KPI requested"),
        ({"kpis": "no_show_rate", "by": "queue"}, r"no_show_rate cannot be broken down or filtered by queue"),
        ({"kpis": "no_show_rate", "by": "clinic"}, r"unknown dimension 'clinic'"),
        ({"kpis": "no_show_rate", "grain": "fortnight"}, r"unknown grain 'fortnight'"),
        ({"kpis": "no_show_rate", "start": "2026-13"}, r"start '2026-13' is not a date"),
        ({"kpis": "no_show_rate", "start": "2026-05", "end": "2026-04"}, r"ends \(2026-04-30\) before it starts"),
        ({"kpis": "no_show_rate", "filters": {"queue": "billing"}}, r"cannot be broken down or filtered by queue"),
        ({"kpis": "no_show_rate", "options": {"no_show_rate": {"late": "x"}}}, r"no_show_rate has no option 'late'"),
        ({"kpis": "no_show_rate", "options": {"no_show_rate": {"late_cancel_hours": "x"}}}, r"expected int, got 'x'"),
        ({"kpis": "no_show_rate", "options": {"no_show": {}}}, r"unknown KPI 'no_show'"),
    ],
)
def test_bad_requests_are_clear_errors(fx: Fixture, kwargs: dict, message: str) -> None:
    with pytest.raises(ClinicKpisError, match=message):
        fx.wh.compute(**kwargs)


def test_options_given_as_text_are_converted(fx: Fixture) -> None:
    """The CLI passes text; numbers and booleans are converted by the option's type."""
    visits(fx)
    frame = fx.wh.compute(
        "call_abandonment_rate",
        start="2026-01",
        end="2026-01",
        options={"call_abandonment_rate": {"short_abandon_seconds": "20", "timeouts_as_abandon": "false"}},
    )
    assert frame["definition"].iloc[0] == ("call_abandonment_rate[short_abandon_seconds=20,timeouts_as_abandon=false]")
    assert math.isnan(frame["value"].iloc[0])


def test_provider_breakdown_uses_the_npi(fx: Fixture) -> None:
    visits(fx)
    frame = fx.wh.compute("no_show_rate", start="2026-10", end="2026-10", by=["location", "provider"])
    assert set(zip(frame["location"], frame["provider"], strict=True)) == {("WEST", P2), ("EAST", P1)}
