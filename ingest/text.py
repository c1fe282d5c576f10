"""Turn file bytes into text, or say precisely why they are not text.

Exports arrive as UTF-8 (with or without a byte-order mark), sometimes UTF-16 (Windows tools;
with or without a BOM) and, from older practice systems, Windows-1252. The encoding is taken
from a BOM, else from the NUL-byte pattern of UTF-16, else it is the expected one (UTF-8 unless
a CSV profile says otherwise). A byte that is not valid in that encoding is an error naming
the line and byte offset, because guessing would silently corrupt names and codes.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ingest.errors import IngestError

if TYPE_CHECKING:
    from ingest.sources import InputFile


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


# Characters str.splitlines() ends a line at.
_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def text_blocks(file: InputFile, default: str = "utf-8") -> Iterator[str]:
    """The text of `file` in blocks of a few megabytes, decoded as `decode` would.

    Bytes that are not valid in the encoding raise the same IngestError as `decode` (found
    again over the whole file, since only the error path needs the exact line and offset).
    """
    blocks = file.blocks()
    first = b""
    for block in blocks:  # enough bytes to sniff the encoding from
        first += block
        if len(first) >= 64:
            break
    encoding, skip = sniff_encoding(first, default)
    try:
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        yield decoder.decode(first[skip:])
        for block in blocks:
            yield decoder.decode(block)
        yield decoder.decode(b"", final=True)
    except (UnicodeDecodeError, LookupError):
        decode(file.read(), file.name, default)  # raises the error with its line and offset
        raise


def text_lines(file: InputFile, default: str = "utf-8") -> Iterator[str]:
    """The lines of `file` exactly as `decode(...).splitlines()` gives them, read block by block."""
    carry = ""
    for block in text_blocks(file, default):
        text = carry + block
        end = len(text) - 1 if text.endswith("\r") else len(text)  # a final \r may be half of \r\n
        cut = max(text.rfind(c, 0, end) for c in _BREAKS)
        if cut < 0:
            carry = text
            continue
        carry = text[cut + 1 :]
        yield from text[: cut + 1].splitlines()
    if carry:
        yield from carry.splitlines()


def text_pieces(file: InputFile, default: str = "utf-8", size: int = 0) -> Iterator[str]:
    """The text of `file` in pieces of whole lines: each piece ends just after a newline (or at
    the end of the file), so no line and no \\r\\n is ever cut; a piece holds at least `size`
    characters unless it is the last."""
    carry = ""
    for block in text_blocks(file, default):
        carry += block
        if len(carry) < size:
            continue
        cut = carry.rfind("\n")
        if cut < 0:
            continue
        yield carry[: cut + 1]
        carry = carry[cut + 1 :]
    if carry:
        yield carry
