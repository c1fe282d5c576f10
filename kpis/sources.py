"""Which export feeds each KPI, and whether it is loaded for a scope: honest empty views.

A location with no billing feed has no revenue-cycle numbers; saying "no data" there hides the
reason, and saying "records without a location are left out" is wrong. `missing` finds, for a
set of KPIs and filters, the tables that hold no row at all for that scope, and `EXPORTS` says
which export loads each, so a page can say "claims (X12 837) are not loaded for Northside".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

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
_PROBE_CLAIMS = 1000  # claims of a scope whose remittances are looked for first (`_probe`)


def missing(
    cursor: Callable[[], Any],
    specs: Iterable[KpiSpec],
    filters: Mapping[str, tuple[Any, ...]],
    found: dict[Any, Any] | None = None,
) -> dict[str, str]:
    """kpi_id -> the table with no row at all in the scope of `filters`, for the KPIs that have one.

    Only location, provider and payer filters narrow the check (the structure of the practice);
    a table that does not record a filtered dimension counts as loaded when it has any row.
    `cursor` opens a cursor (only when something must be asked); `found` holds what was asked
    before (statement -> whether the table has such a row; and `_has_rows`' kept values), e.g.
    kept per published snapshot.
    """
    found = {} if found is None else found
    cur = None
    out = {}
    for spec in specs:
        table = TABLE_OF_KPI.get(spec.id) or TABLE_OF_RELATION[spec.relation]
        scope = {d: v for d, v in filters.items() if d in spec.dimensions and _condition(table, d, v)}
        where = " AND ".join(_condition(table, d, v) for d, v in sorted(scope.items()))
        sql = f"SELECT EXISTS (SELECT 1 FROM {table}{' WHERE ' + where if where else ''})"
        if sql not in found:
            cur = cur or cursor()
            found[sql] = _has_rows(cur, table, scope, sql, found)
        if not found[sql]:
            out[spec.id] = table
    return out


def _has_rows(cur: Any, table: str, scope: Mapping[str, tuple[Any, ...]], sql: str, found: dict) -> bool:
    """The answer of `sql` (SELECT EXISTS ...): from the kept values of the filtered column when
    `found` holds them, else asking the cheaper `_probe` first when there is one.

    Why the probe: a remittance is in a location's scope through its claim, and the full statement
    hashes every claim of the scope (30-40 ms at 1 M appointments, for each new filter). The probe
    asks the same of the first claims of the scope only: when it finds a row, so would the full
    statement; when it does not, the full statement decides.
    Why the kept values: a scope without rows is the costly answer (the statement reads the whole
    column: 10-30 ms at 10 M appointments for a provider without slots, 0.1-0.25 s for one whose
    claims have no remittance, a third of the 10 M practice's 1,338 providers), paid once per
    filter value. So from the second such miss of a table and dimension in a snapshot, the
    column's distinct values are read once (4-90 ms for a table's column at 10 M; 0.7-1 s for the
    providers of the claims with a remittance) and kept in `found`: every later filter on it (one
    dimension, any values) is a lookup. They are the rows the statement looks for (non-NULL: NULL
    is in no filter).
    """
    dimension = next(iter(scope)) if len(scope) == 1 else None
    values = found.get(("values", table, dimension))
    if values is not None:
        return any(str(v) in values for v in scope[dimension])
    probe = _probe(table, scope)
    if probe is not None and cur.execute(probe).fetchone()[0]:
        return True
    missed = ("missed", table, dimension)
    if dimension is not None and found.get(missed):
        kept = {str(v) for (v,) in cur.execute(_values(table, dimension)).fetchall()}
        found[("values", table, dimension)] = kept
        return any(str(v) in kept for v in scope[dimension])
    answer = bool(cur.execute(sql).fetchone()[0])
    if dimension is not None and not answer:
        found[missed] = True
    return answer


def _values(table: str, dimension: str) -> str:
    """The distinct non-NULL values of `dimension` that rows of `table` carry (a remittance: its claim's)."""
    if table == "remittances" and dimension in _THROUGH_CLAIM:
        column = _COLUMNS[dimension]["claims"]
        return f"SELECT DISTINCT {column} FROM claims SEMI JOIN remittances USING (claim_id) WHERE {column} IS NOT NULL"
    column = _COLUMNS[dimension][table]
    return f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"


def _probe(table: str, scope: Mapping[str, tuple[Any, ...]]) -> str | None:
    """A statement that is true only when `table` has a row in `scope` (None: no cheaper one)."""
    through = [d for d in scope if table == "remittances" and d in _THROUGH_CLAIM]
    if not through:
        return None
    claims = " AND ".join(f"{_COLUMNS[d]['claims']} IN ({sql_literal(list(scope[d]))})" for d in sorted(through))
    rest = [_condition(table, d, v) for d, v in sorted(scope.items()) if d not in through]
    where = " AND ".join([f"claim_id IN (SELECT claim_id FROM claims WHERE {claims} LIMIT {_PROBE_CLAIMS})", *rest])
    return f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {where})"


def _condition(table: str, dimension: str, values: tuple[Any, ...]) -> str:
    """SQL: a row of `table` is in the scope of one filter ("" when the table cannot tell)."""
    listed = sql_literal(list(values))
    if table == "remittances" and dimension in _THROUGH_CLAIM:
        return f"claim_id IN (SELECT claim_id FROM claims WHERE {_COLUMNS[dimension]['claims']} IN ({listed}))"
    column = _COLUMNS.get(dimension, {}).get(table)
    return f"{column} IN ({listed})" if column else ""
