"""Open the warehouse for a load: a copy of it, published when the load is done (kpis.publication).

Readers (the dashboard, reports) never hold up a load: it writes a copy, never the file they
read. Another load or refresh does: two writers take turns. An ingest waits for the one writing
now, bounded by `[ingest] lock_wait_seconds`, says once that it is waiting and for whom, and if
that writer is still at it, fails with one line that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ingest.errors import IngestError
from ingest.settings import ingest_settings
from kpis.config import Config
from kpis.publication import Writer, WriterBusy, writing
from kpis.storage import Store


@contextmanager
def open_for_ingest(
    config: Config, *, wait: float | None = None, say: Callable[[str], None] = lambda message: None
) -> Iterator[Store]:
    """A read-write copy of `config`'s warehouse, published when the block ends without error; waits
    up to `wait` seconds (default `[ingest] lock_wait_seconds`) while another load or refresh writes."""
    limit = ingest_settings(config).lock_wait_seconds if wait is None else wait

    def waiting(writer: Writer) -> None:
        since = f" since {writer.started_at:%H:%M:%S %Z}" if writer.started_at else ""
        say(
            f"waiting for {config.db_path}: a {writer.what} (PID {writer.pid}){since} is writing it; "
            f"trying again for up to {limit:g} s"
        )

    try:
        with writing(config, what="load", wait_seconds=limit, on_wait=waiting) as store:
            yield store
    except WriterBusy as exc:
        raise IngestError(
            f"{config.db_path} is still being written by {exc.writer.what} (PID {exc.writer.pid}) after waiting "
            f"{limit:g} s: run the ingest again when it is done, or wait longer with [ingest] lock_wait_seconds"
        ) from None
