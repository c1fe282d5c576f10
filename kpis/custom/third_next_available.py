"""third_next_available: days from each weekly snapshot to a provider's third open slot (IHI).

Whether a slot was open at a past moment follows from the appointments known then: a slot is
taken at snapshot time t by an appointment of its provider that overlaps it, was booked at or
before t, and was not cancelled at or before t. Slot status in the export is the state at
export time, so only `blocked` (never offered) is taken from it.

For every Monday 08:00 local (the snapshot) in the requested periods, and every provider and
location with slots, the open slots starting after the snapshot are ranked by start; the third
gives the days (calendar, or business days from config) from the snapshot's date to its local
date. The KPI is the mean over (provider, location, snapshot) pairs placed in the period of the
snapshot's date; pairs with fewer than three open slots left have no value. Snapshots are taken
only between the first slot and the last booking in the data.

To avoid pairing each snapshot with every later slot of a long template, the slots of a
provider and location (a schedule) are numbered by start (rank r), and every instant is placed
by arithmetic at the first snapshot at or after it (`week_of`). Then, per snapshot:

* the slots already past are counted from slots grouped by that snapshot number (a few rows
  per schedule and week, not a running sum over millions of events);
* a booking holds its slot at the snapshots from its booking's number up to its release's, so
  the holds, expanded to those snapshots, list the slots held at each (all of them ahead);
* the m-th held slot (by rank) has r - past - m open slots before it; the third open slot is
  at rank past + 3 + the number of held slots with fewer than three open ones before them.

Every join is on integers, and the only range join pairs each hold with the snapshots it spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time, timedelta

from kpis.business_time import business_days_between
from kpis.periods import local_instant_utc, period_floor
from kpis.query import KpiRequest, QueryContext, output_row, ratio_value, with_relation
from kpis.relations import each_day, local, local_date
from kpis.sql_literals import sql_literal

SNAPSHOT_WEEKDAY = 0  # Monday
SNAPSHOT_TIME = time(8, 0)
NTH_SLOT = 3
EPOCH_MONDAY = date(1900, 1, 1)  # snapshot weeks are numbered from this Monday


def week_of(instant: str, tz: str) -> str:
    """SQL: the number of the first snapshot at or after a TIMESTAMPTZ instant.

    Snapshot k is at 08:00 on the Monday 1900-01-01 + 7k days (`_snapshots` numbers them so).
    The number is also how many snapshots come strictly before the instant, so `week_of(x) <= k`
    exactly when x is at or before snapshot k. It is counted on the local wall clock shifted by
    the snapshot time, so that snapshots fall on Monday midnights: d whole days since 1900-01-01
    and a time into the day t give ceil((d + (t > 0)) / 7). The wall clock is exact here because
    DST moves clocks on Sunday night, never across Monday 08:00. Plain arithmetic, so every
    dialect runs it, and each row is placed without a join.
    """
    shifted = f"({local(instant, tz)} - INTERVAL {SNAPSHOT_TIME.hour * 60 + SNAPSHOT_TIME.minute} MINUTE)"
    day = f"CAST({shifted} AS DATE)"
    into_day = f"CASE WHEN {shifted} > CAST({day} AS TIMESTAMP) THEN 1 ELSE 0 END"
    return f"CAST(FLOOR((DATE_DIFF('day', DATE '{EPOCH_MONDAY.isoformat()}', {day}) + 6 + {into_day}) / 7) AS INTEGER)"


def snapshot_weeks(ctx: QueryContext) -> tuple[int, int] | None:
    """The numbers of the first and last snapshot (Monday 08:00) in ctx's periods, if any."""
    first = ctx.periods.first_day + timedelta(days=(SNAPSHOT_WEEKDAY - ctx.periods.first_day.weekday()) % 7)
    last = ctx.periods.end_exclusive - timedelta(days=1)
    last -= timedelta(days=(last.weekday() - SNAPSHOT_WEEKDAY) % 7)
    if last < first:
        return None
    return (first - EPOCH_MONDAY).days // 7, (last - EPOCH_MONDAY).days // 7


def snapshot_instant(week: int, tz: str) -> str:
    """SQL TIMESTAMPTZ literal of snapshot number `week`."""
    at = local_instant_utc(EPOCH_MONDAY + timedelta(days=7 * week), SNAPSHOT_TIME, tz)
    return f"TIMESTAMPTZ '{at.isoformat(sep=' ')}'"


def _snapshots(ctx: QueryContext) -> str:
    rows = []
    day = ctx.periods.first_day
    day += timedelta(days=(SNAPSHOT_WEEKDAY - day.weekday()) % 7)
    while day < ctx.periods.end_exclusive:
        at = local_instant_utc(day, SNAPSHOT_TIME, ctx.tz)
        start = period_floor(day, ctx.periods.grain)
        week = (day - EPOCH_MONDAY).days // 7
        rows.append(
            f"(DATE '{start.isoformat()}', DATE '{day.isoformat()}', TIMESTAMPTZ '{at.isoformat(sep=' ')}', {week})"
        )
        day += timedelta(days=7)
    if not rows:  # a range without a Monday: an empty table of the right shape
        rows.append("(CAST(NULL AS DATE), CAST(NULL AS DATE), CAST(NULL AS TIMESTAMPTZ), CAST(NULL AS INTEGER))")
    return (
        f"SELECT * FROM (VALUES {', '.join(rows)}) AS v(period_start, snapshot_date, snapshot_at, week) "
        "WHERE snapshot_at >= (SELECT MIN(start_at) FROM slots) "
        "AND snapshot_at <= (SELECT MAX(booked_at) FROM appointments)"
    )


def _pairs_ctes(item: KpiRequest, ctx: QueryContext) -> list[tuple[str, str]]:
    """CTEs ending in `pairs`: one row per (snapshot, provider, location) with its third open slot.

    Only the slots and bookings that can matter to the periods' snapshots are read: slots that
    start at or after the first snapshot (an earlier slot is past at every snapshot, and dropping
    the past slots lowers a slot's rank and the count of past slots alike), bookings made by the
    last snapshot that end after the first.
    """
    visit_type = item.options.get("visit_type") or ""
    only_type = f" AND visit_type = {sql_literal(visit_type)}" if visit_type else ""
    weeks = snapshot_weeks(ctx)
    slots_in_reach, bookings_in_reach = "", ""
    if weeks is not None:
        since, until = snapshot_instant(weeks[0], ctx.tz), snapshot_instant(weeks[1], ctx.tz)
        slots_in_reach = f" AND start_at >= {since}"
        end = "scheduled_start + COALESCE(scheduled_minutes, 1) * INTERVAL 1 MINUTE"
        bookings_in_reach = f" AND booked_at <= {until} AND {end} > {since}"
    slot_date = local_date("start_at", ctx.tz)
    if item.options.get("days") == "business":
        days = business_days_between("snapshot_date", slot_date, ctx.config.business_hours)
    else:
        days = f"DATE_DIFF('day', snapshot_date, {slot_date})"
    release = "COALESCE(LEAST(b.cancelled_at, s.start_at), s.start_at)"
    return [
        (
            "schedules",  # one number per (provider, location) with open slots: joins and windows key on it
            f"""
            SELECT provider, location, ROW_NUMBER() OVER (ORDER BY provider, location) AS schedule
            FROM (
                SELECT DISTINCT provider_id AS provider, location_id AS location
                FROM slots
                WHERE status <> 'blocked' AND provider_id IS NOT NULL{only_type}
            ) AS s WHERE TRUE{ctx.filter_sql()}
            """,
        ),
        (
            "open_slots",
            f"""
            SELECT s.*, p.schedule,
                   ROW_NUMBER() OVER (PARTITION BY p.schedule ORDER BY s.start_at, s.source, s.slot_id) AS r
            FROM (
                SELECT *, CAST(start_at AS DATE) AS start_day, CAST(end_at AS DATE) AS end_day
                FROM (
                    SELECT source, slot_id, provider_id AS provider, location_id AS location, start_at,
                           start_at + minutes * INTERVAL 1 MINUTE AS end_at
                    FROM slots
                    WHERE status <> 'blocked' AND provider_id IS NOT NULL{only_type}{slots_in_reach}
                ) AS s
            ) AS s
            JOIN schedules AS p ON p.provider = s.provider AND p.location IS NOT DISTINCT FROM s.location
            """,
        ),
        (
            "slot_days",
            each_day("open_slots", "provider, schedule, r, start_at, end_at"),
        ),
        (
            "bookings",
            f"""
            SELECT provider_id, start_at, end_at, booked_at, cancelled_at,
                   CAST(start_at AS DATE) AS start_day, CAST(end_at AS DATE) AS end_day
            FROM (
                SELECT provider_id, scheduled_start AS start_at,
                       scheduled_start + COALESCE(scheduled_minutes, 1) * INTERVAL 1 MINUTE AS end_at,
                       booked_at, cancelled_at
                FROM appointments
                WHERE booked_at IS NOT NULL{bookings_in_reach}
            ) AS a
            """,
        ),
        (
            "booking_days",
            each_day("bookings", "provider_id, start_at, end_at, booked_at, cancelled_at"),
        ),
        (
            # a booking holds an overlapping slot from its booking until its cancellation or the
            # slot's start: at the snapshots numbered held_from .. held_until - 1 (none when it
            # was cancelled before it was booked, or booked after the slot had started)
            "holds",
            f"""
            SELECT s.schedule, s.r, {week_of("b.booked_at", ctx.tz)} AS held_from,
                   {week_of(release, ctx.tz)} AS held_until
            FROM slot_days AS s
            JOIN booking_days AS b ON b.provider_id = s.provider AND b.day = s.day
            WHERE b.start_at < s.end_at AND b.end_at > s.start_at
            """,
        ),
        ("snapshots", _snapshots(ctx)),
        (
            "slot_weeks",  # slots by the first snapshot at or after their start (a slot then is past)
            f"""
            SELECT schedule, week, COUNT(*) AS slots
            FROM (SELECT schedule, {week_of("start_at", ctx.tz)} AS week FROM open_slots) AS o
            GROUP BY schedule, week
            """,
        ),
        (
            "bounds",  # every (snapshot, schedule) with the number of its slots already past
            """
            SELECT n.period_start, n.snapshot_date, n.snapshot_at, n.week, p.schedule,
                   CAST(COALESCE(SUM(w.slots), 0) AS BIGINT) AS slots_before
            FROM schedules AS p
            CROSS JOIN snapshots AS n
            LEFT JOIN slot_weeks AS w ON w.schedule = p.schedule AND w.week <= n.week
            GROUP BY n.period_start, n.snapshot_date, n.snapshot_at, n.week, p.schedule
            """,
        ),
        (
            "held",  # the slots held at each snapshot (all of them still ahead), the m-th by rank
            """
            SELECT n.week, h.schedule, h.r, DENSE_RANK() OVER (PARTITION BY n.week, h.schedule ORDER BY h.r) AS m
            FROM holds AS h
            JOIN snapshots AS n ON n.week >= h.held_from AND n.week < h.held_until
            """,
        ),
        (
            # the m-th held slot of rank r has r - slots_before - m open slots ahead of it: those with
            # fewer than three come before the third open slot, which is therefore at rank
            # slots_before + 3 + their number
            "third",
            f"""
            SELECT b.period_start, b.snapshot_date, b.snapshot_at, b.schedule,
                   b.slots_before + {NTH_SLOT} + COUNT(DISTINCT h.r) AS r
            FROM bounds AS b
            LEFT JOIN held AS h
              ON h.week = b.week AND h.schedule = b.schedule AND h.r - h.m - b.slots_before < {NTH_SLOT}
            GROUP BY b.period_start, b.snapshot_date, b.snapshot_at, b.schedule, b.slots_before
            """,
        ),
        (
            "pairs",
            f"""
            SELECT t.period_start, t.snapshot_date, t.snapshot_at, o.provider, o.location,
                   o.source || ':' || o.slot_id AS record_id, o.start_at, {days} AS days
            FROM third AS t
            JOIN open_slots AS o ON o.schedule = t.schedule AND o.r = t.r
            """,
        ),
    ]


def query(items: Sequence[KpiRequest], ctx: QueryContext) -> str:
    (item,) = items
    ctes = _pairs_ctes(item, ctx)
    ctes.append(
        (
            "grouped",
            f"SELECT period_start, {ctx.dim_select()}SUM(days) AS total_days, COUNT(*) AS pairs "
            f"FROM pairs GROUP BY {ctx.group_by()}",
        )
    )
    final = (
        output_row(item.id, ctx, "total_days", "pairs", ratio_value("total_days", "pairs"), "pairs") + " FROM grouped"
    )
    return with_relation(None, ctes, final)


def pairs_query(item: KpiRequest, ctx: QueryContext) -> str:
    """Every (snapshot, provider, location) of ctx's periods with its days to the third open slot.

    The rows the KPI averages, before any grouping: what the results store keeps (kpis/serving/).
    """
    final = "SELECT snapshot_date, provider, location, record_id, start_at AS third_slot_start, days FROM pairs"
    return with_relation(None, _pairs_ctes(item, ctx), final)


def explain(item: KpiRequest, ctx: QueryContext) -> str:
    """One row per (snapshot, provider, location): the third open slot and its days."""
    final = """
        SELECT record_id, CAST(NULL AS VARCHAR) AS patient_key, snapshot_at AS event_time,
               'numerator' AS side, CAST(NULL AS VARCHAR) AS reason, CAST(days AS DOUBLE) AS value,
               location, provider, start_at AS third_slot_start
        FROM pairs
        ORDER BY snapshot_at, provider, location
    """
    return with_relation(None, _pairs_ctes(item, ctx), final)
