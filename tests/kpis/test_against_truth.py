"""End to end: simulate a practice, ingest its exports, and compare every KPI with truth.json.

The practice is the session's simulated practice (tests/conftest.py). Every KPI, month,
location and provider must equal the simulator's own ground truth (1e-9 relative).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kpis.results import all_results
from tests.conftest import SimulatedPractice

pytestmark = pytest.mark.slow


def test_every_kpi_equals_the_simulators_truth(simulated_practice: SimulatedPractice) -> None:
    truth = simulated_practice.truth
    expected = pd.DataFrame(truth["kpis"])
    with simulated_practice.open() as wh:
        got = all_results(wh, start=truth["meta"]["start"], end=truth["meta"]["end"])
    got["period_start"] = got["period_start"].dt.strftime("%Y-%m-%d")
    key = ["kpi_id", "period_start", "dimension", "dimension_value"]
    for frame in (expected, got):
        frame["dimension"] = frame["dimension"].astype(object).where(frame["dimension"].notna(), "practice")
        frame["dimension_value"] = frame["dimension_value"].astype(object).where(frame["dimension_value"].notna(), "")
    merged = expected.merge(got, on=key, how="left", suffixes=("_truth", "_kpis"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", key].head()
    problems = []
    for row in merged.itertuples(index=False):
        for column in ("value", "numerator", "denominator", "n"):
            a, b = getattr(row, f"{column}_truth"), getattr(row, f"{column}_kpis")
            if not _same(a, b):
                problems.append((row.kpi_id, row.period_start, row.dimension, row.dimension_value, column, a, b))
    assert problems == [], f"{len(problems)} differences, e.g. {problems[:5]}"


def _same(a: object, b: object) -> bool:
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
