-- Delegations: the granted permissions, with the chain each one hangs from and
-- the constraints it inherits, are stored as one JSON document: they never
-- change after creation. status is 'active' or 'revoked'; expiry is derived.
CREATE TABLE delegations (
    id          TEXT PRIMARY KEY,
    from_agent  TEXT NOT NULL REFERENCES agents (id),
    to_agent    TEXT NOT NULL REFERENCES agents (id),
    permissions TEXT NOT NULL,
    depth       INTEGER NOT NULL CHECK (depth >= 1),
    max_depth   INTEGER NOT NULL CHECK (max_depth >= depth),
    status      TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX delegations_to ON delegations (to_agent, id);
CREATE INDEX delegations_from ON delegations (from_agent, id);

-- Human approval requests. 'used' marks an approval consumed by the one call
-- it allowed; expiry is derived from expires_at.
CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL REFERENCES agents (id),
    owner_id     TEXT NOT NULL,
    action       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    arguments    TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    responded_at INTEGER,
    responded_by TEXT NOT NULL DEFAULT '',
    note         TEXT NOT NULL DEFAULT '',
    used_at      INTEGER
);
CREATE INDEX approvals_owner_status ON approvals (owner_id, status, id);
CREATE INDEX approvals_request ON approvals (agent_id, action, resource, status);

-- Allowed calls under a maxCallsPerHour permission, for the sliding window.
-- Rows older than an hour are deleted by a janitor.
CREATE TABLE rate_events (
    agent_id TEXT NOT NULL,
    perm_key TEXT NOT NULL,
    resource TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX rate_events_window ON rate_events (agent_id, resource, perm_key, at);
CREATE INDEX rate_events_at ON rate_events (at);

ALTER TABLE audit_log ADD COLUMN approval_id TEXT NOT NULL DEFAULT '';
