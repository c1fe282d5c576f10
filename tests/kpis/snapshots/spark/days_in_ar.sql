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
      FROM_UTC_TIMESTAMP(c.first_billed_at, 'America/New_York')
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
  FROM VALUES
    (0, CAST('2026-01-01' AS DATE), CAST('2026-01-31' AS DATE)),
    (1, CAST('2026-02-01' AS DATE), CAST('2026-02-28' AS DATE)) AS spine(idx, period_start, period_end)
), located AS (
  SELECT
    l.*,
    s.idx AS posted_idx
  FROM base AS l
  JOIN spine AS s
    ON s.period_start = GREATEST(CAST(DATE_TRUNC('MONTH', l.posted_date) AS DATE), CAST('2026-01-01' AS DATE))
  WHERE
    TRUE
), entry_totals AS (
  SELECT
    posted_idx,
    CAST(NULL AS INT) AS aged_idx,
    location,
    SUM(ar_amount) AS amount,
    COUNT(*) AS entries
  FROM located
  GROUP BY
    posted_idx,
    CAST(NULL AS INT),
    location
), balances AS (
  SELECT
    s.period_start,
    s.period_end,
    e.location,
    SUM(e.amount) AS balance,
    COALESCE(e.aged_idx <= s.idx, FALSE) AS aged,
    SUM(e.entries) AS entries
  FROM entry_totals AS e
  JOIN spine AS s
    ON e.posted_idx <= s.idx
  GROUP BY
    s.period_start,
    s.period_end,
    e.location,
    COALESCE(e.aged_idx <= s.idx, FALSE)
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
  FROM located
  WHERE
    posted_date > CAST('2026-01-31' AS DATE) - INTERVAL '365' DAY
  GROUP BY
    posted_date,
    location
), facts AS (
  SELECT
    period_start,
    period_end,
    location,
    balance,
    aged,
    entries,
    CAST(0 AS DECIMAL(18, 2)) AS window_amount,
    0 AS window_charges
  FROM balances
  UNION ALL
  SELECT
    s.period_start,
    s.period_end,
    c.location,
    NULL,
    FALSE,
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
    CAST(COALESCE(SUM(window_amount), 0) AS DOUBLE) / 365 AS k0_den,
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
    WHEN k0_num >= 0
    THEN CASE
      WHEN CAST(k0_den AS DOUBLE) > 0
      THEN CAST(k0_num AS DOUBLE) / CAST(k0_den AS DOUBLE)
    END
  END AS DOUBLE) AS value,
  CAST(k0_n AS BIGINT) AS n,
  CAST(0 AS BIGINT) AS unknown
FROM grouped
