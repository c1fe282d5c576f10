"""The sidebar every page shares: months, grain, location, provider and payer.

Each widget is bound to a URL query parameter (`?months=2025-11&months=2026-10&grain=month&
location=EAST`), so a view can be bookmarked or sent to a colleague, and because the widgets
live in the router (`app.py`) their values survive moving between pages.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboards import data
from kpis.formatting import period_text
from kpis.periods import add_months

GRAINS = ("day", "week", "month", "quarter", "year")
FILTER_DIMENSIONS = ("location", "provider", "payer")
DEFAULT_MONTHS = 13  # the KPI API's default window: a year plus the same month last year


@dataclass(frozen=True)
class Filters:
    """What the manager asked to see. `month` (the last month of the range) is the Overview's month."""

    first_month: date
    last_month: date
    grain: str = "month"
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def start(self) -> str:
        return self.first_month.isoformat()

    @property
    def end(self) -> str:
        """The last day of the range (so every period starting inside it is included)."""
        return (add_months(self.last_month, 1) - timedelta(days=1)).isoformat()

    @property
    def month(self) -> str:
        return self.last_month.isoformat()

    def months(self) -> list[date]:
        out, m = [], self.first_month
        while m <= self.last_month:
            out.append(m)
            m = add_months(m, 1)
        return out

    @property
    def active(self) -> data.Filters:
        """The filters in force, in the hashable form the cached API calls take."""
        return tuple((dim, chosen) for dim, chosen in self.values.items() if chosen)

    def audited(self) -> dict[str, list[str] | str]:
        """What the person asked to see, for the audit log: months, grain and the filters in force."""
        return {"months": [self.start[:7], self.month[:7]], "grain": self.grain} | {d: list(v) for d, v in self.active}

    def ignored(self, dimensions: tuple[str, ...]) -> list[str]:
        """The active filters a KPI with these dimensions cannot honour."""
        return [dim for dim, chosen in self.values.items() if chosen and dim not in dimensions]


STALE_MONTHS = 2  # a source ending more months than this before the newest (bookings to come aside) is not waited for


@dataclass(frozen=True)
class DefaultMonth:
    """The month the Overview opens on, and why: the sources that end there, and those left behind."""

    month: date
    holding: dict[str, date]  # domain -> its last record, for the domains that end in `month` (before the newest)
    stale: dict[str, date]  # domain -> its last record, for those ending over STALE_MONTHS before the newest


def default_month(coverage: pd.DataFrame, today: date) -> DefaultMonth:
    """The last month that every current source reaches.

    Billing files run a few days behind the schedule, so the very last month often holds only
    payments and the Overview would show mostly empty tiles: the default waits for the slowest
    source. Not for one that ended long before the others (phone records of 2010 beside
    appointments of 2025): waiting for it would open every page on a month of "No data".

    "Long before" is measured from the newest source's last month that has begun by `today`, not
    from the newest's: appointments and slots are booked months ahead, so the scheduling source's
    last month is often in the future, and measured from it every other source would look stale and
    the Overview would open on a month nothing has happened in yet. Nor from a middle source's: with
    two sources, or half of them old, the middle one is an old one, and nothing would be stale.
    """
    last = dated(coverage).groupby("domain").agg(month=("period_start", "max"), at=("last_event_at", "max"))
    month = {d: m.date().replace(day=1) for d, m in last["month"].items()}
    at = {d: pd.Timestamp(t).date() for d, t in last["at"].items()}
    newest = max(month.values())
    reference = max((m for m in month.values() if m <= today), default=newest)
    stale = {d: at[d] for d, m in month.items() if m < add_months(reference, -STALE_MONTHS)}
    chosen = min(m for d, m in month.items() if d not in stale)
    holding = {d: at[d] for d, m in month.items() if m == chosen and chosen < newest}
    return DefaultMonth(chosen, holding, stale)


def default_month_text(default: DefaultMonth, titles: dict[str, str]) -> str:
    """Why the Overview opens on its month, when a source decided it: which source holds it back, and
    which source ends too long before the others to wait for. `titles`: domain -> its name."""

    def listed(ends: dict[str, date]) -> str:
        return ", ".join(f"{titles.get(d, d.replace('_', ' ').capitalize())} through {day:%b %-d, %Y}"
                         for d, day in sorted(ends.items(), key=lambda e: e[1]))  # fmt: skip

    parts = []
    if default.holding:
        parts.append(
            f"The Overview opens on {period_text(default.month, 'month')}, the last month every current source "
            f"reaches ({listed(default.holding)})."
        )
    if default.stale:
        parts.append(
            f"Not waited for, ending over {STALE_MONTHS} months before the most recent data: {listed(default.stale)}."
        )
    return " ".join(parts)


def dated(coverage: pd.DataFrame) -> pd.DataFrame:
    """The coverage rows that date their records. Encounters never checked in have no date, so
    their rows have no month (`kpis.coverage`); a domain of those only (an export without check-in
    times) reaches no month and holds none back."""
    return coverage[coverage["period_start"].notna()]


def month_options(coverage: pd.DataFrame, today: date) -> tuple[list[date], date]:
    """Every month from the first to the last with data, and the month to show by default
    (`default_month`). Without data: the year up to this month."""
    coverage = dated(coverage)
    if coverage.empty:
        last = today.replace(day=1)
        return [add_months(last, -n) for n in range(DEFAULT_MONTHS - 1, -1, -1)], last
    first = coverage["period_start"].min().date().replace(day=1)
    last = coverage["period_start"].max().date().replace(day=1)
    months, m = [], first
    while m <= last:
        months.append(m)
        m = add_months(m, 1)
    return months, default_month(coverage, today).month


def option_labels(values: pd.DataFrame) -> dict[str, str]:
    """id -> label for a filter widget. The URL carries labels, so two equal labels get their ids added."""
    ids, labels = values["id"].astype(str).tolist(), values["label"].astype(str).tolist()
    repeated = {label for label, times in Counter(labels).items() if times > 1}
    return {i: f"{label} ({i})" if label in repeated else label for i, label in zip(ids, labels, strict=True)}


@data.cached
def labels_of(src: data.Source, dimension: str) -> dict[str, str]:
    """`option_labels` of a dimension's values, built once per published version (not on every rerun:
    a widget of 1,338 providers is redrawn on each filter change)."""
    return option_labels(data.dimension_values(src, dimension))


def freshness_text(as_of: datetime | None, load_since: datetime | None) -> str:
    """'Data as of ...', and whether a load is writing the next snapshot (the page shows the previous one)."""
    parts = []
    if as_of is not None:
        parts.append(f"Data as of {as_of:%b %-d, %Y %H:%M}.")
    if load_since is not None:
        since = load_since.astimezone(as_of.tzinfo) if as_of is not None else load_since
        parts.append(f"A load is running since {since:%H:%M}; these pages show the data before it until it is done.")
    return " ".join(parts)


def sidebar(src: data.Source) -> Filters:
    """Draw the filter widgets in the sidebar and return what they say."""
    coverage = dated(data.coverage(src))
    choices, default_last = month_options(coverage, date.today())
    months = [m.isoformat()[:7] for m in choices]
    end = months.index(default_last.isoformat()[:7])
    default = (months[max(0, end - DEFAULT_MONTHS + 1)], months[end])
    with st.sidebar:
        if len(months) > 1:
            first, last = st.select_slider(
                "Months",
                options=months,
                value=default,
                format_func=lambda m: period_text(date.fromisoformat(m + "-01"), "month"),
                key="months",
                bind="query-params",
                help="The periods shown on every page. The Overview reports on the last month.",
            )
        else:
            first = last = months[0]
        grain = st.selectbox(
            "Grain", GRAINS, index=GRAINS.index("month"), key="grain", bind="query-params",
            help="The length of each period in trend charts and tables.",
        )  # fmt: skip
        values = {}
        for dim in FILTER_DIMENSIONS:
            labels = labels_of(src, dim)
            chosen = st.multiselect(
                dim.capitalize(),
                list(labels),
                format_func=lambda v, labels=labels: labels.get(v, v),
                key=dim,
                bind="query-params",
                placeholder=f"All {dim}s",
            )
            values[dim] = tuple(chosen)
        if not coverage.empty:
            st.caption(f"Data through {coverage['last_event_at'].max():%b %-d, %Y} (latest record loaded).")
            titles = {spec.domain: spec.domain_title for spec in data.catalog(src).values()}
            why = default_month_text(default_month(coverage, date.today()), titles)
            if why:
                st.caption(why)
        freshness = freshness_text(data.snapshot_time(src), data.load_running(src))
        if freshness:
            st.caption(freshness)
    return Filters(date.fromisoformat(first + "-01"), date.fromisoformat(last + "-01"), grain, values)
