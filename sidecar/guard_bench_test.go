package sidecar_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
)

// What authentication weighs in a decision, in process: resolving a key
// from memory against the whole guarded POST /v1/authorize (guard,
// decode, decide, audit commit with its key check). The HTTP comparison
// with authentication off is kavach bench --compare (README "Performance").
//
//	go test ./sidecar -run X -bench Guard
func BenchmarkGuard(b *testing.B) {
	svc, k, body := benchDecider(b)
	srv := newServer(b, svc, sidecar.Options{})
	ctx := b.Context()
	b.Run("authenticate-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Authenticate(ctx, k.Key, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("authorize-with-key", func(b *testing.B) {
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/v1/authorize", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+k.Key)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("authorize = %d %s", rec.Code, rec.Body)
			}
		}
	})
}

// benchDecider is the benchmarks' stack: a service on a fresh SQLite file,
// an agent that may read docs:*, a decider key, and the body of an allowed
// decision for that agent.
func benchDecider(b *testing.B) (*service.Service, api.KeyWithSecret, string) {
	b.Helper()
	svc, _, _ := newServiceAt(b, b.TempDir()+"/kavach.db", service.Options{})
	ctx := b.Context()
	a, err := svc.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("docs:*", "read")}})
	if err != nil {
		b.Fatal(err)
	}
	k, err := svc.CreateKey(ctx, api.CreateKeyRequest{Name: "app", Roles: []string{"decider"}})
	if err != nil {
		b.Fatal(err)
	}
	return svc, k, `{"agentId":"` + a.ID + `","action":"read","resource":"docs:x"}`
}
