"""Template slots, third-next-available snapshots and slot utilization.

Both KPIs need to know which appointments occupied a slot *as of a moment*, and a slot can be
taken by an appointment generated up to a few weeks after it (a moved appointment is created
with its successor). So slots are kept in a rolling window of months and a month is finished
only once the months after it that can still touch it have been generated.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sample_data.clock import Clock, month_end
from sample_data.events import Appointment
from sample_data.practice import SLOT_MINUTES, Practice
from sample_data.schedule import DaySlots

LOOKAHEAD_MONTHS = 3  # a month is final once this many later months are generated
SNAPSHOT_MINUTE = 8 * 60  # Mondays 08:00 local
NEVER = 2**62


@dataclass(slots=True)
class _Slot:
    start: int
    blocked: bool
    holds: list[tuple[int, int, bool]] = field(default_factory=list)  # (booked, cancelled or NEVER, still active)


# a slot whose final state is known, for the Slot export and utilization: (provider, start, blocked, busy)
OnSlot = Callable[[int, int, bool, bool], None]


class AccessTracker:
    """Holds the slot window of every provider who has a schedule export."""

    def __init__(self, practice: Practice) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock
        self._days: dict[int, list[tuple[date, list[_Slot]]]] = {}
        self._by_start: dict[int, dict[int, _Slot]] = {}
        self.generated_through: date | None = None

    def add_day(self, day: DaySlots) -> None:
        slots = [_Slot(s, b) for s, b in zip(day.starts, day.blocked, strict=True)]
        self._days.setdefault(day.provider, []).append((day.day, slots))
        index = self._by_start.setdefault(day.provider, {})
        for s in slots:
            index[s.start] = s

    def add_appointment(self, appt: Appointment) -> None:
        index = self._by_start.get(appt.provider)
        if index is None:
            return
        active = appt.status not in ("cancelled", "entered_in_error")
        cancelled = appt.cancelled if appt.cancelled is not None else NEVER
        for j in range(appt.minutes // SLOT_MINUTES):
            slot = index.get(appt.start + j * SLOT_MINUTES * 60)
            if slot is not None:
                slot.holds.append((appt.booked, cancelled, active))

    def finish_month(self, first: date, data_end: date, on_slot: OnSlot) -> list[tuple[int, date, int]]:
        """Emit the month's final slots and return its (provider, snapshot date, days) third-next-available rows."""
        last = min(month_end(first), data_end)
        rows: list[tuple[int, date, int]] = []
        mondays = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        mondays = [d for d in mondays if d.weekday() == 0]
        for provider in sorted(self._days):
            days = self._days[provider]
            dates = [d for d, _ in days]
            for snap_day in mondays:
                found = self._third_available(days, dates, snap_day, data_end)
                if found is not None:
                    rows.append((provider, snap_day, found))
            by_start = self._by_start[provider]
            done = bisect_right(dates, last)
            for _, slots in days[:done]:
                for s in slots:
                    on_slot(provider, s.start, s.blocked, any(h[2] for h in s.holds))
                    del by_start[s.start]
            self._days[provider] = days[done:]
        return rows

    def _third_available(
        self, days: list[tuple[date, list[_Slot]]], dates: list[date], snap_day: date, data_end: date
    ) -> int | None:
        t = self.clock.at(snap_day, SNAPSHOT_MINUTE)
        free = 0
        for i in range(max(bisect_right(dates, snap_day) - 1, 0), len(days)):
            d, slots = days[i]
            for s in slots:
                if s.start <= t or s.blocked:
                    continue
                if s.holds and any(b <= t < c for b, c, _ in s.holds):
                    continue
                free += 1
                if free == 3:
                    horizon = self.generated_through
                    if horizon is not None and horizon < data_end and (horizon - d).days < 21:
                        raise RuntimeError(f"third-next-available lookahead too short at {snap_day}")
                    return (d - snap_day).days
        if self.generated_through is not None and self.generated_through < data_end:
            raise RuntimeError(f"third-next-available lookahead too short at {snap_day}")
        return None
