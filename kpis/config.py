"""Configuration: one TOML file with defaults that work when no file exists.

Precedence for every setting, highest first: command-line flag, environment variable, the
config file, the built-in default. The config file itself is found at `--config`, else
`$CLINIC_KPIS_CONFIG`, else `./clinic-kpis.toml` (used only if present).

The pseudonymization secret is deliberately *not* a config value: it lives in its own file
(mode 0600, next to the config by default) or in `$CLINIC_KPIS_SECRET`, so that the config can
be shared, committed or pasted into a bug report without leaking the key that protects patient
identifiers.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kpis.errors import ConfigError

DEFAULT_CONFIG_NAME = "clinic-kpis.toml"
DEFAULT_DB_NAME = "clinic_kpis.duckdb"
DEFAULT_SECRET_NAME = ".clinic-kpis.secret"
DEFAULT_TIMEZONE = "America/New_York"
DEFAULT_DEMO_DIR = Path("demo")  # where `clinic-kpis demo` (and so `make demo`) works unless told otherwise

ENV_CONFIG = "CLINIC_KPIS_CONFIG"
ENV_DB = "CLINIC_KPIS_DB"
ENV_SECRET = "CLINIC_KPIS_SECRET"
ENV_SMTP_PASSWORD = "CLINIC_KPIS_SMTP_PASSWORD"

# Top-level tables a config file may have. Each is documented in CONFIG_TEMPLATE below; an
# unknown table is almost always a typo, so it is an error rather than silently ignored.
KNOWN_SECTIONS = frozenset(
    {
        "practice",
        "warehouse",
        "secret",
        "business_hours",
        "locations",
        "targets",
        "kpi_options",
        "report",
        "smtp",
        "dashboard",
        "ingest",
        "refresh",
        "costs",
        "access",
        "alerts",
    }
)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class BusinessHours:
    """Opening hours, used for business-hour durations such as portal response time."""

    start: str = "08:00"
    end: str = "17:00"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    holidays: tuple[str, ...] = ()


@dataclass(frozen=True)
class SmtpSettings:
    """Where the monthly report is sent from. The password comes from the environment only."""

    host: str = "localhost"
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username: str | None = None
    sender: str = "clinic-kpis@localhost"

    @property
    def password(self) -> str | None:
        return os.environ.get(ENV_SMTP_PASSWORD)


@dataclass(frozen=True)
class Config:
    """The resolved configuration. `raw` keeps every table of the file for the package that owns it."""

    path: Path | None = None
    practice_name: str = "My Practice"
    timezone: str = DEFAULT_TIMEZONE
    db_path: Path = Path(DEFAULT_DB_NAME)
    secret_file: Path = Path(DEFAULT_SECRET_NAME)
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    location_names: dict[str, str] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    kpi_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    costs: dict[str, Any] = field(default_factory=lambda: _costs({}, "defaults"))  # friction-cost assumptions
    alerts: tuple[
        AlertRuleSettings, ...
    ] = ()  # the [[alerts]] tables, checked for shape (kpis/alerts.py does the rest)
    dashboard_url: str | None = None  # where the dashboard is served, for links in alert emails
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def secret(self) -> bytes:
        """The HMAC key for patient pseudonyms: `$CLINIC_KPIS_SECRET`, else the secret file.

        A weak key (short, or a few characters repeated) is refused: anyone could then recompute
        the pseudonym of a known patient id. `clinic-kpis init` writes 64 random hex digits."""
        env = os.environ.get(ENV_SECRET)
        if env:
            return _strong(env, ENV_SECRET)
        try:
            value = self.secret_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(
                f"no pseudonymization secret: {self.secret_file} does not exist. "
                f"Run `clinic-kpis init` to create one, or set {ENV_SECRET}."
            ) from None
        if not value:
            raise ConfigError(f"the secret file {self.secret_file} is empty")
        return _strong(value, str(self.secret_file))


MIN_SECRET_LENGTH = 16
MIN_SECRET_CHARACTERS = 8


def _strong(value: str, where: str) -> bytes:
    """`value` as the key, or a ConfigError when it is too weak to protect patient ids."""
    if len(value) < MIN_SECRET_LENGTH or len(set(value)) < MIN_SECRET_CHARACTERS:
        raise ConfigError(
            f"the pseudonymization secret from {where} is too weak ({len(value)} characters, {len(set(value))} "
            f"different): use at least {MIN_SECRET_LENGTH} characters with {MIN_SECRET_CHARACTERS} or more "
            "different ones, e.g. the 64 random hex digits `clinic-kpis init` writes"
        )
    return value.encode()


def find_config_path(explicit: Path | None = None) -> Path | None:
    """The config file to read: the flag, else the environment, else ./clinic-kpis.toml if present."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def missing_warehouse_text(db_path: Path, config: Config) -> str:
    """Why the warehouse at `db_path` cannot be read, and the command that gives one.

    Where the demo has run (the repository after `make demo`), the only warehouse is the demo's,
    and `init` would make an empty one here: so, when nothing named another warehouse, point at
    the demo's config instead.
    """
    demo_config = DEFAULT_DEMO_DIR / DEFAULT_CONFIG_NAME
    if config.path is None and db_path == Path(DEFAULT_DB_NAME) and demo_config.is_file():
        return (
            f"no warehouse at {db_path}; the demo's is in {DEFAULT_DEMO_DIR}/: add --config {demo_config} "
            f'(in Python: Warehouse.open(config="{demo_config}")), or create your own with `clinic-kpis init`'
        )
    return (
        f"no warehouse at {db_path}: create one with `clinic-kpis init --db {db_path}` "
        "and load data with `clinic-kpis ingest`"
    )


def check_timezone(timezone: str, where: str) -> str:
    """`timezone` if it is an IANA zone name; else a ConfigError naming `where` it came from."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where} {timezone!r} is not an IANA time zone such as 'America/New_York'") from None
    return timezone


def load_config(path: Path | None = None, *, db: Path | None = None) -> Config:
    """Load the config, apply environment and flag overrides, and validate it.

    `path` and `db` are the values of the `--config` and `--db` flags (None when not given).
    A config file named explicitly (flag or env) must exist; the default one is optional.
    """
    cfg_path = find_config_path(path)
    data: dict[str, Any] = {}
    if cfg_path is not None:
        if not cfg_path.exists():
            raise ConfigError(f"config file {cfg_path} does not exist (run `clinic-kpis init --config {cfg_path}`)")
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{cfg_path}: not UTF-8 text") from None
    where = str(cfg_path) if cfg_path else "defaults"
    unknown = sorted(set(data) - KNOWN_SECTIONS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_SECTIONS))}"
        )
    base = cfg_path.parent if cfg_path else Path(".")

    practice = _table(data, "practice", where)
    timezone = check_timezone(str(practice.get("timezone", DEFAULT_TIMEZONE)), f"{where}: [practice] timezone")

    warehouse = _table(data, "warehouse", where)
    if db is not None:
        db_path = Path(db)
    elif os.environ.get(ENV_DB):
        db_path = Path(os.environ[ENV_DB])
    elif "path" in warehouse:
        db_path = _relative(base, warehouse["path"])
    else:
        db_path = Path(DEFAULT_DB_NAME)

    secret_tbl = _table(data, "secret", where)
    secret_file = _relative(base, secret_tbl.get("file", DEFAULT_SECRET_NAME))

    return Config(
        path=cfg_path,
        practice_name=_one_line(str(practice.get("name", "My Practice")), f"{where}: [practice] name"),
        timezone=timezone,
        db_path=db_path,
        secret_file=secret_file,
        business_hours=_business_hours(_table(data, "business_hours", where), where),
        location_names={str(k): str(v) for k, v in _table(data, "locations", where).items()},
        targets=_table(data, "targets", where),
        kpi_options=_table(data, "kpi_options", where),
        report=_table(data, "report", where),
        smtp=_smtp(_table(data, "smtp", where), where),
        costs=_costs(_table(data, "costs", where), where),
        alerts=_alert_rules(data.get("alerts", []), where),
        dashboard_url=_dashboard_url(_table(data, "dashboard", where), where),
        raw=data,
    )


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value


def _relative(base: Path, value: Any) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


def _business_hours(tbl: dict[str, Any], where: str) -> BusinessHours:
    bh = BusinessHours(
        start=str(tbl.get("start", BusinessHours.start)),
        end=str(tbl.get("end", BusinessHours.end)),
        days=tuple(str(d).lower()[:3] for d in tbl.get("days", BusinessHours.days)),
        holidays=tuple(str(d) for d in tbl.get("holidays", ())),
    )
    for key in ("start", "end"):
        hh, _, mm = getattr(bh, key).partition(":")
        if not (hh.isdigit() and mm.isdigit() and 0 <= int(hh) < 24 and 0 <= int(mm) < 60):
            raise ConfigError(f"{where}: [business_hours] {key} must look like '08:00', got {getattr(bh, key)!r}")
    bad = [d for d in bh.days if d not in _WEEKDAYS]
    if bad:
        raise ConfigError(f"{where}: [business_hours] days has unknown day(s) {bad}; use mon..sun")
    return bh


def _smtp(tbl: dict[str, Any], where: str) -> SmtpSettings:
    if "password" in tbl:
        raise ConfigError(
            f"{where}: [smtp] password must not be stored in the config file; set {ENV_SMTP_PASSWORD} instead"
        )
    security = str(tbl.get("security", SmtpSettings.security)).lower()
    if security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"{where}: [smtp] security must be starttls, ssl or none, got {security!r}")
    try:
        port = int(tbl.get("port", 465 if security == "ssl" else SmtpSettings.port))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: [smtp] port must be a number") from None
    return SmtpSettings(
        host=str(tbl.get("host", SmtpSettings.host)),
        port=port,
        security=security,
        username=tbl.get("username"),
        sender=_one_line(str(tbl.get("from", SmtpSettings.sender)), f"{where}: [smtp] from"),
    )


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _one_line(value: str, where: str) -> str:
    """`value` if it holds no line break or other control character: it goes into email headers
    and one-line messages, where a line break would start a new header."""
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        raise ConfigError(f"{where} must be one line of text; it holds {bad!r}")
    return value


@contextmanager
def private_files() -> Iterator[None]:
    """Files created inside are readable and writable by their owner only (umask 077), like the
    secret: the warehouse file, its write-ahead log and DuckDB's spill files hold practice data."""
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


# -- [costs]: the friction-cost assumptions (used by kpis/costs.py) ------------------------------


@dataclass(frozen=True)
class CostSetting:
    """One assumption of the friction-cost model: its default, unit and source (docs/contracts.md section 7)."""

    default: Any
    unit: str
    source: str


COST_SETTINGS: dict[str, CostSetting] = {
    "visit_value": CostSetting(
        None,
        "USD per visit",
        "the practice's own average payer payment per paid claim over the 12 months before the "
        "period's end, from its 835 remittances; set a value here when no 835s are loaded",
    ),
    "denial_rework_cost": CostSetting(
        118.0,
        "USD per denied claim",
        "Change Healthcare, Healthy Hospital Revenue Cycle Index (HFMA ANI, June 2017): about $118 "
        "to rework and appeal a denied claim (hospital claims; a practice's own cost is often lower)",
    ),
    "denial_rework_minutes": CostSetting(
        30.0, "staff minutes per denied claim", "estimate (no published figure): read the remittance, fix, resubmit"
    ),
    "no_show_staff_minutes": CostSetting(
        10.0, "staff minutes per no-show", "estimate (no published figure): call the patient and rebook the visit"
    ),
    "booking_queues": CostSetting(
        ["appointments", "scheduling"],
        "phone queue names",
        "the queues whose callers want an appointment; their share of abandoned calls is measured",
    ),
    "booking_share": CostSetting(
        None,
        "share of abandoned calls",
        "used only when no booking queue is found in the calls: set the share of abandoned calls "
        "that wanted an appointment",
    ),
    "callback_minutes": CostSetting(
        3.0, "staff minutes per abandoned call", "estimate (no published figure): return a missed call"
    ),
    "cost_of_capital": CostSetting(
        0.075,
        "per year",
        "Federal Reserve statistical release H.15, bank prime loan rate: 7.50% from Dec 2024 to Sep 2025",
    ),
    "staff_cost_per_hour": CostSetting(
        20.84,
        "USD per staff hour",
        "US Bureau of Labor Statistics, OEWS May 2023: medical assistants' mean annual wage $43,350 "
        "/ 2,080 hours (wages only, no benefits)",
    ),
}

_SHARES = {"booking_share"}


def _costs(table: dict[str, Any], where: str) -> dict[str, Any]:
    """The friction-cost assumptions in use: the defaults overridden by [costs], each checked."""
    unknown = sorted(set(table) - set(COST_SETTINGS))
    if unknown:
        raise ConfigError(f"{where}: [costs] unknown key(s) {', '.join(unknown)}; known: {', '.join(COST_SETTINGS)}")
    values = {name: s.default for name, s in COST_SETTINGS.items()}
    for name, value in table.items():
        if name == "booking_queues":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: [costs] booking_queues must be a list of queue names")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: [costs] {name} must be a number >= 0, got {value!r}")
        elif name in _SHARES and value > 1:
            raise ConfigError(f"{where}: [costs] {name} is a share between 0 and 1, got {value!r}")
        values[name] = list(value) if name == "booking_queues" else float(value)
    return values


# -- [[alerts]]: rules that raise alerts (evaluated by kpis/alerts.py) ---------------------------

ALERT_CONDITIONS = ("red_line", "off_target", "change", "spc_signal")
ALERT_SCOPES = {"practice": None, "locations": "location", "providers": "provider", "payers": "payer"}
ALERT_DIRECTIONS = ("worse", "better", "either")
ALERT_GRAINS = ("week", "month", "quarter")
_ALERT_KEYS = ("name", "kpi", "condition", "scope", "grain", "periods", "points", "percent", "direction", "enabled")


@dataclass(frozen=True)
class AlertRuleSettings:
    """One `[[alerts]]` table as written, its shape checked; a field left out is None.

    This module knows no KPI, so the KPI id, what the KPI allows and the defaults a table without
    `kpi` overrides are checked by `kpis.alerts`, with `where` naming the table in every message.
    """

    where: str  # "clinic-kpis.toml: [[alerts]] #2 (no-shows-east)"
    name: str | None = None
    kpi: str | None = None
    condition: str | None = None
    scope: tuple[str, ...] | None = None  # "practice", "locations", "providers", "payers", "location=EAST", ...
    grain: str | None = None
    periods: int | None = None
    points: float | None = None
    percent: float | None = None
    direction: str | None = None
    enabled: bool = True


def _alert_rules(tables: Any, where: str) -> tuple[AlertRuleSettings, ...]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{where}: alerts must be [[alerts]] tables, one per rule")
    rules, names = [], set()
    for i, table in enumerate(tables, start=1):
        name = table.get("name")
        label = f"{where}: [[alerts]] #{i}" + (f" ({name})" if isinstance(name, str) else "")
        unknown = sorted(set(table) - set(_ALERT_KEYS))
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_ALERT_KEYS)}")
        if name is not None and not (isinstance(name, str) and name.strip() and name.strip() == name):
            raise ConfigError(f"{label}: name must be a short text without surrounding spaces")
        if name in names:
            raise ConfigError(f"{label}: another rule is already named {name!r}")
        names.add(name)
        if name is None and not ("kpi" in table and "condition" in table):
            raise ConfigError(f"{label}: a rule needs a kpi and a condition (or the name of a default rule to change)")
        rules.append(
            AlertRuleSettings(
                where=label,
                name=name,
                kpi=_text_of(table, "kpi", label),
                condition=_choice(table, "condition", ALERT_CONDITIONS, label),
                scope=_alert_scope(table.get("scope"), label),
                grain=_choice(table, "grain", ALERT_GRAINS, label),
                periods=_number(table, "periods", label, integer=True),
                points=_number(table, "points", label),
                percent=_number(table, "percent", label),
                direction=_choice(table, "direction", ALERT_DIRECTIONS, label),
                enabled=_flag(table, "enabled", label),
            )
        )
    return tuple(rules)


def _text_of(table: dict[str, Any], key: str, label: str) -> str | None:
    value = table.get(key)
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise ConfigError(f'{label}: {key} must be a text, e.g. {key} = "no_show_rate"')
    return value.strip() if value is not None else None


def _choice(table: dict[str, Any], key: str, choices: tuple[str, ...], label: str) -> str | None:
    value = table.get(key)
    if value is not None and value not in choices:
        raise ConfigError(f"{label}: unknown {key} {value!r}; use one of {', '.join(choices)}")
    return value


def _number(table: dict[str, Any], key: str, label: str, *, integer: bool = False) -> Any:
    value = table.get(key)
    if value is None:
        return None
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        what = "a whole number >= 1" if integer else "a number > 0"
        raise ConfigError(f"{label}: {key} must be {what}, got {value!r}")
    return value if integer else float(value)


def _flag(table: dict[str, Any], key: str, label: str) -> bool:
    value = table.get(key, True)
    if not isinstance(value, bool):
        raise ConfigError(f"{label}: {key} must be true or false, got {value!r}")
    return value


def _alert_scope(value: Any, label: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f'{label}: scope must be a text or a list, e.g. scope = ["practice", "locations"]')
    out = []
    for item in items:
        text = str(item).strip()
        dim, sep, scope_value = text.partition("=")
        singles = {d for d in ALERT_SCOPES.values() if d}
        if text in ALERT_SCOPES or (sep and dim.strip() in singles and scope_value.strip()):
            out.append(f"{dim.strip()}={scope_value.strip()}" if sep else text)
            continue
        raise ConfigError(
            f"{label}: unknown scope {item!r}; use {', '.join(ALERT_SCOPES)}, or location=ID, provider=ID or payer=ID"
        )
    return tuple(dict.fromkeys(out))


def _dashboard_url(table: dict[str, Any], where: str) -> str | None:
    url = table.get("url")
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: [dashboard] url must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def write_secret(path: Path) -> bool:
    """Create a new random secret at `path` (mode 0600). Returns False if one already exists.

    An existing secret is never overwritten: changing it would silently split every patient
    into two pseudonyms.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return True


CONFIG_TEMPLATE = """\
# clinic-kpis configuration. Every setting is optional; the values shown are the defaults.
# Precedence: command-line flag > environment variable > this file > built-in default.

[practice]
name = "{practice_name}"
# IANA time zone of the practice: decides which day, week and month every event falls in.
timezone = "{timezone}"

[warehouse]
# The DuckDB file (relative paths are relative to this file). Override: --db or CLINIC_KPIS_DB.
path = "{db_path}"

[secret]
# The key that turns patient ids into pseudonyms (HMAC-SHA256). Keep it out of version control
# and back it up: a new key gives every patient a new pseudonym. Override: CLINIC_KPIS_SECRET.
file = "{secret_file}"

[business_hours]
# Used for business-hour durations (portal response time).
start = "08:00"
end = "17:00"
days = ["mon", "tue", "wed", "thu", "fri"]
holidays = []            # e.g. ["2026-12-25", "2027-01-01"]

[locations]
# Display names for location ids, e.g.
# EAST = "Eastside Family Medicine"

[targets]
# Per-KPI target and warning band, overriding the sourced defaults, e.g.
# no_show_rate = {{ target = 0.07, red = 0.10 }}

[kpi_options]
# Per-KPI definition variants, e.g.
# days_in_ar = {{ preset = "mgma" }}
# no_show_rate = {{ late_cancel = "separate", late_cancel_hours = 24 }}

[report]
# Who receives the monthly report. "practice" gets the whole-practice report; a location id
# gets that location's report.
# recipients = {{ practice = ["owner@example.org"], EAST = ["east.manager@example.org"] }}
paper = "letter"         # letter | a4

[ingest]
# Your own CSV/Excel export profiles (TOML, see ingest/profiles/ for examples), in addition to
# the shipped ones; relative paths are relative to this file.
# profiles = ["profiles/my_pm_system.toml"]
# DuckDB's memory while files load (it spills to <warehouse>.tmp beyond it); 1GB keeps a
# large ingest under 2 GB of RAM; raise it on a bigger machine for speed.
# memory_limit = "1GB"
# While another program has the warehouse open (the dashboard, another ingest), an ingest
# waits this many seconds for it before it gives up.
# lock_wait_seconds = 120
# Dates outside this range are placeholders or typos: their records are quarantined.
# earliest_date = "1901-01-01"
# latest_years_ahead = 2

[refresh]
# DuckDB's memory while the results store refreshes (after each load, or `clinic-kpis refresh`)
# and while `clinic-kpis init` migrates an older warehouse; it spills to <warehouse>.tmp beyond it.
# 1.2GB keeps a 10 M-appointment refresh under 2 GB of RAM; raise it on a bigger machine for speed.
# memory_limit = "1.2GB"

[costs]
# What a KPI's gap to its target costs (the friction-cost ranking). Each default cites its
# source in docs/contracts.md section 7; set your own, e.g.
# visit_value = 95.0            # USD per visit (default: your 835s' average payment per claim)
# denial_rework_cost = 118.0    # USD to rework a denied claim
# denial_rework_minutes = 30    # staff minutes per denied claim
# no_show_staff_minutes = 10    # staff minutes per no-show (call, rebook)
# booking_queues = ["appointments", "scheduling"]   # phone queues of callers who want a visit
# booking_share = 0.5           # share of abandoned calls wanting a visit, if no such queue
# callback_minutes = 3          # staff minutes per abandoned call
# cost_of_capital = 0.075       # per year, on money waiting in A/R
# staff_cost_per_hour = 20.84   # USD per staff hour

[access]
# Dashboard sign-in (users: `clinic-kpis users add NAME --role owner|manager|analyst|viewer`; as
# soon as one exists, everyone signs in) and the audit log beside the warehouse.
# session_minutes = 480          # a sign-in lasts this long
# audit_retention_days = 2191    # audit entries older than this are dropped (6 years)
# Sign-in through your identity provider (OpenID Connect, set up in .streamlit/secrets.toml):
# the claim that names a user here, and roles for members of a group who are not users here.
# oidc_claim = "email"
# oidc_groups_claim = "groups"
# oidc_groups = {{ "kpi-owners" = "owner", "east-staff" = {{ role = "manager", locations = ["EAST"] }} }}

[smtp]
host = "localhost"
port = 587
security = "starttls"    # starttls | ssl | none
# username = "reports@example.org"
from = "clinic-kpis@localhost"
# The password is read from the environment variable CLINIC_KPIS_SMTP_PASSWORD only.

[dashboard]
# Where `clinic-kpis dashboard` is served, for the links in alert emails, e.g.
# url = "http://clinic-server:8501"

# Alert rules, checked by `clinic-kpis alerts check` (run it after each ingest) on each KPI's
# latest complete period; the digests go to [report] recipients. Without any table here, every
# headline KPI has two rules, for the practice and each location, monthly:
#   <kpi>.red_line     its value is beyond the KPI's red line
#   <kpi>.off_target   its value missed the target 3 months in a row
# for no_show_rate, third_next_available, visit_cycle_time, call_abandonment_rate, days_in_ar,
# ar_over_90_pct, denial_rate, clean_claim_rate, net_collection_rate and referral_completion_rate.
# An [[alerts]] table with one of those names changes it (e.g. periods = 2) or switches it off
# (enabled = false); a table with a new name (or none) adds a rule, e.g.
# [[alerts]]
# name = "denials shift at a payer"
# kpi = "denial_rate"
# condition = "spc_signal"  # red_line | off_target (periods = N) | change (points = X or percent = X) | spc_signal
# scope = "payers"          # practice | locations | providers | payers | location=EAST ..., or a list of them
# direction = "worse"       # worse | better | either (for change and spc_signal)
# grain = "month"           # week | month | quarter
# spc_signal uses the KPI's control chart (P chart for rates): a change that did nothing still
# signalled at 13.5% of the simulator's seeds (docs/api.md), so treat it as a reason to look.
"""


def render_config_template(*, practice_name: str, timezone: str, db_path: str, secret_file: str) -> str:
    """The commented config file that `clinic-kpis init` writes."""
    return CONFIG_TEMPLATE.format(
        practice_name=practice_name.replace('"', "'"),
        timezone=timezone,
        db_path=db_path,
        secret_file=secret_file,
    )
