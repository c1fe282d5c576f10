"""The canonical column types, read from the shipped schema without opening a warehouse.

Profiles are validated (is `appointments.scheduled_start` a real column, and what type does
its value parse to?) before any warehouse is touched, so the types come from applying the
migrations to an in-memory database once.
"""

from __future__ import annotations

from functools import cache

import duckdb

from kpis.storage import migrations


@cache
def column_types() -> dict[str, dict[str, str]]:
    """table -> column -> DuckDB type name, for every table of the latest schema."""
    con = duckdb.connect()
    try:
        for mig in migrations():
            con.execute(mig.sql)
        types: dict[str, dict[str, str]] = {}
        for table, column, dtype in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns ORDER BY ordinal_position"
        ).fetchall():
            types.setdefault(table, {})[column] = dtype
        return types
    finally:
        con.close()
