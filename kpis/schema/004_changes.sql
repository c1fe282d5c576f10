-- The practice's log of process changes (issue 16): what it changed, from which day, for which
-- KPIs and where. Append-only: adding, editing and removing a change each write a new version,
-- so every edit is kept with its time and author; the current state of a change is its latest
-- version (a removed change's latest version has removed = true). No PHI: titles and
-- descriptions say what the practice did, never about a patient.
CREATE TABLE change_versions (
    change_id      INTEGER NOT NULL,
    version        INTEGER NOT NULL CHECK (version > 0),
    recorded_at    TIMESTAMPTZ NOT NULL,   -- when this version was written
    recorded_by    VARCHAR,                -- who wrote it (a staff name or role), if given
    effective_date DATE NOT NULL,          -- the local day the change took effect
    title          VARCHAR NOT NULL CHECK (length(trim(title)) > 0),
    description    VARCHAR NOT NULL DEFAULT '',
    kpis           VARCHAR[] NOT NULL,     -- KPI ids the change targets
    scope          VARCHAR[] NOT NULL,     -- 'dimension=value' items, e.g. 'location=EAST'; empty = the practice
    removed        BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (change_id, version)
);
COMMENT ON TABLE change_versions IS 'One row per version of a recorded process change; a change''s latest version is its current state.';
