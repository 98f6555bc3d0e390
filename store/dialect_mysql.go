package store

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

//go:embed migrations/mysql/*.sql
var mysqlMigrations embed.FS

// mysqlDialect is MySQL 8 or MariaDB 10.11 (InnoDB) through
// go-sql-driver/mysql: one pool as writer and reader, as on PostgreSQL.
// What MySQL lacks is done another way here:
//   - no transaction-scoped advisory lock: a lock is a row of kavach_locks,
//     locked by an upsert until the transaction ends; migrations, whose DDL
//     commits implicitly (ending any row lock), hold a session lock
//     (GET_LOCK) on a connection of their own for the whole of Migrate;
//   - no LISTEN: followers poll the change feed (database.pollInterval);
//   - no RETURNING: the store reads back what an upsert wrote (returning
//     is false), and the change feed's seq is LAST_INSERT_ID();
//   - no ON CONFLICT: ON DUPLICATE KEY UPDATE, with VALUES(c) for the
//     proposed row (upsert).
//
// Sessions run READ COMMITTED, PostgreSQL's default that the store's
// locking is written for: a statement after a lock sees what the lock's
// previous holder committed, which REPEATABLE READ's snapshot might not.
type mysqlDialect struct {
	url      string
	maxConns int
	timeout  time.Duration
}

var _ dialect = (*mysqlDialect)(nil)

func newMySQLDialect(opts Options) *mysqlDialect {
	return &mysqlDialect{url: opts.URL, maxConns: opts.MaxConns, timeout: cmp.Or(opts.Timeout, DefaultTimeout)}
}

// IsMySQL reports whether a database URL names MySQL (or MariaDB).
func IsMySQL(url string) bool {
	return len(url) >= len("mysql://") && strings.EqualFold(url[:len("mysql://")], "mysql://")
}

func (*mysqlDialect) name() string { return "mysql" }

func (*mysqlDialect) inProcess() bool { return false }

func (d *mysqlDialect) open(context.Context) (conns, error) {
	cfg, err := mysqlConfig(d.url, d.timeout)
	if err != nil {
		return conns{}, fmt.Errorf("database URL %s: %w", Redact(d.url), err)
	}
	base, err := mysql.NewConnector(cfg)
	if err != nil {
		return conns{}, fmt.Errorf("database URL %s: %w", Redact(d.url), err)
	}
	h := sql.OpenDB(readCommitted{base})
	h.SetMaxOpenConns(cmp.Or(d.maxConns, 16))
	h.SetMaxIdleConns(cmp.Or(d.maxConns, 16))
	// Below the servers' default wait_timeout (8 h) and the idle timeouts
	// of proxies in front of them: a pooled connection the server has
	// dropped would fail the next call.
	h.SetConnMaxLifetime(5 * time.Minute)
	return conns{w: h, r: h, probe: h}, nil
}

// mysqlConfig is the driver's configuration of a mysql:// URL:
// mysql://user:password@host:3306/db?param=value, with the driver's
// parameters (tls=true, timeout=5s, …) after the "?". What the store
// needs is set whatever the URL says: multiStatements (a migration is one
// Exec of several statements), BIGINT milliseconds rather than parsed
// times, utf8mb4 with its byte-wise collation, a strict sql_mode with
// standard quoting, and lock waits bounded by the store's timeout.
func mysqlConfig(raw string, timeout time.Duration) (*mysql.Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	host := u.Host
	if host == "" {
		return nil, errors.New("no host: give mysql://user:password@host:3306/db")
	}
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "3306")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, errors.New("no database: give mysql://user:password@host:3306/db")
	}
	// The driver parses its own parameters; credentials never pass
	// through its DSN parser (a "/" or "@" in a password would confuse it).
	cfg, err := mysql.ParseDSN("tcp(" + host + ")/" + db + "?" + u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.MultiStatements = true
	cfg.ParseTime = false
	// LOAD DATA LOCAL INFILE would let the server (or whoever answers at
	// its address) ask for any file this process can read.
	cfg.AllowAllFiles = false
	// RowsAffected counts the rows an UPDATE matched, as on PostgreSQL and
	// SQLite, not only those it changed: compare-and-set reads it.
	cfg.ClientFoundRows = true
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_bin")); err != nil {
		return nil, err
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// ANSI_QUOTES and NO_BACKSLASH_ESCAPES read literals as PostgreSQL
	// and SQLite do; TRADITIONAL refuses a value that does not fit
	// instead of truncating it.
	cfg.Params["sql_mode"] = "'TRADITIONAL,ANSI_QUOTES,NO_BACKSLASH_ESCAPES'"
	// A lock wait ends with the call that waits (whole seconds, at least 1):
	// the driver gives up on the call at the deadline, and the server must
	// not keep the transaction's locks for its default 50 s meanwhile.
	cfg.Params["innodb_lock_wait_timeout"] = strconv.Itoa(int(math.Ceil(max(timeout, time.Second).Seconds())))
	return cfg, nil
}

// readCommitted opens connections whose transactions run READ COMMITTED.
// The statement is the same on MySQL and MariaDB, which name the variable
// differently (transaction_isolation, tx_isolation).
type readCommitted struct{ driver.Connector }

func (c readCommitted) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	exec, ok := conn.(driver.ExecerContext)
	if !ok {
		_ = conn.Close()
		return nil, errors.New("mysql: the connection cannot execute statements")
	}
	if _, err := exec.ExecContext(ctx, `SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED`, nil); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

func (*mysqlDialect) close() {}

// rebind leaves the "?" placeholders: MySQL takes them.
func (*mysqlDialect) rebind(query string) string { return query }

func (*mysqlDialect) lockRow() string { return " FOR UPDATE" }

// skipLocked: MySQL 8.0.1 and MariaDB 10.6 skip locked rows.
func (*mysqlDialect) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// advisoryLock locks the lock's row of kavach_locks, inserting it the
// first time: an INSERT … ON DUPLICATE KEY UPDATE takes an exclusive lock
// on the row, new or not, which InnoDB holds until the transaction ends,
// and a second transaction's upsert of the same row waits for it. A keyed
// lock's row is a 64-bit hash of namespace and key, negative so that it
// never meets a lock of its own (small positive ids).
//
// The migrations' lock is not taken here: Migrate holds it for its whole
// run (lockMigrations), and its table may not exist yet.
func (*mysqlDialect) advisoryLock(ctx context.Context, tx *txn, l lockName) error {
	if l == globalLock(lockMigrations) {
		return nil
	}
	id := l.id
	if l.space != 0 {
		h := fnv.New64a()
		_, _ = fmt.Fprintf(h, "%d/%s", l.space, l.key)
		id = int64(h.Sum64() | 1<<63) //nolint:gosec // G115: the sign bit is the point
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO kavach_locks (id) VALUES (?) ON DUPLICATE KEY UPDATE id = id`, id)
	return err
}

// lockMigrations takes a session lock (GET_LOCK, named after the
// database: the name is the server's, shared by every database on it) on
// a connection of its own, and releases it when Migrate is done. A
// migration's DDL commits the transaction it runs in, so a lock the
// transaction held would end before the migration is recorded.
func (d *mysqlDialect) lockMigrations(ctx context.Context, h *sql.DB) (func(), error) {
	conn, err := h.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got sql.NullInt64
	// 600 s: a migration that runs that long behind another is a stuck
	// one; the wait ends sooner with ctx (the driver closes the
	// connection, and the server the wait).
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(CONCAT('kavach_migrate_', SHA1(DATABASE())), 600)`).Scan(&got); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if got.Int64 != 1 {
		_ = conn.Close()
		return nil, errors.New("another process has been migrating the database for 10 minutes")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		defer cancel()
		if _, err := conn.ExecContext(ctx, `DO RELEASE_LOCK(CONCAT('kavach_migrate_', SHA1(DATABASE())))`); err != nil {
			// The session ends with the connection, and the lock with it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
	}, nil
}

// notifyChange does nothing: MySQL has no NOTIFY; followers poll.
func (*mysqlDialect) notifyChange(context.Context, *txn, int64) error { return nil }

func (*mysqlDialect) canListen() bool { return false }

// listen returns at once: there is nothing to listen to (canListen).
func (*mysqlDialect) listen(context.Context, func(), func(error)) {}

// returning is false: MySQL 8 has no RETURNING (MariaDB's INSERT …
// RETURNING does not cover ON DUPLICATE KEY UPDATE).
func (*mysqlDialect) returning() bool { return false }

// excluded is a reference to the proposed row in an ON CONFLICT update.
var excluded = regexp.MustCompile(`\bexcluded\.(\w+)`)

// upsert: an update is ON DUPLICATE KEY UPDATE, "excluded.c" becoming
// VALUES(c) (the form both MySQL 8 and MariaDB take; MySQL's row alias is
// not MariaDB's). MySQL assigns left to right, each assignment seeing the
// ones before: the store lists a column that others compare last. A skip
// is INSERT IGNORE, whose skipped rows count 0 (an update to the same
// values would count 1: RowsAffected counts matched rows, clientFoundRows).
// IGNORE also turns the few other errors such an insert could meet (a
// value too long, a foreign key) into warnings: the store's skipped
// inserts write values of bounded size that exist. The conflict columns
// are not named: any unique key conflicts, which is the same where, as in
// the store, only the named one can.
func (*mysqlDialect) upsert(insert, _, set string) string {
	if set == "" {
		return strings.Replace(insert, "INSERT INTO", "INSERT IGNORE INTO", 1)
	}
	return insert + ` ON DUPLICATE KEY UPDATE ` + excluded.ReplaceAllString(set, `VALUES($1)`)
}

// insertSeq runs the INSERT and returns the AUTO_INCREMENT value it used.
func (*mysqlDialect) insertSeq(ctx context.Context, tx *txn, insert, _ string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, insert, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// MySQL server error numbers the dialect reads.
const (
	mysqlDupEntry           = 1062 // ER_DUP_ENTRY
	mysqlDupEntryWithKey    = 1586 // ER_DUP_ENTRY_WITH_KEY_NAME
	mysqlLockWaitTimeout    = 1205 // ER_LOCK_WAIT_TIMEOUT
	mysqlOptionPrevents     = 1290 // ER_OPTION_PREVENTS_STATEMENT (--read-only)
	mysqlReadOnlyTx         = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	mysqlReadOnlyMode       = 1836 // ER_READ_ONLY_MODE
	mysqlQueryInterrupted   = 1317 // ER_QUERY_INTERRUPTED (KILL QUERY)
	mysqlStatementTimeout   = 1969 // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
	mysqlQueryTimeout       = 3024 // MySQL ER_QUERY_TIMEOUT (max_execution_time)
	mysqlDiskFull           = 1021 // ER_DISK_FULL
	mysqlTableFull          = 1114 // ER_RECORD_FILE_FULL
	mysqlEngineError        = 1030 // ER_GET_ERRNO: the storage engine failed
	mysqlTooManyConns       = 1040 // ER_CON_COUNT_ERROR
	mysqlDBAccessDenied     = 1044 // ER_DBACCESS_DENIED_ERROR
	mysqlAccessDenied       = 1045 // ER_ACCESS_DENIED_ERROR
	mysqlBadDB              = 1049 // ER_BAD_DB_ERROR (dropped)
	mysqlServerShutdown     = 1053 // ER_SERVER_SHUTDOWN
	mysqlConnKilled         = 1927 // MariaDB ER_CONNECTION_KILLED
	mysqlUserLimitReached   = 1226 // ER_USER_LIMIT_REACHED
	mysqlHostBlocked        = 1129 // ER_HOST_IS_BLOCKED
	mysqlAccountLocked      = 3118 // MySQL ER_ACCOUNT_HAS_BEEN_LOCKED
	mysqlAccountLockedMaria = 4151 // MariaDB ER_ACCOUNT_HAS_BEEN_LOCKED
)

// isUniqueViolation: error 1062 (or 1586) duplicate entry.
func (*mysqlDialect) isUniqueViolation(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == mysqlDupEntry || me.Number == mysqlDupEntryWithKey)
}

// beginAgain: never; the driver answers driver.ErrBadConn for a dead
// pooled connection, and database/sql retries that itself.
func (*mysqlDialect) beginAgain(error, int) bool { return false }

// unavailable reads the server's error number, and recognises the
// driver's errors of a connection that broke or could not be made.
func (*mysqlDialect) unavailable(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case mysqlLockWaitTimeout:
			return ReasonLocked
		case mysqlOptionPrevents, mysqlReadOnlyTx, mysqlReadOnlyMode:
			return ReasonReadOnly
		case mysqlQueryInterrupted, mysqlStatementTimeout, mysqlQueryTimeout:
			return ReasonTimeout
		case mysqlDiskFull, mysqlTableFull:
			return ReasonDiskFull
		case mysqlEngineError:
			return ReasonIO
		case mysqlTooManyConns, mysqlDBAccessDenied, mysqlAccessDenied, mysqlBadDB, mysqlServerShutdown,
			mysqlConnKilled, mysqlUserLimitReached, mysqlHostBlocked, mysqlAccountLocked, mysqlAccountLockedMaria:
			// A server that refuses the login or the database (an account
			// locked, a database dropped) is as good as unreachable.
			return ReasonUnreachable
		}
		return ""
	}
	var netErr net.Error
	switch {
	case errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, mysql.ErrPktSync), errors.Is(err, mysql.ErrPktSyncMul),
		errors.As(err, &netErr), errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonUnreachable
	}
	return ""
}

func (*mysqlDialect) migrations() fs.FS { return subFS(mysqlMigrations, "migrations/mysql") }
