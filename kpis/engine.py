"""The engine: evaluate any set of KPI specs at any grain and grouping, in one scan per relation.

KPIs are grouped by the relation they read; each group becomes one SQL statement in which the
relation is computed once and every KPI is a handful of aggregates with their filters inside
(`COUNT(*) FILTER (WHERE ...)`), grouped by period and dimensions with GROUPING SETS. Custom
KPIs (A/R balances, third next available) are one statement per custom query. So a request
costs a fixed number of statements, whatever its number of periods, providers or KPIs.

Afterwards, in pandas, the result is completed: every period of the range is present for every
dimension value (n = 0 and a NaN value where nothing happened), and each row is flagged
complete or not, labelled with the definition variant in use, and given its target and status.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from kpis.business_time import last_open_day
from kpis.config import BusinessHours
from kpis.custom import CUSTOM_QUERIES
from kpis.periods import Periods
from kpis.query import KpiRequest, QueryContext, output_row, ratio_value, render, with_relation
from kpis.spec import QUANTILES, KpiSpec, Measure

RESULT_COLUMNS = ("numerator", "denominator", "value", "n", "complete", "definition", "target", "status", "note")


def standard_query(items: Sequence[KpiRequest], ctx: QueryContext) -> str:
    """One statement for the spec-only KPIs of one relation.

    The relation is a CTE read once; KPIs that place rows by different event times (check-in vs
    provider end) get one grouped branch each, and every KPI is a few filtered aggregates.
    """
    relation = ctx.relations[items[0].spec.relation]

    def in_range(event_column: str) -> str:
        kind = relation.events[event_column]
        return (
            f"SELECT *, {ctx.period_of(event_column, kind)} AS period_start FROM base "
            f"WHERE {ctx.event_bounds(event_column, kind)}{ctx.filter_sql()}"
        )

    ctes, final = grouped_by_event(items, ctx, _measures, in_range)
    return with_relation(relation, ctes, final)


def grouped_by_event(
    items: Sequence[KpiRequest],
    ctx: QueryContext,
    measures: Callable[[KpiRequest, str, QueryContext], tuple[list[str], str]],
    in_range: Callable[[str], str],
) -> tuple[list[tuple[str, str]], str]:
    """CTEs and the final UNION ALL of a statement with one grouped branch per event column.

    `in_range(event column)` selects the rows of that branch with their `period_start`;
    `measures(item, k, ctx)` gives a KPI's aggregates and its output row. Shared by the raw
    engine (over the relation) and the results store (over the fact table).
    """
    by_event: dict[str, list[tuple[int, KpiRequest]]] = {}
    for i, item in enumerate(items):
        by_event.setdefault(item.spec.event_column(item.options), []).append((i, item))
    ctes: list[tuple[str, str]] = []
    rows: list[str] = []
    for j, (event_column, members) in enumerate(by_event.items()):
        aggregates: list[str] = []
        for i, item in members:
            parts, row = measures(item, f"k{i}", ctx)
            aggregates += parts
            rows.append(f"{row} FROM grouped_{j}")
        selected = f"period_start, {ctx.dim_select()}{', '.join(aggregates)}"
        grouped = f"SELECT {selected} FROM in_range_{j} GROUP BY {ctx.group_by()}"
        ctes += [(f"in_range_{j}", in_range(event_column)), (f"grouped_{j}", grouped)]
    return ctes, "\nUNION ALL\n".join(rows)


def _measures(item: KpiRequest, k: str, ctx: QueryContext) -> tuple[list[str], str]:
    """The aggregates of one KPI (named k_num, k_den, k_val, k_n) and its output row's SELECT list."""
    spec = item.spec
    if spec.kind == "ratio":
        population = item.condition(spec.population or spec.denominator.filter)
        aggregates = [
            f"{_aggregate(item, spec.numerator)} AS {k}_num",
            f"{_aggregate(item, spec.denominator)} AS {k}_den",
            f"COUNT(*) FILTER (WHERE {population}) AS {k}_n",
        ]
        unknown, undecided = "0", item.unknown_condition()
        if undecided is not None:
            aggregates.append(f"COUNT(*) FILTER (WHERE {undecided}) AS {k}_unk")
            unknown = f"{k}_unk"
        value = ratio_value(f"{k}_num", f"{k}_den")
        return aggregates, output_row(spec.id, ctx, f"{k}_num", f"{k}_den", value, f"{k}_n", unknown)
    value, population = item.condition(spec.value.expr), item.condition(spec.value.filter)
    if spec.value.agg == "mean":
        aggregates = [
            f"COALESCE(SUM({value}) FILTER (WHERE {population}), 0) AS {k}_num",
            f"COUNT({value}) FILTER (WHERE {population}) AS {k}_n",
        ]
        return aggregates, output_row(spec.id, ctx, f"{k}_num", f"{k}_n", ratio_value(f"{k}_num", f"{k}_n"), f"{k}_n")
    aggregates = [
        f"QUANTILE_CONT({value}, {QUANTILES[spec.value.agg]}) FILTER (WHERE {population}) AS {k}_val",
        f"COUNT({value}) FILTER (WHERE {population}) AS {k}_n",
    ]
    return aggregates, output_row(spec.id, ctx, "NULL", "NULL", f"{k}_val", f"{k}_n")


def _aggregate(item: KpiRequest, measure: Measure) -> str:
    condition = item.condition(measure.filter)
    if measure.agg == "count":
        return f"COUNT(*) FILTER (WHERE {condition})"
    return f"COALESCE(SUM({item.condition(measure.expr)}) FILTER (WHERE {condition}), 0)"


def plan(items: Sequence[KpiRequest], ctx: QueryContext) -> list[tuple[list[str], str]]:
    """The statements that compute `items`: (KPI ids, statement), as few as the KPIs allow."""
    groups: dict[tuple[str, ...], list[KpiRequest]] = {}
    for item in items:
        spec = item.spec
        key = ("custom", spec.custom) if spec.kind == "custom" else ("spec", spec.relation)
        groups.setdefault(key, []).append(item)
    statements = []
    for (kind, name), members in groups.items():
        statement = CUSTOM_QUERIES[name].query(members, ctx) if kind == "custom" else standard_query(members, ctx)
        statements.append(([m.id for m in members], statement))
    return statements


def run(
    cursor: Any,
    items: Sequence[KpiRequest],
    ctx: QueryContext,
    step: Callable[[Iterable[Any]], Iterable[Any]] = iter,
) -> pd.DataFrame:
    """Execute the plan; `step` wraps the statements (e.g. with a progress bar)."""
    frames = []
    for _, statement in step(plan(items, ctx)):
        frames.append(cursor.execute(render(statement)).df())
    columns = ["kpi_id", "period_start", *ctx.dims] + (["grouping_id"] if ctx.multiple_sets else [])
    columns += ["numerator", "denominator", "value", "n", "unknown"]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def grouping_id(group: Sequence[str], dims: Sequence[str]) -> int:
    """SQL GROUPING() of `dims` for a row grouped by `group`: bit set (first dim highest) = rolled up."""
    return sum(1 << (len(dims) - 1 - i) for i, d in enumerate(dims) if d not in group)


def normalized(raw: pd.DataFrame, ctx: QueryContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A statement's rows with one spelling of period starts and of "no value", and the periods
    asked for with their last business day and last day: what `complete_table` places rows into."""
    raw = raw.copy()
    if raw["period_start"].dtype != "datetime64[us]":  # the store's lookups come as such already
        raw["period_start"] = pd.to_datetime(raw["period_start"]).astype("datetime64[us]")
    for dim in ctx.dims:  # one spelling of "no value" (statements may give None or NaN): one group
        raw[dim] = raw[dim].astype("object").where(raw[dim].notna(), None)
    return raw, _periods_frame(ctx.periods, ctx.config.business_hours).copy()


@functools.lru_cache(maxsize=256)
def _periods_frame(periods: Periods, hours: BusinessHours) -> pd.DataFrame:
    """The periods of a request with their last business day and last day (kept: a page asks the same months
    many times, and building the dates took a tenth of a small request's `complete_table`)."""
    return pd.DataFrame(
        {
            "period_start": pd.to_datetime(list(periods.starts)).astype("datetime64[us]"),
            "period_last": [last_open_day(periods.last_day(s), hours) for s in periods.starts],
            "period_end": pd.to_datetime([periods.last_day(s) for s in periods.starts]),
        }
    )


def complete_table(
    raw: pd.DataFrame,
    items: Sequence[KpiRequest],
    ctx: QueryContext,
    domains: Mapping[str, Sequence[Any]],
    data_ends: Mapping[str, date | None],
    data_starts: Mapping[str, date | None] | None = None,
    ordered: bool = False,
) -> pd.DataFrame:
    """Every KPI x period x dimension value present, then flags, labels, targets and status.

    `domains` lists the known values of each dimension (the reference tables): a single-dimension
    grouping shows every known value in every period; a multi-dimension grouping shows the
    combinations that occur. `data_ends` is the last local date each relation covers; a period
    is complete when its last business day (plus the KPI's waiting time) is covered, and, for a
    KPI that looks back over a window (days in A/R), when `data_starts` (the first local date of
    its relation) is not after the window's first day.

    Rows come by KPI (as in `items`), period, then dimension values in the order the grouping
    finds them; `ordered` (one grouping set) puts the values in order of their text instead, as
    `Warehouse.compute` shows them: the same rows a stable sort of the frame by (KPI, period,
    values as text) gives, without sorting 600 k rows (every KPI and period has the values in
    the same order, so sorting the values once is enough).

    Built column by column from arrays taken by position, the frame made once at the end: a
    filter change on the Overview completes a few small requests (a scorecard's 550 rows, the
    movers' providers), where a frame's every insert, concat and text column cost more than the
    rows (10 ms for 550 rows, most of it pandas' own work per call).
    """
    raw, periods = normalized(raw, ctx)
    ids = pd.Index([item.id for item in items])
    info = _kpi_infos(items, ctx, data_ends, data_starts or {})
    kpi_of_row, period_of_row, found_values = [], [], []
    dims: dict[str, list[np.ndarray]] = {dim: [] for dim in ctx.dims}
    gids = []
    for group in ctx.grouping_sets:
        rows = raw[raw["grouping_id"] == grouping_id(group, ctx.dims)] if ctx.multiple_sets else raw
        combos = _combinations(rows, group, ctx, domains)
        if ordered and group and not ctx.multiple_sets:
            order = np.lexsort([_ranks(combos[dim], key=str) for dim in reversed(group)])
            combos = combos.take(order).reset_index(drop=True)
        # every KPI x period x combination, in that order (what a cross join gives), by position
        k, p, c = (a.ravel() for a in np.meshgrid(*(np.arange(len(x)) for x in (ids, periods, combos)), indexing="ij"))
        found = _positions(rows, group, ids, periods, combos)
        values = rows[["numerator", "denominator", "value", "n", "unknown"]]
        found_values.append(values[found >= 0].set_axis(found[found >= 0]).reindex(np.arange(len(k))))  # a left join
        for dim in ctx.dims:
            dims[dim].append(combos[dim].to_numpy(dtype=object)[c] if dim in group else np.full(len(k), None))
        gids.append(np.full(len(k), grouping_id(group, ctx.dims), dtype=np.int64))
        kpi_of_row.append(k)
        period_of_row.append(p)
    k, p = np.concatenate(kpi_of_row), np.concatenate(period_of_row)
    index = pd.RangeIndex(len(k))
    found_frame = pd.concat(found_values, ignore_index=True)
    n = found_frame["n"].fillna(0).astype("int64")
    unknown = found_frame["unknown"].fillna(0).astype("int64")
    value = found_frame["value"].astype("float64").where(unknown == 0)
    ratio = info["has_ratio"][k]
    # each KPI's fill rule, completeness inputs and target bands, taken by position (600 k rows at 10 M)
    sides = {
        side: found_frame[side].where(~ratio | found_frame[side].notna(), 0.0) for side in ("numerator", "denominator")
    }
    # completeness depends on the KPI and the period only: decided per (KPI, period), then taken
    period_last = pd.to_datetime(periods["period_last"]).to_numpy()[None, :]
    data_end = pd.to_datetime(info["data_end"]).to_numpy()[:, None]
    lag = pd.to_timedelta(info["lag_days"], unit="D").to_numpy()[:, None]
    complete = ~np.isnat(data_end) & (period_last + lag <= data_end)
    lookback = info["lookback_days"].to_numpy(dtype=np.int64)[:, None]
    data_start = pd.to_datetime(info["data_start"]).to_numpy()[:, None]
    window_first = (
        periods["period_end"].to_numpy()[None, :] - pd.to_timedelta(lookback.ravel() - 1, unit="D").to_numpy()[:, None]
    )
    short = (lookback > 0) & ~np.isnat(data_start) & (window_first < data_start)
    lower = info["lower"][k]
    columns: dict[str, Any] = {
        "kpi_id": pd.Series(ids).take(k).set_axis(index),
        "period_start": periods["period_start"].to_numpy()[p],
        "grain": pd.Series(ctx.periods.grain, index=index),
    }
    columns |= {dim: pd.Series(np.concatenate(parts), index=index, dtype="object") for dim, parts in dims.items()}
    if ctx.multiple_sets:
        columns["grouping_id"] = np.concatenate(gids)
    results = {
        **sides,
        "value": value,
        "n": n,
        "complete": (complete & ~short)[k, p],
        "definition": info["definition"].take(k).set_axis(index),
        "target": info["target"][k],
        "status": pd.Series(_status(value.to_numpy(), lower, info["watch"][k], info["red"][k]), dtype="object"),
        "note": _notes(value.to_numpy(), n.to_numpy(), unknown.to_numpy(), sides, info, k, ratio),
    }
    columns |= {name: results[name] for name in RESULT_COLUMNS}
    return pd.DataFrame(columns, index=index)


def _ranks(values: pd.Series, key: Callable[[Any], Any]) -> np.ndarray:
    """Each value's rank among the column's distinct values ordered by `key` (a stable sort: equal
    keys keep the order the values first appear in), the key computed once per distinct value."""
    codes, distinct = pd.factorize(values, use_na_sentinel=False)  # a missing value is a value too
    rank = np.empty(len(distinct), dtype=np.int64)
    keys = [key(None if pd.isna(value) else value) for value in distinct]  # None, as the frame holds it
    rank[sorted(range(len(distinct)), key=keys.__getitem__)] = np.arange(len(distinct))
    return rank[codes]


def _positions(
    rows: pd.DataFrame, group: Sequence[str], ids: pd.Index, periods: pd.DataFrame, combos: pd.DataFrame
) -> np.ndarray:
    """Each result row's position in the KPI x period x combination index (-1: not in it).

    Why positions: joining 600 k result rows to their index with pandas merges took seconds at
    10 M appointments; looking up three small keys and adding them up takes milliseconds.
    """
    k = _lookup(ids, rows["kpi_id"])
    p = _lookup(pd.Index(periods["period_start"]), rows["period_start"])
    if not group:
        c = np.zeros(len(rows), dtype=np.int64)
    elif len(group) == 1:
        c = _lookup(pd.Index(combos[group[0]]), rows[group[0]])
    else:
        c = pd.MultiIndex.from_frame(combos[list(group)]).get_indexer(pd.MultiIndex.from_frame(rows[list(group)]))
    found = (k * len(periods) + p) * len(combos) + c
    found[(k < 0) | (p < 0) | (c < 0)] = -1
    if len(found) and np.bincount(found[found >= 0], minlength=1).max(initial=0) > 1:
        raise ValueError("a KPI result appears twice for one period and dimension value")
    return found


def _notes(
    value: np.ndarray,
    n: np.ndarray,
    unknown: np.ndarray,
    sides: Mapping[str, pd.Series],
    info: Mapping[str, Any],
    k: np.ndarray,
    ratio: np.ndarray,
) -> pd.Series:
    """`notes` for the rows that can have one (a value over 100%, unknowns, a refused ratio), None elsewhere.

    Why: `notes` reads each KPI's labels on every row; here they are looked up only for the rows
    it will write a note on, straight from the arrays (a frame row per note cost 0.1 ms, and a
    grouped request by provider has hundreds of rows with unknowns).
    """
    over = (value > 1) & (info["over_100"] != "")[k]
    numerator, denominator = sides["numerator"].to_numpy(), sides["denominator"].to_numpy()
    # `_note`'s "has data": a side known and not zero (an empty period's 0 / 0 gets no note; at 10 M by
    # provider a third of the rows are such, and looking at each of them took half the completion)
    has_data = (n > 0) | ((numerator != 0) & ~pd.isna(numerator)) | ((denominator != 0) & ~pd.isna(denominator))
    candidates = np.flatnonzero(over | (unknown > 0) | (ratio & np.isnan(value) & has_data))
    out = np.full(len(value), None, dtype=object)
    if len(candidates):
        columns = {"value": value, "n": n, "numerator": numerator, "denominator": denominator, "unknown": unknown}
        taken = {c: a[candidates] for c, a in columns.items()}
        taken |= {c: info[c][k[candidates]] for c in _NOTE_LABELS}
        names = list(taken)
        out[candidates] = [_note(dict(zip(names, row, strict=True))) for row in zip(*taken.values(), strict=True)]
    return pd.Series(out, dtype="object")


def _lookup(keys: pd.Index, values: pd.Series) -> np.ndarray:
    """Each value's position in `keys` (-1: not there), looked up once per distinct value; a
    missing value (None, NaN) finds the missing key, as a merge joins them."""
    codes, distinct = pd.factorize(values)  # a missing value's code is -1: the last position below
    missing = np.flatnonzero(pd.isna(keys))
    found = np.append(keys.get_indexer(distinct), missing[0] if len(missing) else -1)
    return found[codes]


def _combinations(
    rows: pd.DataFrame, group: Sequence[str], ctx: QueryContext, domains: Mapping[str, Sequence[Any]]
) -> pd.DataFrame:
    """The dimension values (or combinations) every KPI and period is shown for."""
    if not group:
        return pd.DataFrame(index=[0])
    if len(group) == 1:
        dim = group[0]
        values = list(domains.get(dim, ()))
        if dim in ctx.filters:
            values = [v for v in values if v in ctx.filters[dim]]
        known = set(values)  # a list's `in` took 50 ms for 1,300 providers
        values += [v for v in rows[dim].drop_duplicates().tolist() if v not in known]
        return pd.DataFrame({dim: pd.Series(values, dtype="object")})
    return rows[list(group)].drop_duplicates().astype("object").reset_index(drop=True)


def _has_ratio(spec: KpiSpec) -> bool:
    """Whether the value is numerator / denominator (so an empty period has 0 / 0, not unknowns)."""
    return spec.kind != "aggregate" or spec.value.agg == "mean"


def _kpi_info(
    item: KpiRequest, ctx: QueryContext, data_ends: Mapping[str, date | None], data_starts: Mapping[str, date | None]
) -> dict[str, Any]:
    """What every row of one KPI shares: fill rule, completeness inputs, label, notes, target bands."""
    spec = item.spec
    relation = ctx.relations.get(spec.relation)
    lookback = getattr(CUSTOM_QUERIES.get(spec.custom or ""), "lookback_days", None)
    numerator_label, _, denominator_label = spec.formula.partition(" / ")
    return {
        "kpi_id": item.id,
        "has_ratio": _has_ratio(spec),
        "numerator_label": numerator_label.strip(),
        "denominator_label": denominator_label.strip() or "the denominator",
        "unknown_reason": spec.unknown_reason,
        "over_100": spec.over_100,
        "not_positive": relation.not_positive if relation is not None else "",
        "lag_days": spec.complete_lag(item.options),
        "lookback_days": lookback(item) if lookback else 0,
        "data_end": data_ends.get(spec.relation),
        "data_start": data_starts.get(spec.relation),
        "definition": spec.definition_label(item.options),
        "target": np.nan if spec.target is None else spec.target,
        "watch": np.nan if spec.watch is None else spec.watch,
        "red": np.nan if spec.red is None else spec.red,
        "better": spec.better,
    }


def _kpi_infos(
    items: Sequence[KpiRequest],
    ctx: QueryContext,
    data_ends: Mapping[str, date | None],
    data_starts: Mapping[str, date | None],
) -> dict[str, Any]:
    """`_kpi_info` of every KPI as columns, one entry per KPI: the dates and days as Series (for
    pandas' date arithmetic), the labels as arrays of Python objects, the flags and bands as NumPy arrays.

    Why not a frame: its text columns are Arrow strings, and making the frame, comparing and
    taking them cost more per request than the rest of a small request's completion.
    """
    rows = [_kpi_info(item, ctx, data_ends, data_starts) for item in items]

    def column(name: str) -> list[Any]:
        return [row[name] for row in rows]

    out: dict[str, Any] = {c: pd.Series(column(c)) for c in ("data_end", "data_start", "lag_days", "lookback_days")}
    out["definition"] = pd.Series(column("definition"))
    out |= {c: np.array(column(c), dtype=object) for c in _NOTE_LABELS}
    out |= {c: np.array(column(c), dtype=np.float64) for c in ("target", "watch", "red")}
    out["has_ratio"] = np.array(column("has_ratio"), dtype=bool)
    out["lower"] = np.array(column("better"), dtype=object) == "lower"
    return out


def notes(frame: pd.DataFrame) -> pd.Series:
    """Why a row with data has no value (None where it has one, or has no data at all).

    Two reasons: rows whose side the export cannot decide (the spec's `unknown`, counted in
    `unknown`), and a ratio whose denominator is not positive (or, for days in A/R, whose A/R
    balance is negative): no rate means anything over it, and no status is given either. A
    value over 100% that the definition allows (the spec's `over_100`) says why as well.
    `frame` has the result columns and each KPI's labels (`_kpi_info`).
    """
    return pd.Series([_note(row) for row in frame.to_dict("records")], index=frame.index, dtype="object")


_NOTE_LABELS = ("has_ratio", "over_100", "unknown_reason", "numerator_label", "denominator_label", "not_positive")


def _note(row: Mapping[str, Any]) -> str | None:
    """One row's note (see `notes`): its value, n, numerator, denominator, unknown and its KPI's labels."""
    value = row["value"]
    if row["unknown"] > 0:
        return f"Unknown: {int(row['unknown']):,} {row['unknown_reason']}."
    has_data = row["n"] > 0 or _nonzero(row["numerator"]) or _nonzero(row["denominator"])
    if bool(row["has_ratio"]) and pd.isna(value) and has_data:  # a ratio refused: no unknowns here
        if row["denominator"] <= 0:
            text = f"No value: {_strip(row['denominator_label'])} is {row['denominator']:,.2f}, not positive."
        else:
            text = f"No value: {_strip(row['numerator_label'])} is {row['numerator']:,.2f}, below zero."
        return f"{text} {row['not_positive']}".strip()
    return row["over_100"] if value > 1 and row["over_100"] != "" else None


def _nonzero(x: Any) -> bool:
    """A side with something on it: known and not zero (a missing side counts as zero)."""
    return not pd.isna(x) and x != 0


def _strip(label: str) -> str:
    """A formula's side without its outer parentheses, for a sentence."""
    return label[1:-1] if label.startswith("(") and label.endswith(")") else label


def status_of(values: pd.Series, better: pd.Series, watch: pd.Series, red: pd.Series) -> pd.Series:
    """on_target / watch / off_target against each row's bands, respecting which way is better.

    Lower is better: on target up to `watch` (which defaults to the target), off target beyond
    `red`, watch in between; higher is better: the mirror image. No target or no value: None,
    and None for a negative value too: no KPI here can be below zero in sound data (a negative
    A/R means payments without their charges), so it gets no "on target".
    """
    v, lower = values.astype("float64").to_numpy(), (better == "lower").to_numpy(dtype=bool)
    labels = _status(v, lower, watch.to_numpy(dtype="float64"), red.to_numpy(dtype="float64"))
    return pd.Series(labels, index=values.index, dtype="object")


_STATUS = np.array(["on_target", "off_target", "watch", None], dtype=object)


def _status(v: np.ndarray, lower: np.ndarray, w: np.ndarray, r: np.ndarray) -> np.ndarray:
    """`status_of` over arrays (a frame's 600 k rows): each row's label taken from four, not a
    new string per row."""
    on = (lower & (v <= w)) | (~lower & (v >= w))
    off = ~np.isnan(r) & ((lower & (v > r)) | (~lower & (v < r)))
    codes = np.select([on, off], [0, 1], default=2)
    codes[np.isnan(v) | np.isnan(w) | (v < 0)] = 3
    return _STATUS[codes]


def status(values: pd.Series, spec: KpiSpec) -> pd.Series:
    """`status_of` for the values of one KPI."""

    def same(x: Any) -> pd.Series:
        return pd.Series([np.nan if x is None else x] * len(values), index=values.index)

    return status_of(
        values, pd.Series([spec.better] * len(values), index=values.index), same(spec.watch), same(spec.red)
    )
