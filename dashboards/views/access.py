"""Access & scheduling: no-shows, late cancellations, third next available, slot use."""

from __future__ import annotations

import streamlit as st

from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context

ctx = page_context()
specs = ctx.domain_specs("access")
st.title(specs[0].domain_title)
if not ctx.has_data("access"):
    empty_state("access")
    st.stop()
ignored_filters_note(ctx, specs)
for spec in specs:
    kpi_section(ctx, spec)
