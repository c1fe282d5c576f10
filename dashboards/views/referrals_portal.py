"""Referrals & portal: how many referral loops close (as a funnel), and how fast patients get an answer."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, data
from dashboards.components import empty_state, ignored_filters_note, kpi_section, page_context
from dashboards.formatting import period_text

# The stage option of referral_completion_rate, in the order a referral goes.
STAGES = (("scheduled", "Specialist visit booked"), ("completed", "Specialist visit held"), ("closed", "Report back"))

ctx = page_context()
f = ctx.filters
st.title("Referrals & portal")
if not ctx.has_data("referrals_portal"):
    empty_state("referrals_portal")
    st.stop()
spec = ctx.specs["referral_completion_rate"]
ignored_filters_note(ctx, [spec, ctx.specs["portal_response_time"]])
kpi_section(ctx, spec)

st.subheader("Referral funnel")
filters = data.applicable(spec, f.values)
counts, done = [], None
for stage, _ in STAGES:
    frame = data.compute(ctx.src, (spec.id,), f.start, f.end, "month", (), filters, ((spec.id, (("stage", stage),)),))
    done = frame[frame["complete"]]
    counts.append(done["numerator"].sum())
if done is None or done.empty or done["denominator"].sum() == 0:
    st.info("No referral in the selected months has had its full window to close yet.")
else:
    window = spec.options["window_days"]
    first, last = done["period_start"].min().date(), done["period_start"].max().date()
    st.plotly_chart(
        charts.funnel(
            ["Referred (not cancelled)"] + [f"{label} ≤ {window} days" for _, label in STAGES],
            [done["denominator"].sum(), *counts],
            title=f"Referrals made {period_text(first, 'month')} – {period_text(last, 'month')}",
        ),
        key="funnel",
    )
    st.caption(f"Only months whose {window}-day window has passed are counted; later months are still pending.")
kpi_section(ctx, ctx.specs["portal_response_time"])
