-- The change feed: one row per write that alters what the policy sees, in the
-- writing transaction. SQLite has one writer, so sequence order is commit order.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('agent', 'delegation', 'approval')),
    entity_id TEXT NOT NULL,
    at        INTEGER NOT NULL
);
