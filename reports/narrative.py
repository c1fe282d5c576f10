"""The executive summary: three to five plain sentences written from the report's numbers.

Owners read this first and often only this, so each sentence states a fact the tables below
back up: how many headline measures are on target, the biggest moves since last month (the
direction, the size, and the segment that drove it), and what is still off target. It is built
from the finished context alone, so it can never disagree with the tables.
"""

from __future__ import annotations

from reports import formatting
from reports.context import KpiRow, Mover, ReportContext, add_months

MAX_MOVE_SENTENCES = 3
MAX_LISTED = 3


def summarize(ctx: ReportContext) -> tuple[str, ...]:
    """The summary sentences for `ctx` (3 to 5)."""
    sentences = [_overview(ctx)]
    moves = _headline_first(ctx.movers)[:MAX_MOVE_SENTENCES]
    sentences += [_move(m, ctx) for m in moves]
    if not moves:
        sentences.append(f"No headline measure moved by more than 2% since {_previous_month_name(ctx)}.")
    sentences.append(_standing(ctx))
    return tuple(sentences)


def _scope_name(ctx: ReportContext) -> str:
    return ctx.practice_name if ctx.scope.location is None else ctx.scope.label


def _overview(ctx: ReportContext) -> str:
    rows = [r for r in ctx.headline_rows if r.value is not None]
    when = formatting.month(ctx.month)
    if not rows:
        return f"No headline measure of {_scope_name(ctx)} has data for {when}."
    counts = {s: sum(1 for r in rows if r.status == s) for s in ("on_target", "watch", "off_target")}
    measures = "headline measure was" if len(rows) == 1 else "headline measures were"
    parts = [f"{counts['on_target']} of {len(rows)} {measures} on target"]
    if counts["watch"]:
        parts.append(f"{counts['watch']} to watch")
    if counts["off_target"]:
        parts.append(f"{counts['off_target']} off target")
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"In {when}, {listed} for {_scope_name(ctx)}."


def _headline_first(movers: tuple[Mover, ...]) -> list[Mover]:
    return [m for m in movers if m.row.headline] + [m for m in movers if not m.row.headline]


def _move(mover: Mover, ctx: ReportContext) -> str:
    row = mover.row
    rising = row.change_month > 0
    title = row.title if row.period == ctx.month else f"{row.title} (for {formatting.month(row.period)})"
    value = formatting.value(row.value, row.fmt, row.unit)
    size = formatting.change(row.change_month, row.fmt, row.unit, words=True)
    text = (
        f"{title} {'rose' if rising else 'fell'} to {value}, {'up' if rising else 'down'} {size} from {mover.before:%B}"
    )
    driver = mover.driver
    who = "" if driver is None else f"the {driver.segment} queue" if mover.dimension == "queue" else driver.segment
    if driver is not None and driver.contribution is not None:
        outweighs = abs(driver.contribution) - abs(row.change_month) > 1e-9 * abs(row.change_month)
        if outweighs:  # other segments moved the other way
            part = formatting.change(driver.contribution, row.fmt, row.unit, words=True)
            text += f", driven by {who} ({part}, more than the whole change)"
        else:
            part = formatting.magnitude(driver.contribution, row.fmt, row.unit)
            text += f", driven by {who} ({part} of the {size})"
    elif driver is not None:
        before = formatting.value(driver.value_before, row.fmt, row.unit)
        after = formatting.value(driver.value_after, row.fmt, row.unit)
        text += f", with the largest {'rise' if rising else 'fall'} at {who} ({before} to {after})"
    return text + "."


def _standing(ctx: ReportContext) -> str:
    rows = [r for r in ctx.headline_rows if r.value is not None]
    off = [r for r in rows if r.status == "off_target"]
    watch = [r for r in rows if r.status == "watch"]
    if off:
        return f"Off target: {_listing(off)}."
    if watch:
        return f"Nothing is off target; to watch: {_listing(watch)}."
    return "Every headline measure with a target is on target."


def _listing(rows: list[KpiRow]) -> str:
    items = [
        f"{r.title} ({formatting.value(r.value, r.fmt, r.unit)} against a target of "
        f"{formatting.value(r.target, r.fmt, r.unit)})"
        for r in rows[:MAX_LISTED]
    ]
    if len(rows) > MAX_LISTED:
        items.append(f"{len(rows) - MAX_LISTED} more")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _previous_month_name(ctx: ReportContext) -> str:
    return f"{add_months(ctx.month, -1):%B}"
