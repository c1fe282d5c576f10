"""What an adapter may know besides the file: the practice's zone, the pseudonymizer, a read-only lookup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from ingest.pseudonymize import Pseudonymizer


class Lookup:
    """Reads the warehouse inside a file's load transaction, and only reads.

    Why not a cursor: every row reaches the warehouse through the one load path (`ingest.load`),
    where it is checked, counted and given its lineage; an adapter that could write would go
    around all three. A statement that is not a single SELECT is refused before it runs.
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cursor = cursor

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """The rows of one SELECT (with `?` parameters)."""
        statements = self._cursor.extract_statements(sql)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise ValueError(f"a lookup runs one SELECT statement, not: {sql[:80]!r}")
        return self._cursor.execute(sql, params or []).fetchall()


@dataclass(frozen=True)
class ParseContext:
    """Per-file context.

    References between records (a FHIR Appointment naming `Practitioner/abc`) are not resolved
    here: the rows keep them (`provider_ref`), and the load path resolves them against what the
    warehouse holds, in this run or whenever the referenced record arrives later. An adapter that
    needs to read the warehouse does so after its rows are in (`Batch.after_load`), through a
    `Lookup`.
    """

    timezone: str
    pseudonymizer: Pseudonymizer
    dates: tuple[datetime, datetime] | None = None  # the plausible range of instants (earliest, latest)
