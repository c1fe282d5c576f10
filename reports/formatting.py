"""How the report writes numbers, changes, months and statuses: one place for templates and prose.

Values follow the KPI's `fmt` through `kpis.formatting.format_value` (so the report, the
dashboard and the CLI print the same digits), with the unit spelled after durations. A change
of a percentage is in percentage points, since "up 2%" of a 7% rate is ambiguous.
"""

from __future__ import annotations

import math
from datetime import date

from kpis.formatting import format_value
from kpis.privacy import SMALL_CELL

_UNIT_SUFFIX = {"days": " days", "minutes": " min", "hours": " h", "seconds": " s", "count": ""}
_UNIT_WORDS = {"days": "days", "minutes": "minutes", "hours": "hours", "seconds": "seconds"}
_STATUS = {"on_target": "On target", "watch": "Watch", "off_target": "Off target"}
MISSING = "—"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def value(value: float | None, fmt: str, unit: str) -> str:
    """`0.142` (pct1) -> `14.2%`; `46.25` days (num1) -> `46.3 days`; None -> an em dash."""
    if _missing(value):
        return MISSING
    text = format_value(value, fmt)
    return text + _UNIT_SUFFIX.get(unit, "")


def magnitude(delta: float, fmt: str, unit: str) -> str:
    """The size of a change without its sign or unit word: `2.1` (points), `$1,234`."""
    digits = int(fmt[-1])
    scaled = abs(delta) * 100 if unit == "percent" else abs(delta)
    return ("$" if unit == "currency" else "") + f"{scaled:,.{digits}f}"


def change(delta: float | None, fmt: str, unit: str, *, words: bool = False) -> str:
    """A signed change: `+2.1 pts` (table) or `2.1 points` (prose, sign left to the verb)."""
    if _missing(delta):
        return MISSING
    number = magnitude(delta, fmt, unit)
    if words:
        word = "points" if unit == "percent" else _UNIT_WORDS.get(unit, "")
        if number == "1":
            word = word.removesuffix("s")
        return f"{number} {word}" if word else number
    suffix = " pts" if unit == "percent" else _UNIT_SUFFIX.get(unit, "")
    if float(number.replace(",", "").lstrip("$")) == 0:
        return "±" + number + suffix
    return ("+" if delta > 0 else "−") + number + suffix


def count(n: int | str | None) -> str:
    """A (possibly suppressed) count: `12,345`, `<11`, or an em dash."""
    if n is None:
        return MISSING
    if n == SMALL_CELL:
        return SMALL_CELL
    return f"{int(n):,}"


def month(day: date) -> str:
    """`October 2026`."""
    return day.strftime("%B %Y")


def short_month(day: date) -> str:
    """`Oct 2026`."""
    return day.strftime("%b %Y")


def status(code: str | None) -> str:
    return _STATUS.get(code or "", MISSING)
