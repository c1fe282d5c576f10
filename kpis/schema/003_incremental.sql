-- Incremental loads that never lose, regress or leak (docs/contracts.md, "Loading in any order").
--
-- Practices load exports month by month, from several systems, in whatever order they arrive.
-- What this version adds, all of it bookkeeping of ingest/ (kpis/ reads none of it):
--   * references kept on the rows that make them, so they resolve whenever their target loads;
--   * the references a FHIR export defines (Practitioner and Schedule ids), kept across runs;
--   * the source's version of each record, so a newer version wins whatever the load order;
--   * updates waiting for the row they update (a chart note loaded before its visit);
--   * the fingerprint of the pseudonymization key the warehouse was loaded with;
--   * per run: records that were stale or are waiting, and rows derived from the records.

-- A reference as the export wrote it, next to the id it resolves to: the id is filled in when
-- the referenced record is loaded, in this run or any later one (NULL until then).
ALTER TABLE appointments ADD COLUMN provider_ref VARCHAR;
COMMENT ON COLUMN appointments.provider_ref IS 'The export''s reference to the provider when it is not an NPI (FHIR Practitioner/<id>); provider_id follows from it once that Practitioner is loaded.';
ALTER TABLE appointments ADD COLUMN payer_ref VARCHAR;
COMMENT ON COLUMN appointments.payer_ref IS 'The payer as the export names it (a plan name); payer_id is the payer of that name once a claim file has introduced it.';
ALTER TABLE encounters ADD COLUMN provider_ref VARCHAR;
COMMENT ON COLUMN encounters.provider_ref IS 'As appointments.provider_ref.';
ALTER TABLE referrals ADD COLUMN referring_provider_ref VARCHAR;
COMMENT ON COLUMN referrals.referring_provider_ref IS 'As appointments.provider_ref, for the referring provider.';
ALTER TABLE slots ADD COLUMN schedule_ref VARCHAR;
COMMENT ON COLUMN slots.schedule_ref IS 'The slot''s schedule (FHIR Schedule/<id>); provider_id and location_id follow from it once that Schedule (and its Practitioner) is loaded.';

CREATE TABLE source_references (
    source        VARCHAR NOT NULL,   -- e.g. 'fhir'
    reference     VARCHAR NOT NULL,   -- e.g. 'Practitioner/pr-1', 'Schedule/sch-1'
    provider_id   VARCHAR,            -- the NPI it stands for (a Practitioner, or a Schedule naming one by NPI)
    provider_ref  VARCHAR,            -- a Schedule's practitioner, as a reference
    location_id   VARCHAR,            -- a Schedule's location
    ingest_run_id BIGINT,
    PRIMARY KEY (source, reference)
);
COMMENT ON TABLE source_references IS 'One row per resource a source refers to by its own id (a FHIR Practitioner or Schedule), with the canonical ids it stands for.';

CREATE TABLE record_versions (
    table_name    VARCHAR NOT NULL,
    writer        VARCHAR NOT NULL,   -- the kind of record that owns the columns (a table has several, e.g. a visit and its chart note)
    record_key    VARCHAR NOT NULL,   -- the row's primary key values, joined by U+001F
    version_at    TIMESTAMPTZ NOT NULL,  -- when the source last changed the record (FHIR meta.lastUpdated, the file's own date)
    ingest_run_id BIGINT,
    PRIMARY KEY (table_name, writer, record_key)
);
COMMENT ON TABLE record_versions IS 'One row per record whose source says when it last changed: an older version loaded later is stale and kept out.';

CREATE TABLE waiting_rows (
    table_name    VARCHAR NOT NULL,
    writer        VARCHAR NOT NULL,
    record_key    VARCHAR NOT NULL,
    row_json      VARCHAR NOT NULL,   -- the canonical columns the update writes (already pseudonymized)
    version_at    TIMESTAMPTZ,
    file_path     VARCHAR NOT NULL,   -- where it came from, to quarantine it there if it breaks a rule once applied
    position_kind VARCHAR NOT NULL,
    position      BIGINT NOT NULL,
    ingest_run_id BIGINT,
    PRIMARY KEY (table_name, writer, record_key)
);
COMMENT ON TABLE waiting_rows IS 'One row per update whose row is not loaded yet (a chart note before its visit, a referral stage before its referral); applied when that row arrives.';

CREATE TABLE warehouse_settings (
    name          VARCHAR PRIMARY KEY,
    value         VARCHAR NOT NULL,
    set_at        TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE warehouse_settings IS 'One row per fact about how the warehouse is loaded, e.g. the fingerprint of the pseudonymization key.';

-- ingest_runs again, with two more outcomes in its balance (DuckDB cannot alter a CHECK):
-- read = inserted + updated + unchanged + stale + waiting + rejected.
CREATE TABLE ingest_runs_003 (
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
    rows_ignored  BIGINT DEFAULT 0,
    rows_stale    BIGINT NOT NULL DEFAULT 0 CHECK (rows_stale >= 0),
    rows_waiting  BIGINT NOT NULL DEFAULT 0 CHECK (rows_waiting >= 0),
    rows_derived  BIGINT NOT NULL DEFAULT 0 CHECK (rows_derived >= 0),
    CHECK (status <> 'succeeded'
           OR rows_read = rows_inserted + rows_updated + rows_unchanged + rows_stale + rows_waiting + rows_rejected)
);
INSERT INTO ingest_runs_003 BY NAME SELECT * FROM ingest_runs;
DROP TABLE ingest_runs;
ALTER TABLE ingest_runs_003 RENAME TO ingest_runs;
COMMENT ON TABLE ingest_runs IS 'One row per file load attempt; a succeeded run balances: read = inserted + updated + unchanged + stale + waiting + rejected.';
COMMENT ON COLUMN ingest_runs.rows_ignored IS 'Records the adapter left out on purpose (the reasons are in the ingest summary); not part of the balance.';
COMMENT ON COLUMN ingest_runs.rows_stale IS 'Records older than the version already loaded (by the source''s own date): kept the newer.';
COMMENT ON COLUMN ingest_runs.rows_waiting IS 'Updates to a row not loaded yet, kept in waiting_rows until it arrives.';
COMMENT ON COLUMN ingest_runs.rows_derived IS 'Rows written as a consequence of the file, not read from it: ledger charges of its claims, references resolved and waiting updates applied now that their target arrived. Not part of the balance.';
COMMENT ON TABLE rejects IS 'One row per failed check of a quarantined input record (a record may fail several), with its file position, field and reason.';
