"""`kpis.engine.complete_table` builds the same frame as pandas merges do, to the dtype and row order.

The reference below is the table as it was built before issue 15 (a cross join of KPIs, periods
and dimension values, a left merge of the results onto it, a merge of each KPI's fill rule,
labels and target bands): simple and slow (seconds for 600 k rows). Every frame the engine
completes on the simulated practice (both paths, every grain, grouping sets, filters, a limited
scope) must equal it exactly; what `compute` asks for one grouping (`ordered`) must equal it sorted
as `compute` sorted it before (by KPI, period and dimension values as text, stable).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd
import pytest

from kpis import Warehouse, engine
from kpis.query import KpiRequest, QueryContext
from kpis.relations import DIMENSIONS
from kpis.scope import Scope
from tests.conftest import SimulatedPractice


def reference_complete_table(
    raw: pd.DataFrame,
    items: Sequence[KpiRequest],
    ctx: QueryContext,
    domains: Mapping[str, Sequence[Any]],
    data_ends: Mapping[str, date | None],
    data_starts: Mapping[str, date | None] | None = None,
    ordered: bool = False,
) -> pd.DataFrame:
    raw, periods = engine.normalized(raw, ctx)  # the shared preamble; what follows is the merge version
    kpis = pd.DataFrame({"kpi_id": [item.id for item in items]})
    pieces = []
    for group in ctx.grouping_sets:
        rows = raw[raw["grouping_id"] == engine.grouping_id(group, ctx.dims)] if ctx.multiple_sets else raw
        keys = ["kpi_id", "period_start", *group]
        index = kpis.merge(periods, how="cross").merge(engine._combinations(rows, group, ctx, domains), how="cross")
        rows = rows[[*keys, "numerator", "denominator", "value", "n", "unknown"]].astype({d: "object" for d in group})
        merged = index.merge(rows, on=keys, how="left", validate="one_to_one")
        for dim in ctx.dims:
            if dim not in group:
                merged[dim] = None
        if ctx.multiple_sets:
            merged["grouping_id"] = engine.grouping_id(group, ctx.dims)
        pieces.append(merged)
    frame = pd.concat(pieces, ignore_index=True)
    frame["grain"] = ctx.periods.grain
    frame["n"] = frame["n"].fillna(0).astype("int64")
    frame["unknown"] = frame["unknown"].fillna(0).astype("int64")
    frame["value"] = frame["value"].astype("float64").where(frame["unknown"] == 0)
    info = pd.DataFrame([engine._kpi_info(item, ctx, data_ends, data_starts or {}) for item in items])
    frame = frame.merge(info, on="kpi_id", how="left", validate="many_to_one")
    ratio = frame["has_ratio"].astype(bool)
    for side in ("numerator", "denominator"):
        frame[side] = frame[side].where(~ratio | frame[side].notna(), 0.0)
    frame["note"] = engine.notes(frame)
    last_day = pd.to_datetime(frame["period_last"]) + pd.to_timedelta(frame["lag_days"], unit="D")
    frame["complete"] = (last_day <= pd.to_datetime(frame["data_end"])).fillna(False).astype(bool)
    window_first = frame["period_end"] - pd.to_timedelta(frame["lookback_days"] - 1, unit="D")
    short = (frame["lookback_days"] > 0) & (window_first < pd.to_datetime(frame["data_start"]))
    frame["complete"] = frame["complete"] & ~short
    frame["status"] = engine.status_of(frame["value"], frame["better"], frame["watch"], frame["red"])
    columns = ["kpi_id", "period_start", "grain", *ctx.dims]
    columns += (["grouping_id"] if ctx.multiple_sets else []) + list(engine.RESULT_COLUMNS)
    frame = frame[columns]
    if ordered and not ctx.multiple_sets:  # the whole frame sorted, stable: by KPI (as asked), period, values as text
        order = [item.id for item in items]
        text = [frame[dim].map(lambda v: str(None if pd.isna(v) else v)) for dim in ctx.dims]
        keys = pd.DataFrame({"kpi": frame["kpi_id"].map(order.index), "period": frame["period_start"]})
        keys = pd.concat([keys, *(t.rename(f"d{i}") for i, t in enumerate(text))], axis=1)
        frame = frame.loc[keys.sort_values(list(keys.columns), kind="stable").index].reset_index(drop=True)
    return frame


@pytest.fixture(scope="module")
def wh(simulated_practice: SimulatedPractice) -> Warehouse:
    with simulated_practice.open() as opened:
        yield opened


def test_the_completed_table_equals_the_merges_it_replaces(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    compared = []
    real = engine.complete_table

    def both(*args: Any, **kwargs: Any) -> pd.DataFrame:
        frame = real(*args, **kwargs)
        pd.testing.assert_frame_equal(frame, reference_complete_table(*args, **kwargs), check_exact=True)
        compared.append(len(frame))
        return frame

    monkeypatch.setattr(engine, "complete_table", both)
    values = {dim: wh.dimension_values(dim)["id"].tolist() for dim in ("location", "provider", "payer")}
    east = wh.narrowed(Scope(locations=frozenset({"EAST"})))
    for via in ("store", "raw"):
        for grain, start, end in (("month", "2025-09", "2026-09"), ("week", "2026-06-01", "2026-09-30")):
            for by in [(), *((d,) for d in DIMENSIONS), ("location", "provider"), ("queue", "hour_of_day")]:
                kpis = [s.id for s in wh.catalog() if set(by) <= set(s.dimensions)]
                wh.compute(kpis, start, end, grain, by=list(by) or None, via=via)
            wh.compute(None, start, end, grain, by="provider", filters={"location": values["location"][:2]}, via=via)
            wh.compute(["no_show_rate"], start, end, grain, by="payer", filters={"payer": values["payer"][0]}, via=via)
            east.compute(None, start, end, grain, by="provider", via=via)
            wh.compute_groupings(
                None, start, end, grain, groupings=[(), ("location",), ("provider",), ("location", "provider")], via=via
            )
        wh.compute("no_show_rate", "2030-01", "2030-03", via=via)  # no rows at all
    assert len(compared) > 40 and max(compared) > 1000


def test_notes_for_every_kind_of_side_equal_the_merges(wh: Warehouse) -> None:
    """Sides zero, negative, missing, with unknowns or over 100%: the rows `_notes` looks at are the
    rows `notes` writes on (the simulated practice has no negative side)."""
    kpis = ["net_collection_rate", "days_in_ar", "no_show_rate", "visit_cycle_time"]
    items, ctx = wh._prepare(kpis, "2026-01", "2026-03", "month", ((),), None, None)
    sides = [(0.0, 0.0, 0, 0), (-5.0, 10.0, 3, 0), (5.0, -10.0, 3, 0), (0.0, -1.0, 0, 0), (-1.0, 0.0, 0, 0)]
    sides += [(None, None, 0, 0), (3.0, 2.0, 2, 0), (1.0, 4.0, 4, 2), (None, None, 5, 0), (0.0, 0.0, 1, 0)]
    rows = []
    for i, (kpi, start) in enumerate((k, s) for k in kpis for s in ctx.periods.starts):
        if i >= len(sides):
            break
        numerator, denominator, n, unknown = sides[i]
        value = numerator / denominator if numerator is not None and denominator and denominator > 0 else None
        rows.append((kpi, start, numerator, denominator, value, n, unknown))
    columns = ["kpi_id", "period_start", "numerator", "denominator", "value", "n", "unknown"]
    raw = pd.DataFrame(rows, columns=columns)
    ends = wh._data_ends()
    frame = engine.complete_table(raw, items, ctx, {}, ends, ordered=True)
    pd.testing.assert_frame_equal(
        frame, reference_complete_table(raw, items, ctx, {}, ends, ordered=True), check_exact=True
    )
    assert frame["note"].str.startswith("No value:").sum() >= 3 and frame["note"].str.startswith("Unknown:").any()
