"""The shared phone queues over the whole run, as a shard (see `location_shard.py`).

Calls depend only on the date and the number of providers, not on any location's events, so
the phones are simulated on their own and write the whole queue_log.
"""

from __future__ import annotations

import random
from datetime import date
from operator import itemgetter
from pathlib import Path

from sample_data import phones
from sample_data.clock import add_months, days, month_end
from sample_data.events import Call
from sample_data.holidays import is_holiday
from sample_data.parts import PartInfo, StepParts, step_dir
from sample_data.practice import Practice
from sample_data.schedule import SEASON
from sample_data.shards import ShardResult
from sample_data.truth import Truth
from sample_data.writers.queue_log import PATH as QUEUE_LOG
from sample_data.writers.queue_log import broken_call_lines, call_lines


class PhoneShard:
    """Simulates the phone queues step by step; `index` is its place in the assembly order."""

    def __init__(self, practice: Practice, index: int, parts: Path) -> None:
        self.practice = practice
        self.params = practice.params
        self.index = index
        self.parts = parts
        self.truth = Truth(practice)
        self.result = ShardResult()
        self._counter = [0]
        self._broken_call_day = add_months(self.params.start, self.params.months // 2)
        self._broken_call_written = False

    def step(self, k: int) -> dict[str, PartInfo]:
        """Simulate the calls of month `k` (nothing is left to do in the final step)."""
        out = StepParts(step_dir(self.parts, k, self.index))
        p = self.params
        if k < p.months:
            first = add_months(p.start, k)
            for d in days(first, min(month_end(first), p.end)):
                if d.weekday() < 5 and not is_holiday(d):  # the phones are closed with the clinic
                    rng = random.Random(f"{p.seed}:phones:{d.isoformat()}")
                    calls = phones.simulate_day(
                        rng, self.practice.clock, d, p.n_providers, SEASON[d.month], self._counter
                    )
                    out.sink(QUEUE_LOG).write(self._lines(calls, d))
        else:
            self.result.tallies = self.truth.tallies()
        return out.close()

    def _lines(self, calls: list[Call], d: date) -> str:
        """The day's queue_log lines in time order (ties in the order the events were made: the sort is stable)."""
        self.truth.calls(d, calls)
        self.result.calls += len(calls)
        lines: list[tuple[int, str]] = []
        for i, c in enumerate(calls):
            lines += call_lines(c, complete_by_caller=i % 3 != 0)
        if not self._broken_call_written and d >= self._broken_call_day and calls:
            self._broken_call_written = True
            entered = calls[len(calls) // 2].entered + 7
            lines += broken_call_lines(f"{entered}.999999", "appointments", entered)
            self.result.rejects[QUEUE_LOG] = 1
        lines.sort(key=itemgetter(0))
        return "".join([line + "\n" for _, line in lines])
