"""Sign-in settings (`[access]` in clinic-kpis.toml) and who an identity provider's user is here.

    [access]
    session_minutes = 480            # a dashboard sign-in lasts this long, then asks again
    audit_retention_days = 2191      # audit entries older than this are dropped
    oidc_claim = "email"             # the identity provider's claim that names a user
    oidc_groups_claim = "groups"     # the claim listing the user's groups
    # a group's members who are not users here get its role:
    oidc_groups = { "kpi-owners" = "owner", "east-staff" = { role = "manager", locations = ["EAST"] } }

Signing in through OpenID Connect (Streamlit's `st.login`, configured in its secrets file) gives
the dashboard the provider's claims; `oidc_user` turns them into a `kpis.users.User`: the user
of that name (claim `oidc_claim`, e.g. the email) when there is one, else the role of the first
configured group the claims list, else no one (signed in at the provider, but not allowed here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kpis.audit import DEFAULT_RETENTION_DAYS
from kpis.config import Config
from kpis.errors import ConfigError
from kpis.users import LOCATION_ROLES, ROLES, User, UserError, article, normalize_name

DEFAULT_SESSION_MINUTES = 8 * 60
_KEYS = {"session_minutes", "audit_retention_days", "oidc_claim", "oidc_groups_claim", "oidc_groups"}


@dataclass(frozen=True)
class GroupRole:
    role: str
    locations: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessSettings:
    session_minutes: int = DEFAULT_SESSION_MINUTES
    audit_retention_days: int = DEFAULT_RETENTION_DAYS
    oidc_claim: str = "email"
    oidc_groups_claim: str = "groups"
    oidc_groups: Mapping[str, GroupRole] = field(default_factory=dict)


def access_settings(config: Config) -> AccessSettings:
    """The `[access]` table of the config, checked (a mistake names the file and the key)."""
    where = f"{config.path or 'defaults'}: [access]"
    table = config.raw.get("access", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    groups = table.get("oidc_groups", {})
    if not isinstance(groups, dict):
        raise ConfigError(f"{where} oidc_groups must be a table of group = role")
    return AccessSettings(
        session_minutes=_positive(table, "session_minutes", DEFAULT_SESSION_MINUTES, where),
        audit_retention_days=_positive(table, "audit_retention_days", DEFAULT_RETENTION_DAYS, where),
        oidc_claim=_text(table, "oidc_claim", "email", where),
        oidc_groups_claim=_text(table, "oidc_groups_claim", "groups", where),
        oidc_groups={str(g): _group_role(v, f"{where} oidc_groups.{g}") for g, v in groups.items()},
    )


def oidc_user(users: Mapping[str, User], claims: Mapping[str, Any], settings: AccessSettings) -> User | None:
    """The user an identity provider's claims sign in as here, or None (see the module docstring).

    `users`: the warehouse's users by name (`kpis.users.list_users`).
    """
    name = claims.get(settings.oidc_claim)
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        user = users.get(normalize_name(name))
    except UserError:
        return None
    if user is not None:
        return user
    groups = claims.get(settings.oidc_groups_claim) or []
    groups = [groups] if isinstance(groups, str) else list(groups)
    for group, granted in settings.oidc_groups.items():
        if group in groups:
            return User(normalize_name(name), granted.role, granted.locations)
    return None


def _positive(table: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} {key} must be a whole number above 0, got {value!r}")
    return value


def _text(table: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} {key} must be a claim name, got {value!r}")
    return value.strip()


def _group_role(value: Any, where: str) -> GroupRole:
    if isinstance(value, str):
        value = {"role": value}
    if not isinstance(value, dict) or set(value) - {"role", "locations"}:
        raise ConfigError(f"{where} must be a role, or {{ role = ..., locations = [...] }}")
    role = value.get("role")
    if role not in ROLES:
        raise ConfigError(f"{where}: unknown role {role!r}; use one of {', '.join(ROLES)}")
    locations = value.get("locations", [])
    if not isinstance(locations, list) or not all(isinstance(loc, str) and loc.strip() for loc in locations):
        raise ConfigError(f"{where}: locations must be a list of location ids")
    if (role in LOCATION_ROLES) != bool(locations):
        need = "needs locations" if role in LOCATION_ROLES else "sees every location: give no locations"
        raise ConfigError(f"{where}: {article(role)} {role} {need}")
    return GroupRole(role, tuple(sorted({loc.strip() for loc in locations})))
