package config

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzConfig reads arbitrary YAML as a configuration file: never a panic;
// a configuration that validates validates again unchanged (defaults are
// filled in once); and no error repeats a secret or the database's
// password. Its seeds run in every go test; `make fuzz` explores further.
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"server:\n  address: 127.0.0.1:7400\n  allowedHosts: [kavach.internal]\n",
		"server:\n  address: unix:///var/run/kavach/kavach.sock\n  socketGroup: kavach\n",
		"database:\n  url: postgres://kavach:hunter2hunter2@db:5432/kavach\n  maxConns: 8\n  pollInterval: 1s\n",
		"database:\n  provider: postgres\n  url: kavach.db\n",
		"database:\n  url: host=db password=hunter2hunter2\n",
		"agents:\n  maxPerUser: 0\n  tokenExpiry: 7d\n  defaultPermissions:\n    - resource: mcp:github:*\n      actions: [read]\n      constraints: {maxCallsPerHour: 5, timeWindow: {start: '09:00', end: '17:00'}}\n",
		"agents:\n  maxMetadataBytes: 2048\n",
		"approval:\n  ttl: 300\n  webhookUrl: https://example.com/hook\n",
		"approval:\n  ttl: 1h30m\naudit:\n  retentionDays: 12w\ndatabase:\n  timeout: 1.5s\n  pollInterval: 500ms\n",
		"approval:\n  ttl: [5m]\naudit:\n  retentionDays: {d: 1}\nagents:\n  tokenExpiry: -7d\n",
		"audit:\n  mode: async\n",
		"log:\n  level: debug\n",
		"secret: 0123456789abcdef0123456789abcdef\npreviousSecret: fedcba9876543210fedcba9876543210\n",
		"previousSecret: fedcba9876543210fedcba9876543210\n",
		"secret: short-secret\n",
		"mcp:\n  enabled: true\n  issuer: https://auth.example.com\n  allowedResources: [https://mcp.example.com/mcp]\n  scopes:\n    repo:read:\n      - resource: mcp:github:*\n        actions: [read]\n",
		"mcp:\n  enabled: true\n  issuer: http://127.0.0.1:7400\n  signingSecret: 0123456789abcdef0123456789abcdef\n  allowedResources: [http://127.0.0.1:9000/mcp]\n  accessTokenTtl: 3600\n",
		"a: &a [1, *a]\n",
		"server: [1, 2]\n",
		"agents:\n  defaultPermissions: [{resource: \"\\0\", actions: [\"\\x85\"]}]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 64<<10 {
			t.Skip() // a configuration file is small
		}
		c, err := Parse(doc)
		if err != nil {
			return
		}
		err = c.Validate()
		if err != nil {
			for _, s := range secrets(c) {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("Validate(%q) = %q: repeats a secret", doc, err)
				}
			}
			return
		}
		again := c
		if err := again.Validate(); err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("Validate(%q) again = %v, %+v; want nil and %+v unchanged", doc, err, again, c)
		}
	})
}

// secrets are the values of c that no message may repeat (the short ones
// are left out: any message may hold a short string by chance).
func secrets(c Config) []string {
	var out []string
	for _, s := range []string{c.Secret, c.PreviousSecret, c.MCP.SigningSecret} {
		if len(s) >= 8 {
			out = append(out, s)
		}
	}
	if u, err := url.Parse(c.Database.URL); err == nil {
		if p, ok := u.User.Password(); ok && len(p) >= 8 {
			out = append(out, p)
		}
	}
	return out
}
