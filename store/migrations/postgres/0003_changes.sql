-- The change feed: one row per write that alters what the policy sees, in the
-- writing transaction. Writers take an advisory lock before inserting, so
-- sequence order is commit order and a replica reading "seq > applied" never
-- skips a change committed late.
CREATE TABLE changes (
    seq       BIGSERIAL PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('agent', 'delegation', 'approval')),
    entity_id TEXT NOT NULL,
    at        BIGINT NOT NULL
);
