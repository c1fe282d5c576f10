"""What only charts need to write: axis titles, tick formats and segment names in a legend.

Everything a person reads as text (values with units, changes in points, targets, statuses,
periods, why a value is not shown) comes from `kpis.formatting`, the vocabulary the report and
the command line share.
"""

from __future__ import annotations

import math

from kpis.spec import KpiSpec

NOT_RECORDED = "not recorded"


def axis_title(spec: KpiSpec) -> str:
    """The value axis title: the unit in words (the chart title already names the KPI)."""
    return {"percent": "percent", "currency": "US dollars"}.get(spec.unit, spec.unit)


def tick_format(spec: KpiSpec) -> str:
    """A d3 tick format for the value axis (plotly), with the spec's decimals so close ticks stay distinct."""
    digits = int(spec.fmt[-1])
    if spec.unit == "percent":
        return f".{digits}%"
    if spec.unit == "currency":
        return "$,.0f"
    return f",.{digits}f"


def segment_label(value: object, labels: dict[str, str]) -> str:
    """A segment's label; records without the dimension (e.g. calls to a shared queue have no location) say so."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_RECORDED
    return labels.get(str(value), str(value))
