WITH ledger_claims AS (
  SELECT
    claim_id,
    MIN(submitted_at) AS first_billed_at
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
    l.payer_id AS payer,
    p.payer_class
  FROM ledger AS l
  LEFT JOIN ledger_claims AS c
    ON c.claim_id = l.claim_id
  LEFT JOIN payers AS p
    ON p.payer_id = l.payer_id
), spine AS (
  SELECT
    *
  FROM VALUES
    (CAST('2026-01-01' AS DATE), CAST('2026-01-31' AS DATE)),
    (CAST('2026-02-01' AS DATE), CAST('2026-02-28' AS DATE)) AS spine(period_start, period_end)
), scoped AS (
  SELECT
    *
  FROM base
  WHERE
    posted_date <= CAST('2026-02-28' AS DATE)
), accounts AS (
  SELECT
    s.period_start,
    s.period_end,
    l.account,
    l.service_date,
    l.first_billed_date,
    l.location,
    SUM(l.ar_amount) AS balance,
    MIN(l.posted_date) AS first_posted,
    COUNT(*) AS entries
  FROM spine AS s
  JOIN scoped AS l
    ON l.posted_date <= s.period_end
  GROUP BY
    s.period_start,
    s.period_end,
    l.account,
    l.service_date,
    l.first_billed_date,
    l.location
), facts AS (
  SELECT
    period_start,
    period_end,
    location,
    balance,
    first_posted,
    service_date,
    first_billed_date,
    entries,
    CAST(0 AS DECIMAL(18, 2)) AS window_amount,
    0 AS window_charges
  FROM accounts
  UNION ALL
  SELECT
    s.period_start,
    s.period_end,
    l.location,
    NULL,
    NULL,
    NULL,
    NULL,
    0,
    CASE
      WHEN entry_type = 'charge'
      THEN amount
      WHEN entry_type = 'adjustment' AND group_code = 'CO' AND reason_code IN ('45')
      THEN -amount
      ELSE 0
    END,
    CASE WHEN l.entry_type = 'charge' THEN 1 ELSE 0 END
  FROM spine AS s
  JOIN scoped AS l
    ON l.posted_date > s.period_end - INTERVAL '365' DAY
    AND l.posted_date <= s.period_end
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
  CAST(CAST(k0_num AS DOUBLE) / NULLIF(CAST(k0_den AS DOUBLE), 0) AS DOUBLE) AS value,
  CAST(k0_n AS BIGINT) AS n
FROM grouped
