CREATE TABLE delegations (
    id          VARCHAR(256) NOT NULL PRIMARY KEY,
    from_agent  VARCHAR(256) NOT NULL,
    to_agent    VARCHAR(256) NOT NULL,
    permissions MEDIUMTEXT NOT NULL,
    depth       INTEGER NOT NULL CHECK (depth >= 1),
    max_depth   INTEGER NOT NULL,
    status      VARCHAR(16) NOT NULL CHECK (status IN ('active', 'revoked')),
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    CHECK (max_depth >= depth),
    FOREIGN KEY (from_agent) REFERENCES agents (id),
    FOREIGN KEY (to_agent) REFERENCES agents (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX delegations_to ON delegations (to_agent, id);
CREATE INDEX delegations_from ON delegations (from_agent, id);

CREATE TABLE approvals (
    id           VARCHAR(256) NOT NULL PRIMARY KEY,
    agent_id     VARCHAR(256) NOT NULL,
    owner_id     VARCHAR(256) NOT NULL,
    action       VARCHAR(128) NOT NULL,
    resource     VARCHAR(1024) NOT NULL,
    arguments    MEDIUMTEXT,
    status       VARCHAR(16) NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    responded_at BIGINT,
    responded_by TEXT NOT NULL DEFAULT (''),
    note         TEXT NOT NULL DEFAULT (''),
    used_at      BIGINT,
    FOREIGN KEY (agent_id) REFERENCES agents (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX approvals_owner_status ON approvals (owner_id, status, id);
-- A resource takes up to 1024 bytes, more than an index key holds: the
-- index keeps its first 255 characters, and the rows found are compared
-- whole.
CREATE INDEX approvals_request ON approvals (agent_id, action, resource(255), status);

CREATE TABLE rate_events (
    agent_id VARCHAR(256) NOT NULL,
    perm_key TEXT NOT NULL,
    resource VARCHAR(1024) NOT NULL,
    at       BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX rate_events_window ON rate_events (agent_id, resource(255), perm_key(255), at);
CREATE INDEX rate_events_at ON rate_events (at);

ALTER TABLE audit_log ADD COLUMN approval_id VARCHAR(256) NOT NULL DEFAULT '';
