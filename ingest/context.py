"""What an adapter may know besides the file: the practice's zone, the pseudonymizer, lookups."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from ingest.pseudonymize import Pseudonymizer


@dataclass(frozen=True)
class ParseContext:
    """Per-file context.

    `cursor` reads the warehouse inside the file's load transaction. `references` is shared by
    the files of one ingest call: FHIR resources refer to each other by resource id
    (`Practitioner/abc`, `Schedule/s1`) while the warehouse keys providers by NPI and locations
    by code, and the canonical schema has no table for those ids, so an export's references
    resolve through the other files loaded with it (resource type, id) -> (provider, location).
    """

    timezone: str
    pseudonymizer: Pseudonymizer
    cursor: duckdb.DuckDBPyConnection
    references: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)
