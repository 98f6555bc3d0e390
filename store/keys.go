package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// ChangeKey is the change-feed kind of an API key, so every replica drops
// a revoked key from its cache.
const ChangeKey = "key"

// lockKeys serialises key bootstrap across replicas.
const lockKeys = 7400003

const keyColumns = `id, name, roles, key_hash, created_by, expires_at, created_at, revoked_at`

// CreateKey stores a new key; its ID and creation time are set here and
// the creator is the caller ctx carries.
func (s *Store) CreateKey(ctx context.Context, k domain.APIKey) (domain.APIKey, error) {
	var out domain.APIKey
	err := s.withTx(ctx, func(tx *txn) error {
		var err error
		out, err = s.insertKey(ctx, tx, k)
		return err
	})
	return out, err
}

// BootstrapKey stores k only if the database holds no key at all, and
// reports whether it did; replicas starting at once create one between them.
func (s *Store) BootstrapKey(ctx context.Context, k domain.APIKey) (domain.APIKey, bool, error) {
	var out domain.APIKey
	created := false
	err := s.withTx(ctx, func(tx *txn) error {
		if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockKeys)); err != nil {
			return fmt.Errorf("lock keys: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&n); err != nil {
			return fmt.Errorf("count keys: %w", err)
		}
		if n > 0 {
			return nil
		}
		var err error
		out, err = s.insertKey(ctx, tx, k)
		created = err == nil
		return err
	})
	return out, created, err
}

func (s *Store) insertKey(ctx context.Context, tx *txn, k domain.APIKey) (domain.APIKey, error) {
	now := s.now()
	k.ID = s.ids.next("key_", now)
	k.CreatedAt = now.UTC().Truncate(time.Millisecond)
	k.CreatedBy = ActorFrom(ctx).ID
	if k.ExpiresAt != nil {
		t := k.ExpiresAt.UTC().Truncate(time.Millisecond)
		k.ExpiresAt = &t
	}
	if k.Roles == nil {
		k.Roles = []string{}
	}
	k.Status = domain.StatusActive
	roles, err := json.Marshal(k.Roles)
	if err != nil {
		return domain.APIKey{}, fmt.Errorf("encode roles: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
		k.ID, k.Name, string(roles), k.Hash, k.CreatedBy, nullMillis(k.ExpiresAt), toMillis(k.CreatedAt))
	if err != nil {
		if s.dialect.isUniqueViolation(err) {
			return domain.APIKey{}, fmt.Errorf("insert key: %w", ErrConflict)
		}
		return domain.APIKey{}, fmt.Errorf("insert key: %w", err)
	}
	if err := s.insertEvent(ctx, tx, Event{Action: "key.create", Target: k.ID, Reason: "API key " + k.Name + " created",
		Changes: map[string]any{"after": map[string]any{"name": k.Name, "roles": k.Roles, "expiresAt": api.NewTimePtr(k.ExpiresAt)}}}); err != nil {
		return domain.APIKey{}, err
	}
	if err := s.recordChange(ctx, tx, ChangeKey, k.ID); err != nil {
		return domain.APIKey{}, err
	}
	return k, nil
}

// GetKey returns one key, or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (domain.APIKey, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.getKey(ctx, s.r, `id = ?`, id)
}

// KeyByHash returns the key whose secret hashes to hash, or ErrNotFound.
func (s *Store) KeyByHash(ctx context.Context, hash string) (domain.APIKey, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.getKey(ctx, s.r, `key_hash = ?`, hash)
}

func (s *Store) getKey(ctx context.Context, q querier, cond string, arg any) (domain.APIKey, error) {
	k, err := s.scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE `+cond, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.APIKey{}, fmt.Errorf("key: %w", ErrNotFound)
	}
	return k, err
}

// ListKeys returns one page of keys, oldest first (in ID order), and the
// cursor of the next page ("" when none).
func (s *Store) ListKeys(ctx context.Context, p Page) ([]domain.APIKey, string, error) {
	if err := p.check("list keys"); err != nil {
		return nil, "", err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	keys := []domain.APIKey{}
	err := s.scanKeys(ctx, `WHERE id > ? ORDER BY id LIMIT ?`, []any{p.Cursor, p.Limit + 1}, func(k domain.APIKey) error {
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	keys, next := cutPage(keys, p.Limit, func(k domain.APIKey) string { return k.ID })
	return keys, next, nil
}

// EachKey calls fn for every key, in ID order (the key cache loads them
// all).
func (s *Store) EachKey(ctx context.Context, fn func(domain.APIKey) error) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.scanKeys(ctx, `ORDER BY id`, nil, fn)
}

func (s *Store) scanKeys(ctx context.Context, tail string, args []any, fn func(domain.APIKey) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys `+tail, args...)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		k, err := s.scanKey(rows)
		if err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	return nil
}

// RevokeKey marks a key revoked, permanently; repeating it changes nothing.
func (s *Store) RevokeKey(ctx context.Context, id string) (domain.APIKey, error) {
	var out domain.APIKey
	err := s.withTx(ctx, func(tx *txn) error {
		now := toMillis(s.now())
		res, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, now, id)
		if err != nil {
			return fmt.Errorf("revoke key: %w", err)
		}
		if out, err = s.getKey(ctx, tx, `id = ?`, id); err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if err := s.insertEvent(ctx, tx, Event{Action: "key.revoke", Target: id, Reason: "API key " + out.Name + " revoked",
			Changes: map[string]any{"before": map[string]any{"status": domain.StatusActive}, "after": map[string]any{"status": domain.StatusRevoked}}}); err != nil {
			return err
		}
		return s.recordChange(ctx, tx, ChangeKey, id)
	})
	return out, err
}

func (s *Store) scanKey(row scanner) (domain.APIKey, error) {
	var k domain.APIKey
	var roles string
	var expires, revoked sql.NullInt64
	var created int64
	if err := row.Scan(&k.ID, &k.Name, &roles, &k.Hash, &k.CreatedBy, &expires, &created, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return domain.APIKey{}, err
		}
		return domain.APIKey{}, fmt.Errorf("read key: %w", err)
	}
	if err := json.Unmarshal([]byte(roles), &k.Roles); err != nil {
		return domain.APIKey{}, fmt.Errorf("decode roles of %s: %w", k.ID, err)
	}
	k.ExpiresAt, k.RevokedAt, k.CreatedAt = timePtr(expires), timePtr(revoked), fromMillis(created)
	k.Status = domain.StatusActive
	switch {
	case k.RevokedAt != nil:
		k.Status = domain.StatusRevoked
	case k.ExpiresAt != nil && !s.now().Before(*k.ExpiresAt):
		k.Status = domain.StatusExpired
	}
	return k, nil
}
