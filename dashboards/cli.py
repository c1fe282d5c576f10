"""`clinic-kpis dashboard`."""

from kpis.cli_options import ConfigOption, DbOption, not_yet


def dashboard_command(db: DbOption = None, config: ConfigOption = None) -> None:
    """Serve the practice manager's dashboard (Streamlit)."""
    not_yet("dashboard", 6)
