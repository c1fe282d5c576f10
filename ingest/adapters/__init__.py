"""One adapter per export format. Each only parses: it turns a file into a `Batch` of canonical rows.

An adapter has a `name` (recorded in `ingest_runs.adapter`), a `rank` (files of a folder load
in rank order, so that what others refer to — practitioners, schedules, service requests —
loads first) and `parse(file, ctx) -> Batch`.
"""

from __future__ import annotations

from typing import Protocol

from ingest.batch import Batch
from ingest.context import ParseContext
from ingest.sources import InputFile


class Adapter(Protocol):
    name: str
    rank: int

    def parse(self, file: InputFile, ctx: ParseContext) -> Batch: ...
