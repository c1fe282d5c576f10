"""Input files: expand the paths a user gives into files with their bytes and checksum.

Folders are walked recursively, `.zip` archives yield their members, `.gz` files their
decompressed content and Excel workbooks (`.xlsx`) their first sheet as CSV, so an export can
be loaded the way it was delivered. Each input keeps a
display name (`archive.zip/fhir/Appointment.ndjson`) used in every message and in lineage.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import IngestError
from ingest.excel import xlsx_to_csv


@dataclass(frozen=True)
class InputFile:
    """One file to load: where it came from, its content and its checksum."""

    name: str
    data: bytes
    discovered: bool  # found inside a folder or archive (not named by the user)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


def expand(paths: list[str | Path]) -> Iterator[InputFile]:
    """Every input file behind `paths`, in a stable order (folders sorted by path)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))):
                yield from _open(child, discovered=True)
        elif path.is_file():
            yield from _open(path, discovered=False)
        else:
            raise IngestError(f"{path}: no such file or folder")


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _open(path: Path, *, discovered: bool) -> Iterator[InputFile]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read ({exc.strerror})") from None
    yield from _unpack(str(path), data, discovered)


def _unpack(name: str, data: bytes, discovered: bool) -> Iterator[InputFile]:
    lower = name.lower()
    if lower.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = sorted(i.filename for i in archive.infolist() if not i.is_dir())
            for member in members:
                if _hidden(Path(member)) or member.startswith("__MACOSX/"):
                    continue
                yield from _unpack(f"{name}/{member}", archive.read(member), True)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise IngestError(f"{name}: not a readable zip archive ({exc})") from None
    elif lower.endswith(".gz"):
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise IngestError(f"{name}: not a readable gzip file ({exc})") from None
        yield from _unpack(name[:-3], inner, discovered)
    elif lower.endswith(".xlsx"):
        yield InputFile(name=name, data=xlsx_to_csv(name, data), discovered=discovered)
    else:
        yield InputFile(name=name, data=data, discovered=discovered)
