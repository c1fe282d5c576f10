-- The results store (serving layer, issue 15): precomputed KPI facts and results that readers
-- answer from, kept in the warehouse so one published snapshot holds raw tables and results
-- consistently (docs/contracts.md, "Results store").
--
-- Everything in schema `serving` is derived from the canonical tables by `clinic-kpis refresh`
-- (kpis/serving/): its tables are created and rebuilt by the refresh from the KPI specs in
-- force, so they are not declared here. Only `serving.meta` is fixed: it says whether the
-- store may answer (its definition fingerprint, the last ingest run it covers, whether
-- anything wrote to the warehouse since) and what the snapshot covers.
CREATE SCHEMA serving;

CREATE TABLE serving.meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);
COMMENT ON TABLE serving.meta IS 'One row per fact about the results store: fingerprint, covered ingest run, staleness, snapshot time, data ends.';

-- A warehouse migrated to this version has no results yet: it answers from the raw engine
-- until the first refresh.
INSERT INTO serving.meta VALUES ('stale', 'true');
