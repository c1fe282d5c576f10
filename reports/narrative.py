"""The executive summary: three to five plain sentences written from the report's numbers.

Owners read this first and often only this, so it leads with consequence: how many headline
measures are on target, then every measure off target, furthest from its target first, then
the biggest moves since last month (direction, size, and the segment that drove it). It is
built from the finished context alone (whose numbers and order `kpis` decided), so it can never
disagree with the tables, and it names no segment the small-cell rule withholds.
"""

from __future__ import annotations

from kpis.comparison import Move
from kpis.formatting import change_text, magnitude, month_text, value_text
from kpis.periods import add_months
from reports.context import KpiRow, ReportContext

MAX_MOVE_SENTENCES = 3


def summarize(ctx: ReportContext) -> tuple[str, ...]:
    """The summary sentences for `ctx` (3 to 5)."""
    sentences = [_overview(ctx), _standing(ctx)]
    moves = list(ctx.movers[:MAX_MOVE_SENTENCES])
    sentences += [_move(m, ctx) for m in moves]
    if not moves:
        sentences.append(f"No measure moved noticeably since {add_months(ctx.month, -1):%B}.")
    return tuple(sentences)


def _scope_name(ctx: ReportContext) -> str:
    return ctx.practice_name if ctx.scope.location is None else ctx.scope.label


def _overview(ctx: ReportContext) -> str:
    rows = [r for r in ctx.headline_rows if r.value is not None]
    when = month_text(ctx.month)
    if not rows:
        return f"No headline measure of {_scope_name(ctx)} has a final value for {when}."
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("on_target", "watch", "off_target")}
    measures = "headline measure was" if len(rows) == 1 else "headline measures were"
    parts = [f"{counts['on_target']} of {len(rows)} {measures} on target"]
    if counts["watch"]:
        parts.append(f"{counts['watch']} to watch")
    if counts["off_target"]:
        parts.append(f"{counts['off_target']} off target")
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"In {when}, {listed} for {_scope_name(ctx)}."


def _for(row: KpiRow, ctx: ReportContext) -> str:
    """`No-show rate`, or `Clean claim rate (for August 2026)` when reported for an earlier month."""
    return row.title if row.period == ctx.month else f"{row.title} (for {month_text(row.period)})"


def _move(move: Move, ctx: ReportContext) -> str:
    row = ctx.row(move.kpi_id)
    rising = move.change > 0
    size = change_text(move.change, row, words=True)
    text = (
        f"{_for(row, ctx)} {'rose' if rising else 'fell'} to {value_text(move.value, row)}, "
        f"{'up' if rising else 'down'} {size} from {move.before:%B}"
    )
    driver = move.driver
    if driver is None:
        return text + "."
    who = f"the {driver.label} queue" if driver.dimension == "queue" else driver.label
    if driver.contribution is not None and driver.outweighs:  # other segments moved the other way
        part = change_text(driver.contribution, row, words=True)
        return text + f", driven by {who} ({part}, more than the whole change)."
    if driver.contribution is not None:
        return text + f", driven by {who} ({magnitude(driver.contribution, row)} of the {size})."
    before, after = value_text(driver.value_before, row), value_text(driver.value_after, row)
    return text + f", with the largest {'rise' if rising else 'fall'} at {who} ({before} to {after})."


def _standing(ctx: ReportContext) -> str:
    """Every measure off target (or, with none, to watch), furthest from its target first."""
    rows = [ctx.row(kpi) for kpi in ctx.findings]
    off = [r for r in rows if r.status == "off_target"]
    watch = [r for r in rows if r.status == "watch"]
    if off:
        return f"Off target, furthest first: {_listing(off, ctx)}."
    if watch:
        return f"Nothing is off target; to watch: {_listing(watch, ctx)}."
    return "Every measure with a target is on target."


def _listing(rows: list[KpiRow], ctx: ReportContext) -> str:
    items = [f"{_for(r, ctx)} ({value_text(r.value, r)} against a target of {value_text(r.target, r)})" for r in rows]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
