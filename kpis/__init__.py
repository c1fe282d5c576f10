"""clinic-kpis KPI library: the warehouse and the KPI definitions evaluated over it.

Public API: `from kpis import Warehouse`, then `wh.compute(...)`, `wh.catalog()`, `wh.explain(...)`,
`wh.drivers(...)`, `wh.sql(...)`, the comparison every surface reads (`wh.scorecard(...)`,
`wh.movers(...)`, `wh.trend(...)`, `wh.totals(...)`; docs/contracts.md section 5) and the data
views (section 4). Also `kpis.formatting` (the one vocabulary: values with units, changes,
statuses, periods), `kpis.privacy` (the small-cell rule), `kpis.palette` and
`kpis.results.all_results` (every KPI for the practice, each location and each provider).
KPI definitions live in kpis/specs/*.toml.

`Warehouse` is imported on first use (module `__getattr__`), so `import kpis.config`,
`kpis.errors` or `kpis.storage` (what ingest and the command line need) does not load the
KPI engine and pandas.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kpis.warehouse import Warehouse

try:
    __version__ = version("clinic-kpis")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Warehouse", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Warehouse":
        from kpis.warehouse import Warehouse

        return Warehouse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
