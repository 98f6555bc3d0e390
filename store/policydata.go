package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/kavach-dev/kavach/domain"
)

// The bounded policy data store (engine.CachedData) reads an agent, a token
// or a delegation by key whenever a decision needs one memory does not
// hold: a cold decision should cost those reads, not the parsing of their
// SQL each time. These statements are prepared once on the read pool.

// prepared holds statements prepared on the read pool, by query text.
type prepared struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// stmt returns the statement for query, preparing it on first use.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	if st, ok := s.reads.stmts[query]; ok {
		return st, nil
	}
	st, err := s.r.PrepareContext(ctx, query) //nolint:sqlclosecheck // kept for the store's life, closed by Close
	if err != nil {
		return nil, err
	}
	if s.reads.stmts == nil {
		s.reads.stmts = map[string]*sql.Stmt{}
	}
	s.reads.stmts[query] = st
	return st, nil
}

// closePrepared closes the prepared statements (Close).
func (s *Store) closePrepared() error {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	var err error
	for q, st := range s.reads.stmts {
		err = errors.Join(err, st.Close())
		delete(s.reads.stmts, q)
	}
	return err
}

// queryPrepared runs a prepared read, traced like every statement.
func (s *Store) queryPrepared(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, query) //nolint:sqlclosecheck // the store's, closed by Close
	if err != nil {
		return nil, err
	}
	ctx, span := startStatement(ctx, s.dialect, query)
	rows, err := st.QueryContext(ctx, args...) //nolint:sqlclosecheck // the caller's to close
	endStatement(span, err)
	return rows, err
}

const policyAgentQuery = `SELECT ` + agentSelect + `, p.resource, p.actions, p.constraints
	FROM agents a LEFT JOIN agent_trust t ON t.agent_id = a.id LEFT JOIN permissions p ON p.agent_id = a.id
	WHERE a.id = ? ORDER BY p.position`

// PolicyAgent returns what a decision reads of one agent: the agent with its
// trust, its permissions in order and the IDs of the delegations to it
// (Incoming), or ErrNotFound. Two prepared reads: the agent joined with its
// permissions, and its incoming delegations.
func (s *Store) PolicyAgent(ctx context.Context, id string) (domain.Agent, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.queryPrepared(ctx, policyAgentQuery, id)
	if err != nil {
		return domain.Agent{}, fmt.Errorf("read agent %q: %w", id, err)
	}
	var a *domain.Agent
	err = s.joinedAgents(rows, func(got domain.Agent) error {
		a = &got
		return nil
	})
	if err != nil {
		return domain.Agent{}, fmt.Errorf("read agent %q: %w", id, err)
	}
	if a == nil || a.ID != id {
		// Exactly id: MySQL's utf8mb4_bin ignores trailing spaces.
		return domain.Agent{}, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	in, err := s.queryPrepared(ctx, `SELECT id FROM delegations WHERE to_agent = ? ORDER BY id`, id)
	if err != nil {
		return domain.Agent{}, fmt.Errorf("read delegations of %s: %w", id, err)
	}
	defer in.Close()
	a.Incoming = []string{}
	for in.Next() {
		var d string
		if err := in.Scan(&d); err != nil {
			return domain.Agent{}, fmt.Errorf("read delegations of %s: %w", id, err)
		}
		a.Incoming = append(a.Incoming, d)
	}
	if err := in.Err(); err != nil {
		return domain.Agent{}, fmt.Errorf("read delegations of %s: %w", id, err)
	}
	return *a, nil
}

// AgentIDByTokenHash returns the ID of the agent whose token hashes to
// hash, or ErrNotFound: one prepared read of the token_hash index.
func (s *Store) AgentIDByTokenHash(ctx context.Context, hash string) (string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.queryPrepared(ctx, `SELECT id, token_hash FROM agents WHERE token_hash = ?`, hash)
	if err != nil {
		return "", fmt.Errorf("read agent by token: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("read agent by token: %w", err)
		}
		return "", fmt.Errorf("agent by token: %w", ErrNotFound)
	}
	var id, got string
	if err := rows.Scan(&id, &got); err != nil {
		return "", fmt.Errorf("read agent by token: %w", err)
	}
	if got != hash {
		return "", fmt.Errorf("agent by token: %w", ErrNotFound) // padded, on MySQL
	}
	return id, rows.Err()
}
