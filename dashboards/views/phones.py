"""Phones: abandonment (with an hour-of-day × weekday heat map), speed of answer and service level."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.charts import WEEKDAYS
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context

KPIS = ("call_abandonment_rate", "average_speed_of_answer", "service_level")

ctx = page_context()
f = ctx.filters
st.title("Phones")
if not ctx.has_data("phones"):
    empty_state("phones")
    st.stop()
specs = [ctx.specs[k] for k in KPIS]
ignored_filters_note(ctx, specs)
kpi_section(ctx, specs[0])


def _records(kpi: str) -> pd.DataFrame:
    """The calls behind a KPI in every month of the range (the API's explain, one month at a time)."""
    filters = data.applicable(ctx.specs[kpi], f.values)
    frames = [data.explain(ctx.src, kpi, m.isoformat(), "month", filters) for m in f.months()]
    return pd.concat(frames, ignore_index=True)


st.subheader("When callers give up")
abandon = ctx.specs["call_abandonment_rate"]
cells = data.compute(
    ctx.src, (abandon.id,), f.start, f.end, f.grain, ("weekday", "hour_of_day"), data.applicable(abandon, f.values)
)
cells = cells.groupby(["weekday", "hour_of_day"], as_index=False)[["numerator", "denominator"]].sum()
cells = cells[cells["denominator"] > 0]
if cells.empty:
    st.info("No offered calls in the selected months and filters.")
else:
    # The range's periods summed: ratios of sums, as the API would for one long period.
    cells["rate"] = cells["numerator"] / cells["denominator"]
    cells["weekday"] = pd.Categorical(cells["weekday"].map(lambda d: WEEKDAYS[int(d) - 1]), WEEKDAYS, ordered=True)
    cells["hour"] = cells["hour_of_day"].astype(int)
    cells["hover"] = [
        f"{d} {h:02d}:00–{h:02d}:59<br>abandoned {a:,.0f} of {o:,.0f} offered ({r:.1%})"
        for d, h, a, o, r in cells[["weekday", "hour", "numerator", "denominator", "rate"]].itertuples(index=False)
    ]
    cells = cells.sort_values(["weekday", "hour"])
    st.plotly_chart(
        charts.heatmap(
            cells, "rate", "hour", "weekday", title="Abandonment rate by hour of day (local) and weekday",
            colorbar="abandoned", tickformat=".0%",
        ),
        key="abandon-heatmap",
    )  # fmt: skip
    offered = int(cells["denominator"].sum())
    st.caption(f"{offered:,} offered calls; each cell is abandoned ÷ offered calls that entered the queue then.")

st.subheader("How long answered callers waited")
answered = _records("average_speed_of_answer")
answered = answered[answered["side"] == "numerator"]
if answered.empty:
    st.info("No answered calls in the selected months and filters.")
else:
    threshold = ctx.specs["service_level"].options["answer_seconds"]
    st.plotly_chart(
        charts.histogram(
            answered["value"], title="Wait before an agent answered", x_title="wait (seconds)", marker=threshold
        ),
        key="wait-histogram",
    )
    st.caption(f"{len(answered):,} answered calls; the dashed line is the service-level threshold ({threshold} s).")
for spec in specs[1:]:
    kpi_section(ctx, spec)
