package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

type migration struct {
	version int
	name    string
	sql     string
}

// lockMigrations serialises migrations between processes.
const lockMigrations = 7400001

// readMigrations reads the numbered migrations at the root of fsys, in
// version order.
func readMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q: name must start with a number and '_'", e.Name())
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate applies pending migrations, each in its own transaction. It is
// idempotent and safe to run from several processes at once: a lock
// serialises them and each re-checks what is applied.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := readMigrations(s.dialect.migrations())
	if err != nil {
		return fmt.Errorf("%s: %w", s.dialect.name(), err)
	}
	release, err := s.dialect.lockMigrations(ctx, s.w.DB)
	if err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	defer release()
	err = s.inTx(ctx, func(tx *txn) error {
		if err := s.migrationLock(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	latest := ms[len(ms)-1].version
	for _, m := range ms {
		err := s.inTx(ctx, func(tx *txn) error {
			if err := s.migrationLock(ctx, tx); err != nil {
				return err
			}
			var maxApplied sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&maxApplied); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if maxApplied.Valid && int(maxApplied.Int64) > latest {
				return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade kavach", maxApplied.Int64, latest)
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, toMillis(s.now()))
			if err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// Rows written before the trail was chained are chained once, by the
	// first migration to this version (legacy chaining is data, not schema,
	// but it belongs to the upgrade).
	if err := s.chainLegacy(ctx); err != nil {
		if errors.Is(err, ErrCheckpoints) {
			// Loud, but no reason to stop deciding: verify names the damage.
			s.logger().Error("audit trail tampered with", "error", err)
			return nil
		}
		return fmt.Errorf("chain the audit rows written before chaining: %w", err)
	}
	return nil
}

// migrationLock serialises migrations between processes: SQLite's
// immediate transactions already do; elsewhere an advisory lock.
func (s *Store) migrationLock(ctx context.Context, tx *txn) error {
	if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockMigrations)); err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	return nil
}

// SchemaVersion returns the highest applied migration, 0 if none.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var v sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}
