"""Friction cost: what each KPI's gap to its target costs the practice per month, in money and hours.

One row per costed KPI, ranked by money: the gap (value - target, in the KPI's unit, only when
worse than target), the volume it applies to, the excess it makes (no-shows, denials, abandoned
calls, dollars of A/R, patient-minutes), and money and staff hours from the assumptions of the
config's `[costs]` (kpis/config.py; sources in docs/contracts.md section 7). Every row
carries its formula with the numbers filled in and the assumptions it used, so a page can print
them and anyone can redo the arithmetic:

    no_show_rate           excess = gap x expected visits;   money = excess x visit value;
                           hours = excess x no-show staff minutes / 60
    denial_rate            excess = gap x remitted claims;   money = excess x rework cost;
                           hours = excess x rework minutes / 60
    call_abandonment_rate  excess = gap x offered calls;     money = excess x booking share x visit value;
                           hours = excess x callback minutes / 60
    days_in_ar             excess = gap (days) x average daily charges (dollars waiting);
                           money = excess x cost of capital / 12; hours = 0
    visit_cycle_time       excess = gap (minutes) x visits;  hours = excess / 60;
                           money = hours x staff cost per hour
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import pandas as pd

from kpis import privacy
from kpis.config import COST_SETTINGS
from kpis.formatting import format_value, state_text
from kpis.periods import next_period, parse_bound, period_floor
from kpis.serving import payments
from kpis.sql_literals import sql_literal

# `wh` below is a kpis.warehouse.Warehouse; not imported here, as Warehouse imports this module.
Warehouse = Any

# kpi id -> (what one unit of excess is, the assumptions it uses)
COSTED = {
    "no_show_rate": ("no-shows", ("visit_value", "no_show_staff_minutes")),
    "denial_rate": ("denied claims", ("denial_rework_cost", "denial_rework_minutes")),
    "call_abandonment_rate": ("abandoned calls", ("booking_share", "visit_value", "callback_minutes")),
    "days_in_ar": ("dollars waiting in A/R", ("cost_of_capital",)),
    "visit_cycle_time": ("patient-minutes", ("staff_cost_per_hour",)),
}
VOLUMES = {  # what the gap is multiplied by, in words
    "no_show_rate": "expected visits",
    "denial_rate": "remitted claims",
    "call_abandonment_rate": "offered calls",
    "days_in_ar": "average daily charges",
    "visit_cycle_time": "visits",
}
COLUMNS = [
    "kpi_id", "kpi_title", "period_start", "complete", "value", "target", "fmt", "gap", "volume", "volume_unit",
    "excess", "excess_unit", "money", "staff_hours", "formula", "assumptions", "note",
]  # fmt: skip


def friction_costs(wh: Warehouse, period: Any = None, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The costed KPIs for one month (default: the last full month of data), costliest first.

    `money` and `staff_hours` are per month; None (with a `note`) when the month is not complete,
    the KPI has no target or value, its value is withheld by the small-cell rule (`kpis.privacy`:
    the volume and excess would give the count back), or an assumption has no value (e.g. no 835s
    and no visit_value).
    `assumptions` lists {name, value, unit, source} for every figure used.
    """
    settings = wh.config.costs
    month = _month(wh, period)
    filters = dict(filters or {})
    specs = {s.id: s for s in wh.catalog()}
    rows = []
    visit_value = None
    # every costed KPI the filters apply to, in one call (a call per KPI paid its fixed cost each time)
    allowed = [kpi for kpi in COSTED if set(filters) <= set(specs[kpi].dimensions)]
    results = _month_results(wh, allowed, month, filters) if allowed else None
    for kpi, (unit, names) in COSTED.items():
        spec = specs[kpi]
        row = {c: None for c in COLUMNS} | {"kpi_id": kpi, "kpi_title": spec.title, "fmt": spec.fmt}
        row.update(period_start=pd.Timestamp(month), excess_unit=unit, assumptions=[])
        not_allowed = sorted(set(filters) - set(spec.dimensions))
        if not_allowed:
            rows.append(row | {"note": f"cannot be filtered by {', '.join(not_allowed)}"})
            continue
        result = results.loc[kpi]
        row.update(complete=bool(result["complete"]), value=_num(result["value"]), target=_num(result["target"]))
        counts = spec.kind == "ratio" and spec.numerator is not None and spec.numerator.agg == "count"
        if spec.patient_records and privacy.withheld(result["n"], result["numerator"], counts):
            # the value, its volume and the excess would give a count under 11 back
            rows.append(row | {"value": None, "note": state_text("small")})
            continue
        if row["value"] is None or row["target"] is None:
            rows.append(row | {"note": "no value" if row["target"] is not None else "no target"})
            continue
        gap = row["value"] - row["target"] if spec.better == "lower" else row["target"] - row["value"]
        gap = max(gap, 0.0)
        used = dict.fromkeys(names)
        for name in names:
            used[name] = settings[name]
        if "visit_value" in used and settings["visit_value"] is None:
            if visit_value is None:
                visit_value = average_payment(wh, month, filters)
            used["visit_value"] = visit_value
        sources = {}
        if kpi == "call_abandonment_rate" and settings["booking_share"] is None:
            share = booking_share(wh, month, filters, settings["booking_queues"])
            used["booking_share"] = share
            sources["booking_share"] = (
                f"measured: abandoned calls in queues {', '.join(settings['booking_queues'])} / all abandoned calls"
            )
        if "visit_value" in used and settings["visit_value"] is None:
            sources["visit_value"] = "measured: payer payments / paid claims, 835 remittances of the last 12 months"
        row["assumptions"] = [
            {
                "name": name,
                "value": value,
                "unit": COST_SETTINGS[name].unit,
                "source": sources.get(name) or _source(name, value),
            }
            for name, value in used.items()
        ]
        volume = _volume(kpi, result)
        row.update(gap=gap, volume=volume, volume_unit=VOLUMES[kpi])
        if not row["complete"]:
            rows.append(row | {"note": "the month is not complete yet: no cost is shown"})
            continue
        cost = _cost(kpi, _gap_text(spec, row["value"], row["target"], gap), gap, volume, used)
        if gap == 0 and cost.get("note") is None:  # say why it costs nothing, not only "$0.00"
            cost["note"] = "on target: its gap costs nothing"
        rows.append(row | cost)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    order = frame["money"].astype(float).fillna(-1.0)
    return (
        frame.assign(_o=order)
        .sort_values("_o", ascending=False, kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def _source(name: str, value: Any) -> str:
    setting = COST_SETTINGS[name]
    return setting.source if value == setting.default else "the practice's config [costs]"


def _gap_text(spec: Any, value: float, target: float, gap: float) -> str:
    """ "9.3% vs target 5.0%: 4.3 points": the gap as a person reads it, with its inputs."""
    if spec.unit == "percent":
        return f"{format_value(value, spec.fmt)} vs target {format_value(target, spec.fmt)}: {gap * 100:,.2f} points"
    return f"{format_value(value, spec.fmt)} vs target {format_value(target, spec.fmt)}: {gap:,.2f}"


def _cost(kpi: str, g: str, gap: float, volume: float, used: dict[str, Any]) -> dict[str, Any]:
    if kpi == "days_in_ar":
        excess = gap * volume
        rate = used["cost_of_capital"]
        money = excess * rate / 12
        formula = (
            f"{g} days above target × ${volume:,.2f} average daily charges = ${excess:,.2f} waiting in A/R; "
            f"× {rate:.2%} a year / 12 = ${money:,.2f} a month"
        )
        return {"excess": excess, "money": money, "staff_hours": 0.0, "formula": formula}
    if kpi == "visit_cycle_time":
        excess = gap * volume
        hours = excess / 60
        money = hours * used["staff_cost_per_hour"]
        formula = (
            f"{g} minutes above target × {volume:,.0f} visits = {excess:,.0f} patient-minutes = {hours:,.1f} hours; "
            f"× ${used['staff_cost_per_hour']:,.2f} per staff hour = ${money:,.2f}"
        )
        return {"excess": excess, "money": money, "staff_hours": hours, "formula": formula}
    excess = gap * volume
    unit, _ = COSTED[kpi]
    if kpi == "no_show_rate":
        price, minutes, per = used["visit_value"], used["no_show_staff_minutes"], "visit value"
    elif kpi == "denial_rate":
        price, minutes, per = used["denial_rework_cost"], used["denial_rework_minutes"], "rework cost"
    else:
        share, value = used["booking_share"], used["visit_value"]
        price = None if share is None or value is None else share * value
        minutes, per = used["callback_minutes"], "booking share × visit value"
    hours = excess * minutes / 60
    money = None if price is None else excess * price
    head = f"{g} above target × {volume:,.0f} {VOLUMES[kpi]} = {excess:,.2f} {unit}"
    if kpi == "call_abandonment_rate" and price is not None:
        cost = f" × {used['booking_share']:.1%} × ${used['visit_value']:,.2f} ({per}) = ${money:,.2f}"
    elif price is not None:
        cost = f" × ${price:,.2f} ({per}) = ${money:,.2f}"
    else:
        cost = f"; money unknown: no {per} (set it in [costs])"
    formula = head + cost + f"; × {minutes:g} staff minutes = {hours:,.1f} hours"
    note = None if money is not None else f"no {per}: set it in the config's [costs]"
    return {"excess": excess, "money": money, "staff_hours": hours, "formula": formula, "note": note}


def _volume(kpi: str, result: pd.Series) -> float:
    """What the gap multiplies: the ratio's denominator, the visits of a median, daily charges for A/R."""
    if kpi == "visit_cycle_time":
        return float(result["n"])
    return float(result["denominator"])


def average_payment(wh: Warehouse, month: date, filters: Mapping[str, Any]) -> float | None:
    """Payer payments per paid claim over the 12 months ending with `month` (835 remittances).

    Reversals count negative. With a location, provider or payer filter, only that segment's
    claims count (a claim's location and provider are its first submission's, once per claim).
    None when no claim was paid in the window.

    The results store answers the practice and any single location, provider or payer
    (`kpis.serving.payments`: the same rows and figures, kept per window month by the refresh).
    Else (several values, a combination of dimensions, a store that cannot answer) the statement
    runs on the raw tables; a published snapshot (read-only) answers the practice and every single
    location from one grouped statement, kept for the snapshot (`Warehouse._memo`): a filter
    change to one location then finds its figure instead of joining a year of remittances to the
    claims again. The groups are the same rows the filtered statement reads, so the figures are
    the same (sums of DECIMAL amounts, distinct paid claims per group).
    """
    scoped = {dim: _as_list(values) for dim, values in filters.items() if dim in _PAYMENT_COLUMNS}
    single = len(scoped) == 1 and len(next(iter(scoped.values()))) == 1
    found = None
    if not scoped or single:
        dimension, values = next(iter(scoped.items())) if scoped else (None, [None])
        found = payments.stored(wh, month, dimension, values[0])
    one_location = set(scoped) == {"location"} and single
    if found is not None:
        paid, claims = found
    elif getattr(wh, "read_only", False) and (not scoped or one_location):
        groups = wh._memo(("average_payment", month), lambda: _payments_by_location(wh, month))
        paid, claims = groups.get(str(scoped["location"][0]) if scoped else None, (None, 0))
    else:
        where, params = _payment_window(month)
        for dim, values in scoped.items():
            where.append(f"{_PAYMENT_COLUMNS[dim]} IN ({', '.join(sql_literal(str(v)) for v in values)})")
        paid, claims = (
            wh.cursor().execute(f"SELECT {_PAYMENTS} {_PAID_CLAIMS} WHERE {' AND '.join(where)}", params).fetchone()
        )
    if not claims or paid is None:
        return None
    return float(paid) / int(claims)


# kpis.serving.payments keeps the same segments of the same rows
_PAYMENT_COLUMNS = {"location": "c.location_id", "provider": "c.provider_id", "payer": "r.payer_id"}
_PAYMENTS = "SUM(r.paid_amount), COUNT(DISTINCT r.claim_id) FILTER (WHERE r.status = 'paid')"
_PAID_CLAIMS = f"FROM remittances r LEFT JOIN {payments.CLAIM_SEGMENTS} c USING (claim_id)"


def _payment_window(month: date) -> tuple[list[str], list[Any]]:
    """The conditions and parameters of the 12 months of remittances ending with `month`."""
    end = next_period(month, "month")
    return ["r.paid_date >= ?", "r.paid_date < ?"], [date(end.year - 1, end.month, 1), end]


def _payments_by_location(wh: Warehouse, month: date) -> dict[str | None, tuple[Any, int]]:
    """(payments, paid claims) of the practice (key None) and of each location, in one statement."""
    where, params = _payment_window(month)
    sql = (
        f"SELECT GROUPING(c.location_id), c.location_id, {_PAYMENTS} {_PAID_CLAIMS} WHERE {' AND '.join(where)} "
        "GROUP BY GROUPING SETS ((), (c.location_id))"
    )
    out: dict[str | None, tuple[Any, int]] = {}
    for rolled_up, location, paid, claims in wh.cursor().execute(sql, params).fetchall():
        if rolled_up:
            out[None] = (paid, claims)
        elif location is not None:  # claims without a location are in no location's filter
            out[str(location)] = (paid, claims)
    return out


def _as_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, list | tuple | set) else [values]


def booking_share(wh: Warehouse, month: date, filters: Mapping[str, Any], queues: list[str]) -> float | None:
    """Share of the month's abandoned calls that were in a booking queue (None if none is known)."""
    if not queues:
        return None
    known = {str(q) for q in wh.dimension_values("queue")["id"]}
    if not known & set(queues):
        return None
    frame = wh.compute("call_abandonment_rate", start=month, end=month, by="queue", filters=filters)
    total = frame["numerator"].sum()
    if not total or math.isnan(total):
        return None
    return float(frame.loc[frame["queue"].astype(str).isin(queues), "numerator"].sum() / total)


def _month_results(wh: Warehouse, kpis: list[str], month: date, filters: Mapping[str, Any]) -> pd.DataFrame:
    """`compute`'s rows of `kpis` for `month`, by KPI: those a scorecard of the same month and
    filters has kept for this snapshot (the Overview asks it first), else computed.

    Why: a filter change on the Overview computed these again (10-20 ms CPU at 10 M); a KPI's
    month does not depend on the other KPIs or months asked with it, so they are the same rows.
    """
    kept = wh._card_facts([wh._spec(k) for k in kpis], month, month, filters or None, None)
    if kept is not None:
        return kept[kept["period_start"] == month].set_index("kpi_id")
    return wh.compute(kpis, start=month, end=month, filters=filters).set_index("kpi_id")


def _month(wh: Warehouse, period: Any) -> date:
    if period is not None:
        return period_floor(parse_bound(period, end=False, what="period"), "month")
    last = wh.data_end() or date.today()
    month = period_floor(last, "month")
    if last + timedelta(days=1) < next_period(month, "month"):
        month = period_floor(month - timedelta(days=1), "month")  # the data end inside a month: the one before
    return month


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return float(value)
