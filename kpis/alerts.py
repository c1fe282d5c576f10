"""Alerts: a KPI crossing its red line, staying off target, changing sharply or showing an SPC signal.

A **rule** (config `[[alerts]]`, or one of the defaults) names a KPI, a scope and a condition:

* `red_line`: the value is beyond the KPI's red line (`status` off_target);
* `off_target`: the value missed the target (`status` watch or off_target) `periods` complete
  periods in a row (default 3);
* `change`: the value moved by more than `points` (percentage points for a percent KPI, else the
  KPI's unit) or `percent` (relative) since the period before, in the `direction` asked;
* `spc_signal`: the period's point on the KPI's control chart (`Warehouse.spc`, with the change
  log's phases) is a special-cause signal, in the `direction` asked.

`direction` is worse (default), better or either. A scope item is `practice`, `locations`,
`providers` or `payers` (each one separately) or `location=EAST`, `provider=NPI`, `payer=ID`.

**Defaults**: every headline KPI with a red line gets `<kpi>.red_line`, and with a target
`<kpi>.off_target` (3 periods), for the practice and each location, monthly; a `[[alerts]]`
table with a default's name changes or (`enabled = false`) turns it off.

**Evaluation** judges, for each rule and scope value, only its latest complete period, and only
when its value is a fact by the policy every surface follows (`Warehouse.facts`: complete, its
look-back covered, not withheld by the small-cell rule), so an alert never rests on, or shows, a
value a report would withhold. The state machine per (rule, scope value): an alert is raised
when the rule fires and none is open, stays open (quiet) while it keeps firing, clears on the
first judged period it does not fire, and the next firing raises a new alert. Every recorded
evaluation and what it raised and cleared is kept (tables in kpis/schema/006_alerts.sql); so is
each alert's delivery to each recipient address, which `reports/` records through
`record_delivery`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pandas as pd

from kpis.config import ALERT_SCOPES, AlertRuleSettings, Config
from kpis.errors import ClinicKpisError, ConfigError
from kpis.formatting import change_text, month_text, value_text
from kpis.periods import period_floor, previous_period
from kpis.scope import AccessDenied, Scope
from kpis.spec import KpiSpec

if TYPE_CHECKING:
    import duckdb

DEFAULT_PERIODS = 3
DEFAULT_SCOPE = ("practice", "locations")
WINDOW = 13  # periods read for a rule, at least (more when `periods` asks for more)
_GRAIN_WORDS = {"week": "week", "month": "month", "quarter": "quarter"}


class AlertError(ClinicKpisError):
    """An alert cannot be found or changed as asked."""


@dataclass(frozen=True)
class AlertRule:
    """One rule in force: a default, a config rule, or a default changed by the config."""

    name: str
    kpi: str
    condition: str  # red_line | off_target | change | spc_signal
    scope: tuple[str, ...] = DEFAULT_SCOPE
    grain: str = "month"
    periods: int = DEFAULT_PERIODS  # off_target only
    points: float | None = None  # change only: absolute threshold (percentage points for percent KPIs)
    percent: float | None = None  # change only: relative threshold, in percent
    direction: str = "worse"  # change and spc_signal
    default: bool = False
    where: str = "default rules"

    def text(self, spec: KpiSpec) -> str:
        """The rule in words, e.g. "No-show rate above its red line (10.0%), monthly"."""
        title = spec.title
        unit = _GRAIN_WORDS[self.grain]
        if self.condition == "red_line":
            side = "above" if spec.better == "lower" else "below"
            words = f"{title} {side} its red line ({value_text(spec.red, spec)})"
        elif self.condition == "off_target":
            words = f"{title} off target ({value_text(spec.target, spec)}) {self.periods} {unit}s in a row"
        elif self.condition == "change":
            if self.points is not None:
                size = f"{self.points:g} {'points' if spec.unit == 'percent' else spec.unit}"
            else:
                size = f"{self.percent:g}%"
            words = f"{title} changes by more than {size} from one {unit} to the next ({self.direction})"
        else:
            words = f"{title} shows a special-cause signal on its control chart ({self.direction})"
        return f"{words}, {unit}ly"


@dataclass(frozen=True)
class Finding:
    """What one rule says about one scope value in its latest complete period."""

    rule: AlertRule
    dimension: str | None  # None: the whole practice
    scope_value: str | None
    period: date | None  # None: nothing to judge (no complete period with enough records)
    fired: bool = False
    value: float | None = None
    n: int = 0
    reference: float | None = None
    message: str = ""

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.rule.name, self.dimension, self.scope_value)


@dataclass(frozen=True)
class AlertEvaluation:
    """One run of the rules: what they found, and the alerts it raised and cleared.

    `raised` has the columns of `Warehouse.alerts()`; when the run was not recorded (a dry run),
    its `alert_id`s are None. `evaluation_id` is None then too.
    """

    evaluation_id: int | None
    findings: tuple[Finding, ...]
    raised: pd.DataFrame
    cleared: tuple[int, ...]
    data_end: date | None

    @property
    def judged(self) -> int:
        return sum(1 for f in self.findings if f.period is not None)


# -- rules ----------------------------------------------------------------------------------------


def default_rules(specs: Mapping[str, KpiSpec]) -> list[AlertRule]:
    """`<kpi>.red_line` and `<kpi>.off_target` for every headline KPI that has a red line / target."""
    rules = []
    for spec in specs.values():
        if not spec.headline:
            continue
        if spec.red is not None:
            rules.append(AlertRule(f"{spec.id}.red_line", spec.id, "red_line", default=True))
        if spec.target is not None:
            rules.append(AlertRule(f"{spec.id}.off_target", spec.id, "off_target", default=True))
    return rules


def rules_in_force(config: Config, specs: Mapping[str, KpiSpec]) -> list[AlertRule]:
    """The defaults, changed or turned off by `[[alerts]]`, then the config's own rules, each checked.

    A mistake raises a ConfigError naming the config file, the `[[alerts]]` table and the field.
    """
    rules = {rule.name: rule for rule in default_rules(specs)}
    for settings in config.alerts:
        if settings.name is not None and settings.name in rules and rules[settings.name].default:
            base = rules[settings.name]
        elif settings.kpi is None or settings.condition is None:
            close = difflib.get_close_matches(settings.name or "", list(rules), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(
                f"{settings.where}: no default rule is named {settings.name!r}{hint}; a new rule needs a kpi and a "
                "condition"
            )
        else:
            base = None
        rule = _merged(settings, base)
        if not settings.enabled:
            rules.pop(rule.name, None)
            continue
        _check_rule(rule, specs)
        rules[rule.name] = rule
    return list(rules.values())


def _merged(settings: AlertRuleSettings, base: AlertRule | None) -> AlertRule:
    fields = {
        key: getattr(settings, key)
        for key in ("kpi", "condition", "scope", "grain", "periods", "points", "percent", "direction")
        if getattr(settings, key) is not None
    }
    if base is not None:
        return dataclasses.replace(base, **fields, default=True, where=settings.where)
    name = settings.name or f"{settings.kpi}.{settings.condition}"
    return AlertRule(name=name, where=settings.where, **fields)


def _check_rule(rule: AlertRule, specs: Mapping[str, KpiSpec]) -> None:
    where = rule.where
    if rule.kpi not in specs:
        close = difflib.get_close_matches(rule.kpi, list(specs), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{where}: unknown KPI {rule.kpi!r}{hint}")
    spec = specs[rule.kpi]
    if rule.condition == "red_line" and spec.red is None:
        raise ConfigError(f"{where}: {rule.kpi} has no red line; set one in [targets] or use another condition")
    if rule.condition == "off_target" and spec.target is None:
        raise ConfigError(f"{where}: {rule.kpi} has no target; set one in [targets] or use another condition")
    if rule.condition == "change":
        if (rule.points is None) == (rule.percent is None):
            raise ConfigError(f"{where}: a change rule needs either points or percent (the size of the change)")
    elif rule.points is not None or rule.percent is not None:
        raise ConfigError(f"{where}: points and percent belong to the change condition, not {rule.condition}")
    for item in rule.scope:
        dim = ALERT_SCOPES.get(item, item.partition("=")[0])
        if dim is not None and dim not in spec.dimensions:
            raise ConfigError(
                f"{where}: scope {item}: {rule.kpi} cannot be broken down by {dim} (it allows "
                f"{', '.join(spec.dimensions)})"
            )


def scope_label(dimension: str | None, value: str | None, labels: Mapping[str, str]) -> str:
    """ "Whole practice", "Eastside (EAST)", "Dr. Ada Park": a scope as a person reads it."""
    if dimension is None:
        return "Whole practice"
    name = labels.get(str(value), str(value))
    return f"{name} ({value})" if name != value and dimension == "location" else name


# -- the methods of Warehouse -----------------------------------------------------------------------


class AlertMethods:
    """alert_rules, check_alert_rules, evaluate_alerts, alerts, acknowledge_alert, deliveries."""

    # Provided by Warehouse: config, scope, cursor(), transaction(), _specs, compute, spc, data_end,
    # dimension_values, _scope_words (KpiMethods and ImprovementMethods come first in its bases).
    # A scope limited to some locations (kpis.scope) sees the alerts of those locations only and
    # writes none but an acknowledgement of one of them; the evaluation and delivery state are
    # the practice's.
    config: Config
    scope: Scope

    def alert_rules(self) -> list[AlertRule]:
        """The rules in force: the defaults changed by the config's `[[alerts]]`, and its own rules."""
        return rules_in_force(self.config, self._specs)

    def check_alert_rules(self) -> list[AlertRule]:
        """`alert_rules()`, with every scope value checked against the warehouse.

        Run before anything is evaluated (`clinic-kpis init`, `alerts check`): a typo in a location
        id fails at once, naming the rule. A dimension the warehouse knows no value of yet (no
        data loaded) cannot be checked, and is checked again next time. The rules name every
        location's values: a limited scope cannot check them.
        """
        self.scope.require_practice("checking the alert rules")
        rules = self.alert_rules()
        known: dict[str, list[str]] = {}
        for rule in rules:
            for item in rule.scope:
                dim, sep, value = item.partition("=")
                if not sep:
                    continue
                if dim not in known:
                    known[dim] = [str(v) for v in self.dimension_values(dim)["id"]]
                if known[dim] and value not in known[dim]:
                    same = [k for k in known[dim] if k.lower() == value.lower()]
                    hint = f" (did you mean {same[0]}?)" if same else ""
                    shown = ", ".join(known[dim][:12]) + (" ..." if len(known[dim]) > 12 else "")
                    raise ConfigError(
                        f"{rule.where}: scope {item}: no such {dim} in the warehouse{hint}; known: {shown}"
                    )
        return rules

    def evaluate_alerts(self, *, record: bool = True, trigger: str = "alerts check") -> AlertEvaluation:
        """Judge every rule on its latest complete period and move each alert's state on.

        With `record` (a read-write warehouse), the evaluation, the alerts it raised and cleared
        and their events are written in one transaction. Without it nothing is written: the
        result says what a recorded run would raise and clear (a dry run).
        """
        self.scope.require_practice("evaluating the alert rules")  # it clears what it cannot see
        started = datetime.now(UTC)
        rules = self.check_alert_rules()
        findings = self._findings(rules)
        open_now = self._open_alerts()
        by_key = {f.key: f for f in findings}
        names = {rule.name for rule in rules}
        raise_these = [f for f in findings if f.fired and f.key not in open_now]
        clear_these = []
        for key, alert_id in open_now.items():
            finding = by_key.get(key)
            if key[0] not in names or finding is None:  # the rule, or this scope value of it, is gone
                clear_these.append((alert_id, None, "rule_removed"))
            elif finding.period is not None and not finding.fired:
                clear_these.append((alert_id, finding, "recovered"))
        still_firing = [(open_now[f.key], f) for f in findings if f.fired and f.key in open_now]
        data_end = self.data_end()
        if not record:
            raised = self._as_alert_rows([(None, f, started) for f in raise_these])
            return AlertEvaluation(None, tuple(findings), raised, tuple(a for a, _, _ in clear_these), data_end)
        with self.transaction(kpi_data=False) as cur:
            evaluation_id = _next_id(cur, "alert_evaluations", "evaluation_id")
            first_alert = _next_id(cur, "alerts", "alert_id")
            new = [(first_alert + i, f, started) for i, f in enumerate(raise_these)]
            for alert_id, finding, at in new:
                _insert_alert(cur, alert_id, finding, self._specs[finding.rule.kpi], at, evaluation_id)
            for alert_id, finding in still_firing:
                cur.execute(
                    "UPDATE alerts SET last_period = greatest(last_period, ?) WHERE alert_id = ?",
                    [finding.period, alert_id],
                )
            for alert_id, finding, reason in clear_these:
                period = finding.period if finding is not None else None
                value = finding.value if finding is not None else None
                cur.execute(
                    "UPDATE alerts SET cleared_at = ?, cleared_by = ?, cleared_period = ?, cleared_reason = ? "
                    "WHERE alert_id = ?",
                    [started, evaluation_id, period, reason, alert_id],
                )
                cur.execute(
                    "INSERT INTO alert_events (alert_id, event, event_at, evaluation_id, period_start, value) "
                    "VALUES (?, 'cleared', ?, ?, ?, ?)",
                    [alert_id, started, evaluation_id, period, value],
                )
            still_open = len(open_now) - len(clear_these) + len(new)
            cur.execute(
                "INSERT INTO alert_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    evaluation_id, started, datetime.now(UTC), trigger, data_end, len(rules), len(findings),
                    sum(1 for f in findings if f.period is not None), len(new), len(clear_these), still_open,
                ],
            )  # fmt: skip
        raised = self.alerts(ids=[alert_id for alert_id, _, _ in new])
        return AlertEvaluation(evaluation_id, tuple(findings), raised, tuple(a for a, _, _ in clear_these), data_end)

    def alerts(
        self,
        status: str | Sequence[str] | None = None,
        locations: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """The alert inbox, newest first: one row per alert with its state and what it says.

        `status`: open (not acknowledged), acknowledged (still firing), cleared, or a list of them.
        `locations`: only the alerts scoped to these locations (a location manager's view). A
        limited scope gets its own locations' alerts whatever `locations` says.
        Columns: alert_id, status, rule_name, rule_text, condition, kpi_id, kpi_title, domain,
        unit, fmt, grain, scope_dimension, scope_value, scope_label, period_start, value, n,
        reference, target, red, message, raised_at, last_period, acknowledged_at,
        acknowledged_by, cleared_at, cleared_period, cleared_reason.
        """
        wanted = [status] if isinstance(status, str) else list(status or [])
        unknown = sorted(set(wanted) - {"open", "acknowledged", "cleared"})
        if unknown:
            raise AlertError(f"unknown alert status {unknown[0]!r}; use open, acknowledged or cleared")
        if self.scope.locations is not None:
            mine = self.scope.locations
            locations = sorted(mine if locations is None else mine & {str(v) for v in locations})
        where, params = [], []
        if ids is not None:
            where.append(f"alert_id IN ({', '.join('?' for _ in ids) or 'NULL'})")
            params += [int(i) for i in ids]
        if locations is not None:
            where.append(
                f"scope_dimension = 'location' AND scope_value IN ({', '.join('?' for _ in locations) or 'NULL'})"
            )
            params += [str(v) for v in locations]
        sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.cursor().execute(sql + " ORDER BY raised_at DESC, alert_id DESC", params).df()
        frame = self._decorate(rows)
        if wanted:
            frame = frame[frame["status"].isin(wanted)].reset_index(drop=True)
        return frame

    def acknowledge_alert(self, alert_id: int, by: str | None = None) -> None:
        """Mark an open alert as seen (it stays in the inbox, acknowledged, until it clears).

        A limited scope may acknowledge its own locations' alerts only.
        """
        if self.scope.limited and self.alerts(ids=[int(alert_id)]).empty:
            raise AccessDenied(f"alert {alert_id} is not one of {self.scope.locations_text()}'s alerts")
        row = (
            self.cursor()
            .execute("SELECT cleared_at, acknowledged_at FROM alerts WHERE alert_id = ?", [int(alert_id)])
            .fetchone()
        )
        if row is None:
            raise AlertError(f"no alert with id {alert_id}")
        if row[0] is not None:
            raise AlertError(f"alert {alert_id} has cleared; there is nothing to acknowledge")
        if row[1] is not None:
            return
        now = datetime.now(UTC)
        who = (by or "").strip() or None
        with self.transaction(kpi_data=False) as cur:
            cur.execute(
                "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ? WHERE alert_id = ?",
                [now, who, int(alert_id)],
            )
            cur.execute(
                "INSERT INTO alert_events (alert_id, event, event_at, actor) VALUES (?, 'acknowledged', ?, ?)",
                [int(alert_id), now, who],
            )

    def alert_events(self, alert_id: int | None = None) -> pd.DataFrame:
        """Every state change (raised, cleared, acknowledged), oldest first (of the scope's alerts)."""
        where, params = ("WHERE alert_id = ?", [int(alert_id)]) if alert_id is not None else ("", [])
        sql = f"SELECT * FROM alert_events {where} ORDER BY event_at, alert_id"
        frame = self.cursor().execute(sql, params).df()
        if self.scope.limited:
            frame = frame[frame["alert_id"].isin(self.alerts()["alert_id"])].reset_index(drop=True)
        return frame

    def alert_evaluations(self) -> pd.DataFrame:
        """Every recorded evaluation, newest first: when, on which data, rules, raised, cleared, open.

        The counts are the practice's: a limited scope gets when each ran and on which data only.
        """
        columns = "evaluation_id, started_at, finished_at, trigger, data_end" if self.scope.limited else "*"
        return self.cursor().execute(f"SELECT {columns} FROM alert_evaluations ORDER BY evaluation_id DESC").df()

    # -- delivery -------------------------------------------------------------------------------

    def alerts_to_deliver(
        self, recipient: str, locations: Sequence[str] | None = None, evaluation: AlertEvaluation | None = None
    ) -> pd.DataFrame:
        """The alerts an email to `recipient` must carry: in scope, and not yet sent to that address.

        That is every alert still firing (open or acknowledged) and every alert a failed send left
        pending for this address (even if it has cleared since: a pending alert is never lost).
        `locations` limits them to those locations' alerts (a location manager's digest); None
        means every alert (the practice's). A dry run's `evaluation` adds what it would raise.
        """
        frame = self.alerts(locations=locations)
        sent = (
            self.cursor()
            .execute("SELECT alert_id, status FROM alert_deliveries WHERE recipient = ?", [recipient])
            .fetchall()
        )
        done = {a for a, s in sent if s == "sent"}
        pending = {a for a, s in sent if s == "pending"}
        due = frame[~frame["alert_id"].isin(done) & ((frame["status"] != "cleared") | frame["alert_id"].isin(pending))]
        if evaluation is not None and evaluation.evaluation_id is None and len(evaluation.raised):
            extra = evaluation.raised
            if locations is not None:
                mine = (extra["scope_dimension"] == "location") & extra["scope_value"].isin(list(locations))
                extra = extra[mine]
            due = pd.concat([extra, due], ignore_index=True) if len(due) else extra.reset_index(drop=True)
        return due.reset_index(drop=True)

    def record_delivery(
        self,
        alert_ids: Sequence[int],
        recipient: str,
        scope: str,
        *,
        sent: bool,
        attempts: int = 1,
        error: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """Record an email carrying these alerts to `recipient`: sent, or pending (with the last error).

        Call it with `sent=False, attempts=0` before the first attempt, so that an alert is pending
        for that address even if the process dies mid-send; then once more with the outcome.
        """
        self.scope.require_practice("the alerts' delivery state")
        now = datetime.now(UTC)
        with self.transaction(kpi_data=False) as cur:
            for alert_id in alert_ids:
                cur.execute(
                    "INSERT INTO alert_deliveries (alert_id, recipient, scope, status, attempts, last_attempt_at, "
                    "last_error, sent_at, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (alert_id, recipient) DO UPDATE SET status = excluded.status, "
                    "attempts = alert_deliveries.attempts + excluded.attempts, "
                    "last_attempt_at = coalesce(excluded.last_attempt_at, alert_deliveries.last_attempt_at), "
                    "last_error = CASE WHEN excluded.status = 'sent' THEN NULL "
                    "ELSE coalesce(excluded.last_error, alert_deliveries.last_error) END, "
                    "sent_at = excluded.sent_at, message_id = excluded.message_id",
                    [
                        int(alert_id), recipient, scope, "sent" if sent else "pending", int(attempts),
                        now if attempts else None, None if sent else error, now if sent else None,
                        message_id if sent else None,
                    ],
                )  # fmt: skip

    def alert_deliveries(self) -> pd.DataFrame:
        """Every alert's delivery state per recipient address (pending or sent, attempts, last error)."""
        self.scope.require_practice("the alerts' delivery state")
        return self.cursor().execute("SELECT * FROM alert_deliveries ORDER BY alert_id, recipient").df()

    # -- internals ------------------------------------------------------------------------------

    def _open_alerts(self) -> dict[tuple[str, str | None, str | None], int]:
        """(rule, scope dimension, scope value) -> the id of its open alert."""
        sql = "SELECT rule_name, scope_dimension, scope_value, alert_id FROM alerts WHERE cleared_at IS NULL"
        return {(r[0], r[1], r[2]): int(r[3]) for r in self.cursor().execute(sql).fetchall()}

    def _findings(self, rules: Sequence[AlertRule]) -> list[Finding]:
        """Each rule x scope value judged on its latest complete period."""
        values = {dim: [str(v) for v in self.dimension_values(dim)["id"]] for dim in ("location", "provider", "payer")}
        instances: list[tuple[AlertRule, str | None, str | None]] = []
        for rule in rules:
            for item in rule.scope:
                if item == "practice":
                    instances.append((rule, None, None))
                elif item in ALERT_SCOPES:
                    dim = ALERT_SCOPES[item]
                    instances += [(rule, dim, v) for v in values[dim]]
                else:
                    dim, _, value = item.partition("=")
                    instances.append((rule, dim, value))
        instances = list(dict.fromkeys(instances))
        last = self.data_end()
        if last is None:
            return [Finding(rule, dim, value, None) for rule, dim, value in instances]
        series = self._rule_series(instances, last)
        labels = {dim: self._labels(dim) for dim in ("location", "provider", "payer")}
        findings = []
        for rule, dim, value in instances:
            spec = self._specs[rule.kpi]
            where = _scope_words(dim, value, labels.get(dim or "", {}))
            rows = series.get((rule.kpi, rule.grain, dim, value))
            if rule.condition == "spc_signal":
                findings.append(self._spc_finding(rule, spec, dim, value, rows, where))
            else:
                findings.append(_judge(rule, spec, dim, value, rows, where))
        return findings

    def _rule_series(
        self, instances: Sequence[tuple[AlertRule, str | None, str | None]], last: date
    ) -> dict[tuple[str, str, str | None, str | None], pd.DataFrame]:
        """One `facts` per grain and dimension for every KPI that needs it; rows per (kpi, grain, dim, value).

        `facts` is `compute` judged by the comparison policy: its `state` says whether a period's
        value is a fact (final) or still open, early (look-back not covered), withheld or empty.
        """
        wanted: dict[tuple[str, str | None], set[str]] = {}
        length: dict[str, int] = {}
        for rule, dim, _ in instances:
            wanted.setdefault((rule.grain, dim), set()).add(rule.kpi)
            length[rule.grain] = max(length.get(rule.grain, WINDOW), rule.periods + 2)
        out = {}
        for (grain, dim), kpis in wanted.items():
            end = period_floor(last, grain)
            start = end
            for _ in range(length[grain] - 1):
                start = previous_period(start, grain)
            ordered = [k for k in self._specs if k in kpis]
            frame = self.facts(ordered, start=start, end=end, grain=grain, by=dim)
            keys = ["kpi_id", dim] if dim else ["kpi_id"]
            for key, rows in frame.groupby(keys, sort=False, dropna=False):
                key = key if isinstance(key, tuple) else (key,)
                value = str(key[1]) if dim else None
                out[(key[0], grain, dim, value)] = rows.sort_values("period_start").reset_index(drop=True)
        return out

    def _spc_finding(
        self, rule: AlertRule, spec: KpiSpec, dim: str | None, value: str | None, rows: pd.DataFrame | None, where: str
    ) -> Finding:
        latest = _latest_fact(rows)
        if latest is None:
            return Finding(rule, dim, value, None)
        chart = self.spc(rule.kpi, filters={dim: value} if dim else None, grain=rule.grain)
        points = chart[chart["period_start"] == latest["period_start"]]
        if points.empty:
            return Finding(rule, dim, value, None)
        point = points.iloc[0]
        period = point["period_start"].date()
        if not bool(point["included"]) or math.isnan(point["centre"]):
            return Finding(rule, dim, value, None)
        v, centre = float(point["value"]), float(point["centre"])
        side = "up" if v > centre else "down" if v < centre else None
        fired = bool(point["signal"]) and side is not None and _wanted(side, rule.direction, spec)
        what, when, chart_name = _what(spec, where), _period_words(period, rule.grain), chart.attrs["chart_name"]
        if bool(point["signal"]) and bool(point["outside"]):
            reference = float(point["ucl"] if side == "up" else point["lcl"])
            limit = "above the upper" if side == "up" else "below the lower"
            evidence = f"{limit} control limit of its {chart_name} ({value_text(reference, spec)})"
        elif bool(point["signal"]):
            reference = centre
            run = _ordinal(_run_length(chart, point))
            evidence = f"the {run} {_GRAIN_WORDS[rule.grain]} in a row {'above' if side == 'up' else 'below'} "
            evidence += f"the centre line of its {chart_name} ({value_text(centre, spec)})"
        else:
            reference = centre
            evidence = f"within the common-cause variation of its {chart_name} (centre {value_text(centre, spec)})"
        message = f"{what} was {value_text(v, spec)} in {when}, {evidence}"
        message += f": a special-cause signal, {_better_or_worse(side, spec)}." if bool(point["signal"]) else "."
        return Finding(rule, dim, value, period, fired, v, int(point["n"]), reference, _capital(message))

    def _labels(self, dimension: str) -> dict[str, str]:
        values = self.dimension_values(dimension)
        return dict(zip(values["id"].astype(str), values["label"].astype(str), strict=True))

    def _as_alert_rows(self, items: Sequence[tuple[int | None, Finding, datetime]]) -> pd.DataFrame:
        rows = []
        for alert_id, f, at in items:
            spec = self._specs[f.rule.kpi]
            rows.append(
                {
                    "alert_id": alert_id,
                    "rule_name": f.rule.name,
                    "kpi_id": f.rule.kpi,
                    "condition": f.rule.condition,
                    "rule_text": f.rule.text(spec),
                    "grain": f.rule.grain,
                    "scope_dimension": f.dimension,
                    "scope_value": f.scope_value,
                    "period_start": f.period,
                    "value": f.value,
                    "n": f.n,
                    "reference": f.reference,
                    "target": spec.target,
                    "red": spec.red,
                    "message": f.message,
                    "raised_at": at,
                    "raised_by": None,
                    "last_period": f.period,
                    "acknowledged_at": None,
                    "acknowledged_by": None,
                    "cleared_at": None,
                    "cleared_by": None,
                    "cleared_period": None,
                    "cleared_reason": None,
                }
            )
        return self._decorate(pd.DataFrame(rows, columns=_ALERT_COLUMNS))

    def _decorate(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Stored alert rows with their status, KPI title and format, and scope label."""
        frame = rows.copy()
        specs = self._specs
        cleared = frame["cleared_at"].notna()
        acknowledged = frame["acknowledged_at"].notna()
        frame["status"] = [
            "cleared" if c else "acknowledged" if a else "open" for c, a in zip(cleared, acknowledged, strict=True)
        ]
        frame["kpi_title"] = [specs[k].title if k in specs else k for k in frame["kpi_id"]]
        frame["domain"] = [specs[k].domain if k in specs else None for k in frame["kpi_id"]]
        frame["unit"] = [specs[k].unit if k in specs else None for k in frame["kpi_id"]]
        frame["fmt"] = [specs[k].fmt if k in specs else "num1" for k in frame["kpi_id"]]
        labels = {dim: self._labels(dim) for dim in set(frame["scope_dimension"].dropna())}
        frame["scope_label"] = [
            scope_label(d if isinstance(d, str) else None, v, labels.get(d, {}))
            for d, v in zip(frame["scope_dimension"], frame["scope_value"], strict=True)
        ]
        for column in ("period_start", "last_period", "cleared_period"):
            frame[column] = pd.to_datetime(frame[column])
        return frame[_PUBLIC_COLUMNS].reset_index(drop=True)


_ALERT_COLUMNS = [
    "alert_id", "rule_name", "kpi_id", "condition", "rule_text", "grain", "scope_dimension", "scope_value",
    "period_start", "value", "n", "reference", "target", "red", "message", "raised_at", "raised_by",
    "last_period", "acknowledged_at", "acknowledged_by", "cleared_at", "cleared_by", "cleared_period",
    "cleared_reason",
]  # fmt: skip
_PUBLIC_COLUMNS = [
    "alert_id", "status", "rule_name", "rule_text", "condition", "kpi_id", "kpi_title", "domain", "unit", "fmt",
    "grain", "scope_dimension", "scope_value", "scope_label", "period_start", "value", "n", "reference", "target",
    "red", "message", "raised_at", "last_period", "acknowledged_at", "acknowledged_by", "cleared_at",
    "cleared_period", "cleared_reason",
]  # fmt: skip


# -- judging one rule on one series ------------------------------------------------------------------


def _judge(
    rule: AlertRule, spec: KpiSpec, dim: str | None, value: str | None, rows: pd.DataFrame | None, where: str
) -> Finding:
    """red_line, off_target or change on the latest complete period of one scope value's series."""
    latest = _latest_fact(rows)
    if latest is None:
        return Finding(rule, dim, value, None)
    period = latest["period_start"].date()
    v, n = float(latest["value"]), int(latest["n"])
    what, when = _what(spec, where), _period_words(period, rule.grain)
    if rule.condition == "red_line":
        fired = latest["status"] == "off_target"
        side = ("above" if spec.better == "lower" else "below") if fired else "within"
        message = f"{what} was {value_text(v, spec)} in {when}, {side} its red line of {value_text(spec.red, spec)}"
        message += f" (target {value_text(spec.target, spec)})." if spec.target is not None else "."
        return Finding(rule, dim, value, period, bool(fired), v, n, spec.red, _capital(message))
    if rule.condition == "off_target":
        run = _last_periods(rows, period, rule.periods, rule.grain)
        fired = run is not None and all(s in ("watch", "off_target") for s in run["status"])
        shown = ", ".join(value_text(x, spec) for x in (run["value"] if run is not None else [v]))
        first = _period_words(run["period_start"].iloc[0].date(), rule.grain) if run is not None else when
        unit = _GRAIN_WORDS[rule.grain]
        message = (
            f"{what} has missed its target of {value_text(spec.target, spec)} {rule.periods} {unit}s in a row, "
            f"{first} to {when}: {shown}."
        )
        if not fired:
            message = f"{what} was {value_text(v, spec)} in {when} (target {value_text(spec.target, spec)})."
        return Finding(rule, dim, value, period, bool(fired), v, n, spec.target, _capital(message))
    before = _last_periods(rows, period, 2, rule.grain)
    if before is None:
        return Finding(rule, dim, value, None)
    previous = float(before["value"].iloc[0])
    delta = v - previous
    if rule.points is not None:
        size = abs(delta) * (100 if spec.unit == "percent" else 1)
        big = size > rule.points
    else:
        big = previous != 0 and abs(delta) / abs(previous) * 100 > rule.percent
    side = "up" if delta > 0 else "down" if delta < 0 else None
    fired = big and side is not None and _wanted(side, rule.direction, spec)
    verb = "rose" if side == "up" else "fell" if side == "down" else "held"
    size_text = change_text(delta, spec, words=True)
    message = (
        f"{what} {verb} {size_text} in {when}, from {value_text(previous, spec)} to {value_text(v, spec)} "
        f"({_better_or_worse(side, spec) if side else 'steady'})."
    )
    return Finding(rule, dim, value, period, bool(fired), v, n, previous, _capital(message))


def _latest_fact(rows: pd.DataFrame | None) -> pd.Series | None:
    """The latest complete period with data, if its value is a fact (else nothing to judge).

    A latest period that is withheld (small cell) or early (look-back not covered) is not skipped
    for an older one: the rule waits until a period it may judge comes.
    """
    if rows is None:
        return None
    done = rows[~rows["state"].isin(["open", "empty", "no_source"])]
    if done.empty or done.iloc[-1]["state"] != "final":
        return None
    return done.iloc[-1]


def _last_periods(rows: pd.DataFrame, period: date, count: int, grain: str) -> pd.DataFrame | None:
    """The `count` consecutive periods ending with `period`, if the value of each is a fact."""
    starts = [period]
    for _ in range(count - 1):
        starts.insert(0, previous_period(starts[0], grain))
    by_start = rows.set_index(rows["period_start"].dt.date)
    if not all(s in by_start.index for s in starts):
        return None
    run = by_start.loc[starts]
    ok = run["state"] == "final"
    return run.reset_index(drop=True) if bool(ok.all()) else None


def _wanted(side: str, direction: str, spec: KpiSpec) -> bool:
    if direction == "either":
        return True
    worse = (side == "up") == (spec.better == "lower")
    return worse if direction == "worse" else not worse


def _better_or_worse(side: str | None, spec: KpiSpec) -> str:
    if side is None:
        return "steady"
    return "worse" if (side == "up") == (spec.better == "lower") else "better"


def _run_length(chart: pd.DataFrame, point: pd.Series) -> int:
    """How many judged points of its phase in a row, up to this one, lie on its side of the centre line."""
    mine = chart["included"].astype(bool) & (chart["phase"] == point["phase"])
    judged = chart[mine & (chart["period_start"] <= point["period_start"])]
    above = point["value"] > point["centre"]
    count = 0
    for value, centre in zip(reversed(judged["value"].tolist()), reversed(judged["centre"].tolist()), strict=True):
        if value == centre or (value > centre) != above:
            break
        count += 1
    return count


def _scope_words(dimension: str | None, value: str | None, labels: Mapping[str, str]) -> str:
    """ "at Eastside", "for Dr. Ada Park", "for payer Aetna", "" for the practice: how a sentence names a scope."""
    if dimension is None:
        return ""
    name = labels.get(str(value), str(value))
    return {"location": f"at {name}", "provider": f"for {name}"}.get(dimension, f"for {dimension} {name}")


def _what(spec: KpiSpec, where: str) -> str:
    return " ".join(p for p in (spec.title, where) if p)


def _period_words(start: date, grain: str) -> str:
    if grain == "week":
        return f"the week of {start.day} {start:%b %Y}"
    if grain == "quarter":
        return f"Q{(start.month - 1) // 3 + 1} {start.year}"
    return month_text(start)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _next_id(cur: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    return int(cur.execute(f"SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}").fetchone()[0])


def _insert_alert(
    cur: duckdb.DuckDBPyConnection, alert_id: int, f: Finding, spec: KpiSpec, at: datetime, evaluation_id: int
) -> None:
    cur.execute(
        "INSERT INTO alerts (alert_id, rule_name, kpi_id, condition, rule_text, grain, scope_dimension, scope_value, "
        "period_start, value, n, reference, target, red, message, raised_at, raised_by, last_period) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            alert_id, f.rule.name, f.rule.kpi, f.rule.condition, f.rule.text(spec), f.rule.grain, f.dimension,
            f.scope_value, f.period, f.value, f.n, f.reference, spec.target, spec.red, f.message, at,
            evaluation_id, f.period,
        ],
    )  # fmt: skip
    cur.execute(
        "INSERT INTO alert_events (alert_id, event, event_at, evaluation_id, period_start, value) "
        "VALUES (?, 'raised', ?, ?, ?, ?)",
        [alert_id, at, evaluation_id, f.period, f.value],
    )
