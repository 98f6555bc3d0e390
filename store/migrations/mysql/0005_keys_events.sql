-- API keys for the app and operators. Only the SHA-256 (hex) of a key is
-- stored; roles is a JSON array of role names. Timestamps are Unix ms.
CREATE TABLE api_keys (
    id          VARCHAR(256) NOT NULL PRIMARY KEY,
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,
    key_hash    VARCHAR(128) NOT NULL UNIQUE,
    created_by  TEXT NOT NULL DEFAULT (''),
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The audit log holds two kinds of rows: decisions (POST /v1/authorize) and
-- events (a change of state, or a refused API call). Every row names the
-- credential that caused it; changes holds an event's before and after.
ALTER TABLE audit_log
    ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'decision',
    ADD COLUMN actor_type TEXT NOT NULL DEFAULT (''),
    ADD COLUMN actor_id TEXT NOT NULL DEFAULT (''),
    ADD COLUMN actor_name TEXT NOT NULL DEFAULT (''),
    ADD COLUMN on_behalf_of TEXT NOT NULL DEFAULT (''),
    ADD COLUMN changes MEDIUMTEXT;
CREATE INDEX audit_kind ON audit_log (kind, id);

-- Who resolved an approval: the authenticated credential, and the user the
-- app vouched for.
ALTER TABLE approvals
    ADD COLUMN responder_name TEXT NOT NULL DEFAULT (''),
    ADD COLUMN on_behalf_of TEXT NOT NULL DEFAULT ('');

-- The change feed carries key changes too (revocation reaches every
-- replica's key cache).
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check CHECK (kind IN ('agent', 'delegation', 'approval', 'key'));
