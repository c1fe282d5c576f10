"""Alerts: the inbox of what the alert rules raised (open, acknowledged, cleared), with acknowledge."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import auth, data
from dashboards.components import page_context
from kpis.formatting import period_text, value_text

STATUSES = {"open": "Open", "acknowledged": "Acknowledged", "cleared": "Cleared"}

ctx = page_context()
st.title("Alerts")
tz = data.config(ctx.src).tz


def _local_day(instant: object) -> str:
    """The practice's day of an instant the warehouse keeps in UTC (an alert raised at 9 pm in Chicago
    is raised that day, not the next): `Oct 3, 2026`."""
    return f"{pd.Timestamp(instant).tz_convert(tz):%b %-d, %Y}"


chosen = ctx.filters.values.get("location") or None
inbox = data.alerts(ctx.src, (), tuple(chosen) if chosen else None)
runs = data.alert_evaluations(ctx.src)
where = f" at {', '.join(ctx.labels('location').get(v, v) for v in chosen)}" if chosen else ""
if runs.empty:
    st.info(
        "The alert rules have not been evaluated yet: `clinic-kpis alerts check` does it (run it after each "
        "ingest; reports/SCHEDULING.md shows how).",
        icon=":material/notifications_off:",
    )
    st.stop()
st.caption(
    f"Alerts{where}, raised by the rules on complete periods only, once each: an alert stays quiet while its "
    f"KPI stays where it is and re-arms when it recovers. Last checked on {_local_day(runs['finished_at'].iloc[0])}, "
    f"on data through {pd.Timestamp(runs['data_end'].iloc[0]):%b %-d, %Y}."
)

counts = inbox["status"].value_counts()
status = st.segmented_control(
    "Show",
    list(STATUSES),
    default="open",
    format_func=lambda s: f"{STATUSES[s]} ({int(counts.get(s, 0))})",
    key="alert_status",
)
shown = inbox[inbox["status"] == (status or "open")]
if shown.empty:
    st.info(f"No {STATUSES[status or 'open'].lower()} alerts{where}.", icon=":material/notifications:")
    st.stop()

by = ctx.access.user  # signed in: the acknowledgement is theirs, not a name typed in
if status in (None, "open"):
    if not ctx.access.acts:
        st.caption("Acknowledging an alert is for the owner, analysts and managers; a viewer reads the inbox.")
    elif not ctx.access.sign_in_on:
        by = st.text_input("Your name (recorded with an acknowledgement)", key="ack_by", max_chars=80)

for row in shown.itertuples():
    spec = ctx.specs.get(row.kpi_id)
    value = value_text(row.value, spec) if spec is not None else f"{row.value:g}"
    with st.container(border=True, key=f"alert-{row.alert_id}"):
        when = period_text(row.period_start.date(), row.grain)
        st.markdown(f"**{row.kpi_title}** — {row.scope_label}: **{value}** in {when}")
        st.write(row.message)
        # the rule in words: its id (`no_show_rate.off_target`) is the config's name for it, not a manager's
        st.caption(f"Rule: {row.rule_text}. Raised {_local_day(row.raised_at)}.")
        if row.status == "open" and ctx.access.acts:
            if st.button("Acknowledge", key=f"ack-{row.alert_id}", icon=":material/done:"):
                try:
                    data.acknowledge_alert(ctx.src, int(row.alert_id), by)
                except data.WarehouseBusy as exc:
                    st.warning(str(exc), icon=":material/hourglass_top:")
                else:
                    auth.record(ctx.src, ctx.access, "alert_acknowledged", kpi=row.kpi_id, alert_id=int(row.alert_id))
                    st.rerun()
        elif row.status == "acknowledged":
            who = f" by {row.acknowledged_by}" if isinstance(row.acknowledged_by, str) else ""
            st.caption(f"Acknowledged{who} on {_local_day(row.acknowledged_at)}; still firing.")
        else:
            reason = "its rule no longer covers it" if row.cleared_reason == "rule_removed" else "the KPI recovered"
            since = f" in {period_text(row.cleared_period.date(), row.grain)}" if pd.notna(row.cleared_period) else ""
            st.caption(f"Cleared{since}: {reason}.")
