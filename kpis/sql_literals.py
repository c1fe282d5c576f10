"""Python values (options, filter values, time zone names) written as DuckDB SQL literals."""

from __future__ import annotations

from typing import Any


def sql_literal(value: Any) -> str:
    """A Python option value as a DuckDB literal (lists become a comma-separated list for IN (...))."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return ", ".join(sql_literal(v) for v in value)
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"
