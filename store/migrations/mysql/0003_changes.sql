-- The change feed: one row per write that alters what the policy sees, in the
-- writing transaction. Writers lock the feed (a row of kavach_locks) before
-- inserting, so AUTO_INCREMENT order is commit order and a replica reading
-- "seq > applied" never skips a change committed late.
CREATE TABLE changes (
    seq       BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind      VARCHAR(16) NOT NULL,
    entity_id VARCHAR(256) NOT NULL,
    at        BIGINT NOT NULL,
    CONSTRAINT changes_kind_check CHECK (kind IN ('agent', 'delegation', 'approval'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
