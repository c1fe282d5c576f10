"""The report's numbers, read from the `kpis` API into a plain context the templates only format.

This is the one module of reports/ that talks to the warehouse, and it does so only through
the API of docs/contracts.md section 4 (`compute`, `catalog`, `drivers`, `dimension_values`,
`coverage`, `ingest_runs`). Everything a template shows is decided here: which month a KPI is
reported for, the changes against last month and last year, the biggest movers and who drove
them, and which small cells are withheld (see `reports/privacy.py`). Templates never compute.

A KPI whose report month is still open (referral completion waits 90 days for consult
reports) is reported for its latest complete month instead, and says so; a value that is
neither complete nor replaceable is shown as provisional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from kpis import Warehouse, __version__, privacy
from kpis.drivers import check_decomposable, decompose
from kpis.errors import ClinicKpisError
from kpis.spec import KpiSpec
from reports.errors import ReportError
from reports.settings import PRACTICE

TREND_MONTHS = 13  # the trend charts: the report month and the twelve before it
# Values are fetched far enough back to compare a KPI reported for an earlier, complete month
# (referrals: up to ~4 months back) with the same month a year before that.
HISTORY_MONTHS = 18
MAX_MOVERS = 5
MAX_DRIVERS = 3
MIN_RELATIVE_MOVE = 0.02  # a change under 2% of last month's value is "steady", not a move


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
    """One KPI in the table: its value for `period` and the changes, all in the KPI's own units."""

    id: str
    title: str
    domain: str
    unit: str
    fmt: str
    better: str
    headline: bool
    period: date  # the month the value is for (the report month unless it is still open)
    value: float | None  # None: no data, or withheld (suppressed)
    suppressed: bool
    provisional: bool  # the month is not complete yet, and no earlier complete month was usable
    previous: float | None
    change_month: float | None
    change_year: float | None
    month_effect: str | None  # better | worse | steady
    year_effect: str | None
    target: float | None
    status: str | None
    definition: str  # the id and the variant in use, e.g. days_in_ar[preset=mgma]


@dataclass(frozen=True)
class Trend:
    """A headline KPI's last 13 months; a point is None when missing, withheld or still open."""

    row: KpiRow
    periods: tuple[date, ...]
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Driver:
    """One segment's part in a KPI's move; `contribution` is None for medians (not decomposable)."""

    segment: str
    value_before: float | None
    value_after: float | None
    change: float | None  # value_after - value_before
    contribution: float | None


@dataclass(frozen=True)
class Mover:
    row: KpiRow
    before: date
    relative: float  # |change| / |previous value|
    dimension: str  # what the drivers are segments of (location, provider, queue), "" when none applies
    drivers: tuple[Driver, ...]

    @property
    def driver(self) -> Driver | None:
        return self.drivers[0] if self.drivers else None


@dataclass(frozen=True)
class SourceCoverage:
    domain: str
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
    movers: tuple[Mover, ...]
    coverage: tuple[SourceCoverage, ...]
    last_load: datetime | None
    files_loaded: int
    quarantined: int | str | None
    quarantined_files: tuple[QuarantinedFile, ...]
    definitions: tuple[Definition, ...]
    variants: tuple[str, ...]  # definition labels of the KPIs the practice configured a variant for
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
        """The rows grouped by domain, in catalog order."""
        order = dict.fromkeys(r.domain for r in self.rows)
        return tuple((d, tuple(r for r in self.rows if r.domain == d)) for d in order)

    @property
    def headline_rows(self) -> tuple[KpiRow, ...]:
        return tuple(r for r in self.rows if r.headline)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


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
    """The practice scope, or a location's (checked against the locations the warehouse knows)."""
    if location is None:
        return Scope(key=PRACTICE, location=None, label="Whole practice (all locations)")
    known = wh.dimension_values("location")
    labels = dict(zip(known["id"], known["label"], strict=True))
    if location not in labels:
        raise ReportError(
            f"unknown location {location!r}; the warehouse knows: {', '.join(map(str, labels)) or 'none'}"
        )
    name = labels[location]
    return Scope(key=location, location=location, label=f"{name} ({location})" if name != location else location)


def build_context(wh: Warehouse, month: date, scope: Scope, *, generated_at: datetime | None = None) -> ReportContext:
    """Read every number of one month's report for `scope`."""
    coverage = wh.coverage()
    data_end = _data_end(coverage, month)
    specs = wh.catalog()
    frame = wh.compute(
        kpis=[s.id for s in specs],
        start=add_months(month, -(HISTORY_MONTHS - 1)),
        end=month,
        filters=scope.filters or None,
    )
    frame["period_start"] = frame["period_start"].dt.date
    by_kpi = {kpi_id: rows.set_index("period_start") for kpi_id, rows in frame.groupby("kpi_id", sort=False)}
    rows = tuple(_row(spec, by_kpi[spec.id], month) for spec in specs)
    trends = tuple(_trend(row, by_kpi[row.id], month) for row in rows if row.headline)
    runs = wh.ingest_runs()
    quarantined = _quarantined(runs)
    configured = set(wh.config.kpi_options)
    return ReportContext(
        practice_name=wh.config.practice_name,
        month=month,
        scope=scope,
        generated_at=generated_at or datetime.now(wh.config.tz),
        version=__version__,
        data_end=data_end,
        partial_month=data_end < add_months(month, 1) - timedelta(days=1),
        rows=rows,
        trends=trends,
        movers=_movers(wh, rows, {s.id: s for s in specs}, scope),
        coverage=_coverage(coverage, month),
        last_load=_last_load(runs, wh.config.tz),
        files_loaded=int(runs["file_path"].nunique()) if len(runs) else 0,
        quarantined=privacy.count(sum(q for _, q in quarantined)),
        quarantined_files=tuple(QuarantinedFile(f, privacy.count(q)) for f, q in quarantined if q),
        definitions=tuple(_definition(spec, by_kpi[spec.id]) for spec in specs),
        variants=tuple(r.definition for r in rows if r.id in configured),
    )


# -- KPI rows and trends ------------------------------------------------------------------------


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _shown(rows: pd.DataFrame, period: date) -> float | None:
    """The value of `period` as the report may show it: None when missing, withheld or open."""
    if period not in rows.index:
        return None
    row = rows.loc[period]
    if not _known(row["value"]) or privacy.is_small(row["n"]) or not row["complete"]:
        return None
    return float(row["value"])


def _reported_period(rows: pd.DataFrame, month: date) -> tuple[date, bool]:
    """The month a KPI is reported for, and whether that value is provisional.

    An open month gives way to the latest complete month with data in the trend window; with
    none, the open month is shown, marked provisional.
    """
    if bool(rows.loc[month, "complete"]):
        return month, False
    window = [p for p in rows.index if add_months(month, -(TREND_MONTHS - 1)) <= p < month]
    complete = [p for p in window if bool(rows.loc[p, "complete"]) and rows.loc[p, "n"] > 0]
    return (max(complete), False) if complete else (month, True)


def _effect(change: float | None, better: str, reference: float | None) -> str | None:
    if change is None:
        return None
    if change == 0:
        return "steady"
    if reference is not None and abs(change) < MIN_RELATIVE_MOVE * abs(reference):
        return "steady"
    rising = change > 0
    return "better" if rising == (better == "higher") else "worse"


def _row(spec: KpiSpec, rows: pd.DataFrame, month: date) -> KpiRow:
    period, provisional = _reported_period(rows, month)
    current = rows.loc[period]
    suppressed = bool(privacy.is_small(current["n"]))
    value = None if suppressed or not _known(current["value"]) else float(current["value"])
    previous = _shown(rows, add_months(period, -1))
    year_ago = _shown(rows, add_months(period, -12))
    change_month = value - previous if value is not None and previous is not None else None
    change_year = value - year_ago if value is not None and year_ago is not None else None
    return KpiRow(
        id=spec.id,
        title=spec.title,
        domain=spec.domain,
        unit=spec.unit,
        fmt=spec.fmt,
        better=spec.better,
        headline=spec.headline,
        period=period,
        value=value,
        suppressed=suppressed,
        provisional=provisional and value is not None,
        previous=previous,
        change_month=change_month,
        change_year=change_year,
        month_effect=_effect(change_month, spec.better, previous),
        year_effect=_effect(change_year, spec.better, year_ago),
        target=spec.target,
        status=None if value is None else current["status"],
        definition=str(current["definition"]),
    )


def _trend(row: KpiRow, rows: pd.DataFrame, month: date) -> Trend:
    periods = tuple(add_months(month, -k) for k in range(TREND_MONTHS - 1, -1, -1))
    return Trend(row=row, periods=periods, values=tuple(_shown(rows, p) for p in periods))


def _definition(spec: KpiSpec, rows: pd.DataFrame) -> Definition:
    return Definition(
        id=spec.id,
        title=spec.title,
        label=str(rows["definition"].iloc[-1]),
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


# -- movers and their drivers -------------------------------------------------------------------


def _movers(wh: Warehouse, rows: tuple[KpiRow, ...], specs: dict[str, KpiSpec], scope: Scope) -> tuple[Mover, ...]:
    """The KPIs that moved most since their previous month (relative to it), with their drivers.

    Each mover is split by the first dimension it allows, and its source records, of: location
    (for a practice with several), provider, queue; so calls, which the phone system does not
    tie to a location, are split by queue. Segments come from one `compute` per dimension.
    """
    candidates = []
    for row in rows:
        if row.change_month is None or row.change_month == 0 or row.provisional:
            continue
        relative = abs(row.change_month) / abs(row.previous) if row.previous else math.inf
        if relative >= MIN_RELATIVE_MOVE:
            candidates.append((relative, row))
    candidates.sort(key=lambda item: (-item[0], item[1].title))
    chosen = candidates[:MAX_MOVERS]
    several_sites = scope.location is None and len(wh.dimension_values("location")) > 1
    preferences = ("location", "provider", "queue") if several_sites else ("provider", "queue")
    untried = {row.id: [d for d in preferences if d in specs[row.id].dimensions] for _, row in chosen}
    split: dict[str, tuple[str, tuple[Driver, ...]]] = {}
    while any(untried[row.id] for _, row in chosen if row.id not in split):
        by_dim: dict[str, list[KpiRow]] = {}
        for _, row in chosen:
            if row.id not in split and untried[row.id]:
                by_dim.setdefault(untried[row.id].pop(0), []).append(row)
        for dim, moved in by_dim.items():
            frame = wh.compute(
                [row.id for row in moved],
                start=min(add_months(row.period, -1) for row in moved),
                end=max(row.period for row in moved),
                by=dim,
                filters=scope.filters or None,
            )
            frame["period_start"] = frame["period_start"].dt.date
            labels = _labels(wh, dim)
            for row in moved:
                mine = frame[frame["kpi_id"] == row.id]
                # A dimension the source does not record (the location of a call) cannot name a driver.
                if (mine[dim].notna() & (mine["n"] > 0)).any():
                    split[row.id] = (dim, _drivers(specs[row.id], row, add_months(row.period, -1), dim, mine, labels))
    movers = []
    for relative, row in chosen:
        dim, drivers = split.get(row.id, ("", ()))
        movers.append(
            Mover(row=row, before=add_months(row.period, -1), relative=relative, dimension=dim, drivers=drivers)
        )
    return tuple(movers)


def _labels(wh: Warehouse, dimension: str) -> dict[Any, str]:
    values = wh.dimension_values(dimension)
    return dict(zip(values["id"], values["label"], strict=True))


def _drivers(
    spec: KpiSpec, row: KpiRow, before: date, dimension: str, segments: pd.DataFrame, labels: dict[Any, str]
) -> tuple[Driver, ...]:
    """The segments that moved the KPI the way it went, largest part first (at most MAX_DRIVERS).

    Ratios and means split exactly into segment contributions (the decomposition behind
    `Warehouse.drivers`, applied here to the one filtered `compute` per dimension that serves
    every mover at once); a median does not, so its segments are ranked by how far their own
    median moved.
    """
    old_rows = segments[segments["period_start"] == before]
    new_rows = segments[segments["period_start"] == row.period]
    old_by, new_by = old_rows.set_index(dimension), new_rows.set_index(dimension)

    def shown(frame: pd.DataFrame, segment: Any) -> float | None:
        if segment not in frame.index or privacy.is_small(frame.loc[segment, "n"]):
            return None
        value = frame.loc[segment, "value"]
        return float(value) if _known(value) else None

    rising = row.change_month > 0
    decomposable = _decomposable(spec)
    if decomposable:
        split = decompose(old_rows, new_rows, dimension)
        parts = [(seg, float(c)) for seg, c in zip(split["segment"], split["contribution"], strict=True)]
        parts = [(seg, c) for seg, c in parts if pd.notna(seg) and c != 0 and (c > 0) == rising]
    else:
        parts = []
        for segment in new_by.index.dropna():
            old, new = shown(old_by, segment), shown(new_by, segment)
            if old is not None and new is not None and new != old and (new > old) == rising:
                parts.append((segment, new - old))
        parts.sort(key=lambda part: -abs(part[1]))
    drivers = []
    for segment, contribution in parts[:MAX_DRIVERS]:
        old, new = shown(old_by, segment), shown(new_by, segment)
        drivers.append(
            Driver(
                segment=labels.get(segment, str(segment)),
                value_before=old,
                value_after=new,
                change=new - old if old is not None and new is not None else None,
                contribution=contribution if decomposable else None,
            )
        )
    return tuple(drivers)


def _decomposable(spec: KpiSpec) -> bool:
    """Whether a KPI's change splits into segment contributions (ratios and means do; medians don't)."""
    try:
        check_decomposable(spec)
    except ClinicKpisError:
        return False
    return True


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


def _coverage(coverage: pd.DataFrame, month: date) -> tuple[SourceCoverage, ...]:
    out = []
    for (domain, table, source), rows in coverage.groupby(["domain", "table_name", "source"], sort=True):
        in_month = rows.loc[rows["period_start"].dt.date == month, "rows"].sum()
        last = rows["last_event_at"].max()
        out.append(
            SourceCoverage(
                domain=str(domain),
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
