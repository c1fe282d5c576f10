"""Visit flow: cycle time (median and p90), where the time goes, and how fast charts are closed."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context

ctx = page_context()
f = ctx.filters
specs = ctx.domain_specs("visit_flow")
st.title(specs[0].domain_title)
if not ctx.has_data("visit_flow"):
    empty_state("visit_flow")
    st.stop()
ignored_filters_note(ctx, specs)
for spec in specs:
    kpi_section(ctx, spec)
    parts = ctx.parts_of(spec.id)  # the segments of a visit, stacked under the whole
    if parts:
        st.subheader("Where the time goes")
        segments = pd.concat(
            [data.facts(ctx.src, p.id, f.start, f.end, f.grain, (), data.applicable(p, f.values)) for p in parts],
            ignore_index=True,
        )
        st.plotly_chart(charts.stacked_segments(segments, parts), key=f"parts-{spec.id}")
        st.caption(
            "Each bar stacks the median of each segment (check-in → roomed, roomed → provider, with the provider, "
            "provider → check-out). Medians of parts need not add up to the median of the whole visit."
        )
