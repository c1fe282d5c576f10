"""Repeated failed sign-ins are slowed: per user name and per client, with a bounded wait.

After `FREE_FAILURES` failures in a row, each further attempt for that name, or from that
client, must wait 1, 2, 4 ... seconds after the last failure, at most `MAX_WAIT_SECONDS`
(bounded, so a colleague who mistypes is never locked out for long, and a guesser gets a few
hundred tries a day instead of millions). Failures older than `FORGET_AFTER_SECONDS` are
forgotten; a success clears its name and client. The state lives in the memory of the one
dashboard process (at most `MAX_KEYS` names and clients, the least recent dropped first), so a
restart forgets it; the audit log keeps every failure.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 3
MAX_WAIT_SECONDS = 60.0
FORGET_AFTER_SECONDS = 15 * 60.0
MAX_KEYS = 10_000


@dataclass
class _Failures:
    count: int
    last: float


class SignInThrottle:
    """How long a sign-in attempt must wait, from the failures before it (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def wait_seconds(self, user: str, client: str | None) -> float:
        """Seconds before an attempt for `user` from `client` may be checked (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [self._wait(key, now) for key in _keys(user, client)]
        return max(waits)

    def failed(self, user: str, client: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key in _keys(user, client):
                found = self._failures.pop(key, None)
                if found is None or now - found.last > FORGET_AFTER_SECONDS:
                    found = _Failures(0, now)
                found.count, found.last = found.count + 1, now
                self._failures[key] = found  # most recent last
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, user: str, client: str | None) -> None:
        with self._lock:
            for key in _keys(user, client):
                self._failures.pop(key, None)

    def _wait(self, key: tuple[str, str], now: float) -> float:
        found = self._failures.get(key)
        if found is None or found.count < FREE_FAILURES or now - found.last > FORGET_AFTER_SECONDS:
            return 0.0
        delay = min(2.0 ** (found.count - FREE_FAILURES), MAX_WAIT_SECONDS)
        return max(0.0, found.last + delay - now)


def _keys(user: str, client: str | None) -> tuple[tuple[str, str], tuple[str, str]]:
    return ("user", user.strip().lower()), ("client", client or "this machine")
