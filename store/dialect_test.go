package store

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

// The SQL pieces each dialect hands the store. (What they do against a real
// database is the conformance suite's: locks in the replica tests,
// isUniqueViolation behind every ErrConflict, listen in ChangeFeed.)
func TestDialectSQL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		d         dialect
		name      string
		forUpdate string
		rebind    map[string]string
	}{
		{newSQLiteDialect(Options{URL: ":memory:"}), "sqlite", "", map[string]string{
			`SELECT 1`:                        `SELECT 1`,
			`SELECT ? + ? FROM t WHERE a = ?`: `SELECT ? + ? FROM t WHERE a = ?`,
		}},
		{newPostgresDialect(Options{URL: "postgres://u@h/db"}), "postgres", " FOR UPDATE", map[string]string{
			`SELECT 1`:                                 `SELECT 1`,
			`SELECT * FROM t WHERE a = ?`:              `SELECT * FROM t WHERE a = $1`,
			`INSERT INTO t (a, b, c) VALUES (?, ?, ?)`: `INSERT INTO t (a, b, c) VALUES ($1, $2, $3)`,
			`UPDATE t SET a = ? WHERE id IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`: `UPDATE t SET a = $1 WHERE id IN ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		}},
	} {
		if got := tt.d.name(); got != tt.name {
			t.Errorf("%T.name() = %q; want %q", tt.d, got, tt.name)
		}
		if got := tt.d.lockRow(); got != tt.forUpdate {
			t.Errorf("%s lockRow() = %q; want %q", tt.name, got, tt.forUpdate)
		}
		for in, want := range tt.rebind {
			if got := tt.d.rebind(in); got != want {
				t.Errorf("%s rebind(%q) = %q; want %q", tt.name, in, got, want)
			}
		}
		// Only the driver's code counts, never the message.
		for _, err := range []error{nil, errors.New("UNIQUE constraint failed: agents.token_hash"),
			fmt.Errorf("insert: %w", errors.New("duplicate key value violates unique constraint"))} {
			if tt.d.isUniqueViolation(err) {
				t.Errorf("%s isUniqueViolation(%v) = true; want false", tt.name, err)
			}
		}
		ms, err := readMigrations(tt.d.migrations())
		if err != nil || len(ms) == 0 || ms[0].version != 1 {
			t.Errorf("%s migrations = %d, %v; want them from version 1", tt.name, len(ms), err)
		}
		if _, err := fs.Stat(tt.d.migrations(), "0001_init.sql"); err != nil {
			t.Errorf("%s migrations: %v; want 0001_init.sql at the root", tt.name, err)
		}
	}
}
