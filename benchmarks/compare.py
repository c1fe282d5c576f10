"""Check that the project and the pandas baseline give the same numbers, value by value.

Why: a speed ratio means nothing unless both sides computed the same thing. Every row that has
data on either side (n > 0 or a value) must be present on both, with equal n and numerator,
denominator and value equal up to float rounding (money is DECIMAL in the warehouse and float in
pandas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.baseline import RESULT_COLUMNS

RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Comparison:
    """How many rows with data were compared, and the first differences found (empty: equal)."""

    rows: int
    kpis: int
    differences: list[str]

    @property
    def equal(self) -> bool:
        return not self.differences


def compare(project: pd.DataFrame, baseline: pd.DataFrame, dimension: str, limit: int = 20) -> Comparison:
    """Compare the project's `compute` frame with the baseline's, on (kpi_id, period_start, dimension)."""
    keys = ["kpi_id", "period_start", dimension]
    sides = []
    for frame in (project, baseline):
        frame = frame[[*keys, *RESULT_COLUMNS]].copy()
        frame[dimension] = frame[dimension].astype(object).where(frame[dimension].notna(), "<none>")
        frame["period_start"] = pd.to_datetime(frame["period_start"])
        frame["n"] = frame["n"].fillna(0).astype(int)
        sides.append(frame[(frame["n"] > 0) | frame["value"].notna()])
    merged = sides[0].merge(sides[1], on=keys, how="outer", suffixes=("_project", "_baseline"), indicator="found")
    differences = []
    for row in merged[merged["found"] != "both"].itertuples():
        side = "project" if row.found == "left_only" else "baseline"
        differences.append(f"{row.kpi_id} {row.period_start:%Y-%m} {getattr(row, dimension)}: only in the {side}")
    both = merged[merged["found"] == "both"]
    for column in RESULT_COLUMNS:
        left = both[f"{column}_project"].astype(float).to_numpy()
        right = both[f"{column}_baseline"].astype(float).to_numpy()
        close = np.isclose(left, right, rtol=RELATIVE_TOLERANCE, atol=ABSOLUTE_TOLERANCE, equal_nan=True)
        if column == "n":
            close = left == right
        for i in np.flatnonzero(~close):
            row = both.iloc[i]
            differences.append(
                f"{row['kpi_id']} {row['period_start']:%Y-%m} {row[dimension]}: {column} "
                f"project {float(left[i])!r} != baseline {float(right[i])!r}"
            )
    return Comparison(rows=len(both), kpis=both["kpi_id"].nunique(), differences=differences[:limit])
