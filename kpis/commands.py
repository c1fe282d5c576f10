"""`clinic-kpis kpis`: compute KPIs from the command line, as a table, CSV or JSON."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from kpis.cli_options import ConfigOption, DbOption
from kpis.errors import ClinicKpisError
from kpis.formatting import format_value
from kpis.periods import GRAINS, parse_bound

if TYPE_CHECKING:
    from kpis.warehouse import Warehouse


commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@commands.command(name="kpis")
def kpis_command(
    db: DbOption = None,
    config: ConfigOption = None,
    month: Annotated[Optional[str], typer.Option(help="One month, YYYY-MM (same as --start M --end M).")] = None,
    start: Annotated[Optional[str], typer.Option(help="First period: YYYY-MM-DD, YYYY-MM or YYYY.")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last period: YYYY-MM-DD, YYYY-MM or YYYY.")] = None,
    grain: Annotated[str, typer.Option(help=f"Period length: {', '.join(GRAINS)}.")] = "month",
    by: Annotated[
        Optional[list[str]], typer.Option("--by", help="Break down by a dimension (repeatable), e.g. provider.")
    ] = None,
    kpi: Annotated[Optional[list[str]], typer.Option("--kpi", help="A KPI id (repeatable; default: all).")] = None,
    filter_: Annotated[
        Optional[list[str]], typer.Option("--filter", help="Keep one dimension value, e.g. location=EAST (repeatable).")
    ] = None,
    option: Annotated[
        Optional[list[str]],
        typer.Option("--option", help="A definition variant, e.g. days_in_ar.preset=hfma (repeatable)."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    show_sql: Annotated[bool, typer.Option("--show-sql", help="Print the SQL of each KPI instead of results.")] = False,
    dialect: Annotated[str, typer.Option(help="SQL dialect for --show-sql (duckdb, spark, postgres, ...).")] = "duckdb",
) -> None:
    """Compute KPIs for a month or range, by period and dimension, as a table, CSV or JSON.

    JSON is an array of result rows with the columns of `Warehouse.compute` (dates as ISO text).
    """
    from kpis.warehouse import Warehouse

    if month is not None:
        if start is not None or end is not None:
            raise ClinicKpisError("--month cannot be combined with --start or --end")
        parse_bound(month, end=False, what="--month")
        start = end = month
    options = _parse_options(option or [])
    filters = _parse_filters(filter_ or [])
    with Warehouse.open(db, config=config, read_only=True) as wh:
        _check_filter_values(wh, filters)
        if show_sql:
            ids = kpi or [s.id for s in wh.catalog() if set(by or []) <= set(s.dimensions)]
            for kpi_id in ids:
                sql = wh.sql(
                    kpi_id, grain=grain, by=by, filters=filters, options=options, dialect=dialect, start=start, end=end
                )
                typer.echo(f"-- {kpi_id}\n{sql};\n")
            return
        frame = wh.compute(kpis=kpi or None, start=start, end=end, grain=grain, by=by, filters=filters, options=options)
        fmts = {s.id: s.fmt for s in wh.catalog()}
    if output is OutputFormat.json:
        typer.echo(json.dumps(to_records(frame), indent=2))
    elif output is OutputFormat.csv:
        typer.echo(_for_text(frame).to_csv(index=False).rstrip("\n"))
    else:
        # a breakdown lists every known segment in every period; on screen the empty ones are noise
        empty = (frame["n"] == 0) & frame["value"].isna() if by else pd.Series(False, index=frame.index)
        _print_table(frame[~empty], fmts, list(by or []))
        if empty.any():
            typer.echo(f"{int(empty.sum())} rows without data not shown (--format csv or json lists every row)")


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: ISO dates, None for missing values."""
    records = []
    for row in _for_text(frame).to_dict(orient="records"):
        records.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return records


def _for_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["period_start"] = out["period_start"].dt.strftime("%Y-%m-%d")
    out["complete"] = out["complete"].astype(bool)
    return out.astype({"n": "int64"})


def _print_table(frame: pd.DataFrame, fmts: dict[str, str], dims: list[str]) -> None:
    table = Table(show_edge=False, header_style="bold")
    for name in ["kpi", "period", *dims, "value", "n", "numerator", "denominator", "target", "status", "final"]:
        table.add_column(
            name, justify="right" if name in ("value", "n", "numerator", "denominator", "target") else "left"
        )
    for row in frame.itertuples(index=False):
        fmt = fmts[row.kpi_id]
        cells = [row.kpi_id, row.period_start.strftime("%Y-%m-%d")]
        cells += ["" if getattr(row, d) is None else str(getattr(row, d)) for d in dims]
        cells += [
            format_value(row.value, fmt),
            str(row.n),
            _number(row.numerator),
            _number(row.denominator),
            format_value(row.target, fmt),
            row.status or "",
            "yes" if row.complete else "not yet",  # data may still arrive (or a look-back is short)
        ]
        table.add_row(*cells)
    Console(width=200).print(table)


def _number(value: float) -> str:
    if value is None or math.isnan(value):
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _parse_options(texts: list[str]) -> dict[str, dict[str, str]]:
    options: dict[str, dict[str, str]] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        kpi_id, dot, name = key.partition(".")
        if not sep or not dot or not kpi_id or not name:
            raise ClinicKpisError(f"--option {text!r}: expected KPI.OPTION=VALUE, e.g. days_in_ar.preset=hfma")
        options.setdefault(kpi_id.strip(), {})[name.strip()] = value.strip()
    return options


def _check_filter_values(wh: Warehouse, filters: dict[str, list[Any]]) -> None:
    """A value the warehouse does not know is a typo far more often than a wish for empty rows."""
    for dim, values in filters.items():
        if dim == "new_patient":
            continue
        known = [str(v) for v in wh.dimension_values(dim)["id"]]
        for value in values:
            if str(value) in known:
                continue
            same = [k for k in known if k.lower() == str(value).lower()]
            hint = f" (did you mean {same[0]}?)" if same else ""
            shown = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
            where = f"--filter {dim}={value}: no such {dim} in the warehouse{hint}"
            raise ClinicKpisError(f"{where}; known: {shown or 'none'}")


def _parse_filters(texts: list[str]) -> dict[str, list[Any]]:
    filters: dict[str, list[Any]] = {}
    for text in texts:
        dim, sep, value = text.partition("=")
        if not sep or not dim or not value:
            raise ClinicKpisError(f"--filter {text!r}: expected DIMENSION=VALUE, e.g. location=EAST")
        dim = dim.strip()
        parsed: Any = value.strip()
        if dim == "new_patient":
            if parsed.lower() not in ("true", "false"):
                raise ClinicKpisError(f"--filter {text!r}: new_patient is true or false")
            parsed = parsed.lower() == "true"
        filters.setdefault(dim, []).append(parsed)
    return filters
