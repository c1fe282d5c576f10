"""Turn file bytes into text, or say precisely why they are not text.

Exports arrive as UTF-8 (with or without a byte-order mark), sometimes UTF-16 (Windows tools;
with or without a BOM) and, from older practice systems, Windows-1252. The encoding is taken
from a BOM, else from the NUL-byte pattern of UTF-16, else it is the expected one (UTF-8 unless
a CSV profile says otherwise). A byte that is not valid in that encoding is an error naming
the line and byte offset, because guessing would silently corrupt names and codes.
"""

from __future__ import annotations

import codecs

from ingest.errors import IngestError


def sniff_encoding(data: bytes, default: str = "utf-8") -> tuple[str, int]:
    """(encoding, number of BOM bytes to skip) for `data`."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if data.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if data.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    head = data[:64]
    if len(head) >= 4 and head[1::2].count(0) >= len(head) // 4 and head[0] != 0:
        return "utf-16-le", 0
    if len(head) >= 4 and head[0::2].count(0) >= len(head) // 4 and head[1] != 0:
        return "utf-16-be", 0
    return default, 0


def decode(data: bytes, name: str, default: str = "utf-8") -> str:
    """The text of `data`; IngestError naming the line and offset of the first undecodable byte."""
    encoding, skip = sniff_encoding(data, default)
    body = data[skip:]
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = _line_of(body, exc.start, encoding)
        byte = body[exc.start : exc.start + 1].hex()
        raise IngestError(
            f"{name}: line {line}: byte 0x{byte} at offset {exc.start + skip} is not valid {encoding} "
            f"({exc.reason}); export the file as UTF-8"
        ) from None
    except LookupError:
        raise IngestError(f"{name}: unknown text encoding {encoding!r}") from None


def _line_of(body: bytes, offset: int, encoding: str) -> int:
    if encoding.startswith("utf-16"):
        return body[:offset].decode(encoding, errors="replace").count("\n") + 1
    return body.count(b"\n", 0, offset) + 1
