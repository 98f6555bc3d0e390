-- SQLite defers indexing audit rows by agent and owner (pending = 1 until
-- they are indexed); here every row is indexed as it is written, so
-- pending is always 0. The column keeps the schemas alike.
ALTER TABLE audit_log ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
