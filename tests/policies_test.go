package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

const freezeExt = `package kavach.ext

deny contains {"code": "change_freeze", "reason": "no production drops during the freeze"} if {
	input.action == "drop"
	input.resource == "db:prod"
}
`

type policyList struct {
	Revision        string `json:"revision"`
	ExtensionsPath  string `json:"extensionsPath"`
	LastReloadError string `json:"lastReloadError"`
	Modules         []struct {
		File, Package, Source string
	} `json:"modules"`
}

func policiesOf(t *testing.T, cl *client.Client) policyList {
	t.Helper()
	list, err := cl.Policies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	var p policyList
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicyExtensions loads an extension, checks it can only deny,
// reloads it on change without a restart, and keeps the old policies when a
// reload is broken.
func TestPolicyExtensions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ext := filepath.Join(dir, "ext")
	if err := os.Mkdir(ext, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ext, "freeze.rego"), freezeExt)
	writeFile(t, filepath.Join(ext, "freeze_test.rego"), "package kavach.ext_test\n\ntest_nothing if true\n") // skipped: tests run under opa test
	s := start(t, "--database", filepath.Join(dir, "kavach.db"), "--policy-dir", ext)
	cl := s.adminClient()
	ctx := t.Context()
	a := mustCreate(t, cl, perm("db:*", "read", "drop"))
	code := func(action, resource string) string {
		t.Helper()
		return authz(t, cl, api.AuthorizeRequest{AgentID: a.ID, Action: action, Resource: resource}).Code
	}
	if c := code("drop", "db:prod"); c != "change_freeze" {
		t.Errorf("drop db:prod = %s; want the extension's change_freeze", c)
	}
	if c := code("drop", "db:staging"); c != "allowed" {
		t.Errorf("drop db:staging = %s; want allowed", c)
	}
	if c := code("write", "db:prod"); c != "no_permission" {
		t.Errorf("write db:prod = %s; want the core no_permission (extensions only deny allowed calls)", c)
	}
	p := policiesOf(t, cl)
	var extMods []string
	for _, m := range p.Modules {
		if m.Source == "extension" {
			extMods = append(extMods, m.File+"@"+m.Package)
		}
	}
	if len(extMods) != 1 || extMods[0] != "freeze.rego@kavach.ext" || p.Revision == "" || len(p.Modules) < 5 {
		t.Fatalf("GET /v1/policies = %+v", p)
	}

	// Hot reload: a new rule takes effect without a restart.
	writeFile(t, filepath.Join(ext, "staging.rego"), strings.ReplaceAll(strings.ReplaceAll(freezeExt, "db:prod", "db:staging"), "change_freeze", "staging_locked"))
	waitFor(t, "the new extension to load", func() bool { return code("drop", "db:staging") == "staging_locked" })
	reloaded := policiesOf(t, cl)
	if reloaded.Revision == p.Revision || reloaded.LastReloadError != "" {
		t.Errorf("after reload: revision %s (was %s), error %q", reloaded.Revision, p.Revision, reloaded.LastReloadError)
	}

	// A broken reload keeps the old policies serving.
	writeFile(t, filepath.Join(ext, "broken.rego"), "package kavach.ext\n\ndeny contains x if {\n")
	waitFor(t, "the broken reload to be reported", func() bool { return policiesOf(t, cl).LastReloadError != "" })
	if c := code("drop", "db:staging"); c != "staging_locked" {
		t.Errorf("after a broken reload: %s; want the previous policies still serving", c)
	}
	if got := policiesOf(t, cl); got.Revision != reloaded.Revision || !strings.Contains(got.LastReloadError, "broken.rego") {
		t.Errorf("after a broken reload: %+v", got)
	}
	var served bytes.Buffer
	if err := cl.Bundle(ctx, &served); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(served.Bytes(), []byte("deny contains x if {")) {
		t.Error("GET /v1/bundle ships the broken extension on disk instead of the ones being served")
	}
	if err := os.Remove(filepath.Join(ext, "broken.rego")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed extensions to reload", func() bool { return policiesOf(t, cl).LastReloadError == "" })
	if _, err := cl.Policies(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBadExtensionsStopTheSidecarAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, tc := range map[string]struct{ src, want string }{
		"syntax error":  {"package kavach.ext\n\ndeny contains x if {\n", "parse"},
		"wrong package": {"package kavach.authz\n\ndecision := {\"allowed\": true}\n", "must be in package kavach.ext"},
		"compile error": {"package kavach.ext\n\ndeny contains {\"code\": \"x\", \"reason\": y} if true\n", "var y is unsafe"},
	} {
		t.Run(name, func(t *testing.T) {
			ext := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.Mkdir(ext, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(ext, "bad.rego"), tc.src)
			_, errOut, code := cli(t, nil, "serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(ext, "k.db"), "--policy-dir", ext)
			if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "bad.rego") {
				t.Errorf("serve with a %s extension: exit %d, stderr %q; want exit 2 naming bad.rego and %q", name, code, errOut, tc.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	orch := mustCreate(t, cl, perm("mcp:github:*", "read"))
	sub := mustCreate(t, cl, perm("mcp:slack:*", "post"))
	d, err := delegate(t, cl, orch.ID, sub.ID, 1, perm("mcp:github:issues", "read"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.AuthorizeExplained(t.Context(), api.AuthorizeRequest{AgentID: sub.ID, Action: "read", Resource: "mcp:github:issues"}, "")
	if err != nil || !res.Allowed {
		t.Fatalf("explained allow = %+v, %v", res, err)
	}
	var ex struct {
		Considered []struct {
			Resource       string `json:"resource"`
			Source         string `json:"source"`
			Result         string `json:"result"`
			Reason         string `json:"reason"`
			DelegationPath []struct{ DelegationID, FromAgent, ToAgent string }
		} `json:"considered"`
	}
	if err := json.Unmarshal(res.Explanation, &ex); err != nil || len(ex.Considered) != 2 {
		t.Fatalf("explanation = %s, %v", res.Explanation, err)
	}
	if c := ex.Considered[0]; c.Source != "own" || c.Result != "action_mismatch" {
		t.Errorf("own permission considered as %+v; want action_mismatch", c)
	}
	if c := ex.Considered[1]; c.Result != "allowed" || c.Source != d.ID || len(c.DelegationPath) != 1 || c.DelegationPath[0].FromAgent != orch.ID {
		t.Errorf("delegated permission considered as %+v; want allowed via %s from %s", c, d.ID, orch.ID)
	}
	plain := authz(t, cl, api.AuthorizeRequest{AgentID: sub.ID, Action: "read", Resource: "mcp:github:issues"})
	if plain.Explanation != nil {
		t.Errorf("explanation without ?explain=true: %s", plain.Explanation)
	}
}

// TestBundleCLI builds bundles from the database and from a running sidecar,
// signs and verifies them, and rejects a tampered one.
func TestBundleCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "kavach.db")
	s := start(t, "--database", db)
	cl := s.adminClient()
	mustCreate(t, cl, perm("mcp:*", "read"))
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	privPath, pubPath := filepath.Join(dir, "private.pem"), filepath.Join(dir, "public.pem")
	writeFile(t, privPath, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})))
	writeFile(t, pubPath, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})))

	fromDB, fromServer := filepath.Join(dir, "db.tar.gz"), filepath.Join(dir, "server.tar.gz")
	out, errOut, code := cli(t, nil, "bundle", "build", "--database", db, "--out", fromDB, "--signing-key", privPath)
	if code != 0 || !strings.Contains(out, "1 agents") || !strings.Contains(out, "signed true") {
		t.Fatalf("bundle build from the database: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := cli(t, nil, "bundle", "build", "--server", s.URL, "--out", fromServer, "--signing-key", privPath); code != 0 {
		t.Fatalf("bundle build from a sidecar: exit %d, %q", code, errOut)
	}
	for _, b := range []string{fromDB, fromServer} {
		if out, errOut, code := cli(t, nil, "bundle", "verify", "--verification-key", pubPath, b); code != 0 || !strings.Contains(out, "signature valid") {
			t.Errorf("verify %s: exit %d, %q %q", filepath.Base(b), code, out, errOut)
		}
	}
	raw, err := os.ReadFile(fromDB)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.tar.gz")
	writeFile(t, tampered, string(retar(t, raw, "/data.json", func(b []byte) []byte { return bytes.Replace(b, []byte(`"read"`), []byte(`"*"`), 1) })))
	if _, errOut, code := cli(t, nil, "bundle", "verify", "--verification-key", pubPath, tampered); code == 0 {
		t.Errorf("a tampered bundle verified: %q", errOut)
	}
}

// retar rebuilds a bundle tarball with one file's content changed.
func retar(t *testing.T, b []byte, name string, change func([]byte) []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if h.Name == name {
			body = change(body)
		}
		_ = tw.WriteHeader(&tar.Header{Name: h.Name, Mode: 0o644, Size: int64(len(body))})
		_, _ = tw.Write(body)
	}
	_ = tw.Close()
	_ = zw.Close()
	return out.Bytes()
}
