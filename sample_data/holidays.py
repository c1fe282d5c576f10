"""The public holidays the simulated practice closes on (no clinic, no phones).

The six US holidays nearly every primary-care practice closes for: New Year's Day, Memorial
Day (last Monday of May), Independence Day, Labor Day (first Monday of September),
Thanksgiving (fourth Thursday of November) and Christmas Day. A fixed-date holiday falling on
a Saturday is observed the Friday before, on a Sunday the Monday after (the federal rule).
Six rules are fewer lines than a calendar library's configuration, and they never change.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache


def _observed(d: date) -> date:
    if d.weekday() == 5:
        return d - timedelta(days=1)
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (0 = Monday) of a month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


@cache
def holidays(year: int) -> frozenset[date]:
    """The days the practice is closed for a holiday in `year` (observed dates)."""
    return frozenset(
        {
            _observed(date(year, 1, 1)),
            _nth_weekday(year, 5, 0, -1),
            _observed(date(year, 7, 4)),
            _nth_weekday(year, 9, 0, 1),
            _nth_weekday(year, 11, 3, 4),
            _observed(date(year, 12, 25)),
        }
    )


def is_holiday(d: date) -> bool:
    # New Year's Day of the next year may be observed on 31 December
    return d in holidays(d.year) or d in holidays(d.year + 1)
