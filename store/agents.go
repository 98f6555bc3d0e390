package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// AgentUpdate lists the fields to change; nil means unchanged. ClearExpiry
// removes the expiry.
type AgentUpdate struct {
	Name        *string
	Permissions *[]domain.Permission
	ExpiresAt   *time.Time
	ClearExpiry bool
	Metadata    *map[string]any
	// MaxActive caps the owner's active agents when the update revives an
	// expired agent; 0 means no cap.
	MaxActive int
	// Check, if set, sees the agent as the update leaves it, inside the
	// transaction: an error rolls the update back (nothing is written, no
	// event) and is returned as is.
	Check func(domain.Agent) error
}

// AgentFilter selects agents; empty fields match all.
type AgentFilter struct {
	OwnerID string
	Status  string
}

const agentColumns = `id, owner_id, name, type, status, token_hash, metadata, expires_at, created_at, updated_at, revoked_at`

// agentSelect reads an agent (agents a) with its suspension and the trust
// the policy sees (agent_trust t, joined by agentFrom).
const agentSelect = `a.id, a.owner_id, a.name, a.type, a.status, a.token_hash, a.metadata, a.expires_at, a.created_at, a.updated_at,
	a.revoked_at, a.suspended_at, t.level_score, t.level, t.level_at`

const agentFrom = ` FROM agents a LEFT JOIN agent_trust t ON t.agent_id = a.id`

// CreateAgent inserts a new agent and its permissions. When maxActive > 0 and
// the owner already has that many active agents, it returns ErrLimitReached;
// the count and the insert share one transaction.
func (s *Store) CreateAgent(ctx context.Context, a domain.Agent, maxActive int) (domain.Agent, error) {
	now := s.now()
	if !a.CreatedAt.IsZero() {
		// The caller derived other times (the default expiry) from this one.
		now = a.CreatedAt
	}
	a.ID = s.ids.next("agt_", now)
	a.Status = domain.StatusActive
	a.CreatedAt, a.UpdatedAt = now.UTC().Truncate(time.Millisecond), now.UTC().Truncate(time.Millisecond)
	if a.Metadata == nil {
		a.Metadata = map[string]any{}
	}
	if a.ExpiresAt != nil {
		// Stored in milliseconds: return what a later read returns.
		t := a.ExpiresAt.UTC().Truncate(time.Millisecond)
		a.ExpiresAt = &t
	}
	if a.Permissions == nil {
		a.Permissions = []domain.Permission{}
	}
	meta, err := json.Marshal(a.Metadata)
	if err != nil {
		return domain.Agent{}, fmt.Errorf("encode metadata: %w", err)
	}
	err = s.withTx(ctx, func(tx *txn) error {
		if maxActive > 0 {
			if err := s.checkQuota(ctx, tx, a.OwnerID, maxActive, now); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (`+agentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
			a.ID, a.OwnerID, a.Name, a.Type, a.Status, a.TokenHash, string(meta),
			nullMillis(a.ExpiresAt), toMillis(a.CreatedAt), toMillis(a.UpdatedAt))
		if err != nil {
			if s.dialect.isUniqueViolation(err) {
				return fmt.Errorf("insert agent: %w", ErrConflict)
			}
			return fmt.Errorf("insert agent: %w", err)
		}
		if err := insertPermissions(ctx, tx, a.ID, a.Permissions); err != nil {
			return err
		}
		if err := s.insertEvent(ctx, tx, Event{Action: "agent.create", Target: a.ID, AgentID: a.ID, OwnerID: a.OwnerID,
			Reason: "agent created", Changes: map[string]any{"after": agentFields(a)}}); err != nil {
			return err
		}
		return s.recordChange(ctx, tx, ChangeAgent, a.ID)
	})
	if err != nil {
		return domain.Agent{}, err
	}
	return a, nil
}

const permissionInsert = `INSERT INTO permissions (agent_id, position, resource, actions, constraints) VALUES (?, ?, ?, ?, ?)`

func insertPermissions(ctx context.Context, tx *txn, agentID string, perms []domain.Permission) error {
	stmt, err := tx.PrepareContext(ctx, permissionInsert)
	if err != nil {
		return fmt.Errorf("prepare permission insert: %w", err)
	}
	defer stmt.Close()
	return insertPermissionsWith(ctx, stmt, agentID, perms)
}

// insertPermissionsWith writes perms with stmt, a prepared permissionInsert.
func insertPermissionsWith(ctx context.Context, stmt *sql.Stmt, agentID string, perms []domain.Permission) error {
	for i, p := range perms {
		actions, err := json.Marshal(p.Actions)
		if err != nil {
			return fmt.Errorf("encode actions: %w", err)
		}
		var constraints sql.NullString
		if !p.Constraints.IsZero() {
			b, err := json.Marshal(p.Constraints)
			if err != nil {
				return fmt.Errorf("encode constraints: %w", err)
			}
			constraints = sql.NullString{String: string(b), Valid: true}
		}
		if _, err := stmt.ExecContext(ctx, agentID, i, p.Resource, string(actions), constraints); err != nil {
			return fmt.Errorf("insert permission: %w", err)
		}
	}
	return nil
}

// GetAgent returns the agent with its permissions, or ErrNotFound.
func (s *Store) GetAgent(ctx context.Context, id string) (domain.Agent, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.getAgent(ctx, s.r, id)
}

// AgentByTokenHash returns the agent whose token hashes to hash (without
// permissions), or ErrNotFound.
func (s *Store) AgentByTokenHash(ctx context.Context, hash string) (domain.Agent, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	a, err := s.scanAgent(s.r.QueryRowContext(ctx, `SELECT `+agentSelect+agentFrom+` WHERE a.token_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Agent{}, fmt.Errorf("agent by token: %w", ErrNotFound)
	}
	if err != nil {
		return domain.Agent{}, fmt.Errorf("read agent by token: %w", err)
	}
	return a, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) getAgent(ctx context.Context, q querier, id string) (domain.Agent, error) {
	a, err := s.scanAgent(q.QueryRowContext(ctx, `SELECT `+agentSelect+agentFrom+` WHERE a.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) || err == nil && a.ID != id { // exactly id: MySQL's utf8mb4_bin ignores trailing spaces
		return domain.Agent{}, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return domain.Agent{}, fmt.Errorf("read agent %q: %w", id, err)
	}
	perms, err := s.permissionsOf(ctx, q, id)
	if err != nil {
		return domain.Agent{}, err
	}
	a.Permissions = perms
	if a.Incoming, err = incoming(ctx, q, id); err != nil {
		return domain.Agent{}, err
	}
	return a, nil
}

func (s *Store) permissionsOf(ctx context.Context, q querier, agentID string) ([]domain.Permission, error) {
	rows, err := q.QueryContext(ctx, `SELECT resource, actions, constraints FROM permissions WHERE agent_id = ? ORDER BY position`, agentID)
	if err != nil {
		return nil, fmt.Errorf("read permissions: %w", err)
	}
	defer rows.Close()
	perms := []domain.Permission{}
	for rows.Next() {
		p, err := scanPermission(rows)
		if err != nil {
			return nil, err
		}
		perms = append(perms, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read permissions: %w", err)
	}
	return perms, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanPermission(row scanner) (domain.Permission, error) {
	var resource, actions string
	var constraints sql.NullString
	if err := row.Scan(&resource, &actions, &constraints); err != nil {
		return domain.Permission{}, fmt.Errorf("read permission: %w", err)
	}
	return decodePermission(resource, actions, constraints)
}

func decodePermission(resource, actions string, constraints sql.NullString) (domain.Permission, error) {
	p := domain.Permission{Resource: resource}
	if err := json.Unmarshal([]byte(actions), &p.Actions); err != nil {
		return domain.Permission{}, fmt.Errorf("decode actions: %w", err)
	}
	if constraints.Valid {
		if err := json.Unmarshal([]byte(constraints.String), &p.Constraints); err != nil {
			return domain.Permission{}, fmt.Errorf("decode constraints: %w", err)
		}
	}
	return p, nil
}

// agentRow holds the columns of agentSelect, in its order.
type agentRow struct {
	id, owner, name, typ, status, hash, meta string
	expires, revoked, suspended              sql.NullInt64
	created, updated                         int64
	trustScore, trustAt                      sql.NullInt64
	trustLevel                               sql.NullString
}

func (r *agentRow) dest() []any {
	return []any{&r.id, &r.owner, &r.name, &r.typ, &r.status, &r.hash, &r.meta,
		&r.expires, &r.created, &r.updated, &r.revoked, &r.suspended, &r.trustScore, &r.trustLevel, &r.trustAt}
}

func (s *Store) scanAgent(row scanner) (domain.Agent, error) {
	var r agentRow
	if err := row.Scan(r.dest()...); err != nil {
		return domain.Agent{}, err
	}
	return s.toAgent(r)
}

func (s *Store) toAgent(r agentRow) (domain.Agent, error) {
	a := domain.Agent{ID: r.id, OwnerID: r.owner, Name: r.name, Type: r.typ, Status: r.status, TokenHash: r.hash}
	if err := json.Unmarshal([]byte(r.meta), &a.Metadata); err != nil {
		return domain.Agent{}, fmt.Errorf("decode metadata of %s: %w", a.ID, err)
	}
	a.ExpiresAt, a.RevokedAt = timePtr(r.expires), timePtr(r.revoked)
	a.CreatedAt, a.UpdatedAt = fromMillis(r.created), fromMillis(r.updated)
	switch {
	case a.Status != domain.StatusActive:
	case a.ExpiresAt != nil && !s.now().Before(*a.ExpiresAt):
		a.Status = domain.StatusExpired
	case r.suspended.Valid:
		a.Status = domain.StatusSuspended
	}
	// The trust the policy sees: as of the last change of level, or the
	// initial score's level when none was ever computed.
	if r.trustLevel.Valid {
		a.Trust = domain.Trust{Score: int(r.trustScore.Int64), Level: r.trustLevel.String, ComputedAt: fromMillis(r.trustAt.Int64)}
	} else {
		a.Trust = domain.Trust{Score: domain.InitialTrustScore, Level: s.thresholds.Level(domain.InitialTrustScore), ComputedAt: a.CreatedAt}
	}
	return a, nil
}

// ListAgents returns one page of matching agents, oldest first (in ID
// order), with their permissions, and the cursor of the next page ("" when
// none). The page is cut in SQL, before the join with permissions.
func (s *Store) ListAgents(ctx context.Context, f AgentFilter, p Page) ([]domain.Agent, string, error) {
	if err := p.check("list agents"); err != nil {
		return nil, "", err
	}
	var where []string
	var args []any
	if f.OwnerID != "" {
		where = append(where, "a.owner_id = ?")
		args = append(args, f.OwnerID)
	}
	now := toMillis(s.now())
	switch f.Status {
	case "":
	case domain.StatusActive:
		where = append(where, "a.status = 'active' AND (a.expires_at IS NULL OR a.expires_at > ?) AND a.suspended_at IS NULL")
		args = append(args, now)
	case domain.StatusSuspended:
		where = append(where, "a.status = 'active' AND (a.expires_at IS NULL OR a.expires_at > ?) AND a.suspended_at IS NOT NULL")
		args = append(args, now)
	case domain.StatusExpired:
		where = append(where, "a.status = 'active' AND a.expires_at <= ?")
		args = append(args, now)
	case domain.StatusRevoked:
		where = append(where, "a.status = 'revoked'")
	default:
		return nil, "", fmt.Errorf("unknown status %q", f.Status)
	}
	if p.Cursor != "" {
		where = append(where, "a.id > ?")
		args = append(args, p.Cursor)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	src := `(SELECT ` + agentColumns + `, suspended_at FROM agents a` + cond + ` ORDER BY a.id LIMIT ?)`
	agents := []domain.Agent{}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := s.scanAgents(ctx, src, append(args, p.Limit+1), func(a domain.Agent) error {
		agents = append(agents, a)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	agents, next := cutPage(agents, p.Limit, func(a domain.Agent) string { return a.ID })
	return agents, next, nil
}

// EachAgent calls fn for every agent, with permissions, in ID order. One
// ordered join is streamed, so loading all agents is one scan, not one query
// per agent.
func (s *Store) EachAgent(ctx context.Context, fn func(domain.Agent) error) error {
	ctx, progress, done := s.withProgress(ctx)
	return done(s.scanAgents(ctx, "agents", nil, func(a domain.Agent) error {
		progress()
		return fn(a)
	}))
}

// scanAgents streams the agents of src (a table, or a subquery of agents
// rows) joined with their permissions, in ID order.
func (s *Store) scanAgents(ctx context.Context, src string, args []any, fn func(domain.Agent) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+agentSelect+`, p.resource, p.actions, p.constraints
		FROM `+src+` a LEFT JOIN agent_trust t ON t.agent_id = a.id LEFT JOIN permissions p ON p.agent_id = a.id
		ORDER BY a.id, p.position`, args...)
	if err != nil {
		return fmt.Errorf("list agents: %w", err)
	}
	if err := s.joinedAgents(rows, fn); err != nil {
		return fmt.Errorf("list agents: %w", err)
	}
	return nil
}

// joinedAgents reads rows of agentSelect joined with the permission
// columns (resource, actions, constraints), ordered by agent and position,
// calling fn for each agent with its permissions; it closes rows.
func (s *Store) joinedAgents(rows *sql.Rows, fn func(domain.Agent) error) error {
	defer rows.Close()
	var cur *domain.Agent
	for rows.Next() {
		var r agentRow
		var resource, actions, constraints sql.NullString
		if err := rows.Scan(append(r.dest(), &resource, &actions, &constraints)...); err != nil {
			return err
		}
		if cur == nil || cur.ID != r.id {
			if cur != nil {
				if err := fn(*cur); err != nil {
					return err
				}
			}
			a, err := s.toAgent(r)
			if err != nil {
				return err
			}
			a.Permissions = []domain.Permission{}
			cur = &a
		}
		if resource.Valid {
			p, err := decodePermission(resource.String, actions.String, constraints)
			if err != nil {
				return err
			}
			cur.Permissions = append(cur.Permissions, p)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if cur != nil {
		return fn(*cur)
	}
	return nil
}

// UpdateAgent changes the given fields of an active (or expired) agent.
// Revoked agents are final: ErrRevoked.
func (s *Store) UpdateAgent(ctx context.Context, id string, u AgentUpdate) (domain.Agent, error) {
	var out domain.Agent
	err := s.withTx(ctx, func(tx *txn) error {
		if err := s.lockRow(ctx, tx, "agents", "id", id); err != nil {
			return err
		}
		a, err := s.getAgent(ctx, tx, id)
		if err != nil {
			return err
		}
		if a.Status == domain.StatusRevoked {
			return fmt.Errorf("agent %q: %w", id, ErrRevoked)
		}
		before := agentFields(a)
		if u.Name != nil {
			a.Name = *u.Name
		}
		wasExpired := a.Status == domain.StatusExpired
		if u.ClearExpiry {
			a.ExpiresAt = nil
		} else if u.ExpiresAt != nil {
			t := u.ExpiresAt.UTC().Truncate(time.Millisecond)
			a.ExpiresAt = &t
		}
		now := s.now()
		if wasExpired && u.MaxActive > 0 && (a.ExpiresAt == nil || a.ExpiresAt.After(now)) {
			// Reviving an expired agent takes a slot like creating one.
			if err := s.checkQuota(ctx, tx, a.OwnerID, u.MaxActive, now); err != nil {
				return err
			}
		}
		if u.Metadata != nil {
			a.Metadata = *u.Metadata
		}
		a.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
		meta, err := json.Marshal(a.Metadata)
		if err != nil {
			return fmt.Errorf("encode metadata: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE agents SET name = ?, expires_at = ?, metadata = ?, updated_at = ? WHERE id = ?`,
			a.Name, nullMillis(a.ExpiresAt), string(meta), toMillis(a.UpdatedAt), id)
		if err != nil {
			return fmt.Errorf("update agent: %w", err)
		}
		if u.Permissions != nil {
			if _, err := tx.ExecContext(ctx, `DELETE FROM permissions WHERE agent_id = ?`, id); err != nil {
				return fmt.Errorf("replace permissions: %w", err)
			}
			if err := insertPermissions(ctx, tx, id, *u.Permissions); err != nil {
				return err
			}
		}
		if err := s.recordChange(ctx, tx, ChangeAgent, id); err != nil {
			return err
		}
		if out, err = s.getAgent(ctx, tx, id); err != nil {
			return err
		}
		if u.Check != nil {
			if err := u.Check(out); err != nil {
				return err
			}
		}
		was, is := changedFields(before, agentFields(out))
		return s.insertEvent(ctx, tx, Event{Action: "agent.update", Target: id, AgentID: id, OwnerID: out.OwnerID,
			Reason: "agent updated", Changes: map[string]any{"before": was, "after": is}})
	})
	return out, err
}

// agentFields are the parts of an agent an audit event shows: never the
// token hash.
func agentFields(a domain.Agent) map[string]any {
	return map[string]any{"name": a.Name, "ownerId": a.OwnerID, "type": a.Type, "status": a.Status,
		"permissions": a.Permissions, "metadata": a.Metadata, "expiresAt": api.NewTimePtr(a.ExpiresAt)}
}

// changedFields keeps, of two snapshots, the fields that differ.
func changedFields(before, after map[string]any) (map[string]any, map[string]any) {
	was, now := map[string]any{}, map[string]any{}
	for k, v := range after {
		b, _ := json.Marshal(before[k])
		n, _ := json.Marshal(v)
		if string(b) != string(n) {
			was[k], now[k] = before[k], v
		}
	}
	return was, now
}

// RotateToken replaces the agent's token hash; the old token stops working
// as soon as the caller syncs the change. Revoked agents: ErrRevoked.
func (s *Store) RotateToken(ctx context.Context, id, tokenHash string) (domain.Agent, error) {
	return s.setStatus(ctx, id, func(tx *txn, a domain.Agent) error {
		if a.Status == domain.StatusRevoked {
			return fmt.Errorf("agent %q: %w", id, ErrRevoked)
		}
		if err := s.insertEvent(ctx, tx, Event{Action: "agent.rotate", Target: id, AgentID: id, OwnerID: a.OwnerID,
			Reason: "token rotated; the old token stops working"}); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE agents SET token_hash = ?, updated_at = ? WHERE id = ?`,
			tokenHash, toMillis(s.now()), id)
		if err != nil {
			if s.dialect.isUniqueViolation(err) {
				return fmt.Errorf("rotate token: %w", ErrConflict)
			}
			return fmt.Errorf("rotate token: %w", err)
		}
		return nil
	})
}

// RevokeAgent marks the agent revoked, permanently. The row stays for audit.
// Revoking a revoked agent changes nothing.
func (s *Store) RevokeAgent(ctx context.Context, id string) (domain.Agent, error) {
	return s.setStatus(ctx, id, func(tx *txn, a domain.Agent) error {
		if a.Status == domain.StatusRevoked {
			return nil
		}
		if err := s.insertEvent(ctx, tx, Event{Action: "agent.revoke", Target: id, AgentID: id, OwnerID: a.OwnerID,
			Reason: "agent revoked", Changes: map[string]any{"before": map[string]any{"status": a.Status},
				"after": map[string]any{"status": domain.StatusRevoked}}}); err != nil {
			return err
		}
		now := toMillis(s.now())
		_, err := tx.ExecContext(ctx, `UPDATE agents SET status = 'revoked', revoked_at = ?, updated_at = ? WHERE id = ?`, now, now, id)
		if err != nil {
			return fmt.Errorf("revoke agent: %w", err)
		}
		return nil
	})
}

func (s *Store) setStatus(ctx context.Context, id string, change func(*txn, domain.Agent) error) (domain.Agent, error) {
	var out domain.Agent
	err := s.withTx(ctx, func(tx *txn) error {
		if err := s.lockRow(ctx, tx, "agents", "id", id); err != nil {
			return err
		}
		a, err := s.getAgent(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := change(tx, a); err != nil {
			return err
		}
		if err := s.recordChange(ctx, tx, ChangeAgent, id); err != nil {
			return err
		}
		out, err = s.getAgent(ctx, tx, id)
		return err
	})
	return out, err
}

// checkQuota fails with ErrLimitReached when the owner already has limit
// active agents. Replicas writing for one owner at once count in turn.
func (s *Store) checkQuota(ctx context.Context, tx *txn, owner string, limit int, now time.Time) error {
	if err := s.lockKey(ctx, tx, lockOwnerQuota, owner); err != nil {
		return err
	}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents
		WHERE owner_id = ? AND status = 'active' AND (expires_at IS NULL OR expires_at > ?)`,
		owner, toMillis(now)).Scan(&n)
	if err != nil {
		return fmt.Errorf("count agents: %w", err)
	}
	if n >= limit {
		return fmt.Errorf("owner %q has %d active agents (max %d): %w", owner, n, limit, ErrLimitReached)
	}
	return nil
}
