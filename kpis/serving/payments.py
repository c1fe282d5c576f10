"""The average payment in the results store: each month's 12-month window of remittances, per segment.

`kpis.costs.average_payment` (the visit value of the friction costs, on the Overview) is the
payer payments over the paid claims of the 12 months of 835 remittances ending with a month,
each remittance joined to its claim's (location, provider) submissions. At 10 M appointments
that join reads a year of remittances against every claim: 1.7 s per call, on every first
render after a publication and on every provider or payer filter change. The store keeps its
answer instead, in `serving.payments`: for every window month up to the data's last month,
`paid` (the sum of the window's paid amounts) and `claims` (its distinct paid claims) for the
practice and for each single location, provider and payer: exactly the rows the filtered raw
statement reads (`costs._PAID_CLAIMS`, the same join, the same NULL logic: a segment id that
is NULL is in no filter's segment). Only windows with a paid claim are kept (any other answer
is "no payment").

Why not one raw statement per window month: a load touching one month moves twelve windows, and
a full build at 10 M ran ~40 of them. Instead the windows are computed together from the joined
rows: the sums add up month by month (DECIMAL: exact), and a claim counts in a window when one
of its paid months falls in it, i.e. each (segment, claim, paid month) covers the windows of that
month and the 11 after; a claim's covered windows are a union of such spans, counted with +1 at
each span's first window not already covered and -1 after its last. Windows first..last need only
the remittances paid from 11 months before `first`. The tests compare every window and segment
with the raw statement.

Refresh (`refresh`, a step of `kpis.serving.refresh`): in full when the table is missing, built
by other code (`VERSION`) or the refresh is full; else the windows of every paid month a load
touched: the months of the changed remittances now, the months they were in before (a month
keeping fewer unchanged remittances than it had: `serving.payment_months` counts them; the
loader never deletes a row, so the difference are rows that moved or changed), the months of
the remittances of changed claims (a location or provider corrected), and the windows after the
last one kept.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from kpis.periods import add_months, month_runs, months_between, next_period, period_floor
from kpis.serving.changes import CHANGED
from kpis.serving.facts import SCHEMA

TABLE = f"{SCHEMA}.payments"
MONTHS_TABLE = f"{SCHEMA}.payment_months"
WINDOW_MONTHS = 12
# segment -> its column in the joined rows (costs._PAYMENT_COLUMNS: the claim's location and
# provider, the remittance's payer)
SEGMENTS = {"location": "location_id", "provider": "provider_id", "payer": "payer_id"}
_MONTH_OF = "CAST(DATE_TRUNC('month', {}.paid_date) AS DATE)"  # of a remittance, by its alias
MONTH = _MONTH_OF.format("r")
# A claim's location and provider: its first submission's, as the claim outcomes relation takes
# them. One row per claim, so a claim resubmitted at another location or by another provider (a
# replacement 837) counts its payments once, not once per (location, provider) it was billed under.
_FIRST = "(submitted_at, submission_id)"
CLAIM_SEGMENTS = (
    f"(SELECT claim_id, arg_min_null(location_id, {_FIRST}) AS location_id, "
    f"arg_min_null(provider_id, {_FIRST}) AS provider_id FROM claims GROUP BY claim_id)"
)


def _joined(first: date, last: date) -> str:
    """The remittances the windows ending first..last read (paid from 11 months before `first`),
    each with its month and its claim's location and provider: the rows of the raw statement."""
    read_from = add_months(first, 1 - WINDOW_MONTHS)
    return f"""
            SELECT r.claim_id, r.status, r.paid_amount, {MONTH} AS month,
                   c.location_id, c.provider_id, r.payer_id
            FROM remittances r
            LEFT JOIN {CLAIM_SEGMENTS} c USING (claim_id)
            WHERE r.paid_date >= DATE '{read_from}' AND r.paid_date < DATE '{next_period(last, "month")}'
        """


def windows_sql(first: date, last: date) -> str:
    """SELECT period_start, dimension, id, paid, claims: the windows ending first..last (month starts).

    `dimension` is NULL for the practice (with `id` NULL), else location, provider or payer.
    """
    read_to = next_period(last, "month")
    whens = " ".join(f"WHEN '{name}' THEN {column}" for name, column in SEGMENTS.items())
    kinds = ", ".join(f"('{name}')" for name in SEGMENTS)
    span = f"INTERVAL {WINDOW_MONTHS} MONTH"
    return f"""
        WITH joined AS MATERIALIZED ({_joined(first, last)}),
        cells AS MATERIALIZED (  -- each joined row in the practice's cell and in its segments' (NULL ids in none)
            SELECT * FROM (
                SELECT d.dimension, CAST(CASE d.dimension {whens} END AS VARCHAR) AS id,
                       claim_id, status, paid_amount, month
                FROM joined CROSS JOIN (VALUES (NULL), {kinds}) AS d(dimension)
            ) AS s WHERE dimension IS NULL OR id IS NOT NULL
        ),
        sums AS (SELECT dimension, id, month, SUM(paid_amount) AS paid FROM cells GROUP BY ALL),
        paid_months AS (
            SELECT dimension, id, month,
                   LAG(month) OVER (PARTITION BY dimension, id, claim_id ORDER BY month) AS previous
            FROM (SELECT DISTINCT dimension, id, claim_id, month FROM cells WHERE status = 'paid') AS p
        ),
        deltas AS (
            SELECT dimension, id, month, SUM(delta) AS delta FROM (
                SELECT dimension, id,
                       CAST(GREATEST(month, COALESCE(previous + {span}, month)) AS DATE) AS month, 1 AS delta
                FROM paid_months
                UNION ALL
                SELECT dimension, id, CAST(month + {span} AS DATE), -1 FROM paid_months
            ) AS d GROUP BY ALL
        ),
        spine AS (
            SELECT CAST(range AS DATE) AS period_start
            FROM range(DATE '{first}', DATE '{read_to}', INTERVAL 1 MONTH)
        ),
        counted AS (
            SELECT s.period_start, d.dimension, d.id, CAST(SUM(d.delta) AS BIGINT) AS claims
            FROM spine AS s JOIN deltas AS d ON d.month <= s.period_start
            GROUP BY ALL HAVING SUM(d.delta) > 0
        ),
        windowed AS (
            SELECT s.period_start, x.dimension, x.id, SUM(x.paid) AS paid
            FROM spine AS s JOIN sums AS x ON x.month <= s.period_start AND x.month > s.period_start - {span}
            GROUP BY ALL
        )
        SELECT c.period_start, c.dimension, c.id, w.paid, c.claims
        FROM counted AS c JOIN windowed AS w
          ON w.period_start = c.period_start AND w.dimension IS NOT DISTINCT FROM c.dimension
         AND w.id IS NOT DISTINCT FROM c.id
    """


def grouped_sql(first: date, last: date) -> str:
    """The same as `windows_sql`, by the raw statement itself: each remittance joined to the windows
    it falls in and grouped by window and segment (GROUPING SETS, COUNT(DISTINCT)).

    Its cost grows with the windows (every remittance is read once per window, up to 12), where
    `windows_sql` reads each once but spreads it over the segments first: at 1 M one window took
    0.25 s CPU here and 0.67 s there, 24 windows 3.3 s and 1.2 s. `SHORT_RUN` picks between them.
    """
    read_to = next_period(last, "month")
    columns = list(SEGMENTS.values())
    grouping = f"GROUPING({', '.join(f'j.{c}' for c in columns)})"
    sets = ", ".join(["(s.period_start)", *(f"(s.period_start, j.{c})" for c in columns)])
    # GROUPING() has one bit per column, the first the highest: a segment's rows roll up the others
    bits = {name: (1 << len(columns)) - 1 - (1 << (len(columns) - 1 - i)) for i, name in enumerate(SEGMENTS)}
    dimension = " ".join(f"WHEN {bit} THEN '{name}'" for name, bit in bits.items())
    value = " ".join(f"WHEN {bit} THEN j_{column}" for (_, bit), column in zip(bits.items(), columns, strict=True))
    return f"""
        WITH spine AS (
            SELECT CAST(range AS DATE) AS period_start
            FROM range(DATE '{first}', DATE '{read_to}', INTERVAL 1 MONTH)
        ),
        joined AS ({_joined(first, last)}),
        grouped AS (
            SELECT s.period_start, {grouping} AS g, {", ".join(f"j.{c} AS j_{c}" for c in columns)},
                   SUM(j.paid_amount) AS paid,
                   COUNT(DISTINCT j.claim_id) FILTER (WHERE j.status = 'paid') AS claims
            FROM joined AS j
            JOIN spine AS s ON s.period_start >= j.month AND s.period_start < j.month + INTERVAL {WINDOW_MONTHS} MONTH
            GROUP BY GROUPING SETS ({sets})
        )
        SELECT * FROM (
            SELECT period_start, CASE g {dimension} END AS dimension,
                   CAST(CASE g {value} END AS VARCHAR) AS id, paid, claims
            FROM grouped
        ) AS x
        WHERE claims > 0 AND (dimension IS NULL OR id IS NOT NULL)
    """


SHORT_RUN = 2  # windows in a row up to which `grouped_sql` fills them (else `windows_sql`)

# what a stored table depends on: the statement that fills it (a change rebuilds the table)
_SAMPLE = date(2000, 1, 1)
VERSION = hashlib.sha256((windows_sql(_SAMPLE, _SAMPLE) + grouped_sql(_SAMPLE, _SAMPLE)).encode("utf-8")).hexdigest()[
    :16
]


def built(meta: dict[str, str]) -> bool:
    """Whether `serving.meta` says the table was built by this code (else the next refresh builds it)."""
    return meta.get("payments_version") == VERSION


def refresh(
    cur: Any, watermark: int | None, meta: dict[str, str], data_last: date | None, changed: set[str] | None
) -> dict[str, str]:
    """Bring `serving.payments` up to date; returns the `serving.meta` entries to write.

    `watermark`: the last ingest run the store covered (None: build in full); `data_last`: the
    data's last month (windows are kept up to it, or to the last paid month if later); `changed`:
    the canonical tables written since the watermark (a load without remittances or claims moves
    no window unless the data's last month moved).
    """
    first, last_paid = cur.execute("SELECT MIN(paid_date), MAX(paid_date) FROM remittances").fetchone()
    ends = [m for m in (data_last, period_floor(last_paid, "month") if last_paid else None) if m is not None]
    last = max(ends) if ends else None
    tables = {
        name
        for (name,) in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = ? AND database_name = current_database()",
            [SCHEMA],
        ).fetchall()
    }
    previous = meta.get("payments_last")
    incremental = (
        watermark is not None
        and built(meta)
        and previous is not None
        and {TABLE.split(".")[1], MONTHS_TABLE.split(".")[1]} <= tables
    )
    if incremental and changed is not None and not {"remittances", "claims"} & changed and previous == _iso(last):
        return {"payments_version": VERSION, "payments_last": previous}
    if not incremental:
        cur.execute(
            f"CREATE OR REPLACE TABLE {TABLE} (period_start DATE, dimension VARCHAR, id VARCHAR, "
            "paid DECIMAL(38, 2), claims BIGINT)"
        )
        windows = months_between(first, last) if first is not None and last else []
    else:
        windows = _touched_windows(cur, watermark, previous, last)
        if last is None or (previous and date.fromisoformat(previous) > last):
            cut = last.isoformat() if last is not None else "0001-01-01"
            cur.execute(f"DELETE FROM {TABLE} WHERE period_start > DATE '{cut}'")
    for run_first, run_last in month_runs(windows):
        cur.execute(f"DELETE FROM {TABLE} WHERE period_start BETWEEN DATE '{run_first}' AND DATE '{run_last}'")
        short = len(months_between(run_first, run_last)) <= SHORT_RUN
        fill = grouped_sql if short else windows_sql
        cur.execute(f"INSERT INTO {TABLE} {fill(run_first, run_last)} ORDER BY ALL")
    cur.execute(
        f"CREATE OR REPLACE TABLE {MONTHS_TABLE} AS SELECT {MONTH} AS month, COUNT(*) AS remittances "
        "FROM remittances AS r GROUP BY ALL ORDER BY month"
    )
    return {"payments_version": VERSION, "payments_last": _iso(last)}


def _iso(month: date | None) -> str:
    return month.isoformat() if month else ""


def _touched_windows(cur: Any, watermark: int, previous: str, last: date | None) -> list[date]:
    """The window months a load since `watermark` moved, up to `last`, and those after `previous`."""
    if last is None:
        return []
    changed = CHANGED.format(watermark=int(watermark))
    rows = cur.execute(
        f"""
        WITH now AS (
            SELECT {_MONTH_OF.format("t")} AS month, COUNT(*) FILTER (WHERE {changed}) AS changed,
                   COUNT(*) - COUNT(*) FILTER (WHERE {changed}) AS kept
            FROM remittances AS t
            GROUP BY ALL
        )
        SELECT month FROM now WHERE changed > 0
        UNION SELECT p.month FROM {MONTHS_TABLE} AS p LEFT JOIN now USING (month)
              WHERE p.remittances > COALESCE(now.kept, 0)
        UNION SELECT DISTINCT {MONTH} FROM remittances AS r
              WHERE r.claim_id IN (SELECT t.claim_id FROM claims AS t WHERE {changed})
        """
    ).fetchall()
    windows: set[date] = set()
    for (month,) in rows:
        windows.update(m for m in months_between(month, add_months(month, WINDOW_MONTHS - 1)) if m <= last)
    if previous:
        windows.update(months_between(next_period(date.fromisoformat(previous), "month"), last))
    else:
        windows.update(m for m in months_between(_first_paid(cur), last) if m <= last)
    return sorted(windows)


def _first_paid(cur: Any) -> date:
    (first,) = cur.execute("SELECT MIN(paid_date) FROM remittances").fetchone()
    return period_floor(first, "month") if first is not None else date.max


def stored(wh: Any, month: date, dimension: str | None, value: Any) -> tuple[Any, int] | None:
    """(paid, claims) of the window ending with `month` for the practice (dimension None) or one
    segment, from the store; (None, 0) when it had no paid claim; None when the store cannot answer
    (no store, one not refreshed since the last write, one built by older code, a later month)."""
    state = wh._store_state()
    if not state.fresh or not built(dict(state.meta)):
        return None
    last = state.meta.get("payments_last")
    if not last or month > date.fromisoformat(last):
        return None

    def read() -> dict[tuple[str | None, str | None], tuple[Any, int]]:
        rows = (
            wh.cursor()
            .execute(f"SELECT dimension, id, paid, claims FROM {TABLE} WHERE period_start = ?", [month])
            .fetchall()
        )
        return {(d, i): (paid, int(claims)) for d, i, paid, claims in rows}

    window = wh._memo(("stored_payments", month), read)
    return window.get((dimension, None if dimension is None else str(value)), (None, 0))
