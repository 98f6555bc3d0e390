package sidecar_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/internal/pgtest"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
)

// A NUL, invalid UTF-8 or a control character in any path ID or query
// parameter is a 400 on every backend, before the database is asked:
// PostgreSQL would refuse the bytes with a 500, SQLite would store them.
func TestHostileBytesInURLsAre400OnEveryBackend(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "kavach.db") },
		"postgres": func(t *testing.T) string { return pgtest.URL(t) },
	}
	paths := []string{
		"GET /v1/agents/%s", "PATCH /v1/agents/%s", "POST /v1/agents/%s/rotate", "POST /v1/agents/%s/revoke",
		"GET /v1/agents/%s/delegations", "GET /v1/agents/%s/effective-permissions",
		"GET /v1/delegations/%s", "POST /v1/delegations/%s/revoke",
		"GET /v1/approvals/%s", "POST /v1/approvals/%s/approve", "POST /v1/approvals/%s/deny",
		"GET /v1/keys/%s", "POST /v1/keys/%s/revoke",
		"GET /v1/agents?ownerId=%s", "GET /v1/agents?status=%s", "GET /v1/approvals?agentId=%s",
		"GET /v1/approvals?ownerId=%s", "GET /v1/audit?agentId=%s", "GET /v1/audit?ownerId=%s",
		"GET /v1/audit?cursor=%s", "GET /v1/audit/export?agentId=%s",
	}
	hostile := []string{"agt_%00x", "agt_%ffx", "agt_%0ax", "agt_%1b", "%c0%80"}
	for name, url := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			svc, _, _ := newServiceAt(t, url(t), service.Options{})
			srv := httptest.NewServer(newServer(t, svc, sidecar.Options{MaxBodyBytes: 64 << 10}))
			t.Cleanup(srv.Close)
			for _, p := range paths {
				for _, h := range hostile {
					method, target, _ := strings.Cut(strings.Replace(p, "%s", h, 1), " ")
					body := ""
					if method == http.MethodPatch {
						body = `{"name":"x"}`
					}
					req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+target, strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Authorization", "Bearer "+testAdminKey)
					if body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					var eb api.ErrorBody
					decErr := json.NewDecoder(resp.Body).Decode(&eb)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusBadRequest || decErr != nil || eb.Error.Code != "invalid_parameter" {
						t.Errorf("%s %s = %d %+v; want 400 invalid_parameter", method, target, resp.StatusCode, eb)
					}
				}
			}
		})
	}
}

// An audit row names an approval only when the call used it: an approvalId
// sent with a call whose permission needs none is not recorded as used.
func TestAuditNamesOnlyTheApprovalACallUsed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("docs:*", "read")}})
	res, err := e.cl.Authorize(t.Context(), api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: "docs:x",
		ApprovalID: "apr_not_needed"}, "")
	if err != nil || !res.Allowed {
		t.Fatalf("Authorize = %+v, %v; want allowed", res, err)
	}
	page, err := e.cl.QueryAudit(t.Context(), client.AuditFilter{AgentID: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range page.Entries {
		if row.ID == res.AuditID && row.ApprovalID != "" {
			t.Fatalf("audit row %s names approval %q, which the call did not use", row.ID, row.ApprovalID)
		}
	}
}

// Metadata is bounded (agents.maxMetadataBytes, 16 KiB by default) on
// create and on update, so a list of agents stays small.
func TestMetadataIsBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit int // service.Options.MaxMetadataBytes; 0 is the default
		size  int
		ok    bool
	}{
		{0, 15 << 10, true}, {0, 17 << 10, false}, {1024, 900, true}, {1024, 2048, false},
	} {
		e := newEnv(t, service.Options{MaxMetadataBytes: tc.limit})
		meta := `{"blob":"` + strings.Repeat("x", tc.size) + `"}`
		status, body := e.do(t, "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[],"metadata":`+meta+`}`)
		if tc.ok != (status == http.StatusCreated) || !tc.ok && (status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "metadata_too_large")) {
			t.Errorf("limit %d, create with %d bytes = %d %.200s; want ok=%v (else 422 metadata_too_large)", tc.limit, tc.size, status, body, tc.ok)
		}
		a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "small"})
		status, body = e.do(t, "PATCH", "/v1/agents/"+a.ID, `{"metadata":`+meta+`}`)
		if tc.ok != (status == http.StatusOK) || !tc.ok && !strings.Contains(string(body), "metadata_too_large") {
			t.Errorf("limit %d, update with %d bytes = %d %.200s; want ok=%v", tc.limit, tc.size, status, body, tc.ok)
		}
	}
}
