WITH schedules AS (
  SELECT
    provider,
    location,
    ROW_NUMBER() OVER (ORDER BY provider NULLS LAST, location NULLS LAST) AS schedule
  FROM (
    SELECT DISTINCT
      provider_id AS provider,
      location_id AS location
    FROM slots
    WHERE
      status <> 'blocked' AND NOT provider_id IS NULL
  ) AS s
  WHERE
    TRUE
), open_slots AS (
  SELECT
    s.*,
    p.schedule,
    ROW_NUMBER() OVER (
      PARTITION BY p.schedule
      ORDER BY s.start_at NULLS LAST, s.source NULLS LAST, s.slot_id NULLS LAST
    ) AS r
  FROM (
    SELECT
      *,
      CAST(start_at AS DATE) AS start_day,
      CAST(end_at AS DATE) AS end_day
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
        status <> 'blocked'
        AND NOT provider_id IS NULL
        AND start_at >= CAST('2026-01-05 13:00:00+00:00' AS TIMESTAMP)
    ) AS s
  ) AS s
  JOIN schedules AS p
    ON p.provider = s.provider AND p.location IS NOT DISTINCT FROM s.location
), slot_days AS (
  SELECT
    provider,
    schedule,
    r,
    start_at,
    end_at,
    start_day AS day
  FROM open_slots
  UNION ALL
  SELECT
    provider,
    schedule,
    r,
    start_at,
    end_at,
    end_day
  FROM open_slots
  WHERE
    end_day <> start_day
), bookings AS (
  SELECT
    provider_id,
    start_at,
    end_at,
    booked_at,
    cancelled_at,
    CAST(start_at AS DATE) AS start_day,
    CAST(end_at AS DATE) AS end_day
  FROM (
    SELECT
      provider_id,
      scheduled_start AS start_at,
      scheduled_start + COALESCE(scheduled_minutes, 1) * INTERVAL '1' MINUTE AS end_at,
      booked_at,
      cancelled_at
    FROM appointments
    WHERE
      NOT booked_at IS NULL
      AND booked_at <= CAST('2026-02-23 13:00:00+00:00' AS TIMESTAMP)
      AND scheduled_start + COALESCE(scheduled_minutes, 1) * INTERVAL '1' MINUTE > CAST('2026-01-05 13:00:00+00:00' AS TIMESTAMP)
  ) AS a
), booking_days AS (
  SELECT
    provider_id,
    start_at,
    end_at,
    booked_at,
    cancelled_at,
    start_day AS day
  FROM bookings
  UNION ALL
  SELECT
    provider_id,
    start_at,
    end_at,
    booked_at,
    cancelled_at,
    end_day
  FROM bookings
  WHERE
    end_day <> start_day
), holds AS (
  SELECT
    s.schedule,
    s.r,
    CAST(FLOOR(
      CAST((
        DATEDIFF(
          DAY,
          CAST('1900-01-01' AS DATE),
          CAST((
            (
              FROM_UTC_TIMESTAMP(b.booked_at, 'America/New_York')
            ) - INTERVAL '480' MINUTE
          ) AS DATE)
        ) + 6 + CASE
          WHEN (
            (
              FROM_UTC_TIMESTAMP(b.booked_at, 'America/New_York')
            ) - INTERVAL '480' MINUTE
          ) > CAST(CAST((
            (
              FROM_UTC_TIMESTAMP(b.booked_at, 'America/New_York')
            ) - INTERVAL '480' MINUTE
          ) AS DATE) AS TIMESTAMP_NTZ)
          THEN 1
          ELSE 0
        END
      ) AS DOUBLE) / 7
    ) AS INT) AS held_from,
    CAST(FLOOR(
      CAST((
        DATEDIFF(
          DAY,
          CAST('1900-01-01' AS DATE),
          CAST((
            (
              FROM_UTC_TIMESTAMP(COALESCE(LEAST(b.cancelled_at, s.start_at), s.start_at), 'America/New_York')
            ) - INTERVAL '480' MINUTE
          ) AS DATE)
        ) + 6 + CASE
          WHEN (
            (
              FROM_UTC_TIMESTAMP(COALESCE(LEAST(b.cancelled_at, s.start_at), s.start_at), 'America/New_York')
            ) - INTERVAL '480' MINUTE
          ) > CAST(CAST((
            (
              FROM_UTC_TIMESTAMP(COALESCE(LEAST(b.cancelled_at, s.start_at), s.start_at), 'America/New_York')
            ) - INTERVAL '480' MINUTE
          ) AS DATE) AS TIMESTAMP_NTZ)
          THEN 1
          ELSE 0
        END
      ) AS DOUBLE) / 7
    ) AS INT) AS held_until
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
      CAST('2026-01-05 13:00:00+00:00' AS TIMESTAMP),
      6575
    ),
    (
      CAST('2026-01-01' AS DATE),
      CAST('2026-01-12' AS DATE),
      CAST('2026-01-12 13:00:00+00:00' AS TIMESTAMP),
      6576
    ),
    (
      CAST('2026-01-01' AS DATE),
      CAST('2026-01-19' AS DATE),
      CAST('2026-01-19 13:00:00+00:00' AS TIMESTAMP),
      6577
    ),
    (
      CAST('2026-01-01' AS DATE),
      CAST('2026-01-26' AS DATE),
      CAST('2026-01-26 13:00:00+00:00' AS TIMESTAMP),
      6578
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-02' AS DATE),
      CAST('2026-02-02 13:00:00+00:00' AS TIMESTAMP),
      6579
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-09' AS DATE),
      CAST('2026-02-09 13:00:00+00:00' AS TIMESTAMP),
      6580
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-16' AS DATE),
      CAST('2026-02-16 13:00:00+00:00' AS TIMESTAMP),
      6581
    ),
    (
      CAST('2026-02-01' AS DATE),
      CAST('2026-02-23' AS DATE),
      CAST('2026-02-23 13:00:00+00:00' AS TIMESTAMP),
      6582
    ) AS v(period_start, snapshot_date, snapshot_at, week)
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
), slot_weeks AS (
  SELECT
    schedule,
    week,
    COUNT(*) AS slots
  FROM (
    SELECT
      schedule,
      CAST(FLOOR(
        CAST((
          DATEDIFF(
            DAY,
            CAST('1900-01-01' AS DATE),
            CAST((
              (
                FROM_UTC_TIMESTAMP(start_at, 'America/New_York')
              ) - INTERVAL '480' MINUTE
            ) AS DATE)
          ) + 6 + CASE
            WHEN (
              (
                FROM_UTC_TIMESTAMP(start_at, 'America/New_York')
              ) - INTERVAL '480' MINUTE
            ) > CAST(CAST((
              (
                FROM_UTC_TIMESTAMP(start_at, 'America/New_York')
              ) - INTERVAL '480' MINUTE
            ) AS DATE) AS TIMESTAMP_NTZ)
            THEN 1
            ELSE 0
          END
        ) AS DOUBLE) / 7
      ) AS INT) AS week
    FROM open_slots
  ) AS o
  GROUP BY
    schedule,
    week
), bounds AS (
  SELECT
    n.period_start,
    n.snapshot_date,
    n.snapshot_at,
    n.week,
    p.schedule,
    CAST(COALESCE(SUM(w.slots), 0) AS BIGINT) AS slots_before
  FROM schedules AS p
  CROSS JOIN snapshots AS n
  LEFT JOIN slot_weeks AS w
    ON w.schedule = p.schedule AND w.week <= n.week
  GROUP BY
    n.period_start,
    n.snapshot_date,
    n.snapshot_at,
    n.week,
    p.schedule
), held AS (
  SELECT
    n.week,
    h.schedule,
    h.r,
    DENSE_RANK() OVER (PARTITION BY n.week, h.schedule ORDER BY h.r NULLS LAST) AS m
  FROM holds AS h
  JOIN snapshots AS n
    ON n.week >= h.held_from AND n.week < h.held_until
), third AS (
  SELECT
    b.period_start,
    b.snapshot_date,
    b.snapshot_at,
    b.schedule,
    b.slots_before + 3 + COUNT(DISTINCT h.r) AS r
  FROM bounds AS b
  LEFT JOIN held AS h
    ON h.week = b.week AND h.schedule = b.schedule AND h.r - h.m - b.slots_before < 3
  GROUP BY
    b.period_start,
    b.snapshot_date,
    b.snapshot_at,
    b.schedule,
    b.slots_before
), pairs AS (
  SELECT
    t.period_start,
    t.snapshot_date,
    t.snapshot_at,
    o.provider,
    o.location,
    o.source || ':' || o.slot_id AS record_id,
    o.start_at,
    DATEDIFF(
      DAY,
      snapshot_date,
      CAST((
        FROM_UTC_TIMESTAMP(start_at, 'America/New_York')
      ) AS DATE)
    ) AS days
  FROM third AS t
  JOIN open_slots AS o
    ON o.schedule = t.schedule AND o.r = t.r
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
  CAST(CASE
    WHEN CAST(pairs AS DOUBLE) > 0
    THEN CAST(total_days AS DOUBLE) / CAST(pairs AS DOUBLE)
  END AS DOUBLE) AS value,
  CAST(pairs AS BIGINT) AS n,
  CAST(0 AS BIGINT) AS unknown
FROM grouped
