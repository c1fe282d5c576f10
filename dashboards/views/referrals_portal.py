"""Referrals & portal: how many referral loops close (as a funnel), and how fast patients get an answer."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context
from kpis.formatting import period_text

# The stage option of referral_completion_rate, in the order a referral goes.
STAGES = (("scheduled", "Specialist visit booked"), ("completed", "Specialist visit held"), ("closed", "Report back"))

ctx = page_context()
f = ctx.filters
specs = ctx.domain_specs("referrals_portal")
st.title(specs[0].domain_title)
if not ctx.has_data("referrals_portal"):
    empty_state("referrals_portal")
    st.stop()
ignored_filters_note(ctx, specs)
for spec in specs:
    kpi_section(ctx, spec)
    if spec.id != "referral_completion_rate":
        continue
    st.subheader("Referral funnel")
    filters = data.applicable(spec, f.values)
    # each stage over the whole range, months whose window has not passed left out (the API's range total)
    stages = [
        data.totals(ctx.src, spec.id, f.start, f.end, (), filters, (("stage", stage),), complete_only=True)
        for stage, _ in STAGES
    ]
    done = stages[-1]
    if done.empty or done["denominator"].iloc[0] == 0:
        st.info("No referral in the selected months has had its full window to close yet.")
        continue
    window = spec.options["window_days"]
    first, last = done["first_period"].iloc[0].date(), done["last_period"].iloc[0].date()
    st.plotly_chart(
        charts.funnel(
            ["Referred (not cancelled)"] + [f"{label} ≤ {window} days" for _, label in STAGES],
            [done["denominator"].iloc[0], *(stage["numerator"].iloc[0] for stage in stages)],
            title=f"Referrals made {period_text(first, 'month')} – {period_text(last, 'month')}",
        ),
        key="funnel",
    )
    st.caption(f"Only months whose {window}-day window has passed are counted; later months are still pending.")
