"""`clinic-kpis users`: who may sign in to the dashboard, with which role and locations.

`add`, `set-role`, `set-password` and `remove` write the warehouse's `users` table (kpis/users.py)
and the audit log (kpis/audit.py), naming the account that ran the command. A password is read
from standard input when it is not a terminal (`echo "$PW" | clinic-kpis users add ...`), else
prompted for twice without echo; it is never an argument (it would stay in the shell history).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from kpis.audit import command_line_user
from kpis.cli_options import ConfigOption, DbOption, OutputFormat

if TYPE_CHECKING:
    from kpis.audit import AuditLog
    from kpis.storage import Store
    from kpis.users import User

app = typer.Typer(
    help="Who may sign in to the dashboard: add, list, set-role, set-password, remove.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)
commands.add_typer(app, name="users")

NameArgument = Annotated[str, typer.Argument(help="The user's name (what they type to sign in, or their email).")]
RoleOption = Annotated[str, typer.Option("--role", help="owner, manager, analyst or viewer.")]
LocationOption = Annotated[
    Optional[list[str]],
    typer.Option("--location", help="A location a manager or viewer sees (id or name; repeatable)."),
]


@app.command("add")
def add_command(
    name: NameArgument,
    role: RoleOption,
    location: LocationOption = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Signs in through the identity provider (OpenID Connect) only.")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a user. The password is read from standard input, or prompted for on a terminal."""
    from kpis.users import add_user, check_role

    check_role(role)
    password = None if no_password else _read_password()
    with _writing(db, config) as (store, audit):
        user = add_user(store, name, role, location or [], password)
        audit.record(
            "user_added", command_line_user(), target=user.name, target_role=user.role, locations=user.locations,
            password=user.has_password,
        )  # fmt: skip
    typer.echo(f"user {user.name} added: {_describe(user)}")


@app.command("list")
def list_command(
    output: Annotated[OutputFormat, typer.Option("--format", help="table, json or csv.")] = OutputFormat.table,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """List the users with their roles and locations (never their password hashes)."""
    from kpis.storage import Store
    from kpis.users import list_users

    with Store.open(db, config=config, read_only=True) as store:
        users = list_users(store)
    rows = [
        {
            "name": u.name,
            "role": u.role,
            "locations": list(u.locations),
            "sign_in": "password" if u.has_password else "identity provider",
            "updated_at": u.updated_at.isoformat() if u.updated_at else None,
        }
        for u in users
    ]
    if output is OutputFormat.json:
        typer.echo(json.dumps(rows, indent=2))
    elif output is OutputFormat.csv:
        typer.echo("name,role,locations,sign_in,updated_at")
        for r in rows:
            typer.echo(f"{r['name']},{r['role']},{' '.join(r['locations'])},{r['sign_in']},{r['updated_at']}")
    elif not rows:
        typer.echo("No users: the dashboard asks no one to sign in. Add the owner with `clinic-kpis users add`.")
    else:
        for r in rows:
            where = f" of {', '.join(r['locations'])}" if r["locations"] else ""
            typer.echo(f"{r['name']:<32} {r['role']}{where} ({r['sign_in']})")


@app.command("set-role")
def set_role_command(
    name: NameArgument,
    role: RoleOption,
    location: LocationOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Give a user another role (and, for a manager or viewer, the locations they see)."""
    from kpis.users import check_role, set_role

    check_role(role)
    with _writing(db, config) as (store, audit):
        user = set_role(store, name, role, location or [])
        audit.record(
            "user_changed", command_line_user(), target=user.name, target_role=user.role, locations=user.locations
        )
    typer.echo(f"user {user.name} is now {_describe(user)}")


@app.command("set-password")
def set_password_command(name: NameArgument, db: DbOption = None, config: ConfigOption = None) -> None:
    """Give a user a new password (read from standard input, or prompted for on a terminal)."""
    from kpis.storage import Store
    from kpis.users import get_user, set_password

    with Store.open(db, config=config, read_only=True) as store:
        get_user(store, name)  # an unknown name fails before the password is asked for
    password = _read_password()
    with _writing(db, config) as (store, audit):
        user = set_password(store, name, password)
        audit.record("user_changed", command_line_user(), target=user.name, password=True)
    typer.echo(f"user {user.name}: password changed")


@app.command("remove")
def remove_command(name: NameArgument, db: DbOption = None, config: ConfigOption = None) -> None:
    """Remove a user: they can no longer sign in (their audit entries stay)."""
    from kpis.users import remove_user

    with _writing(db, config) as (store, audit):
        user = remove_user(store, name)
        audit.record("user_removed", command_line_user(), target=user.name, target_role=user.role)
    typer.echo(f"user {user.name} removed")


@contextmanager
def _writing(db: Path | None, config: Path | None) -> Iterator[tuple[Store, AuditLog]]:
    """The warehouse open for writing, and its audit log.

    Like every write, on a copy published when done (`Warehouse.writing`): a dashboard reading
    the warehouse never waits for it, and sees the change on its next call.
    """
    from kpis import Warehouse
    from kpis.access import access_settings
    from kpis.audit import AuditLog
    from kpis.config import load_config
    from kpis.storage import Store

    cfg = load_config(config, db=db)
    if not cfg.db_path.exists():
        Store.open(config=cfg, read_only=True).close()  # no warehouse: the usual one-line error
    retention = access_settings(cfg).audit_retention_days
    with Warehouse.writing(config=cfg, what="users change") as store:
        yield store, AuditLog.beside(cfg.db_path, retention)


def _read_password() -> str:
    """The new password: one line of standard input when it is not a terminal, else prompted twice."""
    from kpis.users import UserError, check_password

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        line = sys.stdin.readline()
        if not line:
            raise UserError("no password on standard input (or use --no-password for identity-provider sign-in)")
        password = line.rstrip("\r\n")
    return check_password(password)


def _describe(user: User) -> str:
    where = f" of {', '.join(user.locations)}" if user.locations else ""
    how = "signs in with a password" if user.has_password else "signs in through the identity provider"
    return f"{user.role}{where}, {how}"
