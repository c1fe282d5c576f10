"""The report's numbers and words against the KPI API and the hand-known answers of the fixture."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from kpis import Warehouse
from kpis.scope import Scope
from reports.build import prepare
from reports.context import ReportContext, build_context, parse_month, resolve_scope
from reports.errors import ReportError
from reports.narrative import summarize
from reports.render import render_html
from tests.kpis.builder import Fixture
from tests.reports.conftest import Practice
from tests.reports.practice import MONTH, PRACTICE_NAME


def summarized(ctx: ReportContext) -> ReportContext:
    return dataclasses.replace(ctx, summary=summarize(ctx))


def row(ctx: ReportContext, kpi_id: str):
    return next(r for r in ctx.rows if r.id == kpi_id)


def test_rows_equal_the_kpi_api_for_the_month(practice_ctx: ReportContext, wh: Warehouse) -> None:
    api = wh.compute(start="2025-09", end="2026-10")
    api["period"] = api["period_start"].dt.date
    checked = 0
    for r in practice_ctx.rows:
        if r.period is None:
            continue
        frame = api[api["kpi_id"] == r.id].set_index("period")
        expected = frame.loc[r.period, "value"]
        if math.isnan(expected) or r.state != "final":
            assert r.value is None, r.id
            continue
        assert r.value == pytest.approx(expected), r.id
        assert r.status == frame.loc[r.period, "status"], r.id
        checked += 1
    assert checked >= 5  # no-show, late cancellation, abandonment, speed of answer, service level
    no_show = row(practice_ctx, "no_show_rate")
    assert no_show.value == pytest.approx(49 / 245)
    assert no_show.previous == pytest.approx(25 / 245)
    assert no_show.change_month == pytest.approx(24 / 245)
    assert no_show.change_year == pytest.approx(24 / 245)
    assert (no_show.month_effect, no_show.status) == ("worse", "off_target")
    abandonment = row(practice_ctx, "call_abandonment_rate")
    assert abandonment.value == pytest.approx(0.0)
    assert abandonment.change_month == pytest.approx(-12 / 120)
    assert (abandonment.month_effect, abandonment.status) == ("better", "on_target")


def test_drivers_name_the_segment_that_moved_the_kpi(practice_ctx: ReportContext) -> None:
    movers = {m.kpi_id: m for m in practice_ctx.movers}
    no_show = movers["no_show_rate"]
    assert no_show.dimension == "location"
    assert [d.label for d in no_show.drivers] == ["Eastside"]  # the other sites did not move
    assert no_show.driver.contribution == pytest.approx(24 / 245)
    assert (no_show.driver.value_before, no_show.driver.value_after) == (pytest.approx(0.1), pytest.approx(0.3))
    abandonment = movers["call_abandonment_rate"]
    assert [d.label for d in abandonment.drivers] == ["Westside"]
    assert abandonment.driver.contribution == pytest.approx(-12 / 120)
    # one scale: a move over the target-to-red band (3 points for both), the larger first; service
    # level has no band: its scale is its own variation, at least a tenth of its level
    assert [m.kpi_id for m in practice_ctx.movers] == ["call_abandonment_rate", "no_show_rate", "service_level"]
    assert no_show.move == pytest.approx((24 / 245) / 0.03) and abandonment.scale_basis == "band"
    assert movers["service_level"].scale_basis == "variation"


def test_summary_leads_with_what_is_off_target_then_moves_with_their_driver(practice_ctx: ReportContext) -> None:
    summary = practice_ctx.summary
    assert 3 <= len(summary) <= 5
    assert (
        summary[0] == f"In October 2026, 1 of 2 headline measures were on target and 1 off target for {PRACTICE_NAME}."
    )
    assert summary[1] == "Off target: No-show rate (20.0% against a target of 7.0%)."  # one: no order to say
    assert summary[2:] == (
        "Call abandonment rate fell to 0.0%, down 10.0 points from September, driven by Westside "
        "(10.0 of the 10.0 points).",
        "No-show rate rose to 20.0%, up 9.8 points from September, driven by Eastside (9.8 of the 9.8 points).",
        "Service level rose to 100.0%, up 10.0 points from September, driven by Westside (10.0 of the 10.0 points).",
    )


def test_location_report_filters_every_number_and_withholds_small_ones(wh: Warehouse) -> None:
    east = build_context(wh, MONTH, resolve_scope(wh, "EAST"))
    assert east.scope.label == "Eastside (EAST)" and east.scope.filters == {"location": "EAST"}
    assert row(east, "no_show_rate").value == pytest.approx(0.3)
    assert row(east, "no_show_rate").change_month == pytest.approx(0.2)
    mover = next(m for m in east.movers if m.kpi_id == "no_show_rate")
    # one provider works at EAST: a split by provider would "explain" any move, so none is named
    assert mover.driver is None and mover.note == "One provider only in this view: nothing to split it by."
    assert resolve_scope(wh, "Eastside") == east.scope  # a location by its name, as everywhere
    north = build_context(wh, MONTH, resolve_scope(wh, "NORTH"))
    small = row(north, "no_show_rate")
    assert small.suppressed and small.value is None and small.status is None and small.change_month is None
    trend = next(t for t in north.trends if t.row.id == "no_show_rate")
    assert all(v is None for v in trend.values)
    assert not any(m.kpi_id == "no_show_rate" for m in north.movers)


def test_a_location_report_reads_through_that_locations_scope(practice: Practice) -> None:
    """A report leaves the building: small cells withheld even when built from a wider scope."""
    with Warehouse.open(practice.db, config=practice.config, scope=Scope(small_cells=False)) as owner:
        seen = owner.compute("no_show_rate", MONTH, MONTH, filters={"location": "NORTH"})
        assert seen["value"].tolist() == [pytest.approx(0.2)]  # the owner sees NORTH's 1 of 5
        north = prepare(owner, MONTH, "NORTH")
        practice_wide = prepare(owner, MONTH, None)
    assert row(north, "no_show_rate").suppressed and row(north, "no_show_rate").value is None
    assert north.files_loaded == practice_wide.files_loaded == 1  # the load history is the practice's
    east = Warehouse.open(practice.db, config=practice.config, scope=Scope.of_locations(["EAST"]))
    with east, pytest.raises(ReportError, match="no location 'NORTH' in the locations you may see"):
        prepare(east, MONTH, "NORTH")


def test_small_counts_become_less_than_eleven(practice_ctx: ReportContext) -> None:
    coverage = {c.table: c for c in practice_ctx.coverage}
    assert coverage["portal_messages"].rows_in_month == "<11"
    assert coverage["appointments"].rows_in_month == 245
    assert coverage["calls"].rows_in_month == 120
    assert practice_ctx.quarantined == "<11"
    assert [(q.file, q.records) for q in practice_ctx.quarantined_files] == [("fhir/Appointment.ndjson", "<11")]
    assert practice_ctx.files_loaded == 1


def test_scope_and_month_errors_are_clear(wh: Warehouse) -> None:
    known = r"known: Eastside \(EAST\), Northside \(NORTH\), Westside \(WEST\)"
    with pytest.raises(ReportError, match=rf"--location: no location 'SOUTH' in the warehouse; {known}"):
        resolve_scope(wh, "SOUTH")
    with pytest.raises(ReportError, match=r"no data for 2027-01: the warehouse covers 2025-10 to 2026-10"):
        build_context(wh, parse_month("2027-01"), resolve_scope(wh, None))
    with pytest.raises(ReportError, match="--month must be a month like 2026-10, got '10/2026'"):
        parse_month("10/2026")


def test_calls_without_a_location_are_split_by_queue(tmp_path: Path) -> None:
    """The phone system does not record locations: the driver of a phone KPI is then a queue."""
    fx = Fixture(tmp_path)
    fx.add("locations", {"location_id": "EAST", "name": "Eastside"}, {"location_id": "WEST", "name": "Westside"})
    calls = []
    for month, lost, last_day in (("2026-09", 11, 30), ("2026-10", 33, 31)):
        for queue in ("billing", "nurse"):
            for i in range(60):
                gone = queue == "billing" and i < lost or queue == "nurse" and i < 11
                calls.append(
                    {
                        "location_id": None,
                        "queue": queue,
                        "entered_at": f"{month}-{1 + i % 28 if i < 59 else last_day:02d} 10:00",
                        "outcome": "abandoned" if gone else "answered",
                        "wait_seconds": 60 if gone else 5,
                    }
                )
    fx.add("calls", *calls)
    ctx = summarized(build_context(fx.wh, MONTH, resolve_scope(fx.wh, None)))
    mover = next(m for m in ctx.movers if m.kpi_id == "call_abandonment_rate")
    assert mover.dimension == "queue" and [d.label for d in mover.drivers] == ["billing"]
    assert mover.driver.contribution == pytest.approx(22 / 120)
    assert any("driven by the billing queue (18.3 of the 18.3 points)" in s for s in ctx.summary)
    fx.close()


def test_a_month_the_data_do_not_cover_to_its_end_is_flagged(tmp_path: Path) -> None:
    fx = Fixture(tmp_path)
    fx.add("appointments", *({"scheduled_start": f"2026-10-{d:02d} 09:00"} for d in range(1, 16)))
    ctx = summarized(build_context(fx.wh, MONTH, resolve_scope(fx.wh, None)))
    assert ctx.partial_month and ctx.data_end.isoformat() == "2026-10-15"
    no_show = row(ctx, "no_show_rate")
    # October is open and no earlier month has data: no value as a fact, the month's value only "so far"
    assert no_show.value is None and no_show.period is None and no_show.state == "open"
    assert no_show.asked_value == 0.0
    html = render_html(ctx, {t.row.id: "data:," for t in ctx.trends})
    assert "The data reach only to 2026-10-15, before the end of October 2026" in html
    assert "Oct 2026 so far: 0.0%, not final: records may still arrive" in html
    fx.close()


def test_a_value_the_data_cannot_give_says_why(tmp_path: Path) -> None:
    """October's cancellations carry no initiator: its late-cancellation rate is unknown, and the
    report says why next to the missing value instead of showing 0%."""
    fx = Fixture(tmp_path)
    fx.add("appointments", *({"scheduled_start": f"2026-10-{d:02d} 09:00"} for d in range(1, 31)))
    fx.add(
        "appointments",
        *({"scheduled_start": f"2026-10-{d:02d} 10:00", "status": "cancelled"} for d in range(1, 31)),
    )
    ctx = summarized(build_context(fx.wh, MONTH, resolve_scope(fx.wh, None)))
    late = row(ctx, "late_cancel_rate")
    assert late.value is None and late.status is None
    assert late.note.startswith("Unknown: 30 cancellation(s) without the initiator or the time in the export")
    html = render_html(ctx, {t.row.id: "data:," for t in ctx.trends})
    assert '<span class="note kpi-note">Unknown: 30 cancellation(s)' in html
    fx.close()
