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
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time, timedelta

from kpis.business_time import business_days_between
from kpis.periods import local_instant_utc, period_floor
from kpis.query import KpiRequest, QueryContext, output_row, ratio_value, with_relation
from kpis.relations import local_date
from kpis.spec import sql_literal

SNAPSHOT_WEEKDAY = 0  # Monday
SNAPSHOT_TIME = time(8, 0)
NTH_SLOT = 3


def _snapshots(ctx: QueryContext) -> str:
    rows = []
    day = ctx.periods.first_day
    day += timedelta(days=(SNAPSHOT_WEEKDAY - day.weekday()) % 7)
    while day < ctx.periods.end_exclusive:
        at = local_instant_utc(day, SNAPSHOT_TIME, ctx.tz)
        start = period_floor(day, ctx.periods.grain)
        rows.append(f"(DATE '{start.isoformat()}', DATE '{day.isoformat()}', TIMESTAMPTZ '{at.isoformat(sep=' ')}')")
        day += timedelta(days=7)
    if not rows:  # a range without a Monday: an empty table of the right shape
        rows.append("(CAST(NULL AS DATE), CAST(NULL AS DATE), CAST(NULL AS TIMESTAMPTZ))")
    return (
        f"SELECT * FROM (VALUES {', '.join(rows)}) AS v(period_start, snapshot_date, snapshot_at) "
        "WHERE snapshot_at >= (SELECT MIN(start_at) FROM slots) "
        "AND snapshot_at <= (SELECT MAX(booked_at) FROM appointments)"
    )


def _pairs_ctes(item: KpiRequest, ctx: QueryContext) -> list[tuple[str, str]]:
    """CTEs ending in `pairs`: one row per (snapshot, provider, location) with its third open slot."""
    visit_type = item.options.get("visit_type") or ""
    only_type = f" AND visit_type = {sql_literal(visit_type)}" if visit_type else ""
    slot_date = local_date("start_at", ctx.tz)
    if item.options.get("days") == "business":
        days = business_days_between("snapshot_date", slot_date, ctx.config.business_hours)
    else:
        days = f"DATE_DIFF('day', snapshot_date, {slot_date})"
    return [
        (
            "open_slots",
            f"""
            SELECT * FROM (
                SELECT source, slot_id, provider_id AS provider, location_id AS location, start_at,
                       start_at + minutes * INTERVAL 1 MINUTE AS end_at
                FROM slots
                WHERE status <> 'blocked'{only_type}
            ) AS s WHERE TRUE{ctx.filter_sql()}
            """,
        ),
        (
            "slot_days",
            """
            SELECT source, slot_id, provider, start_at, end_at, CAST(start_at AS DATE) AS day FROM open_slots
            UNION
            SELECT source, slot_id, provider, start_at, end_at, CAST(end_at AS DATE) AS day FROM open_slots
            """,
        ),
        (
            "bookings",
            """
            SELECT provider_id, scheduled_start AS start_at,
                   scheduled_start + COALESCE(scheduled_minutes, 1) * INTERVAL 1 MINUTE AS end_at,
                   booked_at, cancelled_at
            FROM appointments
            WHERE booked_at IS NOT NULL
            """,
        ),
        (
            "booking_days",
            """
            SELECT provider_id, start_at, end_at, booked_at, cancelled_at, CAST(start_at AS DATE) AS day FROM bookings
            UNION
            SELECT provider_id, start_at, end_at, booked_at, cancelled_at, CAST(end_at AS DATE) AS day FROM bookings
            """,
        ),
        (
            "holds",
            """
            SELECT DISTINCT s.source, s.slot_id, b.booked_at, b.cancelled_at
            FROM slot_days AS s
            JOIN booking_days AS b ON b.provider_id = s.provider AND b.day = s.day
            WHERE b.start_at < s.end_at AND b.end_at > s.start_at
            """,
        ),
        ("snapshots", _snapshots(ctx)),
        (
            "candidates",
            """
            SELECT n.period_start, n.snapshot_date, n.snapshot_at, o.provider, o.location,
                   o.source, o.slot_id, o.start_at,
                   ROW_NUMBER() OVER (
                       PARTITION BY n.snapshot_at, o.provider, o.location ORDER BY o.start_at, o.source, o.slot_id
                   ) AS k
            FROM snapshots AS n
            JOIN open_slots AS o ON o.start_at > n.snapshot_at
            WHERE NOT EXISTS (
                SELECT 1 FROM holds AS h
                WHERE h.source = o.source AND h.slot_id = o.slot_id AND h.booked_at <= n.snapshot_at
                  AND (h.cancelled_at IS NULL OR h.cancelled_at > n.snapshot_at)
            )
            """,
        ),
        (
            "pairs",
            f"""
            SELECT period_start, snapshot_date, snapshot_at, provider, location,
                   source || ':' || slot_id AS record_id, start_at, {days} AS days
            FROM candidates
            WHERE k = {NTH_SLOT}
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
