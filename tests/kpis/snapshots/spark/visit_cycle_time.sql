WITH base AS (
  SELECT
    e.source || ':' || e.encounter_id AS record_id,
    e.patient_key,
    e.status,
    e.is_telehealth,
    e.checked_in_at,
    e.roomed_at,
    e.provider_start_at,
    e.provider_end_at,
    e.checked_out_at,
    e.chart_closed_at,
    a.scheduled_start,
    e.location_id AS location,
    e.provider_id AS provider,
    a.payer_id AS payer,
    p.payer_class,
    a.visit_type,
    a.is_new_patient AS new_patient
  FROM encounters AS e
  LEFT JOIN appointments AS a
    ON a.source = e.source AND a.appointment_id = e.appointment_id
  LEFT JOIN payers AS p
    ON p.payer_id = a.payer_id
), in_range_0 AS (
  SELECT
    *,
    CAST(DATE_TRUNC('MONTH', FROM_UTC_TIMESTAMP(checked_in_at, 'America/New_York')) AS DATE) AS period_start
  FROM base
  WHERE
    checked_in_at >= CAST('2026-01-01 05:00:00+00:00' AS TIMESTAMP)
    AND checked_in_at < CAST('2026-03-01 05:00:00+00:00' AS TIMESTAMP)
), grouped_0 AS (
  SELECT
    period_start,
    location,
    PERCENTILE(
      CAST((
        UNIX_MICROS(CAST(checked_out_at AS TIMESTAMP_LTZ)) / CAST(1000000 AS DOUBLE) - UNIX_MICROS(CAST(checked_in_at AS TIMESTAMP_LTZ)) / CAST(1000000 AS DOUBLE)
      ) AS DOUBLE) / 60,
      0.5
    ) FILTER(WHERE
      NOT checked_in_at IS NULL
      AND NOT checked_out_at IS NULL
      AND NOT is_telehealth
      AND status = 'finished') AS k0_val,
    COUNT(
      CAST((
        UNIX_MICROS(CAST(checked_out_at AS TIMESTAMP_LTZ)) / CAST(1000000 AS DOUBLE) - UNIX_MICROS(CAST(checked_in_at AS TIMESTAMP_LTZ)) / CAST(1000000 AS DOUBLE)
      ) AS DOUBLE) / 60
    ) FILTER(WHERE
      NOT checked_in_at IS NULL
      AND NOT checked_out_at IS NULL
      AND NOT is_telehealth
      AND status = 'finished') AS k0_n
  FROM in_range_0
  GROUP BY
    period_start,
    location
)
SELECT
  'visit_cycle_time' AS kpi_id,
  period_start,
  location,
  CAST(NULL AS DOUBLE) AS numerator,
  CAST(NULL AS DOUBLE) AS denominator,
  CAST(k0_val AS DOUBLE) AS value,
  CAST(k0_n AS BIGINT) AS n,
  CAST(0 AS BIGINT) AS unknown
FROM grouped_0
