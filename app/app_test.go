package app

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/oauth"
)

// mcpConfig is a valid configuration with MCP on over the SQLite file db.
func mcpConfig(t *testing.T, db, secret, previous string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Database.URL = db
	cfg.Secret, cfg.PreviousSecret = secret, previous
	cfg.MCP = config.MCP{Enabled: true, Issuer: "http://127.0.0.1:7400", LoginPage: "/login",
		AllowedResources: []string{"https://mcp.example.test/mcp"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newApp(t *testing.T, cfg config.Config) (*App, error) {
	t.Helper()
	a, err := New(t.Context(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Stdout: io.Discard,
		AdminKey: "an admin key long enough for the check, 0123456789"})
	if err == nil {
		t.Cleanup(func() { _ = a.Close() })
	}
	return a, err
}

// MCP needs the secret (it seals the signing keys): without one the
// sidecar does not start, and says to set KAVACH_SECRET.
func TestMCPNeedsASecret(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kavach.db")
	for _, signing := range []string{"", strings.Repeat("h", 32)} {
		cfg := mcpConfig(t, db, "", "")
		cfg.MCP.SigningSecret = signing
		_, err := newApp(t, cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "KAVACH_SECRET") || !strings.Contains(err.Error(), "32") {
			t.Errorf("New(mcp.enabled, no secret, signingSecret %q) = %v; want a ConfigError telling to set KAVACH_SECRET (32+ characters)", signing, err)
		}
	}
}

// Signing keys sealed under a secret that is not configured stop the
// start as a bad setting (exit 2), naming no secret; with the old secret
// as previousSecret the sidecar starts (the rotation).
func TestSigningKeysOfAnotherSecret(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kavach.db")
	const first, second = "the first secret, 32 characters long", "the second secret, 32 characters long"
	a, err := newApp(t, mcpConfig(t, db, first, ""))
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	_, err = newApp(t, mcpConfig(t, db, second, ""))
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, oauth.ErrKeyUnreadable) || strings.Contains(err.Error(), first) || strings.Contains(err.Error(), second) {
		t.Fatalf("New(keys of another secret) = %v; want a ConfigError wrapping ErrKeyUnreadable, no secret shown", err)
	}
	if _, err := newApp(t, mcpConfig(t, db, second, first)); err != nil {
		t.Fatalf("New(new secret, old as previous) = %v; want started", err)
	}
}
