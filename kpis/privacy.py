"""Small-cell suppression: the one rule applied before a figure leaves the practice's own hands.

CMS's cell-size rule: no count from 1 to 10 is published, nor any figure from which such a
count could be worked out. `kpis` applies it where it decides what a person reads (the
scorecard, the trend, the movers and their drivers), for the scopes that withhold small cells
(`kpis.scope.Scope.small_cells`): what leaves the building (the report, its emails, alerts),
the command line and the demo by default, and the dashboard's viewer role. The owner, the
analysts and a location's manager read their own numbers on the dashboard as they are (a
location's 8 no-shows out of 282 visits is the manager's own work, not a publication).
Where it applies, every surface withholds the same cells:

* a count from 1 to 10 becomes the text "<11" (zero stays zero: it reveals no one);
* a KPI value computed from 1 to 10 records (its `n`) is withheld, since a rate or median of a
  handful of visits describes individual patients;
* a rate whose numerator counts 1 to 10 records is withheld too, even over 11 or more records:
  with its population (shown on the dashboard as n) it gives the small count back;
* a derived figure follows the cells it comes from: a segment is named as a driver of a move,
  with its values, its change and its part of the move, only when its value may be shown in
  both months; the words of the summary are written from those figures only.

Raw results (`Warehouse.compute`, `explain`) are not suppressed: they are the practice's own
analysis, inside the building.
"""

from __future__ import annotations

import math

import numpy as np

SMALL_CELL = "<11"
THRESHOLD = 11


def is_small(n: float | None) -> bool:
    """Whether a count is 1 to 10."""
    return bool(n is not None and not math.isnan(n) and 0 < n < THRESHOLD)


def withheld(n: float | None, numerator: float | None, numerator_counts: bool) -> bool:
    """Whether a value over `n` records (numerator `numerator`) must not be shown.

    `numerator_counts`: the numerator is a number of records (a rate such as no-shows / visits),
    not a sum of amounts or durations.
    """
    return is_small(n) or (numerator_counts and is_small(numerator))


def withheld_rows(n: np.ndarray, numerator: np.ndarray, numerator_counts: np.ndarray | bool) -> np.ndarray:
    """`withheld` of each row of float arrays at once (NaN: not known, as None is): the same rule,
    for the movers' segments and the scorecard's rows, where a Python call per row cost more than
    the rest of their work (21 k calls over 11 filter changes at 10 M)."""
    return _small(n) | (numerator_counts & _small(numerator))


def _small(counts: np.ndarray) -> np.ndarray:
    """`is_small` of each value (NaN compares false: not small)."""
    return (counts > 0) & (counts < THRESHOLD)


def count(n: int | float | None) -> int | str | None:
    """A count as a surface may show it: the number, or "<11" for 1 to 10."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return None
    return SMALL_CELL if is_small(n) else int(n)
