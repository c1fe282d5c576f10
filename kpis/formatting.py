"""How a KPI value is written for people: one place, driven by the spec's `fmt`."""

from __future__ import annotations

import math

from kpis.spec import FORMATS


def format_value(value: float | None, fmt: str) -> str:
    """`0.0788` with pct1 -> `7.9%`; num1 -> `0.1`; usd0 -> `$0`. Missing values are an em dash."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    digits = int(fmt[-1])
    if fmt.startswith("pct"):
        return f"{value * 100:,.{digits}f}%"
    if fmt.startswith("usd"):
        sign = "-" if value < 0 else ""
        return f"{sign}${abs(value):,.{digits}f}"
    return f"{value:,.{digits}f}"
