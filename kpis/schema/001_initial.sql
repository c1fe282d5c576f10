-- clinic-kpis canonical schema, version 1.
--
-- The only contract between ingest/ (which writes it) and kpis/ (which reads it).
-- Conventions:
--   * instants are TIMESTAMPTZ (stored as UTC); the practice time zone from config decides
--     which day/month an instant belongs to, and only at query time;
--   * calendar facts with no time of day (date of service, posting date) are DATE;
--   * money is DECIMAL(18,2); durations are whole seconds or minutes, never negative;
--   * statuses are constrained to their canonical values, and the raw source word is kept
--     beside them in *_source columns;
--   * every fact row carries `source` (the system it came from, e.g. 'fhir', 'x12',
--     'asterisk', 'csv:vendor_appointments') and `ingest_run_id` (lineage);
--   * patient_key is HMAC-SHA256(practice secret, source system + patient id): no names, birth
--     dates, addresses, phone numbers or emails are ever stored.
-- Each table's grain is stated in its COMMENT, which `clinic-kpis` shows in its docs.

CREATE TABLE locations (
    location_id   VARCHAR PRIMARY KEY,
    name          VARCHAR,
    source        VARCHAR NOT NULL,
    ingest_run_id BIGINT
);
COMMENT ON TABLE locations IS 'One row per practice location (clinic site).';

CREATE TABLE providers (
    provider_id   VARCHAR PRIMARY KEY,
    name          VARCHAR,            -- the clinician's display name (not patient data)
    npi           VARCHAR,
    specialty     VARCHAR,
    location_id   VARCHAR,            -- home location, when the source states one
    source        VARCHAR NOT NULL,
    ingest_run_id BIGINT
);
COMMENT ON TABLE providers IS 'One row per rendering/scheduling provider.';

CREATE TABLE payers (
    payer_id      VARCHAR PRIMARY KEY,
    name          VARCHAR,
    payer_class   VARCHAR NOT NULL DEFAULT 'other'
        CHECK (payer_class IN ('commercial', 'medicare', 'medicaid', 'self_pay', 'other')),
    source        VARCHAR NOT NULL,
    ingest_run_id BIGINT
);
COMMENT ON TABLE payers IS 'One row per payer (insurer or self-pay), with its payer class.';

CREATE TABLE appointments (
    source            VARCHAR NOT NULL,
    appointment_id    VARCHAR NOT NULL,
    location_id       VARCHAR,
    provider_id       VARCHAR,
    patient_key       VARCHAR,
    payer_id          VARCHAR,
    visit_type        VARCHAR,         -- canonical visit type code, e.g. 'office', 'annual', 'procedure'
    is_new_patient    BOOLEAN,
    is_telehealth     BOOLEAN NOT NULL DEFAULT FALSE,
    booked_at         TIMESTAMPTZ,
    scheduled_start   TIMESTAMPTZ NOT NULL,
    scheduled_minutes INTEGER CHECK (scheduled_minutes > 0),
    status            VARCHAR NOT NULL
        CHECK (status IN ('booked', 'arrived', 'fulfilled', 'noshow', 'cancelled', 'entered_in_error')),
    status_source     VARCHAR,         -- the raw status word of the export
    cancelled_at      TIMESTAMPTZ,
    cancel_initiator  VARCHAR CHECK (cancel_initiator IN ('patient', 'provider', 'practice', 'other')),
    rebooked_from_id  VARCHAR,         -- set on the new appointment of a reschedule
    ingest_run_id     BIGINT,
    PRIMARY KEY (source, appointment_id)
);
COMMENT ON TABLE appointments IS 'One row per scheduled appointment (latest known state of each booking).';

CREATE TABLE encounters (
    source            VARCHAR NOT NULL,
    encounter_id      VARCHAR NOT NULL,
    appointment_id    VARCHAR,         -- same source; NULL for walk-ins
    location_id       VARCHAR,
    provider_id       VARCHAR,
    patient_key       VARCHAR,
    is_telehealth     BOOLEAN NOT NULL DEFAULT FALSE,
    status            VARCHAR NOT NULL
        CHECK (status IN ('planned', 'arrived', 'in_progress', 'finished', 'cancelled', 'entered_in_error')),
    checked_in_at     TIMESTAMPTZ,
    roomed_at         TIMESTAMPTZ,
    provider_start_at TIMESTAMPTZ,
    provider_end_at   TIMESTAMPTZ,
    checked_out_at    TIMESTAMPTZ,
    chart_closed_at   TIMESTAMPTZ,
    ingest_run_id     BIGINT,
    PRIMARY KEY (source, encounter_id),
    CHECK (roomed_at IS NULL OR checked_in_at IS NULL OR roomed_at >= checked_in_at),
    CHECK (provider_start_at IS NULL OR roomed_at IS NULL OR provider_start_at >= roomed_at),
    CHECK (provider_end_at IS NULL OR provider_start_at IS NULL OR provider_end_at >= provider_start_at),
    CHECK (checked_out_at IS NULL OR checked_in_at IS NULL OR checked_out_at >= checked_in_at),
    CHECK (chart_closed_at IS NULL OR provider_start_at IS NULL OR chart_closed_at >= provider_start_at)
);
COMMENT ON TABLE encounters IS 'One row per visit that happened (or began): the in-clinic timeline of an appointment.';

CREATE TABLE claims (
    submission_id    VARCHAR PRIMARY KEY,  -- claim_id|frequency_code|submitted_at (UTC, ISO), built by ingest
    claim_id         VARCHAR NOT NULL,     -- patient control number (837 CLM01)
    frequency_code   VARCHAR NOT NULL DEFAULT '1'
        CHECK (frequency_code IN ('1', '7', '8')),  -- original, replacement, void
    submitted_at     TIMESTAMPTZ NOT NULL,
    patient_key      VARCHAR,
    appointment_id   VARCHAR,
    location_id      VARCHAR,
    provider_id      VARCHAR,              -- rendering provider
    payer_id         VARCHAR,
    service_date     DATE NOT NULL,        -- earliest line date of service
    billed_amount    DECIMAL(18,2) NOT NULL CHECK (billed_amount >= 0),
    payer_claim_control_number VARCHAR,    -- REF*F8 on replacements/voids
    source           VARCHAR NOT NULL,
    ingest_run_id    BIGINT
);
COMMENT ON TABLE claims IS 'One row per claim submission (original, replacement or void) sent to a payer.';

CREATE TABLE claim_lines (
    submission_id  VARCHAR NOT NULL,
    line_no        INTEGER NOT NULL CHECK (line_no > 0),
    procedure_code VARCHAR,
    modifiers      VARCHAR,
    units          DECIMAL(10,3),
    charge_amount  DECIMAL(18,2) NOT NULL CHECK (charge_amount >= 0),
    service_date   DATE,
    source         VARCHAR NOT NULL,
    ingest_run_id  BIGINT,
    PRIMARY KEY (submission_id, line_no)
);
COMMENT ON TABLE claim_lines IS 'One row per service line of a claim submission.';

CREATE TABLE remittances (
    remittance_id        VARCHAR PRIMARY KEY,  -- trace number|CLP01|CLP02|CLP07|occurrence, built by ingest
    claim_id             VARCHAR NOT NULL,     -- CLP01, the practice's patient control number
    payer_id             VARCHAR,
    payer_claim_control_number VARCHAR,        -- CLP07
    trace_number         VARCHAR,              -- TRN02 check/EFT number
    paid_date            DATE NOT NULL,        -- BPR16, else DTM*405
    claim_status_code    VARCHAR NOT NULL,     -- CLP02 as sent
    status               VARCHAR NOT NULL
        CHECK (status IN ('paid', 'zero_paid', 'denied', 'reversed', 'other')),
    billed_amount        DECIMAL(18,2),
    paid_amount          DECIMAL(18,2) NOT NULL,
    patient_responsibility DECIMAL(18,2),
    remark_codes         VARCHAR,              -- claim-level RARCs (MOA/LQ), comma separated
    source               VARCHAR NOT NULL,
    ingest_run_id        BIGINT
);
COMMENT ON TABLE remittances IS 'One row per claim payment (835 CLP loop) received from a payer, reversals included.';

CREATE TABLE remittance_adjustments (
    remittance_id VARCHAR NOT NULL,
    seq           INTEGER NOT NULL,            -- order within the remittance
    line_no       INTEGER,                     -- NULL for claim-level CAS
    procedure_code VARCHAR,                    -- of the SVC line, when line level
    group_code    VARCHAR NOT NULL CHECK (group_code IN ('CO', 'PR', 'OA', 'PI', 'CR')),
    reason_code   VARCHAR NOT NULL,            -- CARC
    amount        DECIMAL(18,2) NOT NULL,
    quantity      DECIMAL(10,3),
    remark_codes  VARCHAR,                     -- line-level RARCs (LQ*HE), comma separated
    source        VARCHAR NOT NULL,
    ingest_run_id BIGINT,
    PRIMARY KEY (remittance_id, seq)
);
COMMENT ON TABLE remittance_adjustments IS 'One row per CAS adjustment (group code, CARC, amount) of a remittance, claim or line level.';

CREATE TABLE ledger (
    entry_id        VARCHAR PRIMARY KEY,
    claim_id        VARCHAR,
    patient_key     VARCHAR,
    location_id     VARCHAR,
    provider_id     VARCHAR,
    payer_id        VARCHAR,
    service_date    DATE,
    posted_date     DATE NOT NULL,
    entry_type      VARCHAR NOT NULL
        CHECK (entry_type IN ('charge', 'payment', 'adjustment', 'writeoff', 'refund')),
    party           VARCHAR CHECK (party IN ('payer', 'patient')),  -- who paid / was refunded
    amount          DECIMAL(18,2) NOT NULL,  -- natural direction; reversals are negative
    group_code      VARCHAR CHECK (group_code IN ('CO', 'PR', 'OA', 'PI', 'CR')),
    reason_code     VARCHAR,                 -- CARC for adjustments
    source          VARCHAR NOT NULL,
    ingest_run_id   BIGINT
);
COMMENT ON TABLE ledger IS 'One row per A/R transaction posted. A/R = charges - payments - adjustments - writeoffs + refunds.';

CREATE TABLE calls (
    source        VARCHAR NOT NULL,
    call_id       VARCHAR NOT NULL,
    queue         VARCHAR,
    location_id   VARCHAR,
    entered_at    TIMESTAMPTZ NOT NULL,
    answered_at   TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ,
    outcome       VARCHAR NOT NULL
        CHECK (outcome IN ('answered', 'abandoned', 'timeout', 'exit_key', 'other')),
    outcome_source VARCHAR,                  -- e.g. the queue_log event that ended the wait
    wait_seconds  INTEGER NOT NULL CHECK (wait_seconds >= 0),
    talk_seconds  INTEGER CHECK (talk_seconds >= 0),
    agent         VARCHAR,
    ingest_run_id BIGINT,
    PRIMARY KEY (source, call_id),
    CHECK (answered_at IS NULL OR answered_at >= entered_at),
    CHECK (ended_at IS NULL OR ended_at >= entered_at)
);
COMMENT ON TABLE calls IS 'One row per call that entered a phone queue.';

CREATE TABLE referrals (
    source              VARCHAR NOT NULL,
    referral_id         VARCHAR NOT NULL,
    patient_key         VARCHAR,
    referring_provider_id VARCHAR,
    location_id         VARCHAR,
    specialty           VARCHAR,
    priority            VARCHAR CHECK (priority IN ('routine', 'urgent', 'asap', 'stat')),
    created_at          TIMESTAMPTZ NOT NULL,
    sent_at             TIMESTAMPTZ,
    scheduled_at        TIMESTAMPTZ,   -- when the specialist visit was booked
    seen_at             TIMESTAMPTZ,   -- when the specialist visit happened
    report_received_at  TIMESTAMPTZ,   -- when the consult report came back (loop closed)
    status              VARCHAR NOT NULL
        CHECK (status IN ('created', 'sent', 'scheduled', 'seen', 'closed', 'cancelled')),
    status_source       VARCHAR,
    ingest_run_id       BIGINT,
    PRIMARY KEY (source, referral_id),
    CHECK (sent_at IS NULL OR sent_at >= created_at),
    CHECK (report_received_at IS NULL OR report_received_at >= created_at)
);
COMMENT ON TABLE referrals IS 'One row per outgoing referral, with the time it reached each lifecycle stage.';

CREATE TABLE portal_messages (
    source            VARCHAR NOT NULL,
    message_id        VARCHAR NOT NULL,
    thread_id         VARCHAR,
    patient_key       VARCHAR,
    location_id       VARCHAR,
    provider_id       VARCHAR,
    category          VARCHAR,
    received_at       TIMESTAMPTZ NOT NULL,
    first_response_at TIMESTAMPTZ,         -- first reply by a person (auto-replies excluded)
    ingest_run_id     BIGINT,
    PRIMARY KEY (source, message_id),
    CHECK (first_response_at IS NULL OR first_response_at >= received_at)
);
COMMENT ON TABLE portal_messages IS 'One row per patient-initiated portal message.';

CREATE TABLE slots (
    source        VARCHAR NOT NULL,
    slot_id       VARCHAR NOT NULL,
    provider_id   VARCHAR,
    location_id   VARCHAR,
    visit_type    VARCHAR,
    start_at      TIMESTAMPTZ NOT NULL,
    minutes       INTEGER NOT NULL CHECK (minutes > 0),
    status        VARCHAR NOT NULL CHECK (status IN ('free', 'busy', 'blocked', 'tentative')),
    status_source VARCHAR,
    ingest_run_id BIGINT,
    PRIMARY KEY (source, slot_id)
);
COMMENT ON TABLE slots IS 'One row per schedule template slot; blocked slots are never offered. Whether an open slot was free at a past moment follows from the appointments booked into it.';

CREATE SEQUENCE ingest_run_seq START 1;
CREATE TABLE ingest_runs (
    run_id        BIGINT PRIMARY KEY DEFAULT nextval('ingest_run_seq'),
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    file_path     VARCHAR NOT NULL,
    sha256        VARCHAR,
    size_bytes    BIGINT,
    adapter       VARCHAR,
    rows_read     BIGINT NOT NULL DEFAULT 0 CHECK (rows_read >= 0),
    rows_inserted BIGINT NOT NULL DEFAULT 0 CHECK (rows_inserted >= 0),
    rows_updated  BIGINT NOT NULL DEFAULT 0 CHECK (rows_updated >= 0),
    rows_unchanged BIGINT NOT NULL DEFAULT 0 CHECK (rows_unchanged >= 0),
    rows_rejected BIGINT NOT NULL DEFAULT 0 CHECK (rows_rejected >= 0),
    status        VARCHAR NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    error         VARCHAR,
    CHECK (status <> 'succeeded'
           OR rows_read = rows_inserted + rows_updated + rows_unchanged + rows_rejected)
);
COMMENT ON TABLE ingest_runs IS 'One row per file load attempt; a succeeded run balances: read = inserted + updated + unchanged + rejected.';

CREATE SEQUENCE reject_seq START 1;
CREATE TABLE rejects (
    reject_id     BIGINT PRIMARY KEY DEFAULT nextval('reject_seq'),
    run_id        BIGINT NOT NULL,
    file_path     VARCHAR NOT NULL,
    position_kind VARCHAR NOT NULL CHECK (position_kind IN ('line', 'segment', 'record')),
    position      BIGINT NOT NULL,
    target_table  VARCHAR,
    field         VARCHAR,
    check_name    VARCHAR NOT NULL,
    reason        VARCHAR NOT NULL,          -- a sentence a practice manager can act on
    value_masked  VARCHAR,
    record_masked VARCHAR                    -- the record as JSON, direct identifiers masked
);
COMMENT ON TABLE rejects IS 'One row per quarantined input record, with its file position, field and reason.';
