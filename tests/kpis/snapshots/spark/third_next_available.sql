WITH open_slots AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY provider, location
      ORDER BY start_at NULLS LAST, source NULLS LAST, slot_id NULLS LAST
    ) AS r
  FROM (
    SELECT
      source,
      slot_id,
      provider_id AS provider,
      location_id AS location,
      start_at,
      start_at + minutes * INTERVAL '1' MINUTE AS end_at
    FROM slots
    WHERE
      status <> 'blocked' AND NOT provider_id IS NULL
  ) AS s
  WHERE
    TRUE
), slot_days AS (
  SELECT
    source,
    slot_id,
    provider,
    start_at,
    end_at,
    CAST(start_at AS DATE) AS day
  FROM open_slots
  UNION
  SELECT
    source,
    slot_id,
    provider,
    start_at,
    end_at,
    CAST(end_at AS DATE) AS day
  FROM open_slots
), bookings AS (
  SELECT
    provider_id,
    scheduled_start AS start_at,
    scheduled_start + COALESCE(scheduled_minutes, 1) * INTERVAL '1' MINUTE AS end_at,
    booked_at,
    cancelled_at
  FROM appointments
  WHERE
    NOT booked_at IS NULL
), booking_days AS (
  SELECT
    provider_id,
    start_at,
    end_at,
    booked_at,
    cancelled_at,
    CAST(start_at AS DATE) AS day
  FROM bookings
  UNION
  SELECT
    provider_id,
    start_at,
    end_at,
    booked_at,
    cancelled_at,
    CAST(end_at AS DATE) AS day
  FROM bookings
), holds AS (
  SELECT DISTINCT
    s.source,
    s.slot_id,
    s.provider,
    s.start_at,
    b.booked_at,
    b.cancelled_at
  FROM slot_days AS s
  JOIN booking_days AS b
    ON b.provider_id = s.provider AND b.day = s.day
  WHERE
    b.start_at < s.end_at AND b.end_at > s.start_at
), snapshots AS (
  SELECT
    *
  FROM VALUES
    (
      CAST('2026-01-01' AS DATE),
      CAST('2026-01-05' AS DATE),
      CAST('2026-01-05 13:00:00+00:00' AS TIMESTAMP)
    ),
    (
      CAST('2026-01-01' AS DATE),
      CAST('2026-01-12' AS DATE),
      CAST('2026-01-12 13:00:00+00:00' AS TIMESTAMP)
    ),
    (
      CAST('2026-01-01' AS DATE),
      CAST('2026-01-19' AS DATE),
      CAST('2026-01-19 13:00:00+00:00' AS TIMESTAMP)
    ),
    (
      CAST('2026-01-01' AS DATE),
      CAST('2026-01-26' AS DATE),
      CAST('2026-01-26 13:00:00+00:00' AS TIMESTAMP)
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-02' AS DATE),
      CAST('2026-02-02 13:00:00+00:00' AS TIMESTAMP)
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-09' AS DATE),
      CAST('2026-02-09 13:00:00+00:00' AS TIMESTAMP)
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-16' AS DATE),
      CAST('2026-02-16 13:00:00+00:00' AS TIMESTAMP)
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-23' AS DATE),
      CAST('2026-02-23 13:00:00+00:00' AS TIMESTAMP)
    ) AS v(period_start, snapshot_date, snapshot_at)
  WHERE
    snapshot_at >= (
      SELECT
        MIN(start_at)
      FROM slots
    )
    AND snapshot_at <= (
      SELECT
        MAX(booked_at)
      FROM appointments
    )
), events AS (
  SELECT
    o.provider,
    o.location,
    o.start_at AS at,
    0 AS kind,
    1 AS slot_step,
    0 AS hold_step
  FROM open_slots AS o
  UNION ALL
  SELECT
    o.provider,
    o.location,
    h.booked_at,
    0,
    0,
    1
  FROM holds AS h
  JOIN open_slots AS o
    ON o.source = h.source AND o.slot_id = h.slot_id
  WHERE
    h.booked_at < COALESCE(LEAST(h.cancelled_at, h.start_at), h.start_at)
  UNION ALL
  SELECT
    o.provider,
    o.location,
    COALESCE(LEAST(h.cancelled_at, h.start_at), h.start_at),
    0,
    0,
    -1
  FROM holds AS h
  JOIN open_slots AS o
    ON o.source = h.source AND o.slot_id = h.slot_id
  WHERE
    h.booked_at < COALESCE(LEAST(h.cancelled_at, h.start_at), h.start_at)
  UNION ALL
  SELECT
    p.provider,
    p.location,
    n.snapshot_at,
    1,
    0,
    0
  FROM (
    SELECT DISTINCT
      provider,
      location
    FROM open_slots
  ) AS p
  CROSS JOIN snapshots AS n
), bounds AS (
  SELECT
    provider,
    location,
    at AS snapshot_at,
    slots_before + 1 AS r_from,
    slots_before + 3 + held AS r_to
  FROM (
    SELECT
      *,
      SUM(slot_step) OVER (
        PARTITION BY provider, location
        ORDER BY at NULLS LAST, kind NULLS LAST
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS slots_before,
      SUM(hold_step) OVER (
        PARTITION BY provider, location
        ORDER BY at NULLS LAST, kind NULLS LAST
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS held
    FROM events
  ) AS counted
  WHERE
    kind = 1
), candidates AS (
  SELECT
    n.period_start,
    n.snapshot_date,
    n.snapshot_at,
    o.provider,
    o.location,
    o.source,
    o.slot_id,
    o.start_at,
    ROW_NUMBER() OVER (PARTITION BY n.snapshot_at, o.provider, o.location ORDER BY o.r NULLS LAST) AS k
  FROM bounds AS b
  JOIN snapshots AS n
    ON n.snapshot_at = b.snapshot_at
  JOIN open_slots AS o
    ON o.provider = b.provider
    AND o.location IS NOT DISTINCT FROM b.location
    AND o.r BETWEEN b.r_from AND b.r_to
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM holds AS h
      WHERE
        h.source = o.source
        AND h.slot_id = o.slot_id
        AND h.booked_at <= n.snapshot_at
        AND (
          h.cancelled_at IS NULL OR h.cancelled_at > n.snapshot_at
        )
    )
), pairs AS (
  SELECT
    period_start,
    snapshot_date,
    snapshot_at,
    provider,
    location,
    source || ':' || slot_id AS record_id,
    start_at,
    DATEDIFF(
      DAY,
      snapshot_date,
      CAST((
        FROM_UTC_TIMESTAMP(start_at, 'America/New_York')
      ) AS DATE)
    ) AS days
  FROM candidates
  WHERE
    k = 3
), grouped AS (
  SELECT
    period_start,
    location,
    SUM(days) AS total_days,
    COUNT(*) AS pairs
  FROM pairs
  GROUP BY
    period_start,
    location
)
SELECT
  'third_next_available' AS kpi_id,
  period_start,
  location,
  CAST(total_days AS DOUBLE) AS numerator,
  CAST(pairs AS DOUBLE) AS denominator,
  CAST(CAST(total_days AS DOUBLE) / NULLIF(CAST(pairs AS DOUBLE), 0) AS DOUBLE) AS value,
  CAST(pairs AS BIGINT) AS n
FROM grouped
