"""The improvement loop on a warehouse: KPI series as control charts, and what each logged change did.

`ImprovementMethods` is mixed into `Warehouse`. It turns `compute` results into the inputs of
`kpis.spc` (only complete periods count) and the results back into frames and plain words, so
the dashboard, the report and the notebooks ask for a chart's limits and a change's verdict
instead of computing them. The money side (friction costs) is `kpis.costs`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pandas as pd

from kpis import spc
from kpis.changes import Change, ChangeLogMethods, scope_filters
from kpis.costs import friction_costs
from kpis.formatting import format_value
from kpis.periods import check_grain, next_period
from kpis.spec import KpiSpec

HISTORY_YEARS = 3  # default look-back of a chart: enough baseline before most changes


class ImprovementMethods(ChangeLogMethods):
    """spc, change_effects and friction_costs (plus the change log of ChangeLogMethods)."""

    def spc(
        self,
        kpi: str,
        filters: Mapping[str, Any] | None = None,
        grain: str = "month",
        start: Any = None,
        end: Any = None,
        changes: Sequence[Change | int] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> pd.DataFrame:
        """One KPI as a control chart with phases: the series with limits, signals and phase centres.

        `changes=None` uses the logged changes that target `kpi` with exactly `filters` as their
        scope; pass a list of changes (or ids) to choose, or [] for none. Each change starts a
        phase; a phase's points are judged against limits frozen on the phase before it.
        Columns: period_start, value, numerator, denominator, n, complete, included (complete,
        with a value, and not the period a change fell inside), phase, change_id, centre, lcl,
        ucl (the limits the point is judged by), phase_centre (its own phase's centre),
        outside (beyond the limits), in_run (part of a signalling run), signal.
        `attrs`: kpi_id, chart, chart_name, grain, filters, phases, effects (see change_effects).
        """
        spec = self._spec(kpi)
        check_grain(grain)
        frame = self._series(spec, filters, grain, start, end, options)
        chosen = self._changes_for(spec, filters, changes)
        words = self._scope_words(self._with_scope_locations(filters))
        return _chart(spec, frame, grain, chosen, dict(filters or {}), words)

    def change_effects(
        self, change_ids: Sequence[int] | None = None, grain: str = "month", end: Any = None
    ) -> pd.DataFrame:
        """What each logged change did, per change and KPI: centres before/after, chart, rules, verdict.

        Columns: change_id, title, date, kpi_id, kpi_title, scope, scope_label, where (the scope
        in words: "at Eastside", "" for the practice), chart, chart_name, status (signal,
        no_signal, too_early, no_baseline, no_data), signal (bool), signal_since (the first
        period whose data made it a signal, or NaT), rules (list of shewhart, long_run,
        few_crossings), direction (down, up or None), better (bool or None), n_before, n_after,
        centre_before, centre_after, lcl, ucl, points_below, points_above, fmt, verdict (a
        sentence). `end` judges the changes on the periods up to it (a report for an earlier
        month); by default on every period loaded.
        """
        wanted = None if change_ids is None else {int(i) for i in change_ids}
        current = [c for c in self._current() if not c.removed]
        groups: dict[tuple[str, tuple[str, ...]], list[Change]] = {}
        for change in current:
            for kpi in change.kpis:
                groups.setdefault((kpi, tuple(change.scope_items)), []).append(change)
        rows = []
        for (kpi, _), members in groups.items():
            if wanted is not None and not any(c.change_id in wanted for c in members):
                continue
            filters = scope_filters(members[0].scope)
            chart = self.spc(kpi, filters=filters, grain=grain, end=end, changes=members)
            for effect in chart.attrs["effects"]:
                if wanted is None or effect["change_id"] in wanted:
                    rows.append({**effect, "scope": {d: list(v) for d, v in members[0].scope.items()}})
        columns = [
            "change_id", "title", "date", "kpi_id", "kpi_title", "scope", "scope_label", "where", "chart",
            "chart_name", "status", "signal", "signal_since", "rules", "direction", "better", "n_before", "n_after",
            "centre_before", "centre_after", "lcl", "ucl", "points_below", "points_above", "fmt", "verdict",
        ]  # fmt: skip
        frame = pd.DataFrame(rows, columns=columns)
        frame["date"] = pd.to_datetime(frame["date"])
        frame["signal_since"] = pd.to_datetime(frame["signal_since"])
        return frame.sort_values(["date", "change_id", "kpi_id"]).reset_index(drop=True)

    def changes_for(self, kpi: str, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """The logged changes `spc(kpi, filters)` starts its phases at (rows of `changes()`), by date.

        A change counts when it targets `kpi` and its scope is exactly `filters`: a chart can ask
        whether it has phases to show without drawing them.
        """
        ids = [c.change_id for c in self._changes_for(self._spec(kpi), filters, None)]
        log = self.changes()
        return log[log["change_id"].isin(ids)].reset_index(drop=True)

    def friction_costs(self, period: Any = None, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """What each KPI's gap to target costs per month, ranked; see `kpis.costs.friction_costs`."""
        return friction_costs(self, period, self._with_scope_locations(filters))

    # -- internals ----------------------------------------------------------------------------

    def _series(self, spec: KpiSpec, filters, grain: str, start: Any, end: Any, options) -> pd.DataFrame:
        if start is None:
            last = self.data_end() or date.today()
            start = date(last.year - HISTORY_YEARS, last.month, 1)
        return self.compute(spec.id, start=start, end=end, grain=grain, filters=filters, options=options)

    def _changes_for(self, spec: KpiSpec, filters, changes) -> list[Change]:
        if changes is not None:
            chosen = [c if isinstance(c, Change) else self.change(int(c)) for c in changes]
        else:
            wanted = _normalized(self.resolve_filters(filters))  # a location by name is the same scope
            chosen = [
                c
                for c in self._current()
                if not c.removed and spec.id in c.kpis and _normalized(scope_filters(c.scope)) == wanted
            ]
        return sorted(chosen, key=lambda c: (c.date, c.change_id))

    def _with_scope_locations(self, filters: Mapping[str, Any] | None) -> dict[str, Any]:
        """`filters` with the scope's locations when they name none: what the numbers are of."""
        out = dict(filters or {})
        if self.scope.locations is not None and "location" not in out:
            out["location"] = sorted(self.scope.locations)
        return out

    def _scope_words(self, filters: Mapping[str, Any]) -> str:
        """ "at Eastside", "for Dr A and Dr B", "" for the practice: how a verdict names its scope."""
        parts = []
        for dim, values in filters.items():
            values = values if isinstance(values, list | tuple | set) else [values]
            if dim == "new_patient":
                parts.append("for " + " and ".join("new patients" if v else "established patients" for v in values))
                continue
            labels = self.dimension_values(dim).set_index(self.dimension_values(dim)["id"].astype(str))["label"]
            names = " and ".join(str(labels.get(str(v), v)) for v in values)
            parts.append(f"at {names}" if dim == "location" else f"for {dim.replace('_', ' ')} {names}")
        return " ".join(parts)


def _normalized(filters: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    out = {}
    for dim, values in filters.items():
        values = values if isinstance(values, list | tuple | set | frozenset) else [values]
        out[dim] = frozenset(str(v).lower() if isinstance(v, bool) else str(v) for v in values)
    return out


def kpi_kind(spec: KpiSpec) -> spc.Kind:
    """proportion (a count over a count, in percent), rate (a count per unit) or measure (the rest)."""
    counts = (
        spec.kind == "ratio"
        and spec.numerator is not None
        and spec.denominator is not None
        and spec.numerator.agg == "count"
        and spec.denominator.agg == "count"
    )
    if counts and spec.unit == "percent":
        return "proportion"
    if counts and spec.unit == "count":
        return "rate"
    return "measure"


def _chart(
    spec: KpiSpec,
    frame: pd.DataFrame,
    grain: str,
    changes: list[Change],
    filters: dict[str, Any],
    scope_words: str,
) -> pd.DataFrame:
    out = frame[["period_start", "value", "numerator", "denominator", "n", "complete"]].copy()
    has_data = (out["n"] > 0).to_numpy()
    first = int(has_data.argmax()) if has_data.any() else len(out)
    out = out.iloc[first:].reset_index(drop=True)  # periods before the first data are not a process
    starts = out["period_start"].dt.date
    out["included"] = out["complete"].astype(bool) & out["value"].notna()
    out["phase"] = 0
    out["change_id"] = pd.array([None] * len(out), dtype="Int64")
    for k, change in enumerate(changes, start=1):
        after = starts >= change.date
        out.loc[after, "phase"] = k
        out.loc[after, "change_id"] = change.change_id
        inside = (starts < change.date) & (starts.map(lambda s: next_period(s, grain)) > change.date)
        out.loc[inside, "included"] = False  # the period the change fell inside is neither before nor after
        out.loc[inside, "phase"] = k
        out.loc[inside, "change_id"] = change.change_id
    kind = kpi_kind(spec)
    dens = out.loc[out["included"], "denominator"].tolist() if kind != "measure" else []
    chart = spc.choose_chart(kind, dens)
    ratio = chart != "i"
    for column in ("centre", "lcl", "ucl", "phase_centre"):
        out[column] = math.nan
    out["outside"] = False
    out["in_run"] = False
    phases, effects = [], []
    for k in range(len(changes) + 1):
        mine = out["phase"] == k
        own = out[mine & out["included"]]
        fitted = spc.fit(chart, own["value"], own["numerator"], own["denominator"])
        ref = fitted
        if k > 0:
            prev = out[(out["phase"] == k - 1) & out["included"]]
            ref = spc.fit(chart, prev["value"], prev["numerator"], prev["denominator"])
        out.loc[mine, "phase_centre"] = fitted.centre
        out.loc[mine, "centre"] = ref.centre
        if ref.n_points >= (spc.MIN_BASELINE if k > 0 else 1) and not math.isnan(ref.centre):
            lcl, ucl = ref.limits(out.loc[mine, "denominator"].to_numpy() if ratio else [0.0] * int(mine.sum()))
            out.loc[mine, "lcl"] = lcl
            out.loc[mine, "ucl"] = ucl
            judged = mine & out["included"]
            out.loc[judged, "outside"] = (out.loc[judged, "value"] < out.loc[judged, "lcl"]) | (
                out.loc[judged, "value"] > out.loc[judged, "ucl"]
            )
            analysis = spc.runs(out.loc[judged, "value"].to_numpy(), ref.centre)
            out.loc[judged, "in_run"] = list(analysis.in_long_run)
        phase = {"phase": k, "centre": fitted.centre, "n_points": len(own), "first": None, "last": None}
        if len(own):
            phase.update(first=own["period_start"].min().date(), last=own["period_start"].max().date())
        if k > 0:
            change = changes[k - 1]
            phase.update(change_id=change.change_id, title=change.title, date=change.date)
            before = out[(out["phase"] == k - 1) & out["included"]]
            effect = spc.evaluate(
                chart, before["value"], own["value"], before["numerator"], before["denominator"],
                own["numerator"], own["denominator"],
            )  # fmt: skip
            row = _effect_row(spec, change, effect, grain, scope_words)
            row["signal_since"] = _signal_since(chart, before, own) if effect.signal else None
            effects.append(row)
        phases.append(phase)
    out["signal"] = out["outside"] | out["in_run"]
    out.attrs.update(
        kpi_id=spec.id,
        chart=chart,
        chart_name=spc.CHART_NAMES[chart],
        grain=grain,
        filters=filters,
        fmt=spec.fmt,
        phases=phases,
        effects=effects,
    )
    return out


_GRAIN_WORDS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}


def _effect_row(spec: KpiSpec, change: Change, effect: spc.Effect, grain: str, scope_words: str) -> dict[str, Any]:
    direction = effect.direction
    better = None if direction is None else (direction == "down") == (spec.better == "lower")
    runs = effect.runs
    return {
        "change_id": change.change_id,
        "title": change.title,
        "date": change.date,
        "kpi_id": spec.id,
        "kpi_title": spec.title,
        "scope_label": "; ".join(change.scope_items) or "practice",
        "where": scope_words,
        "chart": effect.chart,
        "chart_name": spc.CHART_NAMES[effect.chart],
        "status": effect.status,
        "signal": effect.signal,
        "rules": list(effect.rules),
        "direction": direction,
        "better": better,
        "n_before": effect.n_baseline,
        "n_after": effect.n_after,
        "centre_before": _float(effect.centre_before),
        "centre_after": _float(effect.centre_after),
        "lcl": _float(effect.lcl),
        "ucl": _float(effect.ucl),
        "points_below": runs.below if runs else None,
        "points_above": runs.above if runs else None,
        "fmt": spec.fmt,
        "verdict": verdict(spec, change, effect, grain, scope_words),
    }


def _signal_since(chart: str, before: pd.DataFrame, after: pd.DataFrame) -> date | None:
    """The first after-period whose data made the change a signal: the judgement of each prefix of
    the periods after the change, as it read when that period was the last one (a run grows into
    a signal; the later points do not move that day back)."""
    for k in range(1, len(after) + 1):
        seen = after.iloc[:k]
        effect = spc.evaluate(
            chart, before["value"], seen["value"], before["numerator"], before["denominator"],
            seen["numerator"], seen["denominator"],
        )  # fmt: skip
        if effect.signal:
            return seen["period_start"].iloc[-1].date()
    return None


def _float(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def verdict(spec: KpiSpec, change: Change, effect: spc.Effect, grain: str, scope_words: str = "") -> str:
    """The effect of a change in plain words, e.g. "Since Reminder texts (1 Mar 2025), no-show rate
    at Eastside shifted down: 7 of 8 months below the baseline centre (8.9% → 6.1%) — a signal"."""
    unit = _GRAIN_WORDS[grain]
    since = f"{change.title} ({_day(change.date)})"
    what = " ".join(p for p in (spec.title[0].lower() + spec.title[1:], scope_words) if p)
    before, after = format_value(effect.centre_before, spec.fmt), format_value(effect.centre_after, spec.fmt)
    if effect.status == "no_data":
        return f"No complete {unit} of {what} since {since} yet."
    if effect.status == "no_baseline":
        return (
            f"Not enough history before {since}: {_count(effect.n_baseline, unit)} of {what}; "
            f"limits need at least {spc.MIN_BASELINE}."
        )
    if effect.status == "too_early":
        return (
            f"No signal yet for {what}: {_count(effect.n_after, unit)} after {since}; "
            f"a sustained shift needs {effect.min_points} points to show."
        )
    if effect.status == "no_signal":
        return (
            f"Since {since}, {what}: no signal — {_count(effect.n_after, unit)} within the baseline's "
            f"common-cause variation ({before} → {after})."
        )
    direction = effect.direction
    judgement = ""
    if direction is not None:
        judgement = ", better" if (direction == "down") == (spec.better == "lower") else ", worse"
    runs = effect.runs
    if runs is not None and (runs.long_run or runs.few_crossings) and direction is not None:
        side = runs.below if direction == "down" else runs.above
        where = "below" if direction == "down" else "above"
        evidence = f"{side} of {runs.n_useful} {unit}s {where} the baseline centre"
    else:
        outside = effect.outside_low + effect.outside_high
        evidence = f"{_count(outside, unit)} beyond the baseline's 3-sigma limits"
    moved = f"shifted {direction}" if direction else "changed"
    return f"Since {since}, {what} {moved}: {evidence} ({before} → {after}) — a signal{judgement}."


def _day(d: date) -> str:
    return f"{d.day} {d:%b %Y}"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")
