package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// ErrUnavailable is a database that cannot serve the call now: locked by
// another process, read-only, unreachable, or slower than the store's
// timeout. It passes; the same call may succeed later. Inspect with
// IsUnavailable, which also recognises the drivers' own errors.
var ErrUnavailable = errors.New("database unavailable")

// Reasons an unavailable database gives (UnavailableReason).
const (
	ReasonLocked      = "locked"
	ReasonReadOnly    = "read-only"
	ReasonUnreachable = "unreachable"
	ReasonTimeout     = "timeout"
	ReasonDiskFull    = "disk full"
	ReasonIO          = "I/O error"
)

// IsUnavailable reports whether err says the database is unavailable (see
// ErrUnavailable) rather than that the call itself is wrong.
func IsUnavailable(err error) bool { return UnavailableReason(err) != "" }

// UnavailableReason is why err says the database is unavailable, one of
// the Reason constants, or "" when it does not. It reads error codes,
// never messages: each dialect knows its engine's (SQLite result codes,
// PostgreSQL SQLSTATEs, MySQL error numbers, and connection errors).
func UnavailableReason(err error) string {
	if err == nil {
		return ""
	}
	var u *UnavailableError
	switch {
	case errors.As(err, &u):
		return u.Reason
	case errors.Is(err, ErrUnavailable):
		return ReasonUnreachable
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone):
		return ReasonUnreachable
	}
	for _, d := range []dialect{(*sqliteDialect)(nil), (*postgresDialect)(nil), (*mysqlDialect)(nil)} {
		if r := d.unavailable(err); r != "" {
			return r
		}
	}
	return ""
}

// UnavailableError says why and since when the database has failed writes.
// Its message names the reason and the time, never the driver's words
// (which may name hosts and users); Unwrap gives the last failure, for logs.
type UnavailableError struct {
	Reason string
	Since  time.Time
	Err    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("database writes fail (%s) since %s", e.Reason, api.FormatTime(e.Since))
}

func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// writeState is what the last writes said of the database: nil while they
// succeed, the failure once one failed because the database is
// unavailable. Failures of other kinds (a conflict, a missing row) say
// nothing of the database and leave it as it is.
type writeState struct {
	down atomic.Pointer[UnavailableError]
}

// failed records err if it says the database is unavailable.
func (w *writeState) failed(err error, now time.Time) {
	reason := UnavailableReason(err)
	if reason == "" {
		return
	}
	since := now
	if prev := w.down.Load(); prev != nil {
		since = prev.Since
	}
	w.down.Store(&UnavailableError{Reason: reason, Since: since, Err: err})
}

// succeeded records a committed write.
func (w *writeState) succeeded() {
	if w.down.Load() != nil {
		w.down.Store(nil)
	}
}

// Writable is nil while writes to the database succeed, and an
// *UnavailableError from the first write that failed because the database
// was locked, read-only, unreachable or too slow until one succeeds again.
// It never asks the database: decisions' audit rows and Probe keep it
// current.
func (s *Store) Writable() error {
	if u := s.writes.down.Load(); u != nil {
		return u
	}
	return nil
}

// Probe writes the heartbeat row, bounded by the store's timeout, and
// records the outcome for Writable: how the store learns that writes fail,
// or work again, when nothing else writes.
func (s *Store) Probe(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := s.txOn(ctx, s.probe, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `UPDATE write_probe SET at = ? WHERE id = 1`, toMillis(s.now())); err != nil {
			return fmt.Errorf("write probe: %w", err)
		}
		return nil
	})
	if err != nil {
		s.writes.failed(err, s.now())
		return err
	}
	s.writes.succeeded()
	return nil
}

// errStalled ends a scan that received no row for the store's timeout.
var errStalled = errors.New("scan stalled")

// withProgress bounds a scan of a whole table (a full load) by the time
// between rows rather than in all: a large table takes as long as it
// takes, but a scan that stalls for the store's timeout fails. Call
// progress for every row; done returns the scan's error, turned into a
// timeout if the stall ended it.
func (s *Store) withProgress(ctx context.Context) (_ context.Context, progress func(), done func(error) error) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(s.timeout, func() { cancel(errStalled) })
	return ctx, func() { t.Reset(s.timeout) }, func(err error) error {
		t.Stop()
		if err != nil && errors.Is(context.Cause(ctx), errStalled) {
			err = fmt.Errorf("no row for %s: %w", s.timeout, &UnavailableError{Reason: ReasonTimeout, Since: s.now(), Err: err})
		}
		cancel(nil)
		return err
	}
}
