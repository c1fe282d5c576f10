"""Load files into the warehouse: detect, order, skip what is already loaded, one transaction per file.

This is the Python entry point behind `clinic-kpis ingest` and the dashboard's upload box:

    with Store.open(db) as wh:
        results = ingest_paths(wh, ["exports/"])

A file that cannot be read fails on its own (its transaction is rolled back and a `failed` run
records why); the other files still load. Nothing is raised for a bad file: each result says
what happened, and the caller decides how to report it.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingest.adapters import Adapter
from ingest.adapters.csv_profile import Profile, load_profile, shipped_profiles
from ingest.context import ParseContext
from ingest.detect import check_format, choose
from ingest.errors import IngestError
from ingest.load import Loader, TableMeta, lit, read_schema
from ingest.pseudonymize import Pseudonymizer
from ingest.sources import InputFile, expand
from kpis.config import Config
from kpis.storage import Store

NOT_RECOGNIZED = "not a recognized export (FHIR, X12 837/835, Asterisk queue_log or CDR, or a CSV matching a profile)"


@dataclass
class FileResult:
    """What happened to one file. `status` is succeeded, failed or skipped."""

    path: str
    status: str
    adapter: str | None = None
    run_id: int | None = None
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    ignored: int = 0
    message: str | None = None
    warnings: list[str] = field(default_factory=list)


Progress = Callable[[str, int, int], None]


def ingest_paths(
    warehouse: Store,
    paths: list[str | Path],
    *,
    fmt: str = "auto",
    force: bool = False,
    progress: Progress | None = None,
) -> list[FileResult]:
    """Load every file behind `paths` (files, folders, .zip, .gz) and say what happened to each.

    `fmt` is auto, fhir, x12, queue-log, call-log or csv:PROFILE (a profile name or .toml path);
    a bad `fmt` or a missing path raises IngestError before anything loads. A file whose
    content was loaded before (same sha256) is skipped unless `force`.
    `progress(name, done, total)` is called before each file.
    """
    config = warehouse.config
    pseudonymizer = Pseudonymizer(config.secret())
    profiles = available_profiles(config)
    profile = check_format(fmt, profiles)
    files = list(expand(paths))
    references: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    results: dict[int, FileResult] = {}
    plan: list[tuple[int, Adapter, InputFile]] = []
    for i, file in enumerate(files):
        try:
            adapter = choose(file, fmt, profile, profiles)
        except IngestError as exc:
            results[i] = _record_failure(warehouse, file, None, f"{file.name}: {exc}")
            continue
        if adapter is None:
            if file.discovered:
                results[i] = FileResult(file.name, "skipped", message=NOT_RECOGNIZED)
            else:
                results[i] = _record_failure(warehouse, file, None, f"{file.name}: {NOT_RECOGNIZED}")
            continue
        plan.append((i, adapter, file))
    plan.sort(key=lambda item: item[1].rank)
    with warehouse.cursor() as cur:
        schema = read_schema(cur)
    with _bounded_memory(warehouse):
        for done, (i, adapter, file) in enumerate(plan):
            if progress is not None:
                progress(file.name, done, len(plan))
            results[i] = _load_file(warehouse, file, adapter, pseudonymizer, references, schema, force)
    if progress is not None:
        progress("", len(plan), len(plan))
    return [results[i] for i in sorted(results)]


# DuckDB's own memory while files load. Its default is 80% of the machine's RAM, and a large
# file's staged rows, sorts and joins then grow towards that instead of spilling. 1 GB holds a
# million-row file's staging tables and the joins over them without spilling much, and leaves
# room for the chunk Python is parsing (a few hundred MB) under a 2 GB process. A practice can
# set `[ingest] memory_limit = "4GB"` (any DuckDB size) on a larger machine.
MEMORY_LIMIT = "1GB"


@contextmanager
def _bounded_memory(warehouse: Store) -> Iterator[None]:
    """Bound DuckDB's buffer pool during ingest; the previous limit comes back afterwards (the
    dashboard's queries keep theirs). Beyond it DuckDB spills to its temp directory, by default
    `<warehouse>.tmp` next to the warehouse file (it cannot be switched once used, so it is left
    as DuckDB set it)."""
    limit = str(warehouse.config.raw.get("ingest", {}).get("memory_limit", MEMORY_LIMIT))
    with warehouse.cursor() as cur:
        before = cur.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        try:
            cur.execute(f"SET memory_limit = {lit(limit)}")
        except duckdb.Error as exc:
            raise IngestError(f"[ingest] memory_limit {limit!r} is not a size DuckDB knows ({exc})") from None
        try:
            yield
        finally:  # the default exactly (a limit read back as text is rounded), else what was set
            cur.execute("RESET memory_limit")
            if cur.execute("SELECT current_setting('memory_limit')").fetchone()[0] != before:
                cur.execute(f"SET memory_limit = {lit(str(before))}")


def available_profiles(config: Config) -> list[Profile]:
    """The shipped CSV profiles plus the practice's own (`[ingest] profiles = [...]` in the config)."""
    found = shipped_profiles()
    entries = config.raw.get("ingest", {}).get("profiles", [])
    base = config.path.parent if config.path else Path(".")
    for entry in entries:
        path = Path(entry) if Path(entry).is_absolute() else base / entry
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        found += [load_profile(f) for f in files]
    return found


def _load_file(
    warehouse: Store,
    file: InputFile,
    adapter: Adapter,
    pseudonymizer: Pseudonymizer,
    references: dict[tuple[str, str], tuple[str | None, str | None]],
    schema: dict[str, TableMeta],
    force: bool,
) -> FileResult:
    sha = file.sha256
    with warehouse.cursor() as cur:
        ((prior,),) = cur.execute(
            "SELECT max(run_id) FROM ingest_runs WHERE sha256 = ? AND status = 'succeeded'", [sha]
        ).fetchall()
    timezone = warehouse.config.timezone
    skip_reason = getattr(adapter, "skip_reason", None)
    if skip_reason:
        run_id = _record_run(warehouse, file, adapter.name, "skipped", error=skip_reason)
        return FileResult(file.name, "skipped", adapter.name, run_id, message=skip_reason)
    if prior is not None and not force:
        message = f"already loaded as run {prior} (same content); use --force to load it again"
        harvest = getattr(adapter, "harvest", None)
        if harvest is not None:
            with warehouse.cursor() as cur:
                harvest(file, ParseContext(timezone, pseudonymizer, cur, references))
        run_id = _record_run(warehouse, file, adapter.name, "skipped", error=message)
        return FileResult(file.name, "skipped", adapter.name, run_id, message=message)
    started = datetime.now(UTC)
    try:
        with warehouse.transaction() as cur, _cyclic_gc_paused():
            cur.execute("SET enable_progress_bar = false")  # the CLI shows its own progress, and none when piped
            run_id = cur.execute(
                "INSERT INTO ingest_runs (started_at, file_path, sha256, size_bytes, adapter, status) "
                "VALUES (?, ?, ?, ?, ?, 'running') RETURNING run_id",
                [started, file.name, sha, file.size, adapter.name],
            ).fetchone()[0]
            batch = adapter.parse(file, ParseContext(timezone, pseudonymizer, cur, references))
            counts = Loader(cur, schema, timezone).load(batch, run_id, file.name)
            for step in batch.post_steps:
                step(cur, run_id, timezone)
            cur.execute(
                "UPDATE ingest_runs SET finished_at = ?, adapter = ?, rows_read = ?, rows_inserted = ?, "
                "rows_updated = ?, rows_unchanged = ?, rows_rejected = ?, rows_ignored = ?, status = 'succeeded' "
                "WHERE run_id = ?",
                [
                    datetime.now(UTC),
                    batch.adapter,
                    counts.read,
                    counts.inserted,
                    counts.updated,
                    counts.unchanged,
                    counts.rejected,
                    sum(batch.ignored.values()),
                    run_id,
                ],
            )
    except IngestError as exc:
        message = str(exc) if str(exc).startswith(file.name) else f"{file.name}: {exc}"
        return _record_failure(warehouse, file, adapter.name, message, started)
    return FileResult(
        path=file.name,
        status="succeeded",
        adapter=batch.adapter,
        run_id=run_id,
        read=counts.read,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        rejected=counts.rejected,
        ignored=sum(batch.ignored.values()),
        message=_ignored_note(batch.ignored),
        warnings=list(batch.warnings),
    )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Run a file's parse and load without CPython's cyclic garbage collector.

    Why: an adapter builds millions of small dicts and lists that all stay alive until the file
    is loaded, and the collector traverses every one of them again each time it runs: about half
    the parse time of a large FHIR or queue_log file. They form no reference cycles, so reference
    counting frees them as usual; the collector resumes after the file.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _ignored_note(ignored: Counter[str]) -> str | None:
    if not ignored:
        return None
    return "ignored: " + "; ".join(f"{n} {reason}" for reason, n in ignored.most_common())


def _record_failure(
    warehouse: Store, file: InputFile, adapter: str | None, message: str, started: datetime | None = None
) -> FileResult:
    run_id = _record_run(warehouse, file, adapter, "failed", error=message, started=started)
    return FileResult(file.name, "failed", adapter, run_id, message=message)


def _record_run(
    warehouse: Store,
    file: InputFile,
    adapter: str | None,
    status: str,
    *,
    error: str,
    started: datetime | None = None,
) -> int:
    """A run that loaded nothing: `error` says why (a failure, or the run it duplicates)."""
    now = datetime.now(UTC)
    with warehouse.transaction() as cur:
        return cur.execute(
            "INSERT INTO ingest_runs (started_at, finished_at, file_path, sha256, size_bytes, adapter, status, "
            "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
            [started or now, now, file.name, file.sha256, file.size, adapter, status, error],
        ).fetchone()[0]
