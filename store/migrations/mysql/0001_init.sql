-- MySQL 8 / MariaDB 10.11, InnoDB. The same tables as on PostgreSQL, with
-- what MySQL needs: VARCHAR where a column is a key or indexed (TEXT needs
-- a prefix there), MEDIUMTEXT for JSON that may pass 64 KiB, and every
-- string column utf8mb4_bin, so that equality and order are byte-wise as
-- on SQLite (IDs sort as on PostgreSQL's COLLATE "C"). Identifiers take up
-- to 256 characters (the API's limit is 256 bytes). Timestamps are Unix
-- milliseconds (UTC), BIGINT.
CREATE TABLE agents (
    id          VARCHAR(256) NOT NULL PRIMARY KEY,
    owner_id    VARCHAR(256) NOT NULL,
    name        TEXT NOT NULL,
    type        VARCHAR(16) NOT NULL CHECK (type IN ('autonomous', 'delegated', 'service')),
    status      VARCHAR(16) NOT NULL CHECK (status IN ('active', 'revoked')),
    token_hash  VARCHAR(128) NOT NULL UNIQUE,
    metadata    MEDIUMTEXT NOT NULL DEFAULT ('{}'),
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    revoked_at  BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX agents_owner_status ON agents (owner_id, status);

CREATE TABLE permissions (
    agent_id    VARCHAR(256) NOT NULL,
    position    INTEGER NOT NULL,
    resource    TEXT NOT NULL,
    actions     TEXT NOT NULL,
    constraints MEDIUMTEXT,
    PRIMARY KEY (agent_id, position),
    FOREIGN KEY (agent_id) REFERENCES agents (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE audit_log (
    id          VARCHAR(256) NOT NULL PRIMARY KEY,
    agent_id    VARCHAR(256) NOT NULL,
    owner_id    VARCHAR(256) NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    arguments   MEDIUMTEXT,
    result      VARCHAR(16) NOT NULL CHECK (result IN ('allowed', 'denied')),
    code        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    ip          TEXT NOT NULL DEFAULT (''),
    user_agent  TEXT NOT NULL DEFAULT (''),
    duration_us BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX audit_agent ON audit_log (agent_id, id);
CREATE INDEX audit_owner ON audit_log (owner_id, id);
CREATE INDEX audit_created ON audit_log (created_at);

-- MySQL only: the advisory locks (store/dialect_mysql.go). A transaction
-- locks a lock's row, inserting it the first time, until it ends; id is
-- the lock's own (positive) or a hash of a keyed lock's key (negative).
CREATE TABLE kavach_locks (
    id BIGINT NOT NULL PRIMARY KEY
) ENGINE=InnoDB;
