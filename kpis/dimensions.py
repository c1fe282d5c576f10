"""The values of each dimension, with labels, for filter widgets and for showing empty groups.

A value is known if a reference table lists it or any fact row uses it, so a location with no
phone calls still appears (with n = 0) in a by-location phone KPI.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from kpis.config import Config
from kpis.errors import ClinicKpisError
from kpis.relations import DIMENSIONS
from kpis.sql_literals import sql_literal

# dimension -> (reference query giving id, label) and the fact columns that use it
_SOURCES: dict[str, tuple[str | None, tuple[tuple[str, str], ...]]] = {
    "location": (
        "SELECT location_id, name FROM locations",
        (
            ("appointments", "location_id"),
            ("encounters", "location_id"),
            ("slots", "location_id"),
            ("claims", "location_id"),
            ("ledger", "location_id"),
            ("calls", "location_id"),
            ("referrals", "location_id"),
            ("portal_messages", "location_id"),
        ),
    ),
    "provider": (
        "SELECT provider_id, name FROM providers",
        (
            ("appointments", "provider_id"),
            ("encounters", "provider_id"),
            ("slots", "provider_id"),
            ("claims", "provider_id"),
            ("ledger", "provider_id"),
            ("referrals", "referring_provider_id"),
            ("portal_messages", "provider_id"),
        ),
    ),
    "payer": (
        "SELECT payer_id, name FROM payers",
        (("appointments", "payer_id"), ("claims", "payer_id"), ("remittances", "payer_id"), ("ledger", "payer_id")),
    ),
    "payer_class": ("SELECT DISTINCT payer_class, payer_class FROM payers", ()),
    "visit_type": (None, (("appointments", "visit_type"), ("slots", "visit_type"))),
    "new_patient": (None, (("appointments", "is_new_patient"),)),
    "queue": (None, (("calls", "queue"),)),
    "specialty": (None, (("referrals", "specialty"),)),
    "denial_reason": (
        "SELECT DISTINCT group_code || '-' || reason_code, NULL FROM remittance_adjustments "
        "WHERE group_code IN ('CO', 'PI', 'OA') UNION ALL SELECT 'not denied', NULL",
        (),
    ),
    "weekday": (f"SELECT i, NULL FROM (VALUES {', '.join(f'({i})' for i in range(1, 8))}) AS r(i)", ()),
    "hour_of_day": (f"SELECT i, NULL FROM (VALUES {', '.join(f'({i})' for i in range(24))}) AS r(i)", ()),
}

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class DimensionError(ClinicKpisError):
    """An unknown dimension, or one a KPI cannot be broken down by."""


def check_dimension(dimension: str) -> str:
    if dimension not in DIMENSIONS:
        raise DimensionError(f"unknown dimension {dimension!r}; use one of {', '.join(DIMENSIONS)}")
    return dimension


# Fact tables whose rows carry a location (remittances do not: they are the payer's answer to a claim).
_LOCATED = frozenset(
    {"appointments", "encounters", "slots", "claims", "ledger", "calls", "referrals", "portal_messages"}
)


def dimension_values(
    cursor: Any, dimension: str, config: Config, locations: frozenset[str] | None = None
) -> pd.DataFrame:
    """id, label of every known value of `dimension`, sorted by label.

    `locations` (a scope's, `kpis.scope`): only the values that rows of those locations use, so
    a filter widget does not name another location, nor its providers and payers. Dimensions
    that are a fixed vocabulary (payer class, denial reason, weekday, hour) are not narrowed.
    """
    return labelled(cursor.execute(values_sql(dimension, locations)).df(), dimension, config)


def values_sql(dimension: str, locations: frozenset[str] | None = None) -> str:
    """SELECT id, label (the reference table's name, if any) of every known value of a dimension.

    `locations`: only the values rows of those locations use (see `dimension_values`).
    """
    reference, facts = _SOURCES[check_dimension(dimension)]
    parts = [reference] if reference else []
    parts += [f"SELECT DISTINCT {column}, NULL FROM {table}" for table, column in facts]
    where = "id IS NOT NULL"
    if locations is not None and (facts or dimension == "location"):
        allowed = sql_literal(sorted(locations))
        used = [
            f"SELECT {column} FROM {table} WHERE location_id IN ({allowed})"
            for table, column in facts
            if table in _LOCATED
        ]
        if dimension == "location":
            used = [f"SELECT location_id FROM locations WHERE location_id IN ({allowed})", *used]
        where += f" AND id IN ({' UNION '.join(used)})"
    return (
        "SELECT id, MAX(label) AS label FROM ("
        + " UNION ALL ".join(f"SELECT * FROM ({p}) AS x(id, label)" for p in parts)
        + f") WHERE {where} GROUP BY id"
    )


def source_tables(dimension: str) -> frozenset[str]:
    """The tables a dimension's values come from (a refresh recounts them only when these changed)."""
    reference, facts = _SOURCES[check_dimension(dimension)]
    found = {table for table, _ in facts}
    if reference:
        found |= {t.name for t in sqlglot.parse_one(reference, read="duckdb").find_all(exp.Table)}
    return frozenset(found)


def labelled(frame: pd.DataFrame, dimension: str, config: Config) -> pd.DataFrame:
    """`values_sql`'s rows with the labels people read (config names, weekdays, ...), sorted by label."""
    ids = frame["id"].astype("object").tolist()
    labels = [_label(dimension, i, lbl, config) for i, lbl in zip(ids, frame["label"].tolist(), strict=True)]
    out = pd.DataFrame({"id": pd.Series(ids, dtype="object"), "label": pd.Series(labels, dtype="object")})
    return out.sort_values(["label", "id"], key=lambda s: s.astype(str)).reset_index(drop=True)


def _label(dimension: str, value: Any, label: Any, config: Config) -> str:
    if dimension == "new_patient":
        return "new" if value else "established"
    if dimension == "weekday":
        return _WEEKDAYS[int(value) - 1]
    if dimension == "hour_of_day":
        return f"{int(value):02d}:00"
    if dimension == "location" and value in config.location_names:
        return config.location_names[value]
    if isinstance(label, str) and label:
        return label
    return str(value)


# Dimensions whose values are text ids a person may also give by their label (a name).
_NAMED = ("location", "provider", "payer", "payer_class", "visit_type", "queue", "specialty", "denial_reason")
_LISTED = 12  # known values named in an error before "and N more"


def resolve_values(
    cursor: Any,
    dimension: str,
    values: tuple[Any, ...],
    config: Config,
    known: pd.DataFrame | None = None,
    locations: frozenset[str] | None = None,
) -> tuple[Any, ...]:
    """Filter values as ids: each given as an id or as its label ("Northgate Clinic" for NORTH).

    A value the warehouse does not know is an error, not an empty result: it is a typo far more
    often than a wish for no rows. The message is the same for the API and the command line.
    With `locations` (a scope), a value those locations do not use is unknown too, and the
    message lists only the values they use. `known` is the dimension's values when the caller
    has them (the results store keeps them), as far as `locations` see.
    """
    if dimension not in _NAMED:
        return values
    if known is None:
        known = dimension_values(cursor, dimension, config, locations)
    ids = [str(i) for i in known["id"]]
    labels = [str(label) for label in known["label"]]
    out = []
    for value in values:
        text = str(value).strip()
        if text in ids:
            out.append(text)
            continue
        named = [i for i, label in zip(ids, labels, strict=True) if label.casefold() == text.casefold()]
        if len(set(named)) == 1:
            out.append(named[0])
            continue
        if named:
            raise DimensionError(
                f"{dimension} {text!r} is the name of several: give one id of {', '.join(sorted(set(named)))}"
            )
        same = [i for i in ids if i.casefold() == text.casefold()]
        hint = f" (did you mean {same[0]}?)" if same else ""
        shown = [label if label == i else f"{label} ({i})" for i, label in zip(ids, labels, strict=True)]
        listed = ", ".join(shown[:_LISTED]) + (f" and {len(shown) - _LISTED} more" if len(shown) > _LISTED else "")
        among = "in the warehouse" if locations is None else "in the locations you may see"
        raise DimensionError(f"no {dimension} {text!r} {among}{hint}; known: {listed or 'none'}")
    return tuple(out)
