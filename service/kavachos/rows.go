package kavachos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The rows of a KavachOS v0.2.1 database the import reads
// (packages/core/src/db/schema.ts), read a page at a time in keyset order,
// so that memory stays flat whatever the size of the tables.

// agentRow is a kavach_agents row with its kavach_permissions rows.
type agentRow struct {
	ID, OwnerID, TenantID, Name, Type, Status, TokenHash, Metadata string
	ExpiresAt                                                      *time.Time
	CreatedAt, UpdatedAt                                           time.Time
	Permissions                                                    []permRow
}

// permRow is a kavach_permissions row: actions and constraints as JSON.
type permRow struct {
	Resource, Actions, Constraints string
}

// delegationRow is a kavach_delegation_chains row: permissions as JSON
// ([{resource, actions}]: KavachOS keeps no constraints there).
type delegationRow struct {
	ID, From, To, Permissions, Status string
	Depth, MaxDepth                   int
	ExpiresAt, CreatedAt              time.Time
}

// approvalRow is a pending kavach_approval_requests row.
type approvalRow struct {
	ID, AgentID, UserID, Action, Resource, Arguments string
	ExpiresAt, CreatedAt                             time.Time
}

// auditRow is a kavach_audit_logs row.
type auditRow struct {
	ID, AgentID, UserID, Action, Resource, Parameters, Result, Reason, IP, UserAgent string
	DurationMS                                                                       int64
	TokensCost                                                                       sql.NullInt64
	Timestamp                                                                        time.Time
}

// required reads a time column that may not be NULL into dst.
func required(v any, dst *time.Time) error {
	t, ok, err := toTime(v)
	if err == nil && !ok {
		err = errors.New("a required time is NULL")
	}
	*dst = t
	return err
}

// optional reads a time column that may be NULL.
func optional(v any) (*time.Time, error) {
	t, ok, err := toTime(v)
	if !ok || err != nil {
		return nil, err
	}
	return &t, nil
}

// agentCursor reads the agents in ID order, each with its permissions:
// two queries, each sorted once, merged as they stream (KavachOS has no
// index on kavach_permissions.agent_id, so a query per page of agents
// would scan the whole table each time). Both sort by the IDs' bytes, so
// the merge can compare them as Go does.
type agentCursor struct {
	agents, perms *sql.Rows
	// next is the permission read but not yet handed out.
	next    *permOf
	permErr error
}

type permOf struct {
	agentID string
	p       permRow
}

// agentCursor opens the cursor; Close it.
func (s *Source) agentCursor(ctx context.Context) (*agentCursor, error) {
	//nolint:rowserrcheck // the cursor checks Err as it reads (Next, advance)
	agents, err := s.query(ctx, `SELECT id, owner_id, tenant_id, name, type, status, token_hash, `+s.text("metadata")+`,
		expires_at, created_at, updated_at FROM kavach_agents ORDER BY `+s.bytes("id"))
	if err != nil {
		return nil, fmt.Errorf("read kavach_agents: %w", err)
	}
	//nolint:rowserrcheck // the cursor checks Err as it reads (advance)
	perms, err := s.query(ctx, `SELECT agent_id, resource, `+s.text("actions")+`, `+s.text("constraints")+`
		FROM kavach_permissions ORDER BY `+s.bytes("agent_id")+`, `+s.storageOrder())
	if err != nil {
		_ = agents.Close() //nolint:sqlclosecheck // on success the cursor owns both (Close)
		return nil, fmt.Errorf("read kavach_permissions: %w", err)
	}
	c := &agentCursor{agents: agents, perms: perms}
	c.advance()
	return c, nil
}

// advance reads the next permission into c.next (nil at the end).
func (c *agentCursor) advance() {
	c.next = nil
	if !c.perms.Next() {
		if err := c.perms.Err(); err != nil {
			c.permErr = fmt.Errorf("read kavach_permissions: %w", err)
		}
		return
	}
	var n permOf
	var constraints sql.NullString
	if err := c.perms.Scan(&n.agentID, &n.p.Resource, &n.p.Actions, &constraints); err != nil {
		c.permErr = fmt.Errorf("read kavach_permissions: %w", err)
		return
	}
	n.p.Constraints = nullString(constraints)
	c.next = &n
}

// Next returns up to limit more agents; none at the end.
func (c *agentCursor) Next(limit int) ([]agentRow, error) {
	var out []agentRow
	for len(out) < limit && c.agents.Next() {
		var a agentRow
		var tenant, meta sql.NullString
		var expires, created, updated any
		if err := c.agents.Scan(&a.ID, &a.OwnerID, &tenant, &a.Name, &a.Type, &a.Status, &a.TokenHash, &meta,
			&expires, &created, &updated); err != nil {
			return nil, fmt.Errorf("read kavach_agents: %w", err)
		}
		var err error
		if a.ExpiresAt, err = optional(expires); err == nil {
			err = errors.Join(required(created, &a.CreatedAt), required(updated, &a.UpdatedAt))
		}
		if err != nil {
			return nil, fmt.Errorf("agent %s: %w", a.ID, err)
		}
		a.TenantID, a.Metadata = nullString(tenant), nullString(meta)
		// Permissions of agents that do not exist (KavachOS's foreign
		// key forbids them) sort before this one: passed over.
		for c.next != nil && c.next.agentID < a.ID {
			c.advance()
		}
		for c.next != nil && c.next.agentID == a.ID {
			a.Permissions = append(a.Permissions, c.next.p)
			c.advance()
		}
		if c.permErr != nil {
			return nil, c.permErr
		}
		out = append(out, a)
	}
	if err := c.agents.Err(); err != nil {
		return nil, fmt.Errorf("read kavach_agents: %w", err)
	}
	return out, nil
}

// Close ends both queries.
func (c *agentCursor) Close() error {
	return errors.Join(c.agents.Close(), c.perms.Close())
}

// permissions calls fn with the permissions of the agents ids, each
// agent's in the order KavachOS reads them.
func (s *Source) permissions(ctx context.Context, ids []any, fn func(agentID string, p permRow)) error {
	rows, err := s.query(ctx, `SELECT agent_id, resource, `+s.text("actions")+`, `+s.text("constraints")+`
		FROM kavach_permissions WHERE agent_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) ORDER BY agent_id, `+s.storageOrder(), ids...)
	if err != nil {
		return fmt.Errorf("read kavach_permissions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var agentID string
		var p permRow
		var constraints sql.NullString
		if err := rows.Scan(&agentID, &p.Resource, &p.Actions, &constraints); err != nil {
			return fmt.Errorf("read kavach_permissions: %w", err)
		}
		p.Constraints = nullString(constraints)
		fn(agentID, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read kavach_permissions: %w", err)
	}
	return nil
}

// maxDelegationDepth is the deepest delegation, 0 when there are none.
func (s *Source) maxDelegationDepth(ctx context.Context) (int, error) {
	var d sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(depth) FROM kavach_delegation_chains`).Scan(&d); err != nil {
		return 0, fmt.Errorf("read kavach_delegation_chains: %w", err)
	}
	return int(d.Int64), nil
}

// delegations returns up to limit delegations of one depth with IDs after
// after, in ID order.
func (s *Source) delegations(ctx context.Context, depth int, after string, limit int) ([]delegationRow, error) {
	rows, err := s.query(ctx, `SELECT id, from_agent_id, to_agent_id, `+s.text("permissions")+`, depth, max_depth, status,
		expires_at, created_at FROM kavach_delegation_chains WHERE depth = ? AND id > ? ORDER BY id LIMIT ?`, depth, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read kavach_delegation_chains: %w", err)
	}
	defer rows.Close()
	var out []delegationRow
	for rows.Next() {
		var d delegationRow
		var expires, created any
		if err := rows.Scan(&d.ID, &d.From, &d.To, &d.Permissions, &d.Depth, &d.MaxDepth, &d.Status, &expires, &created); err != nil {
			return nil, fmt.Errorf("read kavach_delegation_chains: %w", err)
		}
		if err := errors.Join(required(expires, &d.ExpiresAt), required(created, &d.CreatedAt)); err != nil {
			return nil, fmt.Errorf("delegation %s: %w", d.ID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read kavach_delegation_chains: %w", err)
	}
	return out, nil
}

// approvals returns up to limit pending approval requests with IDs after
// after, in ID order.
func (s *Source) approvals(ctx context.Context, after string, limit int) ([]approvalRow, error) {
	rows, err := s.query(ctx, `SELECT id, agent_id, user_id, action, resource, `+s.text("arguments")+`, expires_at, created_at
		FROM kavach_approval_requests WHERE status = 'pending' AND id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read kavach_approval_requests: %w", err)
	}
	defer rows.Close()
	var out []approvalRow
	for rows.Next() {
		var a approvalRow
		var args sql.NullString
		var expires, created any
		if err := rows.Scan(&a.ID, &a.AgentID, &a.UserID, &a.Action, &a.Resource, &args, &expires, &created); err != nil {
			return nil, fmt.Errorf("read kavach_approval_requests: %w", err)
		}
		if err := errors.Join(required(expires, &a.ExpiresAt), required(created, &a.CreatedAt)); err != nil {
			return nil, fmt.Errorf("approval %s: %w", a.ID, err)
		}
		a.Arguments = nullString(args)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read kavach_approval_requests: %w", err)
	}
	return out, nil
}

// auditCursor reads the audit rows in time order (one sorted query:
// KavachOS has no index on timestamp), so that the chain holds them as
// they happened and their IDs, which start with their time, are written
// in order.
type auditCursor struct{ rows *sql.Rows }

func (s *Source) auditCursor(ctx context.Context) (*auditCursor, error) {
	//nolint:rowserrcheck // the cursor checks Err as it reads (Next)
	rows, err := s.query(ctx, `SELECT id, agent_id, user_id, action, resource, `+s.text("parameters")+`, result, reason,
		duration_ms, tokens_cost, ip, user_agent, timestamp FROM kavach_audit_logs ORDER BY timestamp, id`)
	if err != nil {
		return nil, fmt.Errorf("read kavach_audit_logs: %w", err)
	}
	return &auditCursor{rows: rows}, nil
}

// Next returns up to limit more rows; none at the end.
func (c *auditCursor) Next(limit int) ([]auditRow, error) {
	var out []auditRow
	for len(out) < limit && c.rows.Next() {
		var e auditRow
		var params, reason, ip, ua sql.NullString
		var ts any
		if err := c.rows.Scan(&e.ID, &e.AgentID, &e.UserID, &e.Action, &e.Resource, &params, &e.Result, &reason,
			&e.DurationMS, &e.TokensCost, &ip, &ua, &ts); err != nil {
			return nil, fmt.Errorf("read kavach_audit_logs: %w", err)
		}
		if err := required(ts, &e.Timestamp); err != nil {
			return nil, fmt.Errorf("audit row %s: %w", e.ID, err)
		}
		e.Parameters, e.Reason, e.IP, e.UserAgent = nullString(params), nullString(reason), nullString(ip), nullString(ua)
		out = append(out, e)
	}
	if err := c.rows.Err(); err != nil {
		return nil, fmt.Errorf("read kavach_audit_logs: %w", err)
	}
	return out, nil
}

// Close ends the query.
func (c *auditCursor) Close() error { return c.rows.Close() }
