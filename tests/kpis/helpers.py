"""Small helpers shared by the KPI tests."""

from __future__ import annotations

from typing import Any

import pandas as pd


def one(frame: pd.DataFrame, **where: object) -> pd.Series:
    """The single row of `frame` where each column (as text) equals the given value."""
    rows = frame
    for column, value in where.items():
        rows = rows[rows[column].astype(str) == str(value)]
    assert len(rows) == 1, f"expected one row for {where}, got {len(rows)}"
    return rows.iloc[0]


# Oracle for scope tests (plain SQL, not the API): the fact columns each dimension's values are used in.
USED_IN = {
    "provider": [(t, "provider_id") for t in ("appointments", "slots", "claims", "ledger", "encounters")]
    + [("referrals", "referring_provider_id"), ("portal_messages", "provider_id")],
    "payer": [("appointments", "payer_id"), ("claims", "payer_id"), ("ledger", "payer_id")],
    "visit_type": [("appointments", "visit_type"), ("slots", "visit_type")],
    "new_patient": [("appointments", "is_new_patient")],
    "queue": [("calls", "queue")],
    "specialty": [("referrals", "specialty")],
}


def ids_of(wh: Any, dim: str, where: str) -> frozenset[str]:
    """The ids of `dim` that rows of the locations in `where` (SQL, e.g. "= 'EAST'") use."""
    parts = [f"SELECT {column} FROM {table} WHERE location_id {where}" for table, column in USED_IN[dim]]
    return frozenset(str(r[0]) for r in wh.cursor().execute(" UNION ".join(parts)).fetchall() if r[0] is not None)


def elsewhere_only(wh: Any, location: str) -> frozenset[str]:
    """What only other locations' rows name: their ids and names, and the ids and names of the
    providers and payers that work only there. A view scoped to `location` must show none of it."""
    locations = wh.dimension_values("location").set_index("id")["label"]
    others = locations.drop(location)
    foreign = {str(i) for i in others.index} | {str(v) for v in others}
    for dim in ("provider", "payer"):
        only = ids_of(wh, dim, f"<> '{location}'") - ids_of(wh, dim, f"= '{location}'")
        labels = wh.dimension_values(dim).set_index("id")["label"]
        foreign |= only | {str(labels[i]) for i in only if i in labels.index}
    return frozenset(foreign)
