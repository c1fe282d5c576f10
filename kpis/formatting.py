"""How numbers and states are written for people: the one vocabulary of every surface.

The dashboard, the report, the command line, the CSV downloads and the demo write values,
changes, targets, statuses, periods and the reasons a number is not shown with these helpers,
so one KPI reads the same on screen, on paper and in a terminal. Values follow the spec's `fmt`
with the unit after durations (`46.3 days`, `31 min`); a change of a percentage is in
percentage points (`+2.1 pts`), since "up 2%" of a 7% rate is ambiguous.

A helper that takes `spec` needs only its `fmt` and `unit` (a `KpiSpec`, or anything carrying
the two).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Protocol

from kpis import privacy
from kpis.privacy import SMALL_CELL
from kpis.spec import FORMATS

MISSING = "—"
MINUS = "−"  # U+2212: a real minus sign, as wide as the plus
# after a value, e.g. 46.3 days; percent and currency carry their sign in the number
UNIT_SUFFIX = {"days": " days", "minutes": " min", "hours": " h", "seconds": " s", "count": ""}
# the unit of a column or an axis: `value (%)`, `target (days)`
UNIT_LABELS = {
    "percent": "%",
    "days": "days",
    "minutes": "min",
    "hours": "h",
    "seconds": "s",
    "currency": "$",
    "count": "count",
}
_UNIT_WORDS = {"percent": "points", "days": "days", "minutes": "minutes", "hours": "hours", "seconds": "seconds"}
STATUS_LABELS = {"on_target": "On target", "watch": "Watch", "off_target": "Off target"}
EFFECT_WORDS = {"better": "better", "worse": "worse", "steady": "steady"}
# a value's state (kpis.comparison) in a word or two, e.g. for a chart's hover text
STATE_LABELS = {
    "final": "final",
    "open": "not final",
    "history": "early data",
    "small": "withheld (n < 11)",
    "empty": "no data",
    "no_source": "not loaded",
}

# what a control chart's rules say (kpis.spc), and a change's status (Warehouse.change_effects)
RULE_LABELS = {
    "shewhart": "a point beyond the 3-sigma limits",
    "long_run": "a long run on one side of the centre",
    "few_crossings": "too few crossings of the centre",
}
EFFECT_STATUS_LABELS = {
    "signal": "signal",
    "no_signal": "no signal",
    "too_early": "too early to tell",
    "no_baseline": "too little history",
    "no_data": "no data yet",
}


class Formatted(Protocol):
    """What formatting needs of a KPI: how to write its values, and in which unit."""

    @property
    def fmt(self) -> str: ...

    @property
    def unit(self) -> str: ...


def missing(value: object) -> bool:
    """None or NaN: a value that is not there."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(value: float | None, fmt: str) -> str:
    """`0.0788` with pct1 -> `7.9%`; num1 -> `0.1`; usd0 -> `$0`. Missing values are an em dash."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if missing(value):
        return MISSING
    digits = int(fmt[-1])
    if fmt.startswith("pct"):
        return f"{value * 100:,.{digits}f}%"
    if fmt.startswith("usd"):
        sign = "-" if value < 0 else ""
        return f"{sign}${abs(value):,.{digits}f}"
    return f"{value:,.{digits}f}"


def value_text(value: float | None, spec: Formatted) -> str:
    """A value with its unit: `14.2%`, `46.3 days`, `31 min`, `$1,234`; missing is an em dash."""
    if missing(value):
        return MISSING
    return format_value(value, spec.fmt) + UNIT_SUFFIX.get(spec.unit, "")


def magnitude(delta: float, spec: Formatted) -> str:
    """The size of a change without sign or unit word: `2.1` (points), `3.0` (days), `$1,234`."""
    digits = int(spec.fmt[-1])
    scaled = abs(delta) * 100 if spec.unit == "percent" else abs(delta)
    return ("$" if spec.unit == "currency" else "") + f"{scaled:,.{digits}f}"


def change_text(delta: float | None, spec: Formatted, *, words: bool = False) -> str:
    """A signed change: `+2.1 pts`, `−3.0 days`, `+$120` (tables, tiles); `2.1 points` (prose:
    the verb carries the direction). A change that rounds to nothing is `±0.0 pts`."""
    if missing(delta):
        return MISSING
    number = magnitude(delta, spec)
    if words:
        word = _UNIT_WORDS.get(spec.unit, "")
        if number == "1":
            word = word.removesuffix("s")
        return f"{number} {word}" if word else number
    suffix = " pts" if spec.unit == "percent" else UNIT_SUFFIX.get(spec.unit, "")
    if float(number.replace(",", "").lstrip("$")) == 0:
        return "±" + number + suffix
    return ("+" if delta > 0 else MINUS) + number + suffix


def target_text(spec: Formatted) -> str:
    """`Target ≤ 7.0% · red > 10.0%`, or an empty string for a KPI without a target."""
    target, red, better = getattr(spec, "target", None), getattr(spec, "red", None), getattr(spec, "better", "lower")
    if target is None:
        return ""
    good, bad = ("≤", ">") if better == "lower" else ("≥", "<")
    text = f"Target {good} {value_text(target, spec)}"
    if red is not None:
        text += f" · red {bad} {value_text(red, spec)}"
    return text


def status_text(code: str | None) -> str:
    """`On target`, `Watch`, `Off target`; no status is an em dash."""
    return STATUS_LABELS.get(code or "", MISSING)


def count_text(n: int | float | str | None) -> str:
    """A count (possibly suppressed): `12,345`, `<11`, `12.50` for a sum, or an em dash."""
    if n is None or missing(n):
        return MISSING
    if n == SMALL_CELL:
        return SMALL_CELL
    value = float(n)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"


def in_unit(value: float | None, spec: Formatted) -> float | None:
    """A value as a number in the unit its column header names: a percent as 7.37, not 0.0737."""
    if missing(value):
        return None
    return float(value) * 100 if spec.unit == "percent" else float(value)


def n_text(n: float | None, spec: object) -> str:
    """A KPI's n as a surface may show it: a count under 11 of patients' records is `<11`."""
    if getattr(spec, "patient_records", True):
        return count_text(privacy.count(n))
    return count_text(n)


def column_header(name: str, spec: Formatted) -> str:
    """A column holding a KPI's values, with the unit: `value (%)`, `target (days)`."""
    return f"{name} ({UNIT_LABELS[spec.unit]})"


def period_text(start: date, grain: str = "month") -> str:
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


def month_text(day: date) -> str:
    """`October 2026`: a month in prose."""
    return day.strftime("%B %Y")


def state_text(state: str, *, missing_sources: str = "", wait_days: int = 0, history_days: int = 0) -> str:
    """Why a value is not shown as a fact (a state of `Warehouse.scorecard`), in words.

    `missing_sources` names the exports not loaded for the scope (`Warehouse.missing_sources`).
    """
    if state == "no_source":
        return f"not loaded: {missing_sources}" if missing_sources else "no export loaded"
    if state == "open":
        waiting = f" (it waits {wait_days} days after the month)" if wait_days else ""
        return f"not final: records may still arrive{waiting}"
    if state == "history":
        months = round(history_days / 30.4) if history_days else 12
        return f"not comparable yet: it rests on {months} months of data before it, and the data start later"
    if state == "small":
        return f"withheld: a count under {SMALL_CELL[1:]} behind it (small-cell rule)"
    if state == "empty":
        return "no data" + (f": {missing_sources} not loaded for this scope" if missing_sources else "")
    return ""


def rules_text(rules: list[str] | tuple[str, ...]) -> str:
    """The control-chart rules that fired, in words (`none` when none did)."""
    return "; ".join(RULE_LABELS.get(rule, rule) for rule in rules) or "none"


def money_text(amount: float | None) -> str:
    """Dollars to the cent, `$6,250.61`; missing is an em dash (a cost nobody can price)."""
    return format_value(amount, "usd2")


def hours_text(hours: float | None) -> str:
    """Staff hours to a tenth, `299.9 h`; missing is an em dash."""
    return MISSING if missing(hours) else f"{hours:,.1f} h"


def assumption_text(value: float | None, unit: str) -> str:
    """A friction-cost assumption (`Warehouse.friction_costs`) in its unit, as its formula prints it:
    `$80.08` (USD ...), `79.5%` (a share), `7.50%` (a rate per year), `10` (minutes)."""
    if missing(value):
        return MISSING
    if unit.startswith("USD"):
        return money_text(value)
    if unit.startswith("share"):
        return f"{value:.1%}"
    if unit == "per year":
        return f"{value:.2%}"
    return f"{value:g}"


def asked_note(month: date, value: str, state: str, *, wait_days: int = 0, history_days: int = 0) -> str:
    """The asked month's own value when it is not a fact: `Sep 2026 so far: 18.6%, not final: ...`
    (open), `Sep 2026: 0.0%, not comparable yet: ...` (early data)."""
    why = state_text(state, wait_days=wait_days, history_days=history_days)
    so_far = " so far" if state == "open" else ""
    return f"{period_text(month)}{so_far}: {value}, {why}"
