"""Revenue cycle: days in A/R with its aging, denials, clean claims, net collection and charge lag."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context
from kpis.formatting import period_text

ctx = page_context()
f = ctx.filters
specs = ctx.domain_specs("revenue_cycle")
st.title(specs[0].domain_title)
if not ctx.has_data("revenue_cycle"):
    empty_state("revenue_cycle")
    st.stop()
ignored_filters_note(ctx, specs)
for spec in specs:
    kpi_section(ctx, spec)
    if spec.id == "days_in_ar":
        st.subheader(f"A/R aging at the end of {period_text(f.last_month, 'month')}")
        aging_spec = ctx.specs["ar_over_90_pct"]
        aging = data.ar_aging(ctx.src, f.month, ("payer_class",), data.applicable(aging_spec, f.values))
        if not aging["amount"].ne(0).any():
            st.info("No open A/R at the end of this month.")
        else:
            st.plotly_chart(
                charts.aging(aging, "payer_class", ctx.colors("payer_class"), ctx.labels("payer_class")), key="aging"
            )
    if spec.id == "denial_rate":
        by_reason = data.parts(
            ctx.src, spec.id, f.start, f.end, f.grain, "denial_reason", data.applicable(spec, f.values)
        )
        if by_reason["numerator"].gt(0).any():
            st.plotly_chart(
                charts.reasons(
                    by_reason,
                    "denial_reason",
                    leave_out="not denied",
                    title="Denial rate by the payer's reason (CARC)",
                    y_title="share of remitted claims denied",
                ),
                key="denial-reasons",
            )
