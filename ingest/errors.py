"""The one error type ingest raises for bad input.

A file that cannot be read at all (wrong format, truncated envelope, bad encoding, a CSV
missing a mapped column) raises `IngestError` with one sentence naming the file, the position
and what was expected. Records that can be read but break a rule are not errors: they are
quarantined in `rejects` and the rest of the file loads.
"""

from __future__ import annotations

from kpis.errors import ClinicKpisError


class IngestError(ClinicKpisError):
    """An input file cannot be loaded; the message names the file, the position and what was expected."""
