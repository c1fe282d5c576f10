"""Business-hour and business-day arithmetic as plain SQL expressions.

Portal response time counts only the practice's opening hours (config `[business_hours]`),
and third next available can count business days. Both need "how much business time lies
between two local times" for every row, inside the same aggregate query. Rather than joining a
calendar table, each local time is mapped to a running total of business seconds since a fixed
Monday, in closed form:

    business_days_before(d) = 7-day weeks since the reference x business days per week
                              + business weekdays earlier in d's week
                              - holidays on business weekdays before d
    business_seconds(t)     = business_days_before(date(t)) x seconds per business day
                              + seconds of t's own day inside opening hours (0 on a closed day)

The difference of two such totals is the business time between them. The expressions use only
date differences, arithmetic and CASE, so they transpile to Spark and Postgres.
"""

from __future__ import annotations

from datetime import date, timedelta

from kpis.config import BusinessHours
from kpis.errors import ConfigError

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_REFERENCE_MONDAY = "DATE '2000-01-03'"


def _seconds(hhmm: str) -> int:
    hh, mm = hhmm.split(":")
    return int(hh) * 3600 + int(mm) * 60


def _checked(bh: BusinessHours) -> tuple[int, int, list[int], list[date]]:
    open_s, close_s = _seconds(bh.start), _seconds(bh.end)
    if close_s <= open_s:
        raise ConfigError(f"[business_hours] end {bh.end} must be after start {bh.start}")
    days = sorted({_WEEKDAYS.index(d) for d in bh.days})
    if not days:
        raise ConfigError("[business_hours] days is empty: at least one business day is needed")
    holidays = []
    for text in bh.holidays:
        try:
            holidays.append(date.fromisoformat(text))
        except ValueError:
            raise ConfigError(f"[business_hours] holiday {text!r} is not a date like 2026-12-25") from None
    return open_s, close_s, days, sorted(set(holidays))


def business_days_before(day_sql: str, bh: BusinessHours) -> str:
    """SQL: the number of business days from the reference Monday up to (not including) `day_sql`."""
    _, _, days, holidays = _checked(bh)
    offset = f"DATE_DIFF('day', {_REFERENCE_MONDAY}, {day_sql})"
    weeks = f"FLOOR({offset} / 7)"
    weekday = f"({offset} - 7 * {weeks})"
    earlier = " ".join(f"WHEN {i} THEN {sum(1 for d in days if d < i)}" for i in range(1, 7))
    terms = [f"{weeks} * {len(days)}", f"CASE {weekday} {earlier} ELSE 0 END"]
    terms += [
        f"CASE WHEN {day_sql} > DATE '{h.isoformat()}' THEN 1 ELSE 0 END" for h in holidays if h.weekday() in days
    ]
    return "(" + " + ".join(terms[:2]) + "".join(f" - {t}" for t in terms[2:]) + ")"


def is_business_day(day_sql: str, bh: BusinessHours) -> str:
    """SQL: TRUE when `day_sql` is an opening day and not a holiday."""
    _, _, days, holidays = _checked(bh)
    offset = f"DATE_DIFF('day', {_REFERENCE_MONDAY}, {day_sql})"
    weekday = f"({offset} - 7 * FLOOR({offset} / 7))"
    test = f"{weekday} IN ({', '.join(str(d) for d in days)})"
    if holidays:
        listed = ", ".join("DATE '" + h.isoformat() + "'" for h in holidays)
        test += f" AND {day_sql} NOT IN ({listed})"
    return f"({test})"


def business_seconds(local_ts_sql: str, bh: BusinessHours) -> str:
    """SQL: business seconds from the reference Monday to the local (naive) timestamp `local_ts_sql`."""
    open_s, close_s, _, _ = _checked(bh)
    day = f"CAST({local_ts_sql} AS DATE)"
    since_midnight = f"(EPOCH({local_ts_sql}) - EPOCH(CAST({day} AS TIMESTAMP)))"
    inside = f"GREATEST(LEAST({since_midnight}, {close_s}), {open_s}) - {open_s}"
    today = f"CASE WHEN {is_business_day(day, bh)} THEN {inside} ELSE 0 END"
    return f"({business_days_before(day, bh)} * {close_s - open_s} + {today})"


def business_hours_between(start_local_sql: str, end_local_sql: str, bh: BusinessHours) -> str:
    """SQL: business hours between two local timestamps (NULL when either is NULL)."""
    return f"(({business_seconds(end_local_sql, bh)}) - ({business_seconds(start_local_sql, bh)})) / 3600.0"


def business_days_between(start_day_sql: str, end_day_sql: str, bh: BusinessHours) -> str:
    """SQL: the number of business days d with start <= d < end (0 when both are the same day)."""
    return f"({business_days_before(end_day_sql, bh)} - {business_days_before(start_day_sql, bh)})"


def last_open_day(day: date, bh: BusinessHours) -> date:
    """The last business day on or before `day` (the day itself if the practice is open then).

    A period is complete once the data reach its last business day: a clinic closed on the
    month's final weekend has no events there, and that must not make the month look partial.
    """
    _, _, days, holidays = _checked(bh)
    closed = set(holidays)
    for back in range(366):
        candidate = day - timedelta(days=back)
        if candidate.weekday() in days and candidate not in closed:
            return candidate
    return day
