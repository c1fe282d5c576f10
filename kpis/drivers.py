"""Who moved the number: a KPI's change between two periods split by segment, rate vs mix.

A ratio KPI is a weighted mean of its segments' rates: value = sum(w_s * r_s) with weight
w_s = denominator_s / total denominator and r_s = numerator_s / denominator_s. Between a
"before" and an "after" period each segment contributes

    contribution_s = w1_s * r1_s - w0_s * r0_s      (= numerator_s / total denominator, after - before)

and the contributions add up exactly to value_after - value_before. Each contribution is split
symmetrically (midpoint weights, so nothing is left over):

    rate_effect_s = (r1_s - r0_s) * (w0_s + w1_s) / 2     the segment got better or worse
    mix_effect_s  = (w1_s - w0_s) * (r0_s + r1_s) / 2     the segment grew or shrank

A segment absent from one period (or with a zero denominator) has no rate there; its whole
contribution is mix. Means decompose the same way with n as the denominator. Medians are not
sums of segment parts, so they cannot be decomposed (a clear error says so).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kpis.errors import ClinicKpisError
from kpis.spec import KpiSpec

COLUMNS = [
    "segment",
    "value_before",
    "value_after",
    "weight_before",
    "weight_after",
    "rate_effect",
    "mix_effect",
    "contribution",
]


def check_decomposable(spec: KpiSpec) -> None:
    if spec.kind == "aggregate" and spec.value.agg != "mean":
        raise ClinicKpisError(
            f"drivers needs a ratio or a mean; {spec.id} is a {spec.value.agg}, which does not split into segments"
        )


def decompose(before: pd.DataFrame, after: pd.DataFrame, segment: str) -> pd.DataFrame:
    """Rate and mix effects per segment from two by-segment results (numerator, denominator columns).

    The frame's attrs carry value_before, value_after and change (= sum of contributions).
    """
    segments, (b_num, b_den), (a_num, a_den) = _aligned(_columns(before, segment), _columns(after, segment))
    total_b, total_a = b_den.sum(), a_den.sum()
    w0 = b_den / total_b if total_b else b_den * 0.0
    w1 = a_den / total_a if total_a else a_den * 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        r0 = b_num / np.where(b_den == 0.0, np.nan, b_den)
        r1 = a_num / np.where(a_den == 0.0, np.nan, a_den)
    contribution = _contribution(b_num, total_b, a_num, total_a)
    both = ~np.isnan(r0) & ~np.isnan(r1)
    rate = np.where(both, (r1 - r0) * (w0 + w1) / 2, 0.0)
    order = np.argsort(-np.abs(contribution), kind="stable")
    labels = np.empty(len(segments), dtype=object)
    labels[:] = segments
    columns = (labels, r0, r1, w0, w1, rate, contribution - rate, contribution)
    out = pd.DataFrame({name: column[order] for name, column in zip(COLUMNS, columns, strict=True)})
    out.attrs["value_before"] = b_num.sum() / total_b if total_b else np.nan
    out.attrs["value_after"] = a_num.sum() / total_a if total_a else np.nan
    out.attrs["change"] = float(out["contribution"].sum())
    return out


Column = tuple[list[Any], np.ndarray, np.ndarray]  # segments, their numerators and denominators


def contributions(before: Column, after: Column) -> dict[Any, float]:
    """segment -> its contribution to the change (`decompose`'s column, the same value), from plain columns.

    Why: the movers split each move by every driver dimension under every filter change; a dict
    from arrays costs a small part of `decompose`'s frames (1,338 providers at 10 M).
    """
    segments, (b_num, b_den), (a_num, a_den) = _aligned(before, after)
    return dict(zip(segments, _contribution(b_num, b_den.sum(), a_num, a_den.sum()).tolist(), strict=True))


def _columns(rows: pd.DataFrame, segment: str) -> Column:
    """A frame's segments (a missing one as None: one segment, as pandas' labels have it) and its
    numerators and denominators."""
    return (
        segments_of(rows[segment]),
        rows["numerator"].to_numpy(dtype=float, na_value=np.nan),
        rows["denominator"].to_numpy(dtype=float, na_value=np.nan),
    )


def segments_of(column: pd.Series) -> list[Any]:
    """A dimension column's values as a list, every missing value None (NaN != NaN, None == None)."""
    return column.astype(object).where(column.notna(), None).tolist()


def _aligned(before: Column, after: Column) -> tuple[list[Any], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The segments of both periods (before's in order, then after's new ones) and each period's
    numerators and denominators over them, 0 where a segment has none (or a missing value).

    The order matters: the totals are sums over these arrays, and a float sum depends on it.
    """
    (b_segments, b_num, b_den), (a_segments, a_num, a_den) = before, after
    known = set(b_segments)
    segments = b_segments + [s for s in a_segments if s not in known]
    position = {s: i for i, s in enumerate(segments)}
    at = np.array([position[s] for s in a_segments], dtype=np.intp)

    def spread(values: np.ndarray, where: np.ndarray | None) -> np.ndarray:
        out = np.zeros(len(segments))
        if where is None:
            out[: len(values)] = values
        else:
            out[where] = values
        return np.where(np.isnan(out), 0.0, out)

    return segments, (spread(b_num, None), spread(b_den, None)), (spread(a_num, at), spread(a_den, at))


def _contribution(b_num: np.ndarray, total_b: float, a_num: np.ndarray, total_a: float) -> np.ndarray:
    """Each segment's numerator over its period's total denominator, after minus before."""
    c0 = b_num / total_b if total_b else b_num * 0.0
    c1 = a_num / total_a if total_a else a_num * 0.0
    return c1 - c0
