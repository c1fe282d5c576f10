"""Overview: what is off target, the headline KPIs of their latest complete month, and what changed.

Every number and word comes from `kpis`' comparison (`Warehouse.scorecard`, `trend`, `movers`),
the same the monthly report reads, so the screen and the report tell one story.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.components import empty_state, ignored_filters_note, kpi_tile, page_context
from dashboards.filters import dated
from kpis.comparison import Move
from kpis.formatting import change_text, magnitude, missing, money_text, period_text, value_text
from kpis.periods import add_months

TILES_PER_ROW = 4

ctx = page_context()
month = date.fromisoformat(ctx.filters.month)
st.title(f"Overview — {period_text(month, 'month')}")

if data.coverage(ctx.src).empty:
    st.info(
        "No data loaded yet. Load your practice's exports with `clinic-kpis ingest PATH...` (or the upload "
        "box on the Data page); to try the dashboard first, run `clinic-kpis sample --out exports` and "
        "`clinic-kpis ingest exports`.",
        icon=":material/inbox:",
    )
    for domain in ("access", "phones", "revenue_cycle"):
        empty_state(domain)
    st.stop()

card = data.scorecard(ctx.src, ctx.filters.month, ctx.filters.active)
headline = [spec for spec in ctx.specs.values() if spec.headline]
trend = data.trend(ctx.src, tuple(s.id for s in headline), ctx.filters.month, ctx.filters.active)

st.subheader("Off target")
found = data.findings(ctx.src, ctx.filters.month, ctx.filters.active)
off, watch = found[found["status"] == "off_target"], found[found["status"] == "watch"]


def _finding_lines(rows: pd.DataFrame) -> str:
    """One bullet per finding: its value against its target, and what the gap costs where known."""
    lines = []
    for kpi, period, value, money in zip(
        rows["kpi_id"], rows["period_start"], rows["value"], rows["money"], strict=True
    ):
        spec = ctx.specs[kpi]
        when = "" if period.date() == month else f" (for {period_text(period.date())})"
        cost = "" if missing(money) else f" — costs about {money_text(money)} a month".replace("$", r"\$")
        lines.append(f"- **{spec.title}**{when}: {value_text(value, spec)} against a target of "
                     f"{value_text(spec.target, spec)}{cost}")  # fmt: skip
    return "\n".join(lines)


if not off.empty:
    st.markdown(_finding_lines(off))
elif not watch.empty:  # "nothing is off target" alone reads as "all on target" above tiles on Watch
    st.caption("Nothing is off target; to watch (missing the target, not yet past the red flag):")
    st.markdown(_finding_lines(watch))
else:
    st.caption("Nothing is off target or to watch.")
if not (off.empty and watch.empty):
    st.caption(
        "Costliest first where the cost of the gap is known (the Improvement page shows each formula), then "
        "furthest from its target (the distance in the measure's target-to-red band)."
    )

st.subheader("Headline measures")
st.caption(
    "Each tile: the value of the latest complete month (a month whose records may still arrive is shown only "
    "as “so far”), its change since the month before (arrow) and a year before, when both are final, and the "
    "13-month trend. Colours follow each KPI's target band; tiles are monthly whatever the grain."
)
by_kpi = card.set_index("kpi_id")
# Open alerts in the scope on screen: every scope without a location filter, else those locations'.
chosen = ctx.filters.values.get("location") or None
open_alerts = data.alerts(ctx.src, ("open", "acknowledged"), tuple(chosen) if chosen else None)
# each tile's alerts and trend split off once (a frame's mask and rows per tile cost more than the tile's data)
alert_lines: dict[str, list[str]] = {}
for kpi, rule, where in zip(open_alerts["kpi_id"], open_alerts["rule_text"], open_alerts["scope_label"], strict=True):
    alert_lines.setdefault(kpi, []).append(f"{rule} ({where})")
trends = dict(iter(trend.groupby("kpi_id", sort=False)))
# a domain whose last record comes before this month (its export stopped): its tiles say when
ends = dated(data.coverage(ctx.src)).groupby("domain")["last_event_at"].max()
ended = {domain: last.date() for domain, last in ends.items() if last.date() < month}
for start in range(0, len(headline), TILES_PER_ROW):
    for column, spec in zip(st.columns(TILES_PER_ROW), headline[start : start + TILES_PER_ROW], strict=False):
        with column:
            mine = trends.get(spec.id, trend.iloc[0:0])
            kpi_tile(spec, by_kpi.loc[spec.id], mine, month, alert_lines.get(spec.id, []), ended.get(spec.domain))
ignored_filters_note(ctx, headline)


def _driver(move: Move) -> str:
    """The segment that drove a move, as a phrase (or why none is named)."""
    spec = ctx.specs[move.kpi_id]
    driver = move.driver
    if driver is None:
        return move.note.rstrip(".").lower() if move.note else ""
    who = f"{driver.dimension.replace('_', ' ')} {driver.label}"
    if driver.contribution is None:  # a median: the segment whose own median moved most the same way
        moved = f"{value_text(driver.value_before, spec)} → {value_text(driver.value_after, spec)}"
        return f"a median does not split into parts; the largest move the same way at {who} ({moved})"
    if driver.outweighs:
        return f"most of it from {who} ({change_text(driver.contribution, spec)}, more than the whole change)"
    whole = change_text(move.change, spec, words=True)
    most = "most of it" if driver.share is not None and driver.share > 0.5 else "the largest part"
    return f"{most} from {who} ({magnitude(driver.contribution, spec)} of the {whole})"


st.subheader(f"What changed since {period_text(add_months(month, -1))}")
moves = data.movers(ctx.src, ctx.filters.month, ctx.filters.active)
if not moves:
    st.caption("No measure moved noticeably since the month before (between two final values).")
lines = []
for move in moves:
    spec = ctx.specs[move.kpi_id]
    color = "green" if move.effect == "better" else "red"
    word = "improved" if move.effect == "better" else "worsened"
    when = "" if move.period == month else f" ({period_text(move.before)} to {period_text(move.period)})"
    lines.append(
        f"- **{spec.title}**{when} :{color}[{word}] {change_text(move.change, spec)}: "
        f"{value_text(move.previous, spec)} → {value_text(move.value, spec)}; {_driver(move)}."
    )
st.markdown("\n".join(lines))
st.caption(
    "Ranked by the size of the move against each measure's target band (or its usual month-to-month variation); "
    "only final months are compared, and a segment is named only when its own values are final and not withheld."
)
