package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	_ "modernc.org/sqlite" // pure-Go SQLite driver, no cgo
)

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

// sqliteDialect is SQLite through modernc.org/sqlite: a file (or
// ":memory:"), one writer connection, immediate transactions. Because
// every write transaction takes the database's write lock at BEGIN, write
// transactions run one at a time, across processes too: no row or
// advisory lock is needed.
type sqliteDialect struct {
	standardSQL
	url string
	// path is the database file ("" for :memory:).
	path string
	// busy is how long a statement waits for another connection's lock.
	busy time.Duration
}

var _ dialect = (*sqliteDialect)(nil)

func newSQLiteDialect(opts Options) *sqliteDialect {
	d := &sqliteDialect{url: opts.URL, busy: busyTimeout(cmp.Or(opts.Timeout, DefaultTimeout))}
	if opts.URL != ":memory:" {
		d.path = strings.TrimPrefix(opts.URL, "file:")
	}
	return d
}

func (*sqliteDialect) name() string { return "sqlite" }

func (*sqliteDialect) inProcess() bool { return true }

func (d *sqliteDialect) open(context.Context) (conns, error) {
	if err := checkSQLitePath(d.path); err != nil {
		return conns{}, err
	}
	w, err := sql.Open("sqlite", sqliteDSN(d.url, false, d.busy))
	if err != nil {
		return conns{}, fmt.Errorf("open %s: %w", d.url, err)
	}
	// One writer connection: SQLite has one writer anyway, and one
	// connection avoids SQLITE_BUSY between our own goroutines.
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if d.path == "" {
		// Every connection to ":memory:" is its own database: share the one.
		return conns{w: w, r: w, probe: w}, nil
	}
	// Readers read concurrently with the writer thanks to WAL.
	r, err := sql.Open("sqlite", sqliteDSN(d.url, true, d.busy))
	if err != nil {
		_ = w.Close()
		return conns{}, fmt.Errorf("open %s: %w", d.url, err)
	}
	r.SetMaxOpenConns(8)
	// The write probe's own connection: a probe waiting for another
	// process's lock must not hold the writer the audit rows need. It
	// writes a few times a minute, taking its turn on SQLite's lock.
	p, err := sql.Open("sqlite", sqliteDSN(d.url, false, d.busy))
	if err != nil {
		_ = w.Close()
		_ = r.Close()
		return conns{}, fmt.Errorf("open %s: %w", d.url, err)
	}
	p.SetMaxOpenConns(1)
	return conns{w: w, r: r, probe: p, file: d.path}, nil
}

func (*sqliteDialect) close() {}

// busyTimeout is how long SQLite waits for a lock another process holds:
// half the store's timeout, so that a write blocked by a lock fails with
// SQLITE_BUSY well inside the deadline of the call that waits for it
// (the batch's writer may have waited for the connection first).
func busyTimeout(timeout time.Duration) time.Duration {
	return max(timeout/2, time.Millisecond)
}

// sqliteDSN is the modernc.org/sqlite DSN of a path (or ":memory:"), with
// the pragmas every connection runs; busy is the busy_timeout.
func sqliteDSN(path string, readOnly bool, busy time.Duration) string {
	pragmas := []string{
		fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()),
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

// rebind leaves the "?" placeholders: SQLite takes them.
func (*sqliteDialect) rebind(query string) string { return query }

// lockRow is "": the immediate transaction already holds the write lock.
func (*sqliteDialect) lockRow() string { return "" }

func (*sqliteDialect) skipLocked() string { return "" }

// advisoryLock does nothing: the immediate transaction already holds the
// write lock, which no other transaction, of any process, can share.
func (*sqliteDialect) advisoryLock(context.Context, *txn, lockName) error { return nil }

// notifyChange does nothing: listen sees the file change.
func (*sqliteDialect) notifyChange(context.Context, *txn, int64) error { return nil }

func (d *sqliteDialect) canListen() bool { return d.path != "" }

// listen watches the database file and its WAL for writes (any write: the
// reader then asks the feed). ":memory:" has no file and nobody else to
// hear from: listen returns at once.
func (d *sqliteDialect) listen(ctx context.Context, notify func(), onError func(error)) {
	if d.path == "" {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		onError(fmt.Errorf("watch %s: %w", d.path, err))
		return
	}
	defer w.Close()
	// The directory, not the files: the WAL comes and goes.
	if err := w.Add(filepath.Dir(d.path)); err != nil {
		onError(fmt.Errorf("watch %s: %w", d.path, err))
		return
	}
	base := filepath.Base(d.path)
	notify()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if strings.HasPrefix(filepath.Base(ev.Name), base) && ev.Has(fsnotify.Write) {
				notify()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			onError(fmt.Errorf("watch %s: %w", d.path, err))
		}
	}
}

// isUniqueViolation: modernc.org/sqlite reports SQLITE_CONSTRAINT_UNIQUE
// (2067) and SQLITE_CONSTRAINT_PRIMARYKEY (1555) through an error with a
// Code method.
func (*sqliteDialect) isUniqueViolation(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		return coded.Code() == 2067 || coded.Code() == 1555
	}
	return false
}

// unavailable reads the primary result code (the low byte of an extended
// one): SQLITE_BUSY and SQLITE_LOCKED (another connection holds the lock
// past busy_timeout), SQLITE_READONLY, SQLITE_INTERRUPT (the context ended
// the statement), SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
func (*sqliteDialect) unavailable(err error) string {
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return ""
	}
	switch coded.Code() & 0xff {
	case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
		return ReasonLocked
	case 8: // SQLITE_READONLY
		return ReasonReadOnly
	case 9: // SQLITE_INTERRUPT
		return ReasonTimeout
	case 10: // SQLITE_IOERR
		return ReasonIO
	case 13: // SQLITE_FULL
		return ReasonDiskFull
	case 14: // SQLITE_CANTOPEN
		return ReasonUnreachable
	}
	return ""
}

func (*sqliteDialect) migrations() fs.FS { return subFS(sqliteMigrations, "migrations/sqlite") }

// subFS is dir of an embedded tree; dir is a constant known to exist.
func subFS(fsys embed.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("migrations %s: %v", dir, err))
	}
	return sub
}

// checkSQLitePath says why a database file cannot be opened, in words,
// before SQLite would say "unable to open database file (14)" whatever the
// cause: a missing directory, a directory in the file's place, or one
// where the file cannot be created.
func checkSQLitePath(path string) error {
	if path == "" {
		return nil
	}
	path, _, _ = strings.Cut(path, "?") // a file: URI's parameters
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("database %s: the directory %s does not exist: create it, or give another path", path, dir)
	case err != nil:
		return fmt.Errorf("database %s: %w", path, err)
	case !st.IsDir():
		return fmt.Errorf("database %s: %s is not a directory", path, dir)
	}
	st, err = os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return fmt.Errorf("database %s is a directory: give a file path, such as %s", path, filepath.Join(path, "kavach.db"))
	case errors.Is(err, fs.ErrNotExist):
		// It will be created: the directory must take a new file.
		f, cerr := os.CreateTemp(dir, ".kavach-probe-*")
		if cerr != nil {
			return fmt.Errorf("database %s cannot be created: %w", path, cerr)
		}
		_ = f.Close()
		_ = os.Remove(f.Name())
	case err != nil:
		return fmt.Errorf("database %s: %w", path, err)
	}
	return nil
}
