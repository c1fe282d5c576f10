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
    b = before.set_index(segment)[["numerator", "denominator"]]
    a = after.set_index(segment)[["numerator", "denominator"]]
    segments = pd.Index(b.index.tolist() + [s for s in a.index.tolist() if s not in b.index], dtype="object")
    b, a = b.reindex(segments).fillna(0.0), a.reindex(segments).fillna(0.0)
    total_b, total_a = b["denominator"].sum(), a["denominator"].sum()
    w0 = b["denominator"] / total_b if total_b else b["denominator"] * 0.0
    w1 = a["denominator"] / total_a if total_a else a["denominator"] * 0.0
    r0 = b["numerator"] / b["denominator"].replace(0.0, np.nan)
    r1 = a["numerator"] / a["denominator"].replace(0.0, np.nan)
    c0 = b["numerator"] / total_b if total_b else b["numerator"] * 0.0
    c1 = a["numerator"] / total_a if total_a else a["numerator"] * 0.0
    contribution = c1 - c0
    both = r0.notna() & r1.notna()
    rate = ((r1 - r0) * (w0 + w1) / 2).where(both, 0.0)
    out = pd.DataFrame(
        {
            "segment": segments.to_series().values,
            "value_before": r0.values,
            "value_after": r1.values,
            "weight_before": w0.values,
            "weight_after": w1.values,
            "rate_effect": rate.values,
            "mix_effect": (contribution - rate).values,
            "contribution": contribution.values,
        }
    )
    out = out.iloc[np.argsort(-np.abs(out["contribution"].to_numpy()), kind="stable")].reset_index(drop=True)
    out.attrs["value_before"] = b["numerator"].sum() / total_b if total_b else np.nan
    out.attrs["value_after"] = a["numerator"].sum() / total_a if total_a else np.nan
    out.attrs["change"] = float(out["contribution"].sum())
    return out
