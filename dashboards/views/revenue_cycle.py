"""Revenue cycle: days in A/R with its aging, denials, clean claims, net collection and charge lag."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context
from dashboards.formatting import period_text

KPIS = ("days_in_ar", "ar_over_90_pct", "denial_rate", "clean_claim_rate", "net_collection_rate", "charge_lag")

ctx = page_context()
f = ctx.filters
st.title("Revenue cycle")
if not ctx.has_data("revenue_cycle"):
    empty_state("revenue_cycle")
    st.stop()
specs = [ctx.specs[k] for k in KPIS]
ignored_filters_note(ctx, specs)
kpi_section(ctx, ctx.specs["days_in_ar"])

st.subheader(f"A/R aging at the end of {period_text(f.last_month, 'month')}")
aging = data.ar_aging(ctx.src, f.month, ("payer_class",), data.applicable(ctx.specs["ar_over_90_pct"], f.values))
if aging["amount"].sum() == 0:
    st.info("No open A/R at the end of this month.")
else:
    st.plotly_chart(charts.aging(aging, "payer_class", ctx.colors("payer_class")), key="aging")
for spec in specs[1:]:
    kpi_section(ctx, spec)
    if spec.id == "denial_rate":
        denial_filters = data.applicable(spec, f.values)
        by_reason = data.compute(ctx.src, (spec.id,), f.start, f.end, f.grain, ("denial_reason",), denial_filters)
        if by_reason["numerator"].sum() > 0:
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
