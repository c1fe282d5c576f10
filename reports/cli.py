"""`clinic-kpis report build|send`."""

import typer

from kpis.cli_options import ConfigOption, DbOption, not_yet

app = typer.Typer(help="Build the monthly owner report (HTML + PDF) or send it by email.", no_args_is_help=True)


@app.command()
def build(db: DbOption = None, config: ConfigOption = None) -> None:
    """Build the monthly report as HTML and PDF."""
    not_yet("report build", 7)


@app.command()
def send(db: DbOption = None, config: ConfigOption = None) -> None:
    """Email the monthly report to the recipients in the config."""
    not_yet("report send", 7)
