"""The building blocks pages are made of: the page context, KPI tiles, KPI sections and empty states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.filters import Filters, add_months, option_labels
from dashboards.formatting import (
    INCOMPLETE_HELP,
    STATUS_LABELS,
    change_text,
    missing,
    period_text,
    segment_label,
    target_text,
    value_text,
)
from kpis.spec import KpiSpec

# What to do when a domain has no data at all: the export it needs and the command that loads it.
EMPTY_STATES = {
    "access": (
        "No scheduling data loaded — load appointments and schedule slots: a FHIR Bulk export "
        "(`clinic-kpis ingest exports/fhir/` with Appointment, Slot and Schedule NDJSON) or a vendor "
        "appointment CSV (`clinic-kpis ingest north_appointments_2026.csv`)."
    ),
    "visit_flow": (
        "No visit timeline data loaded — visit flow needs FHIR Encounter resources with their "
        "statusHistory, or a vendor appointment CSV with Check In / Roomed / Provider In / Check Out "
        "times: `clinic-kpis ingest exports/fhir/`."
    ),
    "phones": (
        "No phone data loaded — here is how to ingest a queue_log: copy `/var/log/asterisk/queue_log` "
        "from the phone system and run `clinic-kpis ingest queue_log` (or drop the file in the upload "
        "box on the Data page)."
    ),
    "revenue_cycle": (
        "No billing data loaded — load the clearinghouse files (`clinic-kpis ingest billing/` with 837P "
        "claims and 835 remittances) or a practice-management transaction CSV."
    ),
    "referrals_portal": (
        "No referral or portal data loaded — load FHIR ServiceRequest and Task resources "
        "(`clinic-kpis ingest exports/fhir/`) and the portal message CSV "
        "(`clinic-kpis ingest portal_messages.csv`)."
    ),
}
# the breakdown selector offers every dimension of the KPI (in its spec's order) but those a page
# charts on its own (denials by reason, the phones heat map by weekday and hour)
CHARTED_APART = ("denial_reason", "weekday", "hour_of_day")


@dataclass(frozen=True)
class PageContext:
    """What every page needs: the warehouse source, the sidebar's filters and the KPI catalog."""

    src: data.Source
    filters: Filters
    specs: dict[str, KpiSpec]

    def has_data(self, domain: str) -> bool:
        """Whether any source feeds this domain at all (in any month)."""
        cov = data.coverage(self.src)
        return bool((cov["domain"] == domain).any())

    def labels(self, dimension: str) -> dict[str, str]:
        return option_labels(data.dimension_values(self.src, dimension))

    def colors(self, dimension: str) -> dict[str, str]:
        return charts.segment_colors(data.dimension_values(self.src, dimension)["id"].tolist())


def page_context() -> PageContext:
    """The context `app.py` prepared for this run (it draws the sidebar before any page)."""
    return st.session_state["page_context"]


def empty_state(domain: str) -> None:
    st.info(EMPTY_STATES[domain], icon=":material/inbox:")


def ignored_filters_note(ctx: PageContext, specs: list[KpiSpec]) -> None:
    """Say which active filters do not apply to some KPIs on the page (e.g. payer on phone KPIs)."""
    for spec in specs:
        ignored = ctx.filters.ignored(spec.dimensions)
        if ignored:
            st.caption(f"{spec.title} is not broken down by {', '.join(ignored)}: that filter is not applied to it.")


# -- tiles -----------------------------------------------------------------------------------------


def kpi_tile(spec: KpiSpec, rows: pd.DataFrame, month: date) -> None:
    """One headline KPI for `month`: value, change vs the month before and a year before, status, sparkline.

    `rows` holds this KPI's monthly results for the 13 months ending with `month`.
    """
    by_month = rows.set_index(rows["period_start"].dt.date)
    now = by_month.loc[month] if month in by_month.index else None
    value = None if now is None else now["value"]
    before = _value_at(by_month, add_months(month, -1))
    year_ago = _value_at(by_month, add_months(month, -12))
    with st.container(border=True):
        st.metric(
            spec.title,
            value_text(value, spec),
            delta=None if missing(value) or missing(before) else change_text(value - before, spec),
            delta_color="inverse" if spec.better == "lower" else "normal",
            delta_description=f"vs {period_text(add_months(month, -1), 'month')}",
            help=spec.definition,
            chart_data=[float(v) for v in rows["value"] if not missing(v)] or None,
            chart_type="line",
        )
        status = None if now is None else now["status"]
        if isinstance(status, str):
            color = {"on_target": "green", "watch": "orange", "off_target": "red"}[status]
            st.badge(STATUS_LABELS[status], color=color)
        elif missing(value):
            st.badge("No data", color="gray")
        if now is not None and not bool(now["complete"]):
            st.badge("Not final", color="blue", help=INCOMPLETE_HELP)
        year_text = "—" if missing(year_ago) else value_text(year_ago, spec)
        year_change = "" if missing(value) or missing(year_ago) else f" ({change_text(value - year_ago, spec)})"
        n_text = "" if now is None else f" · n = {int(now['n']):,}"
        st.caption(f"{period_text(add_months(month, -12), 'month')}: {year_text}{year_change}{n_text}")
        if spec.target is not None:
            st.caption(target_text(spec))


def _value_at(by_month: pd.DataFrame, month: date) -> float | None:
    return by_month.loc[month, "value"] if month in by_month.index else None


# -- KPI sections ------------------------------------------------------------------------------------


def kpi_section(ctx: PageContext, spec: KpiSpec) -> None:
    """A KPI over the selected range: trend with target, breakdown by an allowed dimension, the numbers, CSV."""
    f = ctx.filters
    st.subheader(spec.title)
    st.caption(f"{spec.definition} {target_text(spec)}".strip())
    filters = dict(data.applicable(spec, f.values))
    total = data.compute(ctx.src, (spec.id,), f.start, f.end, f.grain, (), tuple(filters.items()))
    if total["n"].sum() == 0:
        active = ", ".join(filters)
        hint = f" Records without a {active} are left out by that filter: clear it to see them." if active else ""
        st.info(f"No records behind {spec.title.lower()} in the selected months and filters.{hint}")
        return
    dims = [d for d in spec.dimensions if d not in CHARTED_APART]
    left, right = st.columns(2)
    with left:
        st.plotly_chart(charts.trend(total, spec), key=f"trend-{spec.id}")
    with right:
        dim = st.selectbox("Break down by", dims, key=f"by-{spec.id}", format_func=lambda d: d.replace("_", " "))
        split = data.compute(ctx.src, (spec.id,), f.start, f.end, f.grain, (dim,), tuple(filters.items()))
        split = split[split["n"] > 0]
        st.plotly_chart(charts.breakdown(split, spec, dim, ctx.labels(dim), ctx.colors(dim)), key=f"split-{spec.id}")
    table = numbers_table(total, split, spec, dim, ctx.labels(dim))
    with st.expander(f"The numbers behind {spec.title.lower()}"):
        st.dataframe(table, hide_index=True)
        st.download_button(
            "Download CSV",
            table.to_csv(index=False).encode("utf-8"),
            file_name=f"{spec.id}_{f.start}_{f.end}_{f.grain}.csv",
            mime="text/csv",
            key=f"csv-{spec.id}",
        )


def numbers_table(
    total: pd.DataFrame, split: pd.DataFrame, spec: KpiSpec, dim: str, labels: dict[str, str]
) -> pd.DataFrame:
    """The rows behind both charts, readable and exportable: period, segment, value, numerator, denominator, n."""
    frame = pd.concat([total, split], ignore_index=True)
    segments = ["all"] * len(total) + [segment_label(v, labels) for v in split[dim]]
    return pd.DataFrame(
        {
            "period": [period_text(p.date(), g) for p, g in zip(frame["period_start"], frame["grain"], strict=True)],
            "segment": segments,
            "value": [value_text(v, spec) for v in frame["value"]],
            "raw_value": frame["value"],
            "numerator": frame["numerator"],
            "denominator": frame["denominator"],
            "n": frame["n"],
            "status": frame["status"].map(lambda s: STATUS_LABELS.get(s, "") if isinstance(s, str) else ""),
            "complete": frame["complete"],
            "definition": frame["definition"],
        }
    )
