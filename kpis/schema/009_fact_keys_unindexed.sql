-- The fact tables again, without their PRIMARY KEYs (issue 22), as 008 did for record_versions.
--
-- Why: DuckDB keeps the key index (an ART) of the rows a transaction adds to a table with a
-- primary key in memory until the transaction commits, and cannot spill it: ~55 bytes a new
-- key, so a file adding 17.3 M calls (a 10 M practice's queue_log) could not load within
-- `[ingest] memory_limit` (1 GB), and its COMMIT merged that index into the table's beside it.
-- The load path (ingest/load.py) keeps these keys unique itself: a row is inserted only when
-- its key is in neither the table (`_exists`, the stage's join with it) nor earlier in the file
-- (`_rn = 1`), and two targets of one phase writing the same table are checked not to insert
-- the same key. The keys are declared in `table_keys`, where the load path reads them.
--
-- Each table is rebuilt with its columns in the same order, the same defaults, NOT NULLs (the
-- key columns' now stated) and CHECKs in the same order (rejects list a record's failures in
-- rule order), and its comments.

CREATE TABLE appointments_009 (
    "source" VARCHAR NOT NULL,
    appointment_id VARCHAR NOT NULL,
    location_id VARCHAR,
    provider_id VARCHAR,
    patient_key VARCHAR,
    payer_id VARCHAR,
    visit_type VARCHAR,
    is_new_patient BOOLEAN,
    is_telehealth BOOLEAN DEFAULT(false) NOT NULL,
    booked_at TIMESTAMP WITH TIME ZONE,
    scheduled_start TIMESTAMP WITH TIME ZONE NOT NULL,
    scheduled_minutes INTEGER,
    status VARCHAR NOT NULL,
    status_source VARCHAR,
    cancelled_at TIMESTAMP WITH TIME ZONE,
    cancel_initiator VARCHAR,
    rebooked_from_id VARCHAR,
    ingest_run_id BIGINT,
    provider_ref VARCHAR,
    payer_ref VARCHAR,
    CHECK((scheduled_minutes > 0)),
    CHECK((status IN ('booked', 'arrived', 'fulfilled', 'noshow', 'cancelled', 'entered_in_error'))),
    CHECK((cancel_initiator IN ('patient', 'provider', 'practice', 'other')))
);
INSERT INTO appointments_009 BY NAME SELECT * FROM appointments;
DROP TABLE appointments;
ALTER TABLE appointments_009 RENAME TO appointments;
COMMENT ON TABLE appointments IS 'One row per scheduled appointment (latest known state of each booking).';
COMMENT ON COLUMN appointments.provider_ref IS 'The export''s reference to the provider when it is not an NPI (FHIR Practitioner/<id>); provider_id follows from it once that Practitioner is loaded.';
COMMENT ON COLUMN appointments.payer_ref IS 'The payer as the export names it (a plan name); payer_id is the payer of that name once a claim file has introduced it.';

CREATE TABLE encounters_009 (
    "source" VARCHAR NOT NULL,
    encounter_id VARCHAR NOT NULL,
    appointment_id VARCHAR,
    location_id VARCHAR,
    provider_id VARCHAR,
    patient_key VARCHAR,
    is_telehealth BOOLEAN DEFAULT(false) NOT NULL,
    status VARCHAR NOT NULL,
    checked_in_at TIMESTAMP WITH TIME ZONE,
    roomed_at TIMESTAMP WITH TIME ZONE,
    provider_start_at TIMESTAMP WITH TIME ZONE,
    provider_end_at TIMESTAMP WITH TIME ZONE,
    checked_out_at TIMESTAMP WITH TIME ZONE,
    chart_closed_at TIMESTAMP WITH TIME ZONE,
    ingest_run_id BIGINT,
    provider_ref VARCHAR,
    CHECK((status IN ('planned', 'arrived', 'in_progress', 'finished', 'cancelled', 'entered_in_error'))),
    CHECK(((roomed_at IS NULL) OR (checked_in_at IS NULL) OR (roomed_at >= checked_in_at))),
    CHECK(((provider_start_at IS NULL) OR (roomed_at IS NULL) OR (provider_start_at >= roomed_at))),
    CHECK(((provider_end_at IS NULL) OR (provider_start_at IS NULL) OR (provider_end_at >= provider_start_at))),
    CHECK(((checked_out_at IS NULL) OR (checked_in_at IS NULL) OR (checked_out_at >= checked_in_at))),
    CHECK(((chart_closed_at IS NULL) OR (provider_start_at IS NULL) OR (chart_closed_at >= provider_start_at)))
);
INSERT INTO encounters_009 BY NAME SELECT * FROM encounters;
DROP TABLE encounters;
ALTER TABLE encounters_009 RENAME TO encounters;
COMMENT ON TABLE encounters IS 'One row per visit that happened (or began): the in-clinic timeline of an appointment.';
COMMENT ON COLUMN encounters.provider_ref IS 'As appointments.provider_ref.';

CREATE TABLE slots_009 (
    "source" VARCHAR NOT NULL,
    slot_id VARCHAR NOT NULL,
    provider_id VARCHAR,
    location_id VARCHAR,
    visit_type VARCHAR,
    start_at TIMESTAMP WITH TIME ZONE NOT NULL,
    "minutes" INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    status_source VARCHAR,
    ingest_run_id BIGINT,
    schedule_ref VARCHAR,
    CHECK(("minutes" > 0)),
    CHECK((status IN ('free', 'busy', 'blocked', 'tentative')))
);
INSERT INTO slots_009 BY NAME SELECT * FROM slots;
DROP TABLE slots;
ALTER TABLE slots_009 RENAME TO slots;
COMMENT ON TABLE slots IS 'One row per schedule template slot; blocked slots are never offered. Whether an open slot was free at a past moment follows from the appointments booked into it.';
COMMENT ON COLUMN slots.schedule_ref IS 'The slot''s schedule (FHIR Schedule/<id>); provider_id and location_id follow from it once that Schedule (and its Practitioner) is loaded.';

CREATE TABLE calls_009 (
    "source" VARCHAR NOT NULL,
    call_id VARCHAR NOT NULL,
    queue VARCHAR,
    location_id VARCHAR,
    entered_at TIMESTAMP WITH TIME ZONE NOT NULL,
    answered_at TIMESTAMP WITH TIME ZONE,
    ended_at TIMESTAMP WITH TIME ZONE,
    outcome VARCHAR NOT NULL,
    outcome_source VARCHAR,
    wait_seconds INTEGER NOT NULL,
    talk_seconds INTEGER,
    agent VARCHAR,
    ingest_run_id BIGINT,
    CHECK((outcome IN ('answered', 'abandoned', 'timeout', 'exit_key', 'other'))),
    CHECK((wait_seconds >= 0)),
    CHECK((talk_seconds >= 0)),
    CHECK(((answered_at IS NULL) OR (answered_at >= entered_at))),
    CHECK(((ended_at IS NULL) OR (ended_at >= entered_at)))
);
INSERT INTO calls_009 BY NAME SELECT * FROM calls;
DROP TABLE calls;
ALTER TABLE calls_009 RENAME TO calls;
COMMENT ON TABLE calls IS 'One row per call that entered a phone queue.';

CREATE TABLE portal_messages_009 (
    "source" VARCHAR NOT NULL,
    message_id VARCHAR NOT NULL,
    thread_id VARCHAR,
    patient_key VARCHAR,
    location_id VARCHAR,
    provider_id VARCHAR,
    category VARCHAR,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    first_response_at TIMESTAMP WITH TIME ZONE,
    ingest_run_id BIGINT,
    CHECK(((first_response_at IS NULL) OR (first_response_at >= received_at)))
);
INSERT INTO portal_messages_009 BY NAME SELECT * FROM portal_messages;
DROP TABLE portal_messages;
ALTER TABLE portal_messages_009 RENAME TO portal_messages;
COMMENT ON TABLE portal_messages IS 'One row per patient-initiated portal message.';

CREATE TABLE referrals_009 (
    "source" VARCHAR NOT NULL,
    referral_id VARCHAR NOT NULL,
    patient_key VARCHAR,
    referring_provider_id VARCHAR,
    location_id VARCHAR,
    specialty VARCHAR,
    priority VARCHAR,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    sent_at TIMESTAMP WITH TIME ZONE,
    scheduled_at TIMESTAMP WITH TIME ZONE,
    seen_at TIMESTAMP WITH TIME ZONE,
    report_received_at TIMESTAMP WITH TIME ZONE,
    status VARCHAR NOT NULL,
    status_source VARCHAR,
    ingest_run_id BIGINT,
    referring_provider_ref VARCHAR,
    CHECK((priority IN ('routine', 'urgent', 'asap', 'stat'))),
    CHECK((status IN ('created', 'sent', 'scheduled', 'seen', 'closed', 'cancelled'))),
    CHECK(((sent_at IS NULL) OR (sent_at >= created_at))),
    CHECK(((report_received_at IS NULL) OR (report_received_at >= created_at)))
);
INSERT INTO referrals_009 BY NAME SELECT * FROM referrals;
DROP TABLE referrals;
ALTER TABLE referrals_009 RENAME TO referrals;
COMMENT ON TABLE referrals IS 'One row per outgoing referral, with the time it reached each lifecycle stage.';
COMMENT ON COLUMN referrals.referring_provider_ref IS 'As appointments.provider_ref, for the referring provider.';

CREATE TABLE claims_009 (
    submission_id VARCHAR NOT NULL,
    claim_id VARCHAR NOT NULL,
    frequency_code VARCHAR DEFAULT('1') NOT NULL,
    submitted_at TIMESTAMP WITH TIME ZONE NOT NULL,
    patient_key VARCHAR,
    appointment_id VARCHAR,
    location_id VARCHAR,
    provider_id VARCHAR,
    payer_id VARCHAR,
    service_date DATE NOT NULL,
    billed_amount DECIMAL(18,2) NOT NULL,
    payer_claim_control_number VARCHAR,
    "source" VARCHAR NOT NULL,
    ingest_run_id BIGINT,
    CHECK((frequency_code IN ('1', '7', '8'))),
    CHECK((billed_amount >= 0))
);
INSERT INTO claims_009 BY NAME SELECT * FROM claims;
DROP TABLE claims;
ALTER TABLE claims_009 RENAME TO claims;
COMMENT ON TABLE claims IS 'One row per claim submission (original, replacement or void) sent to a payer.';

CREATE TABLE claim_lines_009 (
    submission_id VARCHAR NOT NULL,
    line_no INTEGER NOT NULL,
    procedure_code VARCHAR,
    modifiers VARCHAR,
    units DECIMAL(10,3),
    charge_amount DECIMAL(18,2) NOT NULL,
    service_date DATE,
    "source" VARCHAR NOT NULL,
    ingest_run_id BIGINT,
    CHECK((line_no > 0)),
    CHECK((charge_amount >= 0))
);
INSERT INTO claim_lines_009 BY NAME SELECT * FROM claim_lines;
DROP TABLE claim_lines;
ALTER TABLE claim_lines_009 RENAME TO claim_lines;
COMMENT ON TABLE claim_lines IS 'One row per service line of a claim submission.';

CREATE TABLE remittances_009 (
    remittance_id VARCHAR NOT NULL,
    claim_id VARCHAR NOT NULL,
    payer_id VARCHAR,
    payer_claim_control_number VARCHAR,
    trace_number VARCHAR,
    paid_date DATE NOT NULL,
    claim_status_code VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    billed_amount DECIMAL(18,2),
    paid_amount DECIMAL(18,2) NOT NULL,
    patient_responsibility DECIMAL(18,2),
    remark_codes VARCHAR,
    "source" VARCHAR NOT NULL,
    ingest_run_id BIGINT,
    CHECK((status IN ('paid', 'zero_paid', 'denied', 'reversed', 'other')))
);
INSERT INTO remittances_009 BY NAME SELECT * FROM remittances;
DROP TABLE remittances;
ALTER TABLE remittances_009 RENAME TO remittances;
COMMENT ON TABLE remittances IS 'One row per claim payment (835 CLP loop) received from a payer, reversals included.';

CREATE TABLE remittance_adjustments_009 (
    remittance_id VARCHAR NOT NULL,
    seq INTEGER NOT NULL,
    line_no INTEGER,
    procedure_code VARCHAR,
    group_code VARCHAR NOT NULL,
    reason_code VARCHAR NOT NULL,
    amount DECIMAL(18,2) NOT NULL,
    quantity DECIMAL(10,3),
    remark_codes VARCHAR,
    "source" VARCHAR NOT NULL,
    ingest_run_id BIGINT,
    CHECK((group_code IN ('CO', 'PR', 'OA', 'PI', 'CR')))
);
INSERT INTO remittance_adjustments_009 BY NAME SELECT * FROM remittance_adjustments;
DROP TABLE remittance_adjustments;
ALTER TABLE remittance_adjustments_009 RENAME TO remittance_adjustments;
COMMENT ON TABLE remittance_adjustments IS 'One row per CAS adjustment (group code, CARC, amount) of a remittance, claim or line level.';

CREATE TABLE ledger_009 (
    entry_id VARCHAR NOT NULL,
    claim_id VARCHAR,
    patient_key VARCHAR,
    location_id VARCHAR,
    provider_id VARCHAR,
    payer_id VARCHAR,
    service_date DATE,
    posted_date DATE NOT NULL,
    entry_type VARCHAR NOT NULL,
    party VARCHAR,
    amount DECIMAL(18,2) NOT NULL,
    group_code VARCHAR,
    reason_code VARCHAR,
    "source" VARCHAR NOT NULL,
    ingest_run_id BIGINT,
    CHECK((entry_type IN ('charge', 'payment', 'adjustment', 'writeoff', 'refund'))),
    CHECK((party IN ('payer', 'patient'))),
    CHECK((group_code IN ('CO', 'PR', 'OA', 'PI', 'CR')))
);
INSERT INTO ledger_009 BY NAME SELECT * FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_009 RENAME TO ledger;
COMMENT ON TABLE ledger IS 'One row per A/R transaction posted. A/R = charges - payments - adjustments - writeoffs + refunds.';

CREATE TABLE table_keys (
    table_name  VARCHAR PRIMARY KEY,
    key_columns VARCHAR[] NOT NULL   -- in key order
);
COMMENT ON TABLE table_keys IS 'One row per table whose key the load path keeps unique without a key index (DuckDB cannot spill one): one row per key value.';
INSERT INTO table_keys VALUES
    ('appointments', ['source', 'appointment_id']),
    ('encounters', ['source', 'encounter_id']),
    ('slots', ['source', 'slot_id']),
    ('calls', ['source', 'call_id']),
    ('portal_messages', ['source', 'message_id']),
    ('referrals', ['source', 'referral_id']),
    ('claims', ['submission_id']),
    ('claim_lines', ['submission_id', 'line_no']),
    ('remittances', ['remittance_id']),
    ('remittance_adjustments', ['remittance_id', 'seq']),
    ('ledger', ['entry_id']),
    ('record_versions', ['table_name', 'writer', 'record_key']);
