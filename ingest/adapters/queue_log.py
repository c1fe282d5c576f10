"""Asterisk queue_log -> calls: one row per call that entered a queue, rebuilt from its events.

Each line is `epoch|uniqueid|queue|agent|EVENT|data1|data2|data3[|data4|data5]` (Asterisk's
queue_log documentation; `app_queue`). A call is the events sharing a uniqueid, from ENTERQUEUE
to the event that ended the wait or the call:

| event | meaning | taken from it |
|---|---|---|
| ENTERQUEUE | caller joins the queue (data2 = caller id: never stored) | entered_at, queue |
| CONNECT | an agent answers (data1 = holdtime) | answered_at, wait_seconds, agent |
| COMPLETECALLER / COMPLETEAGENT | answered call ends (data1 holdtime, data2 calltime) | ended_at, talk_seconds |
| TRANSFER / BLINDTRANSFER / ATTENDEDTRANSFER | answered call transferred out | ended_at, talk_seconds |
| ABANDON | caller hangs up waiting (data3 = waittime) | outcome abandoned, wait |
| EXITWITHTIMEOUT / EXITEMPTY | queue gives up (data3 = waittime) | outcome timeout, wait |
| EXITWITHKEY | caller pressed a key (data1 = key) | outcome exit_key, wait = exit - entry |

`wait_seconds` is the holdtime/waittime as logged (docs/contracts.md). Queue and agent events
(QUEUESTART, AGENTLOGIN, ADDMEMBER, PAUSE, ...) are not calls: they are counted as ignored.
A uniqueid that enters a queue again is a new call (`<uniqueid>#2`); events logged before the
ENTERQUEUE of their uniqueid (clock skew) belong to that call, whose times then fail the
schema's order rules. A call whose entry or end is missing from the log is rejected with the
reason, so the next (overlapping) log completes it.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from ingest.batch import Batch, Chunk, Phase, RecordError, Target, tuples_to_arrow
from ingest.context import ParseContext
from ingest.pseudonymize import MASK
from ingest.sources import InputFile
from ingest.text import text_lines

SOURCE = "asterisk"
CHUNK_CALLS = 50_000  # calls whose rows are handed on at once: tens of megabytes of Python objects
_hash = hash  # of a uniqueid, to know its last line (tests make every uniqueid collide)
_LINE = re.compile(r"^\d{9,11}(\.\d+)?\|[^|\n]*\|[^|\n]*\|[^|\n]*\|[A-Z_]+")
_END_ANSWERED = {"COMPLETECALLER", "COMPLETEAGENT", "TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"}
_END_WAITING = {"ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "timeout", "EXITWITHKEY": "exit_key"}
_CALL_EVENTS = {"ENTERQUEUE", "CONNECT", *_END_ANSWERED, *_END_WAITING}
_STATUS_EVENTS = {
    "QUEUESTART",
    "CONFIGRELOAD",
    "AGENTLOGIN",
    "AGENTLOGOFF",
    "AGENTCALLBACKLOGIN",
    "AGENTCALLBACKLOGOFF",
    "ADDMEMBER",
    "REMOVEMEMBER",
    "PAUSE",
    "UNPAUSE",
    "PAUSEALL",
    "UNPAUSEALL",
}
COLUMNS = [
    "_pos",
    "source",
    "call_id",
    "queue",
    "entered_at",
    "answered_at",
    "ended_at",
    "outcome",
    "outcome_source",
    "wait_seconds",
    "talk_seconds",
    "agent",
]


def looks_like_queue_log(head: str) -> bool:
    lines = [ln for ln in head.splitlines()[:20] if ln.strip()]
    return bool(lines) and sum(bool(_LINE.match(ln)) for ln in lines) >= max(1, len(lines) // 2)


@dataclass(slots=True)
class _Call:
    uniqueid: str
    call_id: str
    first_line: int
    lines: list[int] = field(default_factory=list)  # its line numbers (the text is read again for a reject)
    queue: str | None = None
    entered: int | None = None
    answered: int | None = None
    ended: int | None = None
    outcome: str | None = None
    outcome_source: str | None = None
    wait: int | None = None
    talk: int | None = None
    agent: str | None = None
    problem: tuple[str | None, str, str, str | None] | None = None  # field, check, reason, value


class QueueLogAdapter:
    name = "queue_log"
    rank = 5

    def parse(self, file: InputFile, ctx: ParseContext) -> Batch:
        batch = Batch(adapter=self.name, position_kind="line")
        # masked only when asked for, i.e. for the rejected calls, found again in the file
        seen = _Seen()
        batch.records = lambda positions: _masked_calls(file, set(positions), seen)
        batch.chunks = _chunks(file, batch, seen)
        return batch


@dataclass(slots=True)
class _Seen:
    """What the parse keeps for showing rejected calls: the last-line marks (so a replay need not
    read the log for them again) and the lines of the calls the adapter itself rejects."""

    is_last: np.ndarray | None = None
    rejected: dict[int, list[int]] = field(default_factory=dict)
    unreadable: set[int] = field(default_factory=set)  # the lines rejected as no queue_log line


def _last_lines(file: InputFile) -> np.ndarray:
    """Whether each line number is the last line of the log whose uniqueid hashes (32 bits) as its
    own does. After such a line no later line has its uniqueid, so its calls are complete; a hash
    shared by several uniqueids only keeps their calls open longer."""
    keys = array("Q")
    for number, line in enumerate(text_lines(file), start=1):
        fields = line.split("|", 2)
        if len(fields) > 2 and fields[1]:
            keys.append((_hash(fields[1]) & 0xFFFFFFFF) << 32 | number)
    last = np.zeros(len(keys) and (keys[-1] & 0xFFFFFFFF) + 1, dtype=bool)
    if not keys:
        return last
    sorted_keys = np.frombuffer(keys, dtype=np.uint64)
    sorted_keys.sort()
    block = 1 << 22
    for start in range(0, len(sorted_keys), block):  # in blocks: no whole-size temporaries
        here = sorted_keys[start : start + block + 1]
        ends = np.append((here[1:] >> np.uint64(32)) != (here[:-1] >> np.uint64(32)), True)[: min(block, len(here))]
        last[(here[: len(ends)][ends] & np.uint64(0xFFFFFFFF)).astype(np.int64)] = True
    return last


def _calls(file: InputFile, batch: Batch, seen: _Seen) -> Iterator[_Call]:
    """The calls of the log, each as soon as no later line can change it: when its uniqueid queues
    again (a new call), or after the last line of its uniqueid. Only the calls still open are held,
    never the whole log's; the unreadable lines and ignored lines go to `batch`."""
    if seen.is_last is None:
        seen.is_last = _last_lines(file)
    is_last = seen.is_last
    last: dict[str, _Call] = {}  # each uniqueid's latest call
    attempts: dict[str, int] = {}
    for number, line in enumerate(text_lines(file), start=1):  # line by line: the text is not kept
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("|")
        problem = _line_problem(fields)
        if problem:
            batch.errors.append(RecordError(number, problem[0], "unreadable_line", problem[1], problem[2]))
            continue
        epoch, uniqueid, queue, agent, event = int(float(fields[0])), fields[1], fields[2], fields[3], fields[4]
        data = fields[5:] + [""] * 5
        call = last.get(uniqueid)
        if event not in _CALL_EVENTS:
            if call is not None:
                call.lines.append(number)  # e.g. RINGNOANSWER: part of the call, nothing to keep
            elif uniqueid == "NONE" or event in _STATUS_EVENTS:
                batch.ignored["queue and agent status lines (not calls)"] += 1
            else:
                batch.ignored[f"{event} lines outside a queued call"] += 1
        else:
            # a new call: the first event of a uniqueid, or it queues again after its entry was seen
            if call is None or (event == "ENTERQUEUE" and call.entered is not None):
                attempts[uniqueid] = attempts.get(uniqueid, 0) + 1
                n = attempts[uniqueid]
                if call is not None:
                    yield call  # its uniqueid's later events belong to the new call
                call = _Call(uniqueid, uniqueid if n == 1 else f"{uniqueid}#{n}", number)
                last[uniqueid] = call
            call.lines.append(number)
            _apply(call, event, epoch, queue, agent, data)
        if number < len(is_last) and is_last[number]:  # no later line has this uniqueid
            done = last.pop(uniqueid, None)
            attempts.pop(uniqueid, None)
            if done is not None:
                yield done
    yield from last.values()


def _chunks(file: InputFile, batch: Batch, seen: _Seen) -> Iterator[Chunk]:
    """The unreadable lines and the calls' rows and rejects, CHUNK_CALLS complete calls at a time
    (in the order they complete: the loader orders by position), so neither the calls nor their
    rows are ever all alive at once."""
    chunk, rows, size = Chunk(), [], 0
    for call in _calls(file, batch, seen):
        problem = call.problem or _incomplete(call)
        if problem:
            seen.rejected[call.first_line] = call.lines
            chunk.errors.append(RecordError(call.first_line, *problem))
        else:
            rows.append(_row(call))
        size += 1
        if size >= CHUNK_CALLS:
            seen.unreadable.update(e.pos for e in batch.errors)
            chunk.errors[:0], batch.errors = batch.errors, []
            chunk.phases.append(Phase([(Target("calls"), tuples_to_arrow(rows, COLUMNS))]))
            yield chunk
            chunk, rows, size = Chunk(), [], 0
    seen.unreadable.update(e.pos for e in batch.errors)
    chunk.errors[:0], batch.errors = batch.errors, []
    chunk.phases.append(Phase([(Target("calls"), tuples_to_arrow(rows, COLUMNS))]))
    yield chunk


def _line_problem(fields: list[str]) -> tuple[str | None, str, str | None] | None:
    """(field, reason, value) when a line is not a queue_log line."""
    if len(fields) < 5:
        return (
            None,
            f"expected epoch|uniqueid|queue|agent|EVENT|data..., found {len(fields)} field(s)",
            None,
        )
    try:
        float(fields[0])
    except ValueError:
        return "epoch", f"the time {fields[0]!r} is not a Unix epoch in seconds", fields[0]
    if not fields[1]:
        return "uniqueid", "the line has no call uniqueid", None
    return None


def _seconds(value: str, what: str, call: _Call) -> int | None:
    try:
        number = int(value)
    except ValueError:
        call.problem = call.problem or (
            what,
            "unreadable_value",
            f"{what} {value!r} is not a whole number of seconds",
            value,
        )
        return None
    return number


def _apply(call: _Call, event: str, epoch: int, queue: str, agent: str, data: list[str]) -> None:
    if event == "ENTERQUEUE":
        call.entered, call.queue = epoch, queue or None
    elif event == "CONNECT":
        call.answered, call.agent, call.outcome = epoch, agent or None, "answered"
        call.outcome_source = event
        call.wait = _seconds(data[0], "holdtime", call)
    elif event in _END_ANSWERED:
        call.ended, call.outcome_source = epoch, event
        call.outcome = "answered"
        call.agent = call.agent or agent or None
        talk_field = data[3] if event == "TRANSFER" else data[1]
        call.talk = _seconds(talk_field, "calltime", call)
        if call.wait is None:
            call.wait = _seconds(data[2] if event == "TRANSFER" else data[0], "holdtime", call)
    else:
        call.ended, call.outcome, call.outcome_source = epoch, _END_WAITING[event], event
        if event == "EXITWITHKEY":
            call.wait = epoch - call.entered if call.entered is not None else None
        else:
            call.wait = _seconds(data[2], "waittime", call)


def _incomplete(call: _Call) -> tuple[str | None, str, str, str | None] | None:
    if call.entered is None:
        return (
            "entered_at",
            "no_enterqueue",
            f"call {call.uniqueid} has no ENTERQUEUE event in this log (the log may start in the middle of the call)",
            None,
        )
    if call.outcome is None:
        return (
            "outcome",
            "no_end_event",
            f"call {call.uniqueid} entered queue {call.queue} but the log has no CONNECT, ABANDON or EXIT event "
            "for it (still waiting when the log was written?)",
            None,
        )
    return None


def _instant(epoch: int | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _row(call: _Call) -> tuple:
    """The call's row, its values in the order of COLUMNS (`tuples_to_arrow`: no dict per call)."""
    return (
        call.first_line,
        SOURCE,
        call.call_id,
        call.queue,
        _instant(call.entered),
        _instant(call.answered),
        _instant(call.ended),
        call.outcome,
        call.outcome_source,
        call.wait,
        call.talk,
        call.agent,
    )


def _masked_calls(file: InputFile, positions: set[int], seen: _Seen) -> dict[int, str | None]:
    """The masked lines of each call at `positions` (its first line). The parse keeps the lines of
    the calls it rejects only; a call a schema rule rejects is found again by replaying the calls
    up to its completion, and its lines are read again from the file."""
    calls = {p: seen.rejected[p] for p in positions if p in seen.rejected}
    others = positions - calls.keys() - seen.unreadable
    if others:
        replay = Batch(adapter="queue_log", position_kind="line")
        for call in _calls(file, replay, seen):
            if call.first_line in others:
                calls[call.first_line] = call.lines
                others.discard(call.first_line)
                if not others:
                    break
    wanted = {number for numbers in calls.values() for number in numbers}
    text: dict[int, list[str]] = {}
    if wanted:
        last = max(wanted)
        for number, line in enumerate(text_lines(file), start=1):
            if number in wanted:
                text[number] = line.rstrip("\r").split("|")
            if number >= last:
                break
    return {first: _masked([text[n] for n in numbers]) for first, numbers in calls.items()}


def _masked(call_lines: list[list[str]]) -> str:
    """The call's log lines, with the caller id of ENTERQUEUE masked."""
    lines = []
    for fields in call_lines:
        shown = list(fields)
        if len(shown) > 6 and shown[4] == "ENTERQUEUE":
            shown[6] = MASK
        lines.append("|".join(shown))
    return json.dumps({"lines": lines})
