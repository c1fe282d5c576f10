-- record_versions again, without its PRIMARY KEY: DuckDB keeps the key index (an ART) of the
-- rows a transaction adds in memory until it commits, and cannot spill it. A file of 6.8 M FHIR
-- Appointments added ~520 MB of it to the 1 GB ingest limit (issue 22). The loader keeps one
-- row per (table_name, writer, record_key) itself: it joins the rows it stages with this table
-- (`_held`) and inserts only the keys it did not find, once each.
CREATE TABLE record_versions_008 (
    table_name    VARCHAR NOT NULL,
    writer        VARCHAR NOT NULL,   -- the kind of record that owns the columns (a table has several, e.g. a visit and its chart note)
    record_key    VARCHAR NOT NULL,   -- the row's primary key values, joined by U+001F; one row per (table_name, writer, record_key)
    version_at    TIMESTAMPTZ NOT NULL,  -- when the source last changed the record (FHIR meta.lastUpdated, the file's own date)
    ingest_run_id BIGINT
);
INSERT INTO record_versions_008 BY NAME SELECT * FROM record_versions;
DROP TABLE record_versions;
ALTER TABLE record_versions_008 RENAME TO record_versions;
COMMENT ON TABLE record_versions IS 'One row per record whose source says when it last changed (one per table_name, writer, record_key, kept by the loader): an older version loaded later is stale and kept out.';
