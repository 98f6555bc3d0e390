-- The tamper-evident audit trail (package auditchain). Every row sits in a
-- hash chain: chain_id names the writer's chain, chain_seq the row's
-- position in it (1, 2, …), prev_hash the hash of the row before, hash the
-- row's own over its content and prev_hash. Rows written before this
-- migration are chained at the next start, before anything else is written.
ALTER TABLE audit_log
    ADD COLUMN chain_id VARCHAR(256) NOT NULL DEFAULT '',
    ADD COLUMN chain_seq BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN prev_hash VARCHAR(128) NOT NULL DEFAULT '',
    ADD COLUMN hash VARCHAR(128) NOT NULL DEFAULT '';
-- Not unique: a second row at a position is what verification reports, and
-- rows not yet chained share ('', 0).
CREATE INDEX audit_chain ON audit_log (chain_id, chain_seq, id);

-- Checkpoints vouch for chains' heads: seal (while the writer runs), close
-- (when it stops), purge (retention deleted the rows up to chain_seq;
-- head_hash is the last deleted row's hash). seq orders them across every
-- writer, and mac (an HMAC keyed from the secret, named by key_id; a plain
-- SHA-256 when key_id is empty) covers prev_mac, the mac of seq - 1.
CREATE TABLE audit_checkpoints (
    seq        BIGINT NOT NULL PRIMARY KEY,
    kind       VARCHAR(16) NOT NULL CHECK (kind IN ('seal', 'close', 'purge')),
    chain_id   VARCHAR(256) NOT NULL,
    chain_seq  BIGINT NOT NULL,
    head_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    prev_mac   TEXT NOT NULL,
    mac        TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
