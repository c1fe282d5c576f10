"""CSV records with the line each starts on, and a sentence for each line that is not valid CSV.

Python's `csv` module in strict mode reads any quoting, reports where a record begins (a quoted
field may span lines) and can carry on after a malformed record, so one bad line is one
quarantined record rather than a failed file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator

from ingest.batch import RecordError

# A line with its ending (\r\n, \r or \n), or the last line without one: what io.StringIO(text,
# newline="") yields, without copying the whole text first (which costs more than reading it).
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def lines(text: str) -> Iterator[str]:
    """The lines of `text` with their endings, lazily."""
    return (m.group() for m in _LINE.finditer(text))


def records(text: str | Iterable[str], delimiter: str = ",") -> Iterator[tuple[int, list[str]] | RecordError]:
    """(start line, fields) for each non-blank record, or a RecordError for an unreadable one.

    `text` is the whole text, or its lines with their endings (e.g. read piece by piece)."""
    reader = csv.reader(lines(text) if isinstance(text, str) else text, delimiter=delimiter, strict=True)
    prev = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start, prev = prev + 1, reader.line_num
            yield RecordError(start, None, "invalid_csv", _sentence(str(exc)))
            continue
        start, prev = prev + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, row


def _sentence(error: str) -> str:
    if "unexpected end of data" in error:
        return "a quoted field is never closed: the file is truncated or a closing quote is missing"
    if "expected after" in error:
        return f"a quoted field is followed by more text ({error}): a quote inside a field must be doubled"
    return f"the line is not valid CSV ({error})"
