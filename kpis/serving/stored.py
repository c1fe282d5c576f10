"""The small views every page reads, as the results store keeps them: coverage by day, dimension values.

Both are counted over whole fact tables in the raw warehouse (seconds at 10 M rows); the
refresh keeps them (`kpis.serving.refresh`) and these statements read them back in the shape
`Warehouse.coverage` and `Warehouse.dimension_values` return.
"""

from __future__ import annotations

from kpis.dimensions import check_dimension
from kpis.periods import check_grain
from kpis.serving.facts import SCHEMA

COVERAGE_TABLE = f"{SCHEMA}.coverage"


def values_table(dimension: str) -> str:
    """The table holding a dimension's values (id with its own type, and the reference label)."""
    return f"{SCHEMA}.values_{check_dimension(dimension)}"


def stored_values_sql(dimension: str) -> str:
    return f"SELECT id, label FROM {values_table(dimension)}"


def stored_coverage_sql(grain: str) -> str:
    """Coverage by `grain`, rolled up from the kept days (rows add up, the last event is the latest)."""
    period = f"CAST(DATE_TRUNC('{check_grain(grain)}', period_start) AS DATE)"
    return (
        f"SELECT domain, table_name, source, {period} AS period_start, SUM(rows) AS rows, "
        f"MAX(last_event_at) AS last_event_at FROM {COVERAGE_TABLE} GROUP BY domain, table_name, source, {period} "
        "ORDER BY domain, table_name, source, period_start"
    )


# which (location, provider, payer) combinations each source table has rows for (`kpis.sources`)
SCOPES_TABLE = f"{SCHEMA}.scopes"
# in `serving.meta` as scopes_version once the refresh built the table: a store built by older
# code has none, gets it at its next refresh, and until then `kpis.sources` asks the raw tables
SCOPES_VERSION = "1"
