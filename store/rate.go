package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RateWindow is the sliding window of maxCallsPerHour.
const RateWindow = time.Hour

// ErrRateLimited is returned when recording a call would exceed its limit.
var ErrRateLimited = errors.New("rate limit reached")

// RateEvent is one allowed call under a maxCallsPerHour permission.
type RateEvent struct {
	AgentID  string
	PermKey  string
	Resource string
	// Limit is the permission's maxCallsPerHour, checked at commit.
	Limit int
}

// CountCalls returns, per permission key, the calls an agent made on a
// resource since the given time.
func (s *Store) CountCalls(ctx context.Context, agentID, resource string, since time.Time) (map[string]int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT perm_key, COUNT(*) FROM rate_events
		WHERE agent_id = ? AND resource = ? AND at > ? GROUP BY perm_key`, agentID, resource, toMillis(since))
	if err != nil {
		return nil, fmt.Errorf("count calls: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, fmt.Errorf("count calls: %w", err)
		}
		counts[key] = n
	}
	return counts, rows.Err()
}

// PruneRateEvents deletes events at or before the given time.
func (s *Store) PruneRateEvents(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `DELETE FROM rate_events WHERE at <= ?`, toMillis(before))
	if err != nil {
		s.writes.failed(err, s.now())
		return 0, fmt.Errorf("prune rate events: %w", err)
	}
	return res.RowsAffected()
}
