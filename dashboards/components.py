"""The building blocks pages are made of: the page context, KPI tiles, KPI sections and empty states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
import streamlit as st

from dashboards import auth, charts, data
from dashboards.filters import Filters, labels_of
from dashboards.formatting import in_sentence, segment_label
from kpis import privacy
from kpis.formatting import (
    STATE_LABELS,
    STATUS_LABELS,
    asked_note,
    change_text,
    column_header,
    count_text,
    in_unit,
    missing,
    n_text,
    period_text,
    state_text,
    target_text,
    value_text,
)
from kpis.palette import segment_colors
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
    """What every page needs: the warehouse source (with the signed-in scope), the sidebar's
    filters, the KPI catalog, and who is looking."""

    src: data.Source
    filters: Filters
    specs: dict[str, KpiSpec]
    access: auth.Access

    def has_data(self, domain: str) -> bool:
        """Whether any source feeds this domain at all (in any month)."""
        cov = data.coverage(self.src)
        return bool((cov["domain"] == domain).any())

    def labels(self, dimension: str) -> dict[str, str]:
        return labels_of(self.src, dimension)

    def colors(self, dimension: str) -> dict[str, str]:
        return segment_colors(data.dimension_values(self.src, dimension)["id"].tolist())

    def domain_specs(self, domain: str) -> list[KpiSpec]:
        """A page's KPIs: its domain's, in catalog order, but the parts shown with a whole (visit segments)."""
        return [s for s in self.specs.values() if s.domain == domain and s.part_of is None]

    def parts_of(self, kpi: str) -> list[KpiSpec]:
        return [s for s in self.specs.values() if s.part_of == kpi]

    def scope_text(self, dimensions: tuple[str, ...]) -> str:
        """The filters in force on a KPI, by name: `location Northside`, or "" without filters."""
        parts = []
        for dim, chosen in self.filters.active:
            if dim in dimensions:
                labels = self.labels(dim)
                parts.append(f"{dim} {', '.join(labels.get(v, v) for v in chosen)}")
        return "; ".join(parts)


def page_context() -> PageContext:
    """The context `app.py` prepared for this run (it draws the sidebar before any page)."""
    return st.session_state["page_context"]


def empty_state(domain: str) -> None:
    scope = page_context().access.scope
    if scope.limited:  # the practice may have it: not for these locations, or its records name none
        st.info(
            f"No {domain.replace('_', ' ')} data for {scope.locations_text()}: the export that feeds it is not "
            "loaded for your locations, or its records name no location (a phone system's queue_log names "
            "none); numbers for the whole practice are for the owner and the analysts.",
            icon=":material/inbox:",
        )
        return
    st.info(EMPTY_STATES[domain], icon=":material/inbox:")


def ignored_filters_note(ctx: PageContext, specs: list[KpiSpec]) -> None:
    """Say which active filters do not apply to some KPIs on the page (e.g. payer on phone KPIs)."""
    for spec in specs:
        ignored = ctx.filters.ignored(spec.dimensions)
        if ignored:
            st.caption(f"{spec.title} is not broken down by {', '.join(ignored)}: that filter is not applied to it.")


# -- tiles -----------------------------------------------------------------------------------------

EFFECT_DELTA = {"better": "green", "worse": "red", "steady": "gray"}
STATE_BADGES = {
    "open": ("Not final", "blue"),
    "history": ("Early data", "blue"),
    "small": ("Withheld (n < 11)", "gray"),
    "empty": ("No data", "gray"),
    "no_source": ("Not loaded", "gray"),
}


def kpi_tile(
    spec: KpiSpec,
    card: pd.Series,
    trend: pd.DataFrame,
    month: date,
    alerts: Sequence[str] = (),
    data_end: date | None = None,
) -> None:
    """One KPI as `Warehouse.scorecard` reports it: the value of its latest complete month (never an
    open one), the change since the month before and a year before when both are facts, its status
    and the 13-month trend of facts; `alerts`, its open or acknowledged alerts in the scope shown
    (the tile is marked; the Alerts page lists them); `data_end`, the last record of the KPI's domain
    when it comes before `month` (a phone export that stopped years ago: said, not only "no data")."""
    value, change, state = card["value"], card["change_previous"], card["state"]
    period = None if pd.isna(card["period_start"]) else card["period_start"].date()
    before = None if pd.isna(card["previous_period"]) else card["previous_period"].date()
    facts = [float(v) for v in trend["shown"] if not missing(v)]
    with st.container(border=True):
        st.metric(
            spec.title,
            "n < 11" if state == "small" else value_text(value, spec),
            delta=None if missing(change) else change_text(change, spec),
            delta_color=EFFECT_DELTA.get(card["effect_previous"], "gray"),
            delta_arrow="off" if missing(change) or change == 0 else "up" if change > 0 else "down",
            delta_description=f"vs {period_text(before)}" if before and not missing(change) else None,
            help=spec.definition,
            chart_data=facts if len(facts) > 1 else None,
            chart_type="line",
        )
        status = card["status"]
        if isinstance(status, str):
            color = {"on_target": "green", "watch": "orange", "off_target": "red"}[status]
            st.badge(STATUS_LABELS[status], color=color)
        elif state in STATE_BADGES:
            st.badge(STATE_BADGES[state][0], color=STATE_BADGES[state][1])
        if alerts:
            count = f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
            help_text = "Not cleared yet (Alerts page): " + "; ".join(alerts)
            st.badge(count, color="red", icon=":material/notifications:", help=help_text)
        notes = []
        if data_end is not None:
            notes.append(f"{spec.domain_title} data end {data_end:%b %-d, %Y}: nothing loaded since.")
        if period is not None and period != month and not missing(value):
            notes.append(f"For {period_text(period)}, the latest complete month.")
        if not missing(card["asked_value"]):
            shown = value_text(card["asked_value"], spec)
            days = {"wait_days": card["wait_days"], "history_days": card["history_days"]}
            notes.append(asked_note(month, shown, card["asked_state"], **days) + ".")
        elif missing(value) and isinstance(card.get("note"), str):  # data, but no value: say why
            notes.append(card["note"])
        elif missing(value) and state not in ("final", "small"):
            why = state_text(state, missing_sources=card["missing"])
            notes.append(why[:1].upper() + why[1:] + ".")
        if not missing(value):
            year = card["year_period"].date()
            if missing(card["change_year"]):
                why = "early data" if card["year_state"] == "history" else "no final value to compare"
                notes.append(f"vs {period_text(year)}: — ({why})")
            else:
                year_value = value_text(card["year_value"], spec)
                notes.append(f"{period_text(year)}: {year_value} ({change_text(card['change_year'], spec)})")
            shown_n = n_text(card["n"], spec) if page_context().access.scope.small_cells else count_text(card["n"])
            notes[-1] += f" · n = {shown_n}"
        if isinstance(card.get("note"), str) and not missing(value):  # e.g. why over 100%
            notes.append(card["note"])
        if len(facts) < len(trend):  # a line over fewer months than it seems, or none rather than a flat one
            notes.append(trend_note(trend))
        st.caption("  \n".join(notes))
        if spec.target is not None:
            st.caption(target_text(spec))


def trend_note(trend: pd.DataFrame) -> str:
    """What a tile's trend line leaves out: it draws the facts of its months only (`Warehouse.trend`'s
    `shown`), so a line over four of thirteen months, or no line at all, says so and why."""
    facts = int(trend["shown"].notna().sum())
    held = Counter(state for state in trend["state"] if state != "final")
    why = ", ".join(f"{count} {STATE_LABELS[state]}" for state, count in held.items())
    if facts < 2:
        return f"No trend line: {facts} final month{'' if facts == 1 else 's'} of the last {len(trend)} ({why})."
    return f"Trend line: the {facts} final months of the last {len(trend)} ({why})."


# -- KPI sections ------------------------------------------------------------------------------------


def kpi_section(ctx: PageContext, spec: KpiSpec) -> None:
    """A KPI over the selected range: trend with target, breakdown by an allowed dimension, the numbers, CSV."""
    f = ctx.filters
    st.subheader(spec.title)
    st.caption(f"{spec.definition} {target_text(spec)}".strip())
    filters = dict(data.applicable(spec, f.values))
    total = data.facts(ctx.src, spec.id, f.start, f.end, f.grain, (), tuple(filters.items()))
    if not total["n"].gt(0).any():
        empty_note(ctx, spec)
        return
    # the dimensions that explain a move first (phones: the queue, which every call records)
    dims = list(dict.fromkeys(d for d in (*spec.drivers, *spec.dimensions) if d not in CHARTED_APART))
    left, right = st.columns(2)
    with left:
        control = control_chart(ctx, spec, tuple(filters.items()))
        st.plotly_chart(charts.trend(total, spec, control), key=f"trend-{spec.id}")
    with right:
        dim = st.selectbox("Break down by", dims, key=f"by-{spec.id}", format_func=lambda d: d.replace("_", " "))
        split = data.facts(ctx.src, spec.id, f.start, f.end, f.grain, (dim,), tuple(filters.items()))
        split = split[split["n"] > 0]
        st.plotly_chart(charts.breakdown(split, spec, dim, ctx.labels(dim), ctx.colors(dim)), key=f"split-{spec.id}")
    table = numbers_table(total, split, spec, dim, ctx.labels(dim))
    with st.expander(f"The numbers behind {in_sentence(spec.title)}"):
        st.dataframe(table, hide_index=True)
        name = f"{spec.id}_{f.start}_{f.end}_{f.grain}.csv"
        st.download_button(
            "Download CSV",
            table.to_csv(index=False).encode("utf-8"),
            file_name=name,
            mime="text/csv",
            key=f"csv-{spec.id}",
            on_click=_audit_download,
            args=(ctx, "numbers", spec.id, name, len(table)),
        )
    records_section(ctx, spec, filters)


def records_section(ctx: PageContext, spec: KpiSpec, filters: dict[str, tuple[str, ...]]) -> None:
    """The records behind one period's value (pseudonymous keys only), for a scope that may see them."""
    if not ctx.access.scope.records:
        st.caption("The records behind these numbers are not shown to your role (aggregates only).")
        return
    months = ctx.filters.months()
    month = st.selectbox(
        f"The records behind {in_sentence(spec.title)} in",
        [None, *reversed(months)],
        format_func=lambda m: "choose a month" if m is None else period_text(m),
        key=f"records-{spec.id}",
    )
    if month is None:
        return
    frame = data.explain(ctx.src, spec.id, month.isoformat(), "month", tuple(filters.items()))
    period = month.isoformat()
    key = ("records", spec.id, period, repr(sorted(filters.items())))
    if st.session_state.get(f"audited-{spec.id}") != key:  # once per choice, not on every rerun
        st.session_state[f"audited-{spec.id}"] = key
        auth.record(ctx.src, ctx.access, "records", page=spec.domain, kpi=spec.id, period=period,
                    filters=dict(filters), rows=len(frame))  # fmt: skip
    st.dataframe(frame, hide_index=True, key=f"records-table-{spec.id}")
    name = f"{spec.id}_{period[:7]}_records.csv"
    st.download_button(
        "Download these records (CSV)",
        frame.to_csv(index=False).encode("utf-8"),
        file_name=name,
        mime="text/csv",
        key=f"records-csv-{spec.id}",
        on_click=_audit_download,
        args=(ctx, "records", spec.id, name, len(frame), period, dict(filters)),
    )


def _audit_download(
    ctx: PageContext,
    what: str,
    kpi: str,
    file_name: str,
    rows: int,
    period: str | None = None,
    filters: dict | None = None,
) -> None:
    """A CSV download, in the audit log (Streamlit calls this when the button is clicked)."""
    filters = ctx.filters.audited() if filters is None else filters
    auth.record(ctx.src, ctx.access, "download", kpi=kpi, period=period, filters=filters, what=what,
                file=file_name, rows=rows)  # fmt: skip


def control_key(kpi: str, filters: data.Filters) -> str:
    """The control-chart toggle's widget key: `spc-no_show_rate`, `spc-no_show_rate@location=EAST`."""
    scope = ";".join(f"{dim}={','.join(values)}" for dim, values in filters)
    return f"spc-{kpi}" + (f"@{scope}" if scope else "")


def control_chart(ctx: PageContext, spec: KpiSpec, filters: data.Filters) -> pd.DataFrame | None:
    """The KPI's control chart (`Warehouse.spc`) when its toggle is on: on by default where a logged
    change targets this KPI with exactly this scope, so its phases show without a click. Each scope
    has its own toggle (`control_key`), so a new filter starts from its own default."""
    phases = data.changes_for(ctx.src, spec.id, filters)
    shown = st.toggle(
        "Control chart",
        value=not phases.empty,
        key=control_key(spec.id, filters),
        help="The 3-sigma limits and centre line, a phase from each logged change (limits frozen on the "
        "periods before it) and a ring on every point that signals special-cause variation.",
    )
    if not shown:
        return None
    control = data.spc(ctx.src, spec.id, ctx.filters.grain, filters)
    titles = ", ".join(f"{p['title']} ({p['date']:%-d %b %Y})" for p in control.attrs["phases"][1:])
    st.caption(
        f"{control.attrs['chart_name']} over the KPI's history; "
        + (f"phases from {titles}." if titles else "no logged change for this KPI and scope: one phase.")
    )
    return control


def empty_note(ctx: PageContext, spec: KpiSpec) -> None:
    """Why a KPI has no records here: the export not loaded for the filtered scope, when that is why."""
    scope = ctx.scope_text(spec.dimensions)
    loaded = data.missing_sources(ctx.src, data.applicable(spec, ctx.filters.values))
    if spec.id in loaded:
        where, it = (f" for {scope}", " for it") if scope else ("", "")
        st.info(
            f"No {in_sentence(spec.title)}{where}: {loaded[spec.id]} are not loaded{it}. Load that export "
            "(`clinic-kpis ingest`, or the Data page), or choose another scope.",
            icon=":material/inbox:",
        )
    else:
        st.info(f"No records behind {in_sentence(spec.title)} in the selected months and filters.")


def numbers_table(
    total: pd.DataFrame, split: pd.DataFrame, spec: KpiSpec, dim: str, labels: dict[str, str]
) -> pd.DataFrame:
    """The rows behind both charts, readable and exportable: period, segment, value (with its unit), counts.

    A value withheld by the small-cell rule is "n < 11" here too, without the counts that give it back.
    """
    frame = pd.concat([total, split], ignore_index=True)
    small = frame["state"] == "small"
    segments = ["all"] * len(total) + [segment_label(v, labels) for v in split[dim]]
    return pd.DataFrame(
        {
            "period": [period_text(p.date(), g) for p, g in zip(frame["period_start"], frame["grain"], strict=True)],
            "segment": segments,
            "value": ["n < 11" if hide else value_text(v, spec) for v, hide in zip(frame["value"], small, strict=True)],
            column_header("value", spec): [
                None if hide else in_unit(v, spec) for v, hide in zip(frame["value"], small, strict=True)
            ],
            "numerator": frame["numerator"].where(~small),
            "denominator": frame["denominator"].where(~small),
            "n": _counts_column(frame["n"], small),
            column_header("target", spec): in_unit(spec.target, spec),
            "status": frame["status"].map(lambda s: STATUS_LABELS.get(s, "") if isinstance(s, str) else ""),
            "final": frame["state"].map(STATE_LABELS),
            "definition": frame["definition"],
            "note": frame["note"],  # why a value is missing (or over 100%)
        }
    )


def _counts_column(n: pd.Series, small: pd.Series) -> pd.Series:
    """The table's counts: whole numbers, or, when the small-cell rule withholds one, every count as
    text ("<11" among them), since a column must have one type for the table to be shown (Streamlit
    hands it to Arrow, which refuses a column of numbers and text and logs a traceback for it)."""
    if not small.any():
        return n
    shown = [privacy.count(v) if hide else v for v, hide in zip(n, small, strict=True)]
    return pd.Series([None if pd.isna(v) else str(v) for v in shown], index=n.index, dtype="string")
