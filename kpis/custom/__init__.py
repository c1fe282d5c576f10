"""Custom KPI queries: the few KPIs a ratio or an aggregate over one relation cannot express.

Each module offers `query(items, ctx)` (the same output shape as the generic engine) and
`explain(item, ctx)` (the records behind one period). A spec names its query with
`custom = "<name>"`.
"""

from kpis.custom import ar_balance, third_next_available

CUSTOM_QUERIES = {
    "ar_balance": ar_balance,
    "third_next_available": third_next_available,
}
