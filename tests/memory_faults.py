"""A store refresh made to run out of DuckDB's memory inside a CREATE, the way that leaves DuckDB's
catalog behind (tests of the rerun after running out: tests/ingest/test_memory.py and the Spark fill's)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import duckdb
import pytest

from kpis.serving import refresh as serving_refresh


def out_of_memory_creating(cursor: duckdb.DuckDBPyConnection, table: str) -> None:
    """Run out of DuckDB's memory inside `CREATE OR REPLACE TABLE table`, in the open transaction.

    Each replace keeps the replaced table in the transaction; under a limit 1 MB above what DuckDB
    holds, a replace soon finds no room, and DuckDB 2.0 then keeps its new catalog entry after the
    ROLLBACK (as CI's refresh under `[refresh] memory_limit = "1MB"` did for `facts_appointments`)."""
    (held,) = cursor.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
    cursor.execute(f"SET memory_limit = '{held // 1024 + 1024}KB'")
    while True:  # raises when the memory runs out (after about 150 replaces)
        cursor.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT range AS a, 'x' AS b FROM range(10)")


def appointments_run_out_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the refresh's step 'facts of appointments' run out creating its table, the first time only."""
    return facts_run_out_once(monkeypatch, "appointments")


def facts_run_out_once(monkeypatch: pytest.MonkeyPatch, group: str) -> list[str]:
    """Make the refresh's step 'facts of `group`' run out creating its table, the first time only
    (the steps before it ran, e.g. the Spark fill asked Spark for their facts).

    Returns the list the step notes itself in when it runs out (clear it to arm it again)."""
    plan = serving_refresh._Refresh.plan
    ran_out: list[str] = []
    name_of_step = f"facts of {group}"

    def out_of_memory_once(self: serving_refresh._Refresh) -> list[tuple[str, Callable[[], None]]]:
        def facts_of_group(step: Callable[[], None]) -> None:
            if not ran_out:
                ran_out.append(name_of_step)
                out_of_memory_creating(self.cur, f"serving.facts_{group}")
            step()

        return [(name, partial(facts_of_group, step) if name == name_of_step else step) for name, step in plan(self)]

    monkeypatch.setattr(serving_refresh._Refresh, "plan", out_of_memory_once)
    return ran_out
