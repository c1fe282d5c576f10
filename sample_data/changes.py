"""Process changes the simulated practice makes: one with a known effect, one placebo with none.

The practice logs both in `change_log.csv` (the layout `clinic-kpis changes import` reads), as a
practice would: it cannot know in advance which change works. `truth.json` says which one did
(`meta.changes`), so a test can check that the change's effect is found at its date and place
and that the placebo gives no signal. The effect acts where the no-show probability is drawn
(`schedule.py`): from the change's day, at its location, the probability is multiplied by
`no_show_factor` (1 for the placebo).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sample_data.clock import add_months

# Telephone reminders roughly halve no-shows in published primary-care trials; the simulator
# uses a 45% cut (ASSUMPTIONS.md, "Process change").
REMINDER_EFFECT = 0.55
CHANGE_LOG = "change_log.csv"


@dataclass(frozen=True)
class InjectedChange:
    """A change at one location from one day, multiplying its no-show probability by `no_show_factor`."""

    title: str
    location: str  # location code, e.g. EAST
    day: date
    no_show_factor: float  # 1.0: a placebo, logged but without effect
    description: str = ""
    kpi: str = "no_show_rate"

    @property
    def placebo(self) -> bool:
        return self.no_show_factor == 1.0

    def truth(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kpi": self.kpi,
            "location": self.location,
            "date": self.day.isoformat(),
            "no_show_probability_factor": self.no_show_factor,
            "placebo": self.placebo,
        }


def default_changes(process_change: date, locations: Sequence[str]) -> tuple[InjectedChange, ...]:
    """Reminder calls at EAST from the process-change day; a placebo at WEST two months later."""
    changes = []
    if "EAST" in locations:
        changes.append(
            InjectedChange(
                "Reminder calls 48 h ahead",
                "EAST",
                process_change,
                REMINDER_EFFECT,
                "Front desk calls every patient two days before the visit.",
            )
        )
    if "WEST" in locations:
        changes.append(
            InjectedChange(
                "New waiting-room posters",
                "WEST",
                add_months(process_change, 2),
                1.0,
                "Posters asking patients to cancel rather than miss their visit.",
            )
        )
    return tuple(changes)


def no_show_factor(changes: Sequence[InjectedChange], location: str, day: date) -> float:
    """The product of the factors of the changes in force at `location` on `day`."""
    factor = 1.0
    for change in changes:
        if change.location == location and day >= change.day:
            factor *= change.no_show_factor
    return factor


def write_change_log(out: Path, changes: Sequence[InjectedChange]) -> None:
    """The practice's own log of the changes, in the CSV layout `clinic-kpis changes import` reads."""
    with open(out / CHANGE_LOG, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["date", "title", "kpis", "scope", "description", "recorded_by"])
        for change in changes:
            writer.writerow(
                [change.day.isoformat(), change.title, change.kpi, f"location={change.location}",
                 change.description, "Practice manager"]
            )  # fmt: skip
