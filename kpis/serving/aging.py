"""A/R aging in the results store: A/R by aging bucket at each month end, per dimension cell.

`Warehouse.ar_aging` (the Revenue cycle page's chart) needs each account's balance at a month's
end, which the raw engine finds by grouping every ledger entry by account: seconds at 1 M
appointments, half a minute at 10 M. The store keeps its answer instead, in
`serving.ar_aging`: one row per (month, location, provider, payer, payer class, bucket) with
the sum of the open accounts' balances and their number.

Why per dimension cell and not per account: an account's balance is additive across cells only
when the account lies in one cell, and then its balance in any filter or breakdown is either
its whole balance or nothing, so the cells' sums and counts roll up to every filter and grouping
the page offers, exactly. The refresh counts the accounts that span several cells
(`ar_aging_split_accounts` in `serving.meta`); while one does, the raw engine answers.

An account is the raw engine's (a claim, or a lone entry; with its date of service), found in
the ledger facts as (ar_account, ar_aged_on, ar_undated): aged from its date of service, the day
an account counts as aged (`ar_aged_on`, its age date + 91 days) tells its date of service, or
the first posting of one without. So the store keeps aging from the date of service (the
default); aging from the first bill is left to the raw engine.

Refresh (`kpis.serving.refresh`): built whole from the ledger facts, then kept up to date from
the first month a load touched on: for the accounts whose fact rows changed, their previous
contribution is taken out and their new one added (sums and counts: exact), and a month past
the last one kept is computed over every account.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from kpis.custom.ar_balance import AGED_DAYS, BUCKETS
from kpis.periods import next_period
from kpis.query import QueryContext

# the ledger facts' columns that make an account (with its cell, the dimensions)
ACCOUNT = ("ar_account", "ar_aged_on", "ar_undated")
COLUMNS = ("_key", "day_posted_date", "ar_amount", *ACCOUNT)  # what the contributions read, with the dimensions


def bucket_sql(age: str) -> str:
    """SQL: the aging bucket of an age in days (ar_balance's buckets)."""
    whens = " ".join(f"WHEN {age} <= {hi} THEN '{name}'" for name, _, hi in BUCKETS if hi is not None)
    return f"CASE {whens} ELSE '{BUCKETS[-1][0]}' END"


def contributions_sql(rows: str, dims: Sequence[str], first: date, last: date) -> str:
    """SELECT period_start, <dims>, bucket, amount, accounts: the open accounts of `rows` at each month end.

    `rows` is SQL of ledger fact rows (or a subset: whole accounts). Months from `first` to
    `last`; entries posted before `first` count from its end. An account is open at a month's end
    when its balance then is not zero (credit balances included), as in the raw engine.
    """
    spine, month, idx = [], first, 0
    while month <= last:
        after = next_period(month, "month")
        spine.append(f"({idx}, DATE '{month.isoformat()}', DATE '{after.isoformat()}' - 1)")
        month, idx = after, idx + 1
    key = ", ".join([*ACCOUNT, *dims])
    d = "".join(f", a.{dim}" for dim in dims)
    age = f"DATE_DIFF('day', a.ar_aged_on, s.period_end) + {AGED_DAYS + 1}"
    return f"""
        WITH spine AS (SELECT * FROM (VALUES {", ".join(spine)}) AS spine(idx, period_start, period_end)),
        deltas AS (
            SELECT {key}, s.idx AS posted_idx, SUM(r.ar_amount) AS delta
            FROM ({rows}) AS r
            JOIN spine AS s
              ON s.period_start = GREATEST(CAST(DATE_TRUNC('month', r.day_posted_date) AS DATE), DATE '{first}')
            GROUP BY {key}, s.idx
        ),
        states AS (
            SELECT *, SUM(delta) OVER w AS balance, LEAD(posted_idx, 1, {idx}) OVER w AS next_idx
            FROM deltas
            WINDOW w AS (PARTITION BY {key} ORDER BY posted_idx)
        )
        SELECT s.period_start{d}, {bucket_sql(age)} AS bucket,
               CAST(SUM(a.balance) AS DECIMAL(38, 2)) AS amount, COUNT(*) AS accounts
        FROM states AS a
        JOIN spine AS s ON s.idx >= a.posted_idx AND s.idx < a.next_idx
        WHERE a.balance <> 0
        GROUP BY ALL
    """


def split_accounts_sql(rows: str, dims: Sequence[str]) -> str:
    """SELECT count(*): the accounts of `rows` whose entries lie in more than one dimension cell."""
    key = ", ".join(ACCOUNT)
    return (
        f"SELECT count(*) FROM (SELECT {key} FROM (SELECT DISTINCT {key}, {', '.join(dims)} FROM ({rows}) AS r) "
        f"AS d GROUP BY {key} HAVING count(*) > 1) AS s"
    )


def answer_sql(table: str, ctx: QueryContext) -> str:
    """The stored aging at the end of the request's (one) month, as `ar_balance.aging_query` returns it."""
    dims = "".join(f"{d}, " for d in ctx.dims)
    month = ctx.periods.starts[0].isoformat()
    return (
        f"SELECT period_start, {dims}bucket, CAST(SUM(amount) AS DOUBLE) AS amount, "
        f"CAST(SUM(accounts) AS BIGINT) AS accounts FROM {table} "
        f"WHERE period_start = DATE '{month}'{ctx.filter_sql()} GROUP BY ALL ORDER BY ALL"
    )
