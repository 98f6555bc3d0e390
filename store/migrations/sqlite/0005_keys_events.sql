-- API keys for the app and operators. Only the SHA-256 (hex) of a key is
-- stored; roles is a JSON array of role names. Timestamps are Unix ms.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL DEFAULT '',
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- The audit log holds two kinds of rows: decisions (POST /v1/authorize) and
-- events (a change of state, or a refused API call). Every row names the
-- credential that caused it; changes holds an event's before and after.
ALTER TABLE audit_log ADD COLUMN kind TEXT NOT NULL DEFAULT 'decision';
ALTER TABLE audit_log ADD COLUMN actor_type TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN actor_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN actor_name TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN on_behalf_of TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN changes TEXT;
CREATE INDEX audit_kind ON audit_log (kind, id);

-- Who resolved an approval: the authenticated credential, and the user the
-- app vouched for.
ALTER TABLE approvals ADD COLUMN responder_name TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN on_behalf_of TEXT NOT NULL DEFAULT '';

-- The change feed carries key changes too (revocation reaches every
-- replica's key cache). SQLite cannot alter a CHECK: rebuild the table,
-- keeping the sequence so replicas never see a number twice.
CREATE TABLE changes_new (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('agent', 'delegation', 'approval', 'key')),
    entity_id TEXT NOT NULL,
    at        INTEGER NOT NULL
);
INSERT INTO changes_new (seq, kind, entity_id, at) SELECT seq, kind, entity_id, at FROM changes;
DELETE FROM sqlite_sequence WHERE name = 'changes_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_new', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_new RENAME TO changes;
