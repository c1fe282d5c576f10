"""The `[costs]` section of the config: the assumptions that turn a KPI's gap into money and hours.

Kept apart from `kpis/costs.py` (which computes) so that `kpis/config.py` can validate the
section when the file is loaded without importing the KPI machinery. Each default names its
source; docs/contracts.md section 5 lists them. A practice overrides any of them in its config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kpis.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    default: Any
    unit: str
    source: str


SETTINGS: dict[str, Setting] = {
    "visit_value": Setting(
        None,
        "USD per visit",
        "the practice's own average payer payment per paid claim over the 12 months before the "
        "period's end, from its 835 remittances; set a value here when no 835s are loaded",
    ),
    "denial_rework_cost": Setting(
        118.0,
        "USD per denied claim",
        "Change Healthcare, Healthy Hospital Revenue Cycle Index (HFMA ANI, June 2017): about $118 "
        "to rework and appeal a denied claim (hospital claims; a practice's own cost is often lower)",
    ),
    "denial_rework_minutes": Setting(
        30.0, "staff minutes per denied claim", "estimate (no published figure): read the remittance, fix, resubmit"
    ),
    "no_show_staff_minutes": Setting(
        10.0, "staff minutes per no-show", "estimate (no published figure): call the patient and rebook the visit"
    ),
    "booking_queues": Setting(
        ["appointments", "scheduling"],
        "phone queue names",
        "the queues whose callers want an appointment; their share of abandoned calls is measured",
    ),
    "booking_share": Setting(
        None,
        "share of abandoned calls",
        "used only when no booking queue is found in the calls: set the share of abandoned calls "
        "that wanted an appointment",
    ),
    "callback_minutes": Setting(
        3.0, "staff minutes per abandoned call", "estimate (no published figure): return a missed call"
    ),
    "cost_of_capital": Setting(
        0.075,
        "per year",
        "Federal Reserve statistical release H.15, bank prime loan rate: 7.50% from Dec 2024 to Sep 2025",
    ),
    "staff_cost_per_hour": Setting(
        20.84,
        "USD per staff hour",
        "US Bureau of Labor Statistics, OEWS May 2023: medical assistants' mean annual wage $43,350 "
        "/ 2,080 hours (wages only, no benefits)",
    ),
}

_SHARES = {"booking_share"}


def check_costs(table: dict[str, Any], where: str) -> dict[str, Any]:
    """The settings in use: defaults overridden by `table` (the config's [costs]), each checked."""
    unknown = sorted(set(table) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"{where}: [costs] unknown key(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    values = {name: s.default for name, s in SETTINGS.items()}
    for name, value in table.items():
        if name == "booking_queues":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: [costs] booking_queues must be a list of queue names")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: [costs] {name} must be a number >= 0, got {value!r}")
        elif name in _SHARES and value > 1:
            raise ConfigError(f"{where}: [costs] {name} is a share between 0 and 1, got {value!r}")
        values[name] = list(value) if name == "booking_queues" else float(value)
    return values
