-- Every list is paged in ID order (keyset: id > cursor, LIMIT n). These
-- indexes let a list filtered by owner, status or agent read its page in
-- that order instead of sorting every matching row first.
CREATE INDEX agents_owner_id ON agents (owner_id, id);
CREATE INDEX agents_status_id ON agents (status, id);
CREATE INDEX approvals_status_id ON approvals (status, id);
CREATE INDEX approvals_agent_id ON approvals (agent_id, id);
