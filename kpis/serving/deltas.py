"""Month results moved by a load's changed fact rows, instead of re-aggregated over the whole month.

A count or a sum of whole numbers over a month is the previous month's count plus the changed
rows' new contributions less their replaced ones, exactly: the month results hold them as DOUBLE,
which keeps every whole number below 2**53 exactly, and the value is the same quotient of the
same two numbers a full recompute divides. So for these KPIs ("additive": ratios of counts or of
whole-number sums, means of whole numbers) a one-day load reads the day's signed fact rows
(`signed_rows`: +1 for a new row, -1 for a replaced one) rather than the month's. Medians,
percentiles and sums of decimals or doubles still recompute their months (`kpis.serving.refresh`).

A cell (month, grouping and dimension values) is a month result only while some fact row falls
in it, whatever the KPI counts there; `serving.cells` keeps each cell's row count per fact
table and event column, so a cell emptied by a load is dropped, as a full recompute would not
have it, and a new one appears.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from kpis.engine import grouping_id
from kpis.periods import next_period
from kpis.query import KpiRequest, QueryContext, ratio_value
from kpis.serving.facts import SCHEMA, FactTable

CELLS_TABLE = f"{SCHEMA}.cells"
WHOLE = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}


def additive(item: KpiRequest, types: dict[str, str]) -> bool:
    """Whether the KPI's month results can be moved by signed rows exactly (see the module docstring)."""
    spec, k = item.spec, item.id
    if spec.kind == "ratio":
        sides = ((spec.numerator, f"{k}__num"), (spec.denominator, f"{k}__den"))
        return all(m.agg == "count" or types.get(column) in WHOLE for m, column in sides)
    return spec.value.agg == "mean" and types.get(f"{k}__val") in WHOLE


def additive_items(table: FactTable, types: dict[str, str]) -> list[KpiRequest]:
    return [item for item in table.standard if additive(item, types)]


def signed_rows(columns: Sequence[str]) -> str:
    """SELECT of the fact rows that changed (`_old` replaced, `_new` added), with `_sign` -1 or +1."""
    c = ", ".join(columns)
    return (
        f"SELECT *, 1 AS _sign FROM (SELECT {c} FROM _new EXCEPT ALL SELECT {c} FROM _old) AS n "
        f"UNION ALL SELECT *, -1 AS _sign FROM (SELECT {c} FROM _old EXCEPT ALL SELECT {c} FROM _new) AS o"
    )


def month_rows(source: str, day: str, months: Sequence[date]) -> str:
    """The rows of `source` whose `day` falls in `months` (month starts), with their `period_start`."""
    first, after = min(months), next_period(max(months), "month")
    listed = ", ".join(f"DATE '{m.isoformat()}'" for m in sorted(months))
    return (
        f"SELECT * FROM (SELECT *, CAST(DATE_TRUNC('month', {day}) AS DATE) AS period_start FROM {source} "
        f"WHERE {day} >= DATE '{first.isoformat()}' AND {day} < DATE '{after.isoformat()}') AS r "
        f"WHERE period_start IN ({listed})"
    )


def grouping_case(ctx: QueryContext, names: dict[tuple[str, ...], str]) -> str:
    """SQL naming each row's grouping (as `serving.results` stores it)."""
    if not ctx.multiple_sets:
        return f"'{names[ctx.grouping_sets[0]]}'"
    cases = " ".join(f"WHEN {grouping_id(g, ctx.dims)} THEN '{names[g]}'" for g in ctx.grouping_sets)
    return f"CASE grouping_id {cases} END"


def cells_sql(
    table: FactTable, event: str, ctx: QueryContext, names: dict[tuple[str, ...], str], months: Sequence[date]
) -> str:
    """SELECT of the cells of `table`'s rows by `event`'s day in `months`, counted: a full recount."""
    day = table.day_column(event)
    return (
        f"SELECT '{table.group}' AS fact_table, '{event}' AS event, period_start, {_dims(ctx)}"
        f"{grouping_case(ctx, names)} AS grouping, rows FROM ("
        f"SELECT period_start, {ctx.dim_select()}COUNT(*) AS rows FROM ({month_rows(table.name, day, months)}) AS m "
        f"GROUP BY {ctx.group_by()}) AS g"
    )


def delta_sql(
    table: FactTable,
    event: str,
    items: Sequence[KpiRequest],
    ctx: QueryContext,
    names: dict[tuple[str, ...], str],
    months: Sequence[date],
) -> str:
    """SELECT of each cell's change (kpi_id, period_start, dims, grouping, num, den, n, unknown, rows)
    from the signed rows `_signed_<group>`: what a recompute of `months` would add to the kept results."""
    day = table.day_column(event)
    aggregates = ["SUM(_sign) AS d_rows"]
    outputs = []
    for i, item in enumerate(items):
        spec, c, k = item.spec, item.id, f"k{i}"
        if spec.kind == "ratio":
            aggregates += [
                f"{_signed(spec.numerator.agg, f'{c}__num')} AS {k}_num",
                f"{_signed(spec.denominator.agg, f'{c}__den')} AS {k}_den",
                f"COALESCE(SUM(_sign) FILTER (WHERE {c}__pop), 0) AS {k}_n",
            ]
            unknown = "0"
            if item.unknown_condition() is not None:
                aggregates.append(f"COALESCE(SUM(_sign) FILTER (WHERE {c}__unk), 0) AS {k}_unk")
                unknown = f"{k}_unk"
            den = f"{k}_den"
        else:  # a mean: numerator the sum of the values, denominator their count
            aggregates += [
                f"COALESCE(SUM(_sign * {c}__val), 0) AS {k}_num",
                f"COALESCE(SUM(_sign) FILTER (WHERE {c}__val IS NOT NULL), 0) AS {k}_n",
            ]
            unknown, den = "0", f"{k}_n"
        outputs.append(
            f"SELECT '{c}' AS kpi_id, period_start, {_dims(ctx)}{grouping_case(ctx, names)} AS grouping, "
            f"{k}_num AS d_num, {den} AS d_den, {k}_n AS d_n, {unknown} AS d_unknown, d_rows FROM grouped"
        )
    grouped = (
        f"SELECT period_start, {ctx.dim_select()}{', '.join(aggregates)} "
        f"FROM ({month_rows(f'_signed_{table.group}', day, months)}) AS m GROUP BY {ctx.group_by()}"
    )
    return f"WITH grouped AS ({grouped})\n" + "\nUNION ALL\n".join(outputs)


def merged_sql(results: str, dims: Sequence[str], fact_table: str, event: str) -> str:
    """SELECT of the moved cells: the kept result and cell count (none: zeros) plus `_delta`'s change.

    The value is the quotient a recompute computes (`kpis.query.ratio_value` over the same DOUBLEs).
    """
    same = " AND ".join(["r.kpi_id = d.kpi_id", "r.period_start = d.period_start", "r.grouping = d.grouping"])
    same_cell = " AND ".join(
        [f"c.fact_table = '{fact_table}'", f"c.event = '{event}'", "c.period_start = d.period_start"]
        + ["c.grouping = d.grouping"]
    )
    for d in dims:
        same += f" AND r.{d} IS NOT DISTINCT FROM d.{d}"
        same_cell += f" AND c.{d} IS NOT DISTINCT FROM d.{d}"
    numerator = "CAST(COALESCE(r.numerator, 0) + d.d_num AS DOUBLE)"
    denominator = "CAST(COALESCE(r.denominator, 0) + d.d_den AS DOUBLE)"
    columns = ", ".join(f"d.{d}" for d in dims)
    return f"""
        SELECT d.kpi_id, d.period_start, d.grouping, {columns}, {numerator} AS numerator, {denominator} AS denominator,
               {ratio_value(numerator, denominator)} AS value,
               CAST(COALESCE(r.n, 0) + d.d_n AS BIGINT) AS n,
               CAST(COALESCE(r.unknown, 0) + d.d_unknown AS BIGINT) AS unknown,
               CAST(COALESCE(c.rows, 0) + d.d_rows AS BIGINT) AS rows
        FROM _delta AS d
        LEFT JOIN {results} AS r ON {same}
        LEFT JOIN {CELLS_TABLE} AS c ON {same_cell}
    """


def matching(target: str, alias: str, keys: Sequence[str], dims: Sequence[str]) -> str:
    """EXISTS condition: a row of `_merged` with the same keys and dimension values as `alias`'s row."""
    same = [f"m.{k} = {alias}.{k}" for k in keys] + [f"m.{d} IS NOT DISTINCT FROM {alias}.{d}" for d in dims]
    return f"EXISTS (SELECT 1 FROM {target} AS m WHERE {' AND '.join(same)})"


def _signed(agg: str, column: str) -> str:
    if agg == "count":
        return f"COALESCE(SUM(_sign) FILTER (WHERE {column}), 0)"
    return f"COALESCE(SUM(_sign * {column}), 0)"


def _dims(ctx: QueryContext) -> str:
    return "".join(f"{d}, " for d in ctx.dims)


def month_span(months: Sequence[date]) -> tuple[date, date]:
    """First day and last day of the months (month starts): the periods a context spans."""
    return min(months), next_period(max(months), "month") - timedelta(days=1)
