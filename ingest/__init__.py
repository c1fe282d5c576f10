"""Ingest adapters: turn practice exports (FHIR, X12, queue_log, CSV) into canonical warehouse rows."""
