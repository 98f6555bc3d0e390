-- One row the sidecar rewrites every few seconds (store.Probe): a write that
-- fails says the database cannot take writes (read-only, unreachable, full),
-- so /ready turns 503 even when no decision is being audited.
CREATE TABLE write_probe (
    id INTEGER NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL
) ENGINE=InnoDB;
INSERT INTO write_probe (id, at) VALUES (1, 0);
