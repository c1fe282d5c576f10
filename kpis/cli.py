"""The `clinic-kpis` command line: `init` and the commands every package registers.

Each command lives with the package that owns it (`ingest/cli.py`, `reports/cli.py`, ...), in a
`typer.Typer` that pyproject.toml names in the entry-point group `clinic_kpis.commands`; this
module loads them, so `kpis` never imports the packages built on it. A new command is one
`@commands.command()` in its package (a new package: one entry-point line, then reinstall).

Every command that touches the warehouse takes `--db` and `--config`. User errors are printed as
one line and exit 1: `ClinicKpisError` and the types in the group `clinic_kpis.user_errors` (for
a package that must not import kpis, such as sample_data).
"""

from __future__ import annotations

import os
import signal
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kpis import __version__
from kpis.cli_options import ConfigOption, DbOption
from kpis.config import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_DB_NAME,
    DEFAULT_SECRET_NAME,
    DEFAULT_TIMEZONE,
    ENV_SECRET,
    check_timezone,
    find_config_path,
    load_config,
    render_config_template,
    write_secret,
)
from kpis.errors import ClinicKpisError

COMMANDS = "clinic_kpis.commands"
USER_ERRORS = "clinic_kpis.user_errors"

app = typer.Typer(
    name="clinic-kpis",
    help=(
        "Operational KPIs for medical practices: ingest the exports you already have, compute "
        "published KPI definitions, and share them as a dashboard and a monthly report."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clinic-kpis {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Operational KPIs for medical practices."""


@app.command()
def init(
    db: DbOption = None,
    config: ConfigOption = None,
    practice_name: Annotated[str, typer.Option(help="Practice name written into a new config file.")] = "My Practice",
    timezone: Annotated[
        str, typer.Option(help="Practice time zone written into a new config file.")
    ] = DEFAULT_TIMEZONE,
) -> None:
    """Create the config file, the pseudonymization secret and the warehouse (safe to re-run).

    Existing files are kept: re-running `init` only migrates the warehouse schema. The secret
    is never printed.
    """
    from kpis.storage import Store

    cfg_path = find_config_path(config) or Path(DEFAULT_CONFIG_NAME)
    if cfg_path.exists():
        typer.echo(f"config     {cfg_path} (kept)")
    else:
        check_timezone(timezone, "--timezone")  # before anything is written, so a re-run is not blocked
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        db_for_file = db if db is not None else Path(DEFAULT_DB_NAME)
        cfg_path.write_text(
            render_config_template(
                practice_name=practice_name,
                timezone=timezone,
                db_path=str(db_for_file.resolve() if db is not None else db_for_file),
                secret_file=DEFAULT_SECRET_NAME,
            ),
            encoding="utf-8",
        )
        typer.echo(f"config     {cfg_path} (created)")
    cfg = load_config(cfg_path, db=db)

    if os.environ.get(ENV_SECRET):
        typer.echo(f"secret     from ${ENV_SECRET}")
    elif write_secret(cfg.secret_file):
        typer.echo(f"secret     {cfg.secret_file} (created, mode 0600; back it up, keep it private)")
    else:
        typer.echo(f"secret     {cfg.secret_file} (kept)")

    with Store(cfg.db_path, config=cfg) as wh:
        typer.echo(f"warehouse  {wh.path} (schema version {wh.schema_version()}, {len(wh.tables())} tables)")
    # The alert rules are checked now (KPIs, conditions, scope values the warehouse knows), not
    # when the scheduled `alerts check` first runs at night.
    from kpis.warehouse import Warehouse

    with Warehouse(cfg.db_path, read_only=True, config=cfg) as wh:
        rules = wh.check_alert_rules()
    defaults = sum(1 for rule in rules if rule.default)
    typer.echo(f"alerts     {len(rules)} rules ({defaults} default, {len(rules) - defaults} from the config)")


def _registered(group: str) -> list[Any]:
    """What the installed packages registered under `group`, by entry-point name."""
    return [entry.load() for entry in sorted(entry_points(group=group), key=lambda entry: entry.name)]


def _add_registered_commands() -> None:
    registered = _registered(COMMANDS)
    if not registered:
        raise RuntimeError(f"no {COMMANDS} entry points: install clinic-kpis (`pip install -e .`) to register them")
    for commands in registered:
        app.add_typer(commands)


_add_registered_commands()


class Terminated(BaseException):
    """SIGTERM arrived (a scheduler's timeout, `kill`, a service stop): unwind as an interrupt does."""


def main() -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 1.

    SIGTERM unwinds the command like Ctrl-C instead of killing it where it stands: a write in
    progress then rolls back and removes its copy of the warehouse (`kpis.publication`), which
    at 10 M appointments is 10–20 GB a killed load would otherwise leave on the disk. DuckDB
    reports a signal that interrupts a statement as its own error, so the handler's exception is
    recognised by the flag rather than by type.
    """
    user_errors = (ClinicKpisError, *_registered(USER_ERRORS))
    terminated: list[int] = []

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        app()
    except user_errors as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except BaseException:
        if not terminated:
            raise
        typer.echo("error: stopped by SIGTERM; a load or refresh not yet published was rolled back", err=True)
        sys.exit(128 + signal.SIGTERM)
