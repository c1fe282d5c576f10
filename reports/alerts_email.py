"""Alert digests: one email per recipient and scope, each alert with its value, rule, chart and link.

The scopes and recipients are the report's (`[report] recipients`): `practice` gets every alert
(the whole practice, each location, provider and payer), a location id gets that location's
alerts only, so a location manager never sees another location's numbers. What is due for an
address (new alerts, and alerts a failed send left pending) comes from the kpis API
(`Warehouse.alerts_to_deliver`), which also records each delivery, so an alert goes to an address
once. The chart is the alert's KPI for its scope over the 13 periods ending with the alert's,
drawn as the report draws trends (PNG, inline), from `Warehouse.facts`: a period whose value is
not a fact (open, early, or withheld by the small-cell rule) is not plotted, as in the report.
Links open the dashboard page of the KPI's area with the alert's scope and months as its
filters (`[dashboard] url`).

    multipart/alternative
      text/plain                 the alerts, their rules and links
      multipart/related
        text/html                the same, charts referenced as cid:...
        image/png ...            one chart per alert
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go

from kpis import Warehouse
from kpis.config import Config
from kpis.formatting import value_text
from kpis.periods import add_months, previous_period
from kpis.scope import Scope as KpiScope
from kpis.spec import KpiSpec
from reports.charts import LINE, TARGET, ChartRenderer, small_chart_layout
from reports.message import sender_domain
from reports.render import environment, inline_css
from reports.settings import PRACTICE

TREND_PERIODS = 13
CHART_WIDTH, CHART_HEIGHT = 300, 150
RED = "#b03a2e"
# The dashboard page of each KPI area: Streamlit names a page's URL after its file (dashboards/views/).
PAGES = {d: d for d in ("access", "visit_flow", "phones", "revenue_cycle", "referrals_portal")}
INBOX_PAGE = "alerts"
# The dashboard's sidebar filters bound to the URL, by scope dimension (dashboards/filters.py).
URL_FILTERS = ("location", "provider", "payer")
_STATUS_NOTES = {
    "open": "",
    "acknowledged": "acknowledged on the dashboard, still firing",
    "cleared": "cleared since",
}


@dataclass(frozen=True)
class AlertItem:
    """One alert as an email shows it; every number is already written out."""

    alert_id: int | None  # None: a dry run's alert, not recorded
    kpi_id: str
    kpi_title: str
    scope_dimension: str | None
    scope_value: str | None
    scope_label: str
    rule_name: str
    rule_text: str
    condition: str
    grain: str
    period: date
    raw_value: float
    value: str  # with its unit
    message: str
    status: str  # open | acknowledged | cleared
    link: str | None
    chart_periods: tuple[date, ...]
    chart_values: tuple[float | None, ...]  # None: missing, withheld or not final
    target: float | None
    red: float | None
    unit: str
    fmt: str

    @property
    def cid(self) -> str:
        """The chart's Content-ID (before the @domain): one per alert, safe in a header."""
        key = f"{self.alert_id}|{self.rule_name}|{self.scope_dimension}|{self.scope_value}"
        return "alert-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]

    @property
    def status_note(self) -> str:
        return _STATUS_NOTES[self.status]


@dataclass(frozen=True)
class Digest:
    """The alerts one address gets for one scope."""

    practice_name: str
    scope: str  # "practice" or a location id: the [report] recipients key
    scope_label: str
    recipient: str
    items: tuple[AlertItem, ...]
    inbox_link: str | None
    generated_at: datetime
    domain: str  # the sender's domain, for Message-ID and the charts' Content-IDs
    images: dict[str, bytes] = field(default_factory=dict)  # cid -> PNG

    @property
    def subject(self) -> str:
        count = len(self.items)
        return f"{self.practice_name}: {count} KPI alert{'s' if count != 1 else ''} for {self.scope_label}"

    @property
    def blocks(self) -> tuple[tuple[AlertItem, ...], ...]:
        """The alerts grouped by KPI and scope (one chart each), in the order they come."""
        groups: dict[tuple[str, str | None, str | None, str], list[AlertItem]] = {}
        for item in self.items:
            groups.setdefault((item.kpi_id, item.scope_dimension, item.scope_value, item.grain), []).append(item)
        return tuple(tuple(items) for items in groups.values())

    @property
    def alert_ids(self) -> list[int]:
        return [item.alert_id for item in self.items if item.alert_id is not None]


def plan_digests(
    wh: Warehouse,
    recipients: Mapping[str, Sequence[str]],
    evaluation: Any = None,
    *,
    generated_at: datetime | None = None,
) -> list[Digest]:
    """The digest of every (scope, recipient) that has something due; none for those that do not.

    `recipients` maps a scope (practice, or a location id checked against the warehouse) to
    addresses, as `[report] recipients` does. An address listed under several scopes gets each
    alert once: scopes are served practice first, and what one digest carries is due no more.
    """
    from reports.context import resolve_scope

    now = generated_at or datetime.now(wh.config.tz)
    carried: dict[str, set[Any]] = {}
    digests = []
    for scope in sorted(recipients, key=lambda s: (s != PRACTICE, s)):
        where = None if scope == PRACTICE else resolve_scope(wh, scope)
        label = "the whole practice" if where is None else where.label
        # A location's digest reads through that location's scope, as its report does: small
        # cells withheld, no records, no other location's values (names in links included).
        view = wh if where is None else wh.narrowed(_location_scope(where.key, where.label))
        labels = {dim: _labels(view, dim) for dim in URL_FILTERS}
        specs = {spec.id: spec for spec in view.catalog()}
        months = _data_months(view)
        series: dict[tuple[str, str, str | None, str | None, date], pd.DataFrame] = {}
        for recipient in recipients[scope]:
            due = view.alerts_to_deliver(recipient, None if where is None else [where.key], evaluation)
            seen = carried.setdefault(recipient, set())
            due = due[[_key(row) not in seen for row in due.to_dict(orient="records")]]
            if due.empty:
                continue
            rows = due.to_dict(orient="records")
            items = tuple(_item(view, row, specs[row["kpi_id"]], labels, months, series) for row in rows)
            seen.update(_key(row) for row in due.to_dict(orient="records"))
            inbox = _inbox_link(wh.config, scope, labels)
            domain = sender_domain(wh.config.smtp.sender)
            key = PRACTICE if where is None else where.key
            digests.append(Digest(wh.config.practice_name, key, label, recipient, items, inbox, now, domain))
    return digests


def _location_scope(location: str, label: str) -> KpiScope:
    """What a location's recipients read: their location only, aggregates only, small cells withheld."""
    return KpiScope.of_locations([location], records=False, small_cells=True, label=label)


def draw_charts(digests: Sequence[Digest], renderer: ChartRenderer) -> list[Digest]:
    """The digests with a PNG chart per KPI and scope (drawn once, however many digests carry it)."""
    drawn: dict[str, bytes] = {}
    out = []
    for digest in digests:
        firsts = [block[0] for block in digest.blocks]
        for item in firsts:
            if item.cid not in drawn:
                drawn[item.cid] = renderer.render(alert_figure(item), "png")
        out.append(dataclasses.replace(digest, images={item.cid: drawn[item.cid] for item in firsts}))
    return out


def alert_figure(item: AlertItem) -> go.Figure:
    """The KPI for the alert's scope: a line, the target dashed, the red line dotted, the alert's period marked."""
    periods = [_short(p, item.grain) for p in item.chart_periods]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=periods,
            y=list(item.chart_values),
            mode="lines+markers",
            line={"color": LINE, "width": 2},
            marker={"size": [5] * (len(periods) - 1) + [9], "color": [LINE] * (len(periods) - 1) + [RED]},
            connectgaps=False,
            hoverinfo="skip",
        )
    )
    for level, style in ((item.target, {"color": TARGET, "width": 1.2, "dash": "dash"}), (item.red, None)):
        if level is None or (isinstance(level, float) and math.isnan(level)):
            continue
        line = style or {"color": RED, "width": 1.2, "dash": "dot"}
        fig.add_trace(go.Scatter(x=periods, y=[level] * len(periods), mode="lines", line=line, hoverinfo="skip"))
    return small_chart_layout(fig, item.unit, width=CHART_WIDTH, height=CHART_HEIGHT, font_size=9, ticks=5)


def render_text(digest: Digest) -> str:
    return environment().get_template("alerts.txt.j2").render(d=digest)


def render_html(digest: Digest) -> str:
    """The digest's HTML body, its styles on the elements (many mail clients drop a `<style>` block)."""
    return inline_css(environment().get_template("alerts.html.j2").render(d=digest))


def build_message(digest: Digest, *, sender: str) -> EmailMessage:
    """The digest as a MIME message to its one recipient, charts inline (cid)."""
    msg = EmailMessage()
    msg["Subject"] = digest.subject
    msg["From"] = sender
    msg["To"] = digest.recipient
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=digest.domain)
    msg.set_content(render_text(digest))
    msg.add_alternative(render_html(digest), subtype="html")
    html_part = msg.get_payload()[1]
    for cid, png in digest.images.items():
        cid_header = f"<{cid}@{digest.domain}>"
        html_part.add_related(png, maintype="image", subtype="png", cid=cid_header, disposition="inline")
    return msg


def dashboard_link(
    config: Config, item: Mapping[str, Any], labels: Mapping[str, Mapping[str, str]], first: date | None
) -> str | None:
    """The dashboard page of the KPI's area, filtered to the alert's scope and its 13 months.

    The sidebar's filters are bound to the URL by their labels (dashboards/filters.py), so the
    link carries the scope's label and the months as YYYY-MM.
    """
    if not config.dashboard_url or item["domain"] not in PAGES:
        return None
    period = _as_date(item["period_start"])
    start = add_months(period, -(TREND_PERIODS - 1))
    if first is not None:
        start = max(start, first)
    query: list[tuple[str, str]] = [("months", f"{start:%Y-%m}"), ("months", f"{period:%Y-%m}")]
    query.append(("grain", item["grain"]))
    dim = item["scope_dimension"]
    if isinstance(dim, str) and dim in URL_FILTERS:
        query.append((dim, labels[dim].get(str(item["scope_value"]), str(item["scope_value"]))))
    return f"{config.dashboard_url}/{PAGES[item['domain']]}?{urlencode(query)}"


# -- internals ----------------------------------------------------------------------------------------


def _key(row: Mapping[str, Any]) -> Any:
    return (
        row["alert_id"]
        if row["alert_id"] is not None and not pd.isna(row["alert_id"])
        else (row["rule_name"], row["scope_dimension"], row["scope_value"])
    )


def _item(
    wh: Warehouse,
    row: dict[str, Any],
    spec: KpiSpec,
    labels: Mapping[str, Mapping[str, str]],
    months: tuple[date | None, date | None],
    series: dict[tuple, pd.DataFrame],
) -> AlertItem:
    period = _as_date(row["period_start"])
    periods, values = _trend(wh, row, period, series)
    alert_id = row["alert_id"]
    return AlertItem(
        alert_id=None if alert_id is None or pd.isna(alert_id) else int(alert_id),
        kpi_id=row["kpi_id"],
        kpi_title=row["kpi_title"],
        scope_dimension=row["scope_dimension"] if isinstance(row["scope_dimension"], str) else None,
        scope_value=row["scope_value"] if isinstance(row["scope_value"], str) else None,
        scope_label=row["scope_label"],
        rule_name=row["rule_name"],
        rule_text=row["rule_text"],
        condition=row["condition"],
        grain=row["grain"],
        period=period,
        raw_value=float(row["value"]),
        value=value_text(row["value"], spec),
        message=row["message"],
        status=row["status"],
        link=dashboard_link(wh.config, row, labels, months[0]),
        chart_periods=periods,
        chart_values=values,
        target=_number(row["target"]),
        red=_number(row["red"]),
        unit=row["unit"],
        fmt=row["fmt"],
    )


def _trend(
    wh: Warehouse, row: Mapping[str, Any], period: date, series: dict[tuple, pd.DataFrame]
) -> tuple[tuple[date, ...], tuple[float | None, ...]]:
    """The KPI for the alert's scope over the periods ending with the alert's: the facts only
    (`Warehouse.facts`, the report's policy), None where a value is open, early or withheld."""
    dim, value = row["scope_dimension"], row["scope_value"]
    dim, value = (dim, value) if isinstance(dim, str) else (None, None)
    key = (row["kpi_id"], row["grain"], dim, value, period)
    if key not in series:
        start = period
        for _ in range(TREND_PERIODS - 1):
            start = previous_period(start, row["grain"])
        filters = {dim: value} if dim else None
        series[key] = wh.facts(row["kpi_id"], start=start, end=period, grain=row["grain"], filters=filters)
    frame = series[key]
    periods = tuple(p.date() for p in frame["period_start"])
    values = tuple(None if pd.isna(v) else float(v) for v in frame["shown"])
    return periods, values


def _inbox_link(config: Config, scope: str, labels: Mapping[str, Mapping[str, str]]) -> str | None:
    if not config.dashboard_url:
        return None
    if scope == PRACTICE:
        return f"{config.dashboard_url}/{INBOX_PAGE}"
    return f"{config.dashboard_url}/{INBOX_PAGE}?{urlencode([('location', labels['location'].get(scope, scope))])}"


def _labels(wh: Warehouse, dimension: str) -> dict[str, str]:
    """id -> the label the dashboard's filter shows (and binds to the URL): equal labels get their id."""
    values = wh.dimension_values(dimension)
    ids, names = values["id"].astype(str).tolist(), values["label"].astype(str).tolist()
    repeated = {name for name in names if names.count(name) > 1}
    return {i: f"{name} ({i})" if name in repeated else name for i, name in zip(ids, names, strict=True)}


def _data_months(wh: Warehouse) -> tuple[date | None, date | None]:
    coverage = wh.coverage()
    if coverage.empty:
        return None, None
    return coverage["period_start"].min().date().replace(day=1), coverage["period_start"].max().date().replace(day=1)


def _as_date(value: Any) -> date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, datetime):
        return value.date()
    return value


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _short(day: date, grain: str) -> str:
    if grain == "week":
        return f"{day.day} {day:%b}"
    if grain == "quarter":
        return f"Q{(day.month - 1) // 3 + 1} {day:%y}"
    return day.strftime("%b %y")
