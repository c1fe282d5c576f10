"""Patient portal messages and the first reply by a person.

Messages arrive all week (more on weekdays and in the morning); staff answer only in
business hours (Mon-Fri 08:00-17:00 local, the default in config), so the reply instant is
built by adding business minutes, which makes the business-hours delay exact by construction.
After-hours messages get an automatic acknowledgement, which never counts as a response.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from sample_data.clock import Clock
from sample_data.draws import Weighted, pick, poisson, randint
from sample_data.events import PortalMessage
from sample_data.practice import location_tag

MESSAGES_PER_PROVIDER_DAY = 2.2  # weekdays; weekends a third of it
CATEGORIES = (
    ("rx_refill", 0.30),
    ("results", 0.22),
    ("scheduling", 0.20),
    ("clinical_question", 0.20),
    ("billing", 0.08),
)
_CATEGORY = Weighted([c for c, _ in CATEGORIES], [w for _, w in CATEGORIES])
MEDIAN_BUSINESS_MINUTES = 200.0
SLOW_PROVIDER_FACTOR = 2.2  # providers who run late answer slower too
NEVER_ANSWERED = 0.06
OPEN, CLOSE = 8 * 60, 17 * 60


def business_minutes(clock: Clock, start: int, end: int) -> int:
    """Minutes of Mon-Fri 08:00-17:00 local between two instants (minute precision)."""
    total = 0
    d = clock.local_date(start)
    last = clock.local_date(end)
    while d <= last:
        if d.weekday() < 5:
            lo = max(start, clock.at(d, OPEN))
            hi = min(end, clock.at(d, CLOSE))
            if hi > lo:
                total += (hi - lo) // 60
        d += timedelta(days=1)
    return total


def add_business_minutes(clock: Clock, start: int, minutes: int) -> int:
    """The instant `minutes` business minutes after `start`."""
    d = clock.local_date(start)
    t = start
    while True:
        if d.weekday() < 5:
            lo = max(t, clock.at(d, OPEN))
            hi = clock.at(d, CLOSE)
            if hi > lo:
                room = (hi - lo) // 60
                if minutes <= room:
                    return lo + minutes * 60
                minutes -= room
        d += timedelta(days=1)
        t = clock.at(d, OPEN)


def messages_for_day(
    rng: random.Random,
    clock: Clock,
    d: date,
    loc: int,
    providers: list[tuple[int, bool]],
    patients: range,
    counter: list[int],
    cutoff: int,
) -> list[PortalMessage]:
    """One location's messages received on `d`; providers as (index, answers slowly).

    `counter` numbers the location's messages; ids carry the location number so they are
    unique in the practice.
    """
    out = []
    tag = location_tag(loc)
    per = MESSAGES_PER_PROVIDER_DAY * (1.0 if d.weekday() < 5 else 0.33)
    for prov, slow in providers:
        for _ in range(poisson(rng, per)):
            minute = int(min(23 * 60 + 59, max(6 * 60, rng.gauss(12 * 60, 4 * 60))))
            received = clock.at(d, minute)
            counter[0] += 1
            n = counter[0]
            after_hours = d.weekday() >= 5 or not (OPEN <= minute < CLOSE)
            staff = None
            if rng.random() >= NEVER_ANSWERED:
                median = MEDIAN_BUSINESS_MINUTES * (SLOW_PROVIDER_FACTOR if slow else 1.0)
                delay = max(1, int(rng.lognormvariate(math.log(median), 1.0)))
                staff = add_business_minutes(clock, received, delay)
                if staff >= cutoff:
                    staff = None
            thread = max(1, n - randint(rng, 1, 3)) if rng.random() < 0.2 else n  # a reply in an open thread
            category = _CATEGORY(rng)
            out.append(
                PortalMessage(
                    message_id=f"m{tag}{n:08d}",
                    thread_id=f"t{tag}{thread:08d}",
                    location=loc,
                    provider=prov,
                    patient=pick(rng, patients),
                    category=category,
                    received=received,
                    auto_reply=received + 60 if after_hours else None,
                    staff_reply=staff,
                )
            )
    out.sort(key=lambda m: (m.received, m.message_id))
    return out
