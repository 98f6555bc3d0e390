-- Lifecycle events and the webhook outbox. Timestamps are Unix milliseconds (UTC).
-- Both tables take a row per denied decision when authorize.denied is
-- subscribed: they keep as few indexes as their queries need.

-- Every event (agent.created, authorize.denied, …), written in the
-- transaction of the change it reports. seq numbers them in commit order
-- (AUTO_INCREMENT under the change feed's lock): GET /v1/events resumes
-- after a seq (Last-Event-ID). The newest event is never pruned, so a seq
-- is never handed out twice. id is the webhook-id every endpoint receives
-- it under; data is the payload's "data" (JSON).
CREATE TABLE events (
    seq        BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id         VARCHAR(256) NOT NULL,
    type       VARCHAR(64) NOT NULL,
    agent_id   VARCHAR(256) NOT NULL,
    created_at BIGINT NOT NULL,
    data       MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per event and subscribed endpoint (the outbox), written with the
-- event. A replica delivers a row only while it holds its lease
-- (lease_owner, lease_until), so replicas take turns and each delivery
-- goes out under the event's one id. IDs sort by creation time: settled
-- rows are pruned by ID. An endpoint is a URL of any length: what is
-- indexed of it is its SHA-256 (endpoint_hash).
CREATE TABLE webhook_deliveries (
    id              VARCHAR(256) NOT NULL PRIMARY KEY,
    event_seq       BIGINT NOT NULL,
    endpoint        TEXT NOT NULL,
    state           VARCHAR(16) NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT NOT NULL,
    lease_until     BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_status     BIGINT,
    last_error      TEXT NOT NULL,
    delivered_at    BIGINT,
    endpoint_hash   BINARY(32) AS (UNHEX(SHA2(endpoint, 256))) STORED
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- MySQL has no partial index: the state leads instead of a WHERE.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (state, id);
