WITH base AS (
  SELECT
    a.source || ':' || a.appointment_id AS record_id,
    a.patient_key,
    a.scheduled_start,
    a.scheduled_minutes,
    a.booked_at,
    a.cancelled_at,
    a.status,
    a.cancel_initiator,
    a.is_telehealth,
    NOT r.rebooked_from_id IS NULL AS rescheduled,
    a.source || ':' || a.rebooked_from_id AS rebooked_record_id,
    a.location_id AS location,
    a.provider_id AS provider,
    a.payer_id AS payer,
    p.payer_class,
    a.visit_type,
    a.is_new_patient AS new_patient
  FROM appointments AS a
  LEFT JOIN payers AS p
    ON p.payer_id = a.payer_id
  LEFT JOIN (
    SELECT DISTINCT
      source,
      rebooked_from_id
    FROM appointments
    WHERE
      NOT rebooked_from_id IS NULL
  ) AS r
    ON r.source = a.source AND r.rebooked_from_id = a.appointment_id
), in_range_0 AS (
  SELECT
    *,
    CAST(DATE_TRUNC('MONTH', scheduled_start AT TIME ZONE 'America/New_York') AS DATE) AS period_start
  FROM base
  WHERE
    scheduled_start >= CAST('2026-01-01 05:00:00+00:00' AS TIMESTAMPTZ)
    AND scheduled_start < CAST('2026-03-01 05:00:00+00:00' AS TIMESTAMPTZ)
), grouped_0 AS (
  SELECT
    period_start,
    location,
    COUNT(*) FILTER(WHERE
      status = 'noshow') AS k0_num,
    COUNT(*) FILTER(WHERE
      status IN ('fulfilled', 'arrived', 'noshow')) AS k0_den,
    COUNT(*) FILTER(WHERE
      status IN ('fulfilled', 'arrived', 'noshow')) AS k0_n
  FROM in_range_0
  GROUP BY
    period_start,
    location
)
SELECT
  'no_show_rate' AS kpi_id,
  period_start,
  location,
  CAST(k0_num AS DOUBLE PRECISION) AS numerator,
  CAST(k0_den AS DOUBLE PRECISION) AS denominator,
  CAST(CASE
    WHEN CAST(k0_den AS DOUBLE PRECISION) > 0
    THEN CAST(k0_num AS DOUBLE PRECISION) / CAST(k0_den AS DOUBLE PRECISION)
  END AS DOUBLE PRECISION) AS value,
  CAST(k0_n AS BIGINT) AS n,
  CAST(0 AS BIGINT) AS unknown
FROM grouped_0
