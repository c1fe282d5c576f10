"""Small helpers shared by the KPI tests."""

from __future__ import annotations

import pandas as pd


def one(frame: pd.DataFrame, **where: object) -> pd.Series:
    """The single row of `frame` where each column (as text) equals the given value."""
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column].astype(str) == str(value)]
    assert len(rows) == 1, f"expected one row for {where}, got {len(rows)}"
    return rows.iloc[0]
