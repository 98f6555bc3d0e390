package store

import (
	"path/filepath"
	"testing"
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
		_ = s.Close()
	}
}
