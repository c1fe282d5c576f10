"""`clinic-kpis ingest`."""

from kpis.cli_options import ConfigOption, DbOption, not_yet


def ingest_command(db: DbOption = None, config: ConfigOption = None) -> None:
    """Load export files (FHIR, X12 837P/835, queue_log, CSV) into the warehouse."""
    not_yet("ingest", 4)
