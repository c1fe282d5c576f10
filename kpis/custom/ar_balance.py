"""days_in_ar and ar_over_90_pct: balances as of each period's last day, in one statement.

A/R is a stock, not a flow: its value on a day sums every ledger entry posted up to that day
(charges and refunds add, payments, adjustments and write-offs subtract). "Excluding credit
balances" and aging both need the balance per account (a claim, or a lone entry without one),
so the statement works per account, without joining every entry to every period end:

1. each entry is placed in the first period whose last day is on or after its posting;
2. per account, the running balance after each period with activity is valid until the
   account's next activity (a window over at most a few rows per account);
3. only accounts with a non-zero balance are expanded to the period ends they span.

An account's balance is aged by its date of service (or first bill), and counted only when
positive if credit balances are excluded. Days in A/R divides the balance by the average daily
charges of the look-back window ending the same day, from a per-day summary of the ledger.

    presets      window charges                            look-back   credit balances
    mgma         charges - contractual (CO-45) adjustments    365      included
    hfma         charges - all payer adjustments (net rev.)    90      excluded
    aafp         gross charges                                  90      excluded

`n` is, for days in A/R, the number of charge entries in the look-back window (the population
of the denominator) and, for A/R over 90 days, the number of ledger entries posted up to the
period's end.
"""

from __future__ import annotations

from collections.abc import Sequence

from kpis.query import KpiRequest, QueryContext, output_row, ratio_value, with_relation

PRESETS = {
    "mgma": {"lookback_days": 365, "credit_balances": "include"},
    "hfma": {"lookback_days": 90, "credit_balances": "exclude"},
    "aafp": {"lookback_days": 90, "credit_balances": "exclude"},
}
AGED_DAYS = 90
BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("91-120", 91, 120), ("120+", 121, None))


def preset_options(item: KpiRequest) -> tuple[str, int, str]:
    """(preset, look-back days, credit balances) for days_in_ar, filling unset options from the preset."""
    preset = item.options["preset"]
    lookback = item.options.get("lookback_days") or PRESETS[preset]["lookback_days"]
    credits = item.options.get("credit_balances") or PRESETS[preset]["credit_balances"]
    return preset, int(lookback), credits


def lookback_days(item: KpiRequest) -> int:
    """Days before a period's end whose charges the value needs: days in A/R averages a look-back
    window, so a period whose window reaches before the first ledger entry is not complete (its
    average daily charges would be too low and the days too high)."""
    return preset_options(item)[1] if item.id == "days_in_ar" else 0


def window_amount(item: KpiRequest) -> str:
    """SQL over a ledger row: its contribution to the look-back window's charges for the preset."""
    preset = item.options["preset"]
    if preset == "mgma":
        contractual = item.condition("{contractual}")
        return f"CASE WHEN entry_type = 'charge' THEN amount WHEN {contractual} THEN -amount ELSE 0 END"
    if preset == "hfma":
        return "CASE WHEN entry_type = 'charge' THEN amount WHEN entry_type = 'adjustment' THEN -amount ELSE 0 END"
    return "CASE WHEN entry_type = 'charge' THEN amount ELSE 0 END"


def age_columns(item: KpiRequest) -> tuple[str, ...]:
    """The dates an account ages from, in order of preference, before its first posting."""
    return ("first_billed_date", "service_date") if item.options.get("age_from") == "first_bill" else ("service_date",)


def age_date(item: KpiRequest, first_posted: str = "first_posted", prefix: str = "") -> str:
    """SQL over an account row: the date its balance ages from (date of service unless first bill)."""
    return f"COALESCE({', '.join([*(prefix + c for c in age_columns(item)), first_posted])})"


def _balance(credits: str, condition: str = "TRUE") -> str:
    kept = "balance > 0" if credits == "exclude" else "TRUE"
    return f"COALESCE(SUM(balance) FILTER (WHERE {kept} AND {condition}), 0)"


def period_index_start(day: str, ctx: QueryContext) -> str:
    """SQL: the first day of the period a date falls in, or of the first period for earlier dates.

    Joined to the spine by equality, it gives a ledger entry the index of the first period whose
    end is on or after its posting (none after the last period) without a range join.
    """
    return (
        f"GREATEST(CAST(DATE_TRUNC('{ctx.periods.grain}', {day}) AS DATE), DATE '{ctx.periods.first_day.isoformat()}')"
    )


def located_ctes(ctx: QueryContext, source: str = "base") -> list[tuple[str, str]]:
    """`spine` (idx, period_start, period_end) and `located`: the entries of `source` (the ledger
    relation, or the results store's ledger facts) with their period index, filters applied."""
    rows = ", ".join(
        f"({i}, DATE '{s.isoformat()}', DATE '{e.isoformat()}')" for i, (s, e) in enumerate(ctx.periods.spine())
    )
    return [
        ("spine", f"SELECT * FROM (VALUES {rows}) AS spine(idx, period_start, period_end)"),
        (
            # entries before the first period count from its end: they share its index
            "located",
            f"""
            SELECT l.*, s.idx AS posted_idx
            FROM {source} AS l
            JOIN spine AS s ON s.period_start = {period_index_start("l.posted_date", ctx)}
            WHERE TRUE{ctx.filter_sql()}
            """,
        ),
    ]


ACCOUNT = "account, service_date, first_billed_date"  # what an account is, whatever the breakdown


def _account_key(ctx: QueryContext) -> str:
    """An account within a breakdown's segment (a claim's entries may fall in several)."""
    return ACCOUNT + "".join(f", {d}" for d in ctx.dims)


def _account_ctes(ctx: QueryContext) -> list[tuple[str, str]]:
    """CTEs ending in `open_accounts`: each account's non-zero balance at each period end it spans.

    Also `spine`, `located` (see `located_ctes`) and `deltas` (per account and period: the
    change of balance and the number of entries).
    """
    last = len(ctx.periods.starts)
    key = _account_key(ctx)
    window = f"PARTITION BY {key} ORDER BY posted_idx"
    return [
        *located_ctes(ctx),
        (
            "deltas",
            f"""
            SELECT {key}, posted_idx, SUM(ar_amount) AS delta, MIN(posted_date) AS first_posted,
                   COUNT(*) AS entries
            FROM located
            GROUP BY {key}, posted_idx
            """,
        ),
        (
            "states",
            f"""
            SELECT {key}, posted_idx,
                   SUM(delta) OVER ({window}) AS balance,
                   LEAD(posted_idx, 1, {last}) OVER ({window}) AS next_idx,
                   MIN(first_posted) OVER (PARTITION BY {ACCOUNT}) AS first_posted
            FROM deltas
            """,
        ),
        (
            "open_accounts",
            f"""
            SELECT s.period_start, s.period_end, a.account, a.service_date, a.first_billed_date, a.first_posted,
                   a.balance{"".join(f", a.{d}" for d in ctx.dims)}
            FROM states AS a
            JOIN spine AS s ON s.idx >= a.posted_idx AND s.idx < a.next_idx
            WHERE a.balance <> 0
            """,
        ),
    ]


def _aged(item: KpiRequest | None, period_end: str = "period_end") -> str:
    """SQL over an account row: its balance is aged more than 90 days at `period_end`."""
    if item is None:
        return "FALSE"
    return f"DATE_DIFF('day', {age_date(item)}, {period_end}) > {AGED_DAYS}"


def _account_balance_ctes(ctx: QueryContext, aging: KpiRequest | None) -> list[tuple[str, str]]:
    """CTEs ending in `balances` (period, dims, balance, aged, entries), one row per open account."""
    dims = "".join(f", {d}" for d in ctx.dims)
    s_dims = "".join(f", c.{d}" for d in ctx.dims)
    return [
        *_account_ctes(ctx),
        (
            "entry_counts",
            f"""
            SELECT s.period_start, s.period_end{s_dims}, SUM(c.entries) AS entries
            FROM (SELECT posted_idx{dims}, SUM(entries) AS entries FROM deltas GROUP BY posted_idx{dims}) AS c
            JOIN spine AS s ON c.posted_idx <= s.idx
            GROUP BY s.period_start, s.period_end{s_dims}
            """,
        ),
        (
            "balances",
            f"""
            SELECT period_start, period_end{dims}, balance, {_aged(aging)} AS aged, 0 AS entries
            FROM open_accounts
            UNION ALL
            SELECT period_start, period_end{dims}, NULL, FALSE, entries
            FROM entry_counts
            """,
        ),
    ]


def _entry_balance_ctes(ctx: QueryContext, aging: KpiRequest | None) -> list[tuple[str, str]]:
    """CTEs ending in `balances` (period, dims, balance, aged, entries) when credit balances count.

    Then no account's balance needs to be known: the A/R at a period's end is the sum of the
    entries posted by then, and the aged A/R the sum of those whose account is more than 90 days
    old then. An entry of an account aging from day a is aged from the period holding a + 91
    days (or from its own posting, if later), so both are running totals over the few periods of
    entries grouped by (posting period, aged-from period): no window over millions of accounts.
    An account without a date of service (or first bill) ages from its first posting, found
    for those accounts only.
    """
    ctes = located_ctes(ctx)
    source, aged_idx = "located", "CAST(NULL AS INTEGER)"
    if aging is not None:
        undated = " AND ".join(f"{c} IS NULL" for c in age_columns(aging))
        # an account without a date ages from its first posting in any segment: its age (and so the
        # practice total) must not depend on the breakdown asked for
        key = ACCOUNT
        same_account = " AND ".join(f"a.{c} IS NOT DISTINCT FROM l.{c}" for c in key.split(", "))
        ctes += [
            (
                "first_postings",
                f"SELECT {key}, MIN(posted_date) AS first_posted FROM located WHERE {undated} GROUP BY {key}",
            ),
            (
                "aged_from",
                f"""
                SELECT l.*, CASE WHEN g.idx IS NOT NULL THEN GREATEST(l.posted_idx, g.idx) END AS aged_idx
                FROM (
                    SELECT l.*, {age_date(aging, "a.first_posted", "l.")} AS age_date
                    FROM located AS l
                    LEFT JOIN first_postings AS a ON {same_account}
                ) AS l
                LEFT JOIN spine AS g
                  ON g.period_start = {period_index_start(f"l.age_date + INTERVAL {AGED_DAYS + 1} DAY", ctx)}
                """,
            ),
        ]
        source, aged_idx = "aged_from", "aged_idx"
    return [*ctes, *entry_totals_ctes(ctx, source, aged_idx)]


def entry_totals_ctes(
    ctx: QueryContext, source: str, aged_idx: str, entries: str = "COUNT(*)"
) -> list[tuple[str, str]]:
    """`entry_totals` and `balances` (period, dims, balance, aged, entries) from entries in `source`.

    `source` has posted_idx, ar_amount and the dimension columns; `aged_idx` is the SQL of the
    index of the first period an entry counts as aged in (NULL: not within the periods). Shared
    by the raw statement and the results store, which keeps each entry's age instead of finding
    it (kpis/serving/), or entries already summed (`entries`: the aggregate that counts them).
    """
    dims = "".join(f", {d}" for d in ctx.dims)
    e_dims = "".join(f", e.{d}" for d in ctx.dims)
    return [
        (
            "entry_totals",
            f"""
            SELECT posted_idx, {aged_idx} AS aged_idx{dims}, SUM(ar_amount) AS amount, {entries} AS entries
            FROM {source}
            GROUP BY posted_idx, {aged_idx}{dims}
            """,
        ),
        (
            "balances",
            f"""
            SELECT s.period_start, s.period_end{e_dims}, SUM(e.amount) AS balance,
                   COALESCE(e.aged_idx <= s.idx, FALSE) AS aged, SUM(e.entries) AS entries
            FROM entry_totals AS e
            JOIN spine AS s ON e.posted_idx <= s.idx
            GROUP BY s.period_start, s.period_end{e_dims}, COALESCE(e.aged_idx <= s.idx, FALSE)
            """,
        ),
    ]


def credit_balances(item: KpiRequest) -> str:
    """Whether credit balances count in A/R for this KPI and options (include / exclude)."""
    return preset_options(item)[2] if item.id == "days_in_ar" else item.options["credit_balances"]


def query(items: Sequence[KpiRequest], ctx: QueryContext) -> str:
    aging = next((i for i in items if i.id == "ar_over_90_pct"), None)
    if all(credit_balances(item) == "include" for item in items):
        ctes = _entry_balance_ctes(ctx, aging)
    else:
        ctes = _account_balance_ctes(ctx, aging)
    days_in_ar = next((i for i in items if i.id == "days_in_ar"), None)
    window = window_amount(days_in_ar) if days_in_ar is not None else "0"
    ctes, final = results_ctes(items, ctx, ctes, window, "entry_type = 'charge'")
    return with_relation(ctx.relations["ledger"], ctes, final)


def results_ctes(
    items: Sequence[KpiRequest],
    ctx: QueryContext,
    ctes: list[tuple[str, str]],
    window: str,
    is_charge: str,
    days: tuple[str, str] | None = None,
) -> tuple[list[tuple[str, str]], str]:
    """The CTEs after `balances` and the final SELECT: balances and look-back charges per period.

    `ctes` ends in `balances` and holds `spine` and `located` (the entries in range, with
    posted_date); `window` and `is_charge` are SQL over a `located` row: its amount in the
    look-back window's charges, and whether it is a charge. Shared by the raw statement and the
    results store (kpis/serving/), which may read the look-back from entries summed by day
    instead: `days` = (source with posted_date and the dimensions, the aggregate counting its charges).
    """
    dims = "".join(f", {d}" for d in ctx.dims)
    s_dims = "".join(f", c.{d}" for d in ctx.dims)
    ctes = list(ctes)
    facts = f"""
        SELECT period_start, period_end{dims}, balance, aged, entries,
               CAST(0 AS DECIMAL(18, 2)) AS window_amount, 0 AS window_charges
        FROM balances
    """
    days_in_ar = next((i for i in items if i.id == "days_in_ar"), None)
    if days_in_ar is not None:
        _, lookback, _ = preset_options(days_in_ar)
        first_end = ctx.periods.spine()[0][1].isoformat()
        daily_source, charges = days or ("located", f"COUNT(*) FILTER (WHERE {is_charge})")
        ctes.append(
            (
                "daily",
                f"""
                SELECT posted_date{dims}, SUM({window}) AS window_amount, {charges} AS window_charges
                FROM {daily_source}
                WHERE posted_date > DATE '{first_end}' - INTERVAL {lookback} DAY
                GROUP BY posted_date{dims}
                """,
            )
        )
        facts += f"""
        UNION ALL
        SELECT s.period_start, s.period_end{s_dims}, NULL, FALSE, 0, c.window_amount, c.window_charges
        FROM spine AS s JOIN daily AS c
          ON c.posted_date > s.period_end - INTERVAL {lookback} DAY AND c.posted_date <= s.period_end
        """
    ctes.append(("facts", facts))

    aggregates, rows = [], []
    for i, item in enumerate(items):
        k = f"k{i}"
        if item.id == "days_in_ar":
            _, lookback, credits = preset_options(item)
            aggregates += [
                f"{_balance(credits)} AS {k}_num",
                f"COALESCE(SUM(window_amount), 0) / {lookback} AS {k}_den",
                f"SUM(window_charges) AS {k}_n",
            ]
        elif item.id == "ar_over_90_pct":
            credits = item.options["credit_balances"]
            aggregates += [
                f"{_balance(credits, 'aged')} AS {k}_num",
                f"{_balance(credits)} AS {k}_den",
                f"SUM(entries) AS {k}_n",
            ]
        else:
            raise ValueError(f"ar_balance does not compute {item.id}")
        value = ratio_value(f"{k}_num", f"{k}_den")
        if item.id == "days_in_ar":  # negative A/R (payments without their charges) is no number of days;
            value = f"CASE WHEN {k}_num >= 0 THEN {value} END"  # zero A/R is: all collected, 0 days
        rows.append(output_row(item.id, ctx, f"{k}_num", f"{k}_den", value, f"{k}_n"))
    ctes.append(
        (
            "grouped",
            f"SELECT period_start, {ctx.dim_select()}{', '.join(aggregates)} FROM facts GROUP BY {ctx.group_by()}",
        )
    )
    return ctes, "\nUNION ALL\n".join(f"{row} FROM grouped" for row in rows)


def aging_query(ctx: QueryContext, item: KpiRequest) -> str:
    """A/R by aging bucket at each period's end: period_start, <dims>, bucket, amount, accounts (open ones)."""
    credits = item.options["credit_balances"]
    age = f"DATE_DIFF('day', {age_date(item)}, period_end)"
    bucket = (
        "CASE "
        + " ".join(f"WHEN {age} <= {hi} THEN '{name}'" for name, _, hi in BUCKETS if hi is not None)
        + f" ELSE '{BUCKETS[-1][0]}' END"
    )
    kept = "balance > 0" if credits == "exclude" else "TRUE"
    plain_dims = "".join(f"{d}, " for d in ctx.dims)
    final = f"""
        SELECT period_start, {plain_dims}{bucket} AS bucket, CAST(SUM(balance) AS DOUBLE) AS amount,
               COUNT(*) AS accounts
        FROM open_accounts
        WHERE {kept}
        GROUP BY period_start, {plain_dims}{bucket}
    """
    return with_relation(ctx.relations["ledger"], _account_ctes(ctx), final)


def explain(item: KpiRequest, ctx: QueryContext) -> str:
    """The records behind one period's value (ctx has a single period).

    One row per account with a non-zero balance at the period's end (record_id = the claim, value
    = its balance, event_time = the date it ages from) and, for days in A/R, one row per ledger
    entry of the look-back window (side = denominator, value = its window amount).
    """
    period_end = ctx.periods.spine()[0][1].isoformat()
    credits = preset_options(item)[2] if item.id == "days_in_ar" else item.options["credit_balances"]
    aged = f"DATE_DIFF('day', age_date, DATE '{period_end}') > {AGED_DAYS}"
    account_side = (
        "'numerator'" if item.id == "days_in_ar" else f"CASE WHEN {aged} THEN 'numerator' ELSE 'denominator' END"
    )
    excluded = "balance <= 0" if credits == "exclude" else "FALSE"
    dims = "".join(f", {d}" for d in ctx.dims)
    ctes = [
        (
            "accounts",
            f"""
            SELECT account AS record_id, MIN(patient_key) AS patient_key,
                   {age_date(item, "MIN(posted_date)")} AS age_date,
                   SUM(ar_amount) AS balance{dims}
            FROM base
            WHERE posted_date <= DATE '{period_end}'{ctx.filter_sql()}
            GROUP BY account, service_date, first_billed_date{dims}
            HAVING SUM(ar_amount) <> 0
            """,
        )
    ]
    final = f"""
        SELECT record_id, patient_key, CAST(age_date AS TIMESTAMP) AS event_time,
               CASE WHEN {excluded} THEN 'excluded' ELSE {account_side} END AS side,
               CASE WHEN {excluded} THEN 'credit balance (credit balances are excluded)' END AS reason,
               CAST(balance AS DOUBLE) AS value{dims}
        FROM accounts
    """
    if item.id == "days_in_ar":
        lookback = preset_options(item)[1]
        final += f"""
        UNION ALL
        SELECT record_id, patient_key, CAST(posted_date AS TIMESTAMP), 'denominator', NULL,
               CAST({window_amount(item)} AS DOUBLE){dims}
        FROM base
        WHERE posted_date > DATE '{period_end}' - INTERVAL {lookback} DAY AND posted_date <= DATE '{period_end}'
          AND ({window_amount(item)}) <> 0{ctx.filter_sql()}
        """
    return with_relation(ctx.relations["ledger"], ctes, final + "\nORDER BY side DESC, event_time, record_id")
