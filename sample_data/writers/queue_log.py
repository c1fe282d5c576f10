"""Asterisk queue_log lines (pipe-delimited, one event per line, in time order).

Field layout per event follows the Asterisk queue_log documentation:
ENTERQUEUE url|callerid|position; RINGNOANSWER ringtime-ms; CONNECT holdtime|bridged-uniqueid|ringtime;
COMPLETECALLER/COMPLETEAGENT holdtime|calltime|origposition; ABANDON position|origposition|waittime;
EXITWITHTIMEOUT position|origposition|waittime; EXITWITHKEY key|position|origposition|waittime.
"""

from __future__ import annotations

from sample_data.events import Call

PATH = "phones/queue_log"


def call_lines(call: Call, complete_by_caller: bool) -> list[tuple[int, str]]:
    """(epoch, line) pairs for one call; the caller sorts a day's lines by time."""
    t, uid, q = call.entered, call.uniqueid, call.queue
    lines = [(t, f"{t}|{uid}|{q}|NONE|ENTERQUEUE||{call.caller}|{call.position}")]
    if call.outcome == "answered":
        at = t + call.wait
        if call.ring_no_answer and call.wait >= 16:
            lines.append((at - 1, f"{at - 1}|{uid}|{q}|{call.ring_no_answer}|RINGNOANSWER|15000"))
        lines.append((at, f"{at}|{uid}|{q}|{call.agent}|CONNECT|{call.wait}|{uid}1|{min(call.wait, 4)}"))
        end = at + call.talk
        event = "COMPLETECALLER" if complete_by_caller else "COMPLETEAGENT"
        lines.append((end, f"{end}|{uid}|{q}|{call.agent}|{event}|{call.wait}|{call.talk}|{call.position}"))
    elif call.outcome == "abandoned":
        end = t + call.wait
        lines.append((end, f"{end}|{uid}|{q}|NONE|ABANDON|1|{call.position}|{call.wait}"))
    elif call.outcome == "timeout":
        end = t + call.wait
        lines.append((end, f"{end}|{uid}|{q}|NONE|EXITWITHTIMEOUT|1|{call.position}|{call.wait}"))
    else:
        end = t + call.wait
        lines.append((end, f"{end}|{uid}|{q}|NONE|EXITWITHKEY|1|1|{call.position}|{call.wait}"))
    return lines


def broken_call_lines(uid: str, queue: str, entered: int) -> list[tuple[int, str]]:
    """A call whose completion is logged 50 s *before* it entered the queue (clock skew): a reject."""
    end = entered - 50
    return [
        (entered, f"{entered}|{uid}|{queue}|NONE|ENTERQUEUE||4135550111|1"),
        (end - 30, f"{end - 30}|{uid}|{queue}|PJSIP/20001|CONNECT|0|{uid}1|2"),
        (end, f"{end}|{uid}|{queue}|PJSIP/20001|COMPLETECALLER|0|30|1"),
    ]
