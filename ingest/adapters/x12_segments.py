"""X12 envelopes -> transaction sets: the segment reader shared by the 837 and 835 mappers.

Why a small reader of our own rather than pyx12: pyx12 (the maintained Python X12 library,
installed with the dev extras) reads only files that start with `ISA` at byte 0 — real
exports arrive with a UTF-8 BOM, as UTF-16, indented, or with several interchanges on one
line — and it validates every element against the implementation guide's code lists, so it
rejects the very sample files that are labelled valid (their diagnosis codes and SE counts
break the guide) over fields no KPI reads. What ingest needs is the envelope done exactly
right and a handful of structural rules for the loops it reads; that is this module (about a
hundred lines), with the rules stated where the mappers apply them.

The envelope, per interchange (a file may hold many, each with its own separators):
ISA is fixed-width — 16 elements of set widths, 106 characters — so its 4th character is the
element separator, ISA16 the component separator and the character after it the segment
terminator (any character: `~`, `_`, a carriage return or a bare newline). A header that is not
exactly that wide (ISA16 left out, a character too many) would give wrong separators and a
puzzling error further on, so it is named where it is: the terminator must not be a letter or
digit, the next segment must be GS and must not end with the component separator. Line breaks and
indentation between segments are ignored. Segments are numbered from 1 across the file; that
number is the position of every message and reject.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field

from ingest.errors import IngestError

ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
ISA_NAMES = (
    "authorization qualifier",
    "authorization information",
    "security qualifier",
    "security information",
    "sender id qualifier",
    "sender id",
    "receiver id qualifier",
    "receiver id",
    "date",
    "time",
    "repetition separator",
    "version",
    "control number",
    "acknowledgment requested",
    "usage indicator",
    "component separator",
)
SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{1,2}$")
_WHITESPACE = " \t\r\n"


class Segment:
    """One segment: its number in the file, its id and its elements (index 1 = first element).

    A plain class with slots rather than a frozen dataclass: a file has millions of segments,
    and each is built once and its id compared several times.
    """

    __slots__ = ("number", "elements", "component", "id")

    def __init__(self, number: int, elements: list[str], component: str) -> None:
        self.number = number
        self.elements = elements
        self.component = component
        self.id = elements[0]

    def __getitem__(self, i: int) -> str:
        return self.elements[i].strip() if i < len(self.elements) else ""

    def parts(self, i: int) -> list[str]:
        """The components of composite element `i`."""
        return [p.strip() for p in self[i].split(self.component)]

    def text(self, separator: str = "*") -> str:
        return separator.join(self.elements)


@dataclass
class TransactionSet:
    """The segments from ST to SE, with the first syntax problem found in them (if any)."""

    kind: str
    start: Segment
    segments: list[Segment] = field(default_factory=list)
    syntax_error: str | None = None

    @property
    def label(self) -> str:
        return f"transaction set ST*{self.kind}*{self.start[2]} (segment {self.start.number})"


def transaction_sets(text: str | Iterable[str], name: str, interchange: Interchange | None = None) -> Iterator:
    """Every transaction set of every interchange; IngestError for a broken envelope.

    `text` is the file's text, whole or in blocks (`ingest.text.text_blocks`): only the
    transaction set being read and one block are held, so a file of any size reads in bounded
    memory; each set is yielded as soon as its SE is read. `interchange` reads the segments
    between an ISA and its IEA (default: one `TransactionSet` of `Segment`s at a time; the
    columnar reader `x12_runs` gives runs of sets as Arrow columns instead), the ISA headers
    being read here for both.
    """
    interchange = interchange or _interchange
    stream = _Stream([text] if isinstance(text, str) else text)
    number = 0
    while True:
        stream.skip_whitespace()
        if stream.at_end():
            if number == 0:
                raise IngestError(f"{name}: the file is empty; expected an X12 interchange starting with ISA")
            return
        stream.fill(_HEADER)
        text, pos = stream.text, stream.pos
        if not text.startswith("ISA", pos):
            found = text[pos : pos + 3]
            if number == 0 and found.startswith(("ST", "GS")):
                raise IngestError(
                    f"{name}: segment 1: the file starts with {text[pos : pos + 6]!r} but an X12 file must begin "
                    "with an ISA interchange header (this one has no envelope, so its separators are unknown)"
                )
            raise IngestError(f"{name}: segment {number + 1}: expected an ISA interchange header, found {found!r}")
        number += 1
        try:
            element, component, terminator, stream.pos = _isa(text, pos, name, number)
        except IngestError:
            if stream.ended:
                raise
            stream.fill_all()  # a header this broken is read again over the whole rest, as it was always read
            element, component, terminator, stream.pos = _isa(stream.text, stream.pos, name, number)
        number = yield from interchange(stream, name, number, element, component, terminator)


# Reads one interchange: (stream, file name, segment number of its ISA, element separator, component
# separator, segment terminator) -> what it yields; returns the number of its IEA.
Interchange = Callable[["_Stream", str, int, str, str, str], Generator]

# Characters read ahead before an ISA header is parsed: the header (106) and the start of what follows it.
_HEADER = 4096


class _Stream:
    """The file's text as a window that moves forward: `text[pos:]` is what is not read yet."""

    def __init__(self, blocks: Iterable[str]) -> None:
        self._blocks = iter(blocks)
        self.text = ""
        self.pos = 0
        self.ended = False

    def more(self) -> bool:
        """Append the next block to the window (dropping what is read); False at the end of the file."""
        for block in self._blocks:
            if block:
                self.text = self.text[self.pos :] + block
                self.pos = 0
                return True
        self.ended = True
        return False

    def fill(self, n: int) -> None:
        """At least `n` characters unread in the window, or the rest of the file."""
        while len(self.text) - self.pos < n and self.more():
            pass

    def fill_all(self) -> None:
        while self.more():
            pass

    def skip_whitespace(self) -> None:
        """Move past line breaks and indentation (between interchanges: a few characters)."""
        while True:
            text, pos, n = self.text, self.pos, len(self.text)
            while pos < n and text[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < n or not self.more():
                return

    def at_end(self) -> bool:
        return self.pos >= len(self.text) and (self.ended or not self.more())


def _isa(text: str, start: int, name: str, number: int) -> tuple[str, str, str, int]:
    """(element separator, component separator, segment terminator, position after ISA)."""
    element = text[start + 3 : start + 4]
    if not element or element.isalnum() or element in _WHITESPACE:
        raise IngestError(f"{name}: segment {number}: the ISA header is cut short or has no element separator")
    pos = start + 3
    for i, width in enumerate(ISA_WIDTHS, start=1):
        if i < 16:
            nxt = text.find(element, pos + 1)
            if nxt < 0:
                raise IngestError(
                    f"{name}: segment {number}: the ISA header ends after ISA{i - 1:02d}; it needs 16 elements"
                )
            value = text[pos + 1 : nxt]
            pos = nxt
        else:
            value = text[pos + 1 : pos + 2]
            pos += 1
        if len(value) != width:
            raise IngestError(
                f"{name}: segment {number}: ISA{i:02d} ({ISA_NAMES[i - 1]}) is {len(value)} characters, "
                f"expected {width}: the ISA header is fixed-width (106 characters), so its separators cannot be read"
            )
    component = text[pos]
    terminator = text[pos + 1 : pos + 2]
    if not terminator:
        raise IngestError(f"{name}: segment {number}: the file ends inside the ISA header")
    next_end = text.find(terminator, pos + 2)
    next_segment = text[pos + 2 : next_end if next_end >= 0 else pos + 200].strip(_WHITESPACE)
    if terminator.isalnum() or terminator == element or next_segment.endswith(component):
        # e.g. "...*P*~GS*...~": ISA16 is empty, so the terminator '~' is taken for ISA16 and 'G' (or the
        # line break) would end segments; named here, before it turns into a puzzling error further on
        raise IngestError(
            f"{name}: segment {number}: the ISA header is malformed: ISA16 (the component separator) is missing "
            f"(ISA15 is followed by {text[pos - 1 : pos + 3]!r}); ISA is fixed-width, 106 characters ending with "
            "ISA16 and the segment terminator, e.g. '*P*:~'"
        )
    after = text[pos + 2 : pos + 40].lstrip(_WHITESPACE)
    if after and not after.startswith(tuple(f"{tag}{element}" for tag in ("GS", "TA1", "IEA"))):
        raise IngestError(
            f"{name}: segment {number}: the ISA header is malformed: after its segment terminator {terminator!r} "
            f"comes {after[:12]!r}, not a GS segment; ISA is fixed-width (106 characters, ISA16 then the "
            "terminator), so check that nothing is missing or added at its end"
        )
    return element, component, terminator, pos + 2


def _interchange(
    stream: _Stream, name: str, number: int, element: str, component: str, terminator: str
) -> Generator[TransactionSet, None, int]:
    """Transaction sets up to this interchange's IEA (the stream left just after it); returns the
    number of the last segment read.

    The window is cut at every terminator it holds with one `str.split` (the last, unfinished
    segment waits for the next block), so no Python code runs per character.
    """
    isa_number = number
    current: TransactionSet | None = None
    in_group = False
    size = len(terminator)
    while True:
        text, start = stream.text, stream.pos
        end = text.rfind(terminator, start)
        if end < 0 and stream.more():
            continue
        final = end < 0  # the file ends without a terminator after its last segment
        pieces = [text[start:]] if final else text[start:end].split(terminator)
        stream.pos = len(text) if final else end + size
        for k, raw in enumerate(pieces):
            raw = raw.strip(_WHITESPACE)
            if not raw:
                continue
            number += 1
            seg = Segment(number, raw.split(element), component)
            sid = seg.id
            if current is not None and sid not in _ENVELOPE:  # most segments: one more of the set
                current.segments.append(seg)
                if sid not in _VALID_IDS and current.syntax_error is None and not _is_segment_id(sid):
                    current.syntax_error = f"segment {number}: {sid!r} is not a segment identifier"
                if sid == "SE":
                    yield current
                    current = None
                continue
            if sid == "IEA":
                if current is not None:
                    raise IngestError(f"{name}: segment {number}: IEA inside {current.label}, which has no SE trailer")
                if not final:  # the next interchange starts after this terminator
                    stream.pos = start + sum(len(p) for p in pieces[: k + 1]) + size * (k + 1)
                return number
            if sid == "GS":
                in_group = True
            elif sid == "GE":
                if current is not None:
                    raise IngestError(f"{name}: segment {number}: GE inside {current.label}, which has no SE trailer")
                in_group = False
            elif sid == "ST":
                if current is not None:
                    raise IngestError(
                        f"{name}: segment {number}: a new ST begins inside {current.label}, which has no SE"
                    )
                if not in_group:
                    raise IngestError(f"{name}: segment {number}: ST outside a functional group (no GS before it)")
                current = TransactionSet(seg[1], seg, [seg])
            else:
                raise IngestError(
                    f"{name}: segment {number}: {sid!r} outside a transaction set (expected ST, GE or IEA)"
                )
        if final:
            raise _truncated(name, current, isa_number)


# The segments the reader acts on inside a transaction set (an ISA there is one more segment of it, as it
# always was); every other segment belongs to the set being read.
_ENVELOPE = frozenset({"IEA", "GS", "GE", "ST"})
# Identifiers found valid so far (a file repeats a few dozen millions of times): a set look-up each.
_VALID_IDS: set[str] = set()


def _is_segment_id(segment_id: str) -> bool:
    valid = SEGMENT_ID.match(segment_id) is not None
    if valid and len(_VALID_IDS) < 1024:
        _VALID_IDS.add(segment_id)
    return valid


def _truncated(name: str, current: TransactionSet | None, isa_number: int) -> IngestError:
    where = current.label if current else f"the interchange that starts at segment {isa_number}"
    trailer = "SE" if current else "IEA"
    return IngestError(f"{name}: the file ends inside {where}: it has no {trailer} trailer (is the file truncated?)")
