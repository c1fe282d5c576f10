"""Open the warehouse for writing, waiting (bounded) while another program has it open.

DuckDB lets one process write a file, or several read it, never both. The dashboard opens the
warehouse read-only for the length of each query, so a scheduled ingest that starts while a
page is loading would fail at random. Until reads go to a published snapshot instead, an ingest
waits for the file: it retries for `[ingest] lock_wait_seconds`, says once that it is waiting
and for whom, and if the file is still taken, fails with one line that says what to do (never
DuckDB's own hint to open the file read-only, which cannot help a load).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from ingest.errors import IngestError
from ingest.settings import ingest_settings
from kpis.config import Config
from kpis.errors import WarehouseError
from kpis.storage import Store

_LOCKED = "Could not set lock"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def holder(message: str) -> str:
    """Who holds the lock, from DuckDB's message: 'python3.11, PID 455', or 'another program'."""
    found = _HOLDER.search(message)
    if found is None:
        return "another program"
    return f"{Path(found['program']).name}, PID {found['pid']}"


def open_for_ingest(
    config: Config,
    *,
    wait: float | None = None,
    say: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.monotonic,
) -> Store:
    """The warehouse of `config`, open for writing; waits up to `wait` seconds (default
    `[ingest] lock_wait_seconds`) while another program has the file open."""
    limit = ingest_settings(config).lock_wait_seconds if wait is None else wait
    start = clock()
    pause = 0.2
    told = False
    while True:
        try:
            return Store(config.db_path, config=config)
        except WarehouseError as exc:
            if _LOCKED not in str(exc):
                raise
            who = holder(str(exc))
            waited = clock() - start
            if waited >= limit:
                raise IngestError(
                    f"{config.db_path} is still open in {who} (a dashboard or another ingest) after waiting "
                    f"{waited:.0f} s: run the ingest again when it is done, or wait longer with "
                    "[ingest] lock_wait_seconds"
                ) from None
            if not told:
                say(f"waiting for {config.db_path}: it is open in {who} (a dashboard or another ingest); "
                    f"trying again for up to {limit:g} s")  # fmt: skip
                told = True
            time.sleep(min(pause, max(0.0, limit - waited)))
            pause = min(pause * 2, 2.0)
