"""Which export feeds each KPI, and whether it is loaded for a scope: honest empty views.

A location with no billing feed has no revenue-cycle numbers; saying "no data" there hides the
reason, and saying "records without a location are left out" is wrong. `missing` finds, for a
set of KPIs and filters, the tables that hold no row at all for that scope, and `EXPORTS` says
which export loads each, so a page can say "claims (X12 837) are not loaded for Northside".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kpis.serving.stored import SCOPES_TABLE, SCOPES_VERSION
from kpis.spec import KpiSpec
from kpis.sql_literals import sql_literal

# relation -> the table whose rows it is built from (the one that must be loaded)
TABLE_OF_RELATION = {
    "appointments": "appointments",
    "encounters": "encounters",
    "slots": "slots",
    "calls": "calls",
    "claim_outcomes": "claims",
    "ledger": "ledger",
    "referrals": "referrals",
    "portal_messages": "portal_messages",
}
# KPIs that need more than their relation's table: a claim is judged (denied, clean) only on
# its payer's remittances, which a practice-management claims export does not bring
TABLE_OF_KPI = {"denial_rate": "remittances", "clean_claim_rate": "remittances"}
# table -> the exports that load it, in words
EXPORTS = {
    "appointments": "appointments (FHIR or vendor CSV)",
    "encounters": "visit timelines (FHIR Encounter or vendor CSV)",
    "slots": "schedule slots (FHIR Slot)",
    "calls": "phone calls (queue_log)",
    "claims": "claims (X12 837)",
    "remittances": "remittances (X12 835)",
    "ledger": "billing transactions (X12 835 or transaction CSV)",
    "referrals": "referrals (FHIR ServiceRequest)",
    "portal_messages": "portal messages (portal CSV)",
}
# dimension -> the column of each table that carries it (only tables that record it)
_COLUMNS = {
    "location": {t: "location_id" for t in EXPORTS},
    "provider": {
        "appointments": "provider_id",
        "encounters": "provider_id",
        "slots": "provider_id",
        "claims": "provider_id",
        "ledger": "provider_id",
        "referrals": "referring_provider_id",
        "portal_messages": "provider_id",
    },
    "payer": {"appointments": "payer_id", "claims": "payer_id", "ledger": "payer_id", "remittances": "payer_id"},
}
# a remittance records no location or provider: it has its claim's
_THROUGH_CLAIM = {"location", "provider"}
# the store's columns of `SCOPES_TABLE`, one per dimension
_SCOPE_COLUMNS = {"location": "location_id", "provider": "provider_id", "payer": "payer_id"}


def missing(
    cursor: Callable[[], Any],
    specs: Iterable[KpiSpec],
    filters: Mapping[str, tuple[Any, ...]],
    found: dict[str, bool] | None = None,
    store: Callable[[], Any] | None = None,
) -> dict[str, str]:
    """kpi_id -> the table with no row at all in the scope of `filters`, for the KPIs that have one.

    Only location, provider and payer filters narrow the check (the structure of the practice);
    a table that does not record a filtered dimension counts as loaded when it has any row.
    `cursor` opens a cursor (only when something must be asked); `found` holds what was asked
    before (statement -> whether the table has such a row), e.g. kept per published snapshot;
    `store` returns the results store's state (`kpis.serving.answer.StoreState`).

    Why the store: a scope without rows is the costly answer of the raw statement (it reads the
    whole column: 20-60 ms at 10 M appointments for a provider without slots, 0.1-0.25 s for one
    whose claims have no remittance, a third of the 10 M practice's 1,338 providers). A fresh
    store built by this code keeps each table's combinations of the three dimensions
    (`scopes_sql`), so the same question is a lookup in a small table, for any scope.
    """
    found = {} if found is None else found
    cur = None
    from_store: bool | None = None
    out = {}
    for spec in specs:
        table = TABLE_OF_KPI.get(spec.id) or TABLE_OF_RELATION[spec.relation]
        scope = {d: v for d, v in filters.items() if d in spec.dimensions and _condition(table, d, v)}
        if from_store is None:
            from_store = _store_answers(store)
        sql = _stored_exists(table, scope) if from_store else _exists(table, scope)
        if sql not in found:
            cur = cur or cursor()
            found[sql] = bool(cur.execute(sql).fetchone()[0])
        if not found[sql]:
            out[spec.id] = table
    return out


def scopes_sql(table: str) -> str:
    """SELECT table_name, location_id, provider_id, payer_id: the distinct combinations `table`'s rows carry.

    A row of the store stands for rows of `table` in exactly the scopes that filter on values it
    holds (NULL: the rows record no value, or the table does not record the dimension, which
    `_condition` never filters on). A remittance is in a location's or provider's scope when any
    row of its claim is (`_condition`): so it stands for every pairing of its claim's locations
    and providers, which a filter on both answers as the raw statement does. (Joined to whole claim
    rows, not their distinct pairs: 1.8 s CPU at 10 M appointments rather than 3.9.)
    """
    if table == "remittances":
        return (
            "SELECT DISTINCT 'remittances' AS table_name, l.location_id, p.provider_id, r.payer_id "
            "FROM remittances AS r "
            "LEFT JOIN claims AS l ON l.claim_id = r.claim_id AND l.location_id IS NOT NULL "
            "LEFT JOIN claims AS p ON p.claim_id = r.claim_id AND p.provider_id IS NOT NULL"
        )
    columns = [f"{_COLUMNS[d].get(table) or 'NULL'}::VARCHAR AS {column}" for d, column in _SCOPE_COLUMNS.items()]
    return f"SELECT DISTINCT '{table}' AS table_name, {', '.join(columns)} FROM {table}"


def scope_tables(changed: Iterable[str]) -> list[str]:
    """The source tables whose combinations a write to the `changed` tables can move (a claim: its remittances')."""
    changed = set(changed)
    return [t for t in EXPORTS if t in changed or (t == "remittances" and "claims" in changed)]


def _store_answers(store: Callable[[], Any] | None) -> bool:
    """Whether the results store keeps this snapshot's combinations (fresh, built by this code)."""
    if store is None:
        return False
    state = store()
    return bool(state.fresh) and state.meta.get("scopes_version") == SCOPES_VERSION


def _exists(table: str, scope: Mapping[str, tuple[Any, ...]]) -> str:
    """SELECT EXISTS: whether `table` has a row in `scope`, asked of the raw table."""
    where = " AND ".join(_condition(table, d, v) for d, v in sorted(scope.items()))
    return f"SELECT EXISTS (SELECT 1 FROM {table}{' WHERE ' + where if where else ''})"


def _stored_exists(table: str, scope: Mapping[str, tuple[Any, ...]]) -> str:
    """`_exists`, asked of the store's combinations."""
    where = [f"table_name = '{table}'"]
    where += [f"{_SCOPE_COLUMNS[d]} IN ({sql_literal(list(v))})" for d, v in sorted(scope.items())]
    return f"SELECT EXISTS (SELECT 1 FROM {SCOPES_TABLE} WHERE {' AND '.join(where)})"


def _condition(table: str, dimension: str, values: tuple[Any, ...]) -> str:
    """SQL: a row of `table` is in the scope of one filter ("" when the table cannot tell)."""
    listed = sql_literal(list(values))
    if table == "remittances" and dimension in _THROUGH_CLAIM:
        return f"claim_id IN (SELECT claim_id FROM claims WHERE {_COLUMNS[dimension]['claims']} IN ({listed}))"
    column = _COLUMNS.get(dimension, {}).get(table)
    return f"{column} IN ({listed})" if column else ""
