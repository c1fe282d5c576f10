"""clinic-kpis KPI library: the warehouse and the KPI definitions evaluated over it.

Public API: `from kpis import Warehouse`, then `wh.compute(...)`, `wh.catalog()`, `wh.explain(...)`,
`wh.drivers(...)`, `wh.sql(...)` and the data views (docs/contracts.md section 4). Also
`kpis.formatting.format_value` (a value as the spec's `fmt` writes it) and
`kpis.results.all_results` (every KPI for the practice, each location and each provider).
KPI definitions live in kpis/specs/*.toml.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinic-kpis")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from kpis.warehouse import Warehouse  # noqa: E402  (after __version__, which cli imports)

__all__ = ["Warehouse", "__version__"]
