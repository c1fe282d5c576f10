"""The people who may sign in to the dashboard: a name, a role, locations, and a password hash.

Roles (what each sees is its `kpis.scope.Scope`, applied inside the KPI API):

* **owner**: every location, the records behind a value, the audit log, loading data; manages
  users (`clinic-kpis users`);
* **analyst**: every location, aggregates and the pseudonymized records behind them;
* **manager**: the locations assigned, with their records;
* **viewer**: the aggregates of the locations assigned: no records, and small cells withheld;
  reads only (acknowledging alerts and recording changes are for the other roles).

Users live in the warehouse (table `users`, kpis/schema/007_users.sql); as soon as one exists,
the dashboard asks everyone to sign in. Passwords are stored only as an argon2id hash
(argon2-cffi); hashing costs a quarter of a second and 64 MiB on purpose, so it happens on a
submitted form, never on every rerun. A user without a password signs in through the
practice's identity provider (OpenID Connect), whose email claim is the user's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kpis.config import Config
from kpis.dimensions import DimensionError, resolve_values
from kpis.errors import ClinicKpisError
from kpis.scope import Scope

ROLES = ("owner", "manager", "analyst", "viewer")
LOCATION_ROLES = ("manager", "viewer")  # roles limited to the locations assigned
MIN_PASSWORD_LENGTH = 12


class UserError(ClinicKpisError):
    """A user cannot be added, changed or removed as asked."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    locations: tuple[str, ...] = ()
    password_hash: str | None = field(default=None, repr=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    def scope(self, config: Config | None = None) -> Scope:
        """What this user sees on the dashboard (reports and alerts always withhold small cells)."""
        names = config.location_names if config is not None else {}
        where = ", ".join(names.get(loc, loc) for loc in self.locations)
        label = f"{self.name} ({self.role}{' of ' + where if where else ''})"
        if self.role in LOCATION_ROLES:
            return Scope(
                locations=frozenset(self.locations),
                records=self.role == "manager",
                small_cells=self.role == "viewer",
                label=label,
            )
        return Scope(locations=None, records=True, small_cells=False, label=label)


def normalize_name(name: str) -> str:
    """A user name as stored and compared: trimmed, lower case (an email's case does not matter)."""
    text = str(name).strip().lower()
    if not text or any(not c.isprintable() or c.isspace() for c in text):
        raise UserError(f"user name {name!r}: one word without spaces, e.g. maria or maria@clinic.example")
    return text


def article(role: str) -> str:
    return "an" if role[:1] in "aeiou" else "a"


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password != password.strip() or "\n" in password:
        raise UserError("the password must not start or end with a space or hold a line break")
    return password


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """The argon2id hash of a checked password (`hasher`: cheaper parameters in tests)."""
    return (hasher or PasswordHasher()).hash(check_password(password))


def verify_password(user: User | None, password: str) -> bool:
    """Whether `password` is `user`'s. An unknown user or one without a password costs the same
    time as a wrong password, so the answer's timing does not tell which names exist."""
    if user is None or user.password_hash is None:
        _verify(_dummy_hash(), password)
        return False
    return _verify(user.password_hash, password)


def _verify(hashed: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(hashed, password)  # parameters are read from the hash
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return PasswordHasher().hash("not a password of anyone")


# -- the store -----------------------------------------------------------------------------------


def list_users(store: Any) -> list[User]:
    """Every user, by name. `store` is a `kpis.storage.Store` (or a Warehouse) open on the warehouse."""
    rows = store.cursor().execute(
        "SELECT name, role, locations, password_hash, created_at, updated_at FROM users ORDER BY name"
    )
    return [User(n, r, tuple(locs), h, c, u) for n, r, locs, h, c, u in rows.fetchall()]


def find_user(store: Any, name: str) -> User | None:
    try:
        wanted = normalize_name(name)
    except UserError:
        return None
    return next((u for u in list_users(store) if u.name == wanted), None)


def add_user(
    store: Any,
    name: str,
    role: str,
    locations: Sequence[str] = (),
    password: str | None = None,
    *,
    hasher: PasswordHasher | None = None,
) -> User:
    """Add a user; `password=None` makes one who signs in through the identity provider only."""
    user_name = normalize_name(name)
    if find_user(store, user_name) is not None:
        raise UserError(f"user {user_name} exists already; change it with `clinic-kpis users set-role`")
    role, ids = check_role(role), _locations(store, role, locations)
    hashed = hash_password(password, hasher) if password is not None else None
    now = datetime.now(UTC)
    with store.transaction(kpi_data=False) as cur:  # users are not KPI data: the results store holds
        cur.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)", [user_name, role, list(ids), hashed, now, now])
    return User(user_name, role, ids, hashed, now, now)


def set_role(store: Any, name: str, role: str, locations: Sequence[str] = ()) -> User:
    """Give a user another role (and locations); the last owner cannot stop being one."""
    user = get_user(store, name)
    role, ids = check_role(role), _locations(store, role, locations)
    if user.role == "owner" and role != "owner":
        _keep_an_owner(store, user)
    now = datetime.now(UTC)
    with store.transaction(kpi_data=False) as cur:
        cur.execute(
            "UPDATE users SET role = ?, locations = ?, updated_at = ? WHERE name = ?", [role, list(ids), now, user.name]
        )
    return User(user.name, role, ids, user.password_hash, user.created_at, now)


def set_password(store: Any, name: str, password: str, *, hasher: PasswordHasher | None = None) -> User:
    user = get_user(store, name)
    hashed = hash_password(password, hasher)
    now = datetime.now(UTC)
    with store.transaction(kpi_data=False) as cur:
        cur.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?", [hashed, now, user.name])
    return User(user.name, user.role, user.locations, hashed, user.created_at, now)


def remove_user(store: Any, name: str) -> User:
    """Remove a user; the last owner can go only when no one else is left."""
    user = get_user(store, name)
    if user.role == "owner":
        _keep_an_owner(store, user)
    with store.transaction(kpi_data=False) as cur:
        cur.execute("DELETE FROM users WHERE name = ?", [user.name])
    return user


def get_user(store: Any, name: str) -> User:
    """The user called `name`, or a UserError listing the users."""
    user = find_user(store, name)
    if user is None:
        known = ", ".join(u.name for u in list_users(store)) or "none"
        raise UserError(f"no user {str(name).strip().lower()!r}; users: {known}")
    return user


def _keep_an_owner(store: Any, leaving: User) -> None:
    others = [u for u in list_users(store) if u.name != leaving.name]
    if others and not any(u.role == "owner" for u in others):
        raise UserError(
            f"{leaving.name} is the last owner: make someone else an owner first "
            "(`clinic-kpis users set-role NAME --role owner`)"
        )


def _locations(store: Any, role: str, locations: Iterable[str]) -> tuple[str, ...]:
    """A role's locations as ids (each given as an id or a name); managers and viewers need one."""
    given = tuple(dict.fromkeys(str(loc).strip() for loc in locations if str(loc).strip()))
    if role not in LOCATION_ROLES:
        if given:
            raise UserError(
                f"{article(role)} {role} sees every location: give --location only to a manager or a viewer"
            )
        return ()
    if not given:
        raise UserError(f"a {role} sees the locations assigned: give at least one --location")
    try:
        ids = resolve_values(store.cursor(), "location", given, store.config)
    except DimensionError as exc:
        raise UserError(f"--location: {exc}") from None
    return tuple(sorted(dict.fromkeys(ids)))
