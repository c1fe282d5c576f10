"""The dashboard's only door to the warehouse: cached calls to the `kpis` Python API.

Pages never see SQL or a connection. The published warehouse is opened read-only once per
version and shared (`_snapshot`): a load works on a copy and publishes it by rename
(`Warehouse.writing`), so reading never waits for it, and the file a reader opened never
changes under it; the first call after a publication opens the new file.
Results are cached per argument set (the filters) for `TTL_SECONDS`; the first argument, a
`Source`, carries the file's modification time, so a published load changes the key and the
next view shows the new data at once. Whether a load is running is asked on every rerun
(`load_running`), never cached. The `Source` also carries the scope of the person signed in
(`kpis.scope`, from dashboards/auth.py): every call reads the shared snapshot narrowed to it
(`Warehouse.narrowed`), so every answer is within it, and two people with different scopes
never share a cached answer.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import streamlit as st

from kpis import Warehouse, comparison
from kpis.access import access_settings
from kpis.audit import AuditLog
from kpis.comparison import Move
from kpis.config import Config, load_config
from kpis.errors import WarehouseError
from kpis.scope import EVERYTHING, Scope
from kpis.spec import KpiSpec
from kpis.users import User, list_users

TTL_SECONDS = 600
# Loads and refreshes write on a copy, so they never hold this file; a program that opens it for
# writing directly (a notebook, an old clinic-kpis) makes DuckDB refuse the lock. Retrying briefly
# rides out short writes; a long one gets a clear "busy" message instead of a traceback.
_OPEN_ATTEMPTS = 6
_OPEN_PAUSE_SECONDS = 0.25
_BUSY_HINTS = ("lock", "different configuration")

Filters = tuple[tuple[str, tuple[str, ...]], ...]  # ((dimension, (id, ...)), ...): hashable for the cache


class Source(NamedTuple):
    """Which warehouse and config to read, the file's version (its modification time), and whose eyes."""

    db: str
    config: str | None
    version: int
    scope: Scope = EVERYTHING


@functools.lru_cache(maxsize=256)
def source_key(src: Source) -> str:
    """The cache key of a `Source`: every field of it and of its scope (a scope's locations sorted),
    as one string.

    Why: Streamlit hashes each cached call's arguments on every call, and by default it walks a
    `Source` field by field and its `Scope` through `dataclasses.asdict` (~80 us a call, the
    sidebar and the Overview make ~17 such calls per filter change). The string is made once per
    Source (the lru_cache matches equal Sources: same file, version and scope) and holds every
    field, so two views of another snapshot or another scope never share an entry.
    """
    scope = (getattr(src.scope, field.name) for field in dataclasses.fields(src.scope))
    return repr((*src._replace(scope=None), *(sorted(v) if isinstance(v, frozenset) else v for v in scope)))


SOURCE_HASH = {Source: source_key}
cached = functools.partial(st.cache_data, ttl=TTL_SECONDS, show_spinner=False, hash_funcs=SOURCE_HASH)
"""How every `data.*` answer is cached: per argument set, for `TTL_SECONDS`, a `Source` keyed by `source_key`."""


class WarehouseBusy(WarehouseError):
    """The warehouse file is open for writing by another program and cannot be read right now."""


def source(scope: Scope = EVERYTHING) -> Source:
    """The warehouse named by the environment (`clinic-kpis dashboard` sets it from --db/--config) or the config,
    as `scope` sees it.

    A missing file is reported when the first query opens it, with the command that creates one.
    """
    cfg = load_config()
    db = cfg.db_path.resolve()
    version = 0
    for path in (db, db.with_name(db.name + ".wal")):
        if path.exists():
            version = max(version, path.stat().st_mtime_ns)
    return Source(str(db), str(cfg.path.resolve()) if cfg.path else None, version, scope)


@dataclass(frozen=True)
class _Snapshot:
    """One published snapshot, open read-only, shared by every session; one call at a time uses it."""

    warehouse: Warehouse
    lock: threading.RLock


def _close(snapshot: _Snapshot) -> None:
    with snapshot.lock:  # after the call that may be using it
        snapshot.warehouse.close()


@st.cache_resource(max_entries=1, show_spinner=False, on_release=_close, hash_funcs=SOURCE_HASH)
def _snapshot(src: Source) -> _Snapshot:
    """The published warehouse of `src` (given without its scope), opened once per version (a
    load publishes a new file) with the widest scope; each call narrows it to its reader's.

    Why keep it open: opening costs more than most cached calls' queries, and the file a reader
    opened never changes (loads write a copy). When a new version is published, the next call
    opens it and the old connection is closed, which frees the replaced file's disk space.
    """
    config = Path(src.config) if src.config else None
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            wh = Warehouse.open(src.db, config=config, read_only=True, scope=Scope(small_cells=False))
            return _Snapshot(wh, threading.RLock())
        except WarehouseError as exc:
            if not any(hint in str(exc) for hint in _BUSY_HINTS):
                raise
        time.sleep(_OPEN_PAUSE_SECONDS * (attempt + 1))
    raise WarehouseBusy(f"{src.db} is open for writing by another program; reload the page in a moment")


@contextmanager
def _open(src: Source) -> Iterator[Warehouse]:
    """The shared snapshot as `src.scope` sees it (narrowing only takes away)."""
    snapshot = _snapshot(src._replace(scope=EVERYTHING))
    with snapshot.lock:
        yield snapshot.warehouse.narrowed(src.scope)


# -- KPIs ----------------------------------------------------------------------------------------


@cached
def catalog(src: Source) -> dict[str, KpiSpec]:
    """Every KPI spec (with the practice's targets), by id, in catalog order."""
    with _open(src) as wh:
        return {spec.id: spec for spec in wh.catalog()}


@cached
def compute(
    src: Source,
    kpis: tuple[str, ...],
    start: str,
    end: str,
    grain: str,
    by: tuple[str, ...] = (),
    filters: Filters = (),
    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (),
) -> pd.DataFrame:
    """`Warehouse.compute` for periods starting in [start, end]; see docs/contracts.md section 4."""
    with _open(src) as wh:
        return wh.compute(
            list(kpis),
            start=start,
            end=end,
            grain=grain,
            by=list(by) or None,
            filters=dict(filters) or None,
            options={kpi: dict(opts) for kpi, opts in options} or None,
        )


def applicable(spec: KpiSpec, filters: Mapping[str, Sequence[str]]) -> Filters:
    """The non-empty filters this KPI can honour, in a hashable form."""
    return tuple((dim, tuple(values)) for dim, values in filters.items() if values and dim in spec.dimensions)


@cached
def facts(
    src: Source, kpi: str, start: str, end: str, grain: str, by: tuple[str, ...] = (), filters: Filters = ()
) -> pd.DataFrame:
    """`Warehouse.facts`: `compute` with each value's state (final, open, early data, withheld ...)."""
    with _open(src) as wh:
        return wh.facts(kpi, start, end, grain, by=list(by) or None, filters=dict(filters) or None)


@cached
def scorecard(src: Source, month: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.scorecard`: each KPI's value for its latest complete month up to `month`, with its comparisons."""
    with _open(src) as wh:
        return wh.scorecard(month, filters=dict(filters) or None)


@cached
def findings(src: Source, month: str, filters: Filters = ()) -> pd.DataFrame:
    """`kpis.comparison.findings` of the scorecard and the friction costs of `month`: what is off target
    or to watch, costliest first. Cached like the calls it ranks: a view shown before is not ranked again."""
    return comparison.findings(scorecard(src, month, filters), friction_costs(src, month, filters))


@cached
def trend(src: Source, kpis: tuple[str, ...], month: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.trend`: the 13 months ending with `month`, with the values a person may read as facts."""
    with _open(src) as wh:
        return wh.trend(list(kpis), month, filters=dict(filters) or None)


@cached
def movers(src: Source, month: str, filters: Filters = ()) -> list[Move]:
    """`Warehouse.movers`: what moved most since the month before, and who drove it (the report's list too)."""
    with _open(src) as wh:
        return wh.movers(month, filters=dict(filters) or None)


@cached
def totals(
    src: Source,
    kpi: str,
    start: str,
    end: str,
    by: tuple[str, ...] = (),
    filters: Filters = (),
    options: tuple[tuple[str, Any], ...] = (),
    complete_only: bool = False,
) -> pd.DataFrame:
    """`Warehouse.totals`: one KPI over the whole range (e.g. the phones heat map, the referral funnel)."""
    with _open(src) as wh:
        return wh.totals(
            kpi, start, end, by=list(by) or None, filters=dict(filters) or None,
            options={kpi: dict(options)} if options else None, complete_only=complete_only,
        )  # fmt: skip


@cached
def parts(src: Source, kpi: str, start: str, end: str, grain: str, by: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.parts`: each segment's part of a rate per period (they stack up to the rate)."""
    with _open(src) as wh:
        return wh.parts(kpi, start, end, by=by, grain=grain, filters=dict(filters) or None)


@cached
def missing_sources(src: Source, filters: Filters = ()) -> dict[str, str]:
    """kpi_id -> the export not loaded for this scope (`Warehouse.missing_sources`), for honest empty views."""
    with _open(src) as wh:
        frame = wh.missing_sources(filters=dict(filters) or None)
    return dict(zip(frame["kpi_id"], frame["export"], strict=True))


@cached
def explain(src: Source, kpi: str, period: str, grain: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.explain`: the records behind one value (pseudonymous ids only)."""
    with _open(src) as wh:
        return wh.explain(kpi, period, grain=grain, filters=dict(filters) or None)


@cached
def value_counts(src: Source, kpi: str, start: str, end: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.value_counts`: how many records carry each value of a KPI (a distribution chart's data)."""
    with _open(src) as wh:
        return wh.value_counts(kpi, start, end, filters=dict(filters) or None)


@cached
def ar_aging(src: Source, period: str, by: tuple[str, ...] = (), filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.ar_aging`: A/R by aging bucket at the end of `period`'s month."""
    with _open(src) as wh:
        return wh.ar_aging(period, by=list(by) or None, filters=dict(filters) or None)


# -- who may sign in, and the audit log ----------------------------------------------------------


@cached
def users(src: Source) -> dict[str, User]:
    """The users who may sign in, by name (the version in `src` changes when `clinic-kpis users` writes)."""
    with _open(src._replace(scope=EVERYTHING)) as wh:
        return {user.name: user for user in list_users(wh)}


@st.cache_resource(show_spinner=False, hash_funcs=SOURCE_HASH)
def config(src: Source) -> Config:
    """The practice's configuration (names, time zone, [access] settings)."""
    return load_config(Path(src.config) if src.config else None, db=Path(src.db))


def audit_log(src: Source) -> AuditLog:
    """The audit log beside the warehouse (kpis.audit), with the practice's retention."""
    return AuditLog.beside(src.db, access_settings(config(src)).audit_retention_days)


def audit_entries(src: Source) -> pd.DataFrame:
    """Every audit entry, oldest first (not cached: the log grows with every click)."""
    return audit_log(src).entries()


# -- data views ----------------------------------------------------------------------------------


@cached
def snapshot_time(src: Source) -> datetime | None:
    """When the data shown was published (`Warehouse.snapshot_time`), in the practice's zone."""
    with _open(src) as wh:
        return wh.snapshot_time()


def load_running(src: Source) -> datetime | None:
    """Since when a load (or refresh) has been writing the next snapshot, if one is running now."""
    writer = Warehouse.load_running(src.db)
    if writer is None:
        return None
    return writer.started_at or datetime.now(UTC)


@cached
def dimension_values(src: Source, dimension: str) -> pd.DataFrame:
    """id, label of every value of a dimension, for filter widgets and chart legends."""
    with _open(src) as wh:
        return wh.dimension_values(dimension)


@cached
def coverage(src: Source) -> pd.DataFrame:
    """Rows per domain, table, source and month: which sources feed which months."""
    with _open(src) as wh:
        return wh.coverage(grain="month")


@cached
def ingest_runs(src: Source) -> pd.DataFrame:
    """Every file load, newest first."""
    with _open(src) as wh:
        return wh.ingest_runs()


@cached
def rejects(src: Source, run_id: int | None = None, limit: int = 1000) -> pd.DataFrame:
    """Quarantined records with their reasons (direct identifiers masked by ingest)."""
    with _open(src) as wh:
        return wh.rejects(run_id=run_id, limit=limit)


# -- alerts --------------------------------------------------------------------------------------


@cached
def alerts(src: Source, status: tuple[str, ...] = (), locations: tuple[str, ...] | None = None) -> pd.DataFrame:
    """`Warehouse.alerts`: the inbox (open, acknowledged, cleared), newest first."""
    with _open(src) as wh:
        return wh.alerts(status=list(status) or None, locations=list(locations) if locations is not None else None)


@cached
def alert_evaluations(src: Source) -> pd.DataFrame:
    """Every recorded evaluation of the alert rules, newest first."""
    with _open(src) as wh:
        return wh.alert_evaluations()


def acknowledge_alert(src: Source, alert_id: int, by: str | None) -> None:
    """Mark an alert as seen through the kpis API's write path: like every write, on a copy of the
    warehouse published when done (`Warehouse.writing`), so readers never wait for it.

    While a load is writing the next snapshot the acknowledgement is refused (`WarehouseBusy`)
    rather than left waiting for the load: the page says so and the button can be pressed again.
    """
    if (writer := Warehouse.load_running(src.db)) is not None:
        raise WarehouseBusy(f"a {writer.what} is writing the warehouse right now: acknowledge again when it is done")
    with Warehouse.writing(src.db, config=Path(src.config) if src.config else None, what="alert acknowledgement") as wh:
        wh.narrowed(src.scope).acknowledge_alert(alert_id, by=by)  # within the signed-in scope
    st.cache_data.clear()


def ingest_files(src: Source, files: Sequence[tuple[str, bytes]]) -> list[Any]:
    """Load uploaded exports through `ingest/`, then drop every cached result.

    The files are loaded from memory, never written to disk (exports hold patient details), each
    under its own name (`uploaded/Appointment.ndjson`), which is what the run log records; two
    uploads with the same name (Bulk exports all call theirs `Appointment.ndjson`) are both
    loaded, the second as `uploaded/Appointment.ndjson (2)`. They load into a copy of
    the warehouse, published when the load is done (`Warehouse.writing`).
    """
    from ingest import ingest_paths  # the upload is the only writer here; keep its import local
    from ingest.sources import Upload

    src.scope.require_practice("loading exports")
    uploads, seen = [], Counter[str]()
    for name, content in files:
        base = Path(name).name or "upload"
        seen[base] += 1
        uploads.append(Upload(f"uploaded/{base}" + (f" ({seen[base]})" if seen[base] > 1 else ""), content))
    with Warehouse.writing(src.db, config=Path(src.config) if src.config else None, what="upload") as wh:
        results = ingest_paths(wh, uploads)
    st.cache_data.clear()
    return results


# -- the improvement loop ------------------------------------------------------------------------


@cached
def changes(src: Source) -> pd.DataFrame:
    """`Warehouse.changes`: the change log, one row per change (its current version)."""
    with _open(src) as wh:
        return wh.changes()


@cached
def change_effects(src: Source) -> pd.DataFrame:
    """`Warehouse.change_effects`: per change and KPI, the chart, centres, rules, signal and verdict
    (what `clinic-kpis changes list` prints), judged on every period loaded."""
    with _open(src) as wh:
        return wh.change_effects()


@cached
def changes_for(src: Source, kpi: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.changes_for`: the logged changes that start a phase on this KPI's chart in this scope."""
    with _open(src) as wh:
        return wh.changes_for(kpi, dict(filters) or None)


@cached
def spc(src: Source, kpi: str, grain: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.spc`: the KPI as a control chart (limits, phases, signals) over its default history."""
    with _open(src) as wh:
        return wh.spc(kpi, filters=dict(filters) or None, grain=grain)


@cached
def friction_costs(src: Source, month: str, filters: Filters = ()) -> pd.DataFrame:
    """`Warehouse.friction_costs`: what each KPI's gap to target costs in `month`, costliest first."""
    with _open(src) as wh:
        return wh.friction_costs(month, filters=dict(filters) or None)


def record_change(src: Source, fields: Mapping[str, Any]) -> int:
    """Record a change through `Warehouse.add_change` and return its id: the dashboard's one write
    to the change log. `fields` are add_change's arguments (date, title, kpis, scope, description, by).

    Like every write, on a copy of the warehouse published when done (`Warehouse.writing`), so
    readers never wait for it, through the signed-in scope (the API refuses a limited one). While
    a load is writing the next snapshot it is refused (`WarehouseBusy`), and a mistake in the
    fields (an unknown KPI, a scope the KPI cannot be filtered by) raises the API's
    `ClinicKpisError`, each one sentence. Every cached result is dropped after the write.
    """
    if (writer := Warehouse.load_running(src.db)) is not None:
        raise WarehouseBusy(
            f"a {writer.what} is writing the warehouse right now: the change was not recorded; submit it again "
            "when it is done"
        )
    with Warehouse.writing(src.db, config=Path(src.config) if src.config else None, what="change log") as wh:
        change_id = wh.narrowed(src.scope).add_change(**fields)
    st.cache_data.clear()
    return change_id


_frozen = threading.Event()


def freeze_warm_objects() -> None:
    """After the process's first full render, move every object alive into Python's permanent
    generation (`gc.freeze`), once.

    Why: what a warm server holds (Streamlit, pandas, Plotly, the catalog, the snapshot's caches)
    is millions of objects that never become garbage, and every full collection walked them all:
    at 10 M appointments one filter change in three or four paid 0.05-0.2 s for it, the difference
    between under and over 200 ms (benchmarks/RESULTS.md). Frozen objects are still freed when
    their references go; only a cycle among them that became garbage would stay.
    """
    if not _frozen.is_set():
        _frozen.set()
        gc.freeze()
