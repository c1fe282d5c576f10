"""Plotly figures for the dashboard, with one colour per KPI status and one per segment everywhere.

Colours come from `kpis.palette` (the report's too): status colours are fixed, and a segment (a
location, a payer) gets its colour from its position in that dimension's full list of values, so
EAST is the same colour on every page whatever the filters. Hover text always carries the numerator, denominator
and n, so a manager can see how many records a rate rests on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from dashboards.formatting import axis_title, segment_label, tick_format, tick_step
from kpis.formatting import STATE_LABELS, STATUS_LABELS, UNIT_LABELS, count_text, period_text, value_text
from kpis.palette import (
    CENTRE_COLOR,
    CHANGE_COLOR,
    LIMIT_COLOR,
    NO_STATUS_COLOR,
    RED_COLOR,
    SEGMENTS,
    SIGNAL_COLOR,
    TARGET_COLOR,
    UNKNOWN_COLOR,
    status_color,
)
from kpis.spec import KpiSpec

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "height": 340, "hovermode": "closest"}


# what a value that is not a fact yet is, as a chart's legend names it
NOT_FINAL = {
    "open": "so far: records may still arrive",
    "history": "early data: it looks back to before the data start",
}
WITHHELD = "withheld (n < 11)"
_KEY_COLOR = "#455a64"  # a trend's line, and the legend's key to the dotted part and the crosses of a breakdown


def drawn(frame: pd.DataFrame) -> pd.Series:
    """The values a chart draws: every one but those withheld by the small-cell rule."""
    return frame["value"].where(frame["state"] != "small")


def _line_traces(
    frame: pd.DataFrame, spec: KpiSpec, name: str, color: str, fact_colors: list[str] | None = None, *, keyed: bool
) -> list[go.Scatter]:
    """One series as traces that keep facts and the rest apart (DESIGN: no open or look-back-incomplete
    period shown as a fact): the facts as a solid line; each kind of value that is not final yet as open
    markers joined only to each other, dotted; each withheld value as a cross on the axis, so its gap
    reads as withheld, not as a missing month.

    Every trace spans all of `frame`'s periods, with NaN where it has no value: a line breaks there,
    so the dotted part never joins the solid one. The first trace (the facts) carries every period's
    hover. `keyed`: the other traces are named in the legend by what they are (a trend's one series);
    else they go by the series' `name` without a legend entry of their own (a breakdown's segments,
    whose legend gets one key per kind: `_legend_keys`). `fact_colors` colours each fact's marker (a
    trend: by status), else the line's colour.
    """
    hover = _hover(frame, spec)
    state = frame["state"]
    traces = [
        go.Scatter(
            x=frame["period_start"], y=frame["value"].where(state == "final"), mode="lines+markers", name=name,
            legendgroup=name, line={"color": color}, customdata=hover, hovertemplate=_HOVER_TEMPLATE,
            marker={"size": 9, "symbol": "circle", "color": fact_colors or color},
        )
    ]  # fmt: skip
    for kind, words in NOT_FINAL.items():
        if (state == kind).any():
            traces.append(
                go.Scatter(
                    x=frame["period_start"], y=frame["value"].where(state == kind), mode="lines+markers",
                    name=words if keyed else name, legendgroup=kind if keyed else name, showlegend=keyed,
                    line={"color": color, "dash": "dot"}, marker={"size": 9, "symbol": "circle-open", "color": color},
                    customdata=hover, hovertemplate=_HOVER_TEMPLATE,
                )
            )  # fmt: skip
    withheld = frame[state == "small"]
    if len(withheld):
        periods = [period_text(p.date(), g) for p, g in zip(withheld["period_start"], withheld["grain"], strict=True)]
        traces.append(
            go.Scatter(
                x=withheld["period_start"], y=[0] * len(withheld), mode="markers",
                name=WITHHELD if keyed else name, legendgroup="small" if keyed else name, showlegend=keyed,
                marker={"size": 10, "symbol": "x-thin-open", "color": color, "line": {"width": 2, "color": color}},
                customdata=[[p] for p in periods],
                hovertemplate=f"<b>%{{customdata[0]}}</b><br>{WITHHELD}: too few records behind it to show"
                "<extra>%{fullData.name}</extra>",
            )
        )  # fmt: skip
    return traces


def _legend_keys(frame: pd.DataFrame) -> list[go.Scatter]:
    """A legend entry, with no data, for each kind of point a breakdown draws apart from its facts:
    the dotted line (not final, or early data) and the cross (withheld), in a neutral colour."""
    keys = [
        go.Scatter(
            x=[None], y=[None], mode="lines+markers", name=words, line={"color": _KEY_COLOR, "dash": "dot"},
            marker={"size": 9, "symbol": "circle-open", "color": _KEY_COLOR}, hoverinfo="skip",
        )
        for kind, words in NOT_FINAL.items() if (frame["state"] == kind).any()
    ]  # fmt: skip
    if (frame["state"] == "small").any():
        keys.append(
            go.Scatter(
                x=[None], y=[None], mode="markers", name=WITHHELD, hoverinfo="skip",
                marker={"size": 10, "symbol": "x-thin-open", "color": _KEY_COLOR, "line": {"width": 2}},
            )
        )  # fmt: skip
    return keys


def _hover(frame: pd.DataFrame, spec: KpiSpec) -> list[list[str]]:
    """customdata per point: period, value, numerator, denominator, n, status (all as text)."""
    rows = []
    for row in frame.itertuples(index=False):
        status = row.status if isinstance(row.status, str) else None
        rows.append(
            [
                period_text(row.period_start.date(), row.grain),
                value_text(row.value, spec),
                count_text(row.numerator),
                count_text(row.denominator),
                f"{row.n:,}",
                (STATUS_LABELS.get(status, "no target") if status else "no target")
                + ("" if row.state == "final" else f"; {STATE_LABELS[row.state]}"),
            ]
        )
    return rows


_HOVER_TEMPLATE = (
    "<b>%{customdata[0]}</b><br>value %{customdata[1]} (%{customdata[5]})<br>"
    "numerator %{customdata[2]} / denominator %{customdata[3]}<br>n = %{customdata[4]}<extra>%{fullData.name}</extra>"
)


NAMED_TICKS = 6  # up to this many periods (tiny data), a tick on each named as a period ("Mar 2010")
FEW_STEPS = 5  # values spanning fewer steps of their format than this get a tick on every step


def _ticks_of(step: float, top: float) -> dict[str, float]:
    """A tick every `step` (the smallest difference the format writes) when the values reach under a
    few steps: plotly's own ticks (0, 0.2, 0.4, ...) would be written "0 0 0 1 1 1" by a whole-number format."""
    return {"dtick": step} if top < FEW_STEPS * step else {}


def _value_axis(fig: go.Figure, spec: KpiSpec, frame: pd.DataFrame) -> None:
    """The value axis in the KPI's unit and format, and the period axis: with few periods (two or three
    calls in one month), a tick on each period named as a period, not plotly's ticks of a date axis
    zoomed onto one point ("23:59:59.999 Mar 31, 2010")."""
    step = tick_step(spec)
    values = [float(v) for v in (*drawn(frame).dropna(), spec.target, spec.red) if v is not None]
    top = max(map(abs, values), default=0.0)
    ticks: dict[str, object] = {**_ticks_of(step, top)}
    if ticks and top == 0:  # all 0 (or all withheld, crosses on 0): plotly's range is [0, 1], 1,000 ticks of 0.1%
        ticks["range"] = [0, FEW_STEPS * step]
    fig.update_yaxes(title_text=axis_title(spec), tickformat=tick_format(spec), rangemode="tozero", **ticks)
    fig.update_xaxes(title_text="period start")
    periods = sorted(frame["period_start"].drop_duplicates())
    if 0 < len(periods) <= NAMED_TICKS:
        grain = frame["grain"].iloc[0]
        fig.update_xaxes(tickvals=periods, ticktext=[period_text(p.date(), grain) for p in periods])


def _target_lines(fig: go.Figure, spec: KpiSpec) -> None:
    """The target and red-flag lines across the plot, each labelled with its value.

    What `fig.add_hline` draws (a line over the x domain at y, a label above it), given as plain
    shapes and annotations in one layout update: add_hline took 4-5 ms a line, and a page draws
    a dozen of them on every visit.
    """
    shapes, notes = [], []
    for y, line, text, side in (
        (spec.target, {"color": TARGET_COLOR, "dash": "dash", "width": 1.5}, "target", "left"),
        (spec.red, {"color": RED_COLOR, "dash": "dot", "width": 1}, "red flag", "right"),
    ):
        if y is None:
            continue
        shapes.append(
            {"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y, "line": line}
        )
        notes.append(
            {
                "showarrow": False, "text": f"{text} {value_text(y, spec)}", "xref": "x domain",
                "x": 0 if side == "left" else 1, "xanchor": side, "yref": "y", "y": y, "yanchor": "bottom",
            }
        )  # fmt: skip
    if shapes:
        fig.update_layout(shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *notes])


def trend(frame: pd.DataFrame, spec: KpiSpec, control: pd.DataFrame | None = None) -> go.Figure:
    """The KPI over time (one row per period), with target and red-flag lines.

    `frame` comes from `Warehouse.facts`. The facts are a solid line with markers coloured by status;
    a period whose value is not a fact yet (records may still arrive, or its look-back is not covered)
    is an open marker on a dotted line of its own, and a withheld value (a count under 11) a cross on
    the axis (`_line_traces`). `control` (from `Warehouse.spc`) adds the
    control chart: see `add_control_chart`.
    """
    colors = [
        status_color(s) if state == "final" else _KEY_COLOR
        for s, state in zip(frame["status"], frame["state"], strict=True)
    ]
    fig = go.Figure(_line_traces(frame, spec, spec.title, _KEY_COLOR, colors, keyed=True))
    _target_lines(fig, spec)
    _value_axis(fig, spec, frame)
    title = f"{spec.title} by {frame['grain'].iloc[0] if len(frame) else 'period'}"
    if control is not None:
        add_control_chart(fig, control, frame, spec)
        title += f" · {control.attrs['chart_name']}"
    fig.update_layout(title=title, **_LAYOUT)
    if control is not None or len(fig.data) > 1:  # a legend says what the dotted part, the rings and lines are
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.25}, height=_LAYOUT["height"] + 60)
    return fig


def add_control_chart(fig: go.Figure, control: pd.DataFrame, shown: pd.DataFrame, spec: KpiSpec) -> None:
    """Draw a control chart over a trend: limits, centre lines, change markers and signals, as `kpis` computed them.

    `control` is `Warehouse.spc` (limits frozen on the phase before each change, judged on its
    whole history); only the periods of `shown` (the trend's `Warehouse.facts`) are drawn. Per
    phase: the upper and lower 3-sigma limits, the centre the points are judged by (the baseline
    centre after a change) and the phase's own centre (before/after). A vertical line marks each
    change; a ring marks every point that signals, unless its value is withheld (small cells).
    """
    rows = control[control["period_start"].isin(shown["period_start"])]
    values = dict(zip(shown["period_start"], drawn(shown), strict=True))
    lines = (
        ("ucl", "3-sigma limits", {"color": LIMIT_COLOR, "dash": "dot", "width": 1.2}),
        ("lcl", "3-sigma limits", {"color": LIMIT_COLOR, "dash": "dot", "width": 1.2}),
        ("centre", "centre judged by", {"color": CENTRE_COLOR, "dash": "dash", "width": 1}),
        ("phase_centre", "phase centre (before/after)", {"color": CENTRE_COLOR, "width": 2}),
    )
    legend: set[str] = set()
    for phase, part in rows.groupby("phase", sort=True):
        for column, name, line in lines:
            if part[column].isna().all() or (column == "centre" and phase == 0):
                continue  # phase 0 is judged by its own centre: one line is enough
            fig.add_trace(
                go.Scatter(
                    x=part["period_start"],
                    y=part[column],
                    mode="lines",
                    line={**line, "shape": "hvh"},
                    name=name,
                    legendgroup=name,
                    showlegend=name not in legend,
                    customdata=[[value_text(v, spec)] for v in part[column]],
                    hovertemplate=f"{name}: %{{customdata[0]}}<extra></extra>",
                )
            )
            legend.add(name)
    for phase in control.attrs["phases"][1:]:
        start = pd.Timestamp(phase["date"])
        if rows.empty or not rows["period_start"].min() <= start <= rows["period_start"].max():
            continue
        fig.add_shape(
            type="line", x0=start, x1=start, yref="paper", y0=0, y1=1, line={"color": CHANGE_COLOR, "width": 1.5}
        )
        fig.add_annotation(
            x=start, y=1, yref="paper", text=phase["title"], showarrow=False, xanchor="left", yanchor="top",
            font={"color": CHANGE_COLOR, "size": 11},
        )  # fmt: skip
    signals = rows[rows["signal"] & rows["period_start"].map(lambda p: not pd.isna(values.get(p)))]
    why = [
        "beyond the 3-sigma limits" if outside else "part of an unusually long run"
        for outside in signals["outside"]
    ]  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=signals["period_start"],
            y=[values[p] for p in signals["period_start"]],
            mode="markers",
            marker={"symbol": "circle-open", "size": 17, "color": SIGNAL_COLOR, "line": {"width": 2.5}},
            name="signal (special cause)",
            customdata=[
                [period_text(p.date(), control.attrs["grain"]), w]
                for p, w in zip(signals["period_start"], why, strict=True)
            ],
            hovertemplate="<b>%{customdata[0]}</b>: a signal, %{customdata[1]}<extra></extra>",
        )
    )


def breakdown(
    frame: pd.DataFrame, spec: KpiSpec, dim: str, labels: Mapping[str, str], colors: Mapping[str, str]
) -> go.Figure:
    """One line per segment of `dim` over time, in the segment's fixed colour; as in `trend`, the
    periods that are not final are set apart from its facts (`_line_traces`)."""
    fig = go.Figure()
    keys = frame[dim].map(lambda v: None if v is None or v != v else str(v))
    for key in keys.drop_duplicates():
        rows = frame[keys.isna()] if key is None else frame[keys == key]
        name = segment_label(key, labels)
        fig.add_traces(_line_traces(rows, spec, name, colors.get(key, NO_STATUS_COLOR), keyed=False))
    fig.add_traces(_legend_keys(frame))
    _target_lines(fig, spec)
    _value_axis(fig, spec, frame)
    fig.update_layout(
        title=f"{spec.title} by {dim.replace('_', ' ')}",
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "title": {"text": ""}},
        **_LAYOUT,
    )
    return fig


def stacked_segments(frame: pd.DataFrame, specs: Sequence[KpiSpec]) -> go.Figure:
    """Median minutes of each visit segment per period, stacked in the order a visit goes."""
    fig = go.Figure()
    for n, spec in enumerate(specs):
        rows = frame[frame["kpi_id"] == spec.id]
        fig.add_trace(
            go.Bar(
                x=rows["period_start"],
                y=rows["value"],
                name=spec.title,
                marker_color=SEGMENTS[n % len(SEGMENTS)],
                customdata=_hover(rows, spec),
                hovertemplate=_HOVER_TEMPLATE,
            )
        )
    fig.update_layout(barmode="stack", title="Visit segments (median minutes)", **_LAYOUT)
    fig.update_yaxes(title_text="minutes (median of each segment)")
    fig.update_xaxes(title_text="period start")
    return fig


def heatmap(
    cells: pd.DataFrame, value: str, x: str, y: str, *, title: str, colorbar: str, tickformat: str, step: float
) -> go.Figure:
    """A grid of `value` by `x` and `y`; `cells` carries a `hover` text column per cell.

    The colour scale runs from 0 to the largest value, `step` (the smallest difference `tickformat`
    writes: 1 row, 0.01 for whole percents) at least: with every cell 0 (two calls, none abandoned)
    plotly would centre it on 0 and colour a scale down to -40%."""
    grid = cells.pivot(index=y, columns=x, values=value)
    top = float(cells[value].max()) if len(cells) else 0.0
    hover = cells.pivot(index=y, columns=x, values="hover")
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=[str(c) for c in grid.columns],
            y=[str(i) for i in grid.index],
            text=hover.values,
            hovertemplate="%{text}<extra></extra>",
            colorscale="Reds",
            colorbar={"title": {"text": colorbar}, "tickformat": tickformat, **_ticks_of(step, top)},
            zmin=0,
            zmax=max(top, step),
        )
    )
    fig.update_layout(title=title, **{**_LAYOUT, "height": 320})
    fig.update_yaxes(autorange="reversed")  # first row (Mon, the first feed) on top, as in a table
    return fig


def histogram(
    values: pd.Series, counts: pd.Series, *, title: str, x_title: str, marker: float | None = None
) -> go.Figure:
    """The distribution of records with `values`, `counts` of each (the API's value counts), with an
    optional vertical marker (e.g. the service-level threshold)."""
    fig = go.Figure(
        go.Histogram(x=values, y=counts, histfunc="sum", nbinsx=40, marker_color=SEGMENTS[0], name="records")
    )
    if marker is not None:
        fig.add_vline(x=marker, line={"color": TARGET_COLOR, "dash": "dash"}, annotation_text=f"{marker:g}")
    fig.update_layout(title=title, bargap=0.05, **_LAYOUT)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="records", **_ticks_of(1, float(counts.sum())))  # a few calls: 0 1 2, not 0.5
    return fig


def funnel(stages: Sequence[str], counts: Sequence[float], *, title: str) -> go.Figure:
    """Counts reaching each stage, with the share of the first stage."""
    fig = go.Figure(
        go.Funnel(y=list(stages), x=list(counts), textinfo="value+percent initial", marker_color=SEGMENTS[0])
    )
    fig.update_layout(title=title, **_LAYOUT)
    return fig


def aging(frame: pd.DataFrame, by: str | None, colors: Mapping[str, str], labels: Mapping[str, str]) -> go.Figure:
    """A/R by aging bucket, stacked by `by` (e.g. payer class) when given, each segment named by `labels`."""
    fig = go.Figure()
    groups: Iterable[tuple[str, pd.DataFrame]] = [("A/R", frame)]
    unknown = "no " + (by or "").replace("_", " ")
    if by:  # entries with no payer (a ledger export without payers, a payment with no claim): a grey segment
        groups = frame.groupby(frame[by].astype(object).fillna(unknown), sort=False)
    for segment, rows in groups:
        fig.add_trace(
            go.Bar(
                x=rows["bucket"],
                y=rows["amount"],
                name=segment if segment in (unknown, "A/R") else segment_label(segment, labels),
                marker_color=UNKNOWN_COLOR if segment == unknown else colors.get(segment, SEGMENTS[0]),
                customdata=[[f"${a:,.2f}", f"{s:.1%}", f"{int(n):,}"] for a, s, n in
                            zip(rows["amount"], rows["share"], rows["accounts"], strict=True)],
                hovertemplate="%{x} days: %{customdata[0]} (%{customdata[1]} of A/R), "
                "%{customdata[2]} claims<extra>%{fullData.name}</extra>",
            )
        )  # fmt: skip
    fig.update_layout(barmode="stack", title="A/R by age (days since date of service)", **_LAYOUT)
    fig.update_yaxes(title_text=f"A/R ({UNIT_LABELS['currency']})", tickformat="$,.0f")
    fig.update_xaxes(title_text="age bucket (days)")
    return fig


def reasons(frame: pd.DataFrame, dim: str, *, leave_out: str, title: str, y_title: str) -> go.Figure:
    """Each segment's part of a rate per period, stacked (`Warehouse.parts`: its numerator over the
    period's whole denominator), so the stack is the rate itself (e.g. the denial rate by the
    payer's reason). The `leave_out` segment (e.g. "not denied") is not drawn."""
    fig = go.Figure()
    frame = frame[(frame[dim] != leave_out) & (frame["numerator"] > 0)]
    for n, (segment, rows) in enumerate(frame.groupby(frame[dim].astype(str), sort=True)):
        fig.add_trace(
            go.Bar(
                x=rows["period_start"],
                y=rows["part"],
                name=segment,
                marker_color=SEGMENTS[n % len(SEGMENTS)],
                customdata=[[count_text(v)] for v in rows["numerator"]],
                hovertemplate="%{x}: %{y:.1%} (%{customdata[0]} claims)<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(barmode="stack", title=title, **_LAYOUT)
    fig.update_yaxes(title_text=y_title, tickformat=".0%")
    fig.update_xaxes(title_text="period start")
    return fig
