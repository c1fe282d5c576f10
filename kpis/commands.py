"""`clinic-kpis kpis` and `clinic-kpis scorecard`: KPIs from the command line, as a table, CSV or JSON.

`kpis` prints what `Warehouse.compute` returns (every period, with numerators and denominators);
`scorecard` prints what a person should read for a month (`Warehouse.scorecard` and `movers`),
the same as the dashboard's Overview and the monthly report. Locations, providers and payers
are shown by name, and every value with its unit.
"""

from __future__ import annotations

import json
import math
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from kpis import privacy
from kpis.cli_options import ConfigOption, DbOption, Engine, MasterOption, OutputFormat, ParquetOption
from kpis.config import load_config
from kpis.errors import ClinicKpisError
from kpis.export_cli import export_command
from kpis.formatting import (
    STATUS_LABELS,
    UNIT_LABELS,
    asked_note,
    change_text,
    format_value,
    n_text,
    period_text,
    state_text,
    value_text,
)
from kpis.periods import GRAINS, parse_bound

if TYPE_CHECKING:
    from kpis.comparison import Move
    from kpis.spark import SparkLake
    from kpis.spec import KpiSpec
    from kpis.warehouse import Warehouse

NAMED = ("location", "provider", "payer")  # shown by name, with the id beside it


commands = typer.Typer()  # registered in pyproject.toml (clinic_kpis.commands)


class Via(StrEnum):
    auto = "auto"
    store = "store"
    raw = "raw"


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
        Optional[list[str]],
        typer.Option("--filter", help='Keep one dimension value, by id or name, e.g. location="Northgate Clinic".'),
    ] = None,
    option: Annotated[
        Optional[list[str]],
        typer.Option("--option", help="A definition variant, e.g. days_in_ar.preset=hfma (repeatable)."),
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    show_sql: Annotated[bool, typer.Option("--show-sql", help="Print the SQL of each KPI instead of results.")] = False,
    dialect: Annotated[str, typer.Option(help="SQL dialect for --show-sql (duckdb, spark, postgres, ...).")] = "duckdb",
    engine: Annotated[
        Engine, typer.Option(help="duckdb: the warehouse; spark: a Parquet export (--parquet), on Spark.")
    ] = Engine.duckdb,
    parquet: ParquetOption = None,
    master: MasterOption = "local[*]",
    via: Annotated[
        Via,
        typer.Option(
            "--from",
            help="Who answers: auto (the results store where it can, else the raw engine), store or raw.",
        ),
    ] = Via.auto,
) -> None:
    """Compute KPIs for a month or range, by period and dimension, as a table, CSV or JSON.

    JSON and CSV rows carry the columns of `Warehouse.compute(names=True)` (dates as ISO text), with
    each value's `unit` after it.
    """
    if month is not None:
        if start is not None or end is not None:
            raise ClinicKpisError("--month cannot be combined with --start or --end")
        parse_bound(month, end=False, what="--month")
        start = end = month
    options = _parse_options(option or [])
    filters = _parse_filters(filter_ or [])
    if engine is Engine.spark and via is not Via.auto:
        raise ClinicKpisError("--from chooses who answers in the warehouse; --engine spark computes from the export")
    with _open(engine, db, config, parquet, master) as wh:
        if show_sql:
            ids = kpi or [s.id for s in wh.catalog() if set(by or []) <= set(s.dimensions)]
            for kpi_id in ids:
                sql = wh.sql(
                    kpi_id,
                    grain=grain,
                    by=by,
                    filters=filters,
                    options=options,
                    dialect=dialect,
                    start=start,
                    end=end,
                    via=via.value,
                )
                typer.echo(f"-- {kpi_id}\n{sql};\n")
            return
        frame = wh.compute(
            kpis=kpi or None,
            start=start,
            end=end,
            grain=grain,
            by=by,
            filters=filters,
            options=options,
            names=True,
            via=via.value,
        )
        specs = {s.id: s for s in wh.catalog()}
    if output is OutputFormat.json:
        typer.echo(json.dumps(to_records(frame, specs), indent=2))
    elif output is OutputFormat.csv:
        typer.echo(_for_text(frame, specs).to_csv(index=False).rstrip("\n"))
    else:
        # a breakdown lists every known segment in every period; on screen the empty ones are noise
        empty = (frame["n"] == 0) & frame["value"].isna() if by else pd.Series(False, index=frame.index)
        _print_table(frame[~empty], specs, list(by or []))
        if empty.any():
            typer.echo(f"{int(empty.sum())} rows without data not shown (--format csv or json lists every row)")


def _open(
    engine: Engine, db: Path | None, config: Path | None, parquet: Path | None, master: str
) -> Warehouse | SparkLake:
    """The warehouse, or (--engine spark) a SparkLake over a Parquet export, to compute from."""
    if engine is Engine.spark:
        if parquet is None:
            raise ClinicKpisError("--engine spark reads a Parquet export: give --parquet DIR (`clinic-kpis export`)")
        from kpis.spark import SparkLake

        return SparkLake.open(parquet, config=load_config(config, db=db), master=master)
    if parquet is not None:
        raise ClinicKpisError("--parquet is read by --engine spark; without it KPIs come from the warehouse")
    from kpis.warehouse import Warehouse

    return Warehouse.open(db, config=config, read_only=True)


def to_records(frame: pd.DataFrame, specs: dict[str, KpiSpec]) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: ISO dates, None for missing values, each value's unit."""
    records = []
    for row in _for_text(frame, specs).to_dict(orient="records"):
        records.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return records


def _for_text(frame: pd.DataFrame, specs: dict[str, KpiSpec]) -> pd.DataFrame:
    """CSV and JSON rows: ISO dates, and a `unit` column after the value (values stay as computed)."""
    out = frame.copy()
    for column in [c for c in out.columns if str(out[c].dtype).startswith("datetime")]:
        out[column] = out[column].dt.strftime("%Y-%m-%d")
    if "complete" in out.columns:
        out["complete"] = out["complete"].astype(bool)
    if "n" in out.columns and pd.api.types.is_numeric_dtype(out["n"]):
        out = out.astype({"n": "int64"})
    out.insert(out.columns.get_loc("value") + 1, "unit", out["kpi_id"].map(lambda k: specs[k].unit))
    return out


def _print_table(frame: pd.DataFrame, specs: dict[str, KpiSpec], dims: list[str]) -> None:
    """Values and targets with their unit: in the header when every row shares it, else in each cell."""
    units = {specs[k].unit for k in frame["kpi_id"].unique()}
    shared = next(iter(units)) if len(units) == 1 else None
    in_header = f" ({UNIT_LABELS[shared]})" if shared else ""
    table = Table(show_edge=False, header_style="bold")
    columns = ["kpi", "period", *dims, f"value{in_header}", "n", "numerator", "denominator", f"target{in_header}"]
    for name in [*columns, "status", "final"]:
        table.add_column(name, justify="right" if name in columns[2 + len(dims) :] else "left")
    for row in frame.itertuples(index=False):
        spec = specs[row.kpi_id]

        def shown(value: float | None, spec: KpiSpec = spec) -> str:
            return format_value(value, spec.fmt) if shared else value_text(value, spec)

        cells = [row.kpi_id, row.period_start.strftime("%Y-%m-%d")]
        cells += [_segment(getattr(row, d), getattr(row, f"{d}_name", None), d) for d in dims]
        cells += [
            shown(row.value),
            str(row.n),
            _number(row.numerator),
            _number(row.denominator),
            shown(row.target),
            STATUS_LABELS.get(row.status, "") if isinstance(row.status, str) else "",
            "yes" if row.complete else "not yet",  # data may still arrive (or a look-back is short)
        ]
        table.add_row(*cells)
    Console(width=200).print(table)
    _print_notes(frame, dims)


def _print_notes(frame: pd.DataFrame, dims: list[str]) -> None:
    """Why a value is missing (or above 100%), once per KPI and reason, with the rows it concerns."""
    noted = frame[frame["note"].notna()]
    for (kpi, note), rows in noted.groupby(["kpi_id", "note"], sort=False):
        where = [
            " ".join([p.strftime("%Y-%m-%d"), *("" if r[d] is None else str(r[d]) for d in dims)]).strip()
            for p, (_, r) in zip(rows["period_start"], rows.iterrows(), strict=True)
        ]
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        typer.echo(f"note: {kpi} ({shown}): {note}")


def _segment(value: Any, name: Any, dim: str) -> str:
    """`Eastside (EAST)`, `Dr. Ada Park (1234567890)`; other dimensions as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not recorded"
    if dim in NAMED and name is not None and str(name) != str(value):
        return f"{name} ({value})"
    return str(value)


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


@commands.command(name="scorecard")
def scorecard_command(
    db: DbOption = None,
    config: ConfigOption = None,
    month: Annotated[
        Optional[str], typer.Option(help="The month asked about, YYYY-MM (default: the month of the last data).")
    ] = None,
    filter_: Annotated[
        Optional[list[str]],
        typer.Option("--filter", help='Keep one dimension value, by id or name, e.g. location="Northgate Clinic".'),
    ] = None,
    headline: Annotated[bool, typer.Option("--headline", help="Only the headline KPIs.")] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
) -> None:
    """Each KPI for its latest complete month, compared only with final months, and what moved most.

    The same numbers and words as the dashboard's Overview and the monthly report. CSV and JSON
    rows carry the columns of `Warehouse.scorecard` with each value's `unit`.
    """
    from kpis.warehouse import Warehouse

    if month is not None:
        parse_bound(month, end=False, what="--month")
    filters = _parse_filters(filter_ or [])
    with Warehouse.open(db, config=config, read_only=True) as wh:
        catalog = {s.id: s for s in wh.catalog()}
        specs = {k: s for k, s in catalog.items() if s.headline or not headline}
        card = wh.scorecard(month, filters=filters or None, kpis=list(specs))
        moves = wh.movers(month, filters=filters or None) if output is OutputFormat.table else []
    # the n of a withheld value would give its small count back: "<11", as on every surface
    counts = zip(card["kpi_id"], card["n"], strict=True)
    safe = card.assign(n=[privacy.count(n) if specs[k].patient_records else int(n) for k, n in counts])
    if output is OutputFormat.json:
        typer.echo(json.dumps(to_records(safe, specs), indent=2, default=str))
    elif output is OutputFormat.csv:
        typer.echo(_for_text(safe, specs).to_csv(index=False).rstrip("\n"))
    else:
        print_scorecard(card, specs)
        print_movers(moves, catalog, card["month"].iloc[0].date())


def print_scorecard(card: pd.DataFrame, specs: dict[str, KpiSpec], console: Console | None = None) -> None:
    """The scorecard as a table: value for its month, changes between final months, target, status, notes."""
    asked = card["month"].iloc[0].date()
    table = Table(show_edge=False, header_style="bold")
    for name, justify in (("KPI", "left"), ("month", "left"), ("value", "right"), ("vs month before", "right"),
                          ("vs last year", "right"), ("target", "right"), ("status", "left"), ("n", "right"),
                          ("note", "left")):  # fmt: skip
        table.add_column(name, justify=justify)
    for row in card.itertuples(index=False):
        spec = specs[row.kpi_id]
        period = row.period_start.date() if not pd.isna(row.period_start) else None
        notes = []
        if not pd.isna(row.asked_value):
            shown = value_text(row.asked_value, spec)
            notes.append(
                asked_note(asked, shown, row.asked_state, wait_days=row.wait_days, history_days=row.history_days)
            )
        elif pd.isna(row.value) and isinstance(row.note, str):  # data, but no value: say why
            notes.append(row.note)
        elif pd.isna(row.value) and row.state != "small":
            notes.append(state_text(row.state, missing_sources=row.missing))
        if not pd.isna(row.value) and row.year_state == "history":
            notes.append("vs last year: early data (less than a year of ledger before it)")
        if row.unfiltered:
            notes.append(f"not filtered by {row.unfiltered}")
        table.add_row(
            spec.title,
            period_text(period) if period else "—",
            "n < 11" if row.state == "small" else value_text(row.value, spec),
            change_text(row.change_previous, spec),
            change_text(row.change_year, spec),
            value_text(spec.target, spec),
            STATUS_LABELS.get(row.status, "") if isinstance(row.status, str) else "",
            n_text(row.n, spec),
            "; ".join(notes),
        )
    (console or Console(width=200)).print(table)


def print_movers(moves: list[Move], specs: dict[str, KpiSpec], month: date) -> None:
    """What changed: each move between two final months, and the segment that drove it."""
    typer.echo(f"\nWhat changed since the month before ({period_text(month)} asked):")
    if not moves:
        typer.echo("  no measure moved noticeably between two final months")
    for move in moves:
        spec = specs[move.kpi_id]
        line = (
            f"  {spec.title} ({period_text(move.before)} to {period_text(move.period)}): {move.effect} "
            f"{change_text(move.change, spec)}, {value_text(move.previous, spec)} -> {value_text(move.value, spec)}"
        )
        driver = move.driver
        if driver is None:
            line += f"; {move.note.rstrip('.').lower()}" if move.note else ""
        elif driver.contribution is not None:
            line += f"; most from {driver.dimension} {driver.label} ({change_text(driver.contribution, spec)})"
        else:
            moved = f"{value_text(driver.value_before, spec)} -> {value_text(driver.value_after, spec)}"
            line += f"; a median: largest move at {driver.dimension} {driver.label} ({moved})"
        typer.echo(line)


commands.command(name="export")(export_command)


@commands.command(name="rejects")
def rejects_command(
    run: Annotated[
        Optional[int], typer.Option("--run", help="Only this load's records (a run id of `ingest_runs`).")
    ] = None,
    limit: Annotated[
        int, typer.Option(help="At most this many rows (a record that broke two rules has a row for each).", min=1)
    ] = 50,
    output: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.table,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The records ingest quarantined, in file order: file, line or segment, field and the reason,
    a row for each rule a record broke.

    Values are masked as they were stored (no direct identifier is kept); a fixed file loaded
    again with `clinic-kpis ingest --force` replaces its run's rejects.
    """
    from kpis.warehouse import Warehouse

    with Warehouse.open(db, config=load_config(config, db=db), read_only=True) as wh:
        frame = wh.rejects(run, limit=limit)
    frame = frame.drop(columns=["reject_id"])
    if output is OutputFormat.json:
        typer.echo(json.dumps(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"), indent=2))
        return
    if output is OutputFormat.csv:
        typer.echo(frame.to_csv(index=False).rstrip("\n"))
        return
    if frame.empty:
        typer.echo("no rejected records" + (f" in run {run}" if run is not None else ""))
        return
    table = Table(show_edge=False, header_style="bold")
    for name in ("run", "file", "where", "field", "reason", "value"):
        table.add_column(name, overflow="fold")
    for row in frame.itertuples(index=False):
        where = f"{row.position_kind} {row.position}"
        field = row.field if isinstance(row.field, str) else ""
        value = row.value_masked if isinstance(row.value_masked, str) else ""
        table.add_row(str(row.run_id), row.file_path, where, field, row.reason, value)
    Console(width=220).print(table)
    if len(frame) == limit:
        typer.echo(f"the first {limit:,} shown: --limit for more, --run for one load")
