"""The benchmark's one table (figure, this project, pandas baseline, ratio), printed and as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Figure:
    """One line of the table. `ratio` is baseline / project for times (how many times faster)."""

    scale: str
    figure: str
    unit: str
    project: float
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.project:
            return None
        return self.baseline / self.project


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def print_table(figures: list[Figure], console: Console) -> None:
    table = Table(title="clinic-kpis benchmarks")
    for name, justify in (
        ("scale", "left"),
        ("figure", "left"),
        ("this project", "right"),
        ("pandas baseline", "right"),
        ("ratio", "right"),
    ):
        table.add_column(name, justify=justify)
    for f in figures:
        ratio = f"{f.ratio:.1f}x" if f.ratio is not None else "-"
        table.add_row(f.scale, f"{f.figure} ({f.unit})", _number(f.project), _number(f.baseline), ratio)
    console.print(table)


def write_json(path: Path, machine: dict, figures: list[Figure], extra: dict) -> None:
    """Everything the table shows, plus the machine and the per-scale details, as one JSON document."""
    document = {
        "machine": machine,
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
        **extra,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
