"""`clinic-kpis kpis`: compute KPIs from the command line."""

from kpis.cli_options import ConfigOption, DbOption, not_yet


def kpis_command(db: DbOption = None, config: ConfigOption = None) -> None:
    """Compute KPIs for a month, grain and breakdown, as a table, CSV or JSON."""
    not_yet("kpis", 5)
