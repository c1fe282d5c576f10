"""How the dashboard writes numbers: every value, change, target and axis comes from the spec's fmt and unit.

Values use `kpis.formatting.format_value`, the same helper the monthly report uses, so a number
reads the same on screen and on paper. Changes of a percent KPI are in percentage points, the
only honest way to say "7.9% went to 9.1%".
"""

from __future__ import annotations

import math
from datetime import date

from kpis.formatting import format_value
from kpis.spec import KpiSpec

UNIT_LABELS = {
    "percent": "%",
    "days": "days",
    "minutes": "minutes",
    "hours": "hours",
    "seconds": "seconds",
    "currency": "$",
    "count": "count",
}
NOT_RECORDED = "not recorded"
STATUS_LABELS = {"on_target": "On target", "watch": "Watch", "off_target": "Off target"}
# What `complete = false` means to a reader (kpis: the period's data may still arrive, or a
# look-back window such as days in A/R's reaches before the first records loaded).
INCOMPLETE_HELP = "Records for the month may still arrive, or the KPI looks back before the first records loaded"


def missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def value_text(value: float | None, spec: KpiSpec) -> str:
    """The value as people read it: `7.9%`, `41 minutes` is `41`, `$1,234`; missing is an em dash."""
    return format_value(value, spec.fmt)


def change_text(change: float | None, spec: KpiSpec) -> str:
    """A signed change: `+1.2 pp` for percents, `-3.0 days`, `+$120`; missing is an em dash."""
    if missing(change):
        return "—"
    digits = int(spec.fmt[-1])
    if spec.unit == "percent":
        return f"{change * 100:+,.{max(digits, 1)}f} pp"
    if spec.unit == "currency":
        sign = "-" if change < 0 else "+"
        return f"{sign}${abs(change):,.{digits}f}"
    return f"{change:+,.{digits}f} {UNIT_LABELS[spec.unit]}"


def target_text(spec: KpiSpec) -> str:
    """`Target ≤ 7.0% · red > 10.0%`, or an empty string for a KPI without a target."""
    if spec.target is None:
        return ""
    good, bad = ("≤", ">") if spec.better == "lower" else ("≥", "<")
    text = f"Target {good} {value_text(spec.target, spec)}"
    if spec.red is not None:
        text += f" · red {bad} {value_text(spec.red, spec)}"
    return text


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


def count_text(value: float | None) -> str:
    """A numerator, denominator or n for hover text and tables: whole numbers without decimals."""
    if missing(value):
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def segment_label(value: object, labels: dict[str, str]) -> str:
    """A segment's label; records without the dimension (e.g. calls to a shared queue have no location) say so."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_RECORDED
    return labels.get(str(value), str(value))


def period_text(start: date, grain: str) -> str:
    """`Oct 2026`, `2026-Q4`, `2026`, `week of 2026-10-05`, `2026-10-05`."""
    if grain == "month":
        return start.strftime("%b %Y")
    if grain == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    if grain == "year":
        return str(start.year)
    if grain == "week":
        return f"week of {start.isoformat()}"
    return start.isoformat()
