"""Reporting periods: grains, date bounds typed by people, and the spine of periods in a range.

Periods are calendar periods in the practice time zone. A period is identified by its first
local day (`period_start`); weeks start on Monday (ISO), as DuckDB's `date_trunc('week')` does.
The engine turns a range of periods into UTC instants once, in Python, so that queries compare
stored TIMESTAMPTZ values to constants (which DuckDB can prune on) and only convert each row to
local time to find its period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from kpis.errors import ClinicKpisError

GRAINS = ("day", "week", "month", "quarter", "year")


class PeriodError(ClinicKpisError):
    """A grain, period or date bound that cannot be understood."""


def check_grain(grain: str) -> str:
    if grain not in GRAINS:
        raise PeriodError(f"unknown grain {grain!r}; use one of {', '.join(GRAINS)}")
    return grain


def period_floor(day: date, grain: str) -> date:
    """The first day of the period of `grain` that contains `day`."""
    if grain == "day":
        return day
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if grain == "year":
        return date(day.year, 1, 1)
    raise PeriodError(f"unknown grain {grain!r}")


def next_period(start: date, grain: str) -> date:
    """The first day of the period after the one starting on `start`."""
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    return add_months(start, {"month": 1, "quarter": 3, "year": 12}[grain])


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after (or, negative, before) the month of `day`.

    The one month arithmetic of the project: the dashboard, the report and the engine use it.
    """
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def previous_period(start: date, grain: str) -> date:
    return period_floor(start - timedelta(days=1), grain)


def months_between(first: date, last: date | None) -> list[date]:
    """The month starts from the month of `first` through `last` (none if `last` is None or earlier).

    The store's refresh walks the months a load touched with it, one month at a time, because
    month results and the payment windows are kept per month.
    """
    months: list[date] = []
    month = period_floor(first, "month")
    while last is not None and month <= last:
        months.append(month)
        month = next_period(month, "month")
    return months


def month_runs(months: list[date]) -> list[tuple[date, date]]:
    """Sorted month starts grouped into (first, last) runs of consecutive months.

    A run is recomputed by one statement over its range rather than one per month.
    """
    runs: list[tuple[date, date]] = []
    for month in months:
        if runs and next_period(runs[-1][1], "month") == month:
            runs[-1] = (runs[-1][0], month)
        else:
            runs.append((month, month))
    return runs


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def parse_bound(value: object, *, end: bool, what: str = "date") -> date:
    """A date from a date, datetime, pandas Timestamp or a 'YYYY', 'YYYY-MM' or 'YYYY-MM-DD' string.

    A month or year names its first day as a start bound and its last day as an end bound, so
    `start="2026-01", end="2026-03"` covers three whole months.
    """
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if m := _DAY.match(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _MONTH.match(text):
            first = date(int(m[1]), int(m[2]), 1)
            return next_period(first, "month") - timedelta(days=1) if end else first
        if m := _YEAR.match(text):
            return date(int(m[1]), 12, 31) if end else date(int(m[1]), 1, 1)
    except ValueError:
        pass
    raise PeriodError(f"{what} {value!r} is not a date; use YYYY-MM-DD, YYYY-MM or YYYY")


@dataclass(frozen=True)
class Periods:
    """The periods of one request: their grain and first days, in the practice time zone."""

    grain: str
    starts: tuple[date, ...]
    timezone: str

    @classmethod
    def between(cls, start: date, end: date, grain: str, timezone: str) -> Periods:
        """The periods whose first day lies in [start, end]."""
        check_grain(grain)
        if end < start:
            raise PeriodError(f"the range ends ({end}) before it starts ({start})")
        first = period_floor(start, grain)
        if first < start:
            first = next_period(first, grain)
        starts = []
        current = first
        while current <= end:
            starts.append(current)
            current = next_period(current, grain)
        if not starts:
            raise PeriodError(f"no {grain} starts between {start} and {end}")
        return cls(grain, tuple(starts), timezone)

    @property
    def first_day(self) -> date:
        return self.starts[0]

    @property
    def end_exclusive(self) -> date:
        """The day after the last day of the last period."""
        return next_period(self.starts[-1], self.grain)

    def last_day(self, start: date) -> date:
        return next_period(start, self.grain) - timedelta(days=1)

    def spine(self) -> list[tuple[date, date]]:
        """(first day, last day) of every period."""
        return [(s, self.last_day(s)) for s in self.starts]

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """The UTC instants of local midnight at the start of the first period and after the last."""
        return local_midnight_utc(self.first_day, self.timezone), local_midnight_utc(self.end_exclusive, self.timezone)


def local_midnight_utc(day: date, timezone: str) -> datetime:
    """The UTC instant at which `day` begins in `timezone`."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def local_instant_utc(day: date, at: time, timezone: str) -> datetime:
    """The UTC instant of wall-clock time `at` on `day` in `timezone` (DST-aware)."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(timezone)).astimezone(UTC)
