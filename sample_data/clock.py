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
_MINUTE_SECOND = tuple(f"{s // 60:02d}:{s % 60:02d}" for s in range(3600))  # "MM:SS" by second of the hour


class Clock:
    """Conversions between epoch seconds and local dates/times in one time zone.

    Exports at scale hold hundreds of millions of instants, so conversions go through plain
    dict caches instead of a datetime per call. Zones change their UTC offset only on whole
    quarter hours of UTC, so everything local about an instant follows from its quarter hour
    (cached once: tens of thousands of entries a year of simulated time) and the seconds into it.
    """

    def __init__(self, timezone: str) -> None:
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        self._noon: dict[date, int] = {}  # date -> UTC offset at local noon
        # quarter hour of UTC -> (local "2025-01-06T09:", seconds into the local hour at its start,
        # offset text "-05:00", local date, local minute of day at its start)
        self._quarters: dict[int, tuple[str, int, str, date, int]] = {}

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
        quarter = epoch // QUARTER_HOUR
        return (self._quarters.get(quarter) or self._quarter(quarter))[3]

    def local_minute(self, epoch: int) -> tuple[date, int]:
        """The local calendar date and minute of day of an instant."""
        quarter, second = divmod(epoch, QUARTER_HOUR)
        entry = self._quarters.get(quarter) or self._quarter(quarter)
        return entry[3], entry[4] + second // 60

    def iso(self, epoch: int) -> str:
        """ISO 8601 with the local offset, e.g. 2025-01-06T09:20:00-05:00 (FHIR instant/dateTime)."""
        quarter, second = divmod(epoch, QUARTER_HOUR)
        entry = self._quarters.get(quarter) or self._quarter(quarter)
        return entry[0] + _MINUTE_SECOND[entry[1] + second] + entry[2]

    def _quarter(self, quarter: int) -> tuple[str, int, str, date, int]:
        start = quarter * QUARTER_HOUR
        offset = _seconds(datetime.fromtimestamp(start, self.tz).utcoffset())
        day, second = divmod(start + offset, DAY)
        local_date = _EPOCH_DATE + timedelta(days=day)
        minutes = abs(offset) // 60
        offset_text = f"{'-' if offset < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"
        hour_text = f"{local_date.isoformat()}T{second // 3600:02d}:"
        entry = self._quarters[quarter] = (hour_text, second % 3600, offset_text, local_date, second // 60)
        return entry


_UTC_DAYS: dict[int, str] = {}  # epoch day -> "2025-01-06T"


def utc_text(epoch: int) -> str:
    """UTC ISO 8601 with a Z, e.g. 2025-01-06T14:20:00Z (Synthea's timestamps)."""
    day, second = divmod(epoch, DAY)
    text = _UTC_DAYS.get(day)
    if text is None:
        text = _UTC_DAYS[day] = (_EPOCH_DATE + timedelta(days=day)).isoformat() + "T"
    return f"{text}{second // 3600:02d}:{_MINUTE_SECOND[second % 3600]}Z"


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
