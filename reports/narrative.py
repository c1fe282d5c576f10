"""The executive summary: three to five plain sentences written from the report's numbers.

Owners read this first and often only this, so it leads with consequence: the costliest friction
of the month (what a KPI's gap to target costs, when it can be priced) and any change whose
control chart showed a new signal this month, then how many headline measures are on target,
every measure off target (costliest, then furthest from its target first), and the biggest moves
since last month (direction, size, and the segment that drove it). It is built from the finished
context alone (whose numbers and order `kpis` decided), so it can never disagree with the
tables, and it names no segment the small-cell rule withholds.
"""

from __future__ import annotations

from kpis.comparison import Move
from kpis.formatting import change_text, hours_text, magnitude, money_text, month_text, value_text
from kpis.periods import add_months
from reports.context import Finding, KpiRow, ReportContext

MAX_MOVE_SENTENCES = 3  # fewer when the summary leads with a cost or a new signal: 5 sentences at most


def summarize(ctx: ReportContext) -> tuple[str, ...]:
    """The summary sentences for `ctx` (3 to 5)."""
    lead = [s for s in (_costliest(ctx), _new_signal(ctx)) if s]
    sentences = [*lead, _overview(ctx), _standing(ctx)]
    moves = list(ctx.movers[: max(1, MAX_MOVE_SENTENCES - len(lead))])
    sentences += [_move(m, ctx) for m in moves]
    if not moves:
        sentences.append(f"No measure moved noticeably since {add_months(ctx.month, -1):%B}.")
    return tuple(sentences)


def _costliest(ctx: ReportContext) -> str | None:
    """The friction that cost most this month, when any gap could be priced."""
    if not ctx.costs or not ctx.costs[0].money:
        return None
    top = ctx.costs[0]
    return (
        f"The costliest friction in {month_text(ctx.month)} was {top.title[0].lower() + top.title[1:]}: "
        f"{value_text(top.value, top)} against a target of {value_text(top.target, top)}, about "
        f"{money_text(top.money)} a month and {hours_text(top.staff_hours)} of staff time (how, under "
        "“Where friction cost most”)."
    )


def _new_signal(ctx: ReportContext) -> str | None:
    """A change whose control chart first showed a signal this month, in the chart's own words."""
    new = ctx.new_signals
    if not new:
        return None
    more = f" ({len(new) - 1} more under “Changes you made and what they did”)" if len(new) > 1 else ""
    return f"New signal this month: {new[0].verdict}{more}"


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
        part = magnitude(driver.contribution, row)
        if not float(part.lstrip("$").replace(",", "")):  # too small to print (`0 of the 1 second`): its share
            return text + f", driven by {who} ({driver.share:.0%} of the change)."
        return text + f", driven by {who} ({part} of the {size})."
    before, after = value_text(driver.value_before, row), value_text(driver.value_after, row)
    return text + f", with the largest {'rise' if rising else 'fall'} at {who} ({before} to {after})."


def _standing(ctx: ReportContext) -> str:
    """Every measure off target (or, with none, to watch): costliest first, then furthest from its target."""
    off = [f for f in ctx.findings if ctx.row(f.kpi_id).status == "off_target"]
    watch = [f for f in ctx.findings if ctx.row(f.kpi_id).status == "watch"]
    if off:
        return f"Off target{_order(off)}: {_listing(off, ctx)}."
    if watch:
        return f"Nothing is off target; to watch{_order(watch)}: {_listing(watch, ctx)}."
    return "Every measure with a target is on target."


def _order(found: list[Finding]) -> str:
    """How a listing is ordered, said only when it lists more than one measure."""
    if len(found) == 1:
        return ""
    return ", costliest first" if any(f.money is not None for f in found) else ", furthest first"


def _listing(found: list[Finding], ctx: ReportContext) -> str:
    items = []
    for f in found:
        r = ctx.row(f.kpi_id)
        cost = "" if f.money is None else f", about {money_text(f.money)} a month"
        item = f"{_for(r, ctx)} ({value_text(r.value, r)} against a target of {value_text(r.target, r)}{cost})"
        priced_before = items and found[len(items) - 1].money is not None and f.money is None
        items.append(("then, furthest first, " if priced_before else "") + item)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
