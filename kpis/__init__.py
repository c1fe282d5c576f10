"""clinic-kpis KPI library: the warehouse and the KPI definitions evaluated over it.

Public API: `from kpis import Warehouse`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinic-kpis")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from kpis.warehouse import Warehouse  # noqa: E402  (after __version__, which cli imports)

__all__ = ["Warehouse", "__version__"]
