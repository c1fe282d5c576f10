"""Statistical process control over KPI series: is a move a signal or noise, and did a change work?

Pure functions over numbers (no warehouse, no SQL), so the dashboard, the report, alerts and
notebooks share one implementation through `Warehouse.spc` and `Warehouse.change_effects`.

* **Run-chart rules** (Anhøj & Olesen 2014, PLoS ONE 9(11): e113825): a run longer than
  round(log2(n) + 3) points on one side of the centre line, or fewer crossings of it than the
  lower 5% quantile of Binomial(n - 1, 0.5), where n counts the points not on the line.
* **Control charts** (Shewhart's 3-sigma rule): P for proportions, Laney's P' when subgroups are
  large (Laney 2002, Quality Engineering 14(4): 531-537), U and U' for rates per unit, and the
  I chart (XmR: centre +/- 2.66 x average moving range) for means, medians and days.
* **Phases**: limits are computed on a baseline (the points before a change) and frozen; the
  points after the change are judged against them: any point beyond the limits, or a run or too
  few crossings around the baseline centre, is a signal.

Why written here rather than taken from a library: the Python packages evaluated
(pyqicharts 2.0.0, clinical-qikit 0.5.0) do not reproduce the published Anhøj critical
values (their longest-run limits use ceil/floor instead of rounding, and pyqicharts' crossings
limit is one lower than qbinom's), which `tests/kpis/test_spc.py` checks; the math is small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CHART_NAMES = {
    "p": "P chart",
    "pp": "Laney P′ chart",
    "u": "U chart",
    "up": "Laney U′ chart",
    "i": "I chart (XmR)",
}
# Mean subgroup size from which proportions and rates get Laney's prime chart: with subgroups
# of a thousand or more, real processes are rarely binomial/Poisson enough for P and U limits
# (the qicharts2 vignette, "Prime charts for count data with very large sample sizes").
LARGE_SUBGROUP = 1000
D2 = 1.128  # d2 for moving ranges of two points: sigma = average moving range / d2
MIN_BASELINE = 5  # fewer baseline points give limits too unstable to judge a change by

Kind = str  # "proportion" | "rate" | "measure"


@dataclass(frozen=True)
class Runs:
    """The Anhøj run-chart analysis of a sequence around a centre line."""

    n_useful: int  # points not on the centre line
    longest_run: int
    longest_run_max: int  # a longer run is a signal
    crossings: int
    crossings_min: int  # fewer crossings are a signal
    below: int
    above: int
    in_long_run: tuple[bool, ...] = field(default=(), repr=False)  # per input point

    @property
    def long_run(self) -> bool:
        return self.n_useful > 0 and self.longest_run > self.longest_run_max

    @property
    def few_crossings(self) -> bool:
        return self.n_useful > 1 and self.crossings < self.crossings_min

    @property
    def signal(self) -> bool:
        return self.long_run or self.few_crossings


def runs_limits(n: int) -> tuple[int, int]:
    """(longest-run upper limit, crossings lower limit) for `n` useful points (Anhøj & Olesen 2014).

    The longest-run limit is round(log2(n) + 3) (never a tie: log2 of an integer is either an
    integer or irrational); the crossings limit is qbinom(0.05, n - 1, 0.5), the smallest k with
    P(X <= k) >= 5%, computed exactly in integers.
    """
    if n < 1:
        return 0, 0
    trials = n - 1
    cumulative, k = 0, 0
    while True:
        cumulative += math.comb(trials, k)
        if 20 * cumulative >= 2**trials:  # cumulative / 2**trials >= 0.05
            break
        k += 1
    return round(math.log2(n) + 3), k


def runs(values: Sequence[float], centre: float | Sequence[float]) -> Runs:
    """Runs and crossings of `values` around `centre` (NaN and points on the line are skipped)."""
    y = np.asarray(values, dtype=float)
    cl = np.broadcast_to(np.asarray(centre, dtype=float), y.shape)
    useful = [(i, y[i] > cl[i]) for i in range(len(y)) if not np.isnan(y[i]) and y[i] != cl[i]]
    limit, minimum = runs_limits(len(useful))
    marks = [False] * len(y)
    longest = crossings = 0
    start = 0
    for j in range(1, len(useful) + 1):
        if j == len(useful) or useful[j][1] != useful[start][1]:
            length = j - start
            longest = max(longest, length)
            if length > limit:
                for k in range(start, j):
                    marks[useful[k][0]] = True
            if j < len(useful):
                crossings += 1
            start = j
    above = sum(1 for _, up in useful if up)
    return Runs(len(useful), longest, limit, crossings, minimum, len(useful) - above, above, tuple(marks))


@dataclass(frozen=True)
class Baseline:
    """A chart's centre and spread, fitted on baseline points and frozen for the points after."""

    chart: str
    centre: float
    sigma: float  # I chart: process sigma; P/U: 1, the per-point sigma comes from the subgroup size
    sigma_z: float = 1.0  # Laney's between-subgroup factor (1 for P and U)
    n_points: int = 0

    def limits(self, denominators: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lcl, ucl) per point; P and U limits depend on each point's subgroup size."""
        if self.chart == "i":
            n = 1 if denominators is None else len(denominators)
            return np.full(n, self.centre - 3 * self.sigma), np.full(n, self.centre + 3 * self.sigma)
        den = np.asarray(denominators, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.chart in ("p", "pp"):
                within = np.sqrt(self.centre * (1 - self.centre) / den)
            else:
                within = np.sqrt(self.centre / den)
        spread = 3 * within * self.sigma_z
        lcl = np.maximum(self.centre - spread, 0.0)
        ucl = self.centre + spread
        if self.chart in ("p", "pp"):
            ucl = np.minimum(ucl, 1.0)
        return lcl, ucl


def choose_chart(kind: Kind, denominators: Sequence[float] = ()) -> str:
    """The control chart for a KPI kind: P/P' for proportions, U/U' for rates, I for the rest."""
    if kind == "measure":
        return "i"
    if kind not in ("proportion", "rate"):
        raise ValueError(f"unknown KPI kind {kind!r}; use proportion, rate or measure")
    den = [d for d in denominators if d and not math.isnan(d)]
    large = bool(den) and sum(den) / len(den) >= LARGE_SUBGROUP
    return {"proportion": ("pp" if large else "p"), "rate": ("up" if large else "u")}[kind]


def fit(chart: str, values: Sequence[float], numerators=None, denominators=None) -> Baseline:
    """Fit a chart's centre and spread on baseline points (NaN points are left out).

    I chart: centre = mean, sigma = average moving range / 1.128 (limits = centre +/- 2.66 MR-bar).
    P and U: centre = sum of numerators / sum of denominators (a ratio of sums, never a mean
    of ratios). P' and U' (Laney 2002) multiply the within-subgroup sigma by sigma_z, the average
    moving range of the points' z-scores divided by 1.128.
    """
    if chart not in CHART_NAMES:
        raise ValueError(f"unknown chart {chart!r}; use one of {', '.join(CHART_NAMES)}")
    y = np.asarray(values, dtype=float)
    keep = ~np.isnan(y)
    if chart == "i":
        y = y[keep]
        if len(y) == 0:
            return Baseline(chart, math.nan, math.nan)
        mr = np.abs(np.diff(y))
        sigma = float(mr.mean() / D2) if len(mr) else math.nan
        return Baseline(chart, float(y.mean()), sigma, n_points=len(y))
    num = np.asarray(numerators, dtype=float)[keep]
    den = np.asarray(denominators, dtype=float)[keep]
    if len(den) == 0 or den.sum() <= 0:
        return Baseline(chart, math.nan, 1.0)
    centre = float(num.sum() / den.sum())
    sigma_z = 1.0
    if chart in ("pp", "up"):
        within = np.sqrt(centre * (1 - centre) / den) if chart == "pp" else np.sqrt(centre / den)
        z = (num / den - centre) / within
        sigma_z = float(np.abs(np.diff(z)).mean() / D2) if len(z) > 1 else 1.0
    return Baseline(chart, centre, 1.0, sigma_z, n_points=len(den))


@dataclass(frozen=True)
class Effect:
    """What happened after a change, judged against the frozen baseline before it."""

    chart: str
    status: str  # signal | no_signal | too_early | no_baseline | no_data
    n_baseline: int
    n_after: int
    centre_before: float
    centre_after: float
    lcl: float  # the baseline limits at the after points' mean subgroup size
    ucl: float
    outside_low: int  # after points below the lower limit
    outside_high: int
    runs: Runs | None
    min_points: int  # after points a sustained shift needs before the run rule can fire

    @property
    def rules(self) -> tuple[str, ...]:
        """The rules that fired: shewhart (a point beyond 3 sigma), long_run, few_crossings."""
        fired = []
        if self.outside_low or self.outside_high:
            fired.append("shewhart")
        if self.runs is not None and self.runs.long_run:
            fired.append("long_run")
        if self.runs is not None and self.runs.few_crossings:
            fired.append("few_crossings")
        return tuple(fired)

    @property
    def signal(self) -> bool:
        return self.status == "signal"

    @property
    def direction(self) -> str | None:
        """down or up: the side the after points went to, when a rule fired (None otherwise)."""
        if not self.signal:
            return None
        shifted = self.runs is not None and (self.runs.long_run or self.runs.few_crossings)
        if shifted and self.runs.below != self.runs.above:
            return "down" if self.runs.below > self.runs.above else "up"
        if self.outside_low != self.outside_high:
            return "down" if self.outside_low > self.outside_high else "up"
        if math.isnan(self.centre_after) or self.centre_after == self.centre_before:
            return None
        return "down" if self.centre_after < self.centre_before else "up"


def min_points_for_run() -> int:
    """The fewest points whose run all on one side beats the longest-run limit (7)."""
    n = 1
    while n <= runs_limits(n)[0]:
        n += 1
    return n


def evaluate(
    chart: str,
    before: Sequence[float],
    after: Sequence[float],
    before_num: Sequence[float] | None = None,
    before_den: Sequence[float] | None = None,
    after_num: Sequence[float] | None = None,
    after_den: Sequence[float] | None = None,
) -> Effect:
    """Judge the points after a change against limits frozen on the points before it.

    Signals: any after point beyond the baseline's 3-sigma limits (Shewhart), or, around the
    baseline centre, a run longer or fewer crossings than the Anhøj limits for the number of
    after points. Too few after points for the run rule and no point beyond the limits is
    "too early", not "no signal".
    """
    b = np.asarray(before, dtype=float)
    a = np.asarray(after, dtype=float)
    b_keep, a_keep = ~np.isnan(b), ~np.isnan(a)
    n_before, n_after = int(b_keep.sum()), int(a_keep.sum())
    need = min_points_for_run()
    ratio = chart != "i"
    base = fit(chart, b, before_num, before_den) if n_before else Baseline(chart, math.nan, math.nan)
    if ratio and n_after:
        an, ad = np.asarray(after_num, dtype=float)[a_keep], np.asarray(after_den, dtype=float)[a_keep]
        centre_after = float(an.sum() / ad.sum()) if ad.sum() > 0 else math.nan
    else:
        centre_after = float(a[a_keep].mean()) if n_after else math.nan
    if n_after == 0 or n_before < MIN_BASELINE or math.isnan(base.centre):
        status = "no_data" if n_after == 0 else "no_baseline"
        return Effect(chart, status, n_before, n_after, base.centre, centre_after, math.nan, math.nan, 0, 0, None, need)
    den = np.asarray(after_den, dtype=float)[a_keep] if ratio else None
    lcl, ucl = base.limits(den if ratio else [0.0] * n_after)
    y = a[a_keep]
    low, high = int((y < lcl).sum()), int((y > ucl).sum())
    analysis = runs(y, base.centre)
    mean_den = [float(den.mean())] if ratio else None
    lcl_at, ucl_at = base.limits(mean_den)
    fired = low or high or analysis.signal
    status = "signal" if fired else ("too_early" if n_after < need else "no_signal")
    return Effect(
        chart,
        status,
        n_before,
        n_after,
        base.centre,
        centre_after,
        float(lcl_at[0]),
        float(ucl_at[0]),
        low,
        high,
        analysis,
        need,
    )
