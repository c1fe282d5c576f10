"""`Warehouse`: the warehouse file (`kpis.storage.Store`) with the KPI API (`kpis.api.KpiMethods`).

This is what dashboards, reports and notebooks open. Opening, migrating and cursors live in
`kpis.storage`, so code that only writes rows (ingest) does not load the KPI engine.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from kpis import publication
from kpis.alerts import AlertMethods
from kpis.api import KpiMethods, SnapshotMemo
from kpis.comparison import ComparisonMethods
from kpis.config import Config, load_config
from kpis.improvement import ImprovementMethods
from kpis.scope import EVERYTHING, Scope
from kpis.storage import Store


class Warehouse(ComparisonMethods, KpiMethods, ImprovementMethods, AlertMethods, Store):
    """One DuckDB warehouse file with the KPI methods (`compute`, `catalog`, `explain`, ...), the
    comparison methods (`scorecard`, `trend`, `movers`, `totals`, ...; `kpis.comparison`), the
    change log, control charts and friction costs (`kpis.improvement.ImprovementMethods`), and the
    alerts (`kpis.alerts.AlertMethods`).

    Use `Warehouse.open(...)` (or the constructor) as a context manager; see `kpis.storage.Store`
    for opening, migrating, `cursor()` and `transaction()`. `scope` (`kpis.scope.Scope`) limits
    what every method answers: which locations, whether records, whether small cells.
    """

    def __init__(
        self, path: str | Path, *, read_only: bool = False, config: Config | None = None, scope: Scope = EVERYTHING
    ) -> None:
        self.scope = scope
        self._shares_connection = False
        super().__init__(path, read_only=read_only, config=config)

    @classmethod
    def open(
        cls,
        db: str | Path | None = None,
        *,
        config: Config | Path | None = None,
        read_only: bool = False,
        scope: Scope = EVERYTHING,
    ) -> Self:
        """`Store.open` with a scope (default: everything, with small cells withheld)."""
        wh = super().open(db, config=config, read_only=read_only)
        wh.scope = scope
        return wh

    def narrowed(self, scope: Scope) -> Warehouse:
        """This warehouse as `scope` may see it (never more than this one's scope), on the same connection.

        Why: one open snapshot can serve several signed-in people, each through their own scope.
        Closing the narrowed warehouse leaves the connection to its owner.
        """
        self._specs, self._relations, self._layout  # noqa: B018 - built once here, they hold for every scope
        if self.read_only:
            self._store_state()  # a published snapshot's results store does not change either
            # nor what calls derive from it (KpiMethods._memo)
            self.__dict__.setdefault("_snapshot_memo", SnapshotMemo())
        view = copy.copy(self)  # with those caches
        view.scope = self.scope.narrow(scope)
        view._shares_connection = True
        return view

    def close(self) -> None:
        if not self._shares_connection:
            super().close()

    @staticmethod
    @contextmanager
    def writing(
        db: str | Path | None = None, *, config: Config | Path | None = None, what: str = "load"
    ) -> Iterator[Warehouse]:
        """A read-write `Warehouse` on a copy of the warehouse, published (results store refreshed) at the end.

        Readers keep the previous snapshot meanwhile; on an error nothing changes. See
        `kpis.publication.writing`.
        """
        if not isinstance(config, Config):
            config = load_config(config, db=Path(db) if db is not None else None)
        with publication.writing(config, what=what, store_class=Warehouse) as warehouse:
            yield warehouse

    @staticmethod
    def load_running(db: str | Path) -> publication.Writer | None:
        """The load or refresh writing a new snapshot of `db` right now (pid, started_at, what), if any."""
        return publication.current_writer(Path(db))
