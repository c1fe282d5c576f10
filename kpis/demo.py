"""`clinic-kpis demo`: the newcomer's tour, end to end."""

from kpis.cli_options import ConfigOption, DbOption, not_yet


def demo_command(db: DbOption = None, config: ConfigOption = None) -> None:
    """Simulate a practice, ingest it, compute KPIs, build a report and serve the dashboard."""
    not_yet("demo", 8)
