-- One row the sidecar rewrites every few seconds (store.Probe): a write that
-- fails says the database cannot take writes (locked, read-only, full), so
-- /ready turns 503 even when no decision is being audited.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
INSERT INTO write_probe (id, at) VALUES (1, 0);
