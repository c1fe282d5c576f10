"""How a run splits into shards, and how shards are dealt to worker processes.

A shard is a part of the practice whose events depend on nothing outside it: each location,
and the shared phone queues. Shards are numbered in a fixed order (locations, then phones),
which is the order their parts are assembled in, so the exports do not depend on how shards
are grouped into processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sample_data.parts import PartInfo
from sample_data.practice import Practice

# Relative cost of a shard per provider, measured on the default run (benchmarks/RESULTS.md): an EHR
# location writes FHIR and X12, NORTH writes CSV, the phones write the queue_log.
COST_PER_PROVIDER = {"ehr": 1.0, "pms": 0.65, "phones": 0.15}


@dataclass(frozen=True)
class ShardSpec:
    index: int  # assembly order
    kind: str  # "location" | "phones"
    location: int = -1  # index into Practice.locations for a location shard
    cost: float = 0.0


@dataclass
class ShardResult:
    """What a shard hands back at the end: its truth tallies, dirty-record counts and totals."""

    tallies: dict[str, Any] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)
    appointments: int = 0
    claims: int = 0
    calls: int = 0


class Shard(Protocol):
    result: ShardResult

    def step(self, k: int) -> dict[str, PartInfo]:
        """Simulate step `k` (month k, or the final step k = months) and return the parts written."""
        ...


def plan(practice: Practice) -> list[ShardSpec]:
    specs = [
        ShardSpec(i, "location", i, COST_PER_PROVIDER[loc.system] * len(practice.providers_at(i)))
        for i, loc in enumerate(practice.locations)
    ]
    specs.append(ShardSpec(len(specs), "phones", cost=COST_PER_PROVIDER["phones"] * len(practice.providers)))
    return specs


def groups(specs: list[ShardSpec], workers: int) -> list[list[ShardSpec]]:
    """Deal shards to at most `workers` groups, largest first to the least loaded (balanced, deterministic)."""
    count = max(1, min(workers, len(specs)))
    loads = [0.0] * count
    dealt: list[list[ShardSpec]] = [[] for _ in range(count)]
    for spec in sorted(specs, key=lambda s: (-s.cost, s.index)):
        target = loads.index(min(loads))
        dealt[target].append(spec)
        loads[target] += spec.cost
    return [sorted(group, key=lambda s: s.index) for group in dealt]
