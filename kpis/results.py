"""Every KPI for the practice, each location and each provider, as one long table.

This is the shape of the simulator's `truth.json` (docs/contracts.md section 3) and what an
integration test or an export needs: one row per KPI, period and (dimension, dimension_value),
with `dimension` None for the practice total. A KPI that cannot be cut by provider (the phone
queues) gets practice and location rows only. Computed with one scan per relation and KPI
group, whatever the number of locations and providers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kpis.api import KpiMethods
from kpis.engine import grouping_id

COLUMNS = [
    "kpi_id",
    "period_start",
    "grain",
    "dimension",
    "dimension_value",
    "numerator",
    "denominator",
    "value",
    "n",
    "complete",
    "definition",
]


def all_results(
    wh: KpiMethods,
    start: Any = None,
    end: Any = None,
    grain: str = "month",
    options: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Every KPI of the catalog by period: practice total, by location and by provider."""
    frames = []
    for dims in (("location", "provider"), ("location",)):
        kpis = [s.id for s in wh.catalog() if _allows_exactly(s.dimensions, dims)]
        if not kpis:
            continue
        groupings = [(), *((d,) for d in dims)]
        frame = wh.compute_groupings(kpis, start=start, end=end, grain=grain, groupings=groupings, options=options)
        for group in groupings:
            part = frame[frame["grouping_id"] == grouping_id(group, dims)].copy()
            part["dimension"] = group[0] if group else None
            part["dimension_value"] = part[group[0]] if group else None
            frames.append(part[COLUMNS])
    order = {s.id: i for i, s in enumerate(wh.catalog())}
    out = pd.concat(frames, ignore_index=True)
    out["dimension"] = out["dimension"].astype("object")
    return out.sort_values(
        ["kpi_id", "period_start", "dimension", "dimension_value"],
        key=lambda s: s.map(order) if s.name == "kpi_id" else s.astype(str) if s.dtype == object else s,
        kind="stable",
    ).reset_index(drop=True)


def _allows_exactly(allowed: tuple[str, ...], dims: tuple[str, ...]) -> bool:
    """Whether `dims` is the set of practice-structure dimensions (location, provider) a KPI allows."""
    return tuple(d for d in ("location", "provider") if d in allowed) == dims
