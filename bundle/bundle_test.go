package bundle_test

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
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/bundle"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/store"
)

func fixture(t *testing.T) *store.Store {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{URL: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, _ := engine.New(ctx)
	svc, _ := service.New(st, eng, service.Options{})
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := svc.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "orch", Permissions: []api.Permission{{Resource: "mcp:*", Actions: []string{"read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := svc.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "sub", Permissions: []api.Permission{}})
	exp := time.Now().Add(time.Hour)
	if _, err := svc.Delegate(ctx, api.DelegateRequest{FromAgent: a.ID, ToAgent: b.ID, ExpiresAt: api.NewTimePtr(&exp),
		Permissions: []api.Permission{{Resource: "mcp:github:*", Actions: []string{"read"}}}}); err != nil {
		t.Fatal(err)
	}
	return st
}

func rsaKeys(t *testing.T) (priv, pub string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
}

// files reads a bundle tarball into name → content.
func files(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = body
	}
}

// rewrite rebuilds a bundle tarball with one file's content changed.
func rewrite(t *testing.T, b []byte, name string, change func([]byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for n, body := range files(t, b) {
		if n == name {
			body = change(body)
		}
		_ = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body))})
		_, _ = tw.Write(body)
	}
	_ = tw.Close()
	_ = zw.Close()
	return out.Bytes()
}

func TestBuildContainsPoliciesDataAndManifest(t *testing.T) {
	t.Parallel()
	st := fixture(t)
	var buf bytes.Buffer
	now := time.Date(2026, 11, 24, 0, 42, 29, 300_000_000, time.FixedZone("IST", 5*3600+1800))
	info, err := bundle.Build(t.Context(), st, bundle.Options{Revision: 42, Now: now,
		Extensions: map[string]string{"freeze.rego": "package kavach.ext\n\ndeny contains {\"code\": \"x\", \"reason\": \"y\"} if false\n"}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.Agents != 2 || info.Delegations != 1 || info.Revision != "42" || info.Signed {
		t.Errorf("info = %+v", info)
	}
	f := files(t, buf.Bytes())
	var manifest struct {
		Revision string   `json:"revision"`
		Roots    []string `json:"roots"`
		Metadata struct {
			Kavach struct {
				CreatedAt string `json:"createdAt"`
			} `json:"kavach"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(f["/.manifest"], &manifest); err != nil || manifest.Revision != "42" || len(manifest.Roots) != 1 || manifest.Roots[0] != "kavach" {
		t.Errorf(".manifest = %s, %v", f["/.manifest"], err)
	}
	// Fixed-width, in UTC, as every time Kavach writes (api.TimeFormat).
	if got, want := manifest.Metadata.Kavach.CreatedAt, "2026-11-23T19:12:29.300Z"; got != want {
		t.Errorf(".manifest createdAt = %q; want %q", got, want)
	}
	for _, want := range []string{"/data.json", "/policies/authz/authz.rego", "/policies/delegation/delegation.rego", "/policies/resources/resources.rego", "/extensions/freeze.rego"} {
		if _, ok := f[want]; !ok {
			t.Errorf("bundle lacks %s (has %v)", want, keys(f))
		}
	}
	for name := range f {
		if strings.HasSuffix(name, "_test.rego") {
			t.Errorf("bundle carries test file %s", name)
		}
	}
	var data struct {
		Kavach struct {
			Agents, Tokens, Delegations map[string]any
		} `json:"kavach"`
	}
	if err := json.Unmarshal(f["/data.json"], &data); err != nil || len(data.Kavach.Agents) != 2 || len(data.Kavach.Tokens) != 2 || len(data.Kavach.Delegations) != 1 {
		t.Errorf("data.json = %d agents, %d tokens, %d delegations, %v", len(data.Kavach.Agents), len(data.Kavach.Tokens), len(data.Kavach.Delegations), err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	st := fixture(t)
	priv, pub := rsaKeys(t)
	_, otherPub := rsaKeys(t)
	const secret = "a-shared-secret-of-at-least-32-characters"
	for _, tt := range []struct {
		alg, signKey, verifyKey, wrongKey string
	}{
		{"RS256", priv, pub, otherPub},
		{"HS256", secret, secret, "another-secret-of-at-least-32-characters!"},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			var buf bytes.Buffer
			info, err := bundle.Build(t.Context(), st, bundle.Options{Revision: 7, SigningKey: tt.signKey, SigningAlg: tt.alg}, &buf)
			if err != nil || !info.Signed {
				t.Fatalf("Build signed = %+v, %v", info, err)
			}
			signed := buf.Bytes()
			if _, ok := files(t, signed)["/.signatures.json"]; !ok {
				t.Fatal("signed bundle has no /.signatures.json")
			}
			m, err := bundle.Verify(bytes.NewReader(signed), bundle.VerifyOptions{Key: tt.verifyKey, Alg: tt.alg})
			if err != nil || m.Revision != "7" {
				t.Fatalf("Verify = %+v, %v; want revision 7", m, err)
			}
			if _, err := bundle.Verify(bytes.NewReader(signed), bundle.VerifyOptions{Key: tt.wrongKey, Alg: tt.alg}); err == nil {
				t.Error("Verify with the wrong key succeeded")
			}
			tampered := rewrite(t, signed, "/data.json", func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"read"`), []byte(`"*"`), 1)
			})
			if _, err := bundle.Verify(bytes.NewReader(tampered), bundle.VerifyOptions{Key: tt.verifyKey, Alg: tt.alg}); err == nil {
				t.Error("Verify of a bundle with changed data succeeded")
			}
			policy := rewrite(t, signed, "/policies/authz/authz.rego", func(b []byte) []byte {
				return append(b, []byte("\n# harmless-looking comment\n")...)
			})
			if _, err := bundle.Verify(bytes.NewReader(policy), bundle.VerifyOptions{Key: tt.verifyKey, Alg: tt.alg}); err == nil {
				t.Error("Verify of a bundle with a changed policy succeeded")
			}
		})
	}
	var unsigned bytes.Buffer
	if _, err := bundle.Build(t.Context(), st, bundle.Options{}, &unsigned); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Verify(bytes.NewReader(unsigned.Bytes()), bundle.VerifyOptions{Key: pub}); err == nil {
		t.Error("Verify of an unsigned bundle succeeded")
	}
	if _, err := bundle.Build(t.Context(), st, bundle.Options{SigningKey: secret, SigningAlg: "none"}, &unsigned); err == nil {
		t.Error("Build with signing algorithm none succeeded")
	}
}
