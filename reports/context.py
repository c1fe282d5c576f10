"""The report's numbers, read from the `kpis` API into a plain context the templates only format.

This is the one module of reports/ that talks to the warehouse, and it does so only through
the API of docs/contracts.md section 4. Which month each KPI is reported for, what it is
compared with, what moved and who drove it, and which small cells are withheld are decided in
`kpis` (`Warehouse.scorecard`, `trend`, `movers`; docs/contracts.md section 5), so the report
tells the same story as the dashboard and the command line. Templates never compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from kpis import Warehouse, __version__, privacy
from kpis.comparison import Move, findings
from kpis.errors import ClinicKpisError
from kpis.periods import add_months
from kpis.spec import KpiSpec
from reports.errors import ReportError
from reports.settings import PRACTICE

TREND_MONTHS = 13  # the trend charts: the report month and the twelve before it
MAX_MOVERS = 5


@dataclass(frozen=True)
class Scope:
    """Whose report this is: the whole practice, or one location (its filters apply to every KPI)."""

    key: str  # "practice" or the location id
    location: str | None
    label: str

    @property
    def filters(self) -> dict[str, str]:
        return {"location": self.location} if self.location else {}

    @property
    def filters_text(self) -> str:
        return f"location = {self.location}" if self.location else "none (all locations)"


@dataclass(frozen=True)
class KpiRow:
    """One KPI in the table: its value for `period`, as the scorecard reports it, with its comparisons."""

    id: str
    title: str
    domain: str
    domain_title: str
    unit: str
    fmt: str
    better: str
    headline: bool
    period: date | None  # the month the value is for (an earlier one when the report month is open)
    state: str  # final, small, history, empty, open, no_source (kpis.comparison)
    value: float | None  # a fact, or None (then `state` says why)
    asked_value: float | None  # the report month's own value when it is not final (shown as such)
    asked_state: str
    previous: float | None
    change_month: float | None
    change_year: float | None
    month_effect: str | None  # better | worse | steady
    year_effect: str | None
    year_state: str | None  # why there is no change vs last year (history: early data)
    target: float | None
    red: float | None
    status: str | None
    gap: float | None  # how far off target, in the KPI's scale
    missing: str  # the export not loaded for this scope, if any
    wait_days: int
    history_days: int
    definition: str  # the id and the variant in use, e.g. days_in_ar[preset=mgma]
    note: str | None = None  # why there is no value, or why it is over 100% (Warehouse.compute's note)

    @property
    def suppressed(self) -> bool:
        return self.state == "small"


@dataclass(frozen=True)
class Trend:
    """A headline KPI's last 13 months; a point is None when it is not a fact (missing, withheld, open)."""

    row: KpiRow
    periods: tuple[date, ...]
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Finding:
    """A KPI off target or to watch, in the one ranking of `kpis.comparison.findings`: costliest
    first where the cost of its gap is known (`money`, per month), then furthest from its target."""

    kpi_id: str
    money: float | None


@dataclass(frozen=True)
class Assumption:
    name: str
    value: float | None
    unit: str
    source: str


@dataclass(frozen=True)
class FrictionCost:
    """What one KPI's gap to its target costs a month (`Warehouse.friction_costs`), with its formula."""

    kpi_id: str
    title: str
    unit: str
    fmt: str
    value: float | None
    target: float | None
    money: float | None
    staff_hours: float | None
    formula: str | None  # the arithmetic with its numbers, as kpis wrote it
    note: str | None  # why there is no cost (open month, no visit value, withheld ...)
    assumptions: tuple[Assumption, ...]


@dataclass(frozen=True)
class ChangeEffect:
    """What one logged change did to one KPI it targets (`Warehouse.change_effects`)."""

    change_id: int
    title: str
    date: date
    where: str  # "at Eastside", or "" for the whole practice
    kpi_id: str
    kpi_title: str
    unit: str
    fmt: str
    chart_name: str
    status: str  # signal, no_signal, too_early, no_baseline, no_data
    signal: bool
    signal_since: date | None  # the first month whose data made it a signal
    rules: tuple[str, ...]
    centre_before: float | None
    centre_after: float | None
    verdict: str
    new: bool  # a signal that first showed in the report's month


@dataclass(frozen=True)
class SourceCoverage:
    domain: str
    area: str  # the domain's title
    table: str
    source: str
    rows_in_month: int | str | None
    last_event: datetime | None


@dataclass(frozen=True)
class QuarantinedFile:
    file: str
    records: int | str | None


@dataclass(frozen=True)
class Definition:
    id: str
    title: str
    label: str
    definition: str
    formula: str
    unit: str
    fmt: str
    better: str
    event_time: str
    target: float | None
    watch: float | None
    red: float | None
    authority: str


@dataclass(frozen=True)
class ReportContext:
    """Everything the templates show, as plain values."""

    practice_name: str
    month: date
    scope: Scope
    generated_at: datetime
    version: str
    data_end: date
    partial_month: bool
    rows: tuple[KpiRow, ...]
    trends: tuple[Trend, ...]
    movers: tuple[Move, ...]
    coverage: tuple[SourceCoverage, ...]
    last_load: datetime | None
    files_loaded: int
    quarantined: int | str | None
    quarantined_files: tuple[QuarantinedFile, ...]
    definitions: tuple[Definition, ...]
    variants: tuple[str, ...]  # definition labels of the KPIs the practice configured a variant for
    findings: tuple[Finding, ...] = field(default=())  # off target, then to watch: costliest, then furthest first
    costs: tuple[FrictionCost, ...] = field(default=())  # costliest first
    changes: tuple[ChangeEffect, ...] = field(default=())  # the changes logged up to the month, by date
    summary: tuple[str, ...] = field(default=())  # the executive summary, filled by reports.narrative

    @property
    def definitions_in_use(self) -> str:
        """The definitions in use, short enough for every page's footer (the appendix has them in full)."""
        text = f"clinic-kpis {self.version} catalog (appendix)"
        return text + (f"; practice variants: {', '.join(self.variants)}" if self.variants else "; no variants")

    @property
    def definitions_text(self) -> str:
        return f"Definitions: {self.definitions_in_use}"

    @property
    def domains(self) -> tuple[tuple[str, tuple[KpiRow, ...]], ...]:
        """(domain title, rows) in catalog order."""
        order = dict.fromkeys((r.domain, r.domain_title) for r in self.rows)
        return tuple((title, tuple(r for r in self.rows if r.domain == d)) for d, title in order)

    @property
    def headline_rows(self) -> tuple[KpiRow, ...]:
        return tuple(r for r in self.rows if r.headline)

    def row(self, kpi_id: str) -> KpiRow:
        return next(r for r in self.rows if r.id == kpi_id)

    @property
    def new_signals(self) -> tuple[ChangeEffect, ...]:
        return tuple(c for c in self.changes if c.new)


def parse_month(text: str) -> date:
    """`2026-10` -> date(2026, 10, 1); anything else is a clear error."""
    try:
        year, month = text.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return date(int(year), int(month), 1)
    except ValueError:
        raise ReportError(f"--month must be a month like 2026-10, got {text!r}") from None


def resolve_scope(wh: Warehouse, location: str | None) -> Scope:
    """The practice scope, or a location's (given by id or name, checked against the warehouse)."""
    if location is None:
        return Scope(key=PRACTICE, location=None, label="Whole practice (all locations)")
    try:
        (location_id,) = wh.resolve_filters({"location": location})["location"]
    except ClinicKpisError as exc:
        raise ReportError(f"--location: {exc}") from None
    known = wh.dimension_values("location")
    name = dict(zip(known["id"], known["label"], strict=True)).get(location_id, location_id)
    label = f"{name} ({location_id})" if name != location_id else location_id
    return Scope(key=location_id, location=location_id, label=label)


def build_context(
    wh: Warehouse,
    month: date,
    scope: Scope,
    *,
    generated_at: datetime | None = None,
    load_history: pd.DataFrame | None = None,
    on_trends: Callable[[tuple[Trend, ...]], object] | None = None,
) -> ReportContext:
    """Read every number of one month's report for `scope`.

    `load_history`: the practice's ingest runs, when `wh` is narrowed to a location (the load
    history is practice-wide, so a location's scope cannot read it). `on_trends` is called with
    the trends as soon as they are read, before the rest: `report build` has Chromium draw the
    charts while the remaining numbers are read.
    """
    coverage = wh.coverage()
    data_end = _data_end(coverage, month)
    specs = wh.catalog()
    card = wh.scorecard(month, filters=scope.filters or None).set_index("kpi_id")
    rows = tuple(_row(spec, card.loc[spec.id]) for spec in specs)
    headline = [r.id for r in rows if r.headline]
    trend = wh.trend(headline, month, months=TREND_MONTHS, filters=scope.filters or None)
    trends = tuple(_trend(row, trend[trend["kpi_id"] == row.id]) for row in rows if row.headline)
    if on_trends is not None:
        on_trends(trends)
    runs = wh.ingest_runs() if load_history is None else load_history
    quarantined = _quarantined(runs)
    configured = set(wh.config.kpi_options)
    costs = wh.friction_costs(month, filters=scope.filters or None)
    ranked = findings(card.reset_index(), costs)
    return ReportContext(
        practice_name=wh.config.practice_name,
        month=month,
        scope=scope,
        generated_at=generated_at or datetime.now(wh.config.tz),
        version=__version__,
        data_end=data_end,
        partial_month=data_end < add_months(month, 1) - timedelta(days=1),
        rows=rows,
        findings=tuple(Finding(str(k), _given(m)) for k, m in zip(ranked["kpi_id"], ranked["money"], strict=True)),
        costs=tuple(_cost(row, {s.id: s for s in specs}[row["kpi_id"]]) for row in costs.to_dict(orient="records")),
        changes=_changes(wh, month, scope),
        trends=trends,
        movers=tuple(wh.movers(month, filters=scope.filters or None, limit=MAX_MOVERS)),
        coverage=_coverage(coverage, month, {s.domain: s.domain_title for s in specs}),
        last_load=_last_load(runs, wh.config.tz),
        files_loaded=int(runs["file_path"].nunique()) if len(runs) else 0,
        quarantined=privacy.count(sum(q for _, q in quarantined)),
        quarantined_files=tuple(QuarantinedFile(f, privacy.count(q)) for f, q in quarantined if q),
        definitions=tuple(_definition(spec, str(card.loc[spec.id, "definition"])) for spec in specs),
        variants=tuple(r.definition for r in rows if r.id in configured),
    )


# -- KPI rows and trends ------------------------------------------------------------------------


def _given(value: Any) -> Any:
    """A scorecard cell as a plain value: None for a missing one."""
    return None if value is None or (isinstance(value, float) and value != value) or value is pd.NaT else value


def _day(value: Any) -> date | None:
    value = _given(value)
    return None if value is None else pd.Timestamp(value).date()


def _row(spec: KpiSpec, card: pd.Series) -> KpiRow:
    return KpiRow(
        id=spec.id,
        title=spec.title,
        domain=spec.domain,
        domain_title=spec.domain_title,
        unit=spec.unit,
        fmt=spec.fmt,
        better=spec.better,
        headline=spec.headline,
        period=_day(card["period_start"]),
        state=str(card["state"]),
        value=_given(card["value"]),
        asked_value=_given(card["asked_value"]),
        asked_state=str(card["asked_state"]),
        previous=_given(card["previous_value"]),
        change_month=_given(card["change_previous"]),
        change_year=_given(card["change_year"]),
        month_effect=_given(card["effect_previous"]),
        year_effect=_given(card["effect_year"]),
        year_state=_given(card["year_state"]),
        target=spec.target,
        red=spec.red,
        status=_given(card["status"]),
        gap=_given(card["gap"]),
        missing=str(card["missing"]),
        wait_days=int(card["wait_days"]),
        history_days=int(card["history_days"]),
        definition=str(card["definition"]),
        note=_given(card["note"]),
    )


def _trend(row: KpiRow, rows: pd.DataFrame) -> Trend:
    return Trend(
        row=row,
        periods=tuple(p.date() for p in rows["period_start"]),
        values=tuple(_given(v) for v in rows["shown"]),
    )


def _definition(spec: KpiSpec, label: str) -> Definition:
    return Definition(
        id=spec.id,
        title=spec.title,
        label=label,
        definition=" ".join(spec.definition.split()),
        formula=spec.formula,
        unit=spec.unit,
        fmt=spec.fmt,
        better=spec.better,
        event_time=spec.event_time,
        target=spec.target,
        watch=spec.watch,
        red=spec.red,
        authority=spec.authority,
    )


# -- the improvement loop ---------------------------------------------------------------------------


def _cost(row: dict[str, Any], spec: KpiSpec) -> FrictionCost:
    return FrictionCost(
        kpi_id=spec.id,
        title=spec.title,
        unit=spec.unit,
        fmt=spec.fmt,
        value=_given(row["value"]),
        target=_given(row["target"]),
        money=_given(row["money"]),
        staff_hours=_given(row["staff_hours"]),
        formula=_given(row["formula"]),
        note=_given(row["note"]),
        assumptions=tuple(Assumption(a["name"], a["value"], a["unit"], a["source"]) for a in row["assumptions"]),
    )


def _changes(wh: Warehouse, month: date, scope: Scope) -> tuple[ChangeEffect, ...]:
    """The changes logged up to the end of `month` that concern `scope`, judged on the months up to it.

    A location's report shows the practice-wide changes and those whose scope names the location.
    """
    end = add_months(month, 1) - timedelta(days=1)
    effects = wh.change_effects(end=end)
    specs = {s.id: s for s in wh.catalog()}
    out = []
    for e in effects.to_dict(orient="records"):
        places = e["scope"].get("location")
        if e["date"].date() > end or (scope.location and places and scope.location not in places):
            continue
        since = _day(e["signal_since"])
        spec = specs[e["kpi_id"]]
        out.append(
            ChangeEffect(
                change_id=int(e["change_id"]),
                title=e["title"],
                date=e["date"].date(),
                where=e["where"],
                kpi_id=spec.id,
                kpi_title=spec.title,
                unit=spec.unit,
                fmt=spec.fmt,
                chart_name=e["chart_name"],
                status=e["status"],
                signal=bool(e["signal"]),
                signal_since=since,
                rules=tuple(e["rules"]),
                centre_before=_given(e["centre_before"]),
                centre_after=_given(e["centre_after"]),
                verdict=e["verdict"],
                new=bool(e["signal"]) and since is not None and since >= month,
            )
        )
    return tuple(out)


# -- data coverage and freshness -----------------------------------------------------------------


def _data_end(coverage: pd.DataFrame, month: date) -> date:
    """The last day the warehouse has data for; a month with no data at all cannot be reported."""
    if coverage.empty:
        raise ReportError("the warehouse has no data yet: load exports with `clinic-kpis ingest`")
    first = coverage["period_start"].min().date()
    end = pd.Timestamp(coverage["last_event_at"].max()).date()
    if month > end or add_months(month, 1) <= first:
        raise ReportError(
            f"no data for {month:%Y-%m}: the warehouse covers {first:%Y-%m} to {end:%Y-%m} (up to {end.isoformat()})"
        )
    return end


def _coverage(coverage: pd.DataFrame, month: date, titles: dict[str, str]) -> tuple[SourceCoverage, ...]:
    out = []
    for (domain, table, source), rows in coverage.groupby(["domain", "table_name", "source"], sort=True):
        in_month = rows.loc[rows["period_start"].dt.date == month, "rows"].sum()
        last = rows["last_event_at"].max()
        out.append(
            SourceCoverage(
                domain=str(domain),
                area=titles.get(str(domain), str(domain)),
                table=str(table),
                source=str(source),
                rows_in_month=privacy.count(int(in_month)),
                last_event=None if pd.isna(last) else pd.Timestamp(last).to_pydatetime(),
            )
        )
    return tuple(out)


def _last_load(runs: pd.DataFrame, tz: ZoneInfo) -> datetime | None:
    """When the last load finished, in the practice's time zone."""
    if runs.empty or runs["finished_at"].isna().all():
        return None
    return pd.Timestamp(runs["finished_at"].max()).to_pydatetime().astimezone(tz)


def _quarantined(runs: pd.DataFrame) -> list[tuple[str, int]]:
    """(file name, records rejected) by the latest succeeded load of each file."""
    done = runs[runs["status"] == "succeeded"].drop_duplicates("file_path", keep="first")
    named = ((PurePath(str(p)), int(r)) for p, r in zip(done["file_path"], done["rows_rejected"], strict=True))
    return sorted((f"{path.parent.name}/{path.name}" if path.parent.name else path.name, r) for path, r in named)
