package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What is SQLite's own, beyond the conformance suite (TestSQLiteFile,
// TestSQLiteMemory).

// A SQLite file is in WAL mode, however often it is opened.
func TestSQLiteFileUsesWAL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kavach.db")
	for i := range 3 {
		s, err := Open(ctx, Options{URL: path})
		if err != nil {
			t.Fatalf("Open #%d = %v", i, err)
		}
		var mode string
		if err := s.r.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		if got := s.Path(); got != path {
			t.Errorf("Path() = %q; want %q", got, path)
		}
		_ = s.Close()
	}
}

// ":memory:" is a database of one store: no file, nobody to listen to.
func TestSQLiteMemoryHasNoFileAndNoListener(t *testing.T) {
	t.Parallel()
	s := openStore(t, Options{URL: ":memory:"})
	if p := s.Path(); p != "" {
		t.Errorf("Path() of :memory: = %q; want \"\"", p)
	}
	if s.CanListen() {
		t.Error("CanListen() of :memory: = true; want false")
	}
	// Listen has nothing to watch: it returns at once, having notified
	// nobody and failed nothing.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	notified, failed := false, false
	s.Listen(ctx, func() { notified = true }, func(error) { failed = true })
	if ctx.Err() != nil || notified || failed {
		t.Errorf("Listen on :memory: = returned at ctx end %v, notified %v, failed %v; want at once, neither", ctx.Err() != nil, notified, failed)
	}
}

// Opening a database where none can be says why, in words.
func TestSQLiteOpenErrorsSayWhy(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing", "kavach.db"), "does not exist: create it"},
		{dir, "is a directory: give a file path"},
	} {
		_, err := Open(t.Context(), Options{URL: tc.path})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s) = %v; want %q", tc.path, err, tc.want)
		}
	}
}
