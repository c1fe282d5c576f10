"""What one reader of the warehouse may see: a scope, applied inside the KPI API, never by a page.

A `Warehouse` is opened with a scope (`Warehouse.open(..., scope=Scope(...))`); every public
method applies it before it answers (docs/contracts.md section 5):

* `locations`: the locations whose rows may be read. Every KPI request gets them as a mandatory
  `location` filter in its SQL (a location outside them is unknown, as a typo is), and every
  data view (dimension values, coverage, the change log) is narrowed to them. Rows that carry no
  location (a call in a queue_log that names none) belong to the practice as a whole, not to a
  location: a scope limited to some locations does not see them. Load history and rejects are
  practice-wide: only an unlimited scope sees them. `None` means every location (and the rows
  without one).
* `records`: whether the records behind a value (`explain`: pseudonymous keys, times) may be
  listed, or only aggregates.
* `small_cells`: whether values over 1 to 10 records are withheld (`kpis.privacy`). It is a
  property of the reader, not of a surface: what leaves the building (reports, emails, alerts)
  and the viewer role withhold them; the owner, the analysts and each location's manager read
  their own numbers as they are.

A scope can only be narrowed (`narrow`), never widened, so code handed a scoped warehouse
cannot see more than it was given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kpis.errors import ClinicKpisError


class AccessDenied(ClinicKpisError):
    """The scope a warehouse was opened with does not allow what was asked."""


@dataclass(frozen=True)
class Scope:
    """Which locations, and whether records and small cells, a reader may see (see the module docstring)."""

    locations: frozenset[str] | None = None
    records: bool = True
    small_cells: bool = True
    label: str = "the whole practice"  # who this is, in messages ("Eastside's manager")

    def __post_init__(self) -> None:
        if self.locations is not None:
            object.__setattr__(self, "locations", frozenset(str(loc) for loc in self.locations))
            if not self.locations:
                raise ClinicKpisError("a scope limited to locations needs at least one location")

    @classmethod
    def of_locations(cls, locations: Iterable[str], **kwargs: object) -> Scope:
        return cls(locations=frozenset(locations), **kwargs)  # type: ignore[arg-type]

    @property
    def limited(self) -> bool:
        """Whether the scope leaves some locations (and rows without a location) out."""
        return self.locations is not None

    def narrow(self, other: Scope) -> Scope:
        """The scope that allows only what both allow (what `Warehouse.narrowed` hands out)."""
        if self.locations is None:
            locations = other.locations
        elif other.locations is None:
            locations = self.locations
        else:
            locations = self.locations & other.locations
            if not locations:
                raise AccessDenied(f"{other.label} lies outside {self.label}")
        return Scope(
            locations=locations,
            records=self.records and other.records,
            small_cells=self.small_cells or other.small_cells,
            label=other.label if other.limited or not self.limited else self.label,
        )

    def require_records(self, what: str) -> None:
        if not self.records:
            raise AccessDenied(f"{what}: {self.label} sees aggregates only, not the records behind them")

    def require_practice(self, what: str) -> None:
        """For views that hold every location's rows at once (load history, rejects, writes)."""
        if self.limited:
            raise AccessDenied(f"{what} covers the whole practice; {self.label} sees {self.locations_text()} only")

    def locations_text(self) -> str:
        return ", ".join(sorted(self.locations)) if self.locations is not None else "every location"


EVERYTHING = Scope()  # what `Warehouse.open` gives without a scope: the command line, notebooks, reports
