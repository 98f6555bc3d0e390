-- Lifecycle events and the webhook outbox. Timestamps are Unix milliseconds (UTC).
-- Both tables take a row per denied decision when authorize.denied is
-- subscribed: they keep as few indexes as their queries need.

-- Every event (agent.created, authorize.denied, …), written in the
-- transaction of the change it reports. seq numbers them in commit order:
-- GET /v1/events resumes after a seq (Last-Event-ID). The newest event is
-- never pruned, so a seq is never handed out twice. id is the webhook-id
-- every endpoint receives it under; data is the payload's "data" (JSON).
CREATE TABLE events (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT COLLATE "C" NOT NULL,
    type       TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    data       TEXT NOT NULL
);

-- One row per event and subscribed endpoint (the outbox), written with the
-- event. A replica delivers a row only while it holds its lease
-- (lease_owner, lease_until), so replicas take turns and each delivery
-- goes out under the event's one id. IDs sort by creation time: settled
-- rows are pruned by ID.
CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    event_seq       BIGINT NOT NULL,
    endpoint        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT NOT NULL,
    lease_until     BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_status     BIGINT,
    last_error      TEXT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (id) WHERE state = 'failed';
