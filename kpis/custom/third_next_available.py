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
provider are numbered by start, and a running count over slots and holds in time order gives,
at each snapshot, the number of slots already past and of future slots held then: at most that
many of the next slots are taken, so the third open one is among the next 3 + held slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time, timedelta

from kpis.business_time import business_days_between
from kpis.periods import local_instant_utc, period_floor
from kpis.query import KpiRequest, QueryContext, output_row, ratio_value, with_relation
from kpis.relations import local_date
from kpis.sql_literals import sql_literal

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
            SELECT *, ROW_NUMBER() OVER (PARTITION BY provider, location ORDER BY start_at, source, slot_id) AS r
            FROM (
                SELECT source, slot_id, provider_id AS provider, location_id AS location, start_at,
                       start_at + minutes * INTERVAL 1 MINUTE AS end_at
                FROM slots
                WHERE status <> 'blocked' AND provider_id IS NOT NULL{only_type}
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
            SELECT DISTINCT s.source, s.slot_id, s.provider, s.start_at, b.booked_at, b.cancelled_at
            FROM slot_days AS s
            JOIN booking_days AS b ON b.provider_id = s.provider AND b.day = s.day
            WHERE b.start_at < s.end_at AND b.end_at > s.start_at
            """,
        ),
        ("snapshots", _snapshots(ctx)),
        (
            "events",  # slots and holds in time order, with each snapshot after what happened at its instant
            """
            SELECT o.provider, o.location, o.start_at AS at, 0 AS kind, 1 AS slot_step, 0 AS hold_step
            FROM open_slots AS o
            UNION ALL
            SELECT o.provider, o.location, h.booked_at, 0, 0, 1
            FROM holds AS h JOIN open_slots AS o ON o.source = h.source AND o.slot_id = h.slot_id
            WHERE h.booked_at < COALESCE(LEAST(h.cancelled_at, h.start_at), h.start_at)
            UNION ALL
            SELECT o.provider, o.location, COALESCE(LEAST(h.cancelled_at, h.start_at), h.start_at), 0, 0, -1
            FROM holds AS h JOIN open_slots AS o ON o.source = h.source AND o.slot_id = h.slot_id
            WHERE h.booked_at < COALESCE(LEAST(h.cancelled_at, h.start_at), h.start_at)
            UNION ALL
            SELECT p.provider, p.location, n.snapshot_at, 1, 0, 0
            FROM (SELECT DISTINCT provider, location FROM open_slots) AS p CROSS JOIN snapshots AS n
            """,
        ),
        (
            "bounds",  # ranks that must hold the 3rd open slot: the next 3 plus one per slot held then
            f"""
            SELECT provider, location, at AS snapshot_at, slots_before + 1 AS r_from,
                   slots_before + {NTH_SLOT} + held AS r_to
            FROM (
                SELECT *,
                       SUM(slot_step) OVER (PARTITION BY provider, location ORDER BY at, kind ROWS UNBOUNDED PRECEDING)
                           AS slots_before,
                       SUM(hold_step) OVER (PARTITION BY provider, location ORDER BY at, kind ROWS UNBOUNDED PRECEDING)
                           AS held
                FROM events
            ) AS counted
            WHERE kind = 1
            """,
        ),
        (
            "candidates",
            """
            SELECT n.period_start, n.snapshot_date, n.snapshot_at, o.provider, o.location,
                   o.source, o.slot_id, o.start_at,
                   ROW_NUMBER() OVER (PARTITION BY n.snapshot_at, o.provider, o.location ORDER BY o.r) AS k
            FROM bounds AS b
            JOIN snapshots AS n ON n.snapshot_at = b.snapshot_at
            JOIN open_slots AS o
              ON o.provider = b.provider AND o.location IS NOT DISTINCT FROM b.location
             AND o.r BETWEEN b.r_from AND b.r_to
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
