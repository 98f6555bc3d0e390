package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsListenOnLoopback(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Server.Address != "127.0.0.1:7400" || c.Database.URL != "./kavach.db" || c.MaxPerUser() != 10 {
		t.Errorf("defaults = %+v, maxPerUser %d; want 127.0.0.1:7400, ./kavach.db, 10", c, c.MaxPerUser())
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Load(write("agents:\n  maxPerUser: 0\n  defaultPermissions:\n    - resource: a\n      actions: [r]\n      constraints: {maxCallsPerHour: 5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxPerUser() != 0 || c.Server.Address != DefaultAddress {
		t.Errorf("Load = %+v; want maxPerUser 0 and the default address", c)
	}
	if v, ok := c.Agents.DefaultPermissions[0].Constraints["maxCallsPerHour"].(float64); !ok || v != 5 {
		t.Errorf("constraint value = %#v; want float64 5, as the API decodes it", c.Agents.DefaultPermissions[0].Constraints["maxCallsPerHour"])
	}
	c, err = Load(write(""))
	if err != nil || c.Validate() != nil {
		t.Errorf("empty file: %v", err)
	}
	for _, bad := range []string{"agents:\n  maxPerUser: -1\n", "agents:\n  auditAll: false\n", "log:\n  level: loud\n", "agents:\n  tokenExpiry: 1y\n"} {
		c, err := Load(write(bad))
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("config %q accepted; want an error", bad)
		}
	}
	if _, err := Load(write("server: [1, 2]\n")); err == nil {
		t.Error("malformed YAML accepted")
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestMCPSection(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "c.yaml")
	load := func(body string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err == nil {
			err = c.Validate()
		}
		return c, err
	}
	c, err := load(`mcp:
  enabled: true
  issuer: https://auth.example.com
  accessTokenTtl: 60
  refreshTokenTtl: 120
  codeTtl: 30
  scopes:
    tools:read: [{resource: "mcp:*", actions: [read], constraints: {maxCallsPerHour: 5}}]
  allowedResources: [https://mcp.example.com/mcp]
  loginPage: /login
  preRegisteredClients:
    - {clientId: cli, redirectUris: ["http://127.0.0.1/cb"]}
`)
	if err != nil {
		t.Fatal(err)
	}
	oc := c.MCP.OAuth()
	if oc.AccessTokenTTL != time.Minute || oc.RefreshTokenTTL != 2*time.Minute || oc.CodeTTL != 30*time.Second ||
		len(oc.PreRegisteredClients) != 1 || oc.PreRegisteredClients[0].ID != "cli" {
		t.Errorf("OAuth() = %+v", oc)
	}
	if v, ok := oc.Scopes["tools:read"][0].Constraints["maxCallsPerHour"].(float64); !ok || v != 5 {
		t.Errorf("scope constraint = %#v; want float64 5, as the API decodes it", oc.Scopes["tools:read"][0].Constraints["maxCallsPerHour"])
	}
	for _, bad := range []struct{ body, want string }{
		{"mcp:\n  enabled: true\n  issuer: http://auth.example.com\n  loginPage: /login\n  allowedResources: [https://m.example/mcp]\n", "loopback"},
		{"mcp:\n  enabled: true\n  issuer: https://a.example\n  allowedResources: [https://m.example/mcp]\n", "loginPage or consentPage"},
		// Without a resource, every authorization request would be refused.
		{"mcp:\n  enabled: true\n  issuer: https://a.example\n  loginPage: /l\n", "mcp.allowedResources is required"},
		{"mcp:\n  enabled: true\n  issuer: https://a.example\n  loginPage: /l\n  allowedResources: [https://m.example/mcp]\n  signingSecret: short\n", "at least 32"},
		{"server:\n  maxBodyBytes: -1\n", "server.maxBodyBytes must be from 1024 to 67108864"},
		{"server:\n  maxBodyBytes: 0\n", "server.maxBodyBytes must be from 1024 to 67108864"},
		{"audit:\n  retentionDays: -1\n", `audit.retentionDays: "-1" is out of range: use from 1d to 36500d (1 to 36500 days)`},
		{"secret: tooshort\n", "secret (KAVACH_SECRET): the secret is 8 characters; at least 32"},
		{"previousSecret: " + strings.Repeat("p", 32) + "\n", "secret (KAVACH_SECRET) is not"},
		{"mcp:\n  enabled: true\n  issuer: https://a.example\n  loginPage: /l\n  allowedResources: [https://m.example/mcp]\n  codeTtl: -1\n", "codeTtl"},
		{"mcp:\n  enabled: true\n  issuer: https://a.example\n  loginPage: /l\n  allowedResources: [https://m.example/mcp]\n  scopes: {\"bad scope\": []}\n", "scope"},
		{"mcp:\n  enabled: true\n  issuer: https://a.example\n  loginPage: /l\n  allowedResources: [\"https://x/#f\"]\n", "resource"},
		{"mcp:\n  issuerr: https://a.example\n", "issuerr"},
		{"server:\n  tlsCert: c.pem\n", "tlsKey"},
	} {
		if _, err := load(bad.body); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("config %q: %v; want an error about %s", bad.body, err, bad.want)
		}
	}
	// Off, the section is not checked: the seeds' example needs no issuer then.
	if _, err := load("mcp:\n  enabled: false\n"); err != nil {
		t.Errorf("mcp disabled: %v", err)
	}
}

// A database.url that is neither a SQLite file nor a postgres:// or
// mysql:// URL is a configuration error that never repeats the value (it
// may hold a password), not a SQLite file named after it.
func TestDatabaseURLMustBeAFileOrAServerURL(t *testing.T) {
	t.Parallel()
	for url, ok := range map[string]bool{
		"./kavach.db": true, "/var/lib/kavach/kavach.db": true, ":memory:": true, "file:kavach.db?_pragma=busy_timeout(5000)": true,
		"data/my db.sqlite": true, "postgres://u:p@h:5432/db": true, "postgresql://h/db": true, "POSTGRES://h/db": true,
		"host=db.internal user=kavach password=s3cret dbname=kavach": false,
		"password=s3cret":                        false,
		"mysql://root:s3cret@127.0.0.1/kavach":   true,
		"MySQL://root:s3cret@127.0.0.1/kavach":   true,
		"mariadb://root:s3cret@127.0.0.1/kavach": false,
		"sqlserver://sa:s3cret@h":                false,
	} {
		c := Default()
		c.Database.URL = url
		err := c.Validate()
		if ok != (err == nil) {
			t.Errorf("database.url %q: Validate = %v; want ok=%v", url, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("database.url %q: the error repeats the password: %v", url, err)
		}
	}
}

// database.provider is inferred from database.url, and one that does not
// match the URL is a start-up error that never repeats the URL.
func TestDatabaseProvider(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		provider, url string
		want          string // the provider after Validate; "" for an error
	}{
		{"", "", "sqlite"},
		{"", "kavach.db", "sqlite"},
		{"", "postgres://u:s3cret@h:5432/db", "postgres"},
		{"", "mysql://u:s3cret@h:3306/db", "mysql"},
		{"sqlite", "kavach.db", "sqlite"},
		{"postgres", "postgres://u:s3cret@h/db", "postgres"},
		{"mysql", "mysql://u:s3cret@h/db", "mysql"},
		{"mysql", "", ""},
		{"mysql", "kavach.db", ""},
		{"mysql", "postgres://u:s3cret@h/db", ""},
		{"postgres", "mysql://u:s3cret@h/db", ""},
		{"sqlite", "mysql://u:s3cret@h/db", ""},
		{"mariadb", "mysql://u:s3cret@h/db", ""},
	} {
		c := Default()
		c.Database.Provider, c.Database.URL = tt.provider, tt.url
		err := c.Validate()
		if got := c.Database.Provider; (err == nil) != (tt.want != "") || err == nil && got != tt.want {
			t.Errorf("provider %q, url %q: Validate = %v, provider %q; want %q", tt.provider, tt.url, err, got, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("provider %q, url %q: the error repeats the password: %v", tt.provider, tt.url, err)
		}
	}
}

// database.pollInterval defaults to the service's (0 here) but to 200ms on
// MySQL, where polling is the only way replicas hear of each other.
func TestPollIntervalDefault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url, poll string
		want      time.Duration
	}{
		{"kavach.db", "", 0},
		{"postgres://h/db", "", 0},
		{"mysql://h/db", "", DefaultMySQLPollInterval},
		{"mysql://h/db", "50ms", 50 * time.Millisecond},
	} {
		c := Default()
		c.Database.URL, c.Database.PollInterval = tt.url, Duration(tt.poll)
		if err := c.Validate(); err != nil || c.PollInterval() != tt.want {
			t.Errorf("url %q, pollInterval %q: PollInterval() = %v, %v; want %v", tt.url, tt.poll, c.PollInterval(), err, tt.want)
		}
	}
}

// agents.maxMetadataBytes defaults to 16 KiB and takes 1 byte to 1 MiB.
func TestMaxMetadataBytes(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil || c.MaxMetadataBytes() != 16<<10 {
		t.Fatalf("default = %d, %v; want 16384", c.MaxMetadataBytes(), err)
	}
	for v, ok := range map[int]bool{1: true, 4096: true, 1 << 20: true, -1: false, 1<<20 + 1: false} {
		c := Default()
		c.Agents.MaxMetadataBytes = v
		if err := c.Validate(); ok != (err == nil) || ok && c.MaxMetadataBytes() != v {
			t.Errorf("agents.maxMetadataBytes %d: Validate = %v, effective %d; want ok=%v", v, err, c.MaxMetadataBytes(), ok)
		}
	}
}

func TestDatabaseTimeout(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil || c.DatabaseTimeout() != 5*time.Second {
		t.Fatalf("default = %v, %v; want 5s", c.DatabaseTimeout(), err)
	}
	for v, want := range map[string]time.Duration{"100ms": 100 * time.Millisecond, "2s": 2 * time.Second, "1m": time.Minute,
		"99ms": 0, "61s": 0, "0s": 0, "-1s": 0, "5": 0, "soon": 0} {
		c := Default()
		c.Database.Timeout = Duration(v)
		err := c.Validate()
		switch {
		case want == 0 && (err == nil || !strings.Contains(err.Error(), "database.timeout")):
			t.Errorf("database.timeout %q: Validate = %v; want an error naming database.timeout", v, err)
		case want != 0 && (err != nil || c.DatabaseTimeout() != want):
			t.Errorf("database.timeout %q: Validate = %v, DatabaseTimeout() = %v; want %v", v, err, c.DatabaseTimeout(), want)
		}
	}
}

// Errors name the key path and what it takes, never a Go type.
func TestParseErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"server:\n  adress: x\n", "line 2: server.adress is not a known key"},
		{"agents:\n  maxPerUser: ten\n", "line 2: agents.maxPerUser: cannot read !!str `ten` into int (it takes a whole number)"},
		{"mcp:\n  enabled: maybe\n", "mcp.enabled"},
		// A list where a value belongs names the key, not the list's item.
		{"agents:\n  maxPerUser: [1]\n", "line 2: agents.maxPerUser: cannot read !!seq into int"},
		{"approval:\n  ttl:\n    - 5m\n", "line 3: approval.ttl: cannot read a list into a duration"},
		{"mcp:\n  preRegisteredClients:\n    - clientId: a\n      redirectUri: x\n", "mcp.preRegisteredClients[0].redirectUri is not a known key"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "config.") {
			t.Errorf("Parse(%q) = %v; want %q", tc.doc, err, tc.want)
		}
	}
}
