// Package store owns Kavach's persistent state: agents, their permissions and
// the audit log, with the SQL and the versioned migrations that shape them.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, no cgo
)

// Errors returned by the store, wrapped with context; inspect with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrLimitReached = errors.New("limit reached")
	ErrRevoked      = errors.New("agent revoked")
)

// Options configures Open.
type Options struct {
	// URL is a SQLite file path (or "file:" URI), or ":memory:".
	URL string
	// SkipMigrations leaves the schema alone (managed externally).
	SkipMigrations bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store is a SQLite-backed store. It is safe for concurrent use.
type Store struct {
	// w serialises writes on one connection (SQLite has one writer anyway,
	// and one connection avoids SQLITE_BUSY between our own goroutines);
	// r serves reads concurrently thanks to WAL.
	w, r *sql.DB
	ids  idGen
	now  func() time.Time
}

// Open opens (creating if needed) the database and applies migrations.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL == "" {
		return nil, errors.New("store: empty database URL")
	}
	s := &Store{now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	memory := opts.URL == ":memory:"
	var err error
	s.w, err = sql.Open("sqlite", dsn(opts.URL, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.URL, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)
	if memory {
		// Every connection to ":memory:" is its own database: share the one.
		s.r = s.w
	} else {
		s.r, err = sql.Open("sqlite", dsn(opts.URL, true))
		if err != nil {
			_ = s.w.Close()
			return nil, fmt.Errorf("open %s: %w", opts.URL, err)
		}
		s.r.SetMaxOpenConns(8)
	}
	if err := s.w.PingContext(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open %s: %w", opts.URL, err)
	}
	if !opts.SkipMigrations {
		if err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

func dsn(path string, readOnly bool) string {
	pragmas := []string{
		"busy_timeout(10000)",
		"foreign_keys(1)",
		// FULL: a committed audit row survives power loss, not only a crash.
		"synchronous(FULL)",
	}
	if path != ":memory:" {
		pragmas = append([]string{"journal_mode(WAL)"}, pragmas...)
	}
	if readOnly {
		pragmas = append(pragmas, "query_only(1)")
	}
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	// Take the write lock at BEGIN, so two processes on one file queue on
	// busy_timeout instead of failing to upgrade a read lock.
	q.Set("_txlock", "immediate")
	if path == ":memory:" {
		return "file::memory:?" + q.Encode()
	}
	path = strings.TrimPrefix(path, "file:")
	// '?' and '#' would end the path of a URI filename.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + q.Encode()
}

// Close releases the database handles.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w && s.r != nil {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.r.PingContext(ctx)
}

func (s *Store) withTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func nullMillis(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMillis(n.Int64)
	return &t
}
