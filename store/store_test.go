package store

import (
	"strings"
	"testing"
)

func TestIsPostgresAndRedact(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url             string
		postgres, mysql bool
		redacted        string
	}{
		{"postgres://kavach:s3cret@db:5432/kavach?sslmode=disable", true, false, "postgres://kavach:xxxxx@db:5432/kavach"},
		{"postgresql://kavach@db/kavach", true, false, "postgresql://kavach@db/kavach"},
		{"mysql://kavach:s3cret@db:3306/kavach?tls=true", false, true, "mysql://kavach:xxxxx@db:3306/kavach"},
		{"MYSQL://kavach@db/kavach", false, true, "mysql://kavach@db/kavach"},
		{"/var/lib/kavach/kavach.db", false, false, "/var/lib/kavach/kavach.db"},
		{"file:kavach.db?cache=shared", false, false, "file:kavach.db"},
		{":memory:", false, false, ":memory:"},
	} {
		if got := IsPostgres(tt.url); got != tt.postgres {
			t.Errorf("IsPostgres(%q) = %v; want %v", tt.url, got, tt.postgres)
		}
		if got := IsMySQL(tt.url); got != tt.mysql {
			t.Errorf("IsMySQL(%q) = %v; want %v", tt.url, got, tt.mysql)
		}
		if got := Redact(tt.url); got != tt.redacted {
			t.Errorf("Redact(%q) = %q; want %q", tt.url, got, tt.redacted)
		}
	}
}

// TestRedact: no password of a database URL survives Redact, wherever it
// is written, and what does not parse is not shown at all.
func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ url, want string }{
		{"postgres://kavach@db/kavach?password=s3cret&sslmode=disable", "postgres://kavach@db/kavach"},
		{"postgres://db/kavach?sslpassword=s3cret", "postgres://db/kavach"},
		{"mysql://kavach@db:3306/kavach?password=s3cret", "mysql://kavach@db:3306/kavach"},
		{"postgres://kavach:s3cret@db/kavach", "postgres://kavach:xxxxx@db/kavach"},
		{"mysql://kavach:s3cret@db/kavach#s3cret", "mysql://kavach:xxxxx@db/kavach"},
		{"host=db user=kavach password=s3cret dbname=kavach", "(unparseable URL)"},
		{"password=s3cret", "(unparseable URL)"},
		{"kavach:s3cret@tcp(db:3306)/kavach", "(unparseable URL)"},
		{"postgres://kavach:s3cret@db:port/kavach", "(unparseable URL)"},
		{"postgres://kavach:s3cret@[::1/kavach", "(unparseable URL)"},
		{"/var/lib/kavach/kavach.db", "/var/lib/kavach/kavach.db"},
	} {
		got := Redact(tt.url)
		if got != tt.want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q; want %q", tt.url, got, tt.want)
		}
	}
}
