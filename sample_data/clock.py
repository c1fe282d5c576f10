"""Instants as integer epoch seconds, and the practice's local calendar.

The simulator keeps every instant as UTC epoch seconds so that durations are true elapsed
time even across daylight-saving changes; wall-clock values (clinic hours, the month an event
falls in) are derived through the practice time zone only where a person would read them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DAY = 86_400
QUARTER_HOUR = 900
_EPOCH_DATE = date(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH_DATE.toordinal()
_HOUR_MINUTE = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(24 * 60))
_SECOND = tuple(f"{s:02d}" for s in range(60))


class Clock:
    """Conversions between epoch seconds and local dates/times in one time zone.

    Exports at scale hold hundreds of millions of instants, so conversions go through plain
    dict caches (per date, per quarter hour of UTC, per day) instead of a datetime per call.
    The caches grow with the simulated period only (tens of thousands of entries a year).
    """

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        self._noon: dict[date, int] = {}  # date -> UTC offset at local noon
        self._zones: dict[int, tuple[int, str]] = {}  # quarter hour of UTC -> (offset seconds, "-05:00")
        self._days: dict[int, tuple[date, str]] = {}  # local epoch day -> (date, "2025-01-06T")

    def at(self, d: date, minute_of_day: int) -> int:
        """Epoch of local wall-clock `minute_of_day` on `d`.

        Valid from 03:00 on: US daylight-saving changes happen at 02:00, so the offset at noon
        is the offset of every time the simulator places (clinic hours, bookings, messages).
        """
        offset = self._noon.get(d)
        if offset is None:
            offset = self._noon[d] = _seconds(datetime(d.year, d.month, d.day, 12, tzinfo=self.tz).utcoffset())
        return (d.toordinal() - _EPOCH_ORDINAL) * DAY + minute_of_day * 60 - offset

    def midnight(self, d: date) -> int:
        """Epoch of local 00:00 on `d` (exact also on daylight-saving days, unlike `at`)."""
        return int(datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp())

    def local(self, epoch: int) -> datetime:
        """The aware local datetime of an instant."""
        return datetime.fromtimestamp(epoch, self.tz)

    def local_date(self, epoch: int) -> date:
        """The local calendar date of an instant."""
        offset = (self._zones.get(epoch // QUARTER_HOUR) or self._zone(epoch))[0]
        return (self._days.get((epoch + offset) // DAY) or self._day((epoch + offset) // DAY))[0]

    def local_minute(self, epoch: int) -> tuple[date, int]:
        """The local calendar date and minute of day of an instant."""
        offset = (self._zones.get(epoch // QUARTER_HOUR) or self._zone(epoch))[0]
        day, second = divmod(epoch + offset, DAY)
        return (self._days.get(day) or self._day(day))[0], second // 60

    def iso(self, epoch: int) -> str:
        """ISO 8601 with the local offset, e.g. 2025-01-06T09:20:00-05:00 (FHIR instant/dateTime)."""
        offset, offset_text = self._zones.get(epoch // QUARTER_HOUR) or self._zone(epoch)
        day, second = divmod(epoch + offset, DAY)
        day_text = (self._days.get(day) or self._day(day))[1]
        return day_text + _HOUR_MINUTE[second // 60] + _SECOND[second % 60] + offset_text

    def _zone(self, epoch: int) -> tuple[int, str]:
        """Zones change their UTC offset only on whole quarter hours of UTC, so one lookup serves 15 minutes."""
        quarter = epoch // QUARTER_HOUR
        offset = _seconds(datetime.fromtimestamp(quarter * QUARTER_HOUR, self.tz).utcoffset())
        minutes = abs(offset) // 60
        zone = self._zones[quarter] = (offset, f"{'-' if offset < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}")
        return zone

    def _day(self, day: int) -> tuple[date, str]:
        d = _EPOCH_DATE + timedelta(days=day)
        entry = self._days[day] = (d, d.isoformat() + "T")
        return entry


def _seconds(offset: timedelta | None) -> int:
    assert offset is not None
    return int(offset.total_seconds())


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
