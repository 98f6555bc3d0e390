-- Agents are owned by external user IDs from the app's own auth: no users table.
-- Timestamps are Unix milliseconds (UTC).
CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('autonomous', 'delegated', 'service')),
    status      TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    token_hash  TEXT NOT NULL UNIQUE,
    metadata    TEXT NOT NULL DEFAULT '{}',
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX agents_owner_status ON agents (owner_id, status);

-- One row per permission; delegated permissions will live in their own table
-- keyed by delegation, so own and delegated grants stay distinguishable.
CREATE TABLE permissions (
    agent_id    TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    resource    TEXT NOT NULL,
    actions     TEXT NOT NULL,
    constraints TEXT,
    PRIMARY KEY (agent_id, position)
);

-- Audit rows are never updated or deleted by Kavach. agent_id and owner_id are
-- empty when a decision could not be tied to an agent (unknown token).
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    arguments   TEXT,
    result      TEXT NOT NULL CHECK (result IN ('allowed', 'denied')),
    code        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    duration_us INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX audit_agent ON audit_log (agent_id, id);
CREATE INDEX audit_owner ON audit_log (owner_id, id);
CREATE INDEX audit_created ON audit_log (created_at);
