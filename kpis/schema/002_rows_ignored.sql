-- Rows a file holds that no table takes on purpose (a Schedule resource, a Synthea balance
-- transfer, an 835 PLB segment): counted per load, so that a file's records reconcile from
-- ingest_runs alone: records in the file = rows_read + rows_ignored.
ALTER TABLE ingest_runs ADD COLUMN rows_ignored BIGINT DEFAULT 0;
COMMENT ON COLUMN ingest_runs.rows_ignored IS 'Records the adapter left out on purpose (the reasons are in the ingest summary); not part of the read = inserted + updated + unchanged + rejected balance.';
