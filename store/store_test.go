package store

import "testing"

func TestIsPostgresAndRedact(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url             string
		postgres, mysql bool
		redacted        string
	}{
		{"postgres://kavach:s3cret@db:5432/kavach?sslmode=disable", true, false, "postgres://kavach:xxxxx@db:5432/kavach?sslmode=disable"},
		{"postgresql://kavach@db/kavach", true, false, "postgresql://kavach@db/kavach"},
		{"mysql://kavach:s3cret@db:3306/kavach?tls=true", false, true, "mysql://kavach:xxxxx@db:3306/kavach?tls=true"},
		{"MYSQL://kavach@db/kavach", false, true, "mysql://kavach@db/kavach"},
		{"/var/lib/kavach/kavach.db", false, false, "/var/lib/kavach/kavach.db"},
		{"file:kavach.db?cache=shared", false, false, "file:kavach.db?cache=shared"},
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
