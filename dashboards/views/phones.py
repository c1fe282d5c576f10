"""Phones: abandonment (with an hour-of-day × weekday heat map), speed of answer and service level."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.charts import WEEKDAYS
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context
from kpis.formatting import count_text, value_text

ctx = page_context()
f = ctx.filters
specs = ctx.domain_specs("phones")
st.title(specs[0].domain_title)
if not ctx.has_data("phones"):
    empty_state("phones")
    st.stop()
ignored_filters_note(ctx, specs)


def heat_map() -> None:
    st.subheader("When callers give up")
    abandon = ctx.specs["call_abandonment_rate"]
    filters = data.applicable(abandon, f.values)
    # one value per cell over the whole range: the API's range total (ratios of sums)
    cells = data.totals(ctx.src, abandon.id, f.start, f.end, ("weekday", "hour_of_day"), filters)
    cells = cells[cells["denominator"] > 0]
    if cells.empty:
        st.info("No offered calls in the selected months and filters.")
        return
    cells = cells.assign(
        weekday=pd.Categorical(cells["weekday"].map(lambda d: WEEKDAYS[int(d) - 1]), WEEKDAYS, ordered=True),
        hour=cells["hour_of_day"].astype(int),
    )
    cells["hover"] = [
        f"{d} {h:02d}:00–{h:02d}:59<br>abandoned {count_text(a)} of {count_text(o)} offered ({value_text(r, abandon)})"
        for d, h, a, o, r in cells[["weekday", "hour", "numerator", "denominator", "value"]].itertuples(index=False)
    ]
    cells = cells.sort_values(["weekday", "hour"])
    st.plotly_chart(
        charts.heatmap(
            cells, "value", "hour", "weekday", title="Abandonment rate by hour of day (local) and weekday",
            colorbar="abandoned", tickformat=".0%", step=0.01,
        ),
        key="abandon-heatmap",
    )  # fmt: skip
    whole = data.totals(ctx.src, abandon.id, f.start, f.end, (), filters)
    st.caption(
        f"{count_text(whole['denominator'].iloc[0])} offered calls; each cell is abandoned ÷ offered calls that "
        "entered the queue then."
    )


def waits() -> None:
    st.subheader("How long answered callers waited")
    if not ctx.access.scope.records:
        st.caption("Drawn from the calls themselves, which your role does not see (aggregates only).")
        return
    speed = ctx.specs["average_speed_of_answer"]
    # each wait and how many answered calls waited that long, over the whole range
    waited = data.value_counts(ctx.src, speed.id, f.start, f.end, data.applicable(speed, f.values))
    if waited.empty:
        st.info("No answered calls in the selected months and filters.")
        return
    threshold = ctx.specs["service_level"].options["answer_seconds"]
    st.plotly_chart(
        charts.histogram(
            waited["value"], waited["records"], title="Wait before an agent answered", x_title="wait (seconds)",
            marker=threshold,
        ),
        key="wait-histogram",
    )  # fmt: skip
    st.caption(
        f"{waited['records'].sum():,} answered calls; the dashed line is the service-level threshold ({threshold} s)."
    )


for spec in specs:
    kpi_section(ctx, spec)
    if spec.id == "call_abandonment_rate":
        heat_map()
        waits()
