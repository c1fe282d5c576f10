"""The records behind one KPI value, for drill-down and audits.

For a spec KPI, every row of its relation placed in the period (after the dimension filters)
is listed with the side of the ratio it falls on: `numerator` (counted on both sides when the
numerator is part of the denominator), `denominator`, or `excluded`, with the first condition
of the population it fails as the reason; a row whose side the export cannot decide (the
spec's `unknown`, e.g. a cancellation without its initiator) keeps its side and says so in
`reason`. For an aggregate KPI (median, mean) the rows in the
population are on the `numerator` side and carry their value. Custom KPIs explain themselves
(see kpis/custom/).

Columns: record_id, patient_key (pseudonym), event_time (local), side, reason, value, then the
requested dimension columns and a few custom-specific ones.
"""

from __future__ import annotations

from sqlglot import exp

from kpis.custom import CUSTOM_QUERIES
from kpis.query import KpiRequest, QueryContext, with_relation
from kpis.sql_literals import sql_literal


def explain_query(item: KpiRequest, ctx: QueryContext) -> str:
    """The statement listing the records behind `item` in the single period of `ctx`."""
    spec = item.spec
    if spec.kind == "custom":
        return CUSTOM_QUERIES[spec.custom].explain(item, ctx)
    column = spec.event_column(item.options)
    kind = ctx.relations[spec.relation].events[column]
    event = f"CAST({ctx.local_time(column, kind)} AS TIMESTAMP)"
    if spec.kind == "ratio":
        num, den = spec.numerator, spec.denominator
        in_num, in_den = item.condition(num.filter), item.condition(den.filter)
        side = f"CASE WHEN {in_num} THEN 'numerator' WHEN {in_den} THEN 'denominator' ELSE 'excluded' END"
        if num.agg == "sum":
            value = (
                f"CASE WHEN {in_num} THEN {item.condition(num.expr)} WHEN {in_den} THEN {item.condition(den.expr)} END"
            )
        else:
            value = "NULL"
        included = f"({in_num}) OR ({in_den})"
        reason = _first_failed(item, den.filter, extra=None)
    else:
        population, expr = item.condition(spec.value.filter), item.condition(spec.value.expr)
        included = f"({population}) AND ({expr}) IS NOT NULL"
        side = f"CASE WHEN {included} THEN 'numerator' ELSE 'excluded' END"
        value = expr
        reason = _first_failed(item, spec.value.filter, extra=f"({expr}) IS NOT NULL")
    if spec.unknown is not None:  # a row whose side the export cannot decide says so, on its side
        unknown = sql_literal(f"unknown: {spec.unknown_reason}")
        reason = f"CASE WHEN COALESCE({item.condition(spec.unknown)}, FALSE) THEN {unknown} ELSE {reason} END"
        included = f"({included}) AND NOT COALESCE({item.condition(spec.unknown)}, FALSE)"
    dims = "".join(f", {d}" for d in spec.dimensions)
    final = f"""
        SELECT record_id, patient_key, {event} AS event_time, {side} AS side,
               CASE WHEN COALESCE({included}, FALSE) THEN NULL ELSE {reason} END AS reason,
               CAST({value} AS DOUBLE) AS value{dims}
        FROM base
        WHERE {ctx.event_bounds(column, kind)}{ctx.filter_sql()}
        ORDER BY event_time, record_id
    """
    return with_relation(ctx.relations[spec.relation], [], final)


def value_counts_query(item: KpiRequest, ctx: QueryContext) -> str:
    """How many records carry each value of a mean or quantile KPI over the periods of `ctx`.

    The records are those `explain_query` lists on the numerator side (in the population, with a
    value), so the counts are its rows counted by value; a page draws a distribution from them
    without bringing every record into memory.
    """
    spec = item.spec
    column = spec.event_column(item.options)
    kind = ctx.relations[spec.relation].events[column]
    population, expr = item.condition(spec.value.filter), item.condition(spec.value.expr)
    final = f"""
        SELECT CAST({expr} AS DOUBLE) AS value, COUNT(*) AS records
        FROM base
        WHERE {ctx.event_bounds(column, kind)}{ctx.filter_sql()} AND ({population}) AND ({expr}) IS NOT NULL
        GROUP BY ALL
        ORDER BY value
    """
    return with_relation(ctx.relations[spec.relation], [], final)


def _first_failed(item: KpiRequest, text: str, extra: str | None) -> str:
    """SQL: the first conjunct of the population condition a row fails, as a sentence."""
    condition = item.spec.condition(text, item.options)
    parts = list(condition.flatten()) if isinstance(condition, exp.And) else [condition]
    texts = [p.sql(dialect="duckdb") for p in parts] + ([extra] if extra else [])
    whens = " ".join(f"WHEN NOT COALESCE({t}, FALSE) THEN {sql_literal('not in population: ' + t)}" for t in texts)
    return f"CASE {whens} ELSE 'not in population' END"
