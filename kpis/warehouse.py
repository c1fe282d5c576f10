"""`Warehouse`: the warehouse file (`kpis.storage.Store`) with the KPI API (`kpis.api.KpiMethods`).

This is what dashboards, reports and notebooks open. Opening, migrating and cursors live in
`kpis.storage`, so code that only writes rows (ingest) does not load the KPI engine.
"""

from __future__ import annotations

from kpis.api import KpiMethods
from kpis.comparison import ComparisonMethods
from kpis.improvement import ImprovementMethods
from kpis.storage import Store


class Warehouse(ComparisonMethods, KpiMethods, ImprovementMethods, Store):
    """One DuckDB warehouse file with the KPI methods (`compute`, `catalog`, `explain`, ...), the
    comparison methods (`scorecard`, `trend`, `movers`, `totals`, ...; `kpis.comparison`), and
    the change log, control charts and friction costs (`kpis.improvement.ImprovementMethods`).

    Use `Warehouse.open(...)` (or the constructor) as a context manager; see `kpis.storage.Store`
    for opening, migrating, `cursor()` and `transaction()`.
    """
