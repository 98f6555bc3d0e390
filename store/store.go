// Package store owns Kavach's persistent state (agents, permissions,
// delegations, approvals, rate-limit events, the audit log and the change
// feed) with the SQL and the versioned migrations that shape them, on SQLite,
// PostgreSQL or MySQL (MariaDB).
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
	"github.com/kavach-dev/kavach/domain"
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
	// URL is a SQLite file path (or "file:" URI), ":memory:", a
	// postgres:// (postgresql://) connection URL, or a mysql:// one
	// (mysql://user:password@host:3306/db, MySQL 8 or MariaDB 10.11).
	URL string
	// SkipMigrations leaves the schema alone (managed externally).
	SkipMigrations bool
	// MaxConns caps PostgreSQL or MySQL connections (default 16).
	MaxConns int
	// ApplicationName names PostgreSQL connections in pg_stat_activity
	// (default "kavach"; the LISTEN connection adds "-listener").
	ApplicationName string
	// Timeout bounds every database call (0 means DefaultTimeout): a
	// locked, read-only or unreachable database fails the call within it
	// instead of holding the request. SQLite waits for a lock half as long.
	Timeout time.Duration
	// AuditAsync answers decisions before their audit rows commit: faster,
	// but a crash loses the rows still queued. Off by default.
	AuditAsync bool
	// OnAsyncAuditError hears audit rows lost in async mode.
	OnAsyncAuditError func(error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Secret signs audit checkpoints; without one they are unsigned.
	Secret secret.Secret
	// PreviousSecret vouches for checkpoints signed before a rotation.
	PreviousSecret secret.Secret
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
	// TrustThresholds give the level of an agent whose trust was never
	// computed (domain.InitialTrustScore's); zero means
	// domain.DefaultTrustThresholds.
	TrustThresholds domain.TrustThresholds
	// DecisionTap, if positive, keeps up to that many committed decision
	// rows for DrainDecisions (anomaly detection); beyond it, rows are
	// counted as dropped, never waited for. 0 keeps none.
	DecisionTap int
	// Subscriptions are the webhook endpoints and the event types each
	// receives: each gets a cursor at Open (startCursors), if it has none,
	// and the decision events they subscribe to are recorded.
	Subscriptions []Subscription
	// DecisionEvents are the decision event types (authorize.allowed,
	// authorize.denied) recorded though no endpoint subscribes to them,
	// for GET /v1/events.
	DecisionEvents []string
}

// Store is the SQLite- or PostgreSQL-backed store. It is safe for
// concurrent use.
type Store struct {
	// w serialises writes; r serves reads. On SQLite, w is one connection
	// (SQLite has one writer anyway, and one connection avoids SQLITE_BUSY
	// between our own goroutines) and r a pool reading concurrently thanks to
	// WAL. On PostgreSQL both are the same pgx pool. probe is the write
	// probe's handle (Probe).
	w, r, probe db
	// dialect is all the store does differently per engine.
	dialect dialect
	// path is the SQLite file ("" for :memory: and servers).
	path string
	ids  idGen
	now  func() time.Time
	// timeout bounds every database call (withTimeout).
	timeout time.Duration
	// writes is what the last writes say of the database (Writable).
	writes writeState
	// schema is the schema version read at Open, for /health.
	schema int
	// audit group-commits audit rows that consume nothing.
	audit *batcher
	// chains are this process's audit chains; cpKey signs checkpoints.
	chains *chains
	cpKey  checkpointKey
	sealMu sync.Mutex
	// cpKeys vouch for checkpoints before anything is signed over them;
	// lastCP is the newest checkpoint this process has seen or written.
	cpKeys auditchain.Keys
	log    *slog.Logger
	cpMu   sync.Mutex
	lastCP auditchain.Checkpoint
	// reads are the prepared statements of the policy data reads
	// (policydata.go).
	reads prepared
	// thresholds give an agent without computed trust its level.
	thresholds domain.TrustThresholds
	// sinks say which events are recorded and who receives them.
	sinks *eventSinks
	// tap holds committed decision rows for anomaly detection (nil: off).
	tap *decisionTap
	// stopSealer and sealerDone stop the sealer (nil when none runs).
	stopSealer, sealerDone chan struct{}
	sealerOnce             sync.Once
	// stopIndexer and indexerDone stop the audit indexer (auditindex.go;
	// nil when none runs).
	stopIndexer, indexerDone chan struct{}
	indexerOnce              sync.Once
}

// DefaultTimeout bounds a database call when Options.Timeout is 0: well
// inside a client's patience, and far above a healthy call's milliseconds.
const DefaultTimeout = 5 * time.Second

// IsPostgres reports whether a database URL names PostgreSQL.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Open opens (creating if needed) the database and applies migrations.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL == "" {
		return nil, errors.New("store: empty database URL")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	s := &Store{now: opts.Now, dialect: dialectFor(opts), timeout: opts.Timeout, thresholds: opts.TrustThresholds}
	if s.thresholds == (domain.TrustThresholds{}) {
		s.thresholds = domain.DefaultTrustThresholds
	}
	s.sinks = newEventSinks(opts.Subscriptions, opts.DecisionEvents)
	if opts.DecisionTap > 0 {
		s.tap = &decisionTap{max: opts.DecisionTap}
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.chains = &chains{s: s, all: map[string]*chain{}}
	s.log = opts.Logger
	var err error
	if s.cpKey, err = newCheckpointKey(opts.Secret); err != nil {
		return nil, err
	}
	if s.cpKeys, err = CheckpointKeys(opts.Secret, opts.PreviousSecret); err != nil {
		return nil, err
	}
	c, err := s.dialect.open(ctx)
	if err != nil {
		return nil, err
	}
	s.w, s.r, s.probe, s.path = db{DB: c.w, d: s.dialect}, db{DB: c.r, d: s.dialect}, db{DB: c.probe, d: s.dialect}, c.file
	// Connecting (and creating a SQLite file) at start may take longer than
	// a call: at least 10 s, as the migrations after it take what they take.
	startCtx, cancel := context.WithTimeout(ctx, max(s.timeout, 10*time.Second))
	defer cancel()
	if err := s.w.PingContext(startCtx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open %s: %w", Redact(opts.URL), err)
	}
	if !opts.SkipMigrations && !opts.Verify {
		if err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	} else if !opts.Verify {
		// The schema is someone else's, but chaining the rows from before
		// chaining is data: do it when the schema allows.
		if err := s.chainLegacy(ctx); err != nil {
			s.logger().Warn("could not chain the audit rows written before chaining", "error", err)
		}
	}
	var v sql.NullInt64
	if err := s.r.QueryRowContext(startCtx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err == nil {
		s.schema = int(v.Int64)
	}
	if !opts.Verify {
		if err := s.startCursors(startCtx); err != nil {
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
	// The sealer outlives Open's context: it stops with Close.
	go s.sealer(interval, opts.Retention, log, s.stopSealer, s.sealerDone) //nolint:gosec // G118: see above
	if s.deferredAuditIndexes() {
		s.stopIndexer, s.indexerDone = make(chan struct{}), make(chan struct{})
		go s.auditIndexer(log, s.stopIndexer, s.indexerDone) //nolint:gosec // G118: it outlives Open's context, as the sealer does

	}
	return s, nil
}

// Redact is a database URL as messages, logs and audit events may show
// it: scheme://user@host/path, the password masked, the query (which may
// hold a password too: ?password=…, sslpassword=…) and fragment dropped.
// What does not parse as such a URL, or is a keyword string
// (host=… password=…), is not shown at all: "(unparseable URL)". A file
// path (SQLite) is shown as it is, without a query.
func Redact(raw string) string {
	const unparseable = "(unparseable URL)"
	if raw == ":memory:" {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return unparseable
	}
	if u.Opaque != "" {
		// file:kavach.db (SQLite) is a path; anything else opaque
		// (user:password@tcp(host)/db, say) is not shown.
		if strings.EqualFold(u.Scheme, "file") && !strings.ContainsAny(u.Opaque, "@=") {
			return "file:" + u.Opaque
		}
		return unparseable
	}
	if u.Scheme == "" && (strings.Contains(raw, "=") || u.User != nil || u.Host != "") {
		// Not a path: a libpq keyword string, or something like it.
		return unparseable
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.Redacted()
}

// Close writes the audit rows already accepted, then releases the
// database handles.
func (s *Store) Close() error {
	var err error
	if s.audit != nil {
		s.audit.close()
	}
	if s.stopIndexer != nil {
		s.indexerOnce.Do(func() {
			close(s.stopIndexer)
			<-s.indexerDone
		})
	}
	if s.stopSealer != nil {
		s.sealerOnce.Do(func() {
			close(s.stopSealer)
			<-s.sealerDone
			// The last checkpoint covers every row this process wrote.
			ctx, cancel := s.withTimeout(context.Background())
			if cerr := s.seal(ctx, true); cerr != nil {
				err = fmt.Errorf("close audit chains: %w", cerr)
			}
			cancel()
		})
	}
	err = errors.Join(err, s.closePrepared(), s.w.Close())
	if s.r.DB != s.w.DB && s.r.DB != nil {
		err = errors.Join(err, s.r.Close())
	}
	if s.probe.DB != s.w.DB && s.probe.DB != nil {
		err = errors.Join(err, s.probe.Close())
	}
	s.dialect.close()
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.r.PingContext(ctx)
}

// Timeout is the bound of every database call (Options.Timeout).
func (s *Store) Timeout() time.Duration { return s.timeout }

// SchemaVersionAtOpen is the schema version read when the store opened
// (0 when it could not be read): known without asking the database.
func (s *Store) SchemaVersionAtOpen() int { return s.schema }

// withTimeout bounds one store operation by the store's timeout (or the
// caller's deadline, if sooner), so a stuck database fails requests within
// it instead of piling them up.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// withTx runs fn in a write transaction bounded by the store's timeout. A
// failure that says the database cannot take writes (locked, read-only,
// unreachable, too slow) is remembered for Writable.
func (s *Store) withTx(ctx context.Context, fn func(*txn) error) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := s.inTx(ctx, fn)
	if err != nil {
		s.writes.failed(err, s.now())
	}
	return err
}

// inTx runs fn in a write transaction bounded only by ctx: for migrations,
// which take as long as they take.
func (s *Store) inTx(ctx context.Context, fn func(*txn) error) error {
	return s.txOn(ctx, s.w, fn)
}

// txOn runs fn in a transaction on h.
func (s *Store) txOn(ctx context.Context, h db, fn func(*txn) error) (err error) {
	ctx, span := startTx(ctx, s.dialect)
	defer func() { endTx(span, err) }()
	tx, err := h.BeginTx(ctx, nil)
	for attempt := 1; err != nil && ctx.Err() == nil && s.dialect.beginAgain(err, attempt); attempt++ {
		tx, err = h.BeginTx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &txn{Tx: tx, d: s.dialect, span: span}
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
	if committed && t.deliveries {
		s.nudgeDeliveries()
	}
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

func (s *Store) logger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}
