"""Random draws, built on `Random.random()` alone.

`Random.randint`, `choice` and `choices` are pure Python and cost several times a call to
`random()`, which is C; the simulator makes hundreds of millions of draws at scale, so these
helpers take one `random()` each. They are exact enough for simulation: `int(random() * n)`
is uniform on 0..n-1 to within 2**-53.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


def randint(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high], both included."""
    return low + int(rng.random() * (high - low + 1))


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """One item, uniformly."""
    return items[int(rng.random() * len(items))]


class Weighted(Generic[T]):
    """Items drawn with fixed relative weights (one `random()` and a bisection per draw)."""

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        self.items = tuple(items)
        self._cumulative = list(accumulate(weights))
        self._total = self._cumulative[-1]

    def __call__(self, rng: random.Random) -> T:
        return self.items[bisect(self._cumulative, rng.random() * self._total)]


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson count (Knuth's method; a rounded normal above 50, where the two agree closely)."""
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
