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
	writeFile(t, cfg, "mcp:\n  enabled: true\n  issuer: "+issuer+"\n  loginPage: /login\n  allowedResources: [https://mcp.example.test/mcp]\n")
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
	if code != 0 || json.Unmarshal([]byte(out), &rotated) != nil || len(rotated.Keys) != 2 {
		t.Fatalf("oauth rotate-key: exit %d, %q %q; want the two published keys", code, out, errOut)
	}
	after := jwks()
	if len(after) != 2 || (after[0]["kid"] != before[0]["kid"] && after[1]["kid"] != before[0]["kid"]) {
		t.Errorf("JWKS after rotation = %v; want the new key and the old one", after)
	}

	hs := filepath.Join(dir, "hs.yaml")
	writeFile(t, hs, "mcp:\n  enabled: true\n  issuer: http://127.0.0.1:1\n  loginPage: /login\n  signingSecret: 0123456789abcdef0123456789abcdef\n  allowedResources: [https://mcp.example.test/mcp]\n")
	s2 := start(t, "--database", filepath.Join(dir, "k2.db"), "--config", hs)
	if _, errOut, code := cli(t, nil, "oauth", "rotate-key", "--server", s2.URL); code == 0 || !strings.Contains(errOut, "no_key_rotation") {
		t.Errorf("rotate-key with HS256: exit %d, %q; want a no_key_rotation error", code, errOut)
	}
}
