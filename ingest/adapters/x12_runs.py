"""X12 interchanges read as columns: each window of text cut into a table of segments by Arrow.

Why: the segment reader of `x12_segments` builds a Python object per segment (about 0.4 µs
each, a 10 MB 837 has 400,000), and its mappers walk them one by one; the columnar mappers
(`x12_837_columns`, `x12_835_columns`) instead map many transaction sets with array operations
over all their segments at once. This reader gives them the segments of every transaction set
completed in a window of the text as Arrow columns (segment number, text, identifier), with the
same envelope rules and the same error sentences as `x12_segments._interchange`, which stays the
reader of record: the ISA
headers are read by `x12_segments.transaction_sets` for both, and a set the columnar mappers
cannot vouch for is handed to the exact Python mappers as the `TransactionSet` that reader would
have built (`Run.python_set`).

Only the few envelope segments (ST, SE, GS, GE, IEA) are looked at in Python, a handful per
transaction set; everything else stays in Arrow.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.adapters.x12_segments import (
    _VALID_IDS,
    _WHITESPACE,
    Segment,
    TransactionSet,
    _is_segment_id,
    _Stream,
)
from ingest.errors import IngestError

_EVENTS = pa.array(["IEA", "GS", "GE", "ST", "SE"])
# Characters of text cut into segments at a time: a run's columns take about three times its size,
# and its mapping's fixed cost is a few milliseconds (a 10 MB 837 parses in the same CPU time in
# windows of 1 M to 12 M characters; 12 M cost 80 MB more peak memory).
WINDOW = 2_000_000


@dataclass
class Span:
    """One transaction set in a run: its kind (ST01), label and the indices of its ST and SE."""

    kind: str
    label: str
    lo: int
    hi: int
    skip: list[int] = field(default_factory=list)  # run indices of GS segments read inside it (not its segments)


@dataclass
class Run:
    """The segments of consecutive complete transaction sets, as columns (index = position in the run)."""

    numbers: pa.Array  # int64: the segment's number in the file
    texts: pa.Array  # string: the segment, stripped of line breaks and indentation
    ids: pa.Array  # string: its identifier (the text before the first element separator)
    element: str
    component: str
    sets: list[Span] = field(default_factory=list)

    def of_sets(self, spans: list[Span]) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
        """The segments of these sets, in order: their numbers, texts and identifiers, and which of
        the sets (its index in `spans`) each belongs to; what both columnar mappers start from."""
        index = np.concatenate([np.arange(s.lo, s.hi + 1) for s in spans])
        set_of = np.concatenate([np.full(s.hi - s.lo + 1, k, dtype=np.int32) for k, s in enumerate(spans)])
        take = pa.array(index, pa.int64())
        return self.numbers.take(take), self.texts.take(take), self.ids.take(take), pa.array(set_of)

    def python_set(self, span: Span) -> TransactionSet:
        """The set as `x12_segments` reads it: Segment objects and the first invalid identifier."""
        numbers = self.numbers.slice(span.lo, span.hi - span.lo + 1).to_pylist()
        texts = self.texts.slice(span.lo, span.hi - span.lo + 1).to_pylist()
        skip = {s - span.lo for s in span.skip}
        segments = [
            Segment(n, t.split(self.element), self.component)
            for k, (n, t) in enumerate(zip(numbers, texts, strict=True))
            if k not in skip
        ]
        ts = TransactionSet(segments[0][1], segments[0], segments)
        for seg in segments[1:]:
            if seg.id not in _VALID_IDS and not _is_segment_id(seg.id):
                ts.syntax_error = f"segment {seg.number}: {seg.id!r} is not a segment identifier"
                break
        return ts


def interchange_runs(
    stream: _Stream, name: str, number: int, element: str, component: str, terminator: str
) -> Generator[Run, None, int]:
    """Runs of transaction sets up to this interchange's IEA (the stream left just after it);
    returns the number of the last segment read. The counterpart of `x12_segments._interchange`:
    the same segments, numbers, envelope rules and errors (the sets completed before an error
    are yielded first, as that reader yields each set before reading on)."""
    isa_number = number
    size = len(terminator)
    carry: list[tuple[pa.Array, pa.Array, pa.Array]] = []  # the open set's segments from earlier windows
    current: tuple[str, str] | None = None  # (kind, label) of the open set
    skip: list[int] = []  # GS segments inside the open set: not part of it, as `_interchange` reads them
    in_group = False
    while True:
        stream.fill(WINDOW)
        text, start = stream.text, stream.pos
        end = text.rfind(terminator, start)
        if end < 0 and stream.more():
            continue
        final = end < 0
        window = text[start:] if final else text[start:end]
        stream.pos = len(text) if final else end + size
        pieces = pc.split_pattern(pa.array([window], pa.large_string()), terminator).flatten()
        trimmed = pc.utf8_trim(pieces, _WHITESPACE)
        kept = np.flatnonzero(pc.greater(pc.utf8_length(trimmed), 0).to_numpy(zero_copy_only=False))
        texts = trimmed.take(pa.array(kept, pa.int64())).cast(pa.string())
        numbers = pa.array(np.arange(number + 1, number + 1 + len(kept), dtype=np.int64))
        ids = pc.list_element(pc.split_pattern(texts, element, max_splits=1), 0)
        events = np.flatnonzero(pc.is_in(ids, value_set=_EVENTS).to_numpy(zero_copy_only=False))
        event_ids = ids.take(pa.array(events, pa.int64())).to_pylist()
        offset = sum(len(c[0]) for c in carry)  # run index = window index + offset
        open_lo = 0  # run index of the open set's ST (a carried set starts the run)
        spans: list[Span] = []
        error: IngestError | None = None
        stop: int | None = None  # window index of the IEA
        prev = -1  # window index of the last segment accounted for outside a set
        for i, sid in zip(events.tolist(), event_ids, strict=True):
            n = number + 1 + i
            if current is not None:
                if sid == "SE":
                    spans.append(Span(current[0], current[1], open_lo, i + offset, skip))
                    current, prev, skip = None, i, []
                    continue
                if sid == "GS":  # not a segment of the set; `_interchange` opens a group and reads on
                    in_group = True
                    skip = [*skip, i + offset]
                    continue
                where = "a new ST begins" if sid == "ST" else sid
                tail = "which has no SE" if sid == "ST" else "which has no SE trailer"
                error = IngestError(f"{name}: segment {n}: {where} inside {current[1]}, {tail}")
                break
            if i > prev + 1:  # a segment that is not an envelope segment, outside any set
                error = _outside(name, number + 2 + prev, ids[prev + 1].as_py())
                break
            prev = i
            if sid == "SE":
                error = _outside(name, n, sid)
                break
            if sid == "IEA":
                stop = i
                break
            if sid == "GS":
                in_group = True
            elif sid == "GE":
                in_group = False
            elif not in_group:  # ST
                error = IngestError(f"{name}: segment {n}: ST outside a functional group (no GS before it)")
                break
            else:
                seg = Segment(n, texts[i].as_py().split(element), component)
                current, open_lo = (seg[1], f"transaction set ST*{seg[1]}*{seg[2]} (segment {n})"), i + offset
        else:
            if current is None and len(kept) > prev + 1:
                error = _outside(name, number + 2 + prev, ids[prev + 1].as_py())
        if spans:
            last = spans[-1].hi - offset + 1
            cols = [*carry, (numbers.slice(0, last), texts.slice(0, last), ids.slice(0, last))]
            yield Run(
                pa.concat_arrays([c[0] for c in cols]),
                pa.concat_arrays([c[1] for c in cols]),
                pa.concat_arrays([c[2] for c in cols]),
                element,
                component,
                spans,
            )
        if error is not None:
            raise error
        if stop is not None:
            if not final:  # the next interchange starts after this terminator
                k = int(kept[stop])
                stream.pos = start + (pc.sum(pc.utf8_length(pieces.slice(0, k + 1))).as_py() or 0) + size * (k + 1)
            return number + 1 + stop
        if current is not None:  # the open set's segments wait for the next window
            if spans or not carry:
                lo = open_lo - offset
                carry, skip = [(numbers.slice(lo), texts.slice(lo), ids.slice(lo))], [s - open_lo for s in skip]
            else:
                carry.append((numbers, texts, ids))
        else:
            carry = []
        number += len(kept)
        if final:
            where = current[1] if current else f"the interchange that starts at segment {isa_number}"
            trailer = "SE" if current else "IEA"
            raise IngestError(
                f"{name}: the file ends inside {where}: it has no {trailer} trailer (is the file truncated?)"
            )


def _outside(name: str, n: int, sid: str) -> IngestError:
    return IngestError(f"{name}: segment {n}: {sid!r} outside a transaction set (expected ST, GE or IEA)")
