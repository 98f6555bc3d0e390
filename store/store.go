// Package store owns Kavach's persistent state (agents, permissions,
// delegations, approvals, rate-limit events, the audit log and the change
// feed) with the SQL and the versioned migrations that shape them, on SQLite
// or PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/auditchain"
	"github.com/kavach-dev/kavach/secret"
)

// Errors returned by the store, wrapped with context; inspect with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrLimitReached = errors.New("limit reached")
	ErrRevoked      = errors.New("agent revoked")
	ErrKeyRevoked   = errors.New("API key revoked")
)

// Options configures Open.
type Options struct {
	// URL is a SQLite file path (or "file:" URI), ":memory:", or a
	// postgres:// (postgresql://) connection URL.
	URL string
	// SkipMigrations leaves the schema alone (managed externally).
	SkipMigrations bool
	// MaxConns caps PostgreSQL connections (default 16).
	MaxConns int
	// ApplicationName names PostgreSQL connections in pg_stat_activity
	// (default "kavach"; the LISTEN connection adds "-listener").
	ApplicationName string
	// AuditAsync answers decisions before their audit rows commit: faster,
	// but a crash loses the rows still queued. Off by default.
	AuditAsync bool
	// OnAsyncAuditError hears audit rows lost in async mode.
	OnAsyncAuditError func(error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Secret signs audit checkpoints; without one they are unsigned.
	Secret secret.Secret
	// SealInterval is how often chains that moved are checkpointed
	// (default DefaultSealInterval).
	SealInterval time.Duration
	// Retention deletes audit rows older than this, through purges that
	// leave a checkpoint; 0 keeps every row.
	Retention time.Duration
	// Verify opens the database to read it only (kavach audit verify):
	// no migration, no legacy chaining, no sealer.
	Verify bool
	// Logger hears the sealer's failures; nil means slog's default.
	Logger *slog.Logger
}

// Store is the SQLite- or PostgreSQL-backed store. It is safe for
// concurrent use.
type Store struct {
	// w serialises writes; r serves reads. On SQLite, w is one connection
	// (SQLite has one writer anyway, and one connection avoids SQLITE_BUSY
	// between our own goroutines) and r a pool reading concurrently thanks to
	// WAL. On PostgreSQL both are the same pgx pool.
	w, r db
	// dialect is all the store does differently per engine.
	dialect dialect
	// path is the SQLite file ("" for :memory: and PostgreSQL).
	path string
	ids  idGen
	now  func() time.Time
	// audit group-commits audit rows that consume nothing.
	audit *batcher
	// chains are this process's audit chains; cpKey signs checkpoints.
	chains *chains
	cpKey  checkpointKey
	sealMu sync.Mutex
	// stopSealer and sealerDone stop the sealer (nil when none runs).
	stopSealer, sealerDone chan struct{}
	sealerOnce             sync.Once
}

// IsPostgres reports whether a database URL names PostgreSQL.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open opens (creating if needed) the database and applies migrations.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL == "" {
		return nil, errors.New("store: empty database URL")
	}
	s := &Store{now: opts.Now, dialect: dialectFor(opts)}
	if s.now == nil {
		s.now = time.Now
	}
	s.chains = &chains{s: s, all: map[string]*chain{}}
	var err error
	if s.cpKey, err = newCheckpointKey(opts.Secret); err != nil {
		return nil, err
	}
	c, err := s.dialect.open(ctx)
	if err != nil {
		return nil, err
	}
	s.w, s.r, s.path = db{DB: c.w, d: s.dialect}, db{DB: c.r, d: s.dialect}, c.file
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.w.PingContext(pingCtx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open %s: %w", Redact(opts.URL), err)
	}
	if !opts.SkipMigrations && !opts.Verify {
		if err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	s.audit = newBatcher(s, opts.AuditAsync, opts.OnAsyncAuditError)
	if opts.Verify {
		return s, nil
	}
	interval, log := opts.SealInterval, opts.Logger
	if interval <= 0 {
		interval = DefaultSealInterval
	}
	if log == nil {
		log = slog.Default()
	}
	s.stopSealer, s.sealerDone = make(chan struct{}), make(chan struct{})
	go s.sealer(interval, opts.Retention, log, s.stopSealer, s.sealerDone)
	return s, nil
}

// Redact hides a password in a database URL, for messages and logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// Close writes the audit rows already accepted, then releases the
// database handles.
func (s *Store) Close() error {
	var err error
	if s.audit != nil {
		s.audit.close()
	}
	if s.stopSealer != nil {
		s.sealerOnce.Do(func() {
			close(s.stopSealer)
			<-s.sealerDone
			// The last checkpoint covers every row this process wrote.
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			if cerr := s.seal(ctx, auditchain.KindClose); cerr != nil {
				err = fmt.Errorf("close audit chains: %w", cerr)
			}
			cancel()
		})
	}
	err = errors.Join(err, s.w.Close())
	if s.r.DB != s.w.DB && s.r.DB != nil {
		err = errors.Join(err, s.r.Close())
	}
	s.dialect.close()
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.r.PingContext(ctx)
}

// opTimeout bounds one store operation whose caller set no deadline, so a
// stuck database fails requests instead of piling them up.
const opTimeout = 15 * time.Second

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, opTimeout)
}

func (s *Store) withTx(ctx context.Context, fn func(*txn) error) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &txn{Tx: tx, d: s.dialect}
	if err := fn(t); err != nil {
		_ = tx.Rollback()
		s.settle(t, false, false)
		return err
	}
	if err := tx.Commit(); err != nil {
		s.settle(t, false, true)
		return fmt.Errorf("commit: %w", err)
	}
	s.settle(t, true, false)
	return nil
}

// settle ends the audit chain tx appended to, if any (chain.settle), and
// returns a leased chain.
func (s *Store) settle(t *txn, committed, doubt bool) {
	if t.chain == nil {
		return
	}
	t.chain.settle(committed, doubt)
	if t.leased {
		s.chains.release(t.chain)
	}
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

// Path is the SQLite database file; "" for :memory: and PostgreSQL.
func (s *Store) Path() string { return s.path }
