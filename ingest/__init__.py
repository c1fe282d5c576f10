"""Ingest adapters: turn practice exports (FHIR, X12, queue_log, CSV) into canonical warehouse rows.

Python entry point: `ingest_paths(warehouse, paths, fmt="auto", force=False) -> list[FileResult]`.
"""

from ingest.errors import IngestError
from ingest.run import FileResult, ingest_paths

__all__ = ["FileResult", "IngestError", "ingest_paths"]
