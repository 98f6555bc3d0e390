// Package kavachostest writes databases shaped as KavachOS v0.2.1 writes
// them (packages/core/src/db/migrations.ts: INTEGER seconds, TEXT JSON on
// SQLite; TIMESTAMPTZ, JSONB on PostgreSQL; DATETIME(3), JSON on MySQL),
// with agents, tokens and hashes made as KavachOS makes them, for the
// tests and the measurements of kavach import --kavachos.
package kavachostest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver

	"github.com/kavach-dev/kavach/internal/pgtest"
)

// Flavors of database KavachOS runs on.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
	MySQL    = "mysql"
)

// DB is a KavachOS-shaped database being written.
type DB struct {
	// URL is what kavach import --kavachos takes.
	URL    string
	db     *sql.DB
	flavor string
}

// New creates an empty KavachOS database of flavor for t: a SQLite file
// in t's directory, a fresh PostgreSQL schema, or a fresh MySQL database
// (kavachos_src_<random>, dropped when t ends). A server that cannot be
// reached fails the test when CI=true, and skips it otherwise.
func New(t testing.TB, flavor string) *DB {
	t.Helper()
	var d *DB
	var err error
	switch flavor {
	case SQLite:
		d, err = Create(t.Context(), filepath.Join(t.TempDir(), "kavachos.db"))
	case Postgres:
		d, err = Create(t.Context(), pgtest.URL(t))
	case MySQL:
		d, err = Create(t.Context(), mysqlDatabase(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// Create makes the KavachOS tables in an empty database: a SQLite path,
// a postgres:// URL or a mysql:// URL.
func Create(ctx context.Context, raw string) (*DB, error) {
	d := &DB{URL: raw}
	var err error
	switch {
	case strings.HasPrefix(raw, "postgres://"):
		d.flavor = Postgres
		d.db, err = sql.Open("pgx", raw)
	case strings.HasPrefix(raw, "mysql://"):
		d.flavor = MySQL
		u, perr := url.Parse(raw)
		if perr != nil {
			return nil, perr
		}
		cfg := mysql.NewConfig()
		cfg.Net, cfg.Addr, cfg.DBName, cfg.User = "tcp", u.Host, strings.TrimPrefix(u.Path, "/"), u.User.Username()
		cfg.ParseTime, cfg.Loc = true, time.UTC
		d.db, err = sql.Open("mysql", cfg.FormatDSN())
	default:
		d.flavor = SQLite
		d.db, err = sql.Open("sqlite", "file:"+raw+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
		d.db.SetMaxOpenConns(1)
	}
	if err != nil {
		return nil, err
	}
	for _, stmt := range schema(d.flavor) {
		if _, err := d.db.ExecContext(ctx, stmt); err != nil {
			_ = d.db.Close()
			return nil, fmt.Errorf("create KavachOS table: %w\n%s", err, stmt)
		}
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// mysqlDatabase creates a database of the test's own on the machine's
// MariaDB (KAVACH_TEST_MYSQL_URL, default root on 127.0.0.1:3306).
func mysqlDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("KAVACH_TEST_MYSQL_URL")
	if base == "" {
		base = "mysql://root@127.0.0.1:3306/"
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User = "tcp", u.Host, u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err == nil {
		err = admin.PingContext(t.Context())
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MySQL at %s is not reachable: %v", u.Host, err)
		}
		t.Skipf("MySQL at %s is not reachable: %v", u.Host, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kavachos_src_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE "+name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// schema is KavachOS's DDL for the tables the import reads (and the users
// they refer to), in flavor's types. KavachOS's own DDL declares TEXT
// primary keys, which MySQL refuses (a key needs a length), so on MySQL
// keys are VARCHAR(191), as a MySQL schema of KavachOS must have them.
func schema(flavor string) []string {
	ts, json, key := "INTEGER", "TEXT", "TEXT"
	switch flavor {
	case Postgres:
		ts, json = "TIMESTAMPTZ", "JSONB"
	case MySQL:
		ts, json, key = "DATETIME(3)", "JSON", "VARCHAR(191)"
	}
	r := strings.NewReplacer("$ts", ts, "$json", json, "$key", key)
	stmts := []string{
		`CREATE TABLE kavach_users (id $key NOT NULL PRIMARY KEY, email TEXT NOT NULL, name TEXT, metadata $json,
			created_at $ts NOT NULL, updated_at $ts NOT NULL)`,
		`CREATE TABLE kavach_tenants (id $key NOT NULL PRIMARY KEY, name TEXT NOT NULL, slug TEXT NOT NULL, settings $json,
			status TEXT NOT NULL, created_at $ts NOT NULL, updated_at $ts NOT NULL)`,
		`CREATE TABLE kavach_agents (id $key NOT NULL PRIMARY KEY, owner_id $key NOT NULL REFERENCES kavach_users(id),
			tenant_id $key REFERENCES kavach_tenants(id), name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
			token_hash TEXT NOT NULL, token_prefix TEXT NOT NULL, expires_at $ts, last_active_at $ts, metadata $json,
			created_at $ts NOT NULL, updated_at $ts NOT NULL)`,
		`CREATE TABLE kavach_permissions (id $key NOT NULL PRIMARY KEY, agent_id $key NOT NULL REFERENCES kavach_agents(id) ON DELETE CASCADE,
			resource TEXT NOT NULL, actions $json NOT NULL, constraints $json, created_at $ts NOT NULL)`,
		`CREATE TABLE kavach_delegation_chains (id $key NOT NULL PRIMARY KEY, from_agent_id $key NOT NULL REFERENCES kavach_agents(id),
			to_agent_id $key NOT NULL REFERENCES kavach_agents(id), permissions $json NOT NULL, depth INTEGER NOT NULL DEFAULT 1,
			max_depth INTEGER NOT NULL DEFAULT 3, status TEXT NOT NULL, expires_at $ts NOT NULL, created_at $ts NOT NULL)`,
		`CREATE TABLE kavach_audit_logs (id $key NOT NULL PRIMARY KEY, agent_id $key NOT NULL REFERENCES kavach_agents(id),
			user_id $key NOT NULL REFERENCES kavach_users(id), action TEXT NOT NULL, resource TEXT NOT NULL, parameters $json,
			result TEXT NOT NULL, reason TEXT, duration_ms INTEGER NOT NULL, tokens_cost INTEGER, ip TEXT, user_agent TEXT,
			timestamp $ts NOT NULL)`,
		`CREATE TABLE kavach_approval_requests (id $key NOT NULL PRIMARY KEY, agent_id $key NOT NULL REFERENCES kavach_agents(id) ON DELETE CASCADE,
			user_id $key NOT NULL REFERENCES kavach_users(id), action TEXT NOT NULL, resource TEXT NOT NULL, arguments $json,
			status TEXT NOT NULL, expires_at $ts NOT NULL, responded_at $ts, responded_by TEXT, created_at $ts NOT NULL)`,
	}
	for i, s := range stmts {
		stmts[i] = r.Replace(s)
	}
	return stmts
}

// time is t as flavor stores it: Unix seconds on SQLite (drizzle's
// "timestamp" mode), a time elsewhere.
func (d *DB) time(t time.Time) any {
	if d.flavor == SQLite {
		return t.Unix()
	}
	return t.UTC()
}

func (d *DB) timePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.time(*t)
}

// exec runs q, written with ? placeholders.
func (d *DB) exec(ctx context.Context, q string, args ...any) error {
	for n := 1; d.flavor == Postgres && strings.Contains(q, "?"); n++ {
		q = strings.Replace(q, "?", "$"+strconv.Itoa(n), 1)
	}
	_, err := d.db.ExecContext(ctx, q, args...)
	return err
}

// NewToken makes a token as KavachOS does (agent.ts generateAgentToken):
// "kv_" and 32 random bytes in unpadded base64url, stored as the SHA-256
// hex of the token, its first 11 characters as the prefix.
func NewToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = "kv_" + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:])
}

// GeneratedAgent is the ID and token Generate gives its i-th agent
// (derived from i, so a benchmark can call any of them by ID or token),
// and whether that agent is active (every tenth is revoked).
func GeneratedAgent(i int) (id, token string, active bool) {
	seed := sha256.Sum256([]byte("kavachostest agent " + strconv.Itoa(i)))
	token = "kv_" + base64.RawURLEncoding.EncodeToString(seed[:])
	return uuid(seed[16:]), token, i%10 != 9
}

// NewID makes an ID as KavachOS does: crypto.randomUUID().
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return uuid(b[:])
}

// uuid formats 16 bytes as a version-4 UUID.
func uuid(src []byte) string {
	var b [16]byte
	copy(b[:], src)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// User inserts a kavach_users row.
func (d *DB) User(ctx context.Context, id string, at time.Time) error {
	return d.exec(ctx, `INSERT INTO kavach_users (id, email, created_at, updated_at) VALUES (?, ?, ?, ?)`,
		id, id+"@example.com", d.time(at), d.time(at))
}

// Permission is a KavachOS permission; Constraints is its JSON object.
type Permission struct {
	Resource    string
	Actions     []string
	Constraints map[string]any
}

// Agent is a kavach_agents row to write.
type Agent struct {
	ID, OwnerID, TenantID, Name, Type, Status string
	ExpiresAt                                 *time.Time
	Metadata                                  map[string]any
	CreatedAt, UpdatedAt                      time.Time
	Permissions                               []Permission
}

// Agent inserts a and its permissions, with a token made as KavachOS
// makes one, and returns the token.
func (d *DB) Agent(ctx context.Context, a Agent) (string, error) {
	token, hash := NewToken()
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = a.CreatedAt
	}
	meta, _ := json.Marshal(a.Metadata) // a map of plain values
	var tenant any
	if a.TenantID != "" {
		tenant = a.TenantID
	}
	if err := d.exec(ctx, `INSERT INTO kavach_agents (id, owner_id, tenant_id, name, type, status, token_hash, token_prefix,
		expires_at, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.OwnerID, tenant, a.Name, a.Type, a.Status, hash, token[:11], d.timePtr(a.ExpiresAt), string(meta),
		d.time(a.CreatedAt), d.time(a.UpdatedAt)); err != nil {
		return "", fmt.Errorf("insert agent: %w", err)
	}
	for i, p := range a.Permissions {
		// KavachOS reads an agent's permissions in the engine's scan
		// order: insertion order on SQLite and PostgreSQL, the (random)
		// ID order on MySQL. IDs that sort as they are inserted make the
		// order the same on all three, so one test's expectations hold.
		id := fmt.Sprintf("%08x", i) + NewID()[8:]
		actions, _ := json.Marshal(p.Actions) // strings
		var constraints any
		if p.Constraints != nil {
			b, _ := json.Marshal(p.Constraints) // plain values
			constraints = string(b)
		}
		if err := d.exec(ctx, `INSERT INTO kavach_permissions (id, agent_id, resource, actions, constraints, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id, a.ID, p.Resource, string(actions), constraints, d.time(a.CreatedAt)); err != nil {
			return "", fmt.Errorf("insert permission: %w", err)
		}
	}
	return token, nil
}

// Rotate gives agent id a new token, as KavachOS's rotate does, and
// returns it: the old one stops working.
func (d *DB) Rotate(ctx context.Context, id string, at time.Time) (string, error) {
	token, hash := NewToken()
	return token, d.exec(ctx, `UPDATE kavach_agents SET token_hash = ?, token_prefix = ?, updated_at = ? WHERE id = ?`,
		hash, token[:11], d.time(at), id)
}

// Delegation inserts a kavach_delegation_chains row: permissions as
// KavachOS stores them, without constraints.
func (d *DB) Delegation(ctx context.Context, id, from, to string, perms []Permission, depth, maxDepth int, status string, expires, created time.Time) error {
	type row struct {
		Resource string   `json:"resource"`
		Actions  []string `json:"actions"`
	}
	rows := make([]row, len(perms))
	for i, p := range perms {
		rows[i] = row{p.Resource, p.Actions}
	}
	b, _ := json.Marshal(rows) // strings
	return d.exec(ctx, `INSERT INTO kavach_delegation_chains (id, from_agent_id, to_agent_id, permissions, depth, max_depth, status,
		expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, from, to, string(b), depth, maxDepth, status, d.time(expires), d.time(created))
}

// Audit inserts a kavach_audit_logs row.
func (d *DB) Audit(ctx context.Context, id, agentID, userID, action, resource, result, reason string, at time.Time) error {
	return d.exec(ctx, `INSERT INTO kavach_audit_logs (id, agent_id, user_id, action, resource, parameters, result, reason,
		duration_ms, tokens_cost, ip, user_agent, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, agentID, userID, action, resource, `{"path":"/tmp/x"}`, result, reason, 3, 42, "10.0.0.1", "agent/1.0", d.time(at))
}

// Approval inserts a kavach_approval_requests row.
func (d *DB) Approval(ctx context.Context, id, agentID, userID, action, resource, status string, expires, created time.Time) error {
	return d.exec(ctx, `INSERT INTO kavach_approval_requests (id, agent_id, user_id, action, resource, arguments, status, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, agentID, userID, action, resource, `{"env":"prod"}`, status, d.time(expires), d.time(created))
}

// Generate writes n agents to the SQLite KavachOS database at path, for
// measurements: each with two permissions (one constrained), one audit
// row, every tenth revoked; in transactions of 10,000 agents.
func Generate(ctx context.Context, path string, n int) error {
	d, err := Create(ctx, path)
	if err != nil {
		return err
	}
	defer d.Close()
	now := time.Now()
	if err := d.User(ctx, "user-1", now); err != nil {
		return err
	}
	const perTx = 10_000
	for done := 0; done < n; done += perTx {
		if err := d.generate(ctx, done, min(n, done+perTx), n, now); err != nil {
			return err
		}
	}
	return nil
}

// generate writes agents from to to (of n) in one transaction.
func (d *DB) generate(ctx context.Context, from, to, n int, now time.Time) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	agent, err := tx.PrepareContext(ctx, `INSERT INTO kavach_agents (id, owner_id, name, type, status, token_hash, token_prefix,
		expires_at, metadata, created_at, updated_at) VALUES (?, 'user-1', ?, 'autonomous', ?, ?, ?, ?, '{}', ?, ?)`)
	if err != nil {
		return err
	}
	defer agent.Close()
	perm, err := tx.PrepareContext(ctx, `INSERT INTO kavach_permissions (id, agent_id, resource, actions, constraints, created_at) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer perm.Close()
	audit, err := tx.PrepareContext(ctx, `INSERT INTO kavach_audit_logs (id, agent_id, user_id, action, resource, parameters, result,
		duration_ms, timestamp) VALUES (?, ?, 'user-1', 'read', 'mcp:github:repos', '{}', 'allowed', 1, ?)`)
	if err != nil {
		return err
	}
	defer audit.Close()
	for i := from; i < to; i++ {
		id, token, active := GeneratedAgent(i)
		at := now.Unix() - int64(n-i)
		sum := sha256.Sum256([]byte(token))
		hash := hex.EncodeToString(sum[:])
		status := "active"
		if !active {
			status = "revoked"
		}
		_, err1 := agent.ExecContext(ctx, id, "agent-"+strconv.Itoa(i), status, hash, token[:11], now.Add(24*time.Hour).Unix(), at, at)
		_, err2 := perm.ExecContext(ctx, NewID(), id, "mcp:github:*", `["read"]`, nil, at)
		_, err3 := perm.ExecContext(ctx, NewID(), id, "mcp:deploy:production", `["execute"]`, `{"maxCallsPerHour":5,"requireApproval":true}`, at)
		_, err4 := audit.ExecContext(ctx, NewID(), id, at)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return err
		}
	}
	return tx.Commit()
}
