"""Visit flow: cycle time (median and p90), where the time goes, and how fast charts are closed."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context

SEGMENTS = (
    "visit_segment_checkin_to_roomed",
    "visit_segment_roomed_to_provider",
    "visit_segment_provider_time",
    "visit_segment_provider_to_checkout",
)
KPIS = ("visit_cycle_time", "visit_cycle_time_p90", "chart_closure_lag")

ctx = page_context()
f = ctx.filters
st.title("Visit flow")
if not ctx.has_data("visit_flow"):
    empty_state("visit_flow")
    st.stop()
ignored_filters_note(ctx, [ctx.specs[k] for k in KPIS])
kpi_section(ctx, ctx.specs["visit_cycle_time"])

st.subheader("Where the time goes")
segment_specs = [ctx.specs[k] for k in SEGMENTS]
segments = data.compute_each(ctx.src, segment_specs, f.start, f.end, f.grain, f.values)
st.plotly_chart(charts.stacked_segments(segments, segment_specs), key="segments")
st.caption(
    "Each bar stacks the median of each segment (check-in → roomed, roomed → provider, with the provider, "
    "provider → check-out). Medians of parts need not add up to the median of the whole visit."
)
for key in ("visit_cycle_time_p90", "chart_closure_lag"):
    kpi_section(ctx, ctx.specs[key])
