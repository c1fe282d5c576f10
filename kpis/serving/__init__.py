"""The results store: KPI facts and results kept in the warehouse, so views answer without the raw engine.

Three levels, all in schema `serving` of the warehouse (one published snapshot holds raw tables
and results together, see `kpis.publication`):

1. **facts** (`serving.facts_<relation>`): one row per row of a KPI relation (an appointment, a
   claim, a ledger entry, ...), with its local event day(s), every dimension its KPIs allow and
   each KPI's contribution (numerator and denominator flags or amounts, population flag, or the
   value a mean or quantile aggregates), computed by the same spec conditions, with the options
   in force, as the raw engine's. Any grain, grouping and filter is an aggregate over them, with
   the same aggregate functions as the raw engine: the same numbers, value for value. A/R
   balances (credit balances included) keep each entry's signed amount, the day it ages and its
   look-back amount; third next available keeps each (snapshot, provider, location) result.
2. **results** (`serving.results`): the month-grain results of every stored KPI for the practice
   total, each dimension it allows, each pair (location, dimension) and (provider, payer),
   computed from the facts: what the dashboard and the report ask most (every pair of the
   sidebar's filters), answered by a lookup; and A/R aging by bucket at
   each month end (`serving.ar_aging`, `kpis.serving.aging`), the Revenue page's chart.
3. **meta** (`serving.meta`), coverage and dimension values: what the snapshot covers (data
   ends and starts, the last ingest run included), whether the store may answer, and the small
   views every page reads.

`kpis.serving.refresh` builds and refreshes the store (incrementally: only what a load touched),
`kpis.serving.answer` answers requests from it. See docs/contracts.md, "Results store".
"""
