"""Improvement: where friction costs most this month, the changes made and what each did, and a form to log one.

The loop a practice runs: find the costliest friction, change one process, record the change,
and see whether the KPI then moved beyond its usual variation. Costs come from
`Warehouse.friction_costs` (each with its formula and assumptions), verdicts from
`Warehouse.change_effects` (what `clinic-kpis changes list` prints) and charts from
`Warehouse.spc`; this page only lays them out. The form writes through `data.record_change`.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboards import auth, charts, data
from dashboards.components import page_context
from kpis.errors import ClinicKpisError
from kpis.formatting import (
    EFFECT_STATUS_LABELS,
    assumption_text,
    hours_text,
    money_text,
    period_text,
    rules_text,
    value_text,
)

ctx = page_context()
month = date.fromisoformat(ctx.filters.month)
st.title("Improvement")
st.caption(
    "Find where friction costs the most, change one process, record the change here, and come back after a "
    "few months: the control chart tells whether the measure moved beyond its usual variation."
)
if data.coverage(ctx.src).empty:
    st.info(
        "No data loaded yet: friction costs and control charts need your exports. Load them with "
        "`clinic-kpis ingest PATH...` (or the upload box on the Data page).",
        icon=":material/inbox:",
    )
    st.stop()


def _day(day: pd.Timestamp | date) -> str:
    return f"{day.day} {day:%b %Y}"


def _plain(text: str) -> str:
    """Text shown as written: a dollar sign would start a formula in Streamlit's markdown."""
    return text.replace("$", r"\$")


def _value(kpi: str, value: float | None) -> str:
    return value_text(value, ctx.specs[kpi])


# -- what friction costs --------------------------------------------------------------------------

st.subheader(f"Where friction costs you most — {period_text(month)}")
scope = "; ".join(f"{dim} {', '.join(ctx.labels(dim).get(v, v) for v in chosen)}" for dim, chosen in ctx.filters.active)
st.caption(
    "What each measure's gap to its target costs a month, in money and staff hours, costliest first"
    + (f" (for {scope})" if scope else " (the whole practice)")
    + ". Every figure shows its formula and the assumptions it used, each with its source; the practice's "
    "config (its `[costs]` section) sets any of them to the practice's own figures."
)
costs = data.friction_costs(ctx.src, ctx.filters.month, ctx.filters.active)
ranking = pd.DataFrame(
    {
        "rank": range(1, len(costs) + 1),
        "measure": [ctx.specs[k].title for k in costs["kpi_id"]],
        "this month": [_value(k, v) for k, v in zip(costs["kpi_id"], costs["value"], strict=True)],
        "target": [_value(k, v) for k, v in zip(costs["kpi_id"], costs["target"], strict=True)],
        "cost a month": [money_text(m) for m in costs["money"]],
        "staff hours a month": [hours_text(h) for h in costs["staff_hours"]],
        "note": [n if isinstance(n, str) else "" for n in costs["note"]],
    }
)
st.table(ranking, hide_index=True)
for rank, row in enumerate(costs.to_dict(orient="records"), start=1):
    spec = ctx.specs[row["kpi_id"]]
    with st.container(border=True, key=f"cost-{row['kpi_id']}"):
        money, hours = money_text(row["money"]), hours_text(row["staff_hours"])
        st.markdown(_plain(f"**{rank}. {spec.title}**: {money} a month · {hours} of staff time a month"))
        st.markdown(_plain(row["formula"]) if isinstance(row["formula"], str) else f"_{_plain(row['note'])}_")
        if row["assumptions"]:
            st.table(
                pd.DataFrame(
                    [
                        {
                            "assumption": a["name"].replace("_", " "),
                            "value": assumption_text(a["value"], a["unit"]),
                            "unit": a["unit"],
                            "source": a["source"],
                        }
                        for a in row["assumptions"]
                    ]
                ),
                hide_index=True,
            )

# -- the changes and what they did ----------------------------------------------------------------

st.subheader("Changes you made and what they did")
log = data.changes(ctx.src)
effects = data.change_effects(ctx.src)
if log.empty:
    st.caption("No change recorded yet: record one below, or import a file with `clinic-kpis changes import FILE`.")
else:
    st.caption(
        "Each change judged on every complete month loaded, per measure it targets: the months after it against "
        "3-sigma limits frozen on the months before it, and the run-chart rules around the centre before it."
    )
    verdicts = pd.DataFrame(
        {
            "change": [f"{c} (#{i})" for c, i in zip(effects["title"], effects["change_id"], strict=True)],
            "from": [_day(d) for d in effects["date"]],
            "where": [w or "whole practice" for w in effects["where"]],
            "measure": effects["kpi_title"],
            "chart": effects["chart_name"],
            "before": [_value(k, v) for k, v in zip(effects["kpi_id"], effects["centre_before"], strict=True)],
            "after": [_value(k, v) for k, v in zip(effects["kpi_id"], effects["centre_after"], strict=True)],
            "rules fired": [rules_text(r) for r in effects["rules"]],
            "signal": ["yes" if s else "no" for s in effects["signal"]],
            "status": [EFFECT_STATUS_LABELS[s] for s in effects["status"]],
            "verdict": effects["verdict"],
        }
    )  # fmt: skip
    st.table(verdicts, hide_index=True)
    picked = st.selectbox(
        "Control chart of",
        list(range(len(effects))),
        format_func=lambda i: f"{effects['title'][i]}: {effects['kpi_title'][i]} {effects['where'][i]}".strip(),
        key="change-chart",
    )
    effect = effects.iloc[picked]
    spec = ctx.specs[effect["kpi_id"]]
    filters = tuple((dim, tuple(values)) for dim, values in effect["scope"].items())
    control = data.spc(ctx.src, spec.id, "month", filters)
    points = data.facts(
        ctx.src, spec.id, f"{control['period_start'].min():%Y-%m-%d}", f"{control['period_start'].max():%Y-%m-%d}",
        "month", (), filters,
    )  # fmt: skip
    st.plotly_chart(charts.trend(points, spec, control), key="change-control-chart")
    change = log.set_index("change_id").loc[effect["change_id"]]
    recorded = f"recorded by {change['recorded_by']}" if isinstance(change["recorded_by"], str) else "recorded"
    st.caption(
        f"{change['description'] or 'No description.'} ({recorded} on {_day(change['created_at'])}, "
        f"version {change['version']})"
    )

# -- recording a change ---------------------------------------------------------------------------

st.subheader("Record a change")
if ctx.access.scope.limited:  # the change log is the practice's (kpis.scope): its owner and analysts write it
    st.caption("The owner or an analyst records changes in the practice's change log.")
    st.stop()
if "recorded_change" in st.session_state:
    st.success(st.session_state.pop("recorded_change"), icon=":material/check_circle:")
locations, providers = ctx.labels("location"), ctx.labels("provider")
with st.form("record-change", clear_on_submit=False):
    day = st.date_input("Took effect on", value=date.today(), key="change-date", format="YYYY-MM-DD")
    title = st.text_input("What changed", key="change-title", placeholder="Reminder texts 48 h ahead")
    kpis = st.multiselect(
        "Measures it should move", list(ctx.specs), format_func=lambda k: ctx.specs[k].title, key="change-kpis"
    )
    chosen_locations = st.multiselect(
        "Locations (none: the whole practice)", list(locations), format_func=locations.get, key="change-locations"
    )
    chosen_providers = st.multiselect(
        "Providers (none: every provider)", list(providers), format_func=providers.get, key="change-providers"
    )
    description = st.text_area("Details (no patient information)", key="change-description")
    if ctx.access.sign_in_on:  # the change is recorded as theirs
        by = ctx.access.user
        st.caption(f"Recorded by {by}.")
    else:
        by = st.text_input("Recorded by", key="change-by", placeholder="a name or a role")
    submitted = st.form_submit_button("Record the change", type="primary")
if submitted:
    scope = {dim: list(values) for dim, values in (("location", chosen_locations), ("provider", chosen_providers))}
    fields = {
        "date": day,
        "title": title,
        "kpis": kpis,
        "scope": {dim: values for dim, values in scope.items() if values},
        "description": description,
        "by": (by or "").strip() or None,
    }
    try:
        change_id = data.record_change(ctx.src, fields)
    except ClinicKpisError as exc:
        st.error(f"Not recorded: {exc}", icon=":material/error:")
    else:
        auth.record(ctx.src, ctx.access, "change_recorded", change_id=change_id, kpis=kpis)
        st.session_state["recorded_change"] = f"Change #{change_id} recorded: {title.strip()} from {_day(day)}."
        st.rerun()
