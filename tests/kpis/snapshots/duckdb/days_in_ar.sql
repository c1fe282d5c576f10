WITH ledger_claims AS (
  /* a patient payment carries no payer: its A/R belongs to the claim's payer */
  /* (claims keep their payer across resubmissions; MIN only makes the choice total) */
  SELECT
    claim_id,
    MIN(submitted_at) AS first_billed_at,
    MIN(payer_id) AS claim_payer
  FROM claims
  GROUP BY
    claim_id
), base AS (
  SELECT
    l.entry_id AS record_id,
    l.patient_key,
    l.claim_id,
    COALESCE(l.claim_id, 'entry:' || l.entry_id) AS account,
    l.posted_date,
    l.service_date,
    CAST((
      c.first_billed_at AT TIME ZONE 'America/New_York'
    ) AS DATE) AS first_billed_date,
    l.entry_type,
    l.party,
    l.amount,
    l.group_code,
    l.reason_code,
    CASE WHEN l.entry_type IN ('charge', 'refund') THEN l.amount ELSE -l.amount END AS ar_amount,
    NOT l.claim_id IS NULL
    AND SUM(CASE WHEN l.entry_type IN ('charge', 'refund') THEN l.amount ELSE -l.amount END) OVER (PARTITION BY l.claim_id) = 0 AS claim_settled,
    l.location_id AS location,
    l.provider_id AS provider,
    COALESCE(l.payer_id, c.claim_payer) AS payer,
    p.payer_class
  FROM ledger AS l
  LEFT JOIN ledger_claims AS c
    ON c.claim_id = l.claim_id
  LEFT JOIN payers AS p
    ON p.payer_id = COALESCE(l.payer_id, c.claim_payer)
), spine AS (
  SELECT
    *
  FROM (VALUES
    (0, CAST('2026-01-01' AS DATE), CAST('2026-01-31' AS DATE)),
    (1, CAST('2026-02-01' AS DATE), CAST('2026-02-28' AS DATE))) AS spine(idx, period_start, period_end)
), located AS (
  SELECT
    l.*,
    s.idx AS posted_idx
  FROM base AS l
  JOIN spine AS s
    ON l.posted_date <= s.period_end
    AND (
      s.idx = 0 OR l.posted_date >= s.period_start
    )
  WHERE
    TRUE
), deltas AS (
  SELECT
    account,
    service_date,
    first_billed_date,
    location,
    posted_idx,
    SUM(ar_amount) AS delta,
    MIN(posted_date) AS first_posted
  FROM located
  GROUP BY
    account,
    service_date,
    first_billed_date,
    location,
    posted_idx
), states AS (
  SELECT
    account,
    service_date,
    first_billed_date,
    location,
    posted_idx,
    SUM(delta) OVER (
      PARTITION BY account, service_date, first_billed_date, location
      ORDER BY posted_idx
    ) AS balance,
    LEAD(posted_idx, 1, 2) OVER (
      PARTITION BY account, service_date, first_billed_date, location
      ORDER BY posted_idx
    ) AS next_idx,
    MIN(first_posted) OVER (PARTITION BY account, service_date, first_billed_date, location) AS first_posted
  FROM deltas
), open_accounts AS (
  SELECT
    s.period_start,
    s.period_end,
    a.account,
    a.service_date,
    a.first_billed_date,
    a.first_posted,
    a.balance,
    a.location
  FROM states AS a
  JOIN spine AS s
    ON s.idx >= a.posted_idx AND s.idx < a.next_idx
  WHERE
    a.balance <> 0
), entry_counts AS (
  SELECT
    s.period_start,
    s.period_end,
    c.location,
    SUM(c.entries) AS entries
  FROM (
    SELECT
      posted_idx,
      location,
      COUNT(*) AS entries
    FROM located
    GROUP BY
      posted_idx,
      location
  ) AS c
  JOIN spine AS s
    ON c.posted_idx <= s.idx
  GROUP BY
    s.period_start,
    s.period_end,
    c.location
), daily AS (
  SELECT
    posted_date,
    location,
    SUM(
      CASE
        WHEN entry_type = 'charge'
        THEN amount
        WHEN entry_type = 'adjustment' AND group_code = 'CO' AND reason_code IN ('45')
        THEN -amount
        ELSE 0
      END
    ) AS window_amount,
    COUNT(*) FILTER(WHERE
      entry_type = 'charge') AS window_charges
  FROM base
  WHERE
    posted_date > CAST('2026-01-31' AS DATE) - INTERVAL '365' DAY
    AND posted_date <= CAST('2026-02-28' AS DATE)
  GROUP BY
    posted_date,
    location
), facts AS (
  SELECT
    period_start,
    period_end,
    location,
    balance,
    service_date,
    first_billed_date,
    first_posted,
    0 AS entries,
    CAST(0 AS DECIMAL(18, 2)) AS window_amount,
    0 AS window_charges
  FROM open_accounts
  UNION ALL
  SELECT
    period_start,
    period_end,
    location,
    NULL,
    NULL,
    NULL,
    NULL,
    entries,
    0,
    0
  FROM entry_counts
  UNION ALL
  SELECT
    s.period_start,
    s.period_end,
    c.location,
    NULL,
    NULL,
    NULL,
    NULL,
    0,
    c.window_amount,
    c.window_charges
  FROM spine AS s
  JOIN daily AS c
    ON c.posted_date > s.period_end - INTERVAL '365' DAY
    AND c.posted_date <= s.period_end
), grouped AS (
  SELECT
    period_start,
    location,
    COALESCE(SUM(balance) FILTER(WHERE
      TRUE AND TRUE), 0) AS k0_num,
    COALESCE(SUM(window_amount), 0) / 365 AS k0_den,
    SUM(window_charges) AS k0_n
  FROM facts
  GROUP BY
    period_start,
    location
)
SELECT
  'days_in_ar' AS kpi_id,
  period_start,
  location,
  CAST(k0_num AS DOUBLE) AS numerator,
  CAST(k0_den AS DOUBLE) AS denominator,
  CAST(CASE
    WHEN k0_den > 0
    THEN CAST(k0_num AS DOUBLE) / NULLIF(CAST(k0_den AS DOUBLE), 0)
  END AS DOUBLE) AS value,
  CAST(k0_n AS BIGINT) AS n
FROM grouped
