"""Which adapter reads a file: from `--format`, else from the file's first bytes.

Content decides, not the file name, because exports are renamed freely: an ISA header (or a
bare GS or ST segment) is X12; JSON with a `resourceType` is FHIR; `epoch|uniqueid|queue|agent|EVENT`
lines are an Asterisk queue_log; an 18- or 21-field line with Asterisk's date layout is a CDR
call log; otherwise the CSV header is matched against the profiles.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ingest.adapters import Adapter
from ingest.adapters.call_log import CallLogAdapter, looks_like_cdr
from ingest.adapters.csv_profile import CsvProfileAdapter, Profile, load_profile, sniff_header
from ingest.adapters.fhir import FhirAdapter, first_resource_type
from ingest.adapters.queue_log import QueueLogAdapter, looks_like_queue_log
from ingest.adapters.x12 import X12Adapter
from ingest.errors import IngestError
from ingest.sources import InputFile
from ingest.text import sniff_encoding

FORMATS = ("auto", "fhir", "x12", "queue-log", "call-log", "csv:PROFILE")
_SNIFF_BYTES = 64 * 1024
# An ISA header; or a bare GS (functional group: two letters) or ST (transaction set: three
# digits), which is X12 without its envelope (named as such in the error). A CSV header that
# merely starts with a column named ST (a state) is not X12.
_X12_START = re.compile(r"^\s*(ISA[^A-Za-z0-9\s]|GS([^A-Za-z0-9\s])[A-Z]{2}\2|ST([^A-Za-z0-9\s])[0-9]{3}\3)")


def check_format(fmt: str, profiles: list[Profile]) -> Profile | None:
    """Validate `--format` once, before any file: the profile it names, if it names one."""
    if fmt.startswith("csv:"):
        return _profile(fmt[4:], profiles)
    if fmt not in ("auto", "fhir", "x12", "queue-log", "call-log"):
        raise IngestError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}")
    return None


def choose(file: InputFile, fmt: str, profile: Profile | None, profiles: list[Profile]) -> Adapter | None:
    """The adapter for `file` under a validated `--format` (None when auto-detection recognises nothing)."""
    if fmt == "fhir":
        return FhirAdapter(first_resource_type(_head(file)))
    if fmt == "x12":
        return X12Adapter()
    if fmt == "queue-log":
        return QueueLogAdapter()
    if fmt == "call-log":
        return CallLogAdapter()
    if profile is not None:
        return CsvProfileAdapter(profile)
    return detect(file, profiles)


def detect(file: InputFile, profiles: list[Profile]) -> Adapter | None:
    """The adapter for `file` from its first bytes (None: not an export we know)."""
    try:
        return _detect(_head(file), profiles)
    except csv.Error as exc:  # a file the sniffers cannot even split into fields is this file's error only
        raise IngestError(f"cannot read the first lines as CSV ({exc})") from None


def _detect(head: str, profiles: list[Profile]) -> Adapter | None:
    if _X12_START.match(head):
        return X12Adapter()
    stripped = head.lstrip()
    if stripped.startswith(("{", "[")):
        kind = first_resource_type(head)
        return FhirAdapter(kind) if kind else None
    if looks_like_queue_log(head):
        return QueueLogAdapter()
    if looks_like_cdr(head):
        return CallLogAdapter()
    return _by_header(head, profiles)


def _by_header(head: str, profiles: list[Profile]) -> Adapter | None:
    matches: list[Profile] = []
    for profile in profiles:
        header = sniff_header(head, profile.delimiter)
        if header and profile.matches(header):
            matches.append(profile)
    if not matches:
        return None
    best = max(len(p.detect) for p in matches)
    top = [p for p in matches if len(p.detect) == best]
    if len(top) > 1:
        names = ", ".join(p.name for p in top)
        raise IngestError(f"the CSV header matches several profiles ({names}); choose one with --format csv:NAME")
    return CsvProfileAdapter(top[0])


def _profile(name: str, profiles: list[Profile]) -> Profile:
    if name.endswith(".toml"):
        return load_profile(Path(name))
    for profile in profiles:
        if profile.name == name:
            return profile
    known = ", ".join(p.name for p in profiles)
    raise IngestError(f"no CSV profile named {name!r}; known: {known} (or give a path to a .toml profile)")


def _head(file: InputFile) -> str:
    """The first part of the file as text (lossy: only for sniffing)."""
    head = file.head(_SNIFF_BYTES)  # only the head is read: the file is read when it loads
    encoding, skip = sniff_encoding(head)
    return head[skip:].decode(encoding, errors="replace")
