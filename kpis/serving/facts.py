"""What the results store keeps: the fact tables, their columns, and the SQL that fills them.

A fact table holds one row per row of a KPI relation. Its columns:

* `_key`: the relation's `record_id`, by which a refresh replaces rows;
* `day_<event>`: the local day of each event column its KPIs place rows by (a DATE column as is);
* the dimension columns its KPIs allow, named as in the relation;
* per KPI, the row's contribution, from the spec's own conditions with the options in force:
  `<kpi>__num` and `<kpi>__den` (a flag for a count, the amount or NULL for a sum) and
  `<kpi>__pop` (counted in n) for a ratio, and `<kpi>__unk` when a row's side can be unknown
  (the spec's `unknown`, e.g. a cancellation without its initiator); `<kpi>__val` (the value, NULL outside the
  population) for a mean, median or p90;
* what the refresh needs to know of a row's previous state (`kpis.serving.changes`);
* for the ledger's A/R KPIs (credit balances included, as by default): `ar_amount`, the day the
  entry counts as aged (`ar_aged_on`), its look-back charges (`ar_window`) and `ar_charge`.

The KPIs a table keeps are those of the catalog with the options in force (the config's
`[kpi_options]` over the defaults). A request with other options is answered by the raw engine.
A/R with credit balances excluded is not additive across accounts (each account's balance is
clamped at zero), so days in A/R (hfma, aafp) and A/R over 90 days with that option are left to
the raw engine too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property

from kpis.catalog import practice_catalog
from kpis.config import Config
from kpis.custom import ar_balance, third_next_available
from kpis.periods import Periods
from kpis.query import KpiRequest, QueryContext
from kpis.relations import DATE, DIMENSIONS, Relation, build_relations, local_date
from kpis.serving import changes

# Bump when the layout of the store or the SQL that reads it changes: every store is rebuilt.
STORE_VERSION = "4"
SCHEMA = "serving"
TNA = "third_next_available"
AGING = "ar_aging"  # A/R aging by month end and dimension cell (kpis.serving.aging), built from the ledger facts
AGING_VERSION = "1"  # bump when serving.ar_aging's layout or the SQL that fills it changes


@dataclass(frozen=True)
class FactTable:
    """One relation's facts: the KPIs kept, their event columns and dimensions."""

    relation: Relation
    items: tuple[KpiRequest, ...]  # the spec KPIs and A/R KPIs kept here, with the options in force
    tz: str

    @property
    def name(self) -> str:
        return f"{SCHEMA}.facts_{self.relation.name}"

    @property
    def group(self) -> str:
        return self.relation.name

    @cached_property
    def standard(self) -> tuple[KpiRequest, ...]:
        return tuple(item for item in self.items if item.spec.kind != "custom")

    @cached_property
    def ar_items(self) -> tuple[KpiRequest, ...]:
        return tuple(item for item in self.items if item.spec.custom == "ar_balance")

    @cached_property
    def events(self) -> tuple[str, ...]:
        """The event columns the standard KPIs place rows by, and posted_date for A/R."""
        found = [item.spec.event_column(item.options) for item in self.standard]
        if self.ar_items:
            found.append("posted_date")
        return tuple(dict.fromkeys(found))

    @cached_property
    def dims(self) -> tuple[str, ...]:
        wanted = {d for item in self.items for d in item.spec.dimensions}
        return tuple(d for d in DIMENSIONS if d in wanted)

    def day_column(self, event: str) -> str:
        return f"day_{event}"

    def select_sql(self, where: str = "TRUE") -> str:
        """SELECT of the fact rows over `base` (the relation) that pass `where`, in DuckDB SQL."""
        columns = ["record_id AS _key"]
        columns += [f"{expr} AS {name}" for name, expr in changes.kept_columns(self.relation.name).items()]
        for event in self.events:
            day = event if self.relation.events[event] == DATE else local_date(event, self.tz)
            columns.append(f"{day} AS {self.day_column(event)}")
        columns += list(self.dims)
        for item in self.standard:
            columns += [f"{expr} AS {name}" for name, expr in contribution_columns(item).items()]
        if self.ar_items:
            columns += [f"{expr} AS {name}" for name, expr in ar_columns(self.ar_items).items()]
        first = self.day_column(self.events[0])
        return f"SELECT {', '.join(columns)} FROM base WHERE {where} ORDER BY {first}"


def contribution_columns(item: KpiRequest) -> dict[str, str]:
    """A standard KPI's columns in the fact table: name -> SQL over a relation row."""
    spec, k = item.spec, item.id
    if spec.kind == "ratio":
        population = item.condition(spec.population or spec.denominator.filter)
        columns = {
            f"{k}__num": _measure(item, spec.numerator),
            f"{k}__den": _measure(item, spec.denominator),
            f"{k}__pop": f"({population})",
        }
        undecided = item.unknown_condition()
        if undecided is not None:
            columns[f"{k}__unk"] = f"({undecided})"
        return columns
    value, population = item.condition(spec.value.expr), item.condition(spec.value.filter)
    return {f"{k}__val": f"CASE WHEN {population} THEN {value} END"}


def _measure(item: KpiRequest, measure) -> str:
    """A flag (count) or the amount when the row passes the filter, else NULL (sum)."""
    condition = item.condition(measure.filter)
    if measure.agg == "count":
        return f"({condition})"
    return f"CASE WHEN {condition} THEN {item.condition(measure.expr)} END"


def ar_columns(items: Sequence[KpiRequest]) -> dict[str, str]:
    """The ledger entry's A/R facts: signed amount, the day it counts as aged, look-back charges.

    An account with no date of service (or first bill) ages from its first posting; the store
    finds it over the whole account, the raw engine over the account's filtered entries (the same
    in any breakdown), so the refresh checks that every such account lies in one dimension cell
    (`ar_accounts_in_one_cell`), which makes the two the same under any filter too.
    """
    columns = {"ar_amount": "ar_amount", "ar_charge": "entry_type = 'charge'", "ar_account": "account"}
    aging = next((i for i in items if i.id == "ar_over_90_pct"), None)
    if aging is not None:
        first = "MIN(posted_date) OVER (PARTITION BY account, service_date, first_billed_date)"
        age = ar_balance.age_date(aging, first)
        columns["ar_aged_on"] = f"CAST({age} + INTERVAL {ar_balance.AGED_DAYS + 1} DAY AS DATE)"
        undated = " AND ".join(f"{c} IS NULL" for c in ar_balance.age_columns(aging))
        columns["ar_undated"] = f"({undated})"
    days = next((i for i in items if i.id == "days_in_ar"), None)
    if days is not None:
        columns["ar_window"] = ar_balance.window_amount(days)
    return columns


@dataclass(frozen=True)
class ArSums:
    """The ledger facts' A/R summed per cell, so a month's A/R (a stock: every entry posted by then)
    reads a few sums instead of every ledger fact.

    `serving.ar_months`: by posting month, the month the entry counts as aged from and dimension
    cell (balances at month, quarter and year ends); `serving.ar_days`: by posting day and cell
    (days in A/R's look-back charges). Both are sums of DECIMAL amounts and counts, so they add up
    to what the facts give, exactly; `entries` counts a cell's fact rows (a cell with none is dropped).
    """

    name: str
    keys: tuple[tuple[str, str], ...]  # (name, SQL over a ledger fact row)
    sums: tuple[tuple[str, str], ...]  # (name, aggregate over ledger fact rows)

    def select_sql(self, rows: str) -> str:
        """SELECT of the sums of the fact rows `rows` (a table or subquery), by posting day or month: a
        look-back range then reads the row groups of its days only."""
        columns = [f"{expr} AS {name}" for name, expr in (*self.keys, *self.sums)]
        return f"SELECT {', '.join(columns)} FROM {rows} GROUP BY ALL ORDER BY posted_date"


def ar_sums(table: FactTable) -> tuple[ArSums, ...]:
    """The A/R sums kept for the ledger facts `table` (none for a table without A/R KPIs)."""
    ids = {item.id for item in table.ar_items}
    if not ids:
        return ()
    posted = table.day_column("posted_date")
    dims = tuple((d, d) for d in table.dims)
    keys = [("posted_date", f"CAST(DATE_TRUNC('month', {posted}) AS DATE)")]
    if "ar_over_90_pct" in ids:
        keys.append(("ar_aged_on", "CAST(DATE_TRUNC('month', ar_aged_on) AS DATE)"))
    found = [ArSums(f"{SCHEMA}.ar_months", (*keys, *dims), (("ar_amount", "SUM(ar_amount)"), ("entries", "COUNT(*)")))]
    if "days_in_ar" in ids:
        sums = (
            ("window_amount", "SUM(ar_window)"),
            ("window_charges", "COUNT(*) FILTER (WHERE ar_charge)"),
            ("entries", "COUNT(*)"),
        )
        found.append(ArSums(f"{SCHEMA}.ar_days", (("posted_date", posted), *dims), sums))
    return tuple(found)


def storable(item: KpiRequest) -> bool:
    """Whether the store can keep this KPI with these options (exactly, as sums)."""
    if item.spec.custom == "ar_balance":
        return ar_balance.credit_balances(item) == "include"
    return True


@dataclass(frozen=True)
class Layout:
    """Every table of the results store for one practice configuration."""

    config: Config
    relations: Mapping[str, Relation]
    tables: tuple[FactTable, ...]
    tna: KpiRequest | None  # third next available, kept as one row per (snapshot, provider, location)

    def kept(self) -> dict[str, KpiRequest]:
        """KPI id -> the request (options in force) for every KPI the store answers."""
        found = {item.id: item for table in self.tables for item in table.items}
        if self.tna is not None:
            found[self.tna.id] = self.tna
        return found

    def table_of(self, kpi_id: str) -> str:
        """The group (relation name, or third_next_available) that holds a KPI."""
        if self.tna is not None and kpi_id == self.tna.id:
            return TNA
        return next(t.group for t in self.tables if any(i.id == kpi_id for i in t.items))

    @cached_property
    def aging(self) -> tuple[FactTable, KpiRequest] | None:
        """The ledger facts and A/R over 90 days (options in force) when A/R aging is kept: aged from the
        date of service, the store's account is the raw engine's (kpis.serving.aging)."""
        for table in self.tables:
            for item in table.ar_items:
                if item.id == "ar_over_90_pct" and item.options.get("age_from") == "service":
                    return table, item
        return None

    def fingerprints(self) -> dict[str, str]:
        """group -> a hash of everything its stored numbers depend on (the SQL that builds them).

        A store built with other options, another catalog, time zone or business hours has other
        fingerprints, so it is detected and rebuilt (and until then the raw engine answers).
        """
        found = {}
        for table in self.tables:
            sums = [s.select_sql(table.name) for s in ar_sums(table)]  # kept with the facts, rebuilt with them
            text = "\n".join([STORE_VERSION, table.relation.sql, table.select_sql(), *sums])
            found[table.group] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if self.tna is not None:
            text = "\n".join([STORE_VERSION, third_next_available.pairs_query(self.tna, self.build_context())])
            found[TNA] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if self.aging is not None:
            ledger, item = self.aging
            text = "\n".join([STORE_VERSION, AGING_VERSION, found[ledger.group], repr(sorted(item.options.items()))])
            found[AGING] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return found

    def build_context(self, periods: Periods | None = None) -> QueryContext:
        """A query context for building (the periods matter only to third next available's snapshots)."""
        periods = periods or Periods.between(date(2000, 1, 3), date(2000, 1, 3), "day", self.config.timezone)
        return QueryContext(self.config, self.relations, periods)


def items_in_force(config: Config) -> list[KpiRequest]:
    """Every KPI of the catalog with the options in force: the defaults under `[kpi_options]`."""
    where = f"{config.path}: [kpi_options]" if config.path else "[kpi_options]"
    return [
        KpiRequest(spec, spec.resolve_options((where, config.kpi_options.get(spec.id))))
        for spec in practice_catalog(config).values()
    ]


_LAYOUTS: dict[tuple, Layout] = {}


def layout(config: Config) -> Layout:
    """The store's tables for this configuration (cached per time zone, hours and options)."""
    key = (config.timezone, repr(config.business_hours), repr(sorted(config.kpi_options.items())))
    if key not in _LAYOUTS:
        relations = build_relations(config)
        by_relation: dict[str, list[KpiRequest]] = {}
        tna = None
        for item in items_in_force(config):
            if item.spec.custom == TNA:
                tna = item
            elif storable(item):
                by_relation.setdefault(item.spec.relation, []).append(item)
        tables = tuple(FactTable(relations[name], tuple(items), config.timezone) for name, items in by_relation.items())
        _LAYOUTS[key] = Layout(config, relations, tables, tna)
    return _LAYOUTS[key]
