package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kavach-dev/kavach/client"
)

// revokeAgents revokes revokeParallel agents at a time, not one by one and
// not all at once, and names on stderr those it could not revoke. (The
// end-to-end test, tests/bench_test.go, runs kavach bench against the real
// sidecar; this one needs a server that can hold requests to count them.)
func TestRevokeAgentsIsBoundedAndReportsFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	inFlight, most := 0, 0
	revoked := map[string]bool{}
	full := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/agents/"), "/revoke")
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == revokeParallel {
			once.Do(func() { close(full) })
		}
		mu.Unlock()
		// Hold every request until as many as allowed are in flight: the
		// bound is reached, and any request past it would be seen.
		<-full
		mu.Lock()
		inFlight--
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(id, "agt_gone") {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"code":"agent_not_found","message":"no agent %s"}}`, id)
			return
		}
		mu.Lock()
		revoked[id] = true
		mu.Unlock()
		fmt.Fprintf(w, `{"id":%q,"status":"revoked"}`, id)
	}))
	defer srv.Close()

	var ids []string
	for i := range 30 {
		ids = append(ids, fmt.Sprintf("agt_%02d", i))
	}
	for i := range 7 {
		ids = append(ids, fmt.Sprintf("agt_gone%02d", i))
	}
	var stderr bytes.Buffer
	failed := revokeAgents(t.Context(), &stderr, client.New(srv.URL).WithAPIKey("kvk_test"), "kavach sidecar", ids)
	if failed != 7 || len(revoked) != 30 {
		t.Errorf("revokeAgents(30 agents, 7 gone) = %d failed, %d revoked; want 7, 30", failed, len(revoked))
	}
	if most != revokeParallel {
		t.Errorf("revokeAgents had %d revocations in flight at most; want %d", most, revokeParallel)
	}
	out := stderr.String()
	for _, want := range []string{"7 of the bench's 37 agents were not revoked", "agt_gone00", "agent_not_found", "… and 2 more"} {
		if !strings.Contains(out, want) {
			t.Errorf("revokeAgents reported:\n%s\nwant it to say %q", out, want)
		}
	}
	stderr.Reset()
	if failed := revokeAgents(t.Context(), &stderr, client.New(srv.URL).WithAPIKey("kvk_test"), "x", ids[:revokeParallel]); failed != 0 || stderr.Len() != 0 {
		t.Errorf("revokeAgents(all revocable) = %d, %q; want 0 and nothing reported", failed, stderr.String())
	}
}
