"""The `[ingest]` table of the config: your own CSV profiles, memory, the lock wait and plausible dates.

```toml
[ingest]
profiles = ["profiles/my_pm_system.toml"]   # your own CSV/Excel profiles (files or folders)
memory_limit = "1GB"                         # DuckDB's memory while files load
lock_wait_seconds = 120                      # how long an ingest waits while another process has the warehouse open
earliest_date = "1901-01-01"                 # dates before it are quarantined as implausible
latest_years_ahead = 2                       # ... and dates more than this many years after the load
```

A mistake (an unknown key, a value of the wrong kind) is one error naming the config file and
the key, as for `[report]`, rather than a setting silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from kpis.config import Config
from kpis.errors import ConfigError

_KEYS = ("profiles", "memory_limit", "lock_wait_seconds", "earliest_date", "latest_years_ahead")


@dataclass(frozen=True)
class IngestSettings:
    profiles: tuple[str, ...] = ()
    # 1 GB holds a million-row file's staging tables and the joins over them without spilling
    # much, and leaves room for the chunk Python is parsing under a 2 GB process.
    memory_limit: str = "1GB"
    # A scheduled load waits this long for a reader (the dashboard) or another ingest to let go
    # of the warehouse file before it gives up (DuckDB allows one writing process).
    lock_wait_seconds: float = 120.0
    # A date outside this range is a typo or a placeholder (1900-01-01, 0001-01-01, 2999-12-31),
    # not an event, and would stretch every period range. Real exports do reach back decades
    # (a patient's history), so only the placeholders' side is cut by default.
    earliest_date: date = date(1901, 1, 1)
    latest_years_ahead: int = 2

    def date_range(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """(earliest, latest) plausible instant for a load starting `now`."""
        now = now or datetime.now(UTC)
        earliest = datetime(self.earliest_date.year, self.earliest_date.month, self.earliest_date.day, tzinfo=UTC)
        years = now.year + self.latest_years_ahead
        latest = datetime(years, 12, 31, 23, 59, 59, tzinfo=UTC)
        return earliest, latest


def ingest_settings(config: Config) -> IngestSettings:
    """The validated `[ingest]` table; a mistake names the config file and the key."""
    where = f"{config.path}: [ingest]" if config.path else "[ingest]"
    table: dict[str, Any] = config.raw.get("ingest", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KEYS)}")
    profiles = table.get("profiles", [])
    if isinstance(profiles, str):
        profiles = [profiles]
    if not isinstance(profiles, list) or not all(isinstance(p, str) and p for p in profiles):
        raise ConfigError(f'{where} profiles must be a list of paths, e.g. ["profiles/my_system.toml"]')
    memory = table.get("memory_limit", IngestSettings.memory_limit)
    if not isinstance(memory, str) or not memory.strip():
        raise ConfigError(f'{where} memory_limit must be a size such as "1GB", got {memory!r}')
    wait = table.get("lock_wait_seconds", IngestSettings.lock_wait_seconds)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
        raise ConfigError(f"{where} lock_wait_seconds must be a number of seconds, 0 or more, got {wait!r}")
    earliest = table.get("earliest_date", IngestSettings.earliest_date)
    if isinstance(earliest, str):
        try:
            earliest = date.fromisoformat(earliest)
        except ValueError:
            earliest = None
    if not isinstance(earliest, date) or isinstance(earliest, datetime):
        raise ConfigError(f'{where} earliest_date must be a date such as "1980-01-01", got {table["earliest_date"]!r}')
    ahead = table.get("latest_years_ahead", IngestSettings.latest_years_ahead)
    if isinstance(ahead, bool) or not isinstance(ahead, int) or not 0 <= ahead <= 100:
        raise ConfigError(f"{where} latest_years_ahead must be a whole number of years from 0 to 100, got {ahead!r}")
    return IngestSettings(
        profiles=tuple(profiles),
        memory_limit=memory.strip(),
        lock_wait_seconds=float(wait),
        earliest_date=earliest,
        latest_years_ahead=ahead,
    )
