-- Who may sign in to the dashboard (issue 20): a name, a role and, for a manager or a viewer,
-- the locations they see (kpis/users.py turns a user into a kpis.scope.Scope). Passwords are
-- kept only as an argon2id hash; a user without one signs in through the practice's identity
-- provider (OpenID Connect), whose email claim is the name. Staff accounts, never patients.
CREATE TABLE users (
    name          VARCHAR PRIMARY KEY CHECK (name = lower(trim(name)) AND length(name) > 0),
    role          VARCHAR NOT NULL CHECK (role IN ('owner', 'manager', 'analyst', 'viewer')),
    locations     VARCHAR[] NOT NULL,     -- a manager's or viewer's location ids; empty for the others
    password_hash VARCHAR,                -- argon2id (PHC string); NULL: identity provider only
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE users IS 'One row per person who may sign in to the dashboard, with their role and locations.';
