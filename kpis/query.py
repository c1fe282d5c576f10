"""What every KPI query shares: the request it answers, and the SQL pieces that follow from it.

Every query, generic or custom, returns the same long shape, one row per KPI, period and
dimension group:

    kpi_id, period_start, <dimension columns>, [grouping_id], numerator, denominator, value, n

`grouping_id` (present only when a request asks for several groupings at once, e.g. practice
total, by location and by provider in one scan) is SQL's GROUPING() bitmask over the dimension
columns: bit set = that dimension is rolled up in this row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp

from kpis.config import Config
from kpis.periods import Periods
from kpis.relations import INSTANT, Relation
from kpis.spec import KpiSpec
from kpis.sql_literals import sql_literal


@dataclass(frozen=True)
class KpiRequest:
    """One KPI with the options in use."""

    spec: KpiSpec
    options: Mapping[str, Any]

    @property
    def id(self) -> str:
        return self.spec.id

    def condition(self, text: str) -> str:
        """A spec expression with options applied, simplified, as DuckDB SQL."""
        return self.spec.condition_sql(text, self.options)

    def unknown_condition(self) -> str | None:
        """The rows whose side the export cannot decide (the spec's `unknown`), if any can be
        with these options; when a period holds any, its value is unknown."""
        if self.spec.unknown is None:
            return None
        condition = self.condition(self.spec.unknown)
        return None if condition == "FALSE" else condition


@dataclass(frozen=True)
class QueryContext:
    """Everything a query builder needs besides the KPIs: periods, groupings, filters, config."""

    config: Config
    relations: Mapping[str, Relation]
    periods: Periods
    grouping_sets: tuple[tuple[str, ...], ...] = ((),)
    filters: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def tz(self) -> str:
        return self.config.timezone

    @property
    def dims(self) -> tuple[str, ...]:
        """Every dimension column of the output, in first-seen order."""
        seen: list[str] = []
        for group in self.grouping_sets:
            seen += [d for d in group if d not in seen]
        return tuple(seen)

    @property
    def multiple_sets(self) -> bool:
        return len(self.grouping_sets) > 1

    def group_by(self, period_column: str = "period_start") -> str:
        """GROUP BY text for the requested grouping sets (always with the period)."""
        if not self.multiple_sets:
            return ", ".join([period_column, *self.grouping_sets[0]])
        sets = ", ".join("(" + ", ".join([period_column, *group]) + ")" for group in self.grouping_sets)
        return f"GROUPING SETS ({sets})"

    def dim_select(self) -> str:
        """The dimension columns (and grouping_id) of a grouped SELECT list, with a trailing comma."""
        parts = list(self.dims)
        if self.multiple_sets:
            parts.append(f"GROUPING({', '.join(self.dims)}) AS grouping_id" if self.dims else "0 AS grouping_id")
        return "".join(f"{p}, " for p in parts)

    def filter_sql(self) -> str:
        """AND-ed conditions for the dimension filters (empty string when there are none)."""
        return "".join(f" AND {dim} IN ({sql_literal(list(values))})" for dim, values in self.filters.items())

    def event_bounds(self, column: str, kind: str) -> str:
        """Condition: the event column falls in the requested periods (compared as stored, for pruning)."""
        if kind == INSTANT:
            lo, hi = (t.isoformat(sep=" ") for t in self.periods.utc_bounds())
            return f"{column} >= TIMESTAMPTZ '{lo}' AND {column} < TIMESTAMPTZ '{hi}'"
        return (
            f"{column} >= DATE '{self.periods.first_day.isoformat()}' "
            f"AND {column} < DATE '{self.periods.end_exclusive.isoformat()}'"
        )

    def local_time(self, column: str, kind: str) -> str:
        """SQL: an instant as local wall-clock time (DuckDB's timezone(tz, ts)), or a date as is."""
        return f"{column} AT TIME ZONE {sql_literal(self.tz)}" if kind == INSTANT else column

    def period_of(self, column: str, kind: str) -> str:
        """SQL: the first local day of the period an instant or a date falls in."""
        value = self.local_time(column, kind)
        return f"CAST(DATE_TRUNC('{self.periods.grain}', {value}) AS DATE)"


def output_row(
    kpi_id: str, ctx: QueryContext, numerator: str, denominator: str, value: str, n: str, unknown: str = "0"
) -> str:
    """One SELECT list in the common output shape.

    `unknown` counts the rows whose side the export cannot decide (a spec's `unknown` filter);
    the engine turns it into "no value" and a note, and leaves it out of the result.
    """
    dims = "".join(f"{d}, " for d in ctx.dims) + ("grouping_id, " if ctx.multiple_sets else "")
    return (
        f"SELECT {sql_literal(kpi_id)} AS kpi_id, period_start, {dims}"
        f"CAST({numerator} AS DOUBLE) AS numerator, CAST({denominator} AS DOUBLE) AS denominator, "
        f"CAST({value} AS DOUBLE) AS value, CAST({n} AS BIGINT) AS n, CAST({unknown} AS BIGINT) AS unknown"
    )


def ratio_value(numerator: str, denominator: str) -> str:
    """A ratio of sums, only over a positive denominator: zero gives NULL ("no data"), never 0, and
    a negative one (charges net of adjustments below zero when the claims behind 835 payments are
    not loaded) gives NULL too, since no share or rate means anything over it."""
    den = f"CAST({denominator} AS DOUBLE)"
    return f"CASE WHEN {den} > 0 THEN CAST({numerator} AS DOUBLE) / {den} END"


def with_relation(relation: Relation | None, ctes: Sequence[tuple[str, str]], final: str) -> str:
    """One statement (DuckDB SQL): a single WITH holding the relation as `base` (when given) and `ctes`.

    A relation that has CTEs of its own has them hoisted in front, so the WITH clause is flat,
    which every target dialect accepts. `render` parses the statement with SQLGlot.
    """
    parts = list(_relation_parts(relation.sql)) if relation is not None else []
    parts += ctes
    return "WITH " + ",\n".join(f"{name} AS (\n{body}\n)" for name, body in parts) + "\n" + final


@lru_cache(maxsize=64)
def _relation_parts(sql: str) -> tuple[tuple[str, str], ...]:
    base = sqlglot.parse_one(sql, read="duckdb")
    parts = []
    with_ = base.args.get("with_")
    if with_ is not None:
        parts = [(cte.alias, cte.this.sql(dialect="duckdb")) for cte in with_.expressions]
        base.set("with_", None)
    parts.append(("base", base.sql(dialect="duckdb")))
    return tuple(parts)


@lru_cache(maxsize=1024)
def render(statement: str, dialect: str = "duckdb", pretty: bool = False) -> str:
    """A DuckDB statement parsed by SQLGlot and written for `dialect`, with the fixes it needs there.

    Cached: a statement depends only on the request (KPIs, options, periods, groupings, filters),
    so a dashboard asking the same question again skips parsing.
    """
    parsed = sqlglot.parse_one(statement, read="duckdb")
    if dialect in ("spark", "databricks"):
        parsed = parsed.transform(_for_spark)
    return parsed.sql(dialect=dialect, pretty=pretty)


def _for_spark(node: exp.Expression) -> exp.Expression:
    """Where DuckDB's meaning and SQLGlot's Spark output differ, write what DuckDB means (exactly).

    * QUANTILE_CONT(x, q): SQLGlot 30 writes PERCENTILE_CONT(x, q), which Spark rejects (and the
      WITHIN GROUP form becomes an approximate percentile); PERCENTILE(x, q) is the exact
      interpolated quantile (RECIPES.md, Spark local).
    * EPOCH(ts): seconds with their microseconds, as a DOUBLE; SQLGlot's UNIX_TIMESTAMP drops the
      fraction, UNIX_MICROS / 1e6 keeps it (the same double DuckDB computes).
    * GROUPING(a, b): DuckDB's bitmask over several columns; Spark's GROUPING takes one column
      (and its GROUPING_ID must name every grouping column), so the bits are added up.
    * a / b: always a DOUBLE in DuckDB; Spark divides DECIMALs as DECIMALs, rounded to a few
      places, so the dividend is made a DOUBLE first.
    """
    # A node returned in place of another is not visited further: its operands are fixed here.
    if isinstance(node, exp.PercentileCont) and node.expression is not None:
        return exp.Anonymous(this="PERCENTILE", expressions=[node.this.transform(_for_spark), node.expression.copy()])
    if isinstance(node, exp.TimeToUnix):
        instant = exp.cast(node.this.transform(_for_spark), "TIMESTAMPLTZ")
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[instant])
        return exp.Div(this=micros, expression=exp.cast(exp.Literal.number(1_000_000), "DOUBLE"))
    if isinstance(node, exp.Grouping) and len(node.expressions) > 1:
        columns = node.expressions
        bits = [
            exp.Mul(
                this=exp.cast(exp.Grouping(expressions=[c.copy()]), "INT"),
                expression=exp.Literal.number(1 << (len(columns) - 1 - i)),
            )
            for i, c in enumerate(columns)
        ]
        total = bits[0]
        for bit in bits[1:]:
            total = exp.Add(this=total, expression=bit)
        return exp.Paren(this=total)
    if isinstance(node, exp.Div) and not _is_double(node.this):
        node.set("this", exp.cast(node.this, "DOUBLE"))  # in place, so its operands are visited too
    return node


def _is_double(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DOUBLE)
