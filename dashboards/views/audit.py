"""Audit log (owners only): who signed in, what they looked at with which filters, what they took."""

from __future__ import annotations

import streamlit as st

from dashboards import auth, data
from dashboards.components import page_context
from kpis.access import access_settings

ctx = page_context()
st.title("Audit log")
if not ctx.access.is_owner:  # the router lists this page for owners only; a second lock costs nothing
    st.stop()

settings = access_settings(data.config(ctx.src))
st.caption(
    "Every sign-in (and failed attempt), page view with its filters, look at the records behind a value, "
    "download, report sent and change of users, oldest first. Appended to "
    f"`{data.audit_log(ctx.src).path.name}` beside the warehouse and kept {settings.audit_retention_days} days "
    "(`[access] audit_retention_days`)."
)
entries = data.audit_entries(ctx.src)
if entries.empty:
    st.info("Nothing recorded yet.")
    st.stop()

tz = data.config(ctx.src).tz
entries = entries.assign(at=entries["at"].dt.tz_convert(tz))
left, middle, right = st.columns(3)
events = left.multiselect("Events", sorted(entries["event"].unique()), key="audit-events", placeholder="All events")
users = middle.multiselect(
    "People", sorted(entries["user"].dropna().unique()), key="audit-users", placeholder="Everyone"
)
first, last = entries["at"].min().date(), entries["at"].max().date()
days = right.date_input("Days", (first, last), min_value=first, max_value=last, key="audit-days")
shown = entries
if events:
    shown = shown[shown["event"].isin(events)]
if users:
    shown = shown[shown["user"].isin(users)]
if isinstance(days, tuple) and len(days) == 2:
    shown = shown[(shown["at"].dt.date >= days[0]) & (shown["at"].dt.date <= days[1])]
st.dataframe(shown, hide_index=True, key="audit-table")
name = "audit_log.csv"
st.download_button(
    "Download CSV",
    shown.to_csv(index=False).encode("utf-8"),
    file_name=name,
    mime="text/csv",
    key="audit-csv",
    on_click=auth.record,
    args=(ctx.src, ctx.access, "download"),
    kwargs={"page": "audit", "what": "audit log", "file": name, "rows": len(shown)},
)
