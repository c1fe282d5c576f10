"""Input files: expand the paths a user gives into files that know where their bytes are.

Folders are walked recursively, `.zip` archives yield their members, `.gz` files their
decompressed content and Excel workbooks (`.xlsx`) their first sheet as CSV, so an export can
be loaded the way it was delivered. Each input keeps a
display name (`archive.zip/fhir/Appointment.ndjson`) used in every message and in lineage.

Why lazy: a practice's exports can be many gigabytes (2.8 GB at a million appointments), and
holding every file's bytes from the start of a run to its end was most of ingest's memory. An
`InputFile` holds only how to open its content; an adapter reads it when its file loads (as a
stream, or whole with `read()`), and nothing keeps the bytes after that. The checksum is
computed over a stream, so skipping a file loaded before never needs its bytes in memory.

Compressed content (an archive member, a `.gz`) is read through once while the paths are
expanded, to compute its checksum and size: a corrupt archive, member or gzip stream is then
found before anything loads and named in its own failure (`Unusable`), while every other file
still loads; the checksum found then goes with the file (`known_sha256`). A plain file is hashed
in the read that parses it (`blocks`, `read`): its bytes are read once, and the checksum is that
of the content loaded. What is left out on purpose is said too: hidden files (a name starting with a
dot), and archive members whose name would point outside the archive (`../`, `/etc/...`).
Names are shown with control characters escaped, so every message stays one line.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ingest.errors import IngestError

_BLOCK = 4 * 1024 * 1024  # bytes read at a time when streaming (checksums, text)


@dataclass(frozen=True)
class InputFile:
    """One file to load: its display name, and how to open its content (never the content itself).

    `open()` streams the content, `read()` returns all of it, `head(n)` its first bytes. `sha256`
    is that of the first whole read (`blocks` to the end, or `read`), or of a read of its own if
    nothing has read the file whole yet; `hashed` says whether it is known without reading.
    """

    name: str
    opener: Callable[[], BinaryIO] = field(repr=False, compare=False)
    discovered: bool  # found inside a folder or archive (not named by the user)
    known_size: int | None = field(default=None, repr=False, compare=False)
    known_sha256: str | None = field(default=None, repr=False, compare=False)

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """The content as a binary stream."""
        stream = self.opener()
        try:
            yield stream
        finally:
            stream.close()

    def read(self) -> bytes:
        """All of the content (for the formats that are parsed as a whole, e.g. X12)."""
        with self.open() as stream:
            data = stream.read()
        if not self.hashed:
            self._digested(hashlib.sha256(data).hexdigest(), len(data))
        return data

    def head(self, n: int) -> bytes:
        """The first `n` bytes (detection looks at no more)."""
        with self.open() as stream:
            return stream.read(n)

    def blocks(self) -> Iterator[bytes]:
        """The content in blocks of a few megabytes, hashed as they are read (the parse's read gives
        the checksum: the file is not read a second time for it). A read stopped early hashes nothing."""
        sha = None if self.hashed else hashlib.sha256()
        size = 0
        with self.open() as stream:
            while block := stream.read(_BLOCK):
                if sha is not None:
                    sha.update(block)
                    size += len(block)
                yield block
        if sha is not None:
            self._digested(sha.hexdigest(), size)

    def _digested(self, sha: str, size: int) -> None:
        """Keep the checksum and size of a whole read (the first one's: what was loaded)."""
        self.__dict__.setdefault("_digest", (sha, size))  # frozen: not through __setattr__

    @property
    def hashed(self) -> str | None:
        """The checksum if it is known without reading the file (given, or from a whole read so far)."""
        return self.known_sha256 or self.__dict__.get("_digest", (None,))[0]

    @property
    def sha256(self) -> str:
        if not self.hashed:
            for _ in self.blocks():
                pass
        return self.hashed

    @property
    def size(self) -> int:
        if self.known_size is not None:
            return self.known_size
        if "_digest" in self.__dict__:
            return self.__dict__["_digest"][1]
        return sum(len(block) for block in self.blocks())  # a whole read (which hashes it too)


@dataclass(frozen=True)
class Unusable:
    """A path or archive member that is not loaded, and why: `skipped` on purpose (a hidden file,
    a member named outside its archive) or `failed` (a corrupt archive, member or gzip stream)."""

    name: str
    status: str
    message: str


@dataclass(frozen=True)
class Upload:
    """An export handed over as bytes (the dashboard's upload box): loaded under its own name, from
    memory, never written to disk (exports hold patient details)."""

    name: str
    content: bytes = field(repr=False)


def printable(name: str) -> str:
    """`name` with control characters escaped (`\\n`), so a message naming it stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


def expand(paths: list[str | Path | Upload]) -> Iterator[InputFile | Unusable]:
    """Every input file behind `paths`, in a stable order (folders in natural order: `2026-9`
    before `2026-10`), and what is not loaded with the reason. A path that does not exist or
    cannot be read raises IngestError before anything loads."""
    for raw in paths:
        if isinstance(raw, Upload):
            data = raw.content
            yield from _unpack(printable(raw.name), lambda data=data: io.BytesIO(data), False, len(data))
            continue
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield from _open(path, discovered=False)
        else:
            raise IngestError(f"{printable(str(path))}: no such file or folder")


def _walk(folder: Path) -> Iterator[InputFile | Unusable]:
    """The files under `folder`; hidden ones (and hidden folders, once each) are noted, not loaded."""
    found: list[tuple[Path, bool]] = []
    for top, dirs, files in os.walk(folder):
        for d in [d for d in dirs if d.startswith(".")]:
            dirs.remove(d)
            found.append((Path(top) / d, True))
        found += [(Path(top) / f, f.startswith(".")) for f in files]
    for path, hidden in sorted(found, key=lambda item: natural_key(str(item[0].relative_to(folder)))):
        if hidden:
            kind = "folder" if path.is_dir() else "file"
            yield Unusable(printable(str(path)), "skipped", f"hidden {kind} (its name starts with a dot): not loaded")
        elif path.is_file():
            yield from _open(path, discovered=True)


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sorts numbers by value: `exports/2026-9` before `exports/2026-10`."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part]


def _open(path: Path, *, discovered: bool) -> Iterator[InputFile | Unusable]:
    name = printable(str(path))
    try:
        with open(path, "rb"):  # readable now (a permission problem is found before anything loads)
            size = path.stat().st_size
    except OSError as exc:
        raise IngestError(f"{name}: cannot be read ({exc.strerror})") from None
    yield from _unpack(name, lambda: open(path, "rb"), discovered, size)  # noqa: SIM115 - closed by InputFile.open


def _unpack(
    name: str, opener: Callable[[], BinaryIO], discovered: bool, size: int | None, sha256: str | None = None
) -> Iterator[InputFile | Unusable]:
    lower = name.lower()
    if lower.endswith(".zip"):
        try:
            with opener() as raw, zipfile.ZipFile(raw) as archive:
                members = sorted((i.filename for i in archive.infolist() if not i.is_dir()), key=natural_key)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            yield Unusable(name, "failed", f"{name}: not a readable zip archive ({exc})")
            return
        resource_forks = 0
        for member in members:
            shown = f"{name}/{printable(member)}"
            if member.startswith("__MACOSX/"):
                resource_forks += 1
            elif member.startswith(("/", "\\")) or ".." in Path(member.replace("\\", "/")).parts:
                yield Unusable(shown, "skipped", "the member's name points outside the archive: not loaded")
            elif any(part.startswith(".") for part in Path(member).parts):
                yield Unusable(shown, "skipped", "hidden file (its name starts with a dot): not loaded")
            else:
                inner = _checked(
                    InputFile(shown, _member_opener(opener, member), True),
                    (zipfile.BadZipFile, zlib.error, EOFError),
                    f"{shown}: not a readable archive member",
                )
                if isinstance(inner, Unusable):
                    yield inner
                else:
                    yield from _unpack(inner.name, inner.opener, True, inner.size, inner.known_sha256)
        if resource_forks:
            yield Unusable(
                f"{name}/__MACOSX/", "skipped", f"{resource_forks} macOS resource-fork member(s): not exports"
            )
    elif lower.endswith(".gz"):
        inner = _checked(
            InputFile(name[:-3], lambda: gzip.GzipFile(fileobj=opener(), mode="rb"), discovered),
            (OSError, EOFError, zlib.error),
            f"{name}: not a readable gzip file",
        )
        if isinstance(inner, Unusable):
            yield Unusable(name, inner.status, inner.message)
        else:
            yield from _unpack(inner.name, inner.opener, discovered, inner.size, inner.known_sha256)
    elif lower.endswith(".xlsx"):
        yield _workbook(name, opener, discovered)
    else:
        yield InputFile(name=name, opener=opener, discovered=discovered, known_size=size, known_sha256=sha256)


def _checked(file: InputFile, errors: tuple[type[BaseException], ...], message: str) -> InputFile | Unusable:
    """`file` with its checksum computed now: compressed content is verified while the paths are
    expanded, so a corrupt member fails on its own before anything loads."""
    try:
        file.sha256  # noqa: B018 - computes and caches the checksum and size
    except errors as exc:
        return Unusable(file.name, "failed", f"{message} ({exc})")
    return InputFile(file.name, file.opener, file.discovered, known_size=file.size, known_sha256=file.sha256)


def _member_opener(opener: Callable[[], BinaryIO], member: str) -> Callable[[], BinaryIO]:
    """Opens one member of the archive `opener` opens (the archive is closed with the member)."""

    def open_member() -> BinaryIO:
        raw = opener()
        try:
            archive = zipfile.ZipFile(raw)
            stream = archive.open(member)
        except BaseException:
            raw.close()
            raise
        return _Closing(stream, (archive, raw))

    return open_member


def _workbook(name: str, opener: Callable[[], BinaryIO], discovered: bool) -> InputFile:
    """A workbook's first sheet as CSV. Converted when listed, as before: openpyxl reads the
    whole workbook anyway, a sheet holds at most about a million rows, and an unreadable
    workbook is then an error before anything loads."""
    from ingest.excel import xlsx_to_csv

    with opener() as raw:
        data = xlsx_to_csv(name, raw.read())
    return InputFile(name=name, opener=lambda: io.BytesIO(data), discovered=discovered, known_size=len(data))


class _Closing(io.RawIOBase):
    """A read-only stream that also closes the objects it was opened through."""

    def __init__(self, stream: BinaryIO, also: tuple) -> None:
        super().__init__()
        self._stream, self._also = stream, also

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            for obj in self._also:
                obj.close()
        super().close()
