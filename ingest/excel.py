"""Excel workbooks (`.xlsx`) as CSV text, so CSV profiles read spreadsheet exports too.

Many practice-management systems export reports to Excel only. Rather than a second mapping
language, the first worksheet is turned into CSV and goes through the same profile path:
one header row, then one record per row (positions in messages are the sheet's row numbers).
Cells typed as dates or times are written as ISO 8601 (`2026-10-01`, `08:30:00`,
`2026-10-01 08:30:00`), whatever the display format in Excel, so a profile for an Excel export
uses those layouts (or none: ISO is the default).
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime, time
from typing import Any

from ingest.errors import IngestError


def xlsx_to_csv(name: str, data: bytes) -> bytes:
    """The first worksheet of the workbook `data` as UTF-8 CSV bytes."""
    from openpyxl import load_workbook  # imported here: only Excel inputs need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise IngestError(f"{name}: not a readable Excel workbook (.xlsx): {exc}") from None
    try:
        sheet = book.worksheets[0]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in sheet.iter_rows(values_only=True):
            writer.writerow([_text(value) for value in row])
    finally:
        book.close()
    return out.getvalue().encode("utf-8")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
