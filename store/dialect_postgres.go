package store

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

// notifyChannel is the PostgreSQL channel a commit with changes notifies.
const notifyChannel = "kavach_changes"

// postgresDialect is PostgreSQL through a pgx pool, used with database/sql
// (pgx's stdlib) as both writer and reader. Replicas share the database,
// so read-modify-write locks its row, work that must not interleave takes
// a transaction-scoped advisory lock, and commits that grow the change
// feed NOTIFY the replicas' listeners.
type postgresDialect struct {
	standardSQL
	// url is kept for the LISTEN connection, which cannot be pooled.
	url      string
	app      string
	maxConns int
	// timeout bounds connecting and LISTEN on the listener's connection.
	timeout time.Duration
	pool    *pgxpool.Pool
	// poolSize is the pool's MaxConns: the most connections whose
	// sessions can have ended while pooled.
	poolSize int
}

var _ dialect = (*postgresDialect)(nil)

func newPostgresDialect(opts Options) *postgresDialect {
	d := &postgresDialect{url: opts.URL, app: "kavach", maxConns: opts.MaxConns, timeout: cmp.Or(opts.Timeout, DefaultTimeout)}
	if opts.ApplicationName != "" {
		d.app = opts.ApplicationName
	}
	return d
}

func (*postgresDialect) name() string { return "postgres" }

func (*postgresDialect) inProcess() bool { return false }

func (d *postgresDialect) open(ctx context.Context) (conns, error) {
	cfg, err := pgxpool.ParseConfig(d.url)
	if err != nil {
		return conns{}, fmt.Errorf("database URL %s: %w", Redact(d.url), err)
	}
	cfg.MaxConns = 16
	if d.maxConns > 0 {
		cfg.MaxConns = int32(min(d.maxConns, math.MaxInt32))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = d.app
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return conns{}, fmt.Errorf("connect to %s: %w", Redact(d.url), err)
	}
	d.pool = pool
	d.poolSize = int(cfg.MaxConns)
	// database/sql over the pgx pool: one SQL layer for both engines, with
	// pgx's statement cache preparing each statement once per connection.
	h := stdlib.OpenDBFromPool(pool)
	return conns{w: h, r: h, probe: h}, nil
}

func (d *postgresDialect) close() {
	if d.pool != nil {
		d.pool.Close()
	}
}

// rebind numbers the placeholders: "?" becomes "$1", "$2", ….
func (*postgresDialect) rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (*postgresDialect) lockRow() string { return " FOR UPDATE" }

func (*postgresDialect) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// advisoryLock takes a transaction-scoped advisory lock: the bigint form
// for a lock of its own, the (int, int) form with the key hashed for a
// key within a namespace. The two forms never collide.
func (*postgresDialect) advisoryLock(ctx context.Context, tx *txn, l lockName) error {
	var err error
	if l.space == 0 {
		_, err = tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, l.id)
	} else {
		_, err = tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(?))`, l.space, l.key)
	}
	return err
}

// notifyChange queues a NOTIFY, which PostgreSQL delivers on commit.
func (*postgresDialect) notifyChange(ctx context.Context, tx *txn, seq int64) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify('`+notifyChannel+`', ?)`, strconv.FormatInt(seq, 10))
	return err
}

func (*postgresDialect) canListen() bool { return true }

// listen holds one dedicated connection (LISTEN cannot share a pooled
// one); when that connection breaks it reconnects with backoff and calls
// notify once connected again, so changes made in the gap are caught up.
func (d *postgresDialect) listen(ctx context.Context, notify func(), onError func(error)) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		connected, err := d.listenOnce(ctx, notify)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = 50 * time.Millisecond
		}
		onError(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (d *postgresDialect) listenOnce(ctx context.Context, notify func()) (connected bool, err error) {
	cfg, err := pgx.ParseConfig(d.url)
	if err != nil {
		return false, fmt.Errorf("listener: %w", err)
	}
	cfg.RuntimeParams["application_name"] = d.app + "-listener"
	// Connecting and LISTEN are bounded like any other call; waiting for
	// notifications is not (the wait is the point).
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return false, fmt.Errorf("listener: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(cctx, `LISTEN `+notifyChannel); err != nil {
		return false, fmt.Errorf("listener: %w", err)
	}
	cancel()
	notify() // whatever committed while we were not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if errors.Is(err, context.Canceled) {
				return true, err
			}
			return true, fmt.Errorf("listener: %w", err)
		}
		notify()
	}
}

// isUniqueViolation: SQLSTATE 23505 unique_violation.
func (*postgresDialect) isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// beginAgain: a session the server ended (57P01 admin shutdown, 57P02
// crash shutdown) or whose connection broke after it was made (not a
// failure to connect, which the next connection would repeat) fails
// its BEGIN, once per pooled connection, at most poolSize+1 times.
func (d *postgresDialect) beginAgain(err error, attempt int) bool {
	if attempt > d.poolSize {
		return false
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57P01" || pgErr.Code == "57P02"
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// unavailable reads the SQLSTATE of a server error (class 08 connection
// exception, 57P01-57P03 shutting down or starting, 53 out of resources,
// 58 system error, 25006 read-only transaction, 55P03 lock not available,
// 57014 statement cancelled or timed out) and recognises pgconn's errors
// of connecting and of a connection that broke or timed out.
func (*postgresDialect) unavailable(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch c := pgErr.Code; {
		case c == "25006":
			return ReasonReadOnly
		case c == "55P03":
			return ReasonLocked
		case c == "57014":
			return ReasonTimeout
		case c == "53100":
			return ReasonDiskFull
		case strings.HasPrefix(c, "58"):
			return ReasonIO
		case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "53"),
			c == "57P01", c == "57P02", c == "57P03":
			return ReasonUnreachable
		}
		var connect *pgconn.ConnectError
		if errors.As(err, &connect) {
			// A server that refuses the login (a role made NOLOGIN, a
			// database being dropped) is as good as unreachable.
			return ReasonUnreachable
		}
		return ""
	}
	var connect *pgconn.ConnectError
	var netErr net.Error
	switch {
	case pgconn.Timeout(err):
		return ReasonTimeout
	case errors.As(err, &connect), errors.As(err, &netErr), errors.Is(err, net.ErrClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonUnreachable
	}
	return ""
}

func (*postgresDialect) migrations() fs.FS { return subFS(postgresMigrations, "migrations/postgres") }
