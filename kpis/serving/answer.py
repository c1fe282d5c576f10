"""The store path: answer a KPI request from the results store, in the engine's output shape.

`paths` decides, KPI by KPI, who answers: `results` (a lookup of precomputed month results),
`facts` (an aggregate over the fact rows, any grain, grouping and filter), or `raw` (the raw
engine: options other than those in force, a store that is stale or missing, A/R with credit
balances excluded). `run` returns what `kpis.engine.run` returns for the same request, so
`kpis.engine.complete_table` (completeness, labels, targets, status) is shared by both paths.

The statements mirror the raw engine's: the same filters, period truncation, grouping sets and
aggregate functions (COUNT, SUM, QUANTILE_CONT over the same values), over fact columns that
hold what the raw engine's FILTER clauses and expressions evaluate to. So the numbers are the
same, value for value; the tests compare both paths over every KPI, grain and grouping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from kpis.custom import ar_balance
from kpis.engine import grouped_by_event, grouping_id
from kpis.errors import ClinicKpisError
from kpis.periods import period_floor
from kpis.query import KpiRequest, QueryContext, output_row, ratio_value, with_relation
from kpis.relations import DIMENSIONS
from kpis.serving import aging
from kpis.serving.facts import AGING, SCHEMA, TNA, FactTable, Layout, ar_sums
from kpis.spec import QUANTILES
from kpis.sql_literals import sql_literal

PATHS = ("auto", "store", "raw")
RESULTS, FACTS, RAW = "results", "facts", "raw"
DESCRIPTIONS = {RESULTS: "month results, looked up", FACTS: "an aggregate over its fact rows", RAW: "the raw engine"}
RESULTS_TABLE = f"{SCHEMA}.results"
AGING_TABLE = f"{SCHEMA}.{AGING}"
SUMMED_GRAINS = ("month", "quarter", "year")  # A/R from the kept sums (facts.ar_sums): a month's entries in one row


class StoreUnavailable(ClinicKpisError):
    """`via="store"` was asked for a request the results store cannot answer."""


@dataclass(frozen=True)
class StoreState:
    """What the results store of an open warehouse can answer, read from `serving.meta`."""

    meta: Mapping[str, str]
    usable: frozenset[str]  # groups (relation names, third_next_available) whose facts match the definitions
    fresh: bool  # refreshed after every write: the snapshot-level views (data ends, values) hold

    @property
    def results_last(self) -> date | None:
        text = self.meta.get("results_last")
        return date.fromisoformat(text) if text else None

    def why_not(self) -> str:
        if not self.meta:
            return "the warehouse has no results store yet (run `clinic-kpis refresh`)"
        if not self.fresh:
            return "the results store is older than the warehouse's data (run `clinic-kpis refresh`)"
        return "the results store was built for other KPI definitions or options (run `clinic-kpis refresh`)"


def read_state(cursor: Any, layout: Layout) -> StoreState:
    """The store's state in this snapshot: fresh when no write came after its last refresh."""
    meta = dict(cursor.execute(f"SELECT key, value FROM {SCHEMA}.meta").fetchall())
    if meta.get("stale") != "false":
        return StoreState(meta, frozenset(), False)
    (last_run,) = cursor.execute("SELECT coalesce(max(run_id), 0) FROM ingest_runs").fetchone()
    if str(last_run) != meta.get("covered_run"):
        return StoreState(meta, frozenset(), False)
    usable = frozenset(group for group, fp in layout.fingerprints().items() if meta.get(f"fingerprint:{group}") == fp)
    return StoreState(meta, usable, True)


# in `serving.meta` as results_version once the month results hold every grouping of `groupings`:
# month results refreshed by older code lack (provider, payer), so until the next refresh recomputes
# them all, the facts answer every request (`_in_results`)
RESULTS_VERSION = "2"


def groupings(dims: Sequence[str]) -> list[tuple[str, ...]]:
    """The groupings kept as month results for a KPI with these dimensions.

    The practice total, each dimension, each dimension within a location, and provider within a
    payer: every pair of the sidebar's filters (location, provider, payer), so a page filtered to
    one of them, grouped by another or not, is a lookup too. The Overview's movers split each move
    by its other drivers under the filter: by location and by provider under a payer filter, by
    location and by payer under a provider filter.
    """
    found = [(), *((d,) for d in dims)]
    if "location" in dims:
        found += [("location", d) for d in dims if d != "location"]
    if "provider" in dims and "payer" in dims:
        found.append(("provider", "payer"))
    return found


def grouping_name(dims: Iterable[str]) -> str:
    """The canonical name of a grouping (its dimensions in catalog order), as stored."""
    wanted = set(dims)
    return ",".join(d for d in DIMENSIONS if d in wanted)


def paths(
    items: Sequence[KpiRequest], ctx: QueryContext, state: StoreState, layout: Layout, via: str
) -> dict[str, str]:
    """KPI id -> results, facts or raw: who answers each KPI of the request."""
    if via not in PATHS:
        raise ClinicKpisError(f"unknown path {via!r}; use one of {', '.join(PATHS)}")
    out = {}
    for item in items:
        path = RAW if via == "raw" else _store_path(item, ctx, state, layout)
        if via == "store" and path == RAW:
            raise StoreUnavailable(
                f"{item.id}: the results store cannot answer this request: {_why(item, state, layout)}"
            )
        out[item.id] = path
    return out


def _store_path(item: KpiRequest, ctx: QueryContext, state: StoreState, layout: Layout) -> str:
    kept = layout.kept().get(item.id)
    if kept is None or dict(kept.options) != dict(item.options) or layout.table_of(item.id) not in state.usable:
        return RAW
    if item.id == "ar_over_90_pct" and state.meta.get("ar_accounts_in_one_cell") != "true":
        return RAW
    return RESULTS if _in_results(item, ctx, state) else FACTS


def _why(item: KpiRequest, state: StoreState, layout: Layout) -> str:
    kept = layout.kept().get(item.id)
    if kept is None:
        return "it keeps this KPI only with credit balances included"
    if dict(kept.options) != dict(item.options):
        return f"it keeps {kept.spec.definition_label(kept.options)}, not {item.spec.definition_label(item.options)}"
    if item.id == "ar_over_90_pct" and state.meta.get("ar_accounts_in_one_cell") != "true":
        return "an account without a date of service spans several locations, providers or payers"
    return state.why_not()


def aging_path(item: KpiRequest, ctx: QueryContext, state: StoreState, layout: Layout, via: str) -> str:
    """results or raw: who answers `Warehouse.ar_aging` for A/R over 90 days' options `item` (one month)."""
    if via not in PATHS:
        raise ClinicKpisError(f"unknown path {via!r}; use one of {', '.join(PATHS)}")
    why = "" if via == "raw" else _aging_not_stored(item, ctx, state, layout)
    if via == "store" and why:
        raise StoreUnavailable(f"A/R aging: the results store cannot answer this request: {why}")
    return RAW if via == "raw" or why else RESULTS


def aging_sql(ctx: QueryContext) -> str:
    """The stored A/R aging at the end of the request's month (see `aging_path`)."""
    return aging.answer_sql(AGING_TABLE, ctx)


def _aging_not_stored(item: KpiRequest, ctx: QueryContext, state: StoreState, layout: Layout) -> str:
    """Why the store cannot answer this aging request ("" when it can)."""
    if layout.aging is None or dict(layout.aging[1].options) != dict(item.options):
        return "it keeps A/R aging from the date of service, with credit balances included, only"
    if AGING not in state.usable:
        return state.why_not()
    if state.meta.get("ar_aging_split_accounts") != "0":
        return "an account's entries span several locations, providers or payers"
    last = state.meta.get("ar_aging_last")
    if ctx.periods.grain != "month" or not last or ctx.periods.starts[-1] > date.fromisoformat(last):
        return "it keeps month ends up to the data's last month only"
    return ""


def _in_results(item: KpiRequest, ctx: QueryContext, state: StoreState) -> bool:
    """Whether every grouping of the request is a stored month result (filters of one value only)."""
    last = state.results_last
    if ctx.periods.grain != "month" or last is None or ctx.periods.starts[-1] > last:
        return False
    if state.meta.get("results_version") != RESULTS_VERSION:
        return False
    if any(len(values) != 1 for values in ctx.filters.values()):
        return False
    kept = {grouping_name(g) for g in groupings(item.spec.dimensions)}
    return all(grouping_name([*group, *ctx.filters]) in kept for group in ctx.grouping_sets)


# -- running ------------------------------------------------------------------------------------


def run(
    cursor: Any, items: Sequence[KpiRequest], ctx: QueryContext, chosen: Mapping[str, str], layout: Layout
) -> pd.DataFrame:
    """The store's answer for `items` (each answered by its path in `chosen`), as engine.run returns it.

    The statements are DuckDB's own SQL, run as written: parsing them with SQLGlot (`render`, for
    other dialects and for display) cost more than the lookup itself, for every new filter. The
    lookup of month results (up to 600 k rows by provider at 10 M) is read through Arrow (`fetch`);
    the facts' statements, long and mostly answering a few hundred rows, through `df()`: DuckDB's
    relation API that gives Arrow parses and binds a statement before running it, ~1 ms more
    for them than it saves.
    """
    frames = [
        fetch(cursor, statement) if chosen[ids[0]] == RESULTS else cursor.execute(statement).df()
        for ids, statement in statements(items, ctx, chosen, layout)
    ]
    columns = ["kpi_id", "period_start", *ctx.dims] + (["grouping_id"] if ctx.multiple_sets else [])
    columns += ["numerator", "denominator", "value", "n", "unknown"]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def fetch(cursor: Any, statement: str) -> pd.DataFrame:
    """A statement's rows as `cursor.execute(statement).df()` gives them (the same dtypes), through Arrow.

    Why: `df()` builds a Python string for every text value before pandas stores it as an Arrow
    string again; the 400 k month results of all KPIs by provider at 10 M took 0.12 s CPU that
    way, 0.03 s from DuckDB's Arrow table. A column type Arrow converts otherwise (decimals,
    lists, timestamps ...) makes the whole frame take `df()`'s own conversion.
    """
    table = cursor.sql(statement).to_arrow_table()
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        converted = _as_df_gives(column)
        if converted is None:
            return cursor.from_arrow(table).df()
        columns[name] = converted
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


_NULLABLE = {
    **{
        getattr(pa, f"{sign}int{bits}")(): pd.api.types.pandas_dtype(f"{sign.upper()}Int{bits}")
        for sign in ("", "u")
        for bits in (8, 16, 32, 64)
    },
    pa.bool_(): pd.BooleanDtype(),
}


def _as_df_gives(column: pa.ChunkedArray) -> pd.Series | None:
    """One Arrow column as DuckDB's `df()` gives it (None: a type this does not know)."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if column.null_count == len(column):  # df(): a column without any text is an object column of None
            return pd.Series([None] * len(column), dtype="object")
        return column.to_pandas()
    if pa.types.is_floating(kind) or pa.types.is_null(kind):
        return column.to_pandas()
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):  # df(): numpy without NULLs, pandas' nullable with
        return column.to_pandas(types_mapper=_NULLABLE.get if column.null_count else None)
    if pa.types.is_date32(kind):
        return column.to_pandas(date_as_object=False).astype("datetime64[us]")
    return None


def statements(
    items: Sequence[KpiRequest], ctx: QueryContext, chosen: Mapping[str, str], layout: Layout
) -> list[tuple[list[str], str]]:
    """(KPI ids, statement) answering `items` from the store: one lookup, one statement per fact table."""
    out = []
    looked_up = [item for item in items if chosen[item.id] == RESULTS]
    if looked_up:
        out.append(([i.id for i in looked_up], results_statement(looked_up, ctx)))
    by_table: dict[str, list[KpiRequest]] = {}
    for item in items:
        if chosen[item.id] == FACTS:
            by_table.setdefault(layout.table_of(item.id), []).append(item)
    tables = {t.group: t for t in layout.tables}
    for group, members in by_table.items():
        ids = [m.id for m in members]
        if group == TNA:
            out.append((ids, tna_statement(members[0], ctx)))
            continue
        table = tables[group]
        standard = [m for m in members if m.spec.kind != "custom"]
        custom = [m for m in members if m.spec.kind == "custom"]
        if standard:
            out.append(([m.id for m in standard], facts_statement(table, standard, ctx)))
        if custom:
            out.append(([m.id for m in custom], ar_statement(table, custom, ctx)))
    return out


def facts_statement(table: FactTable, items: Sequence[KpiRequest], ctx: QueryContext) -> str:
    """The raw engine's `standard_query`, over the fact table: one grouped branch per event column."""

    def in_range(event: str) -> str:
        day = table.day_column(event)
        return (
            f"SELECT *, CAST(DATE_TRUNC('{ctx.periods.grain}', {day}) AS DATE) AS period_start FROM {table.name} "
            f"WHERE {_day_bounds(day, ctx)}{ctx.filter_sql()}"
        )

    ctes, final = grouped_by_event(items, ctx, _aggregates, in_range)
    return with_relation(None, ctes, final)


def _day_bounds(day: str, ctx: QueryContext) -> str:
    """The raw engine's event bounds on local days: [first day, day after the last period)."""
    first, after = ctx.periods.first_day.isoformat(), ctx.periods.end_exclusive.isoformat()
    return f"{day} >= DATE '{first}' AND {day} < DATE '{after}'"


def _aggregates(item: KpiRequest, k: str, ctx: QueryContext) -> tuple[list[str], str]:
    """engine._measures over the fact columns (flags and amounts in place of FILTER and expressions)."""
    spec, c = item.spec, item.id
    if spec.kind == "ratio":
        aggregates = [
            f"{_sum(spec.numerator.agg, f'{c}__num')} AS {k}_num",
            f"{_sum(spec.denominator.agg, f'{c}__den')} AS {k}_den",
            f"COUNT(*) FILTER (WHERE {c}__pop) AS {k}_n",
        ]
        unknown = "0"
        if item.unknown_condition() is not None:
            aggregates.append(f"COUNT(*) FILTER (WHERE {c}__unk) AS {k}_unk")
            unknown = f"{k}_unk"
        value = ratio_value(f"{k}_num", f"{k}_den")
        return aggregates, output_row(spec.id, ctx, f"{k}_num", f"{k}_den", value, f"{k}_n", unknown)
    if spec.value.agg == "mean":
        aggregates = [f"COALESCE(SUM({c}__val), 0) AS {k}_num", f"COUNT({c}__val) AS {k}_n"]
        return aggregates, output_row(spec.id, ctx, f"{k}_num", f"{k}_n", ratio_value(f"{k}_num", f"{k}_n"), f"{k}_n")
    aggregates = [f"QUANTILE_CONT({c}__val, {QUANTILES[spec.value.agg]}) AS {k}_val", f"COUNT({c}__val) AS {k}_n"]
    return aggregates, output_row(spec.id, ctx, "NULL", "NULL", f"{k}_val", f"{k}_n")


def _sum(agg: str, column: str) -> str:
    if agg == "count":
        return f"COUNT(*) FILTER (WHERE {column})"
    return f"COALESCE(SUM({column}), 0)"


def ar_statement(table: FactTable, items: Sequence[KpiRequest], ctx: QueryContext) -> str:
    """The raw engine's A/R statement (credit balances included) over the ledger facts.

    Each entry's aged day is kept, so `aged_from` needs no search for first postings. At month,
    quarter and year ends it reads the A/R sums instead (`facts.ar_sums`: entries summed by
    posting month, aged month and cell, look-back charges by day): an entry's period and the
    period it is aged from depend only on those months there, and the sums add up exactly.
    """
    summed = {s.name.split(".")[1]: s for s in ar_sums(table)} if ctx.periods.grain in SUMMED_GRAINS else {}
    if summed:
        source, entries = summed["ar_months"].name, "SUM(entries)"
    else:
        source, entries = f"(SELECT *, {table.day_column('posted_date')} AS posted_date FROM {table.name})", "COUNT(*)"
    ctes = ar_balance.located_ctes(ctx, source)
    aged_idx = "CAST(NULL AS INTEGER)"
    if any(item.id == "ar_over_90_pct" for item in items):
        ctes.append(
            (
                "aged_from",
                f"""
                SELECT l.*, CASE WHEN g.idx IS NOT NULL THEN GREATEST(l.posted_idx, g.idx) END AS aged_idx
                FROM located AS l
                LEFT JOIN spine AS g ON g.period_start = {ar_balance.period_index_start("l.ar_aged_on", ctx)}
                """,
            )
        )
        aged_idx = "aged_idx"
    ctes += ar_balance.entry_totals_ctes(ctx, "aged_from" if aged_idx == "aged_idx" else "located", aged_idx, entries)
    window = "ar_window" if any(item.id == "days_in_ar" for item in items) else "0"
    days = None
    if "ar_days" in summed:
        window = "window_amount"
        days = (f"(SELECT * FROM {summed['ar_days'].name} WHERE TRUE{ctx.filter_sql()})", "SUM(window_charges)")
    ctes, final = ar_balance.results_ctes(items, ctx, ctes, window, "ar_charge", days)
    return with_relation(None, ctes, final)


def tna_statement(item: KpiRequest, ctx: QueryContext) -> str:
    """Third next available: the mean of the kept (snapshot, provider, location) days, by period."""
    ctes = [
        (
            "in_range",
            f"SELECT *, CAST(DATE_TRUNC('{ctx.periods.grain}', day) AS DATE) AS period_start "
            f"FROM {SCHEMA}.facts_{TNA} WHERE {_day_bounds('day', ctx)}{ctx.filter_sql()}",
        ),
        (
            "grouped",
            f"SELECT period_start, {ctx.dim_select()}SUM(days) AS total_days, COUNT(*) AS pairs "
            f"FROM in_range GROUP BY {ctx.group_by()}",
        ),
    ]
    final = (
        output_row(item.id, ctx, "total_days", "pairs", ratio_value("total_days", "pairs"), "pairs") + " FROM grouped"
    )
    return with_relation(None, ctes, final)


def value_counts_statement(table: FactTable, item: KpiRequest, ctx: QueryContext) -> str:
    """`kpis.explain.value_counts_query` over the fact table: the kept values (`<kpi>__val`, NULL
    outside the population or without a value) counted over the same days and filters."""
    day = table.day_column(item.spec.event_column(item.options))
    return (
        f"SELECT CAST({item.id}__val AS DOUBLE) AS value, COUNT(*) AS records FROM {table.name} "
        f"WHERE {_day_bounds(day, ctx)}{ctx.filter_sql()} AND {item.id}__val IS NOT NULL "
        "GROUP BY ALL ORDER BY value"
    )


def results_statement(items: Sequence[KpiRequest], ctx: QueryContext) -> str:
    """A lookup of stored month results: one SELECT per grouping set of the request."""
    ids = ", ".join(f"'{item.id}'" for item in items)
    first, last = ctx.periods.first_day.isoformat(), period_floor(ctx.periods.starts[-1], "month").isoformat()
    filters = "".join(f" AND {dim} = {sql_literal(values[0])}" for dim, values in ctx.filters.items())
    parts = []
    for group in ctx.grouping_sets:
        dims = "".join(f"{d}, " if d in group else f"NULL AS {d}, " for d in ctx.dims)
        gid = f"{grouping_id(group, ctx.dims)} AS grouping_id, " if ctx.multiple_sets else ""
        parts.append(
            f"SELECT kpi_id, period_start, {dims}{gid}numerator, denominator, value, n, unknown FROM {RESULTS_TABLE} "
            f"WHERE kpi_id IN ({ids}) AND grouping = '{grouping_name([*group, *ctx.filters])}' "
            f"AND period_start >= DATE '{first}' AND period_start <= DATE '{last}'{filters}"
        )
    return "\nUNION ALL\n".join(parts)
