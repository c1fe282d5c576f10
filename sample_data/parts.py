"""Part files: each shard's share of the exports, step by step, and their assembly into the exports.

A shard (one location, or the phones) writes what it produces during a step (a simulated
month, then a final step) into its own part files under `OUT/.parts/<step>/<shard>/`. Once
every shard has finished a step, `Assembler.step` appends that step's parts to the export
files in a fixed order (shard order within a step, steps in order) and deletes them. So
the bytes of every export depend on the seed and the settings only, never on how many
processes ran the shards or in which order they finished.

X12 parts hold transaction sets only; the assembler writes each file's interchange envelope
(ISA/GS ... GE/IEA) around them, numbering interchanges in assembly order.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sample_data.clock import Clock
from sample_data.writers.csv_files import CSV_HEADERS, header
from sample_data.writers.x12 import interchange_header, interchange_trailer

PARTS_DIR = ".parts"
FLUSH_ITEMS = 4096  # strings buffered per part file before they are joined and written


@dataclass(frozen=True)
class PartInfo:
    """What the assembler needs to know about one part file."""

    lines: int
    sets: int = 0  # X12: transaction sets in the part
    first: int = 0  # X12: epoch dating the interchange (its earliest submission or payment)


def step_dir(parts: Path, step: int, shard: int) -> Path:
    return parts / f"{step:03d}" / f"{shard:02d}"


class Sink:
    """One part file, written in large joined chunks; counts its lines."""

    __slots__ = ("path", "_buffer", "_file", "lines")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._buffer: list[str] = []
        self._file: IO[str] | None = None
        self.lines = 0

    def write(self, text: str) -> None:
        self._buffer.append(text)
        if len(self._buffer) >= FLUSH_ITEMS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer.clear()
        self.lines += text.count("\n")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._file.write(text)

    def close(self) -> None:
        self._flush()
        if self._file is not None:
            self._file.close()


class StepParts:
    """The part files of one shard during one step."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sinks: dict[str, Sink] = {}
        self._x12: dict[str, tuple[int, int]] = {}

    def sink(self, rel: str) -> Sink:
        """The part of export file `rel` (a path relative to the output directory)."""
        found = self._sinks.get(rel)
        if found is None:
            found = self._sinks[rel] = Sink(self.root / rel)
        return found

    def x12(self, rel: str, text: str, sets: int, first: int) -> None:
        """Transaction sets for X12 file `rel`, with the count and dating its envelope needs."""
        self.sink(rel).write(text)
        self._x12[rel] = (sets, first)

    def close(self) -> dict[str, PartInfo]:
        for sink in self._sinks.values():
            sink.close()
        return {
            rel: PartInfo(sink.lines, *self._x12.get(rel, (0, 0))) for rel, sink in self._sinks.items() if sink.lines
        }


class Assembler:
    """Builds the export files from the shards' parts, step by step."""

    def __init__(self, out: Path, clock: Clock) -> None:
        self.out = out
        self.parts = out / PARTS_DIR
        self.clock = clock
        self.lines: dict[str, int] = {}  # export file -> lines written
        self._files: dict[str, IO[bytes]] = {}
        self._controls = 0
        shutil.rmtree(self.parts, ignore_errors=True)  # left over from an interrupted run

    def create(self, rel: str) -> None:
        """Start export file `rel` afresh (with its CSV header, if it has one)."""
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self._files[rel] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.lines[rel] = 0
        columns = next((c for pattern, c in CSV_HEADERS.items() if fnmatch.fnmatch(rel, pattern)), None)
        if columns is not None:
            self.write(rel, header(columns))

    def write(self, rel: str, text: str) -> None:
        """Text the orchestrator itself writes (headers, directory resources)."""
        if rel not in self._files:
            self.create(rel)
        self._files[rel].write(text.encode("utf-8"))
        self.lines[rel] += text.count("\n")

    def step(self, step: int, shards: dict[int, dict[str, PartInfo]]) -> None:
        """Append every shard's parts of `step` to the exports, then delete them."""
        files = sorted({rel for parts in shards.values() for rel in parts})
        for rel in files:
            present = [(shard, shards[shard][rel]) for shard in sorted(shards) if rel in shards[shard]]
            x12 = rel.endswith((".837", ".835"))
            if x12:
                if rel in self._files:
                    raise RuntimeError(f"{rel}: X12 parts arrived in two steps")
                self._controls += 1
                first = min(info.first for _, info in present)
                self.write(rel, interchange_header(rel[-3:], self.clock.local(first), self._controls))
            elif rel not in self._files:
                self.create(rel)
            for shard, info in present:
                self._append(rel, step_dir(self.parts, step, shard) / rel)
                self.lines[rel] += info.lines
            if x12:
                self.write(rel, interchange_trailer(sum(info.sets for _, info in present), self._controls))
                self._files.pop(rel).close()
        shutil.rmtree(self.parts / f"{step:03d}", ignore_errors=True)

    def _append(self, rel: str, part: Path) -> None:
        """Copy a part to the end of its export: in the kernel where the system can, else through a buffer."""
        target = self._files[rel]
        target.flush()
        with open(part, "rb") as source:
            size, copied = os.fstat(source.fileno()).st_size, 0
            if hasattr(os, "copy_file_range"):
                try:
                    while copied < size:
                        done = os.copy_file_range(source.fileno(), target.fileno(), size - copied)
                        if done == 0:
                            break
                        copied += done
                except OSError:
                    if copied:
                        raise
            if copied < size:
                source.seek(copied)
                shutil.copyfileobj(source, target, 1 << 20)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        shutil.rmtree(self.parts, ignore_errors=True)
