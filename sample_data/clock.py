"""Instants as integer epoch seconds, and the practice's local calendar.

The simulator keeps every instant as UTC epoch seconds so that durations are true elapsed
time even across daylight-saving changes; wall-clock values (clinic hours, the month an event
falls in) are derived through the practice time zone only where a person would read them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY = 86_400
_EPOCH_DATE = date(1970, 1, 1)


class Clock:
    """Conversions between epoch seconds and local dates/times in one time zone."""

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone

    def at(self, d: date, minute_of_day: int) -> int:
        """Epoch of local wall-clock `minute_of_day` on `d`.

        Valid from 03:00 on: US daylight-saving changes happen at 02:00, so the offset at noon
        is the offset of every time the simulator places (clinic hours, bookings, messages).
        """
        return (d - _EPOCH_DATE).days * DAY + minute_of_day * 60 - self._offset(d)

    @lru_cache(maxsize=8192)  # noqa: B019 - one Clock per run; the same dates recur constantly
    def _offset(self, d: date) -> int:
        offset = datetime(d.year, d.month, d.day, 12, tzinfo=self.tz).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def local(self, epoch: int) -> datetime:
        """The aware local datetime of an instant."""
        return datetime.fromtimestamp(epoch, self.tz)

    def local_date(self, epoch: int) -> date:
        """The local calendar date of an instant (offsets only change on whole UTC hours)."""
        return self._date_of_day((epoch + self._offset_at_hour(epoch // 3600)) // DAY)

    @lru_cache(maxsize=65_536)  # noqa: B019 - one Clock per run
    def _offset_at_hour(self, hour: int) -> int:
        offset = datetime.fromtimestamp(hour * 3600, self.tz).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    @lru_cache(maxsize=65_536)  # noqa: B019 - one Clock per run
    def _date_of_day(self, day: int) -> date:
        return _EPOCH_DATE + timedelta(days=day)

    def iso(self, epoch: int) -> str:
        """ISO 8601 with the local offset, e.g. 2025-01-06T09:20:00-05:00 (FHIR instant/dateTime)."""
        return datetime.fromtimestamp(epoch, self.tz).isoformat()


def month_start(d: date) -> date:
    return d.replace(day=1)


def add_months(d: date, n: int) -> date:
    """First day of the month `n` months after the month of `d`."""
    k = d.year * 12 + d.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def month_end(d: date) -> date:
    return add_months(d, 1) - timedelta(days=1)


def month_index(d: date, first: date) -> int:
    """Months between the month of `first` and the month of `d`."""
    return (d.year - first.year) * 12 + d.month - first.month


def days(first: date, last: date) -> list[date]:
    """Every date from `first` to `last`, inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
