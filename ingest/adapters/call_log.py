"""Asterisk CDR call log (`cdr_csv`, Master.csv) -> calls, for PBXs that keep no queue_log.

The file has no header. Asterisk's default column order is accountcode, src, dst, dcontext,
clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
disposition, amaflags, uniqueid, userfield (18 columns); with `newcdrcolumns` it appends
peeraccount, linkedid and sequence (21 columns). Times are the PBX's local time (taken as the
practice's zone). Caller numbers and names (src, clid) and the free-text userfield are never
stored, and are masked in rejected records.

A CDR row is one call leg: `queue` is the queue name when the call went to the Queue
application (else the dialled destination), the wait is `duration - billsec` (the seconds
before the answer), and the disposition gives the outcome: ANSWERED -> answered, NO ANSWER ->
abandoned (nobody picked up while the caller waited), BUSY / FAILED / CONGESTION -> other.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from ingest import csv_lines
from ingest.adapters.queue_log import COLUMNS  # one calls row layout for both phone formats
from ingest.batch import Batch, Chunk, Phase, RecordError, Target, tuples_to_arrow
from ingest.context import ParseContext
from ingest.pseudonymize import MASK
from ingest.sources import InputFile
from ingest.text import text_pieces

SOURCE = "asterisk_cdr"
FIELDS = [
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
]
EXTENDED = [*FIELDS, "peeraccount", "linkedid", "sequence"]
PHI = {"src", "clid", "userfield"}  # caller number and name; userfield is free text
OUTCOMES = {"ANSWERED": "answered", "NO ANSWER": "abandoned", "BUSY": "other", "FAILED": "other", "CONGESTION": "other"}
CHUNK_ROWS = 50_000  # CDR lines mapped and handed to the loader at a time
CHUNK_CHARS = 4 << 20  # characters of text read at a time
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def looks_like_cdr(head: str) -> bool:
    """An 18- or 21-field first line whose start and end columns are Asterisk date-times.

    Read leniently: a first line with a broken quote is still a CDR line (and is then
    quarantined by the strict reader)."""
    first = next(iter(head.lstrip().splitlines()), "")  # any line ending, old Mac CR included
    row = next(csv.reader([first]), [])
    return len(row) in (len(FIELDS), len(EXTENDED)) and bool(_TIME.match(row[9])) and bool(_TIME.match(row[11]))


class CallLogAdapter:
    name = "call_log"
    rank = 5

    def parse(self, file: InputFile, ctx: ParseContext) -> Batch:
        batch = Batch(adapter=self.name, position_kind="line")
        # masked only when asked for, i.e. for the rejected lines, found again in the file
        batch.records = lambda positions: _masked(file, set(positions))
        batch.chunks = _chunks(file, ZoneInfo(ctx.timezone))
        return batch


def _lines(file: InputFile) -> Iterator[tuple[int, dict[str, str]] | RecordError]:
    """Each CDR line as (line, fields by name), or the RecordError of a line that is not one,
    read piece by piece (the file is never whole in memory)."""
    pieces = text_pieces(file, size=CHUNK_CHARS)
    for item in csv_lines.records(line for piece in pieces for line in csv_lines.lines(piece)):
        if isinstance(item, RecordError):
            yield item
            continue
        line, fields = item
        if len(fields) not in (len(FIELDS), len(EXTENDED)):
            yield RecordError(
                line,
                None,
                "field_count",
                f"the line has {len(fields)} fields; an Asterisk CDR line has {len(FIELDS)} "
                f"(or {len(EXTENDED)} with newcdrcolumns)",
            )
            continue
        yield line, dict(zip(EXTENDED if len(fields) == len(EXTENDED) else FIELDS, fields, strict=True))


def _chunks(file: InputFile, zone: ZoneInfo) -> Iterator[Chunk]:
    """The calls' rows and rejects, CHUNK_ROWS lines at a time."""
    chunk, rows, size = Chunk(), [], 0
    for item in _lines(file):
        if isinstance(item, RecordError):
            chunk.errors.append(item)
        else:
            row, problem = _row(item[1], item[0], zone)
            if problem:
                chunk.errors.append(problem)
            else:
                rows.append(row)
        size += 1
        if size >= CHUNK_ROWS:
            chunk.phases.append(Phase([(Target("calls"), tuples_to_arrow(rows, COLUMNS))]))
            yield chunk
            chunk, rows, size = Chunk(), [], 0
    chunk.phases.append(Phase([(Target("calls"), tuples_to_arrow(rows, COLUMNS))]))
    yield chunk


def _masked(file: InputFile, positions: set[int]) -> dict[int, str]:
    """The lines at `positions` with the caller's number and name and the free text masked."""
    return {
        item[0]: json.dumps({k: (MASK if k in PHI and v else v) for k, v in item[1].items()})
        for item in _lines(file)
        if not isinstance(item, RecordError) and item[0] in positions
    }


def _row(rec: dict[str, str], line: int, zone: ZoneInfo) -> tuple[tuple | None, RecordError | None]:
    times = {}
    for name in ("start", "answer", "end"):
        value = rec[name].strip()
        if not value:
            times[name] = None
            continue
        try:
            times[name] = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
        except ValueError:
            return None, RecordError(
                line, name, "unreadable_value", f"{name} {value!r} is not a date-time like 2025-03-14 09:30:00", value
            )
    try:
        duration, billsec = int(rec["duration"]), int(rec["billsec"])
    except ValueError:
        return None, RecordError(line, "duration", "unreadable_value", "duration and billsec must be whole seconds")
    disposition = rec["disposition"].strip().upper()
    if disposition not in OUTCOMES:
        return None, RecordError(
            line,
            "disposition",
            "unknown_value",
            f"disposition {disposition!r} is not one of {', '.join(OUTCOMES)}",
            disposition,
        )
    outcome = OUTCOMES[disposition]
    answered = outcome == "answered"
    queue = rec["lastdata"].split(",")[0] if rec["lastapp"].strip().lower() == "queue" else rec["dst"]
    call_id = rec["uniqueid"] + (f"#{rec['sequence']}" if rec.get("sequence") else "")
    # a tuple in the order of COLUMNS: the chunk's columns are cut out of the rows at C speed (`tuples_to_arrow`)
    return (
        line,
        SOURCE,
        call_id or None,
        queue or None,
        times["start"],
        times["answer"] if answered else None,
        times["end"],
        outcome,
        disposition,
        duration - billsec if answered else duration,
        billsec if answered else None,
        (rec["dstchannel"] or None) if answered else None,
    ), None
