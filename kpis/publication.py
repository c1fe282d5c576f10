"""Readers never wait for a writer: every write happens on a copy of the warehouse, published by rename.

DuckDB lets one process write a file *or* several read it. So a writer (`clinic-kpis ingest`,
`clinic-kpis refresh`, the dashboard's upload) never opens the published file for writing:

1. it takes the warehouse's write lock (`<db>.lock`, an flock; it records the writer's pid,
   start time and what it does, which the dashboard shows as "a load is running since ...");
2. copies the published file to `<db>.next` (a kernel-side copy: on a file system with reflinks,
   such as XFS or btrfs, it shares the blocks and costs nothing; on ext4 it is a full copy), or
   finds that copy ready: the previous writer made it after publishing (see 5);
3. opens the copy read-write and does its work there (ingest, then the steps registered under
   the entry-point group `clinic_kpis.before_publish`, i.e. the results store's refresh, so a
   published snapshot always holds results that match its raw tables);
4. closes it (DuckDB checkpoints on close: no WAL is left), fsyncs it and renames it over the
   published file, which is atomic on POSIX;
5. copies the newly published file to `<db>.next` for the next writer (and notes, in
   `<db>.next.ready`, which published file it copies), still holding the lock: the copy costs
   a full write of the file on ext4, and this takes it off the next load's way to publication.

A reader that opened the old file keeps reading that consistent snapshot; the next open sees
the new one. A writer that fails or is killed leaves the published file untouched; its `.next`
is discarded by the next writer. The published file is never half-written.

This module is storage-level (it knows nothing of KPIs), so ingest can use it without loading
the KPI engine: the refresh is reached through the entry point, like the CLI's commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path

import duckdb

from kpis.config import Config
from kpis.errors import WarehouseError
from kpis.storage import Store, spill_capped

BEFORE_PUBLISH = "clinic_kpis.before_publish"
DEFAULT_WAIT_SECONDS = 3600.0
_POLL_SECONDS = 0.2


class DiskFull(WarehouseError):
    """A write ran out of disk (the copy or DuckDB's spill): it was rolled back, nothing published."""


class WriterBusy(WarehouseError):
    """Another writer still held the warehouse's write lock when the wait ran out."""

    def __init__(self, message: str, writer: Writer) -> None:
        super().__init__(message)
        self.writer = writer


@dataclass(frozen=True)
class Writer:
    """A write in progress: who holds the warehouse's write lock, since when, doing what."""

    pid: int | None
    started_at: datetime | None
    what: str


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def next_path(db: Path) -> Path:
    return db.with_name(db.name + ".next")


def current_writer(db: Path) -> Writer | None:
    """The writer holding `db`'s write lock, or None when no load or refresh is running.

    Cheap (one open and a non-blocking lock test), so a dashboard can ask on every rerun.
    """
    try:
        fd = os.open(lock_path(db), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_writer(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_writer(fd: int) -> Writer:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return Writer(int(data["pid"]), datetime.fromisoformat(data["started_at"]), str(data["what"]))
    except (ValueError, KeyError, TypeError):  # the lock was taken a moment ago, its note not yet written
        return Writer(None, None, "write")


@contextmanager
def writing(
    config: Config,
    *,
    what: str,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    on_wait: Callable[[Writer], None] | None = None,
    standby: bool | None = None,
    store_class: type[Store] = Store,
) -> Iterator[Store]:
    """A read-write `Store` on a copy of the warehouse, published when the block ends without error.

    Another writer is waited for (up to `wait_seconds`; `on_wait` is told who it is, once).
    Before publishing, every step registered under `clinic_kpis.before_publish` runs on the
    copy (the results store's refresh). On an error the copy is discarded and nothing changes.
    `store_class` opens the copy (a `Warehouse` for writers that use the KPI API, e.g. the change
    log). After publishing, the copy for the next writer is prepared (`[warehouse] standby_copy =
    false` in the config, or `standby=False`, leaves it to the next writer, e.g. where disk
    space is short; the benchmark makes it apart, to time it).
    """
    db = config.db_path
    db.parent.mkdir(parents=True, exist_ok=True)
    with _write_lock(db, what, wait_seconds, on_wait):
        copy = next_path(db)
        if not standby_ready(db):
            _discard(copy)
            if db.exists():
                copy_file(db, copy)
        _ready_note(db).unlink(missing_ok=True)  # the copy is about to change
        store: Store | None = None
        spill: Path | None = None
        try:
            store = store_class(copy, config=config)  # it may migrate the copy, and spill
            spill = store.spill_folder
            yield store
            for step in _before_publish_steps():
                step(store)
        except BaseException as exc:
            if store is not None:
                store.close()
            full = _disk_full(exc, config, what, spill)  # before the copy goes: the free space it left
            _discard(copy)
            if full is not None:
                raise full from None
            raise
        store.close()
        _publish(copy, db)
        keep = config.raw.get("warehouse", {}).get("standby_copy", True) if standby is None else standby
        if keep:
            prepare_standby(db)


def _disk_full(exc: BaseException, config: Config, what: str, spill: Path | None) -> DiskFull | None:
    """The one-line error for a write that ran out of disk, or None for any other error.

    DuckDB says "No space left on device" (an IOException) when the disk filled, and raises an
    out-of-memory error naming `max_temp_directory_size` when its spill reached that cap.
    """
    capped = spill_capped(exc)
    if not capped and not (isinstance(exc, (duckdb.IOException, OSError)) and "No space left on device" in str(exc)):
        return None
    db = config.db_path.absolute()
    folders = [db.parent] + ([spill] if spill is not None and spill.absolute().parent != db.parent else [])
    free = ", ".join(f"{_free(folder)} free on the disk holding {folder}" for folder in folders)
    if capped:
        reason = f"DuckDB's spill folder {spill} reached its cap ([warehouse] max_temp_size)"
    else:
        reason = f"the disk ran out of space (the copy {next_path(db).name} and DuckDB's spill folder {spill})"
    return DiskFull(
        f"{db}: the {what} was rolled back, nothing was published: {reason}; {free}. Free space there, "
        "or point [warehouse] temp_directory at a larger disk, raise [warehouse] max_temp_size, or raise "
        "[refresh]/[ingest] memory_limit so DuckDB spills less"
    )


def _free(folder: Path) -> str:
    """The free space of the disk holding `folder` (or its nearest existing parent), e.g. "2.1 GB"."""
    path = folder
    while not path.exists() and path != path.parent:
        path = path.parent
    return f"{shutil.disk_usage(path).free / 1e9:.1f} GB"


def standby_ready(db: Path) -> bool:
    """Whether `<db>.next` is a finished copy of the file published now (made by the last writer)."""
    try:
        note = json.loads(_ready_note(db).read_text(encoding="utf-8"))
        return note == _identity(db) and next_path(db).exists() and not _wal(db).exists()
    except (OSError, ValueError):
        return False


def prepare_standby(db: Path) -> None:
    """Copy the published file for the next writer; a failure (disk full) only leaves it to that writer."""
    copy = next_path(db)
    try:
        _discard(copy)
        copy_file(db, copy)
        _fsync(copy)
        _ready_note(db).write_text(json.dumps(_identity(db)), encoding="utf-8")
    except OSError:
        _discard(copy)
    except BaseException:  # stopped (SIGTERM, Ctrl-C) while copying: no half copy left on the disk
        _discard(copy)
        raise


def _identity(db: Path) -> dict[str, int]:
    stat = db.stat()
    return {"inode": stat.st_ino, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _ready_note(db: Path) -> Path:
    return db.with_name(db.name + ".next.ready")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _before_publish_steps() -> list[Callable[[Store], None]]:
    found = sorted(entry_points(group=BEFORE_PUBLISH), key=lambda entry: entry.name)
    if not found:
        raise RuntimeError(f"no {BEFORE_PUBLISH} entry points: install clinic-kpis (`pip install -e .`)")
    return [entry.load() for entry in found]


@contextmanager
def _write_lock(db: Path, what: str, wait_seconds: float, on_wait: Callable[[Writer], None] | None) -> Iterator[None]:
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_writer(fd)
                if time.monotonic() >= deadline:
                    since = f" since {holder.started_at:%Y-%m-%d %H:%M:%S %Z}" if holder.started_at else ""
                    raise WriterBusy(
                        f"{db}: another {holder.what} (pid {holder.pid}){since} still holds the write lock "
                        f"after {wait_seconds:.0f} s; try again when it has finished",
                        holder,
                    ) from None
                if on_wait is not None and not told and holder.pid is not None:
                    on_wait(holder)
                    told = True
                time.sleep(_POLL_SECONDS)
        note = {"pid": os.getpid(), "started_at": datetime.now(UTC).isoformat(), "what": what}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def copy_file(source: Path, target: Path) -> None:
    """A kernel-side copy (reflinked where the file system can), with the source's permissions.

    A WAL beside the source (left by a writer that bypassed this module and stopped before
    checkpointing) is copied too, so the copy holds every committed change.
    """
    for src, dst in ((source, target), (_wal(source), _wal(target))):
        if not src.exists():
            continue
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            try:
                remaining = os.fstat(fin.fileno()).st_size
                while remaining > 0:
                    copied = os.copy_file_range(fin.fileno(), fout.fileno(), remaining)
                    if copied == 0:
                        break
                    remaining -= copied
            except OSError:  # no copy_file_range across these files: a plain copy
                fin.seek(0)
                fout.seek(0)
                fout.truncate()
                shutil.copyfileobj(fin, fout, 16 * 1024 * 1024)
        shutil.copymode(src, dst)


def _publish(copy: Path, db: Path) -> None:
    """Make `copy` durable, then put it in `db`'s place in one rename."""
    if _wal(copy).exists():
        raise WarehouseError(f"{copy}: DuckDB left a WAL after closing; not publishing a file that needs it")
    _fsync(copy)
    _wal(db).unlink(missing_ok=True)  # its changes were copied; the new file must not replay them
    os.replace(copy, db)
    directory = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    shutil.rmtree(copy.with_name(copy.name + ".tmp"), ignore_errors=True)  # DuckDB's spill folder


def _discard(copy: Path) -> None:
    """Remove what a previous writer that failed or was killed left of its copy."""
    for path in (copy, _wal(copy), copy.with_name(copy.name + ".ready")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    shutil.rmtree(copy.with_name(copy.name + ".tmp"), ignore_errors=True)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")
