"""days_in_ar and ar_over_90_pct: balances as of each period's last day, in one statement.

A/R is a stock, not a flow: its value on a day sums every ledger entry posted up to that day
(charges and refunds add, payments, adjustments and write-offs subtract). So each period's
last day is joined to the entries posted up to it and summed per account (a claim, or a lone
entry without one), which is what "excluding credit balances" and aging need: an account's
balance is aged by its date of service (or first bill) and counted only when positive if
credit balances are excluded. Days in A/R divides that balance by the average daily charges
of the look-back window ending the same day.

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


def window_amount(item: KpiRequest) -> str:
    """SQL over a ledger row: its contribution to the look-back window's charges for the preset."""
    preset = item.options["preset"]
    if preset == "mgma":
        contractual = item.condition("{contractual}")
        return f"CASE WHEN entry_type = 'charge' THEN amount WHEN {contractual} THEN -amount ELSE 0 END"
    if preset == "hfma":
        return "CASE WHEN entry_type = 'charge' THEN amount WHEN entry_type = 'adjustment' THEN -amount ELSE 0 END"
    return "CASE WHEN entry_type = 'charge' THEN amount ELSE 0 END"


def age_date(item: KpiRequest) -> str:
    """SQL over an account row: the date its balance ages from (date of service unless first bill)."""
    if item.options.get("age_from") == "first_bill":
        return "COALESCE(first_billed_date, service_date, first_posted)"
    return "COALESCE(service_date, first_posted)"


def _balance(item: KpiRequest, credits: str, condition: str = "TRUE") -> str:
    kept = "balance > 0" if credits == "exclude" else "TRUE"
    return f"COALESCE(SUM(balance) FILTER (WHERE {kept} AND {condition}), 0)"


def query(items: Sequence[KpiRequest], ctx: QueryContext) -> str:
    dims = "".join(f", l.{d}" for d in ctx.dims)
    last_end = ctx.periods.spine()[-1][1].isoformat()
    days_in_ar = next((i for i in items if i.id == "days_in_ar"), None)
    ctes = [
        ("spine", ctx.spine_sql()),
        ("scoped", f"SELECT * FROM base WHERE posted_date <= DATE '{last_end}'{ctx.filter_sql()}"),
        (
            "accounts",
            f"""
            SELECT s.period_start, s.period_end, l.account, l.service_date, l.first_billed_date{dims},
                   SUM(l.ar_amount) AS balance, MIN(l.posted_date) AS first_posted, COUNT(*) AS entries
            FROM spine AS s JOIN scoped AS l ON l.posted_date <= s.period_end
            GROUP BY s.period_start, s.period_end, l.account, l.service_date, l.first_billed_date{dims}
            """,
        ),
    ]
    window_select = "CAST(NULL AS DECIMAL(18, 2)) AS window_amount"
    facts = f"""
        SELECT period_start, period_end{dims.replace("l.", "")}, balance, first_posted, service_date,
               first_billed_date, entries, CAST(0 AS DECIMAL(18, 2)) AS window_amount, 0 AS window_charges
        FROM accounts
    """
    if days_in_ar is not None:
        _, lookback, _ = preset_options(days_in_ar)
        window_select = window_amount(days_in_ar)
        facts += f"""
        UNION ALL
        SELECT s.period_start, s.period_end{dims}, NULL, NULL, NULL, NULL, 0, {window_select},
               CASE WHEN l.entry_type = 'charge' THEN 1 ELSE 0 END
        FROM spine AS s JOIN scoped AS l
          ON l.posted_date > s.period_end - INTERVAL {lookback} DAY AND l.posted_date <= s.period_end
        """
    ctes.append(("facts", facts))

    aggregates, rows = [], []
    for i, item in enumerate(items):
        k = f"k{i}"
        if item.id == "days_in_ar":
            _, lookback, credits = preset_options(item)
            aggregates += [
                f"{_balance(item, credits)} AS {k}_num",
                f"COALESCE(SUM(window_amount), 0) / {lookback} AS {k}_den",
                f"SUM(window_charges) AS {k}_n",
            ]
        elif item.id == "ar_over_90_pct":
            credits = item.options["credit_balances"]
            aged = f"DATE_DIFF('day', {age_date(item)}, period_end) > {AGED_DAYS}"
            aggregates += [
                f"{_balance(item, credits, aged)} AS {k}_num",
                f"{_balance(item, credits)} AS {k}_den",
                f"SUM(entries) AS {k}_n",
            ]
        else:
            raise ValueError(f"ar_balance does not compute {item.id}")
        rows.append(output_row(item.id, ctx, f"{k}_num", f"{k}_den", ratio_value(f"{k}_num", f"{k}_den"), f"{k}_n"))
    ctes.append(
        (
            "grouped",
            f"SELECT period_start, {ctx.dim_select()}{', '.join(aggregates)} FROM facts GROUP BY {ctx.group_by()}",
        )
    )
    final = "\nUNION ALL\n".join(f"{row} FROM grouped" for row in rows)
    return with_relation(ctx.relations["ledger"], ctes, final)


def aging_query(ctx: QueryContext, item: KpiRequest) -> str:
    """A/R by aging bucket at each period's end: period_start, <dims>, bucket, amount, accounts (open ones)."""
    dims = "".join(f", l.{d}" for d in ctx.dims)
    last_end = ctx.periods.spine()[-1][1].isoformat()
    credits = item.options["credit_balances"]
    age = f"DATE_DIFF('day', {age_date(item)}, period_end)"
    bucket = (
        "CASE "
        + " ".join(f"WHEN {age} <= {hi} THEN '{name}'" for name, _, hi in BUCKETS if hi is not None)
        + f" ELSE '{BUCKETS[-1][0]}' END"
    )
    kept = "balance > 0" if credits == "exclude" else "TRUE"
    plain_dims = "".join(f"{d}, " for d in ctx.dims)
    ctes = [
        ("spine", ctx.spine_sql()),
        ("scoped", f"SELECT * FROM base WHERE posted_date <= DATE '{last_end}'{ctx.filter_sql()}"),
        (
            "accounts",
            f"""
            SELECT s.period_start, s.period_end, l.account, l.service_date, l.first_billed_date{dims},
                   SUM(l.ar_amount) AS balance, MIN(l.posted_date) AS first_posted
            FROM spine AS s JOIN scoped AS l ON l.posted_date <= s.period_end
            GROUP BY s.period_start, s.period_end, l.account, l.service_date, l.first_billed_date{dims}
            """,
        ),
        (
            "bucketed",
            f"""
            SELECT period_start, {plain_dims}{bucket} AS bucket,
                   SUM(balance) AS amount, COUNT(*) FILTER (WHERE balance <> 0) AS accounts
            FROM accounts WHERE {kept}
            GROUP BY period_start, {plain_dims}{bucket}
            """,
        ),
    ]
    final = f"""
        SELECT period_start, {plain_dims}bucket, CAST(amount AS DOUBLE) AS amount, CAST(accounts AS BIGINT) AS accounts
        FROM bucketed
    """
    return with_relation(ctx.relations["ledger"], ctes, final)


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
                   {age_date(item).replace("first_posted", "MIN(posted_date)")} AS age_date,
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
