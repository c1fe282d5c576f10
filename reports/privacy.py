"""Small-cell suppression: what a report that leaves the building may show.

CMS's cell-size rule: no count from 1 to 10 is published, nor any figure from which such a
count could be worked out. The report applies it in one place, here, as the context is built,
so a small number never reaches a template:

* a count from 1 to 10 becomes the text "<11" (zero stays zero: it reveals no one);
* a KPI value computed from 1 to 10 records (its `n`) is withheld, since a rate or median of
  a handful of visits describes individual patients.

The report never prints a KPI's numerator next to its population, so a rate over 11 or more
records cannot be turned back into a small count.
"""

from __future__ import annotations

import math

SMALL_CELL = "<11"
THRESHOLD = 11


def is_small(n: float | None) -> bool:
    """Whether a count is 1 to 10."""
    return bool(n is not None and not math.isnan(n) and 0 < n < THRESHOLD)


def count(n: int | float | None) -> int | str | None:
    """A count as the report may show it: the number, or "<11" for 1 to 10."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return None
    return SMALL_CELL if is_small(n) else int(n)
