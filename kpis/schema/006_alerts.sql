-- Alerts (issue 17): a KPI crossing its red line, staying off target, changing sharply or showing
-- an SPC signal, raised once and kept quiet until it clears (then it re-arms). The rules live in
-- the config ([[alerts]]); what they found lives here. No PHI: an alert names a KPI, a scope
-- (location, provider or payer id) and a value, never a patient.

-- One row per recorded run of the rules (`clinic-kpis alerts check`; a dry run records nothing):
-- when, on which data, and what it changed.
CREATE TABLE alert_evaluations (
    evaluation_id INTEGER PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL,
    trigger       VARCHAR NOT NULL,          -- what ran it: 'alerts check', 'dashboard', ...
    data_end      DATE,                      -- the last local day the warehouse covered
    rules         INTEGER NOT NULL,          -- rules in force
    instances     INTEGER NOT NULL,          -- rule x scope value pairs looked at
    evaluated     INTEGER NOT NULL,          -- of which had a complete period to judge
    raised        INTEGER NOT NULL,
    cleared       INTEGER NOT NULL,
    still_open    INTEGER NOT NULL           -- open alerts after this run
);
COMMENT ON TABLE alert_evaluations IS 'One row per evaluation of the alert rules, with what it raised and cleared.';

-- One row per alert: a rule firing for one scope value from one complete period until it
-- clears. At most one alert per (rule_name, scope_dimension, scope_value) has cleared_at NULL
-- (kpis/alerts.py keeps that; it is the "raised once" of the state machine).
CREATE TABLE alerts (
    alert_id          INTEGER PRIMARY KEY,
    rule_name         VARCHAR NOT NULL,
    kpi_id            VARCHAR NOT NULL,
    condition         VARCHAR NOT NULL CHECK (condition IN ('red_line', 'off_target', 'change', 'spc_signal')),
    rule_text         VARCHAR NOT NULL,      -- the rule in words, as it stood when the alert was raised
    grain             VARCHAR NOT NULL,
    scope_dimension   VARCHAR,               -- NULL: the whole practice
    scope_value       VARCHAR,
    period_start      DATE NOT NULL,         -- the complete period that raised it
    value             DOUBLE NOT NULL,
    n                 BIGINT NOT NULL,
    reference         DOUBLE,                -- red line, target, previous value or control limit compared with
    target            DOUBLE,
    red               DOUBLE,
    message           VARCHAR NOT NULL,      -- what happened, in words
    raised_at         TIMESTAMPTZ NOT NULL,
    raised_by         INTEGER NOT NULL,      -- evaluation_id
    last_period       DATE NOT NULL,         -- the latest period it was still firing on
    acknowledged_at   TIMESTAMPTZ,
    acknowledged_by   VARCHAR,
    cleared_at        TIMESTAMPTZ,
    cleared_by        INTEGER,               -- evaluation_id
    cleared_period    DATE,                  -- the period on which it no longer fired
    cleared_reason    VARCHAR CHECK (cleared_reason IN ('recovered', 'rule_removed'))  -- rule_removed: or its scope value
);
COMMENT ON TABLE alerts IS 'One row per alert raised; open while cleared_at is NULL.';

-- What each evaluation (or person) did to an alert, in order: raised, cleared, acknowledged.
CREATE TABLE alert_events (
    alert_id      INTEGER NOT NULL,
    event         VARCHAR NOT NULL CHECK (event IN ('raised', 'cleared', 'acknowledged')),
    event_at      TIMESTAMPTZ NOT NULL,
    evaluation_id INTEGER,                   -- NULL for an acknowledgement
    period_start  DATE,
    value         DOUBLE,
    actor         VARCHAR,                   -- who acknowledged
    PRIMARY KEY (alert_id, event)            -- an alert is raised, acknowledged and cleared once each
);
COMMENT ON TABLE alert_events IS 'One row per state change of an alert.';

-- Delivery by email, per alert and recipient address: a row is written (pending) before the
-- first attempt and marked sent once the SMTP server accepted the digest that carried it, so
-- a failed send stays pending for the next run and a sent alert is never sent to that address
-- again.
CREATE TABLE alert_deliveries (
    alert_id        INTEGER NOT NULL,
    recipient       VARCHAR NOT NULL,
    scope           VARCHAR NOT NULL,        -- the [report] recipients key the digest was for
    status          VARCHAR NOT NULL CHECK (status IN ('pending', 'sent')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TIMESTAMPTZ,
    last_error      VARCHAR,
    sent_at         TIMESTAMPTZ,
    message_id      VARCHAR,
    PRIMARY KEY (alert_id, recipient)
);
COMMENT ON TABLE alert_deliveries IS 'One row per alert and recipient address: pending until an email carried it.';
