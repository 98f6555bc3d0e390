package store

import (
	"context"
	"database/sql"
	"io/fs"

	"go.opentelemetry.io/otel/trace"
)

// dialect is everything the store does differently on each SQL engine. The
// store's methods write their SQL once, in the common subset (with "?"
// placeholders, LIMIT, CASE, batches chosen in derived tables), and ask
// the dialect for the rest: connecting, placeholders, locks, upserts and
// RETURNING, change notifications, error codes and the migrations.
// sqliteDialect (dialect_sqlite.go), postgresDialect (dialect_postgres.go)
// and mysqlDialect (dialect_mysql.go) implement it; dialectFor picks one
// from the database URL.
//
// Another engine is another implementation, a case in dialectFor and its
// own numbered migrations, and no change to the store's methods. MySQL
// (MySQL 8, MariaDB 10.11), the third, is noted beside each method where
// it differs; in short: "?" placeholders as they are, FOR UPDATE row locks,
// no LISTEN (followers poll the change feed), error 1062 for a duplicate
// key, advisory locks as rows of a table of locks (GET_LOCK would outlive
// the transaction), no RETURNING and no ON CONFLICT.
type dialect interface {
	// name is the engine's short name ("sqlite", "postgres", "mysql"), for
	// messages.
	name() string
	// inProcess reports whether a statement costs no round trip to a
	// server (SQLite): then executing a prepared one-row statement per row
	// beats parsing one statement of many rows.
	inProcess() bool

	// open connects to the database. A dialect whose engine has a single
	// writer (SQLite) returns a one-connection writer and a pool of
	// readers; others return one pool as both. The pragmas, busy timeouts,
	// driver name and DSN are the dialect's business. (MySQL: one pool;
	// the DSN turns multiStatements on, since a migration is one Exec of
	// several statements, and sessions run READ COMMITTED.)
	open(ctx context.Context) (conns, error)
	// close releases what open held besides the two handles (a pgx pool);
	// the store closes the handles first.
	close()

	// rebind turns the store's "?" placeholders into the engine's
	// ("$1", "$2", … on PostgreSQL; SQLite and MySQL take "?" as it is).
	// The store's SQL has no "?" inside literals.
	rebind(query string) string

	// lockRow is the suffix of a SELECT that locks the rows it reads until
	// the transaction ends, for read-modify-write that another replica
	// may race (" FOR UPDATE" on PostgreSQL and MySQL/InnoDB). "" means
	// the engine already runs write transactions one at a time (SQLite's
	// immediate transactions), so no row lock is needed and none is taken.
	lockRow() string
	// skipLocked is the suffix of a SELECT that locks the rows it reads
	// and skips those another transaction holds (" FOR UPDATE SKIP LOCKED"
	// on PostgreSQL and MySQL 8 / MariaDB 10.6+), so replicas claiming work
	// from one queue do not wait on each other; "" as for lockRow.
	skipLocked() string
	// advisoryLock takes the named lock until tx ends (commit or
	// rollback), waiting for another transaction, on any replica, that
	// holds it; a no-op where write transactions already run one at a
	// time. (MySQL: GET_LOCK is held by the session, not the transaction,
	// and would outlive it on a pooled connection; the MySQL dialect locks
	// a row of a table of locks, kavach_locks, with an upsert instead.)
	advisoryLock(ctx context.Context, tx *txn, l lockName) error

	// notifyChange tells followers, on commit of tx, that the change feed
	// has grown to seq (PostgreSQL: NOTIFY). A no-op where listen has
	// another way to know (SQLite watches its file) or none (MySQL).
	notifyChange(ctx context.Context, tx *txn, seq int64) error
	// canListen reports whether listen pushes anything; when it does not
	// (SQLite :memory:, MySQL, which has no LISTEN), followers poll.
	canListen() bool
	// listen calls notify whenever a change may have been committed, by
	// this process or another, until ctx ends; onError hears every
	// failure. It calls notify once when it starts listening, for what
	// committed before.
	listen(ctx context.Context, notify func(), onError func(error))

	// isUniqueViolation reports whether err is a unique or primary-key
	// violation, from the driver's error code, never its message
	// (PostgreSQL SQLSTATE 23505; SQLite 2067 and 1555; MySQL 1062).
	isUniqueViolation(err error) bool
	// unavailable is why err says the database cannot serve the call now
	// (one of the Reason constants: locked, read-only, unreachable, …),
	// from the driver's error codes, or "" when it is not such an error.
	// It must not dereference its receiver: UnavailableReason asks every
	// dialect about an error of unknown origin. (MySQL: 1205 lock wait
	// timeout, 1290/1836 read-only, 1040/1045/1053 refused or shut down,
	// and the driver's errors of a broken connection.)
	unavailable(err error) string
	// beginAgain reports whether a BEGIN that failed with err, on its
	// attempt'th try (from 1), may be tried on the next pooled connection:
	// the server ended the session while the connection sat in the pool
	// (PostgreSQL 57P01 after a restart, a failover or
	// pg_terminate_backend), which neither database/sql nor pgx notices
	// before reuse within a second of the connection's last use. Nothing
	// ran in the failed transaction, so beginning again is safe. (MySQL's
	// driver checks a reused connection's liveness itself and answers
	// database/sql's driver.ErrBadConn, which retries; SQLite has no
	// server.)
	beginAgain(err error, attempt int) bool

	// lockMigrations takes, for the whole of Migrate, a lock that
	// serialises migrations between processes where the transactions'
	// advisoryLock cannot (MySQL: DDL commits implicitly, ending the
	// transaction's locks), and returns its release; a no-op elsewhere.
	lockMigrations(ctx context.Context, h *sql.DB) (release func(), err error)

	// returning reports whether INSERT … RETURNING covers an upsert
	// (PostgreSQL, SQLite); where it does not (MySQL) the store reads the
	// rows back (upsertRows).
	returning() bool
	// upsert is insert (an INSERT … VALUES or INSERT … SELECT) resolving
	// a conflict on the unique columns conflict ("a, b"): set "" skips the
	// row, else set is the update, naming the proposed row's columns
	// "excluded.c" (ON CONFLICT … DO NOTHING / DO UPDATE SET on PostgreSQL
	// and SQLite; INSERT IGNORE / ON DUPLICATE KEY UPDATE on MySQL). A
	// skipped row is not counted in RowsAffected.
	upsert(insert, conflict, set string) string
	// insertSeq runs a one-row INSERT into a table whose column seq is
	// numbered by the engine, and returns the number (RETURNING seq, or
	// MySQL's LAST_INSERT_ID()).
	insertSeq(ctx context.Context, tx *txn, insert, seq string, args ...any) (int64, error)

	// migrations are the engine's numbered migrations ("0001_init.sql",
	// …) at the root of the returned tree, each applied with one Exec.
	migrations() fs.FS
}

// conns are the database handles a dialect opened: w serialises writes
// where the engine has a single writer, r serves reads (the same handle
// when the engine has no such limit), probe writes the write probe (a
// connection of its own where w is one connection, so that a probe
// waiting for a lock never holds up w). file is the database file, ""
// when there is none.
type conns struct {
	w, r, probe *sql.DB
	file        string
}

// dialectFor returns the dialect of the database opts.URL names.
func dialectFor(opts Options) dialect {
	switch {
	case IsPostgres(opts.URL):
		return newPostgresDialect(opts)
	case IsMySQL(opts.URL):
		return newMySQLDialect(opts)
	}
	return newSQLiteDialect(opts)
}

// standardSQL is what SQLite and PostgreSQL share, and MySQL does another
// way: INSERT … RETURNING, ON CONFLICT, migrations that transactions lock.
type standardSQL struct{}

func (standardSQL) lockMigrations(context.Context, *sql.DB) (func(), error) { return func() {}, nil }

func (standardSQL) returning() bool { return true }

func (standardSQL) beginAgain(error, int) bool { return false }

func (standardSQL) upsert(insert, conflict, set string) string {
	if set == "" {
		return insert + ` ON CONFLICT (` + conflict + `) DO NOTHING`
	}
	return insert + ` ON CONFLICT (` + conflict + `) DO UPDATE SET ` + set
}

func (standardSQL) insertSeq(ctx context.Context, tx *txn, insert, seq string, args ...any) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, insert+` RETURNING `+seq, args...).Scan(&n)
	return n, err
}

// lockName names an advisory lock: a lock of its own (id), or a key within
// a namespace (space, key), so that callers locking different keys do not
// wait for each other.
type lockName struct {
	id    int64
	space int32
	key   string
}

// globalLock is the lock id, which serialises one kind of work (migrations,
// the change feed's numbering, key bootstrap) across replicas.
func globalLock(id int64) lockName { return lockName{id: id} }

// keyLock is the lock of key within namespace space (non-zero).
func keyLock(space int32, key string) lockName { return lockName{space: space, key: key} }

// db and txn run the store's SQL through its dialect's rebind.
type db struct {
	*sql.DB
	d dialect
}

// Each statement is traced when ctx's span records (trace.go).

func (d db) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, span := startStatement(ctx, d.d, query)
	res, err := d.DB.ExecContext(ctx, d.d.rebind(query), args...)
	endStatement(span, err)
	return res, err
}

func (d db) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, span := startStatement(ctx, d.d, query)
	rows, err := d.DB.QueryContext(ctx, d.d.rebind(query), args...) //nolint:sqlclosecheck // the caller's to close
	endStatement(span, err)
	return rows, err
}

func (d db) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx, span := startStatement(ctx, d.d, query)
	row := d.DB.QueryRowContext(ctx, d.d.rebind(query), args...)
	endStatement(span, row.Err())
	return row
}

func (d db) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return d.DB.PrepareContext(ctx, d.d.rebind(query))
}

type txn struct {
	*sql.Tx
	d dialect
	// chain is the audit chain the transaction appends to (nil until its
	// first audit row); leased when it came from the pool, for the
	// transaction only.
	chain  *chain
	leased bool
	// deliveries is set when the transaction queued webhook deliveries:
	// the delivery worker is told on commit.
	deliveries bool
	// insertEvent, when set, is the prepared one-row INSERT of an event,
	// which emitAll uses where the dialect is in process.
	insertEvent *sql.Stmt
	// feedLocked is set once the transaction holds the change feed's lock
	// (it is held until the end: taking it again is a wasted round trip).
	feedLocked bool
	// span is the transaction's, when traced (trace.go).
	span trace.Span
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, span := startStatement(t.within(ctx), t.d, query)
	res, err := t.Tx.ExecContext(ctx, t.d.rebind(query), args...)
	endStatement(span, err)
	return res, err
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, span := startStatement(t.within(ctx), t.d, query)
	rows, err := t.Tx.QueryContext(ctx, t.d.rebind(query), args...) //nolint:sqlclosecheck // the caller's to close
	endStatement(span, err)
	return rows, err
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx, span := startStatement(t.within(ctx), t.d, query)
	row := t.Tx.QueryRowContext(ctx, t.d.rebind(query), args...)
	endStatement(span, row.Err())
	return row
}

func (t *txn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, t.d.rebind(query))
}

// upsertRows runs insert (an INSERT with an upsert suffix) and returns the
// rows it inserted or updated, columns cols of each: by RETURNING where
// the dialect has it, else by the query reread builds, locking what it
// reads (the rows are the transaction's own since the upsert, so the lock
// is held already and the read sees them as written).
func (s *Store) upsertRows(ctx context.Context, tx *txn, insert, cols string, reread func() (string, []any), args ...any) (*sql.Rows, error) {
	if s.dialect.returning() {
		return tx.QueryContext(ctx, insert+` RETURNING `+cols, args...)
	}
	if _, err := tx.ExecContext(ctx, insert, args...); err != nil {
		return nil, err
	}
	q, qargs := reread()
	return tx.QueryContext(ctx, q+s.dialect.lockRow(), qargs...)
}
