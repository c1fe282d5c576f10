"""Access KPIs on hand-computed fixtures: no-show and late-cancel variants, utilization, TNA."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ingest import ingest_paths
from kpis import Warehouse
from kpis.serving.refresh import refresh
from tests.kpis.builder import P1, P2, Fixture
from tests.kpis.helpers import one


def schedule(fx: Fixture) -> None:
    """October 2026 at EAST, provider P1; September holds only a timely cancellation.

    a1 fulfilled, a2 no-show, a3 arrived               -> kept or no-show
    a4 patient cancels 2 h before                      -> late cancellation
    a5 patient cancels 8 days before                   -> timely cancellation
    a6 patient cancels 6 h before, rebooked as a7      -> a reschedule, never late; a7 fulfilled
    a8 provider cancels                                -> never the patient's fault
    a9 entered in error                                -> never counted
    a10 still booked (unresolved)
    a11 patient cancels 30 h before                    -> late only with a 48 h window
    s1 (September) patient cancels 5 days before       -> September has no expected visits
    """
    fx.add(
        "appointments",
        {"appointment_id": "a1", "scheduled_start": "2026-10-05 09:00", "status": "fulfilled"},
        {"appointment_id": "a2", "scheduled_start": "2026-10-06 09:00", "status": "noshow"},
        {"appointment_id": "a3", "scheduled_start": "2026-10-07 09:00", "status": "arrived"},
        {
            "appointment_id": "a4",
            "scheduled_start": "2026-10-08 10:00",
            "status": "cancelled",
            "cancel_initiator": "patient",
            "cancelled_at": "2026-10-08 08:00",
        },
        {
            "appointment_id": "a5",
            "scheduled_start": "2026-10-09 10:00",
            "status": "cancelled",
            "cancel_initiator": "patient",
            "cancelled_at": "2026-10-01 10:00",
        },
        {
            "appointment_id": "a6",
            "scheduled_start": "2026-10-12 15:00",
            "status": "cancelled",
            "cancel_initiator": "patient",
            "cancelled_at": "2026-10-12 09:00",
        },
        {
            "appointment_id": "a7",
            "scheduled_start": "2026-10-20 10:00",
            "status": "fulfilled",
            "rebooked_from_id": "a6",
        },
        {
            "appointment_id": "a8",
            "scheduled_start": "2026-10-13 09:00",
            "status": "cancelled",
            "cancel_initiator": "provider",
            "cancelled_at": "2026-10-13 08:00",
        },
        {"appointment_id": "a9", "scheduled_start": "2026-10-14 09:00", "status": "entered_in_error"},
        {"appointment_id": "a10", "scheduled_start": "2026-10-30 09:00", "status": "booked"},
        {
            "appointment_id": "a11",
            "scheduled_start": "2026-10-15 10:00",
            "status": "cancelled",
            "cancel_initiator": "patient",
            "cancelled_at": "2026-10-14 04:00",
        },
        {
            "appointment_id": "s1",
            "scheduled_start": "2026-09-15 10:00",
            "status": "cancelled",
            "cancel_initiator": "patient",
            "cancelled_at": "2026-09-10 10:00",
        },
    )


@pytest.mark.parametrize(
    ("options", "numerator", "denominator"),
    [
        ({}, 1, 4),  # no-show a2 / kept a1 a3 a7 + a2
        ({"late_cancel": "as_noshow"}, 2, 5),  # + late cancel a4 on both sides
        ({"late_cancel": "exclude"}, 1, 4),  # expected denominator never holds cancellations
        ({"denominator": "scheduled"}, 1, 8),  # all but a6 (reschedule), a8 (provider), a9 (error)
        ({"denominator": "scheduled", "late_cancel": "exclude"}, 1, 7),  # ... and without a4
        ({"denominator": "scheduled", "late_cancel": "as_noshow"}, 2, 8),  # a4 also a no-show
        ({"late_cancel": "as_noshow", "late_cancel_hours": 48}, 3, 6),  # a11 (30 h) becomes late too
    ],
)
def test_no_show_rate_variants(fx: Fixture, options: dict, numerator: int, denominator: int) -> None:
    schedule(fx)
    frame = fx.wh.compute("no_show_rate", start="2026-09", end="2026-11", options={"no_show_rate": options})
    october = one(frame, period_start="2026-10-01")
    assert (october.numerator, october.denominator, october.n) == (numerator, denominator, denominator)
    assert october.value == pytest.approx(numerator / denominator, abs=1e-12)
    label = october.definition
    assert label.startswith("no_show_rate[") and all(f"{k}={v}" in label for k, v in options.items())


def test_no_show_rate_zero_denominator_and_empty_period(fx: Fixture) -> None:
    """September has one appointment but nothing expected (0 / 0); November has no data at all.

    Both periods are present with n = 0 and a NaN value (never 0%).
    """
    schedule(fx)
    frame = fx.wh.compute("no_show_rate", start="2026-09", end="2026-11")
    assert frame["period_start"].dt.strftime("%Y-%m").tolist() == ["2026-09", "2026-10", "2026-11"]
    for month in ("2026-09-01", "2026-11-01"):
        row = one(frame, period_start=month)
        assert row.n == 0 and row.numerator == 0 and row.denominator == 0 and math.isnan(row.value)
        assert row.status is None


@pytest.mark.parametrize(("hours", "late"), [(24, 1), (48, 2)])
def test_late_cancel_rate_ignores_reschedules(fx: Fixture, hours: int, late: int) -> None:
    """Late: a4 (2 h); with 48 h also a11 (30 h). a6 was cancelled 6 h before but rebooked as a7.

    Denominator: the 10 October appointments except a9 (entered in error) = 10.
    """
    schedule(fx)
    frame = fx.wh.compute(
        "late_cancel_rate", start="2026-10", end="2026-10", options={"late_cancel_rate": {"late_cancel_hours": hours}}
    )
    row = one(frame, period_start="2026-10-01")
    assert (row.numerator, row.denominator) == (late, 10)
    assert row.value == pytest.approx(late / 10)


def test_slot_utilization(fx: Fixture) -> None:
    """P1 on Monday 2026-10-05: four open 20-minute slots 09:00-10:20 and a blocked one at 10:20.

    09:00 booked by a fulfilled visit (09:00-09:20, which ends exactly as 09:20 starts);
    09:20 only by a cancelled visit (and by P2, another provider) -> open;
    09:40 and 10:00 both overlapped by a 30-minute no-show at 09:40 (no-shows still hold a slot);
    10:20 is blocked -> out of both sides even though a visit overlaps it.
    Booked minutes 60 of 80 -> 0.75, n = 4 open slots.
    """
    fx.add(
        "slots",
        {"start_at": "2026-10-05 09:00"},
        {"start_at": "2026-10-05 09:20"},
        {"start_at": "2026-10-05 09:40"},
        {"start_at": "2026-10-05 10:00"},
        {"start_at": "2026-10-05 10:20", "status": "blocked"},
    )
    fx.add(
        "appointments",
        {"scheduled_start": "2026-10-05 09:00", "status": "fulfilled"},
        {"scheduled_start": "2026-10-05 09:20", "status": "cancelled", "cancel_initiator": "patient"},
        {"scheduled_start": "2026-10-05 09:20", "status": "fulfilled", "provider_id": P2},
        {"scheduled_start": "2026-10-05 09:40", "scheduled_minutes": 30, "status": "noshow"},
        {"scheduled_start": "2026-10-05 10:20", "status": "fulfilled"},
    )
    row = one(fx.wh.compute("slot_utilization", start="2026-10", end="2026-10"), period_start="2026-10-01")
    assert (row.numerator, row.denominator, row.n) == (60, 80, 4)
    assert row.value == pytest.approx(0.75)


def tna_schedule(fx: Fixture) -> None:
    """Slots and bookings around the Monday snapshots 2026-10-05 and 2026-10-12 (08:00 local).

    Snapshot 10-05, provider P1, open slots after 08:00 in order:
      07:00 10-05  before the snapshot
      09:00 10-05  booked 09-30, never cancelled      -> taken
      10:00 10-05  booked only at 09:00 that day       -> open #1
      09:00 10-06  booked 09-20, cancelled 10-02       -> open #2
      09:00 10-07  blocked                             -> never offered
      09:00 10-08  booked 09-20, cancelled 10-06       -> still taken at the snapshot
      09:00 10-09  free                                -> open #3: 4 calendar days (4 business days)
    Snapshot 10-12: open 10-12, 10-13, 10-19 -> 7 calendar days (5 business days).
    P2 has two slots only: no third slot, so no value. Later Mondays come after the last booking
    (10-12 12:00) and are not taken. October: (4 + 7) / 2 = 5.5 with n = 2.
    """
    slots = [
        "2026-10-05 07:00",
        "2026-10-05 09:00",
        "2026-10-05 10:00",
        "2026-10-06 09:00",
        "2026-10-08 09:00",
        "2026-10-09 09:00",
        "2026-10-12 09:00",
        "2026-10-13 09:00",
        "2026-10-19 09:00",
    ]
    fx.add("slots", *({"start_at": s} for s in slots))
    fx.add("slots", {"start_at": "2026-10-07 09:00", "status": "blocked"})
    fx.add(
        "slots",
        {"start_at": "2026-10-06 09:00", "provider_id": P2},
        {"start_at": "2026-10-06 09:20", "provider_id": P2},
    )
    fx.add(
        "appointments",
        {"scheduled_start": "2026-10-05 09:00", "booked_at": "2026-09-30 12:00"},
        {"scheduled_start": "2026-10-05 10:00", "booked_at": "2026-10-05 09:00"},
        {
            "scheduled_start": "2026-10-06 09:00",
            "booked_at": "2026-09-20 12:00",
            "status": "cancelled",
            "cancelled_at": "2026-10-02 12:00",
        },
        {
            "scheduled_start": "2026-10-08 09:00",
            "booked_at": "2026-09-20 12:00",
            "status": "cancelled",
            "cancelled_at": "2026-10-06 12:00",
        },
        {"scheduled_start": "2026-11-30 09:00", "booked_at": "2026-10-12 12:00", "provider_id": P2},
    )


@pytest.mark.parametrize(("days", "first", "second"), [("calendar", 4, 7), ("business", 4, 5)])
def test_third_next_available(fx: Fixture, days: str, first: int, second: int) -> None:
    tna_schedule(fx)
    options = {"third_next_available": {"days": days}}
    month = fx.wh.compute("third_next_available", start="2026-10", end="2026-10", options=options)
    row = one(month, period_start="2026-10-01")
    assert (row.numerator, row.denominator, row.n) == (first + second, 2, 2)
    assert row.value == pytest.approx((first + second) / 2)
    weeks = fx.wh.compute(
        "third_next_available", start="2026-10-05", end="2026-10-12", grain="week", by="provider", options=options
    )
    assert one(weeks, period_start="2026-10-05", provider=P1).value == first
    assert one(weeks, period_start="2026-10-12", provider=P1).value == second
    assert one(weeks, period_start="2026-10-05", provider=P2).n == 0


def test_third_next_available_at_the_snapshot_instant(fx: Fixture) -> None:
    """What happens exactly at Monday 08:00 is already known then; a microsecond later is not.

    Snapshot 10-05 08:00: the slot starting at 08:00 is past; the 08:30 slot booked at 08:00 is
    taken; the 09:00 slot's booking cancelled at 08:00 has freed it (open #1); the 10-06 slot
    booked a microsecond after the snapshot is open (#2); the 10-08 slot is open #3: 3 days.
    """
    fx.add(
        "slots",
        *({"start_at": s} for s in ("2026-10-05 08:00", "2026-10-05 08:30", "2026-10-05 09:00", "2026-10-06 09:00")),
        {"start_at": "2026-10-08 09:00"},
        {"start_at": "2026-10-09 09:00"},
    )
    fx.add(
        "appointments",
        {"scheduled_start": "2026-10-05 08:30", "booked_at": "2026-10-05 08:00"},
        {
            "scheduled_start": "2026-10-05 09:00",
            "booked_at": "2026-09-28 12:00",
            "status": "cancelled",
            "cancelled_at": "2026-10-05 08:00",
        },
        {"scheduled_start": "2026-10-06 09:00", "booked_at": "2026-10-05 08:00:00.000001"},
    )
    frame = fx.wh.explain("third_next_available", "2026-10")
    assert len(frame) == 1
    assert frame.iloc[0].value == 3
    assert str(frame.iloc[0].third_slot_start.tz_convert("America/New_York")) == "2026-10-08 09:00:00-04:00"


def test_third_next_available_snapshot_follows_dst(fx: Fixture) -> None:
    """DST ends on Sunday 2026-11-01: Monday's 08:00 snapshot is 13:00 UTC, not 12:00.

    A slot at 07:30 local (12:30 UTC) is before the snapshot and must not count; the three slots
    from 08:30 the same day do: third next available = 0 days.
    """
    fx.add(
        "slots",
        {"start_at": "2026-11-02 07:30"},
        {"start_at": "2026-11-02 08:30"},
        {"start_at": "2026-11-02 09:00"},
        {"start_at": "2026-11-02 09:30"},
    )
    fx.add("appointments", {"scheduled_start": "2026-12-01 09:00", "booked_at": "2026-11-20 09:00", "provider_id": P2})
    frame = fx.wh.explain("third_next_available", "2026-11")
    assert len(frame) == 1
    assert frame.iloc[0].value == 0
    assert str(frame.iloc[0].third_slot_start.tz_convert("America/New_York")) == "2026-11-02 09:30:00-05:00"


def fhir_appointment(i: int, status: str, reason: str | None = None) -> dict:
    """An R4 Appointment as an EHR's Bulk export writes it (cancelationReason optional, as in R4)."""
    day = 5 + i % 20
    resource = {
        "resourceType": "Appointment",
        "id": f"ap{i}",
        "meta": {"lastUpdated": f"2026-10-{day:02d}T08:00:00-04:00"},
        "status": status,
        "start": f"2026-10-{day:02d}T10:00:00-04:00",
        "minutesDuration": 20,
        "created": "2026-09-20T09:00:00-04:00",
        "participant": [
            {"actor": {"reference": f"Patient/p{i}"}, "status": "accepted"},
            {"actor": {"reference": "Location/EAST"}, "status": "accepted"},
        ],
    }
    if reason:
        system = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
        resource["cancelationReason"] = {"coding": [{"system": system, "code": reason}]}
    return resource


def test_cancellations_without_a_reason_are_bookings_and_make_late_cancels_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: 4 no-shows, 14 kept, 3 cancellations without cancelationReason (R4 makes it
    optional), 1 provider cancellation, all loaded from FHIR NDJSON.

    Scheduled denominator: every booking but the provider's cancellation = 21, so 4 / 21 (NULL logic
    once dropped the three and gave 4 / 18). Who cancelled the three 2 hours before the start is not
    in the export, so the late-cancellation rate is unknown, with the reason, not 0%.
    """
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "a-test-secret-long-enough-0123456789")
    lines = [fhir_appointment(i, "noshow") for i in range(4)]
    lines += [fhir_appointment(i, "fulfilled") for i in range(4, 18)]
    lines += [fhir_appointment(i, "cancelled") for i in range(18, 21)]
    lines.append(fhir_appointment(21, "cancelled", "prov"))
    path = tmp_path / "Appointment.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    with Warehouse(tmp_path / "w.duckdb") as wh:
        (result,) = ingest_paths(wh, [path])
        assert (result.status, result.inserted) == ("succeeded", 22)
        options = {"no_show_rate": {"denominator": "scheduled"}}
        frame = wh.compute(["no_show_rate", "late_cancel_rate"], start="2026-10", end="2026-10", options=options)
        no_show = one(frame, kpi_id="no_show_rate")
        assert (no_show.numerator, no_show.denominator, no_show.value) == (4, 21, pytest.approx(4 / 21))
        assert no_show.note is None
        late = one(frame, kpi_id="late_cancel_rate")
        assert (late.numerator, late.denominator) == (0, 22)  # every appointment but none in error
        assert math.isnan(late.value) and late.status is None
        assert late.note.startswith("Unknown: 3 cancellation(s) without the initiator")
        explained = wh.explain("late_cancel_rate", "2026-10")
        unknown = explained[explained["reason"].fillna("").str.startswith("unknown:")]
        assert sorted(unknown["record_id"]) == ["fhir:ap18", "fhir:ap19", "fhir:ap20"]
        # counting late cancellations as no-shows depends on them too: unknown as well
        as_noshow = wh.compute(
            "no_show_rate", start="2026-10", end="2026-10", options={"no_show_rate": {"late_cancel": "as_noshow"}}
        )
        assert math.isnan(one(as_noshow).value) and one(as_noshow).note.startswith("Unknown: 3")
        # the results store keeps the rows of unknown side too: the same answer from it
        refresh(wh.cursor(), wh.config, progress=False)
        for via in ("store", "raw"):
            late = one(wh.compute("late_cancel_rate", start="2026-10", end="2026-10", via=via))
            assert math.isnan(late.value) and late.note.startswith("Unknown: 3"), via
        assert wh.compute("late_cancel_rate", start="2026-10", end="2026-10").attrs["answered_from"] == {
            "late_cancel_rate": "results"
        }
