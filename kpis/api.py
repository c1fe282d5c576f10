"""The KPI methods of `Warehouse`: the only API dashboards, reports and notebooks call.

`KpiMethods` is mixed into `kpis.warehouse.Warehouse`, whose `kpis.storage.Store` part keeps to
opening and migrating the file. Each method turns its arguments into KPI requests and a query
context (checking every id, dimension, filter and option with a message that says what is
allowed), then hands them to the engine. See docs/contracts.md section 4 for the contract.
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

import pandas as pd

from kpis import engine
from kpis.catalog import practice_catalog
from kpis.config import Config
from kpis.coverage import coverage_sql
from kpis.custom import ar_balance
from kpis.dimensions import DimensionError, check_dimension, dimension_values, labelled, resolve_values
from kpis.drivers import check_decomposable, decompose
from kpis.errors import ClinicKpisError
from kpis.explain import explain_query, value_counts_query
from kpis.periods import Periods, check_grain, next_period, parse_bound, period_floor, previous_period
from kpis.progress import steps
from kpis.query import KpiRequest, QueryContext, render
from kpis.relations import Relation, build_relations
from kpis.scope import AccessDenied, Scope
from kpis.serving import answer
from kpis.serving.facts import Layout
from kpis.serving.facts import layout as serving_layout
from kpis.serving.stored import stored_coverage_sql, stored_values_sql
from kpis.spec import KpiSpec

DEFAULT_MONTHS = 13
NAMED_DIMENSIONS = ("location", "provider", "payer")  # ids a person reads by name


MEMO_ENTRIES = 1_000  # answers a snapshot keeps (`SnapshotMemo`): a day of clicking, not every filter ever asked


class SnapshotMemo:
    """What calls derived from one read-only snapshot, at most `size` entries, the least recently
    used dropped first; shared by the snapshot's narrowed views (one lock for all threads).

    Why bounded: a snapshot lives until a load publishes the next one (a day, or longer), and the
    dashboard keeps answers per filter (scorecards, the movers' rows): every combination anyone
    clicked would stay. A dropped answer is computed again when asked, the same (the snapshot
    does not change). None is never kept (it means "not kept").
    """

    def __init__(self, size: int = MEMO_ENTRIES) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class KpiMethods:
    """compute, catalog, explain, drivers, sql and the data-quality views of one warehouse."""

    # Provided by Store: the resolved config and `cursor()`, a new DuckDB cursor; by Warehouse:
    # the scope every method applies (kpis.scope).
    config: Config
    scope: Scope

    # -- catalog ----------------------------------------------------------------------------

    @cached_property
    def _specs(self) -> dict[str, KpiSpec]:
        return practice_catalog(self.config)

    @cached_property
    def _relations(self) -> dict[str, Relation]:
        return build_relations(self.config)

    def catalog(self) -> list[KpiSpec]:
        """Every KPI spec the scope may see, with the practice's targets from config, in catalog order.

        A scope limited to some locations sees the KPIs that can be filtered by location only: a
        KPI without that dimension would give it the whole practice's numbers.
        """
        return [spec for spec in self._specs.values() if self._in_scope(spec)]

    def _in_scope(self, spec: KpiSpec) -> bool:
        return not self.scope.limited or "location" in spec.dimensions

    # -- computing --------------------------------------------------------------------------

    def compute(
        self,
        kpis: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        grain: str = "month",
        by: str | Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        names: bool = False,
        via: str = "auto",
    ) -> pd.DataFrame:
        """KPIs by period (and dimensions) as one tidy frame; see docs/contracts.md section 4.

        `kpis=None` means every KPI that can be broken down by `by` and filtered by `filters`.
        `names=True` adds a `<dimension>_name` column after each named dimension (location,
        provider, payer): what a person reads instead of an NPI or a code.
        `via` chooses who answers: `auto` (the results store where it can, else the raw engine;
        the same numbers either way), `store` (an error if the store cannot) or `raw`. The
        frame's `attrs["answered_from"]` says, per KPI: results, facts or raw.
        """
        dims = _as_tuple(by)
        ends = self._data_ends()
        items, ctx = self._prepare(kpis, start, end, grain, (dims,), filters, options, ends)
        frame = self._evaluate(items, ctx, ends, via)
        return self.with_names(frame, dims) if names else frame

    def with_names(self, frame: pd.DataFrame, dimensions: Sequence[str]) -> pd.DataFrame:
        """`frame` with a `<dimension>_name` column after each of `dimensions` that has names."""
        out = frame.copy()
        for dim in dimensions:
            if dim not in NAMED_DIMENSIONS or dim not in out.columns:
                continue
            values = self.dimension_values(dim)
            labels = dict(zip(values["id"].astype(str), values["label"], strict=True))
            named = out[dim].map(lambda v, labels=labels: None if v is None or v != v else labels.get(str(v), str(v)))
            out.insert(out.columns.get_loc(dim) + 1, f"{dim}_name", named.astype("object"))
        return out

    def compute_groupings(
        self,
        kpis: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        grain: str = "month",
        groupings: Sequence[Sequence[str]] = ((),),
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        via: str = "auto",
    ) -> pd.DataFrame:
        """Several groupings (e.g. total, by location, by provider) in one scan per relation.

        Rows carry every dimension column of any grouping and a `grouping_id` (SQL GROUPING()
        over those columns, first column highest bit: a set bit means "rolled up"). `via` is
        compute's.
        """
        sets = tuple(_as_tuple(g) for g in groupings)
        ends = self._data_ends()
        items, ctx = self._prepare(kpis, start, end, grain, sets, filters, options, ends)
        return self._evaluate(items, ctx, ends, via)

    def sql(
        self,
        kpi: str,
        *,
        grain: str = "month",
        by: str | Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        dialect: str = "duckdb",
        start: Any = None,
        end: Any = None,
        via: str = "auto",
    ) -> str:
        """The SQL that computes one KPI, written for `dialect` (duckdb, spark, postgres, ...).

        In DuckDB's dialect it is the statement of whoever answers (`via` as in `compute`): when
        that is the results store, a first comment line says so and names the store's tables.
        Other dialects get the raw engine's statement, over the canonical tables.
        """
        items, ctx = self._prepare([kpi], start, end, grain, (_as_tuple(by),), filters, options)
        if dialect == "duckdb":
            chosen = answer.paths(items, ctx, self._store_state(), self._layout, via)
            if chosen[kpi] != answer.RAW:
                ((_, statement),) = answer.statements(items, ctx, chosen, self._layout)
                comment = f"-- answered from the results store ({answer.DESCRIPTIONS[chosen[kpi]]})\n"
                return comment + render(statement, pretty=True)
        ((_, statement),) = engine.plan(items, ctx)
        return render(statement, dialect=dialect, pretty=True)

    def explain(
        self,
        kpi: str,
        period: Any,
        grain: str = "month",
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> pd.DataFrame:
        """The records behind one value: record_id, patient_key, event_time, side, reason, value, ..."""
        self.scope.require_records("the records behind a KPI")
        start = period_floor(parse_bound(period, end=False, what="period"), check_grain(grain))
        items, ctx = self._prepare([kpi], start, start, grain, ((),), filters, options)
        frame = self.cursor().execute(render(explain_query(items[0], ctx))).df()
        frame["event_time"] = pd.to_datetime(frame["event_time"])
        return frame

    def value_counts(
        self,
        kpi: str,
        start: Any = None,
        end: Any = None,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        via: str = "auto",
    ) -> pd.DataFrame:
        """How many records carry each value of a mean or quantile KPI (e.g. each answered call's
        wait) over the months of [start, end]: columns value, records, by value.

        The records are those `explain` lists on the numerator side, month by month, counted by
        value: what a distribution chart draws, without listing every record. `via` is compute's;
        the results store counts its fact rows, the raw engine the relation's, with the same result.
        """
        self.scope.require_records("the distribution of a KPI's records")
        spec = self._spec(kpi)
        if spec.kind != "aggregate":
            raise ClinicKpisError(f"{kpi} has no value per record (value counts are for a mean, median or p90 KPI)")
        items, ctx = self._prepare([kpi], start, end, "month", ((),), filters, options)
        chosen = answer.paths(items, ctx, self._store_state(), self._layout, via)
        if chosen[kpi] == answer.RAW:
            sql = render(value_counts_query(items[0], ctx))
        else:
            table = next(t for t in self._layout.tables if t.group == self._layout.table_of(kpi))
            sql = answer.value_counts_statement(table, items[0], ctx)
        frame = self.cursor().execute(sql).df().astype({"value": "float64", "records": "int64"})
        frame.attrs["answered_from"] = {kpi: answer.FACTS if chosen[kpi] != answer.RAW else answer.RAW}
        return frame

    def drivers(
        self,
        kpi: str,
        period: Any,
        compare_to: Any = None,
        by: str = "location",
        grain: str = "month",
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> pd.DataFrame:
        """How each segment of `by` moved the KPI from `compare_to` (default: previous period) to `period`.

        `filters` and `options` are those of `compute`, so a location's report or a filtered
        dashboard explains its own number, not the practice's.
        """
        return self.drivers_by(kpi, period, [by], compare_to, grain, filters, options)[by]

    def drivers_by(
        self,
        kpi: str,
        period: Any,
        dimensions: Sequence[str],
        compare_to: Any = None,
        grain: str = "month",
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, pd.DataFrame]:
        """`drivers` for several dimensions at once, keyed by dimension.

        Why: a page that looks for the segment behind a move (location, provider or payer)
        would otherwise compute the KPI twice per dimension; here both periods and every
        dimension come from one `compute_groupings`, i.e. one scan per relation.
        """
        check_grain(grain)
        after = period_floor(parse_bound(period, end=False, what="period"), grain)
        if compare_to is None:
            before = previous_period(after, grain)
        else:
            before = period_floor(parse_bound(compare_to, end=False, what="compare_to"), grain)
        check_decomposable(self._spec(kpi))
        dims = list(dict.fromkeys(dimensions))
        frame = self.compute_groupings(
            kpi,
            start=min(before, after),
            end=max(before, after),
            grain=grain,
            groupings=[(d,) for d in dims],
            filters=filters,
            options=options,
        )
        out = {}
        for dim in dims:
            mine = frame[frame["grouping_id"] == engine.grouping_id((dim,), dims)] if len(dims) > 1 else frame
            starts = mine["period_start"].dt.date
            split = decompose(mine[starts == before], mine[starts == after], dim)
            split.attrs.update(kpi_id=kpi, period=after.isoformat(), compare_to=before.isoformat(), by=dim)
            out[dim] = split
        return out

    def ar_aging(
        self,
        period: Any = None,
        grain: str = "month",
        by: str | Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        via: str = "auto",
    ) -> pd.DataFrame:
        """A/R by aging bucket (0-30, 31-60, 61-90, 91-120, 120+) at the end of a period (default: the last).

        Columns: period_start, <by dimensions>, bucket, amount, share, accounts. Aging and credit
        balances follow the options of ar_over_90_pct. `via` is compute's: the results store keeps
        the aging at every month end (`attrs["answered_from"]`: results or raw).
        """
        if period is None:
            end = self.data_end() or date.today()
            start = period_floor(end, check_grain(grain))
        else:
            start = period_floor(parse_bound(period, end=False, what="period"), check_grain(grain))
        items, ctx = self._prepare(["ar_over_90_pct"], start, start, grain, (_as_tuple(by),), filters, options)
        path = answer.aging_path(items[0], ctx, self._store_state(), self._layout, via)
        sql = answer.aging_sql(ctx) if path == answer.RESULTS else render(ar_balance.aging_query(ctx, items[0]))
        found = self.cursor().execute(sql).df()
        found["period_start"] = pd.to_datetime(found["period_start"]).astype("datetime64[us]")
        keys = ["period_start", *ctx.dims]
        groups = found[keys].drop_duplicates()
        if groups.empty:  # no A/R at all: every bucket at 0 for the practice
            groups = pd.DataFrame({"period_start": pd.to_datetime([start]).astype("datetime64[us]")})
            for dim in ctx.dims:
                groups[dim] = None
        buckets = pd.DataFrame({"bucket": [name for name, _, _ in ar_balance.BUCKETS]})
        frame = groups.merge(buckets, how="cross").merge(found, on=[*keys, "bucket"], how="left")
        frame = frame.fillna({"amount": 0.0, "accounts": 0}).astype({"accounts": "int64"})
        totals = frame.groupby(keys, dropna=False)["amount"].transform("sum")
        frame["share"] = frame["amount"] / totals.where(totals != 0)
        frame = frame[[*keys, "bucket", "amount", "share", "accounts"]].reset_index(drop=True)
        frame.attrs["answered_from"] = {"ar_over_90_pct": path}
        return frame

    # -- data views -------------------------------------------------------------------------

    def dimension_values(self, dimension: str) -> pd.DataFrame:
        """id, label of every known value of a dimension (for filter widgets), as far as the scope sees.

        The results store keeps the whole practice's values: a limited scope counts its own.
        """

        def build() -> pd.DataFrame:
            if not self.scope.limited and self._store_state().fresh:
                return labelled(self.cursor().execute(stored_values_sql(dimension)).df(), dimension, self.config)
            return dimension_values(self.cursor(), dimension, self.config, self.scope.locations)

        return self._memo(("dimension_values", dimension, self.scope.locations), build).copy()

    def ingest_runs(self) -> pd.DataFrame:
        """The ingest_runs table, newest first (a practice-wide view: an unlimited scope only)."""
        self.scope.require_practice("the load history")
        return self.cursor().execute("SELECT * FROM ingest_runs ORDER BY started_at DESC, run_id DESC").df()

    def rejects(self, run_id: int | None = None, limit: int = 1000) -> pd.DataFrame:
        """Quarantined records (direct identifiers masked), optionally of one run, in file order.

        Practice-wide (a rejected record may name no location): an unlimited scope only.
        """
        self.scope.require_practice("the quarantined records")
        where, params = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        sql = f"SELECT * FROM rejects {where} ORDER BY run_id, file_path, position, reject_id LIMIT ?"
        return self.cursor().execute(sql, [*params, int(limit)]).df()

    def coverage(self, grain: str = "month") -> pd.DataFrame:
        """Rows per domain, table, source and period, with the last event: what data there is, and how far.

        A limited scope counts its locations' rows only (a remittance by its claim's location).
        """
        check_grain(grain)
        if not self.scope.limited and self._store_state().fresh:
            sql = stored_coverage_sql(grain)
        else:
            sql = coverage_sql(self.config.timezone, grain, locations=self.scope.locations)
        frame = self.cursor().execute(sql).df()
        frame["period_start"] = pd.to_datetime(frame["period_start"])
        frame["rows"] = frame["rows"].astype("int64")
        return frame[["domain", "source", "period_start", "rows", "last_event_at", "table_name"]]

    def snapshot_time(self) -> datetime | None:
        """When the data of this snapshot was last refreshed (its publication), in the practice's zone.

        None when the warehouse has no results store yet or was written since its refresh.
        """
        state = self._store_state()
        text = state.meta.get("refreshed_at") if state.fresh else None
        return datetime.fromisoformat(text).astimezone(self.config.tz) if text else None

    def data_end(self) -> date | None:
        """The last local date any fact table covers (None for an empty warehouse).

        The practice's, whatever the scope: a month is complete for every location at once, so a
        location's numbers are those of the practice's view filtered to it.
        """
        return _latest(self._data_ends())

    # -- internals --------------------------------------------------------------------------

    def _spec(self, kpi: str) -> KpiSpec:
        if kpi not in self._specs:
            close = difflib.get_close_matches(kpi, self._specs, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ClinicKpisError(f"unknown KPI {kpi!r}{hint}; known: {', '.join(self._specs)}")
        spec = self._specs[kpi]
        if not self._in_scope(spec):
            raise AccessDenied(f"{kpi} cannot be filtered by location: {self.scope.label} does not see it")
        return spec

    def resolve_filters(self, filters: Mapping[str, Any] | None) -> dict[str, tuple[Any, ...]]:
        """Filters as {dimension: ids}: a value may be an id or a name; an unknown one is an error.

        The scope's locations are added as a `location` filter when none is given; a location
        (or provider, payer ...) outside the scope is unknown, as a typo is.
        """
        locations = self.scope.locations

        def build() -> dict[str, tuple[Any, ...]]:
            cur = self.cursor() if filters else None
            out = {}
            for d, v in (filters or {}).items():
                dim = check_dimension(d)
                known = self.dimension_values(dim) if dim in NAMED_DIMENSIONS else None
                out[dim] = resolve_values(cur, dim, _as_values(v), self.config, known, locations)
            if locations is not None and "location" not in out:
                out["location"] = tuple(sorted(locations))
            return out

        asked = tuple((d, _as_values(v)) for d, v in (filters or {}).items())
        return dict(self._memo(("filters", locations, repr(asked)), build))

    def _memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """`build()`, kept for as long as this read-only snapshot is open (`narrowed` views share it).

        Why: a published snapshot never changes (kpis.publication), so what calls derive from it
        (dimension values, resolved filters, whether a table has rows for a scope) holds until a
        publication opens a new `Warehouse`, with a new memo. A filter change on the dashboard asks
        these some thirty times. A writable warehouse builds every time: its data may change.
        """
        if not getattr(self, "read_only", False):
            return build()
        memo = self.__dict__.setdefault("_snapshot_memo", SnapshotMemo())
        found = memo.get(key)
        if found is None:
            found = build()
            memo.put(key, found)
        return found

    def _kept(self, key: tuple) -> Any:
        """What `_memo` keeps under `key` for this snapshot, without building it (None if nothing)."""
        memo = self.__dict__.get("_snapshot_memo")
        return memo.get(key) if memo is not None else None

    def _data_ends(self) -> dict[str, date | None]:
        state = self._store_state()
        if state.fresh:
            return {name: _stored_date(state.meta, f"data_end:{name}") for name in self._relations}
        cur = self.cursor()
        ends = {}
        for name, relation in self._relations.items():
            value = cur.execute(relation.data_end_sql).fetchone()[0]
            ends[name] = value.date() if isinstance(value, datetime) else value
        return ends

    def _data_starts(self, relations: set[str]) -> dict[str, date | None]:
        """The first local date of those of `relations` that say (the ones a look-back window reads)."""
        wanted = [name for name in sorted(relations) if self._relations[name].data_start_sql is not None]
        state = self._store_state()
        if state.fresh:
            return {name: _stored_date(state.meta, f"data_start:{name}") for name in wanted}
        cur = self.cursor()
        return {name: cur.execute(self._relations[name].data_start_sql).fetchone()[0] for name in wanted}

    @cached_property
    def _layout(self) -> Layout:
        return serving_layout(self.config)

    def _store_state(self) -> answer.StoreState:
        """What the results store can answer in this snapshot.

        A read-only warehouse reads it once: its file is a published snapshot that a writer
        never changes (kpis.publication), so the answer holds for as long as it is open.
        """
        if getattr(self, "read_only", False):
            if "_read_only_state" not in self.__dict__:
                self.__dict__["_read_only_state"] = answer.read_state(self.cursor(), self._layout)
            return self.__dict__["_read_only_state"]
        return answer.read_state(self.cursor(), self._layout)

    def _prepare(
        self,
        kpis: str | Sequence[str] | None,
        start: Any,
        end: Any,
        grain: str,
        sets: tuple[tuple[str, ...], ...],
        filters: Mapping[str, Any] | None,
        options: Mapping[str, Mapping[str, Any]] | None,
        ends: Mapping[str, date | None] | None = None,
    ) -> tuple[list[KpiRequest], QueryContext]:
        """Check a request and turn it into KPI requests and a query context.

        `ends` (each relation's data end) is queried only when a default range needs it.
        """
        check_grain(grain)
        wanted = {d for group in sets for d in group}
        for dim in wanted:
            check_dimension(dim)
        for group in sets:
            if len(set(group)) != len(group):
                raise DimensionError(f"dimension listed twice in {list(group)}")
        needed = wanted | {check_dimension(d) for d in filters or {}}
        if self.scope.limited:
            needed.add("location")  # the scope's filter (resolve_filters adds it)
        if kpis is None:
            specs = [s for s in self.catalog() if needed <= set(s.dimensions)]
            if not specs:
                raise DimensionError(f"no KPI can be broken down by {', '.join(sorted(needed))}")
        else:
            specs = [self._spec(k) for k in _as_tuple(kpis)]
            if not specs:
                raise ClinicKpisError("no KPI requested: pass a KPI id, a list of them, or None for all")
            for spec in specs:
                missing = sorted(needed - set(spec.dimensions))
                if missing:
                    raise DimensionError(
                        f"{spec.id} cannot be broken down or filtered by {', '.join(missing)} "
                        f"(it allows {', '.join(spec.dimensions)})"
                    )
        clean_filters = self.resolve_filters(filters)
        options = options or {}
        for kpi_id in options:
            self._spec(kpi_id)
        where = f"{self.config.path}: [kpi_options]" if self.config.path else "[kpi_options]"
        items = [
            KpiRequest(
                spec,
                spec.resolve_options((where, self.config.kpi_options.get(spec.id)), ("options", options.get(spec.id))),
            )
            for spec in specs
        ]
        last = None
        if start is None or end is None:
            last = _latest(ends if ends is not None else self._data_ends())
        periods = self._periods(start, end, grain, last)
        ctx = QueryContext(self.config, self._relations, periods, sets, clean_filters)
        return items, ctx

    def _periods(self, start: Any, end: Any, grain: str, last: date | None) -> Periods:
        """The periods of [start, end]; a missing bound follows the data's last day (or today)."""
        last = last or datetime.now(self.config.tz).date()
        if end is not None:
            end_day = parse_bound(end, end=True, what="end")
        else:
            end_day = next_period(period_floor(last, "month"), "month") - timedelta(days=1)
        if start is not None:
            start_day = parse_bound(start, end=False, what="start")
            end_day = max(end_day, start_day) if end is None else end_day
        else:
            first = period_floor(end_day, "month")
            for _ in range(DEFAULT_MONTHS - 1):
                first = previous_period(first, "month")
            start_day = first
        return Periods.between(start_day, end_day, grain, self.config.timezone)

    def _evaluate(
        self, items: list[KpiRequest], ctx: QueryContext, ends: Mapping[str, date | None], via: str = "auto"
    ) -> pd.DataFrame:
        chosen = answer.paths(items, ctx, self._store_state(), self._layout, via)
        raw_items = [item for item in items if chosen[item.id] == answer.RAW]
        stored = [item for item in items if chosen[item.id] != answer.RAW]
        frames = []
        if raw_items:
            frames.append(engine.run(self.cursor(), raw_items, ctx, step=lambda plan: steps(plan, "computing KPIs")))
        if stored:
            frames.append(answer.run(self.cursor(), stored, ctx, chosen, self._layout))
        raw = frames[0] if len(frames) == 1 else pd.concat([f for f in frames if not f.empty] or frames[:1])
        for dim in ctx.dims:  # a missing dimension value is None, whichever statement (or path) found it
            if not pd.api.types.is_numeric_dtype(raw[dim]) and not pd.api.types.is_bool_dtype(raw[dim]):
                raw[dim] = raw[dim].astype(object).where(raw[dim].notna(), None)
        domains = {}
        for group in ctx.grouping_sets:
            if len(group) == 1:
                domains[group[0]] = self.dimension_values(group[0])["id"].tolist()
        starts = self._data_starts({item.spec.relation for item in items})
        # one grouping: by KPI (catalog order), period, dimensions as text
        frame = engine.complete_table(raw.reset_index(drop=True), items, ctx, domains, ends, starts, ordered=True)
        frame.attrs["answered_from"] = dict(chosen)
        return frame


def _stored_date(meta: Mapping[str, str], key: str) -> date | None:
    text = meta.get(key)
    return date.fromisoformat(text) if text else None


def _latest(ends: Mapping[str, date | None]) -> date | None:
    known = [d for d in ends.values() if d is not None]
    return max(known) if known else None


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _as_values(value: Any) -> tuple[Any, ...]:
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            raise DimensionError("a filter needs at least one value")
        return tuple(value)
    return (value,)
