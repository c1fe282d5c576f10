"""What only charts need to write: axis titles, tick formats and segment names in a legend.

Everything a person reads as text (values with units, changes in points, targets, statuses,
periods, why a value is not shown) comes from `kpis.formatting`, the vocabulary the report and
the command line share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from kpis.spec import KpiSpec

NOT_RECORDED = "not recorded"


def axis_title(spec: KpiSpec) -> str:
    """The value axis title: the unit in words (the chart title already names the KPI)."""
    return {"percent": "percent", "currency": "US dollars"}.get(spec.unit, spec.unit)


def _axis_digits(spec: KpiSpec) -> int:
    """The decimals the value axis writes: the spec's, whole dollars for money."""
    return 0 if spec.unit == "currency" else int(spec.fmt[-1])


def tick_format(spec: KpiSpec) -> str:
    """A d3 tick format for the value axis (plotly), with the spec's decimals so close ticks stay distinct."""
    digits = _axis_digits(spec)
    if spec.unit == "percent":
        return f".{digits}%"
    if spec.unit == "currency":
        return "$,.0f"
    return f",.{digits}f"


def tick_step(spec: KpiSpec) -> float:
    """The smallest difference `tick_format` writes (0.001 for a percent to a tenth, $1 for money)."""
    return 10.0 ** -_axis_digits(spec) * (0.01 if spec.unit == "percent" else 1)


def in_sentence(title: str) -> str:
    """A KPI's title inside a sentence: its first letter in lower case, unless its first word is an
    acronym ("days in A/R", "A/R over 90 days"); `str.lower` would write "days in a/r"."""
    first = title.split(" ", 1)[0]
    letters = [c for c in first if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return title
    return title[:1].lower() + title[1:]


def segment_label(value: object, labels: Mapping[str, str]) -> str:
    """A segment's label; records without the dimension (e.g. calls to a shared queue have no location) say so.

    A value without a name of its own (its label is its id, e.g. a payer class) is written with spaces
    for its underscores: a legend is read, not parsed."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_RECORDED
    label = labels.get(str(value), str(value))
    return label.replace("_", " ") if label == str(value) else label  # an id as its own name: `self pay`
