-- Agents are owned by external user IDs from the app's own auth: no users table.
-- Timestamps are Unix milliseconds (UTC). IDs sort bytewise (COLLATE "C"), as
-- on SQLite, so cursors and creation order agree across engines.
CREATE TABLE agents (
    id          TEXT COLLATE "C" PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('autonomous', 'delegated', 'service')),
    status      TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    token_hash  TEXT NOT NULL UNIQUE,
    metadata    TEXT NOT NULL DEFAULT '{}',
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX agents_owner_status ON agents (owner_id, status);

CREATE TABLE permissions (
    agent_id    TEXT COLLATE "C" NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    resource    TEXT NOT NULL,
    actions     TEXT NOT NULL,
    constraints TEXT,
    PRIMARY KEY (agent_id, position)
);

CREATE TABLE audit_log (
    id          TEXT COLLATE "C" PRIMARY KEY,
    agent_id    TEXT COLLATE "C" NOT NULL,
    owner_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    arguments   TEXT,
    result      TEXT NOT NULL CHECK (result IN ('allowed', 'denied')),
    code        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    duration_us BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_agent ON audit_log (agent_id, id);
CREATE INDEX audit_owner ON audit_log (owner_id, id);
CREATE INDEX audit_created ON audit_log (created_at);
