"""Load files into the warehouse: detect, order, skip what is already loaded, one transaction per file.

This is the Python entry point behind `clinic-kpis ingest` and the dashboard's upload box:

    with Store.open(db) as wh:
        results = ingest_paths(wh, ["exports/"])

A file that cannot be read fails on its own (its transaction is rolled back and a `failed` run
records why); the other files still load. Nothing is raised for a bad file: each result says
what happened, and the caller decides how to report it.

Files may come in any order and in separate runs (docs/contracts.md, "Loading in any order"):
after each file, what follows from it is brought up to date in the same transaction — rows
whose references now resolve, updates that waited for a row it brought — so loading a month's
exports one file per run ends with the same warehouse as loading them all at once.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ingest.adapters import Adapter
from ingest.adapters.csv_profile import Profile, load_profile, profile_references, shipped_profiles
from ingest.adapters.fhir import REFERENCES, WAITING_TARGETS
from ingest.batch import Chunk
from ingest.context import Lookup, ParseContext
from ingest.detect import check_format, choose
from ingest.errors import IngestError
from ingest.load import Loader, TableMeta, read_schema
from ingest.pseudonymize import Pseudonymizer
from ingest.references import Reference, affected, waiting_derivations
from ingest.settings import IngestSettings, ingest_settings
from ingest.sources import InputFile, Unusable, Upload, expand
from kpis.config import ENV_SECRET, Config, private_files
from kpis.storage import (
    Store,
    memory_limited,
    memory_restored,
    memory_unlimited,
    release_freed_memory,
    spill_capped,
)

NOT_RECOGNIZED = "not a recognized export (FHIR, X12 837/835, Asterisk queue_log or CDR, or a CSV matching a profile)"


@dataclass
class FileResult:
    """What happened to one file. `status` is succeeded, failed or skipped.

    A succeeded file balances: read = inserted + updated + unchanged + stale + waiting + rejected.
    `derived` counts rows written as a consequence (ledger charges, references resolved, waiting
    updates applied), outside that balance."""

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
    stale: int = 0
    waiting: int = 0
    derived: int = 0
    message: str | None = None
    warnings: list[str] = field(default_factory=list)


Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class _Run:
    """What every file of one call shares."""

    warehouse: Store
    pseudonymizer: Pseudonymizer
    schema: dict[str, TableMeta]
    settings: IngestSettings
    dates: tuple[datetime, datetime]
    references: list[Reference]
    force: bool


def ingest_paths(
    warehouse: Store,
    paths: list[str | Path | Upload],
    *,
    fmt: str = "auto",
    force: bool = False,
    progress: Progress | None = None,
    rotate_secret: bool = False,
) -> list[FileResult]:
    """Load every file behind `paths` (files, folders, .zip, .gz, or `Upload`s) and say what happened to each.

    `fmt` is auto, fhir, x12, queue-log, call-log or csv:PROFILE (a profile name or .toml path);
    a bad `fmt`, a missing path, a bad `[ingest]` config or a pseudonymization secret other than
    the one the warehouse was loaded with raises IngestError (or ConfigError) before anything
    loads; `rotate_secret` accepts a new secret on purpose. A file whose content was loaded
    before (same sha256) is skipped unless `force`. `progress(name, done, total)` is called
    before each file.
    """
    _tighten(warehouse.path)
    with private_files():  # what this writes to disk (the WAL, DuckDB's spill files) is the owner's only
        return _ingest(warehouse, paths, fmt, force, progress, rotate_secret)


def _tighten(db: Path) -> None:
    """Make a warehouse created before files were private (0644) readable by its owner only."""
    for path in (db, db.with_name(db.name + ".wal")):
        with contextlib.suppress(OSError):  # not there (no log yet), or not ours to change
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)


def _ingest(
    warehouse: Store,
    paths: list[str | Path | Upload],
    fmt: str,
    force: bool,
    progress: Progress | None,
    rotate_secret: bool,
) -> list[FileResult]:
    config = warehouse.config
    settings = ingest_settings(config)
    secret = config.secret()
    pseudonymizer = Pseudonymizer(secret)
    profiles = available_profiles(config, settings)
    profile = check_format(fmt, profiles)
    files = list(expand(paths))
    rotated = _check_secret(warehouse, secret, rotate_secret)
    references = [*REFERENCES, *(ref for p in _distinct(profiles) for ref in profile_references(p))]
    results: dict[int, FileResult] = {}
    plan: list[tuple[int, Adapter, InputFile]] = []
    for i, file in enumerate(files):
        if isinstance(file, Unusable):
            if file.status == "failed":
                results[i] = _record_failure(warehouse, file.name, None, None, None, file.message)
            else:
                results[i] = FileResult(file.name, "skipped", message=file.message)
            continue
        try:
            adapter = choose(file, fmt, profile, profiles)
        except IngestError as exc:
            results[i] = _record_failure(warehouse, file.name, file.sha256, file.size, None, f"{file.name}: {exc}")
            continue
        if adapter is None:
            if file.discovered:
                results[i] = FileResult(file.name, "skipped", message=NOT_RECOGNIZED)
            else:
                message = f"{file.name}: {NOT_RECOGNIZED}"
                results[i] = _record_failure(warehouse, file.name, file.sha256, file.size, None, message)
            continue
        plan.append((i, adapter, file))
    plan.sort(key=lambda item: item[1].rank)
    with warehouse.cursor() as cur:
        schema = read_schema(cur)
    run = _Run(warehouse, pseudonymizer, schema, settings, settings.date_range(), references, force)
    with _bounded_memory(warehouse, settings.memory_limit):
        for done, (i, adapter, file) in enumerate(plan):
            if progress is not None:
                progress(file.name, done, len(plan))
            results[i] = _load_file(run, file, adapter)
    if progress is not None:
        progress("", len(plan), len(plan))
    ordered = [results[i] for i in sorted(results)]
    if rotated and ordered:
        ordered[0].warnings.insert(0, rotated)
    return ordered


def _distinct(profiles: list[Profile]) -> list[Profile]:
    """One profile per source (a practice's own copy of a shipped profile replaces it)."""
    return list({p.source: p for p in profiles}.values())


# The fingerprint of the pseudonymization key: an HMAC of a fixed text, so it identifies the key
# without revealing it, and cannot be computed without it.
_FINGERPRINT_TEXT = b"clinic-kpis pseudonymization key fingerprint, version 1"


def key_fingerprint(secret: bytes) -> str:
    return hmac.new(secret, _FINGERPRINT_TEXT, hashlib.sha256).hexdigest()


def _check_secret(warehouse: Store, secret: bytes, rotate: bool) -> str | None:
    """Refuse a key other than the one the warehouse was loaded with: it would silently give every
    patient a second pseudonym. The first load records the key's fingerprint; `rotate` records a
    new one on purpose (and the returned warning says what that means)."""
    new = key_fingerprint(secret)
    with warehouse.transaction(kpi_data=False) as cur:
        row = cur.execute("SELECT value FROM warehouse_settings WHERE name = 'key_fingerprint'").fetchone()
        if row is not None and row[0] == new:
            return None
        if row is not None and not rotate:
            raise IngestError(
                f"the pseudonymization secret is not the one {warehouse.config.db_path} was loaded with "
                f"(key fingerprint {new[:12]}, the warehouse's {row[0][:12]}): loading with it would give every "
                f"patient a second pseudonym. Use the original secret ({ENV_SECRET} or "
                f"{warehouse.config.secret_file}); to change it on purpose, run `clinic-kpis ingest --rotate-secret` "
                "with the new one and load every export again with --force (see docs/contracts.md, "
                "'The pseudonymization key')"
            )
        cur.execute(
            "INSERT INTO warehouse_settings (name, value, set_at) VALUES ('key_fingerprint', ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, set_at = excluded.set_at",
            [new, datetime.now(UTC)],
        )
    if row is None:
        return None
    return (
        f"the pseudonymization secret changed on purpose (fingerprint {row[0][:12]} -> {new[:12]}): rows loaded before "
        "keep their old pseudonyms until their exports are loaded again with --force"
    )


@contextmanager
def _bounded_memory(warehouse: Store, limit: str) -> Iterator[None]:
    """Bound DuckDB's buffer pool during ingest (`[ingest] memory_limit`); the previous limit comes
    back afterwards (the dashboard's queries keep theirs). DuckDB's default is 80% of the
    machine's RAM, and a large file's staged rows, sorts and joins then grow towards that instead
    of spilling. Beyond the limit DuckDB spills to its temp directory, by default
    `<warehouse>.tmp` next to the warehouse file (it cannot be switched once used, so it is left
    as DuckDB set it)."""
    where = f"{warehouse.config.path}: [ingest]" if warehouse.config.path else "[ingest]"
    with warehouse.cursor() as cur, memory_limited(cur, limit, where, IngestError):
        yield


def available_profiles(config: Config, settings: IngestSettings | None = None) -> list[Profile]:
    """The shipped CSV profiles plus the practice's own (`[ingest] profiles = [...]` in the config)."""
    settings = settings or ingest_settings(config)
    found = shipped_profiles()
    base = config.path.parent if config.path else Path(".")
    for entry in settings.profiles:
        path = Path(entry) if Path(entry).is_absolute() else base / entry
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        found += [load_profile(f) for f in files]
    return found


def _load_file(run: _Run, file: InputFile, adapter: Adapter) -> FileResult:
    """Load one file in its own transaction; if DuckDB runs out of memory under `[ingest]
    memory_limit`, load it again under DuckDB's own limit rather than fail.

    Why: not all of DuckDB's work can spill to disk (its key indexes must fit in memory, and some
    operations reserve memory outside the buffer pool's limit), so a limit that suits most files can
    be too small for one at 10 M appointments; the file's transaction was rolled back, so the second
    try starts clean. The result says so. A spill that reached `[warehouse] max_temp_size` is the
    disk's cap, not too little memory: the file fails saying so (`_spill_capped`)."""
    try:
        return _load_once(run, file, adapter)
    except duckdb.OutOfMemoryException as exc:
        if spill_capped(exc):
            return _spill_capped(run, file, adapter)
    with run.warehouse.cursor() as cur, memory_unlimited(cur):
        try:
            result = _load_once(run, file, adapter)
        except duckdb.OutOfMemoryException as exc:
            if spill_capped(exc):
                return _spill_capped(run, file, adapter)
            reason = str(exc).splitlines()[0]
            message = f"{file.name}: DuckDB ran out of memory loading it, even above [ingest] memory_limit ({reason})"
            return _record_failure(run.warehouse, file.name, file.sha256, file.size, adapter.name, message)
    if result.status == "succeeded":
        result.warnings.append(
            f"it needed more memory than [ingest] memory_limit = {run.settings.memory_limit}, so it was loaded "
            "under DuckDB's own limit (80% of RAM), as are the files after it if the limit cannot be met again; "
            "raise [ingest] memory_limit to keep loads of this size bounded"
        )
    return result


def _spill_capped(run: _Run, file: InputFile, adapter: Adapter) -> FileResult:
    """The failure of a file whose load filled DuckDB's spill folder up to `[warehouse] max_temp_size`.

    DuckDB raises it as an out-of-memory error, but it is the disk's cap: loading the file again under
    DuckDB's own limit (as for too little memory) would only trade the cap for the memory bound, and
    "out of memory" would send the reader to the wrong setting. The file was rolled back."""
    warehouse = run.warehouse
    message = (
        f"{file.name}: DuckDB's spill folder {warehouse.spill_folder} reached its cap ([warehouse] max_temp_size) "
        "while loading it; nothing of it was loaded. Raise [warehouse] max_temp_size, point [warehouse] "
        "temp_directory at a larger disk, or raise [ingest] memory_limit so DuckDB spills less"
    )
    return _record_failure(warehouse, file.name, file.sha256, file.size, adapter.name, message)


class _LoadedBefore(Exception):  # noqa: N818 - not an error: rolls a file's transaction back
    """The content a file's parse read was loaded before, as run `prior`: its transaction is rolled back."""

    def __init__(self, prior: int) -> None:
        super().__init__(prior)
        self.prior = prior


def _load_once(run: _Run, file: InputFile, adapter: Adapter) -> FileResult:
    warehouse = run.warehouse
    skip_reason = getattr(adapter, "skip_reason", None)
    if skip_reason:
        run_id = _record_run(warehouse, file.name, file.sha256, file.size, adapter.name, "skipped", error=skip_reason)
        return FileResult(file.name, "skipped", adapter.name, run_id, message=skip_reason)
    if not run.force and _hash_first(warehouse, file):
        with warehouse.cursor() as cur:
            prior = _loaded_as(cur, file.sha256)
        if prior is not None:
            return _skipped(warehouse, file, adapter, prior)
    timezone = warehouse.config.timezone
    started = datetime.now(UTC)
    try:
        with (
            warehouse.cursor() as limit,
            memory_restored(limit),
            warehouse.transaction(tracked=True) as cur,
            _cyclic_gc_paused(),
        ):
            cur.execute("SET enable_progress_bar = false")  # the CLI shows its own progress, and none when piped
            # the checksum is known once the parse has read the file (`InputFile.blocks`): set at the end
            run_id = cur.execute(
                "INSERT INTO ingest_runs (started_at, file_path, size_bytes, adapter, status) "
                "VALUES (?, ?, ?, ?, 'running') RETURNING run_id",
                [started, file.name, file.size, adapter.name],
            ).fetchone()[0]
            lookup = Lookup(cur)
            batch = adapter.parse(file, ParseContext(timezone, run.pseudonymizer, run.dates))
            if batch.chunks is not None:
                batch.chunks = _released_when_read(batch.chunks)
            loader = Loader(cur, run.schema, timezone, run.dates)
            counts = loader.load(batch, run_id, file.name)
            derived = sum(loader.derive(derivation, run_id) for derivation in batch.derived)
            derived += _follow_up(loader, lookup, run, run_id)
            for check in batch.after_load:
                check(lookup, run_id)
            sha = file.sha256  # of the content the parse read
            prior = _loaded_as(cur, sha)
            if prior is not None and not run.force:  # changed since its size was taken, to content loaded before
                raise _LoadedBefore(prior)
            if prior is not None:  # loaded again: this run's rejects replace the earlier runs' of the same content
                cur.execute(
                    "DELETE FROM rejects WHERE run_id IN (SELECT run_id FROM ingest_runs WHERE sha256 = ? "
                    "AND run_id <> ?)",
                    [sha, run_id],
                )
            cur.execute(
                "UPDATE ingest_runs SET finished_at = ?, sha256 = ?, adapter = ?, rows_read = ?, rows_inserted = ?, "
                "rows_updated = ?, rows_unchanged = ?, rows_rejected = ?, rows_ignored = ?, rows_stale = ?, "
                "rows_waiting = ?, rows_derived = ?, status = 'succeeded' WHERE run_id = ?",
                [
                    datetime.now(UTC),
                    sha,
                    batch.adapter,
                    counts.read,
                    counts.inserted,
                    counts.updated,
                    counts.unchanged,
                    counts.rejected,
                    sum(batch.ignored.values()),
                    counts.stale,
                    counts.waiting,
                    derived,
                    run_id,
                ],
            )
            # The COMMIT merges the key index of the rows the file added into the table's: for a
            # few million new keys (~50-80 bytes each) DuckDB needs both at once, and it cannot
            # spill them (the fact tables have none since migration 009; the small ones do). Out
            # of memory there, DuckDB invalidates the whole database (a fatal error, not one the
            # file can be loaded again after), so the commit alone runs under DuckDB's own limit;
            # the configured one is back right after it (memory_restored).
            cur.execute("RESET memory_limit")
    except _LoadedBefore as loaded:
        return _skipped(warehouse, file, adapter, loaded.prior)
    except IngestError as exc:
        message = str(exc) if str(exc).startswith(file.name) else f"{file.name}: {exc}"
        return _record_failure(warehouse, file.name, file.sha256, file.size, adapter.name, message, started)
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
        stale=counts.stale,
        waiting=counts.waiting,
        derived=derived,
        message=_notes(batch.ignored, counts.stale, counts.waiting, derived),
        warnings=list(batch.warnings),
    )


def _hash_first(warehouse: Store, file: InputFile) -> bool:
    """Whether to look for the file's checksum among the loaded ones before its parse: when it is
    known already (an archive member's), or when a file of its size was loaded (only then can its
    content have been, and it is skipped unparsed). Any other file is hashed in its parse's own
    read (`InputFile.blocks`) instead of being read once more for it first."""
    if file.hashed:
        return True
    with warehouse.cursor() as cur:
        ((found,),) = cur.execute(
            "SELECT count(*) FROM ingest_runs WHERE size_bytes = ? AND status = 'succeeded'", [file.size]
        ).fetchall()
    return bool(found)


def _loaded_as(cur: duckdb.DuckDBPyConnection, sha: str) -> int | None:
    """The last run that loaded content of checksum `sha`, if any."""
    ((prior,),) = cur.execute(
        "SELECT max(run_id) FROM ingest_runs WHERE sha256 = ? AND status = 'succeeded'", [sha]
    ).fetchall()
    return prior


def _skipped(warehouse: Store, file: InputFile, adapter: Adapter, prior: int) -> FileResult:
    message = f"already loaded as run {prior} (same content); use --force to load it again"
    run_id = _record_run(warehouse, file.name, file.sha256, file.size, adapter.name, "skipped", error=message)
    return FileResult(file.name, "skipped", adapter.name, run_id, message=message)


# Each round reacts to what the previous one changed (a Schedule loaded makes slots resolve; no
# chain is longer than that today); the bound only guards against a cycle.
_ROUNDS = 5


def _follow_up(loader: Loader, lookup: Lookup, run: _Run, run_id: int) -> int:
    """Bring up to date what follows from the tables this file changed: updates that waited for a
    row it brought, and rows whose references now resolve. Returns the rows written."""
    written = 0
    seen: dict[str, int] = {}
    for _ in range(_ROUNDS):
        changed = {table for table, n in loader.changed.items() if n != seen.get(table, 0)}
        if not changed:
            break
        seen = dict(loader.changed)
        for derivation, table, writer in waiting_derivations(lookup, run.schema, WAITING_TARGETS, changed):
            written += loader.derive(derivation, run_id)
            loader.clear_waiting(table, writer)
        for reference in affected(run.references, changed):
            written += loader.derive(reference.derivation(run.schema, run_id), run_id)
    return written


def _released_when_read(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """`chunks`, then what their parse freed given back (`release_freed_memory`) once the last is read.

    Why: the parse's objects and Arrow buffers are freed by then, but glibc's heap and Arrow's pool
    keep their pages, and the file's SQL steps after them (the checks and writes over the staged
    rows, the COMMIT) allocate DuckDB's memory, not theirs: the process held both at once. Only
    the young generation is collected: the parse runs with the collector paused
    (`_cyclic_gc_paused`), so whatever cycles it left are all there."""
    yield from chunks
    release_freed_memory(generation=0)


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


def _notes(ignored: Counter[str], stale: int, waiting: int, derived: int) -> str | None:
    """One line on what the counts alone do not say."""
    notes = []
    if stale:
        notes.append(f"stale: {stale} record(s) older than the version already loaded, kept the newer")
    if waiting:
        notes.append(
            f"waiting: {waiting} update(s) for rows not loaded yet (e.g. chart notes before their visits), "
            "applied when those rows are loaded"
        )
    if derived:
        notes.append(f"derived: {derived} row(s) written as a consequence (ledger charges, references resolved)")
    if ignored:
        notes.append("ignored: " + "; ".join(f"{n} {reason}" for reason, n in ignored.most_common()))
    return "; ".join(notes) or None


def _record_failure(
    warehouse: Store,
    name: str,
    sha: str | None,
    size: int | None,
    adapter: str | None,
    message: str,
    started: datetime | None = None,
) -> FileResult:
    run_id = _record_run(warehouse, name, sha, size, adapter, "failed", error=message, started=started)
    return FileResult(name, "failed", adapter, run_id, message=message)


def _record_run(
    warehouse: Store,
    name: str,
    sha: str | None,
    size: int | None,
    adapter: str | None,
    status: str,
    *,
    error: str,
    started: datetime | None = None,
) -> int:
    """A run that loaded nothing: `error` says why (a failure, or the run it duplicates)."""
    now = datetime.now(UTC)
    with warehouse.transaction(tracked=True) as cur:
        return cur.execute(
            "INSERT INTO ingest_runs (started_at, finished_at, file_path, sha256, size_bytes, adapter, status, "
            "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
            [started or now, now, name, sha, size, adapter, status, error],
        ).fetchone()[0]
