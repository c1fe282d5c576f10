"""Overview: the headline KPIs for the selected month, and what changed since the month before."""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboards import data
from dashboards.components import empty_state, ignored_filters_note, kpi_tile, page_context
from dashboards.filters import add_months
from dashboards.formatting import INCOMPLETE_HELP, change_text, missing, period_text, value_text
from kpis.errors import ClinicKpisError
from kpis.spec import KpiSpec

TILES_PER_ROW = 4
MOVERS = 3
DRIVER_DIMENSIONS = ("location", "provider", "payer")
STANDS_OUT = 0.25

ctx = page_context()
month = date.fromisoformat(ctx.filters.month)
st.title(f"Overview — {period_text(month, 'month')}")

if data.coverage(ctx.src).empty:
    st.info(
        "No data loaded yet. Load your practice's exports with `clinic-kpis ingest PATH...` (or the upload "
        "box on the Data page); to try the dashboard first, run `clinic-kpis sample --out exports` and "
        "`clinic-kpis ingest exports`.",
        icon=":material/inbox:",
    )
    for domain in ("access", "phones", "revenue_cycle"):
        empty_state(domain)
    st.stop()

headline = [spec for spec in ctx.specs.values() if spec.headline]
first = add_months(month, -12).isoformat()
frame = data.compute_each(ctx.src, headline, first, ctx.filters.end, "month", ctx.filters.values)

st.caption(
    "Each tile: the month's value (tiles are monthly whatever the grain), its change since the month before "
    "(arrow), the same month last year, and the 13-month trend. Colours follow each KPI's target band."
)

for start in range(0, len(headline), TILES_PER_ROW):
    for column, spec in zip(st.columns(TILES_PER_ROW), headline[start : start + TILES_PER_ROW], strict=False):
        with column:
            kpi_tile(spec, frame[frame["kpi_id"] == spec.id], month)
ignored_filters_note(ctx, headline)


def _moved(spec: KpiSpec) -> tuple[float, float, float, bool] | None:
    """(relative size of the move, before, after, month complete) for this month against the month before."""
    rows = frame[frame["kpi_id"] == spec.id]
    rows = rows.set_index(rows["period_start"].dt.date)
    before, after = add_months(month, -1), month
    if before not in rows.index or after not in rows.index:
        return None
    v0, v1 = rows.loc[before, "value"], rows.loc[after, "value"]
    if missing(v0) or missing(v1) or v0 == v1:
        return None
    scale = abs(spec.red - spec.target) if spec.red is not None and spec.target is not None else abs(v0) or 1.0
    return abs(v1 - v0) / scale, v0, v1, bool(rows.loc[after, "complete"])


def _main_driver(spec: KpiSpec, change: float) -> str:
    """The segment (location, provider or payer) that contributed most to the move, as a phrase.

    A segment whose contribution is under STANDS_OUT of the move does not explain it, and is not named.
    """
    best: tuple[float, str] | None = None
    dims = tuple(dim for dim in DRIVER_DIMENSIONS if dim in spec.dimensions)
    try:
        filters = data.applicable(spec, ctx.filters.values)
        splits = data.drivers(ctx.src, spec.id, ctx.filters.month, dims, filters) if dims else {}
    except ClinicKpisError:  # a median does not split into segment contributions
        return "a median, so it does not split into segment contributions"
    for dim, split in splits.items():
        split = split[split["contribution"].notna() & split["segment"].notna()]  # e.g. calls with no location
        if split.empty:
            continue
        top = split.iloc[0]
        labels = ctx.labels(dim)
        phrase = f"{dim} {labels.get(str(top['segment']), top['segment'])} ({change_text(top['contribution'], spec)})"
        if best is None or abs(top["contribution"]) > best[0]:
            best = (abs(top["contribution"]), phrase)
    if best is None or best[0] < STANDS_OUT * abs(change):
        return f"no single {' or '.join(dims)} stands out"
    return f"most of it from {best[1]}"


st.subheader(f"What changed since {period_text(add_months(month, -1), 'month')}")
# A KPI whose month is not final (claims not yet remitted, referral windows running) would
# top the list with a drop that is only missing data, so it is named apart, not ranked.
moved = [(m, spec) for spec in headline if (m := _moved(spec)) is not None]
moves = sorted(((m, spec) for m, spec in moved if m[3]), key=lambda item: -item[0][0])
still_open = [spec.title for m, spec in moved if not m[3]]
if not moved:
    st.caption("Nothing to compare: the month before has no values.")
lines = []
for (_, v0, v1, _complete), spec in moves[:MOVERS]:
    better = (v1 < v0) == (spec.better == "lower")
    word = "improved" if better else "worsened"
    color = "green" if better else "red"
    lines.append(
        f"- **{spec.title}** :{color}[{word}] {change_text(v1 - v0, spec)}: "
        f"{value_text(v0, spec)} → {value_text(v1, spec)}; {_main_driver(spec, v1 - v0)}."
    )
st.markdown("\n".join(lines))
if still_open:
    why = INCOMPLETE_HELP[0].lower() + INCOMPLETE_HELP[1:]
    st.caption(f"Not compared while their month is not final ({why}): {', '.join(still_open)}.")
