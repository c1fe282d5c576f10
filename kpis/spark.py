"""The KPI API computed on Apache Spark, over a Parquet export of the canonical tables.

A group whose data sits in a lake (or outgrows one machine) runs the same KPI specs on Spark:
`SparkLake` reads a folder written by `clinic-kpis export --parquet` (kpis/export.py) and offers
the read methods of `Warehouse` (compute, compute_groupings, explain, drivers, ar_aging, sql, the
dimension values; scorecard, trend, movers; control charts and friction costs), with results in
the same shape. The change log is read from the export, written only in the warehouse. Nothing
is re-implemented: the engine builds the same DuckDB-dialect statements, `kpis.query.render`
writes them for Spark (with the fixes that keep them exact there), and Spark runs them.

What keeps the numbers equal to DuckDB's:

* the Spark session computes in UTC, like the warehouse connection; the practice time zone is
  applied in the SQL (`FROM_UTC_TIMESTAMP`), so days, weeks and months fall the same way;
* ANSI mode: an integer sum that overflowed would fail instead of wrapping around;
* the tables are read with the exact types the manifest records (no inference of partition
  values: `month=2026-09` stays text);
* timestamps come back as DuckDB returns them: TIMESTAMPTZ as UTC-aware, TIMESTAMP as naive.

Requires the `spark` extra (`pip install "clinic-kpis[spark]"`) and Java 17 or later.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from kpis.api import KpiMethods
from kpis.comparison import ComparisonMethods
from kpis.config import Config, load_config
from kpis.errors import ClinicKpisError
from kpis.export import MONTH_COLUMN, read_manifest
from kpis.improvement import ImprovementMethods
from kpis.query import render
from kpis.scope import EVERYTHING, Scope
from kpis.serving.answer import StoreState

try:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import TimestampType
except ImportError:  # pragma: no cover - exercised only without the extra
    SparkSession = None  # type: ignore[assignment,misc]

# Session settings every KPI statement relies on (they are per session, so a shared Spark
# application keeps its own settings: SparkLake works in a new session of it).
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


class SparkError(ClinicKpisError):
    """Spark is not available, or the export cannot be read by this version."""


def spark_session(master: str = "local[*]", conf: Mapping[str, str] | None = None) -> Any:
    """A Spark session for clinic-kpis: `master` is local[N] or a cluster URL (spark://host:7077, yarn).

    In local mode the driver listens on loopback only and the web UI is off: nothing is exposed
    on the network. `conf` adds or overrides Spark settings (e.g. spark.driver.memory).
    """
    if SparkSession is None:
        raise SparkError('Spark is not installed: pip install "clinic-kpis[spark]" (it also needs Java 17+)')
    settings = dict(SESSION_CONF) | {"spark.ui.showConsoleProgress": "false"}
    conf = dict(conf or {})
    quiet = f"-Dlog4j2.configurationFile={(resources.files('kpis') / 'spark_log4j2.properties')}"
    settings["spark.driver.extraJavaOptions"] = " ".join([quiet, conf.pop("spark.driver.extraJavaOptions", "")]).strip()
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # else Spark looks for a public address, and says so
        cores = re.match(r"local\[(\d+)", master)  # local[N] or local[N,F]; local and local[*]: every core
        partitions = int(cores.group(1)) if cores else (os.cpu_count() or 1)
        settings |= {
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.shuffle.partitions": str(partitions),
        }
    settings |= conf
    builder = SparkSession.builder.master(master).appName("clinic-kpis")
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        with warnings.catch_warnings():  # pyspark 4.3 warns about pandas 3 (see SparkResult.df)
            warnings.simplefilter("ignore", FutureWarning)
            session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: no Java, or a bad master URL
        raise SparkError(f"cannot start Spark ({master}): {str(exc).strip().splitlines()[0]}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkLake(ComparisonMethods, KpiMethods, ImprovementMethods):
    """The read methods of `Warehouse` (KPIs, comparison, control charts), computed by Spark over an export.

    Use `SparkLake.open(directory, config=..., master=...)` as a context manager. `spark=` takes
    an existing session (a notebook's, a test's): the lake works in a new session of it, with
    its own settings and table views, and leaves it running on close; a session the lake
    started itself is stopped on close.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        config: Config,
        spark: Any = None,
        master: str = "local[*]",
        scope: Scope = EVERYTHING,
    ) -> None:
        from kpis.storage import latest_schema_version

        self.directory = Path(directory)
        self.config = config
        self.scope = scope  # as a Warehouse's: the locations and small cells this reader may see
        self.manifest = read_manifest(self.directory)
        exported, known = self.manifest["schema_version"], latest_schema_version()
        if exported != known:
            raise SparkError(
                f"{self.directory} was exported with schema version {exported}, this clinic-kpis reads "
                f"version {known}: export it again with this version"
            )
        if self.manifest["time_zone"] != config.timezone:
            raise SparkError(
                f"{self.directory} was exported for a practice in {self.manifest['time_zone']}, the config says "
                f"{config.timezone}: pass the practice's config"
            )
        self._owns_session = spark is None and _active_session() is None
        base = spark if spark is not None else spark_session(master)
        self.spark = base.newSession()
        for key, value in SESSION_CONF.items():
            self.spark.conf.set(key, value)
        for table, info in self.manifest["tables"].items():
            self._read(table, info).createOrReplaceTempView(table)

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        config: Config | Path | None = None,
        master: str = "local[*]",
        spark: Any = None,
        scope: Scope = EVERYTHING,
    ) -> SparkLake:
        """Open an export; `config` is a loaded Config or the path of the practice's config file."""
        if not isinstance(config, Config):
            config = load_config(config)
        return cls(directory, config=config, spark=spark, master=master, scope=scope)

    def _read(self, table: str, info: Mapping[str, Any]) -> DataFrame:
        columns = [f"`{c['name']}` {c['spark_type']}" for c in info["columns"]]
        if info.get("partition_by"):
            columns.append(f"`{MONTH_COLUMN}` STRING")
        return self.spark.read.schema(", ".join(columns)).parquet(str(self.directory / table))

    def cursor(self) -> SparkCursor:
        """What `Warehouse.cursor()` is to DuckDB: runs DuckDB-dialect SQL, written for Spark."""
        return SparkCursor(self.spark)

    def tables(self) -> list[str]:
        return sorted(self.manifest["tables"])

    def schema_version(self) -> int:
        return int(self.manifest["schema_version"])

    def transaction(self, *, tracked: bool = False, kpi_data: bool = True) -> Any:
        """An export is read, never written: what changes (the change log) is recorded in the warehouse."""
        raise SparkError(
            f"{self.directory} is a Parquet export, read-only here: record changes in the warehouse, then export it"
        )

    def _store_state(self) -> StoreState:
        """An export holds no results store (it is the warehouse's own schema): Spark computes every KPI."""
        return StoreState({}, frozenset(), False)

    def _data_ends(self) -> dict[str, date | None]:
        """Every relation's data end in one Spark job (DuckDB asks one query per relation)."""
        names = list(self._relations)
        parts = ", ".join(f"({self._relations[n].data_end_sql}) AS end_{i}" for i, n in enumerate(names))
        row = self.cursor().execute(f"SELECT {parts}").fetchone()
        return {n: (v.date() if isinstance(v, datetime) else v) for n, v in zip(names, row, strict=True)}

    def close(self) -> None:
        if self._owns_session:
            self.spark.stop()

    def __enter__(self) -> SparkLake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SparkLake({str(self.directory)!r}, {self.spark.sparkContext.master})"


def _active_session() -> Any:
    return SparkSession.getActiveSession() if SparkSession is not None else None


class SparkCursor:
    """The part of a DuckDB cursor the KPI API uses: execute(sql, params), then df(), fetchone(), fetchall()."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> SparkResult:
        statement = render(sql, dialect="spark")
        return SparkResult(self.spark.sql(statement, args=list(params)) if params else self.spark.sql(statement))

    def close(self) -> None:
        """Nothing to release (the session belongs to the lake)."""


class SparkResult:
    def __init__(self, frame: DataFrame) -> None:
        self.frame = frame

    def df(self) -> pd.DataFrame:
        """The rows as pandas, typed as DuckDB's .df() types them (TIMESTAMPTZ columns UTC-aware)."""
        with warnings.catch_warnings():  # pyspark 4.3 warns about pandas 3; its conversion is sound here
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            out = self.frame.toPandas()
        for field in self.frame.schema.fields:
            if isinstance(field.dataType, TimestampType):  # Spark's TIMESTAMP is an instant
                out[field.name] = pd.to_datetime(out[field.name]).dt.tz_localize("UTC")
        return out

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.frame.collect()]

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.frame.take(1)
        return tuple(rows[0]) if rows else None
