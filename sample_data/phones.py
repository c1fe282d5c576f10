"""The practice's shared phone queues: arrivals by hour and weekday, agents, patience.

Each business day is a first-come-first-served multi-agent queue: a caller waits for the
first free agent and hangs up if that takes longer than their patience. Each queue is staffed
for its busiest hour by the square-root rule (`agents_for`), the same all day, while demand
peaks on Monday mornings and over lunch (when half the agents are on break), so abandonment
rises exactly where a practice manager would look for it, at any size of practice.
"""

from __future__ import annotations

import heapq
import math
import random
from datetime import date

from sample_data import fake
from sample_data.clock import Clock
from sample_data.draws import poisson, randint
from sample_data.events import Call

OPEN_HOURS = range(8, 17)
# share of a day's calls arriving in each open hour (08..16)
HOURLY = (0.15, 0.15, 0.12, 0.10, 0.10, 0.12, 0.10, 0.09, 0.07)
WEEKDAY = (1.30, 1.05, 1.00, 0.95, 0.85)
# queue: (calls per business day, mean talk seconds) for a practice of REFERENCE_PROVIDERS providers
QUEUES = {"appointments": (190.0, 170), "nurse": (70.0, 230), "billing": (38.0, 260)}
REFERENCE_PROVIDERS = 12  # volumes scale with the number of providers, and staff with volumes
LUNCH_HOUR = 12  # half the agents (rounded down) are on break
MEAN_PATIENCE = 150.0  # seconds
MAX_WAIT = 300  # the queue's timeout: callers are sent to voicemail (EXITWITHTIMEOUT)
CALLBACK_SHARE = 0.12  # of callers still waiting at 60 s who press 1 for a callback (EXITWITHKEY)
CALLBACK_AFTER = 60
RING_NO_ANSWER = 0.03
STAFFING_MARGIN = 1.2  # b of the square-root staffing rule


def simulate_day(
    rng: random.Random, clock: Clock, d: date, providers: int, season: float, counter: list[int]
) -> list[Call]:
    """All calls of one business day, every queue, in arrival order."""
    calls: list[Call] = []
    choose = fake.chooser(rng)
    scale = providers / REFERENCE_PROVIDERS
    for queue, (per_day, talk_mean) in QUEUES.items():
        agents_n = agents_for(per_day * scale, talk_mean)
        lam = per_day * scale * WEEKDAY[d.weekday()] * season
        arrivals: list[int] = []
        for hour, share in zip(OPEN_HOURS, HOURLY, strict=True):
            base = clock.at(d, hour * 60)
            arrivals += [base + int(rng.random() * 3600) for _ in range(poisson(rng, lam * share))]
        arrivals.sort()
        names = [f"PJSIP/{_agent_base(queue) + i}" for i in range(agents_n)]
        free = [(clock.at(d, 8 * 60), name) for name in names]
        heapq.heapify(free)
        lunch_start, lunch_end = clock.at(d, LUNCH_HOUR * 60), clock.at(d, (LUNCH_HOUR + 1) * 60)
        on_break = set(names[: agents_n // 2])
        waiting: list[int] = []  # when callers ahead leave the queue
        for t in arrivals:
            while waiting and waiting[0] <= t:
                heapq.heappop(waiting)
            position = len(waiting) + 1
            patience = rng.expovariate(1 / MEAN_PATIENCE)
            # the first agent who can take the call (agents on lunch come back at its end)
            at, name = heapq.heappop(free)
            at = max(at, t)
            if name in on_break and at < lunch_end and at + 1 > lunch_start:
                at = lunch_end
            wait = at - t
            counter[0] += 1
            uid = f"{t}.{counter[0]}"
            caller = fake.phone(choose)
            wants_callback = rng.random() < CALLBACK_SHARE
            if wait > MAX_WAIT and patience > MAX_WAIT and not wants_callback:
                calls.append(Call(uid, queue, t, "timeout", MAX_WAIT, position=position, caller=caller))
                heapq.heappush(free, (at, name))
                heapq.heappush(waiting, t + MAX_WAIT)
            elif wants_callback and wait > CALLBACK_AFTER and patience > CALLBACK_AFTER:
                calls.append(Call(uid, queue, t, "exit_key", CALLBACK_AFTER, position=position, caller=caller))
                heapq.heappush(free, (at, name))
                heapq.heappush(waiting, t + CALLBACK_AFTER)
            elif wait > patience:
                gave_up = max(1, int(patience))
                calls.append(Call(uid, queue, t, "abandoned", gave_up, position=position, caller=caller))
                heapq.heappush(free, (at, name))
                heapq.heappush(waiting, t + gave_up)
            else:
                talk = max(20, int(rng.expovariate(1 / talk_mean)))
                rna = (
                    names[(names.index(name) + 1) % len(names)]
                    if len(names) > 1 and rng.random() < RING_NO_ANSWER
                    else ""
                )
                calls.append(Call(uid, queue, t, "answered", wait, talk, name, position, caller, rna))
                heapq.heappush(free, (at + talk + randint(rng, 5, 40), name))
                heapq.heappush(waiting, at)
    calls.sort(key=lambda c: (c.entered, c.uniqueid))
    return calls


def agents_for(calls_per_day: float, talk_mean: float) -> int:
    """Agents a queue is staffed with: the square-root staffing rule of call centres, N = A + b*sqrt(A)
    for the busiest hour's load A (in Erlangs), which keeps service alike whatever the volume."""
    load = calls_per_day * max(HOURLY) * talk_mean / 3600
    return max(1, math.ceil(load + STAFFING_MARGIN * math.sqrt(load)))


def _agent_base(queue: str) -> int:
    return {"appointments": 20_000, "nurse": 40_000, "billing": 60_000}[queue]
