CREATE TABLE delegations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    from_agent  TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    to_agent    TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    permissions TEXT NOT NULL,
    depth       INTEGER NOT NULL CHECK (depth >= 1),
    max_depth   INTEGER NOT NULL CHECK (max_depth >= depth),
    status      TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX delegations_to ON delegations (to_agent, id);
CREATE INDEX delegations_from ON delegations (from_agent, id);

CREATE TABLE approvals (
    id           TEXT COLLATE "C" PRIMARY KEY,
    agent_id     TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    owner_id     TEXT NOT NULL,
    action       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    arguments    TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    responded_at BIGINT,
    responded_by TEXT NOT NULL DEFAULT '',
    note         TEXT NOT NULL DEFAULT '',
    used_at      BIGINT
);
CREATE INDEX approvals_owner_status ON approvals (owner_id, status, id);
CREATE INDEX approvals_request ON approvals (agent_id, action, resource, status);

CREATE TABLE rate_events (
    agent_id TEXT NOT NULL,
    perm_key TEXT NOT NULL,
    resource TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX rate_events_window ON rate_events (agent_id, resource, perm_key, at);
CREATE INDEX rate_events_at ON rate_events (at);

ALTER TABLE audit_log ADD COLUMN approval_id TEXT NOT NULL DEFAULT '';
