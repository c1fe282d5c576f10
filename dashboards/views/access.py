"""Access & scheduling: no-shows, late cancellations, third next available, slot use."""

from __future__ import annotations

import streamlit as st

from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context

KPIS = ("no_show_rate", "late_cancel_rate", "third_next_available", "slot_utilization")

ctx = page_context()
st.title("Access & scheduling")
if not ctx.has_data("access"):
    empty_state("access")
    st.stop()
specs = [ctx.specs[k] for k in KPIS]
ignored_filters_note(ctx, specs)
for spec in specs:
    kpi_section(ctx, spec)
