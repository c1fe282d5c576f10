"""What data the warehouse holds: rows per domain, table, source and period, with the last event.

The Data page and the dashboard's month range read it; the results store keeps it by day
(`kpis.serving`), so a page does not count every fact table on each visit.
"""

from __future__ import annotations

from collections.abc import Sequence

from kpis.relations import DATE, INSTANT
from kpis.sql_literals import sql_literal

COVERAGE = (  # domain, table, the column that dates a row, its kind
    ("access", "appointments", "scheduled_start", INSTANT),
    ("access", "slots", "start_at", INSTANT),
    ("visit_flow", "encounters", "checked_in_at", INSTANT),
    ("phones", "calls", "entered_at", INSTANT),
    ("revenue_cycle", "claims", "submitted_at", INSTANT),
    ("revenue_cycle", "remittances", "paid_date", DATE),
    ("revenue_cycle", "ledger", "posted_date", DATE),
    ("referrals_portal", "referrals", "created_at", INSTANT),
    ("referrals_portal", "portal_messages", "received_at", INSTANT),
)


def coverage_sql(
    timezone: str, grain: str, tables: Sequence[str] | None = None, locations: frozenset[str] | None = None
) -> str:
    """SELECT domain, table_name, source, period_start, rows, last_event_at (local), by `grain`.

    `tables` limits it to some tables (a refresh recounts only those a load changed); `locations`
    (a scope's, `kpis.scope`) to those locations' rows, a remittance by its claim's location.
    """
    parts = []
    for domain, table, column, kind in COVERAGE:
        if tables is not None and table not in tables:
            continue
        local = f"{column} AT TIME ZONE {sql_literal(timezone)}" if kind == INSTANT else column
        parts.append(
            f"SELECT '{domain}' AS domain, '{table}' AS table_name, source, "
            f"CAST(DATE_TRUNC('{grain}', {local}) AS DATE) AS period_start, COUNT(*) AS rows, "
            f"MAX(CAST({local} AS TIMESTAMP)) AS last_event_at FROM {table}{_scoped_rows(table, locations)} "
            "GROUP BY source, period_start"
        )
    return " UNION ALL ".join(parts) + " ORDER BY domain, table_name, source, period_start"


def _scoped_rows(table: str, locations: frozenset[str] | None) -> str:
    """SQL: a WHERE clause keeping the rows of `table` of `locations` ('' for every location)."""
    if locations is None:
        return ""
    allowed = sql_literal(sorted(locations))
    if table == "remittances":
        return f" WHERE claim_id IN (SELECT claim_id FROM claims WHERE location_id IN ({allowed}))"
    return f" WHERE location_id IN ({allowed})"
