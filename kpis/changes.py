"""The change log: the process changes a practice records, each edit kept with its time.

A change says what the practice did (title, description), from which day, for which KPIs and
where (its scope: the whole practice, or some locations, providers, ...). It is stored
append-only in `change_versions` (kpis/schema/004_changes.sql): adding, editing and removing a
change each write a version, so a change's history can always be shown.

`ChangeLogMethods` is mixed into `Warehouse`. Every KPI id and scope value is checked against
the catalog and the warehouse with the same messages as `compute` and `clinic-kpis kpis`.
A warehouse opened with a limited scope (`kpis.scope`) lists the practice-wide changes and those
whose scope it sees whole (e.g. its own location, or one of its providers), and records none.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kpis.dimensions import DimensionError, check_dimension, resolve_values
from kpis.errors import ClinicKpisError

if TYPE_CHECKING:
    import duckdb

    from kpis.config import Config
    from kpis.scope import Scope

CSV_COLUMNS = ("date", "title", "kpis", "scope", "description", "recorded_by")
_REQUIRED_CSV = ("date", "title", "kpis")
_TOML_KEYS = {"date", "title", "kpis", "scope", "description", "recorded_by"}


class ChangeLogError(ClinicKpisError):
    """A change cannot be recorded, edited or imported as given."""


@dataclass(frozen=True)
class Change:
    """The current state of one recorded change (its latest version)."""

    change_id: int
    version: int
    date: date
    title: str
    description: str
    kpis: tuple[str, ...]
    scope: Mapping[str, tuple[str, ...]]  # dimension -> values; empty = the whole practice
    recorded_by: str | None
    recorded_at: datetime  # when the latest version was written
    created_at: datetime  # when the first version was written
    removed: bool = False

    @property
    def scope_items(self) -> list[str]:
        return scope_items(self.scope)


@dataclass(frozen=True)
class ImportResult:
    added: list[int]
    skipped: int  # rows identical to a change already in the log


def scope_items(scope: Mapping[str, Sequence[str]]) -> list[str]:
    """`{"location": ("EAST",)}` -> `["location=EAST"]`, sorted: the stored form of a scope."""
    return sorted(f"{dim}={value}" for dim, values in scope.items() for value in values)


def parse_scope(items: Iterable[str] | Mapping[str, Any] | None, where: str = "scope") -> dict[str, tuple[str, ...]]:
    """A scope from `["location=EAST", ...]` or `{"location": "EAST" or [...]}`, values as text."""
    pairs: list[tuple[str, str]] = []
    if items is None:
        return {}
    if isinstance(items, Mapping):
        for dim, values in items.items():
            for value in values if isinstance(values, list | tuple | set) else [values]:
                pairs.append((str(dim).strip(), _text(value)))
    else:
        for item in items:
            dim, sep, value = str(item).partition("=")
            if not sep or not dim.strip() or not value.strip():
                raise ChangeLogError(f"{where} {item!r}: expected DIMENSION=VALUE, e.g. location=EAST")
            pairs.append((dim.strip(), value.strip()))
    scope: dict[str, list[str]] = {}
    for dim, value in pairs:
        try:
            check_dimension(dim)
        except DimensionError as exc:
            raise ChangeLogError(f"{where} {dim}={value}: {exc}") from None
        if value not in scope.setdefault(dim, []):
            scope[dim].append(value)
    return {dim: tuple(sorted(values)) for dim, values in sorted(scope.items())}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


class ChangeLogMethods:
    """changes, add_change, edit_change, remove_change, import_changes, change_history."""

    # Provided by Warehouse (config, scope, cursor(), transaction()) and KpiMethods (_spec(),
    # catalog(), dimension_values()), which come first in Warehouse's bases.
    config: Config
    scope: Scope

    # -- reading ----------------------------------------------------------------------------

    def changes(self, include_removed: bool = False) -> pd.DataFrame:
        """The change log, one row per change (its current state), by effective date.

        Columns: change_id, date, title, description, kpis (list), scope (dict dimension ->
        list of values), scope_label ("location=EAST; ..." or "practice"), recorded_by,
        created_at, updated_at, version, removed.
        """
        rows = [self._as_row(c) for c in self._current() if include_removed or not c.removed]
        columns = [
            "change_id", "date", "title", "description", "kpis", "scope", "scope_label",
            "recorded_by", "created_at", "updated_at", "version", "removed",
        ]  # fmt: skip
        frame = pd.DataFrame(rows, columns=columns)
        frame["date"] = pd.to_datetime(frame["date"])
        return frame.sort_values(["date", "change_id"]).reset_index(drop=True)

    def change(self, change_id: int) -> Change:
        """The current state of one change (removed ones included)."""
        for found in self._current():
            if found.change_id == int(change_id):
                return found
        raise ChangeLogError(f"no change with id {change_id} (clinic-kpis changes list shows them)")

    def change_history(self, change_id: int | None = None) -> pd.DataFrame:
        """Every version of one change (or of all), oldest first: what was edited, when and by whom."""
        where, params = ("WHERE change_id = ?", [int(change_id)]) if change_id is not None else ("", [])
        frame = self.cursor().execute(f"SELECT * FROM change_versions {where} ORDER BY change_id, version", params).df()
        if self.scope.limited:
            visible = {c.change_id for c in self._current()}
            frame = frame[frame["change_id"].isin(visible)].reset_index(drop=True)
        if change_id is not None and frame.empty:
            raise ChangeLogError(f"no change with id {change_id} (clinic-kpis changes list shows them)")
        return frame

    # -- writing ----------------------------------------------------------------------------

    def add_change(
        self,
        date: Any,
        title: str,
        kpis: str | Sequence[str],
        scope: Iterable[str] | Mapping[str, Any] | None = None,
        description: str = "",
        by: str | None = None,
    ) -> int:
        """Record a change and return its id. `scope` is `["location=EAST"]` or `{"location": "EAST"}`."""
        self.scope.require_practice("the change log")
        fields = self._checked(date, title, kpis, parse_scope(scope), description)
        with self.transaction(kpi_data=False) as cur:
            change_id = cur.execute("SELECT COALESCE(MAX(change_id), 0) + 1 FROM change_versions").fetchone()[0]
            _insert(cur, change_id, 1, fields, by, removed=False)
        return int(change_id)

    def edit_change(
        self,
        change_id: int,
        *,
        date: Any = None,
        title: str | None = None,
        kpis: str | Sequence[str] | None = None,
        scope: Iterable[str] | Mapping[str, Any] | None = None,
        description: str | None = None,
        by: str | None = None,
    ) -> int:
        """Write a new version of a change with the fields given (others kept); returns the version."""
        self.scope.require_practice("the change log")
        old = self.change(change_id)
        if old.removed:
            raise ChangeLogError(f"change {change_id} was removed; record a new one instead")
        fields = self._checked(
            old.date if date is None else date,
            old.title if title is None else title,
            old.kpis if kpis is None else kpis,
            old.scope if scope is None else parse_scope(scope),
            old.description if description is None else description,
        )
        with self.transaction(kpi_data=False) as cur:
            _insert(cur, old.change_id, old.version + 1, fields, by, removed=False)
        return old.version + 1

    def remove_change(self, change_id: int, by: str | None = None) -> None:
        """Remove a change from the log (a last version marks it removed; its history stays)."""
        self.scope.require_practice("the change log")
        old = self.change(change_id)
        if old.removed:
            raise ChangeLogError(f"change {change_id} is already removed")
        fields = (old.date, old.title, old.description, old.kpis, old.scope)
        with self.transaction(kpi_data=False) as cur:
            _insert(cur, old.change_id, old.version + 1, fields, by, removed=True)

    def import_changes(self, path: str | Path, by: str | None = None) -> ImportResult:
        """Add the changes of a CSV or TOML file (docs/api.md shows both); rows already logged are skipped.

        Every row is checked before any is written, so a bad file adds nothing.
        """
        self.scope.require_practice("the change log")
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ChangeLogError(f"{path}: no such file") from None
        except UnicodeDecodeError:
            raise ChangeLogError(f"{path}: not UTF-8 text") from None
        raw = _read_toml(path, text) if path.suffix.lower() == ".toml" else _read_csv(path, text)
        current = {(c.date, c.title, c.kpis, tuple(c.scope_items)) for c in self._current() if not c.removed}
        checked = []
        for where, row in raw:
            try:
                fields = self._checked(
                    row.get("date"), row.get("title"), row.get("kpis"),
                    parse_scope(row.get("scope"), f"{where}: scope"), row.get("description") or "",
                )  # fmt: skip
            except ClinicKpisError as exc:
                message = str(exc)
                raise ChangeLogError(message if message.startswith(where) else f"{where}: {message}") from None
            checked.append((fields, row.get("recorded_by") or by))
        added, skipped = [], 0
        with self.transaction(kpi_data=False) as cur:
            next_id = cur.execute("SELECT COALESCE(MAX(change_id), 0) + 1 FROM change_versions").fetchone()[0]
            for fields, author in checked:
                key = (fields[0], fields[1], fields[3], tuple(scope_items(fields[4])))
                if key in current:
                    skipped += 1
                    continue
                current.add(key)
                _insert(cur, next_id, 1, fields, author, removed=False)
                added.append(int(next_id))
                next_id += 1
        return ImportResult(added, skipped)

    # -- internals ----------------------------------------------------------------------------

    def _current(self) -> list[Change]:
        rows = (
            self.cursor()
            .execute(
                "SELECT *, MIN(recorded_at) OVER (PARTITION BY change_id) AS created_at FROM change_versions "
                "QUALIFY version = MAX(version) OVER (PARTITION BY change_id) ORDER BY change_id"
            )
            .fetchall()
        )
        names = [
            "change_id", "version", "recorded_at", "recorded_by", "effective_date", "title",
            "description", "kpis", "scope", "removed", "created_at",
        ]  # fmt: skip
        found = []
        for values in rows:
            r = dict(zip(names, values, strict=True))
            found.append(
                Change(
                    change_id=r["change_id"],
                    version=r["version"],
                    date=r["effective_date"],
                    title=r["title"],
                    description=r["description"],
                    kpis=tuple(r["kpis"]),
                    scope=parse_scope(r["scope"]),
                    recorded_by=r["recorded_by"],
                    recorded_at=r["recorded_at"],
                    created_at=r["created_at"],
                    removed=r["removed"],
                )
            )
        return [c for c in found if self._visible(c)] if self.scope.limited else found

    def _visible(self, change: Change) -> bool:
        """Whether a limited scope sees a change: all its KPIs, and every value of its scope."""
        if not set(change.kpis) <= {s.id for s in self.catalog()}:
            return False
        for dim, values in change.scope.items():
            if dim == "new_patient":
                continue
            if not set(values) <= {str(v) for v in self.dimension_values(dim)["id"]}:
                return False
        return True

    def _as_row(self, c: Change) -> dict[str, Any]:
        return {
            "change_id": c.change_id,
            "date": c.date,
            "title": c.title,
            "description": c.description,
            "kpis": list(c.kpis),
            "scope": {dim: list(values) for dim, values in c.scope.items()},
            "scope_label": "; ".join(c.scope_items) or "practice",
            "recorded_by": c.recorded_by,
            "created_at": c.created_at,
            "updated_at": c.recorded_at,
            "version": c.version,
            "removed": c.removed,
        }

    def _checked(
        self, when: Any, title: Any, kpis: Any, scope: Mapping[str, tuple[str, ...]], description: Any
    ) -> tuple[date, str, str, tuple[str, ...], dict[str, tuple[str, ...]]]:
        """(date, title, description, kpis, scope) after every check, or a ChangeLogError."""
        day = _as_date(when)
        if not isinstance(title, str) or not title.strip():
            raise ChangeLogError("title: a short text is required, e.g. 'Reminder texts 48 h ahead'")
        if isinstance(kpis, str):
            kpis = [k for k in kpis.replace(";", " ").replace(",", " ").split() if k]
        kpi_ids = tuple(dict.fromkeys(str(k).strip() for k in (kpis or ())))
        if not kpi_ids:
            raise ChangeLogError("kpis: name at least one KPI id the change targets, e.g. no_show_rate")
        specs = [self._spec(k) for k in kpi_ids]
        for spec in specs:
            missing = sorted(set(scope) - set(spec.dimensions))
            if missing:
                raise DimensionError(
                    f"{spec.id} cannot be broken down or filtered by {', '.join(missing)} "
                    f"(it allows {', '.join(spec.dimensions)})"
                )
        scope = self._check_scope_values(scope)
        return day, title.strip(), str(description or "").strip(), kpi_ids, scope

    def _check_scope_values(self, scope: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        """The scope with every value as an id (a name is accepted, as in `compute` filters).

        A value the warehouse does not know is a typo far more often than a wish for an empty
        chart: the same error as the `kpis` command's `--filter`, prefixed with the option.
        """
        resolved = {}
        for dim, values in scope.items():
            if dim == "new_patient":
                bad = [v for v in values if v.lower() not in ("true", "false")]
                if bad:
                    raise ChangeLogError(f"--scope new_patient={bad[0]}: new_patient is true or false")
                resolved[dim] = tuple(values)
                continue
            ids = []
            for value in values:
                try:
                    ids += [str(v) for v in resolve_values(self.cursor(), dim, (value,), self.config)]
                except DimensionError as exc:
                    raise ChangeLogError(f"--scope {dim}={value}: {exc}") from None
            resolved[dim] = tuple(ids)
        return resolved


def scope_filters(scope: Mapping[str, Sequence[str]]) -> dict[str, list[Any]]:
    """A scope as `compute` filters (new_patient as booleans)."""
    return {
        dim: [v.lower() == "true" for v in values] if dim == "new_patient" else list(values)
        for dim, values in scope.items()
    }


def _insert(
    cur: duckdb.DuckDBPyConnection, change_id: int, version: int, fields: tuple, by: str | None, *, removed: bool
) -> None:
    day, title, description, kpis, scope = fields
    cur.execute(
        "INSERT INTO change_versions (change_id, version, recorded_at, recorded_by, effective_date, title, "
        "description, kpis, scope, removed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            change_id,
            version,
            datetime.now(UTC),
            (by or "").strip() or None,
            day,
            title,
            description,
            list(kpis),
            scope_items(scope),
            removed,
        ],
    )


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ChangeLogError(f"date: expected YYYY-MM-DD, got {value!r}") from None


def _read_csv(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in _REQUIRED_CSV if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        problem = f"missing column(s) {', '.join(missing)}" if missing else f"unknown column(s) {', '.join(unknown)}"
        raise ChangeLogError(f"{path}: line 1: {problem}; expected {', '.join(CSV_COLUMNS)}")
    rows = []
    for row in reader:
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(values.values()):
            continue
        scope = [s for s in values.get("scope", "").replace(";", " ").split() if s]
        rows.append((f"{path}: line {reader.line_num}", {**values, "scope": scope}))
    return rows


def _read_toml(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChangeLogError(f"{path}: not valid TOML: {exc}") from None
    tables = data.get("changes")
    if set(data) != {"changes"} or not isinstance(tables, list):
        raise ChangeLogError(f"{path}: expected [[changes]] tables only")
    rows = []
    for i, table in enumerate(tables, start=1):
        where = f"{path}: [[changes]] #{i}"
        unknown = sorted(set(table) - _TOML_KEYS)
        if unknown:
            expected = ", ".join(sorted(_TOML_KEYS))
            raise ChangeLogError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {expected}")
        rows.append((where, table))
    return rows
