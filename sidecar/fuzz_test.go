package sidecar_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

// FuzzAPI throws arbitrary bodies and headers at the write and decision
// endpoints: never a panic or a 500, always a JSON body with a code, and
// decisions only ever 200.
func FuzzAPI(f *testing.F) {
	for _, seed := range []struct{ path, body, auth string }{
		{"/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"mcp:github:*","actions":["read"]}]}`, ""},
		{"/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"a::b","actions":["r"]}]}`, ""},
		{"/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"a","actions":["r"],"constraints":{"timeWindow":{"start":"09:00","end":"17:00"}}}]}`, ""},
		{"/v1/agents", `{"ownerId":"u","name":"n","expiresAt":"2999-01-01T00:00:00Z","metadata":{"a":[1,{"b":null}]}}`, ""},
		{"/v1/authorize", `{"agentId":"agt_x","action":"read","resource":"a:b","arguments":{"x":"y"},"context":{"ip":"::1"}}`, ""},
		{"/v1/authorize", `{"action":"read","resource":"a"}`, "Bearer kv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"/v1/authorize", `{"action":"read","resource":"a"}`, "Bearer kv_"},
		{"/v1/agents", `{"ownerId":"\u0000"}`, ""},
		{"/v1/agents", `[`, ""},
		{"/v1/agents", `{"ownerId":"u","name":"n","ownerId":"v"}`, ""},
		{"/v1/agents", `{"ownerId":"u","name":"n"}`, "Bearer kvk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"/v1/agents", `{"ownerId":"u","name":"n"}`, "Bearer a.b.c"},
		{"/v1/authorize", `{"agentId":"agt_x","action":"read","resource":"a","arguments":{"k":1,"k":2}}`, ""},
	} {
		f.Add(seed.path, seed.body, seed.auth)
	}
	ctx := f.Context()
	st, err := store.Open(ctx, store.Options{URL: ":memory:"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	eng, err := engine.New(ctx)
	if err != nil {
		f.Fatal(err)
	}
	svc, err := service.New(st, eng, service.Options{AdminKey: testAdminKey, Roles: testRoles(f)})
	if err != nil {
		f.Fatal(err)
	}
	if err := svc.Load(ctx); err != nil {
		f.Fatal(err)
	}
	h := newServer(f, svc, sidecar.Options{MaxBodyBytes: 4096})
	f.Fuzz(func(t *testing.T, path, body, auth string) {
		if path != "/v1/agents" && path != "/v1/authorize" {
			path = "/v1/authorize"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		// No auth in the input means the admin key: the body must reach the
		// decoder. Any other value is a credential to try.
		if auth == "" {
			auth = "Bearer " + testAdminKey
		}
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q = %d %s", path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var eb api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("POST %s %q = %d with body %q; want a JSON error", path, body, rec.Code, rec.Body)
			}
			return
		}
		if path == "/v1/authorize" && rec.Code != 200 {
			t.Fatalf("decision status %d; want 200", rec.Code)
		}
	})
}
