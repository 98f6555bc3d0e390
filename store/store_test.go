package store

import "testing"

func TestIsPostgresAndRedact(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url      string
		postgres bool
		redacted string
	}{
		{"postgres://kavach:s3cret@db:5432/kavach?sslmode=disable", true, "postgres://kavach:xxxxx@db:5432/kavach?sslmode=disable"},
		{"postgresql://kavach@db/kavach", true, "postgresql://kavach@db/kavach"},
		{"/var/lib/kavach/kavach.db", false, "/var/lib/kavach/kavach.db"},
		{"file:kavach.db?cache=shared", false, "file:kavach.db?cache=shared"},
		{":memory:", false, ":memory:"},
	} {
		if got := IsPostgres(tt.url); got != tt.postgres {
			t.Errorf("IsPostgres(%q) = %v; want %v", tt.url, got, tt.postgres)
		}
		if got := Redact(tt.url); got != tt.redacted {
			t.Errorf("Redact(%q) = %q; want %q", tt.url, got, tt.redacted)
		}
	}
}
