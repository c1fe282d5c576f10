"""Options shared by every `clinic-kpis` command, the port a server may use, and the placeholder
for unfinished ones.

Kept apart from `kpis/cli.py` so each package's command module can import them without a
circular import.
"""

from __future__ import annotations

import errno
import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from kpis.errors import ClinicKpisError


class OutputFormat(StrEnum):
    """What a command that prints rows prints them as."""

    table = "table"
    csv = "csv"
    json = "json"


class Engine(StrEnum):
    """Where KPIs are computed: in the DuckDB warehouse, or on Spark from its Parquet export."""

    duckdb = "duckdb"
    spark = "spark"


ParquetOption = Annotated[
    Optional[Path],
    typer.Option(help="The folder `clinic-kpis export --parquet` wrote, which Spark reads (--engine spark)."),
]
MasterOption = Annotated[
    str, typer.Option(help="Spark master for --engine spark: local[N], or a cluster such as spark://host:7077.")
]

DbOption = Annotated[
    Optional[Path],
    typer.Option(
        "--db",
        help="Warehouse file (default: $CLINIC_KPIS_DB, the config's [warehouse] path, or ./clinic_kpis.duckdb).",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="Config file (default: $CLINIC_KPIS_CONFIG, or ./clinic-kpis.toml if present).",
        show_default=False,
    ),
]


# How far past a taken default port to look for a free one (Streamlit's own retry count).
PORT_TRIES = 100


def serving_port(address: str, port: int, *, chosen: bool) -> int:
    """The port to serve on, checked before anything starts: `port` when it is free.

    When it is taken, a default port gives way to the next free one (said on stderr); a port the
    user chose is an error naming a free one, since they may rely on that address.
    """
    if _port_is_free(address, port):
        return port
    following = range(port + 1, min(port + PORT_TRIES, 65535) + 1)
    free = next((p for p in following if _port_is_free(address, p)), None)
    if free is None:
        raise ClinicKpisError(
            f"ports {port} to {following.stop - 1} on {address} are all in use: choose a free one with --port"
        )
    if chosen:
        raise ClinicKpisError(
            f"port {port} on {address} is in use (by another program, perhaps a dashboard still running): "
            f"stop it, or choose another port, e.g. --port {free} (free now)"
        )
    typer.echo(f"port {port} is in use (perhaps a dashboard still running): serving on port {free} instead", err=True)
    return free


def _port_is_free(address: str, port: int) -> bool:
    """Whether something already listens on (address, port). Any other reason the server could not
    listen there (an address not of this machine, a privileged port) is left to the server to say."""
    try:
        family, kind, proto, _, where = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            # as the server will: connections of an earlier server still closing do not hold the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(where)
    except OSError as exc:
        return exc.errno != errno.EADDRINUSE
    return True


def not_yet(command: str, issue: int) -> None:
    """Exit 2 with a clear message for a command whose issue has not landed yet."""
    typer.echo(f"`clinic-kpis {command}` is not available in this version yet (tracked as issue #{issue}).", err=True)
    raise typer.Exit(2)
