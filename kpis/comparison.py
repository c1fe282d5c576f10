"""Comparison: which month a KPI is reported for, what it is compared with, what moved and who drove it.

One implementation, asked for by every surface (the dashboard's Overview, the monthly report
and its summary, the command line, the demo), so one month tells one story. The policy
(docs/contracts.md section 5):

* **The month reported** is the last *complete* one. A KPI whose asked month is still open
  (claims not yet remitted, referrals waiting 90 days for their report) is reported for its
  latest complete month within a year, and says which; its open value is given apart
  (`asked_value`), never as the headline.
* **A value is a fact** only when its month is complete, its look-back is covered (a KPI that
  rests on a year of ledger history, `history_days` in its spec, is not a fact in the first
  12 months of data) and it passes the small-cell rule (`kpis.privacy`) where the warehouse's
  scope applies it (`kpis.scope`: reports, emails, viewers). Every other value has a `state`
  that says why not: open, history, small, empty, no_source.
* **A comparison** (with the month before, with the same month a year before) exists only
  between two facts; otherwise it is absent and its state says why.
* **One scale** for every move: the change over the KPI's target-to-red band; a KPI without a
  band uses its own month-to-month variation (the XmR sigma: mean moving range / 1.128 over
  the 12 months before, at least a tenth of its level). A change under `MIN_MOVE` of it is
  steady.
* **One ranking** of moves (by that scale, catalog order on ties), with one set of driver
  dimensions per KPI (the spec's `drivers`). Ratios and means split exactly into segment
  contributions; a median does not (said so), and its segments are ranked by how far their own
  median moved the same way. A segment is named only when its values are facts in both months.
* **Consequence first**: findings (off target, then to watch) are ordered by what their gap
  costs a month where the friction cost is known (`Warehouse.friction_costs`), then by how far
  off target they are, in the same scale (`findings`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kpis import privacy, sources
from kpis.drivers import contributions, segments_of
from kpis.engine import grouping_id
from kpis.errors import ClinicKpisError
from kpis.formatting import period_text
from kpis.periods import add_months, next_period, parse_bound, period_floor
from kpis.spec import KpiSpec

if TYPE_CHECKING:
    from kpis.api import KpiMethods

    _Base = KpiMethods
else:
    _Base = object

FALLBACK_MONTHS = 12  # an open KPI is reported for its latest complete month at most a year back
VARIATION_MONTHS = 12  # months before the reported one whose moves make the fallback scale
XMR_D2 = 1.128  # moving range of two points -> sigma (SPC constant d2)
# ... never less than a tenth of the KPI's level: a median of whole minutes hardly varies, and a
# one-minute step in it is not a large move
MIN_LEVEL_SHARE = 0.1
MIN_MOVE = 0.25  # a change under a quarter of the KPI's scale is steady, and not a mover
STANDS_OUT = 0.25  # a segment explains a move when it carries at least a quarter of it
MAX_DRIVERS = 3
DEFAULT_MOVERS = 5
TREND_MONTHS = 13
STATES = ("final", "small", "history", "empty", "open", "no_source")
SCORECARD_COLUMNS = [
    "kpi_id",
    "month",
    "period_start",
    "state",
    "value",
    "n",
    "status",
    "target",
    "asked_state",
    "asked_value",
    "previous_period",
    "previous_value",
    "previous_state",
    "change_previous",
    "effect_previous",
    "year_period",
    "year_value",
    "year_state",
    "change_year",
    "effect_year",
    "scale",
    "scale_basis",
    "move",
    "gap",
    "wait_days",
    "history_days",
    "unfiltered",
    "missing",
    "definition",
    "note",
]


@dataclass(frozen=True)
class Driver:
    """One segment's part in a move. `contribution` and `share` are None for a median."""

    dimension: str
    segment: Any  # the id (an NPI, a location code, a queue)
    label: str  # what a person reads
    value_before: float
    value_after: float
    change: float
    contribution: float | None  # points of the KPI's change that come from this segment
    share: float | None  # contribution / the whole change
    outweighs: bool  # the segment moved the KPI more than the whole change (others moved back)


@dataclass(frozen=True)
class Move:
    """A KPI that moved between two facts, and the segments that drove it."""

    kpi_id: str
    title: str
    period: date
    before: date
    value: float
    previous: float
    change: float
    effect: str  # better | worse
    move: float  # |change| in the KPI's scale (band widths, or sigmas of its own variation)
    scale_basis: str  # band | variation
    dimension: str  # what the drivers are segments of ("" when none is named)
    decomposable: bool
    drivers: tuple[Driver, ...]
    note: str  # when no driver is named, why

    @property
    def driver(self) -> Driver | None:
        return self.drivers[0] if self.drivers else None


class ComparisonMethods(_Base):
    """scorecard, trend, movers, totals, parts and missing_sources of a warehouse."""

    def scorecard(
        self,
        period: Any = None,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        kpis: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """One row per KPI (catalog order): the month reported, its value as a fact, and its comparisons.

        `period`: the month asked about (default: the month of the data's last day). Each KPI is
        filtered by the filters it allows (`unfiltered` names the others). See SCORECARD_COLUMNS
        and docs/api.md for the columns.

        A published snapshot keeps each card it computed (`_memo`): `movers` starts from the
        scorecard a page has just asked for with the same arguments.
        """
        month = self._asked_month(period)
        specs = self._specs_of(kpis)
        key = (
            "scorecard",
            self.scope,
            month,
            tuple(s.id for s in specs),
            repr(self.resolve_filters(filters)),
            repr(options),
        )
        return self._memo(key, lambda: self._scorecard(month, specs, filters, options)).copy()

    def _scorecard(
        self,
        month: date,
        specs: Sequence[KpiSpec],
        filters: Mapping[str, Any] | None,
        options: Mapping[str, Mapping[str, Any]] | None,
    ) -> pd.DataFrame:
        first = add_months(month, -(FALLBACK_MONTHS + 12))
        facts, unfiltered, missing = self._facts(specs, first, month, filters, options)
        self._memo(self._card_facts_key(month, filters, options), lambda: (first, frozenset(unfiltered), facts))
        # each KPI's periods as dicts, read some twenty times per KPI: one pass over the frame for all KPIs
        # (from its columns as lists: the same values as to_dict("records"), in a quarter of its time)
        tables: dict[str, dict[date, dict[str, Any]]] = {spec.id: {} for spec in specs}
        names = list(facts.columns)
        for values in zip(*(facts[name].tolist() for name in names), strict=True):
            record = dict(zip(names, values, strict=True))
            tables[record["kpi_id"]][record["period_start"]] = record
        rows = [
            self._card(spec, tables[spec.id], month, unfiltered[spec.id], missing.get(spec.id), options)
            for spec in specs
        ]
        frame = pd.DataFrame(rows, columns=SCORECARD_COLUMNS)
        for column in ("month", "period_start", "previous_period", "year_period"):
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[us]")
        return frame

    def trend(
        self,
        kpis: str | Sequence[str] | None = None,
        period: Any = None,
        months: int = TREND_MONTHS,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> pd.DataFrame:
        """Each KPI's `months` monthly values ending with `period`, with what a person may read as a fact.

        Columns: kpi_id, period_start, value (as computed), n, complete, state, shown (the value
        when it is a fact, else NaN), status (of a shown value).
        """
        month = self._asked_month(period)
        specs = self._specs_of(kpis)
        first = add_months(month, -(months - 1))
        facts = self._card_facts(specs, first, month, filters, options)
        if facts is None:
            facts, _, _ = self._facts(specs, first, month, filters, options)
        out = facts[["kpi_id", "period_start", "value", "n", "complete", "state", "shown", "status"]].copy()
        out["status"] = out["status"].where(out["state"] == "final", None)
        out["period_start"] = pd.to_datetime(out["period_start"]).astype("datetime64[us]")
        return out.reset_index(drop=True)

    def facts(
        self,
        kpis: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        grain: str = "month",
        by: str | Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> pd.DataFrame:
        """`compute`, each row judged by the same policy as the scorecard: `state` and `shown`.

        `state` is final, small, history, empty, open or no_source; `shown` is the value when it
        is a fact (what a chart may draw as one), else NaN. Any grain and breakdown.
        """
        frame = self.compute(kpis, start, end, grain, by, filters, options)
        judged, _ = self._judge(frame, self.resolve_filters(filters))
        return judged.drop(columns="withheld")

    def movers(
        self,
        period: Any = None,
        filters: Mapping[str, Any] | None = None,
        by: Sequence[str] | None = None,
        limit: int = DEFAULT_MOVERS,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[Move]:
        """The KPIs that moved most since their month before (both facts), largest first, with drivers.

        `by` narrows the driver dimensions (default: each spec's `drivers`); `limit` caps the list.
        """
        card = self.scorecard(period, filters, options)
        specs = {s.id: s for s in self.catalog()}
        moved = card[card["effect_previous"].isin(["better", "worse"]) & card["move"].notna()]
        moved = moved.assign(order=range(len(moved))).sort_values(["move", "order"], ascending=[False, True])
        resolved = self.resolve_filters(filters)
        rows = list(moved.head(limit).itertuples(index=False))
        asked = {}  # kpi -> (before, after, driver dimensions, its own filters)
        for row in rows:
            spec = specs[row.kpi_id]
            own = {d: v for d, v in resolved.items() if d in spec.dimensions}
            dims = [d for d in (by or spec.drivers) if d in spec.dimensions and len(own.get(d, ())) != 1]
            asked[spec.id] = (row.previous_period.date(), row.period_start.date(), dims, own)
        splits = self._driver_frames(asked, options)
        out = []
        for row in rows:
            spec = specs[row.kpi_id]
            before, after, dims, _ = asked[spec.id]
            dimension, drivers, note = self._drivers(
                spec, before, after, row.change_previous, dims, splits.get(spec.id)
            )
            out.append(
                Move(
                    kpi_id=spec.id,
                    title=spec.title,
                    period=after,
                    before=before,
                    value=float(row.value),
                    previous=float(row.previous_value),
                    change=float(row.change_previous),
                    effect=row.effect_previous,
                    move=float(row.move),
                    scale_basis=row.scale_basis,
                    dimension=dimension,
                    decomposable=_decomposable(spec),
                    drivers=drivers,
                    note=note,
                )
            )
        return out

    def totals(
        self,
        kpis: str | Sequence[str],
        start: Any,
        end: Any,
        by: str | Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        complete_only: bool = False,
    ) -> pd.DataFrame:
        """A KPI over a whole date range (one value per KPI and segment), for ratios and means.

        Numerators, denominators and n add up over the range's periods (whole months when the
        range is, else days), and the value is their ratio: exact, not an average of monthly
        rates. `complete_only` keeps only the complete periods (e.g. referrals whose 90-day
        window has passed). Columns: kpi_id, <by>, first_period, last_period, periods,
        numerator, denominator, value, n, complete.
        """
        dims = [by] if isinstance(by, str) else list(by or [])
        ids = [kpis] if isinstance(kpis, str) else list(kpis)
        for kpi in ids:
            spec = self._spec(kpi)
            if not _decomposable(spec) or spec.kind == "custom":
                raise ClinicKpisError(
                    f"{kpi} does not add up over a range (a median, a balance or a custom KPI): "
                    "compute it at a coarser grain instead"
                )
        first, last = parse_bound(start, end=False, what="start"), parse_bound(end, end=True, what="end")
        whole_months = first.day == 1 and (last + timedelta(days=1)).day == 1
        frame = self.compute(
            ids, start=first, end=last, grain="month" if whole_months else "day", by=dims or None, filters=filters,
            options=options,
        )  # fmt: skip
        if complete_only:
            frame = frame[frame["complete"]]
        keys = ["kpi_id", *dims]
        grouped = frame.groupby(keys, dropna=False, sort=False)
        out = grouped.agg(
            first_period=("period_start", "min"),
            last_period=("period_start", "max"),
            periods=("period_start", "nunique"),
            numerator=("numerator", "sum"),
            denominator=("denominator", "sum"),
            n=("n", "sum"),
            complete=("complete", "all"),
        ).reset_index()
        out["value"] = out["numerator"] / out["denominator"].where(out["denominator"] != 0)
        columns = [*keys, "first_period", "last_period", "periods", "numerator", "denominator", "value", "n"]
        return out[[*columns, "complete"]]

    def parts(
        self,
        kpi: str,
        start: Any = None,
        end: Any = None,
        by: str = "location",
        grain: str = "month",
        filters: Mapping[str, Any] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> pd.DataFrame:
        """Each segment's part of a ratio per period: its numerator over the period's whole denominator.

        The parts of a period add up to the KPI's value (e.g. the denial rate split by the
        payer's reason). Columns: those of `compute(by=by)` plus `part`.
        """
        if not _decomposable(self._spec(kpi)):
            raise ClinicKpisError(f"{kpi} is a median: it does not split into parts")
        frame = self.compute(kpi, start=start, end=end, grain=grain, by=by, filters=filters, options=options)
        totals = frame.groupby("period_start")["denominator"].transform("sum")
        frame["part"] = frame["numerator"] / totals.where(totals > 0)
        return frame

    def missing_sources(
        self, kpis: str | Sequence[str] | None = None, filters: Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """The KPIs whose feeding table holds no row at all for the scope of `filters`: kpi_id, table, export."""
        specs = self._specs_of(kpis)
        missing = sources.missing(
            self.cursor, specs, self.resolve_filters(filters), self._memo(("has_rows",), dict), self._store_state
        )
        rows = [(kpi, table, sources.EXPORTS[table]) for kpi, table in missing.items()]
        return pd.DataFrame(rows, columns=["kpi_id", "table", "export"])

    # -- internals --------------------------------------------------------------------------

    def _asked_month(self, period: Any) -> date:
        if period is None:
            return period_floor(self.data_end() or date.today(), "month")
        return period_floor(parse_bound(period, end=False, what="period"), "month")

    def _specs_of(self, kpis: str | Sequence[str] | None) -> list[KpiSpec]:
        if kpis is None:
            return self.catalog()
        return [self._spec(k) for k in ([kpis] if isinstance(kpis, str) else kpis)]

    def _facts(
        self,
        specs: Sequence[KpiSpec],
        first: date,
        last: date,
        filters: Mapping[str, Any] | None,
        options: Mapping[str, Mapping[str, Any]] | None,
    ) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]], dict[str, str]]:
        """Monthly results of `specs` in [first, last], each row with its `state` and `shown` value.

        Each KPI is filtered by the filters it allows. Returns the frame, the filters each KPI
        could not honour, and the KPIs whose feeding table is not loaded for the scope.
        """
        resolved = self.resolve_filters(filters)
        groups = _filter_groups(specs, resolved)
        unfiltered = {spec.id: tuple(d for d in resolved if d not in spec.dimensions) for spec in specs}
        end = add_months(last, 1) - timedelta(days=1)
        frames = [self._monthly(ids, first, end, key, options) for key, ids in groups.items()]
        frame, missing = self._judge(pd.concat(frames, ignore_index=True), resolved)
        frame["period_start"] = frame["period_start"].dt.date
        return frame, unfiltered, missing

    def _monthly(
        self,
        ids: Sequence[str],
        first: date,
        end: date,
        key: tuple[tuple[str, tuple[Any, ...]], ...],
        options: Mapping[str, Mapping[str, Any]] | None,
    ) -> pd.DataFrame:
        """`compute(ids, first, end, filters=key)`, taken from the computation of more KPIs with the same
        range, filters and options when this snapshot kept one (the first kept for that range).

        Why: a filter the phone KPIs cannot honour (a location) leaves them unfiltered, so a
        filter change's scorecard asks for rows the unfiltered scorecard already computed. A KPI's
        rows do not depend on the KPIs asked with it; they come in compute's order (KPI, period).
        """
        memo_key = ("monthly", self.scope, first, end, key, repr(options))
        kept = self._kept(memo_key)
        if kept is not None and set(ids) <= set(kept[0]):
            return _in_order(kept[1], list(ids))
        frame = _plain(self.compute(list(ids), start=first, end=end, filters=dict(key) or None, options=options))
        self._memo(memo_key, lambda: (tuple(ids), frame))
        return frame

    def _card_facts_key(
        self, month: date, filters: Mapping[str, Any] | None, options: Mapping[str, Mapping[str, Any]] | None
    ) -> tuple:
        return ("scorecard facts", self.scope, month, repr(self.resolve_filters(filters)), repr(options))

    def _card_facts(
        self,
        specs: Sequence[KpiSpec],
        first: date,
        month: date,
        filters: Mapping[str, Any] | None,
        options: Mapping[str, Mapping[str, Any]] | None,
    ) -> pd.DataFrame | None:
        """`_facts(specs, first, month, ...)`'s frame taken from the facts a scorecard of this
        snapshot kept for `month` (None when it kept none, or they do not cover the request).

        Why: the Overview asks the scorecard and then the headline trends with the same filters;
        the trends are rows of the scorecard's facts (a KPI's monthly rows do not depend on the
        other KPIs or the months asked with it), so they need no computation of their own. The
        rows come in the order `_facts` gives: by filter group, KPI, then period.
        """
        kept = self._kept(self._card_facts_key(month, filters, options))
        if kept is None:
            return None
        kept_first, ids, facts = kept
        if first < kept_first or not {spec.id for spec in specs} <= ids:
            return None
        groups = _filter_groups(specs, self.resolve_filters(filters))
        return _in_order(facts[facts["period_start"] >= first], [kpi for ids in groups.values() for kpi in ids])

    def _judge(
        self, frame: pd.DataFrame, filters: Mapping[str, tuple[Any, ...]]
    ) -> tuple[pd.DataFrame, dict[str, str]]:
        """`compute` rows with `state`, `withheld` and `shown` (the value when it is a fact); and the
        KPIs whose feeding table has no row for the scope of `filters`."""
        specs = [self._spec(k) for k in frame["kpi_id"].unique()]
        by_id = {s.id: s for s in specs}
        starts = self._data_starts({s.relation for s in specs if s.history_days})
        missing = sources.missing(self.cursor, specs, filters, self._memo(("has_rows",), dict), self._store_state)

        def covered(kpi: str, start: pd.Timestamp, grain: str) -> bool:
            spec = by_id[kpi]
            if not spec.history_days:
                return True
            since = starts.get(spec.relation)
            period_end = next_period(start.date(), grain) - timedelta(days=1)
            return since is not None and period_end - timedelta(days=spec.history_days - 1) >= since

        rows = zip(frame["kpi_id"], frame["period_start"], frame["grain"], strict=True)
        is_covered = np.array([covered(k, s, g) for k, s, g in rows], dtype=bool)
        withheld = np.zeros(len(frame), dtype=bool)
        if self.scope.small_cells:
            codes, ids = pd.factorize(frame["kpi_id"])
            patient = np.array([by_id[k].patient_records for k in ids], dtype=bool)[codes]
            counts = np.array([_numerator_counts(by_id[k]) for k in ids], dtype=bool)[codes]
            n = frame["n"].to_numpy(dtype=float, na_value=np.nan)
            numerator = frame["numerator"].to_numpy(dtype=float, na_value=np.nan)
            withheld = patient & privacy.withheld_rows(n, numerator, counts)
        empty = ((frame["n"] == 0) | frame["value"].isna()).to_numpy()
        complete = frame["complete"].to_numpy(dtype=bool)
        no_source = frame["kpi_id"].isin(list(missing)).to_numpy()
        frame = frame.copy()
        frame["state"] = np.select(
            [empty & no_source, ~is_covered & ~empty, ~complete, empty, withheld],
            ["no_source", "history", "open", "empty", "small"],
            default="final",
        )
        frame["withheld"] = withheld
        frame["shown"] = frame["value"].where(frame["state"] == "final")
        return frame, missing

    def _card(
        self,
        spec: KpiSpec,
        table: Mapping[date, Mapping[str, Any]],
        month: date,
        unfiltered: tuple[str, ...],
        missing: str | None,
        options: Mapping[str, Mapping[str, Any]] | None,
    ) -> dict[str, Any]:
        """One KPI's scorecard row (see the module docstring for the policy); `table` holds its
        monthly facts rows by period start."""

        def at(period: date, column: str) -> Any:
            return table[period][column] if period in table else None

        asked = at(month, "state") or "empty"
        reported: date | None = month
        earlier = [p for p in table if add_months(month, -FALLBACK_MONTHS) <= p < month]
        if asked == "open":
            complete = [p for p in earlier if table[p]["state"] in ("final", "small")]
            reported = max(complete) if complete else None
        state = at(reported, "state") if reported else asked
        note = _note(at(reported or month, "note"))
        if asked == "open" and not any(at(p, "n") for p in [*earlier, month]):
            # no record in the asked month nor in the year before it: an export that ended long
            # ago, not records that may still arrive (a year of early data only is still arriving)
            state, note = "empty", _ended_note(table, month)
        value = at(reported, "shown") if reported else None
        value = None if value is None or math.isnan(value) else float(value)
        # the asked month's own value, when it is not a fact: shown apart, as not final
        show_asked = asked in ("open", "history") and not bool(at(month, "withheld"))
        scale, basis = _scale(spec, table, reported)
        card: dict[str, Any] = {
            "kpi_id": spec.id,
            "month": month,
            "period_start": reported,
            "state": state,
            "value": value,
            "n": int(at(reported, "n")) if reported and at(reported, "n") is not None else 0,
            "status": at(reported, "status") if value is not None else None,
            "target": spec.target,
            "asked_state": asked,
            "asked_value": float(at(month, "value")) if show_asked and _known(at(month, "value")) else None,
            "scale": scale,
            "scale_basis": basis,
            "wait_days": spec.complete_lag(self._options_of(spec, options)),
            "history_days": spec.history_days,
            "unfiltered": ", ".join(unfiltered),
            "missing": sources.EXPORTS[missing] if missing else "",
            "definition": at(reported or month, "definition") or spec.id,
            # why the month's value is missing (data the export cannot decide, a denominator that
            # is not positive, an export that ended) or over 100%: compute's note
            "note": note,
        }
        for name, months in (("previous", 1), ("year", 12)):
            base = add_months(reported, -months) if reported else None
            other = at(base, "shown") if base else None
            other = None if other is None or math.isnan(other) else float(other)
            change = value - other if value is not None and other is not None else None
            card[f"{name}_period"] = base
            card[f"{name}_value"] = other
            card[f"{name}_state"] = (at(base, "state") or "empty") if base else None
            card[f"change_{name}"] = change
            card[f"effect_{name}"] = _effect(change, spec.better, scale)
        change = card["change_previous"]
        card["move"] = abs(change) / scale if change is not None and scale else None
        card["gap"] = _gap(spec, value, scale)
        return card

    def _options_of(self, spec: KpiSpec, options: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
        return spec.resolve_options(
            ("[kpi_options]", self.config.kpi_options.get(spec.id)), ("options", (options or {}).get(spec.id))
        )

    def _driver_frames(
        self,
        asked: Mapping[str, tuple[date, date, Sequence[str], Mapping[str, tuple[Any, ...]]]],
        options: Mapping[str, Mapping[str, Any]] | None,
    ) -> dict[str, pd.DataFrame]:
        """kpi -> its rows by each driver dimension in both months, for every moving KPI at once.

        Why: one `compute_groupings` per set of KPIs that share the dimensions and the filters
        (most moves do), over the months of all of them, instead of one per KPI; each call has a
        fixed cost that a filter change on the Overview pays once per moving KPI otherwise. A KPI's
        rows are those it gets on its own: its two months only (a month's rows do not depend on the
        months asked with it), and the statements group every KPI of a branch by the same rows (a
        segment another KPI adds has no records of this one, so no driver is ever taken from it).
        A published snapshot keeps each KPI's rows (`_memo`, by its dimensions, filters and months):
        a KPI a filter cannot narrow (a payer on the phones' KPIs) asks the same rows under every
        payer as without a filter, and gets the kept ones; only the others are computed.
        """
        together: dict[tuple, list[str]] = {}
        for kpi, (_, _, dims, own) in asked.items():
            if dims:
                together.setdefault((tuple(dims), tuple(own.items())), []).append(kpi)
        out = {}
        for (dims, own), group in together.items():
            key = {k: ("driver rows", self.scope, repr(options), k, dims, own, *asked[k][:2]) for k in group}
            kept = {k: self._kept(key[k]) for k in group}
            kpis = [k for k in group if kept[k] is None]
            if kpis:
                frame = _plain(self.compute_groupings(
                    kpis, start=min(asked[k][0] for k in kpis), end=max(asked[k][1] for k in kpis),
                    groupings=[(d,) for d in dims], filters=dict(own) or None, options=options,
                ))  # fmt: skip
                by_kpi = dict(iter(frame.groupby("kpi_id", sort=False)))
                for kpi in kpis:  # a KPI without a row in either month gets none (the columns kept)
                    rows = by_kpi.get(kpi, frame.iloc[0:0])
                    months = pd.to_datetime([asked[kpi][0], asked[kpi][1]]).astype(rows["period_start"].dtype)
                    kept[kpi] = rows[rows["period_start"].isin(months)].reset_index(drop=True)
                    self._memo(key[kpi], lambda r=kept[kpi]: r)
            out.update(kept)
        return out

    def _drivers(
        self,
        spec: KpiSpec,
        before: date,
        after: date,
        change: float,
        dims: Sequence[str],
        frame: pd.DataFrame | None,
    ) -> tuple[str, tuple[Driver, ...], str]:
        """(dimension, drivers, note): the segments of one dimension that drove a move.

        Of the KPI's driver dimensions, the one whose largest same-direction segment carries the
        most of the move is used (the earlier on ties); segments must be facts in both months.
        `frame` is the KPI's rows by each of `dims` in both months (`_driver_frames`; None without dims).
        """
        if not dims or frame is None:
            return "", (), "No dimension left to split it by in this view."
        # plain columns, sliced by position: pandas' masks and frames cost more than the split itself
        starts = frame["period_start"].to_numpy()
        in_before, in_after = starts == np.datetime64(before), starts == np.datetime64(after)
        gids = frame["grouping_id"].to_numpy() if len(dims) > 1 else None
        n = frame["n"].to_numpy(dtype=float, na_value=np.nan)
        value = frame["value"].to_numpy(dtype=float, na_value=np.nan)
        numerator = frame["numerator"].to_numpy(dtype=float, na_value=np.nan)
        denominator = frame["denominator"].to_numpy(dtype=float, na_value=np.nan)
        best: tuple[float, str, list[tuple[Any, float]], dict[Any, float], dict[Any, float]] | None = None
        recorded, split_up = [], []
        for dim in dims:
            mine = gids == grouping_id((dim,), dims) if gids is not None else np.ones(len(frame), dtype=bool)
            segments = np.array(segments_of(frame[dim]), dtype=object)
            seen = {s for s in segments[mine & (n > 0)].tolist() if s is not None}
            if not seen:
                continue  # the source does not record it (calls carry no location)
            recorded.append(dim)
            if len(seen) < 2:
                continue  # one segment (a single queue) would "explain" every move
            split_up.append(dim)
            old, new = np.flatnonzero(mine & in_before), np.flatnonzero(mine & in_after)
            old_segments, new_segments = segments[old].tolist(), segments[new].tolist()
            small = self.scope.small_cells
            fact_old = _facts_by_segment(old_segments, value[old], n[old], numerator[old], spec, small)
            fact_new = _facts_by_segment(new_segments, value[new], n[new], numerator[new], spec, small)
            named = [s for s in fact_new if s in fact_old]
            if _decomposable(spec):
                contribution = contributions(
                    (old_segments, numerator[old], denominator[old]), (new_segments, numerator[new], denominator[new])
                )
                parts = [(s, contribution[s]) for s in named if s in contribution]
            else:
                parts = [(s, fact_new[s] - fact_old[s]) for s in named]
            parts = sorted((p for p in parts if p[1] != 0 and (p[1] > 0) == (change > 0)), key=lambda p: -abs(p[1]))
            if parts and (best is None or abs(parts[0][1]) > best[0] * (1 + 1e-9)):
                before_by = dict(zip(old_segments, value[old].tolist(), strict=True))
                after_by = dict(zip(new_segments, value[new].tolist(), strict=True))
                best = (abs(parts[0][1]), dim, parts, before_by, after_by)
        if not recorded:
            return "", (), f"The data do not record its {_either(dims)}."
        if not split_up:
            return "", (), f"One {_either(recorded)} only in this view: nothing to split it by."
        if best is None or (_decomposable(spec) and best[0] < STANDS_OUT * abs(change)):
            return "", (), f"No single {_either(recorded)} stands out."
        _, dim, parts, before_by, after_by = best
        labels = self.dimension_values(dim)
        label_of = dict(zip(labels["id"].astype(str), labels["label"], strict=True))
        drivers = []
        for segment, amount in parts[:MAX_DRIVERS]:
            v0, v1 = before_by[segment], after_by[segment]
            contribution = amount if _decomposable(spec) else None
            drivers.append(
                Driver(
                    dimension=dim,
                    segment=segment,
                    label=label_of.get(str(segment), str(segment)),
                    value_before=v0,
                    value_after=v1,
                    change=v1 - v0,
                    contribution=contribution,
                    share=contribution / change if contribution is not None else None,
                    outweighs=contribution is not None and abs(contribution) > abs(change) * (1 + 1e-9),
                )
            )
        return dim, tuple(drivers), ""


def findings(card: pd.DataFrame, costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The scorecard rows off target, then to watch, the most consequential first.

    Consequence is money where it is known: `costs` (`Warehouse.friction_costs` for the card's
    month and filters) prices a KPI's gap when its month is the one the card reports; those
    findings come first, costliest first, and the others follow by their gap to the target in the
    KPI's scale (`gap`). Every surface ranks with this one function. Adds `money` (a month's cost
    of the gap, NaN when unknown).
    """
    rank = {"off_target": 0, "watch": 1}
    out = card[card["status"].isin(list(rank))]
    money = pd.Series(np.nan, index=out.index, dtype=float)
    if costs is not None and len(costs):
        known = costs[costs["money"].notna()]
        priced = {
            (kpi, pd.Timestamp(period)): float(value)
            for kpi, period, value in zip(known["kpi_id"], known["period_start"], known["money"], strict=True)
        }
        for index, kpi, period in zip(out.index, out["kpi_id"], out["period_start"], strict=True):
            if not pd.isna(period):
                money[index] = priced.get((kpi, pd.Timestamp(period)), np.nan)
    out = out.assign(money=money, _rank=out["status"].map(rank), _priced=money.isna(), _order=range(len(out)))
    out = out.sort_values(
        ["_rank", "_priced", "money", "gap", "_order"],
        ascending=[True, True, False, False, True],
        na_position="last",
    )
    return out.drop(columns=["_rank", "_priced", "_order"]).reset_index(drop=True)


# -- the policy's small pieces ---------------------------------------------------------------------


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """A computed frame without its `attrs` (who answered), for work inside this module.

    Why: pandas deep-copies a frame's attrs into every frame derived from it; the scorecard and
    the movers slice their frames a few thousand times per call.
    """
    frame.attrs = {}
    return frame


def _either(dims: Sequence[str]) -> str:
    """`location`, `location or provider`, `location, provider or payer`."""
    words = [d.replace("_", " ") for d in dims]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _decomposable(spec: KpiSpec) -> bool:
    """Ratios and means split into segment contributions; medians and p90s do not."""
    return spec.kind != "aggregate" or spec.value.agg == "mean"


def _numerator_counts(spec: KpiSpec) -> bool:
    """Whether `spec`'s numerator counts records (the small-cell rule applies to it as to n)."""
    return spec.kind == "ratio" and spec.numerator is not None and spec.numerator.agg == "count"


def _facts_by_segment(
    segments: Sequence[Any],
    values: np.ndarray,
    ns: np.ndarray,
    numerators: np.ndarray,
    spec: KpiSpec,
    small_cells: bool,
) -> dict[Any, float]:
    """segment -> value, for the segments whose value is a fact (known, and not withheld when
    the scope withholds small cells); the columns of one period's rows by the segment's dimension.

    The rows with a value and records are found in arrays first: by provider at 10 M most of a
    period's 1,338 rows are an empty segment the completion added, and looking at each in Python
    took a tenth of the movers' split.
    """
    facts = ~np.isnan(values) & (ns != 0)
    if small_cells and spec.patient_records:
        facts &= ~privacy.withheld_rows(ns, numerators, _numerator_counts(spec))
    (rows,) = np.nonzero(facts)
    out = {}
    for i, value in zip(rows.tolist(), values[rows].tolist(), strict=True):
        if (segment := segments[i]) is not None:
            out[segment] = value
    return out


def _scale(
    spec: KpiSpec, table: Mapping[date, Mapping[str, Any]], reported: date | None
) -> tuple[float | None, str | None]:
    """The size of a meaningful move: the target-to-red band, else the XmR sigma of the year before."""
    if spec.target is not None and spec.red is not None and spec.red != spec.target:
        return abs(spec.red - spec.target), "band"
    if reported is None:
        return None, None
    months = [add_months(reported, -k) for k in range(VARIATION_MONTHS, 0, -1)]
    values = [table[m]["shown"] if m in table else np.nan for m in months]
    ranges = [abs(b - a) for a, b in itertools.pairwise(values) if _known(a) and _known(b)]
    if len(ranges) < 2:
        return None, None
    level = float(np.nanmean([abs(v) for v in values if _known(v)]))
    sigma = max(sum(ranges) / len(ranges) / XMR_D2, MIN_LEVEL_SHARE * level)
    return (sigma, "variation") if sigma > 0 else (None, None)


def _effect(change: float | None, better: str, scale: float | None) -> str | None:
    """better, worse or steady (a change under MIN_MOVE of the scale); None without a change."""
    if change is None:
        return None
    if change == 0 or (scale and abs(change) < MIN_MOVE * scale):
        return "steady"
    return "better" if (change > 0) == (better == "higher") else "worse"


def _gap(spec: KpiSpec, value: float | None, scale: float | None) -> float | None:
    """How far a value is on the wrong side of its target, in the KPI's scale (0 when on target)."""
    if value is None or spec.target is None or not scale:
        return None
    beyond = value - spec.target if spec.better == "lower" else spec.target - value
    return max(0.0, beyond / scale)


def _note(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _ended_note(table: Mapping[date, Mapping[str, Any]], month: date) -> str:
    """Why a KPI has no month to report: the last month with records, over a year before `month`."""
    recorded = [p for p, row in table.items() if row["n"] and p < month]
    if not recorded:
        return f"No records in the {FALLBACK_MONTHS + 12} months up to {period_text(month)}."
    return (
        f"No records after {period_text(max(recorded))}: nothing complete to report in the "
        f"{FALLBACK_MONTHS} months before {period_text(month)}."
    )


def _filter_groups(
    specs: Sequence[KpiSpec], resolved: Mapping[str, tuple[Any, ...]]
) -> dict[tuple[tuple[str, tuple[Any, ...]], ...], list[str]]:
    """The KPIs by the filters each honours (those of `resolved` among its dimensions), in order."""
    groups: dict[tuple[tuple[str, tuple[Any, ...]], ...], list[str]] = {}
    for spec in specs:
        groups.setdefault(tuple((d, v) for d, v in resolved.items() if d in spec.dimensions), []).append(spec.id)
    return groups


def _in_order(rows: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """The rows of `ids` in compute's order: by KPI as listed, then period."""
    rank = {kpi: i for i, kpi in enumerate(ids)}
    rows = rows[rows["kpi_id"].isin(ids)]
    order = np.lexsort([pd.to_datetime(rows["period_start"]).to_numpy(), rows["kpi_id"].map(rank).to_numpy()])
    return rows.iloc[order].reset_index(drop=True)
