-- Webhook delivery by cursor. An endpoint's first attempt at each event is
-- made in commit order from a cursor: the seq of the last event it was
-- attempted for. Only an attempt that failed leaves a row in
-- webhook_deliveries (the retries), so a delivered event costs no row
-- beyond its own. One replica at a time follows a cursor, while it holds
-- its lease (lease_owner, lease_until); it advances seq, renewing the
-- lease, in the transaction that inserts the retries of what it attempted.
-- updated_at says when a replica last followed it: pruning ignores a
-- cursor no replica has followed for longer than events.retention.
-- The endpoint is unique by its SHA-256 (endpoint_hash), as in 0011.
CREATE TABLE webhook_cursors (
    endpoint      TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    lease_owner   TEXT NOT NULL,
    lease_until   BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    endpoint_hash BINARY(32) AS (UNHEX(SHA2(endpoint, 256))) STORED,
    UNIQUE KEY webhook_cursors_endpoint (endpoint_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One delivery per event and endpoint: a retry inserted twice (by two
-- replicas that raced on a cursor) is the same row.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq, endpoint_hash);
