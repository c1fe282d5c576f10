"""The audit log: who signed in, what they looked at with which filters, which records and files
they took, which reports went out, and who changed the users.

It is a file of JSON lines beside the warehouse, `<warehouse>.audit.jsonl`, written only by
appending one line per event. Why not a table of the warehouse: a load (`clinic-kpis ingest`)
holds the warehouse for writing, and the dashboard must record a sign-in or a page view while it
runs; a separate file is never blocked by a load and never lost when one is rolled back. Each
append holds an exclusive lock (a `.lock` file beside it) for the few microseconds of the write,
so the dashboard's threads and the command line never interleave lines.

Entries older than the retention (`[access] audit_retention_days`, 6 years by default, as HIPAA
keeps its documentation) are dropped by the first append after they expire: the file is
rewritten without them under the same lock. Nothing else ever rewrites it. An entry holds no
patient data: user names, roles, page names, filter ids (locations, providers, payers), KPI ids
and counts.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from kpis.config import private_files
from kpis.errors import ClinicKpisError

DEFAULT_RETENTION_DAYS = 6 * 365 + 1
SUFFIX = ".audit.jsonl"
EVENTS = (
    "sign_in",  # outcome success or failure (with the reason)
    "sign_out",  # by the user, or because the session expired
    "view",  # a page with its filters
    "records",  # the records behind a value were listed
    "download",  # a CSV (numbers, records or the audit log itself)
    "report_sent",
    "alert_acknowledged",  # on the Alerts page, by the person signed in
    "change_recorded",  # in the change log, from the Improvement page
    "user_added",
    "user_changed",
    "user_removed",
)
COLUMNS = ["at", "event", "user", "role", "outcome", "client", "page", "kpi", "period", "filters", "detail"]


class AuditError(ClinicKpisError):
    """The audit log cannot be written or read."""


def command_line_user() -> str:
    """Who ran a command, for the audit log: the operating-system account."""
    try:
        return f"{getpass.getuser()} (command line)"
    except OSError:
        return "command line"


def audit_path(db_path: str | Path) -> Path:
    """The audit log of a warehouse: `clinic_kpis.duckdb` -> `clinic_kpis.duckdb.audit.jsonl`."""
    db = Path(db_path)
    return db.with_name(db.name + SUFFIX)


class AuditLog:
    """Append-only audit entries for one warehouse (see the module docstring)."""

    def __init__(self, path: str | Path, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.path = Path(path)
        self.retention = timedelta(days=retention_days)

    @classmethod
    def beside(cls, db_path: str | Path, retention_days: int = DEFAULT_RETENTION_DAYS) -> AuditLog:
        return cls(audit_path(db_path), retention_days)

    def record(
        self,
        event: str,
        user: str | None,
        *,
        role: str | None = None,
        outcome: str | None = None,
        client: str | None = None,
        page: str | None = None,
        kpi: str | None = None,
        period: str | None = None,
        filters: Mapping[str, Any] | None = None,
        **detail: Any,
    ) -> dict[str, Any]:
        """Append one entry (and drop the expired ones, if the oldest has expired); returns it."""
        if event not in EVENTS:
            raise AuditError(f"unknown audit event {event!r}; known: {', '.join(EVENTS)}")
        entry = {
            "at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "event": event,
            "user": user,
            "role": role,
            "outcome": outcome,
            "client": client,
            "page": page,
            "kpi": kpi,
            "period": period,
            "filters": {str(k): _plain(v) for k, v in (filters or {}).items()},
            "detail": {str(k): _plain(v) for k, v in detail.items()},
        }
        line = json.dumps(entry, ensure_ascii=False, sort_keys=False) + "\n"
        with self._locked():
            self._drop_expired()
            with private_files(), self.path.open("a", encoding="utf-8") as out:
                out.write(line)
        return entry

    def entries(self, since: datetime | None = None, until: datetime | None = None) -> pd.DataFrame:
        """The entries in file order (oldest first), `at` as a UTC timestamp; filters and detail as JSON text."""
        rows = [e for e in self._read() if _within(e, since, until)]
        frame = pd.DataFrame(
            [{**e, "filters": _json(e.get("filters")), "detail": _json(e.get("detail"))} for e in rows],
            columns=COLUMNS,
        )
        for column in COLUMNS[1:]:  # text, with None (not NaN) where an entry has no value
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
        return frame

    def _read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise AuditError(f"{self.path}, line {number}: not a JSON audit entry") from None
        return out

    def _drop_expired(self) -> None:
        """Rewrite the file without the entries past the retention, when its oldest one is."""
        try:
            with self.path.open(encoding="utf-8") as f:
                first = f.readline()
        except FileNotFoundError:
            return
        cutoff = datetime.now(UTC) - self.retention
        if not first.strip() or _time(json.loads(first)) >= cutoff:
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True)
                if line.strip() and _time(json.loads(line)) >= cutoff]  # fmt: skip
        fresh = self.path.with_name(self.path.name + ".new")
        with private_files():
            fresh.write_text("".join(kept), encoding="utf-8")
        os.replace(fresh, self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with private_files(), self.path.with_name(self.path.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _time(entry: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


def _within(entry: Mapping[str, Any], since: datetime | None, until: datetime | None) -> bool:
    at = _time(entry)
    return (since is None or at >= since) and (until is None or at < until)


def _plain(value: Any) -> Any:
    """A value JSON can hold: tuples and sets as sorted lists, dates as ISO text."""
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value or {}, ensure_ascii=False, sort_keys=True)
