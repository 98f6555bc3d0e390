package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

// What the store does when the database is locked, read-only or
// unreachable: every call fails within the store's timeout with an error
// IsUnavailable recognises, Writable says so until a write succeeds again,
// and Probe finds out when nothing else writes.

// sqliteCode is an error with a SQLite result code, as modernc.org/sqlite's.
type sqliteCode int

func (c sqliteCode) Error() string { return fmt.Sprintf("sqlite error %d", int(c)) }
func (c sqliteCode) Code() int     { return int(c) }

func TestUnavailableReason(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"other", errors.New("boom"), ""},
		{"not found", fmt.Errorf("agent: %w", ErrNotFound), ""},
		{"conflict", fmt.Errorf("x: %w", ErrConflict), ""},
		{"client gone", context.Canceled, ""},
		{"deadline", fmt.Errorf("begin: %w", context.DeadlineExceeded), ReasonTimeout},
		{"bad conn", driver.ErrBadConn, ReasonUnreachable},
		{"sentinel", fmt.Errorf("x: %w", ErrUnavailable), ReasonUnreachable},
		{"writes down", &UnavailableError{Reason: ReasonReadOnly, Err: errors.New("x")}, ReasonReadOnly},
		{"SQLITE_BUSY", fmt.Errorf("begin: %w", sqliteCode(5)), ReasonLocked},
		{"SQLITE_BUSY_SNAPSHOT", sqliteCode(517), ReasonLocked},
		{"SQLITE_LOCKED", sqliteCode(6), ReasonLocked},
		{"SQLITE_READONLY", sqliteCode(8), ReasonReadOnly},
		{"SQLITE_READONLY_DBMOVED", sqliteCode(1032), ReasonReadOnly},
		{"SQLITE_INTERRUPT", sqliteCode(9), ReasonTimeout},
		{"SQLITE_IOERR_WRITE", sqliteCode(778), ReasonIO},
		{"SQLITE_FULL", sqliteCode(13), ReasonDiskFull},
		{"SQLITE_CONSTRAINT_UNIQUE", sqliteCode(2067), ""},
		{"SQLITE_ERROR", sqliteCode(1), ""},
		{"25006 read-only transaction", &pgconn.PgError{Code: "25006"}, ReasonReadOnly},
		{"55P03 lock not available", &pgconn.PgError{Code: "55P03"}, ReasonLocked},
		{"57014 statement timeout", &pgconn.PgError{Code: "57014"}, ReasonTimeout},
		{"57P01 admin shutdown", &pgconn.PgError{Code: "57P01"}, ReasonUnreachable},
		{"08006 connection failure", &pgconn.PgError{Code: "08006"}, ReasonUnreachable},
		{"53300 too many connections", &pgconn.PgError{Code: "53300"}, ReasonUnreachable},
		{"53100 disk full", &pgconn.PgError{Code: "53100"}, ReasonDiskFull},
		{"23505 unique violation", &pgconn.PgError{Code: "23505"}, ""},
		{"40001 serialization", &pgconn.PgError{Code: "40001"}, ""},
		{"MySQL 1205 lock wait timeout", &mysql.MySQLError{Number: 1205}, ReasonLocked},
		{"MySQL 1290 --read-only", &mysql.MySQLError{Number: 1290}, ReasonReadOnly},
		{"MySQL 1792 read-only transaction", &mysql.MySQLError{Number: 1792}, ReasonReadOnly},
		{"MySQL 1836 read-only mode", &mysql.MySQLError{Number: 1836}, ReasonReadOnly},
		{"MariaDB 1969 max_statement_time", &mysql.MySQLError{Number: 1969}, ReasonTimeout},
		{"MySQL 3024 max_execution_time", &mysql.MySQLError{Number: 3024}, ReasonTimeout},
		{"MySQL 1114 table full", &mysql.MySQLError{Number: 1114}, ReasonDiskFull},
		{"MySQL 1040 too many connections", &mysql.MySQLError{Number: 1040}, ReasonUnreachable},
		{"MySQL 1045 access denied", &mysql.MySQLError{Number: 1045}, ReasonUnreachable},
		{"MariaDB 4151 account locked", &mysql.MySQLError{Number: 4151}, ReasonUnreachable},
		{"MySQL 1053 shutdown", &mysql.MySQLError{Number: 1053}, ReasonUnreachable},
		{"MySQL invalid connection", fmt.Errorf("exec: %w", mysql.ErrInvalidConn), ReasonUnreachable},
		{"MySQL 1062 duplicate entry", &mysql.MySQLError{Number: 1062}, ""},
		{"MySQL 1213 deadlock", &mysql.MySQLError{Number: 1213}, ""},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, ReasonUnreachable},
		{"connection dropped", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), ReasonUnreachable},
	} {
		if got := UnavailableReason(tt.err); got != tt.want {
			t.Errorf("UnavailableReason(%s: %v) = %q; want %q", tt.name, tt.err, got, tt.want)
		}
	}
}

// faultTimeout is the store's timeout in these tests: short, so that they
// are quick, and long enough for a loaded machine's healthy calls.
const faultTimeout = time.Second

// withinTimeout checks that a call that failed on an unavailable database
// took about the store's timeout, not the old 15 s and more: a generous
// bound (a loaded machine running the race detector is slow), never a
// measurement.
func withinTimeout(t *testing.T, what string, took time.Duration) {
	t.Helper()
	if took > 5*faultTimeout {
		t.Errorf("%s failed after %v; want within about the store's timeout (%v)", what, took, faultTimeout)
	}
}

// holdExclusive takes SQLite's exclusive lock on the file from a
// connection of its own, as another process's BEGIN EXCLUSIVE would, and
// returns the function that releases it.
func holdExclusive(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)") // wait out a fold or batch in flight
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), `BEGIN EXCLUSIVE`); err != nil {
		t.Fatalf("BEGIN EXCLUSIVE = %v", err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
			t.Errorf("ROLLBACK = %v", err)
		}
		_ = conn.Close()
		_ = db.Close()
	}
	t.Cleanup(release)
	return release
}

// rateUse is a consuming decision's audit row and the call it counts.
func rateUse(agentID string) (domain.AuditEntry, Consumption) {
	e := domain.AuditEntry{AgentID: agentID, Action: "read", Resource: "r", Result: domain.ResultAllowed, Code: "allowed"}
	return e, Consumption{Rates: []RateEvent{{AgentID: agentID, PermKey: "k", Resource: "r", Limit: 100}}}
}

// checkFails checks that a write fails on an unavailable database within
// about the store's timeout, with an error IsUnavailable recognises.
func checkFails(t *testing.T, what string, fn func() error) {
	t.Helper()
	start := time.Now()
	err := fn()
	took := time.Since(start)
	if err == nil || !IsUnavailable(err) {
		t.Errorf("%s = %v; want an error IsUnavailable recognises", what, err)
	}
	withinTimeout(t, what, took)
}

// checkWritesWork checks that writes succeed and Writable says so.
func checkWritesWork(t *testing.T, s *Store, agentID string) {
	t.Helper()
	ctx := t.Context()
	if err := s.Probe(ctx); err != nil {
		t.Errorf("Probe = %v; want nil", err)
	}
	if err := s.Writable(); err != nil {
		t.Errorf("Writable = %v; want nil", err)
	}
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: agentID, Action: "read", Resource: "r", Result: domain.ResultDenied, Code: "denied"}, Consumption{}); err != nil {
		t.Errorf("InsertAudit = %v; want nil", err)
	}
	e, use := rateUse(agentID)
	if _, err := s.InsertAudit(ctx, e, use); err != nil {
		t.Errorf("InsertAudit(consuming) = %v; want nil", err)
	}
}

// checkWritesFail checks that every kind of write fails, within about the
// store's timeout, and that Writable then gives the reason.
func checkWritesFail(t *testing.T, s *Store, agentID string, reasons ...string) {
	t.Helper()
	ctx := t.Context()
	checkFails(t, "InsertAudit", func() error {
		_, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: agentID, Action: "read", Resource: "r", Result: domain.ResultDenied, Code: "denied"}, Consumption{})
		return err
	})
	checkFails(t, "InsertAudit(consuming)", func() error {
		e, use := rateUse(agentID)
		_, err := s.InsertAudit(ctx, e, use)
		return err
	})
	checkFails(t, "Probe", func() error { return s.Probe(ctx) })
	checkFails(t, "CreateAgent", func() error {
		_, err := s.CreateAgent(ctx, newAgent("owner", fmt.Sprintf("h-%d", time.Now().UnixNano())), 0)
		return err
	})
	var u *UnavailableError
	if err := s.Writable(); !errors.As(err, &u) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Writable = %v; want an *UnavailableError", err)
	}
	ok := false
	for _, r := range reasons {
		ok = ok || u.Reason == r
	}
	if !ok {
		t.Errorf("Writable = %v (reason %q); want one of %q", u, u.Reason, reasons)
	}
}

// Another process holding BEGIN EXCLUSIVE on the file: writes fail within
// the timeout (SQLite waits for the lock half as long), reads go on (WAL),
// and everything works again once the lock is released.
func TestSQLiteExclusiveLockFailsWritesWithinTimeout(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kavach.db")
	s := openStore(t, Options{URL: path, Timeout: faultTimeout})
	a := contractAgents(t, s, "owner", 1)[0]
	checkWritesWork(t, s, a.ID)

	release := holdExclusive(t, path)
	checkWritesFail(t, s, a.ID, ReasonLocked, ReasonTimeout)
	if _, err := s.GetAgent(t.Context(), a.ID); err != nil {
		t.Errorf("GetAgent under another's write lock = %v; want the agent (WAL readers do not wait)", err)
	}

	release()
	checkWritesWork(t, s, a.ID)
}

// A database that has become read-only: writes fail with the reason, and
// work again once it is writable.
func TestSQLiteReadOnlyFailsWrites(t *testing.T) {
	t.Parallel()
	s := openStore(t, Options{URL: filepath.Join(t.TempDir(), "kavach.db"), Timeout: faultTimeout})
	a := contractAgents(t, s, "owner", 1)[0]
	// The writer and the probe are one connection each: query_only makes
	// them fail every write with SQLITE_READONLY, as a file opened
	// read-only does.
	queryOnly := func(on int) {
		for _, h := range []db{s.w, s.probe} {
			if _, err := h.ExecContext(t.Context(), fmt.Sprintf(`PRAGMA query_only(%d)`, on)); err != nil {
				t.Fatal(err)
			}
		}
	}
	queryOnly(1)
	checkWritesFail(t, s, a.ID, ReasonReadOnly)
	queryOnly(0)
	checkWritesWork(t, s, a.ID)
}

// The file itself read-only when the sidecar starts (mode 0444): it opens
// and reads, and every write fails as read-only. Root writes through file
// modes, so the test needs another user.
func TestSQLiteReadOnlyFileAfterRestart(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root writes through mode 0444; TestSQLiteReadOnlyFailsWrites covers the same error")
	}
	path := filepath.Join(t.TempDir(), "kavach.db")
	s, err := Open(t.Context(), Options{URL: path})
	if err != nil {
		t.Fatal(err)
	}
	a := contractAgents(t, s, "owner", 1)[0]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, Options{URL: path, Timeout: faultTimeout})
	if _, err := s.GetAgent(t.Context(), a.ID); err != nil {
		t.Errorf("GetAgent on a read-only file = %v; want the agent", err)
	}
	checkWritesFail(t, s, a.ID, ReasonReadOnly)
}

// PostgreSQL read-only (default_transaction_read_only) and then refusing
// connections: writes fail with the reason, reads too when it is down,
// and everything works again when it is back.
func TestPostgresReadOnlyAndOutage(t *testing.T) {
	t.Parallel()
	role, url := pgtest.NewRole(t, pgtest.URL(t))
	s := openStore(t, Options{URL: url, Timeout: faultTimeout})
	a := contractAgents(t, s, "owner", 1)[0]
	checkWritesWork(t, s, a.ID)

	role.SetReadOnly(t, true)
	// The first calls may meet the connections the server just ended.
	waitProbe(t, s, ReasonReadOnly)
	checkWritesFail(t, s, a.ID, ReasonReadOnly)
	role.SetReadOnly(t, false)
	waitProbe(t, s, "")
	checkWritesWork(t, s, a.ID)

	checkOutage(t, s, a.ID, role)
}

// checkOutage makes the server refuse the store's login: writes fail as
// unreachable, reads too, and everything works again once it is back.
func checkOutage(t *testing.T, s *Store, agentID string, login interface{ SetReachable(testing.TB, bool) }) {
	t.Helper()
	login.SetReachable(t, false)
	waitProbe(t, s, ReasonUnreachable)
	checkWritesFail(t, s, agentID, ReasonUnreachable)
	checkFails(t, "GetAgent", func() error { _, err := s.GetAgent(t.Context(), agentID); return err })
	checkFails(t, "CountCalls", func() error { _, err := s.CountCalls(t.Context(), agentID, "r", time.Time{}); return err })
	login.SetReachable(t, true)
	waitProbe(t, s, "")
	checkWritesWork(t, s, agentID)
}

// MySQL locked (a row another session holds) and then refusing a user's
// connections (the account locked, its sessions ended): writes fail with
// the reason, reads too when it is down, and everything works again when
// it is back. (Read-only cannot be set for one user or database without
// touching the shared server: its error numbers are checked in
// TestUnavailableReason.)
func TestMySQLLockedAndOutage(t *testing.T) {
	t.Parallel()
	user, url := mysqltest.NewUser(t, mysqltest.URL(t))
	s := openStore(t, Options{URL: url, Timeout: faultTimeout})
	a := contractAgents(t, s, "owner", 1)[0]
	checkWritesWork(t, s, a.ID)

	// Another replica holds the probe's row: the probe waits out
	// innodb_lock_wait_timeout (the store's timeout) or the deadline.
	locker := openStore(t, Options{URL: url})
	tx, err := locker.w.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(t.Context(), `SELECT at FROM write_probe WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	checkFails(t, "Probe", func() error { return s.Probe(t.Context()) })
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitProbe(t, s, "")
	checkOutage(t, s, a.ID, user)
}

// waitProbe probes until Writable gives reason ("": writable), for at most
// a few seconds.
func waitProbe(t *testing.T, s *Store, reason string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = s.Probe(t.Context())
		got := ""
		var u *UnavailableError
		if errors.As(s.Writable(), &u) {
			got = u.Reason
		}
		if got == reason {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Writable after probing = %v; want reason %q", s.Writable(), reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A read that does not return within the timeout fails (a table another
// session holds locked): reads are bounded too, and so is a full load,
// which waits at most the timeout for each row.
func TestPostgresReadsAreBounded(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	s := openStore(t, Options{URL: url, Timeout: faultTimeout})
	a := contractAgents(t, s, "owner", 1)[0]
	ctx := t.Context()
	locker := openStore(t, Options{URL: url})
	tx, err := locker.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `LOCK TABLE agents, changes IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	checkFails(t, "GetAgent", func() error { _, err := s.GetAgent(ctx, a.ID); return err })
	checkFails(t, "EachAgent", func() error { return s.EachAgent(ctx, func(domain.Agent) error { return nil }) })
	checkFails(t, "ChangesSince", func() error { _, err := s.ChangesSince(ctx, 0, 10); return err })
	checkFails(t, "LatestChange", func() error { _, err := s.LatestChange(ctx); return err })
	if err := s.Writable(); err != nil {
		t.Errorf("Writable after failed reads = %v; want nil (reads say nothing of writes)", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAgent(ctx, a.ID); err != nil {
		t.Errorf("GetAgent after the lock = %v", err)
	}
}

// The SQLite busy timeout is half the store's timeout, so that waiting
// for another process's lock ends inside the deadline of the call.
func TestSQLiteBusyTimeoutIsShorterThanTheTimeout(t *testing.T) {
	t.Parallel()
	for _, timeout := range []time.Duration{100 * time.Millisecond, DefaultTimeout, time.Minute} {
		s := openStore(t, Options{URL: filepath.Join(t.TempDir(), "kavach.db"), Timeout: timeout})
		for name, h := range map[string]db{"writer": s.w, "reader": s.r, "probe": s.probe} {
			var ms int64
			if err := h.QueryRowContext(t.Context(), `PRAGMA busy_timeout`).Scan(&ms); err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(ms) * time.Millisecond; got != timeout/2 {
				t.Errorf("Timeout %v: %s busy_timeout = %v; want %v", timeout, name, got, timeout/2)
			}
		}
		if s.Timeout() != timeout {
			t.Errorf("Timeout() = %v; want %v", s.Timeout(), timeout)
		}
	}
	if s := openStore(t, Options{URL: ":memory:"}); s.Timeout() != DefaultTimeout {
		t.Errorf("Timeout() by default = %v; want %v", s.Timeout(), DefaultTimeout)
	}
}

// A burst of audit rows held up by a locked database: every caller is told
// the decision failed, and none of their rows is written afterwards (a
// batch ends when its callers stop waiting; a row whose caller has gone is
// not written), so the log holds no decision that was not given. Once the
// lock goes, the next row commits at once.
func TestSQLiteLockedBurstLeavesNoRow(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kavach.db")
	s := openStore(t, Options{URL: path, Timeout: faultTimeout})
	release := holdExclusive(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			_, err := s.InsertAudit(t.Context(), domain.AuditEntry{Action: "read", Resource: "r", Result: domain.ResultDenied, Code: "denied"}, Consumption{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !IsUnavailable(err) {
			t.Errorf("InsertAudit under the lock = %v; want unavailable", err)
		}
	}
	release()
	// The writer may still be finishing the batch it had begun: give it
	// the one timeout a batch may take, not one per row.
	ctx, cancel := context.WithTimeout(t.Context(), 2*faultTimeout)
	defer cancel()
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{Action: "read", Resource: "r", Result: domain.ResultDenied, Code: "denied"}, Consumption{}); err != nil {
		t.Errorf("InsertAudit after the lock = %v; want nil", err)
	}
	// The queue is first in, first out: every row of the burst has been
	// dealt with before this one committed.
	rows, _, err := s.QueryAudit(t.Context(), AuditFilter{Kind: domain.KindDecision, Limit: 100})
	if err != nil || len(rows) != 1 {
		t.Errorf("audit rows after the lock = %d, %v; want 1 (none of the failed burst)", len(rows), err)
	}
}

// In async mode a row nobody waits for is refused while writes fail,
// rather than accepted and lost, and accepted again once they succeed.
func TestAsyncAuditRefusedWhileWritesFail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kavach.db")
	s := openStore(t, Options{URL: path, Timeout: faultTimeout, AuditAsync: true})
	row := domain.AuditEntry{Action: "read", Resource: "r", Result: domain.ResultDenied, Code: "denied"}
	release := holdExclusive(t, path)
	checkFails(t, "Probe", func() error { return s.Probe(t.Context()) })
	if _, err := s.InsertAudit(t.Context(), row, Consumption{}); !IsUnavailable(err) {
		t.Errorf("async InsertAudit while writes fail = %v; want unavailable", err)
	}
	release()
	if err := s.Probe(t.Context()); err != nil {
		t.Fatalf("Probe after the lock = %v", err)
	}
	if _, err := s.InsertAudit(t.Context(), row, Consumption{}); err != nil {
		t.Errorf("async InsertAudit once writes work = %v; want nil", err)
	}
}
