"""`clinic-kpis dashboard`: serve the Streamlit app on this machine.

The warehouse and config named by --db/--config are handed to the app through the same
environment variables the rest of clinic-kpis reads (CLINIC_KPIS_DB, CLINIC_KPIS_CONFIG), so the
app resolves settings exactly as every other command does. The server listens on loopback by
default. Serving on another address needs sign-in (at least one user: `clinic-kpis users add`),
or an explicit `--no-auth`, which serves the whole practice to anyone who reaches the port.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from kpis.cli_options import ConfigOption, DbOption, serving_port
from kpis.config import ENV_CONFIG, ENV_DB, is_loopback, load_config
from kpis.errors import ClinicKpisError

APP = Path(__file__).with_name("app.py")
DEFAULT_PORT = 8501

commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)


def streamlit_argv(port: int, address: str) -> list[str]:
    """The command that serves the app: this Python's streamlit, headless and set up for viewers.

    No source watching and no developer menu (a manager's dashboard is not a development server),
    and no usage statistics sent anywhere.
    """
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip


@commands.command(name="dashboard")
def dashboard_command(
    db: DbOption = None,
    config: ConfigOption = None,
    port: Annotated[
        Optional[int],
        typer.Option(help=f"Port to serve on [default: {DEFAULT_PORT}, or the next free one]", min=1, max=65535),
    ] = None,
    address: Annotated[
        str, typer.Option(help="Address to listen on; use 0.0.0.0 to let other machines connect.")
    ] = "127.0.0.1",
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve on another address although no user is set up to sign in (everyone sees all)."
        ),
    ] = False,
) -> None:
    """Serve the practice manager's dashboard (Streamlit) until interrupted.

    When the default port is taken, the next free one is used; a --port that is taken is an error.
    """
    from kpis import Warehouse
    from kpis.users import list_users

    cfg = load_config(config, db=db)
    with Warehouse(cfg.db_path, read_only=True, config=cfg) as wh:  # fail here, in one line, if it cannot be read
        users = len(list_users(wh))
    db_path = cfg.db_path.resolve()
    if users and no_auth:
        raise ClinicKpisError(
            f"--no-auth: sign-in is on ({users} user(s) in {db_path.name}); it cannot be turned off here. "
            "Remove the users (`clinic-kpis users remove`) to serve without it"
        )
    if not is_loopback(address) and not users and not no_auth:
        raise ClinicKpisError(
            f"refusing to serve on {address} without sign-in: anyone who reaches the dashboard would see the "
            "practice's data. Add the owner first (`clinic-kpis users add NAME --role owner`), keep the default "
            "127.0.0.1 and use a VPN or an SSH tunnel, or pass --no-auth if that is really meant"
        )
    port = serving_port(address, DEFAULT_PORT if port is None else port, chosen=port is not None)
    env = {**os.environ, ENV_DB: str(db_path)}
    if cfg.path is not None:
        env[ENV_CONFIG] = str(cfg.path.resolve())
    if not is_loopback(address) and not users:
        typer.echo(
            f"warning: serving on {address} with --no-auth: anyone who can reach this machine on port {port} sees "
            "the whole practice's data, without signing in",
            err=True,
        )
    typer.echo(f"Serving {db_path} at http://{address}:{port} (Ctrl+C stops it)", err=True)
    argv = streamlit_argv(port, address)
    os.execve(sys.executable, argv, env)
