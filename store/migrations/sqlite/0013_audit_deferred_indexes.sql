-- The audit rows the group commit writes join the indexes by agent and by
-- owner later, in bulk (pending = 1 until then; store/auditindex.go): a
-- batch's rows name many agents, so indexing them at once dirtied one page
-- of each index per agent in every commit, which cost the sidecar a third
-- of its CPU (docs/performance.md). The two indexes hold the rows no
-- longer pending; audit_pending finds the others, the newest few: every
-- row not exactly 0 (a row set to 2, say, is pending, never hidden).
ALTER TABLE audit_log ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
DROP INDEX audit_agent;
DROP INDEX audit_owner;
CREATE INDEX audit_agent ON audit_log (agent_id, id) WHERE pending = 0;
CREATE INDEX audit_owner ON audit_log (owner_id, id) WHERE pending = 0;
CREATE INDEX audit_pending ON audit_log (id) WHERE pending <> 0;
