package kavachos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

// flavor is the engine a KavachOS database runs on: KavachOS writes the
// same tables on each, with engine types for times (INTEGER seconds on
// SQLite, TIMESTAMPTZ on PostgreSQL, DATETIME(3) on MySQL) and JSON.
type flavor int

const (
	flavorSQLite flavor = iota
	flavorPostgres
	flavorMySQL
)

// Source is a KavachOS database, read only.
type Source struct {
	db     *sql.DB
	flavor flavor
}

// OpenSource opens a KavachOS database: a SQLite file path, a
// postgres:// (postgresql://) URL or a mysql:// URL
// (mysql://user:password@host:port/database).
func OpenSource(ctx context.Context, raw string) (*Source, error) {
	var s Source
	var err error
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		s.flavor = flavorPostgres
		s.db, err = sql.Open("pgx", raw)
	case strings.HasPrefix(raw, "mysql://"):
		s.flavor = flavorMySQL
		var dsn string
		if dsn, err = mysqlDSN(raw); err == nil {
			s.db, err = sql.Open("mysql", dsn)
		}
	default:
		s.flavor = flavorSQLite
		path := strings.TrimPrefix(raw, "file:")
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) { //nolint:gosec // G703: the file the user named
			return nil, fmt.Errorf("no KavachOS database at %s", raw)
		}
		// Read only: an import never writes to its source. '?' and '#'
		// would end the path of a URI filename.
		escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
		s.db, err = sql.Open("sqlite", "file:"+escaped+"?mode=ro&_pragma=busy_timeout(5000)")
	}
	if err != nil {
		return nil, fmt.Errorf("open KavachOS database: %w", err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("open KavachOS database: %w", err)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM kavach_agents WHERE 1 = 0`).Scan(&n); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("no KavachOS agents table (kavach_agents) in this database: %w", err)
	}
	return &s, nil
}

// mysqlDSN turns mysql://user:password@host:port/database?params into
// the driver's DSN, with times read as time.Time in UTC.
func mysqlDSN(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("MySQL URL: %w", err)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.ParseTime, cfg.Loc = true, time.UTC
	for k, v := range u.Query() {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params[k] = v[0]
	}
	// The driver reads its own settings back from the DSN's parameters:
	// read it as the driver will, then turn off what a hostile server
	// could use whatever the URL asks (LOCAL INFILE reads of any local
	// file; several statements in one query).
	cfg, err = mysql.ParseDSN(cfg.FormatDSN())
	if err != nil {
		return "", fmt.Errorf("MySQL URL: %w", err)
	}
	cfg.AllowAllFiles, cfg.MultiStatements = false, false
	return cfg.FormatDSN(), nil
}

// Close closes the source.
func (s *Source) Close() error { return s.db.Close() }

// query runs q, written with ? placeholders, in the source's dialect.
func (s *Source) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s.flavor == flavorPostgres {
		var b strings.Builder
		n := 0
		for _, c := range q {
			if c == '?' {
				n++
				b.WriteString("$" + strconv.Itoa(n))
				continue
			}
			b.WriteRune(c)
		}
		q = b.String()
	}
	return s.db.QueryContext(ctx, q, args...)
}

// text reads a JSON column as text, whatever type the engine gave it.
func (s *Source) text(column string) string {
	switch s.flavor {
	case flavorPostgres:
		return column + "::text"
	case flavorMySQL:
		return "CAST(" + column + " AS CHAR)"
	}
	return column
}

// bytes sorts column by its bytes, as Go compares strings.
func (s *Source) bytes(column string) string {
	switch s.flavor {
	case flavorPostgres:
		return column + ` COLLATE "C"`
	case flavorMySQL:
		return "CAST(" + column + " AS BINARY)"
	}
	return column
}

// storageOrder is the order KavachOS reads an agent's permissions in: it
// asks for them without ORDER BY, so the engine's scan order decides, and
// it matters, because KavachOS decides by the first that matches.
func (s *Source) storageOrder() string {
	switch s.flavor {
	case flavorPostgres:
		return "ctid"
	case flavorMySQL:
		// InnoDB scans the table in primary key order.
		return "id"
	}
	return "rowid"
}

// count returns the rows of table, for progress.
func (s *Source) count(ctx context.Context, table, where string) (int64, error) {
	var n int64
	// table and where are constants of this package, never input.
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` `+where).Scan(&n) //nolint:gosec // G202: see above
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// msThreshold tells milliseconds from seconds: KavachOS v0.2.1 writes
// SQLite times in seconds (drizzle's "timestamp" mode), but a value above
// this as seconds would lie after the year 5000, so it is milliseconds.
const msThreshold = 1e11

// toTime reads a KavachOS time column: seconds (or milliseconds) on
// SQLite, a time on PostgreSQL and MySQL. ok is false for NULL.
func toTime(v any) (t time.Time, ok bool, err error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return x.UTC(), true, nil
	case int64:
		return epoch(float64(x)), true, nil
	case float64:
		return epoch(x), true, nil
	case []byte:
		return toTime(string(x))
	case string:
		if f, perr := strconv.ParseFloat(x, 64); perr == nil {
			return epoch(f), true, nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999"} {
			if t, perr := time.Parse(layout, x); perr == nil {
				return t.UTC(), true, nil
			}
		}
	}
	return time.Time{}, false, fmt.Errorf("not a time: %v", v)
}

func epoch(f float64) time.Time {
	if math.Abs(f) >= msThreshold {
		return time.UnixMilli(int64(f)).UTC()
	}
	return time.UnixMilli(int64(math.Round(f * 1000))).UTC()
}

// nullString reads a text column that may be NULL.
func nullString(v sql.NullString) string {
	if !v.Valid {
		return ""
	}
	return v.String
}
