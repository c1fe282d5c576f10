"""Data: what was loaded and when, what was quarantined and why, which months each source covers, and an upload box."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.components import page_context
from kpis.errors import ClinicKpisError

RUN_COLUMNS = ["run_id", "file_path", "adapter", "status", "started_at", "finished_at", "rows_read", "rows_inserted",
               "rows_updated", "rows_unchanged", "rows_stale", "rows_waiting", "rows_rejected", "rows_ignored",
               "error"]  # fmt: skip
REJECT_COLUMNS = ["run_id", "file_path", "position_kind", "position", "target_table", "field", "reason", "value_masked"]

# what an export is, in words: the `source` of a row (coverage) or the adapter of a run; a CSV profile names itself
SOURCE_NAMES = {
    "fhir": "FHIR", "x12": "X12", "x12_835": "X12 835", "x12_837": "X12 837",
    "asterisk": "Asterisk queue_log", "queue_log": "Asterisk queue_log",
    "asterisk_cdr": "Asterisk call log", "call_log": "Asterisk call log",
}  # fmt: skip


def source_text(source: str) -> str:
    """`FHIR`, `vendor appointments CSV` (for `csv:vendor_appointments`): the names a manager knows the exports by."""
    if source.startswith("csv:"):
        return f"{source.removeprefix('csv:').replace('_', ' ')} CSV"
    return SOURCE_NAMES.get(source, source)


ctx = page_context()
st.title("Data")

st.subheader("Load an export")
if not ctx.access.is_owner:
    st.caption("The practice's owner loads exports.")
    uploads = None
else:
    uploads = st.file_uploader(
        "Drop exports here: FHIR NDJSON, X12 837/835, an Asterisk queue_log, a vendor CSV, or a .zip of them",
        accept_multiple_files=True,
        key="upload",
    )
if uploads and st.button("Load into the warehouse", type="primary", key="load"):
    try:
        with st.spinner("Loading…"):
            results = data.ingest_files(ctx.src, [(u.name, u.getvalue()) for u in uploads])
    except ClinicKpisError as exc:
        st.error(str(exc))
    else:
        # What failed is an error with its whole reason; success is said only of what loaded.
        for r in results:
            if r.status == "failed":
                reason = r.message or "no reason given"
                st.error(f"Not loaded: {reason if reason.startswith(r.path) else f'{r.path}: {reason}'}")
        skipped = [f"{r.path} ({r.message})" if r.message else r.path for r in results if r.status == "skipped"]
        if skipped:
            st.info(f"Skipped: {'; '.join(skipped)}")
        loaded = [r for r in results if r.status == "succeeded"]
        if loaded:
            st.dataframe(
                pd.DataFrame(
                    [
                        {"file": r.path, "format": r.adapter, "read": r.read, "inserted": r.inserted,
                         "updated": r.updated, "unchanged": r.unchanged, "stale": r.stale, "waiting": r.waiting,
                         "rejected": r.rejected}
                        for r in loaded
                    ]
                ),
                hide_index=True,
            )  # fmt: skip
            for r in loaded:
                for warning in r.warnings:
                    st.warning(f"{r.path}: {warning}")
            names = ", ".join(r.path for r in loaded)
            st.success(f"Loaded {len(loaded)} file(s): {names}. Every page now shows the new data.")

st.subheader("Coverage: which sources feed which months")
coverage = data.coverage(ctx.src)
if coverage.empty:
    st.info("Nothing loaded yet: every KPI is empty. Load exports above or with `clinic-kpis ingest PATH...`.")
else:
    titles = {spec.domain: spec.domain_title for spec in ctx.specs.values()}
    feeds = [
        f"{titles.get(domain, domain)} · {table.replace('_', ' ')} ({source_text(source)})"
        for domain, table, source in zip(coverage["domain"], coverage["table_name"], coverage["source"], strict=True)
    ]
    cells = coverage.assign(feed=feeds, month=coverage["period_start"].dt.strftime("%Y-%m"))
    cells["hover"] = [f"{feed}<br>{month}: {rows:,} rows" for feed, month, rows in
                      cells[["feed", "month", "rows"]].itertuples(index=False)]  # fmt: skip
    st.plotly_chart(
        charts.heatmap(cells, "rows", "month", "feed", title="Rows per month", colorbar="rows", tickformat=",", step=1),
        key="coverage",
    )
    st.caption("A blank cell is a month a source did not feed: a gap there is missing data, not a good month.")
    ends = cells.groupby("feed", sort=False).agg(
        first=("period_start", "min"), last=("last_event_at", "max"), rows=("rows", "sum")
    )
    # the source that ends first (and may hold the Overview's month back) on top; a feed of undated
    # rows only (encounters never checked in) has no first month or last record to show
    ends = ends.dropna(subset=["last"]).sort_values("last")
    st.dataframe(
        pd.DataFrame(
            {
                "source": ends.index,
                "from": [f"{day:%b %Y}" for day in ends["first"]],
                "through (last record)": [f"{pd.Timestamp(day):%b %-d, %Y}" for day in ends["last"]],
                "rows": ends["rows"],
            }
        ),
        hide_index=True,
        key="coverage-ends",
    )
    with st.expander("Coverage table"):
        st.dataframe(coverage, hide_index=True)

if ctx.access.scope.limited:  # the load history and rejects are the whole practice's
    st.caption("The load history and quarantined records cover the whole practice: the owner and analysts see them.")
    st.stop()

st.subheader("Ingest runs")
runs = data.ingest_runs(ctx.src)
if runs.empty:
    st.info("No file has been loaded into this warehouse yet.")
else:
    tz = data.config(ctx.src).tz  # local time, as the sidebar's: the warehouse keeps UTC
    shown = runs[[c for c in RUN_COLUMNS if c in runs.columns]].assign(
        adapter=runs["adapter"].map(source_text),
        started_at=runs["started_at"].dt.tz_convert(tz).dt.strftime("%b %-d, %Y %H:%M:%S"),
        finished_at=runs["finished_at"].dt.tz_convert(tz).dt.strftime("%b %-d, %Y %H:%M:%S"),
    )
    st.dataframe(shown, hide_index=True)

st.subheader("Quarantined records")
rejects = data.rejects(ctx.src)
if rejects.empty:
    st.caption("No record was rejected.")
else:
    st.caption("Records that failed a check were kept aside, not loaded; patient details in them are masked.")
    st.dataframe(rejects[REJECT_COLUMNS], hide_index=True)
