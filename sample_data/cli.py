"""`clinic-kpis sample`."""

from kpis.cli_options import ConfigOption, DbOption, not_yet


def sample_command(db: DbOption = None, config: ConfigOption = None) -> None:
    """Simulate a practice and write its exports (FHIR, X12, queue_log, CSV) with ground truth."""
    not_yet("sample", 3)
