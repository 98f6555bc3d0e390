package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestOAuthKeyRotationWithCLI: the ES256 key pair made at first start is
// published; `kavach oauth rotate-key` adds a new one and keeps the old
// one published (go test ./oauth checks its tokens stay valid); with HS256
// there is nothing to rotate.
func TestOAuthKeyRotationWithCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, "secret: "+mcpSecret+"\nmcp:\n  enabled: true\n  issuer: "+issuer+"\n  loginPage: /login\n  allowedResources: [https://mcp.example.test/mcp]\n")
	s := start(t, "--database", filepath.Join(dir, "k.db"), "--config", cfg, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	jwks := func() []map[string]any {
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		getJSON(t, http.DefaultClient, issuer+"/oauth/jwks", &set)
		return set.Keys
	}
	before := jwks()
	if len(before) != 1 || before[0]["kty"] != "EC" || before[0]["crv"] != "P-256" {
		t.Fatalf("JWKS at first start = %v; want one P-256 key", before)
	}
	out, errOut, code := cli(t, nil, "oauth", "rotate-key", "--server", s.URL)
	var rotated struct {
		Keys []map[string]any `json:"keys"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rotated) != nil || len(rotated.Keys) != 2 || !strings.HasPrefix(out, "{\n  \"") {
		t.Fatalf("oauth rotate-key: exit %d, %q %q; want the two published keys, indented as every JSON answer", code, out, errOut)
	}
	after := jwks()
	if len(after) != 2 || (after[0]["kid"] != before[0]["kid"] && after[1]["kid"] != before[0]["kid"]) {
		t.Errorf("JWKS after rotation = %v; want the new key and the old one", after)
	}

	hs := filepath.Join(dir, "hs.yaml")
	writeFile(t, hs, "secret: "+mcpSecret+"\nmcp:\n  enabled: true\n  issuer: http://127.0.0.1:1\n  loginPage: /login\n  signingSecret: 0123456789abcdef0123456789abcdef\n  allowedResources: [https://mcp.example.test/mcp]\n")
	s2 := start(t, "--database", filepath.Join(dir, "k2.db"), "--config", hs)
	if _, errOut, code := cli(t, nil, "oauth", "rotate-key", "--server", s2.URL); code == 0 || !strings.Contains(errOut, "no_key_rotation") {
		t.Errorf("rotate-key with HS256: exit %d, %q; want a no_key_rotation error", code, errOut)
	}
}

// TestMCPSecret: MCP does not start without the secret (exit 2, saying to
// set KAVACH_SECRET); keys sealed under one secret stop a start with
// another (exit 2, naming key IDs, never a secret); the README's rotation
// (the new secret, the old one as previous, then the new one alone) keeps
// the signing keys.
func TestMCPSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "k.db")
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, "mcp:\n  enabled: true\n  issuer: http://127.0.0.1:1\n  loginPage: /login\n  allowedResources: [https://mcp.example.test/mcp]\n")
	serve := func(env ...string) (string, int) {
		_, errOut, code := cli(t, env, "serve", "--addr", "127.0.0.1:0", "--database", db, "--config", cfg)
		return errOut, code
	}
	if errOut, code := serve(); code != 2 || !strings.Contains(errOut, "KAVACH_SECRET") || !strings.Contains(errOut, "32") {
		t.Fatalf("serve with mcp and no secret: exit %d, %q; want 2, telling to set KAVACH_SECRET (32+ characters)", code, errOut)
	}
	const oldSecret, newSecret = "the secret before the rotation, 32+ chars", "the secret after the rotation, 32+ chars!"
	kids := func(s *sidecar) []any {
		t.Helper()
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		getJSON(t, http.DefaultClient, s.URL+"/oauth/jwks", &set)
		var out []any
		for _, k := range set.Keys {
			out = append(out, k["kid"])
		}
		return out
	}
	s, err := startEnv(t, []string{"KAVACH_SECRET=" + oldSecret}, "--database", db, "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := kids(s)
	s.stop(t)

	errOut, code := serve("KAVACH_SECRET=" + newSecret)
	if code != 2 || !strings.Contains(errOut, "KAVACH_SECRET_PREVIOUS") || strings.Contains(errOut, oldSecret) || strings.Contains(errOut, newSecret) {
		t.Fatalf("serve with another secret: exit %d, %q; want 2, naming KAVACH_SECRET_PREVIOUS and no secret", code, errOut)
	}
	for i, env := range [][]string{{"KAVACH_SECRET=" + newSecret, "KAVACH_SECRET_PREVIOUS=" + oldSecret}, {"KAVACH_SECRET=" + newSecret}} {
		s, err := startEnv(t, env, "--database", db, "--config", cfg)
		if err != nil {
			t.Fatalf("rotation step %d: %v", i+1, err)
		}
		if got := kids(s); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("rotation step %d: JWKS kids %v; want %v kept", i+1, got, before)
		}
		if strings.Contains(s.log(), oldSecret) || strings.Contains(s.log(), newSecret) {
			t.Errorf("rotation step %d: the log shows a secret", i+1)
		}
		s.stop(t)
	}
}
