"""Options shared by every `clinic-kpis` command, and the placeholder for unfinished ones.

Kept apart from `kpis/cli.py` so each package's command module can import them without a
circular import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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


def not_yet(command: str, issue: int) -> None:
    """Exit 2 with a clear message for a command whose issue has not landed yet."""
    typer.echo(f"`clinic-kpis {command}` is not available in this version yet (tracked as issue #{issue}).", err=True)
    raise typer.Exit(2)
