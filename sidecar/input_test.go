package sidecar_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

// A NUL, invalid UTF-8 or a control character in any path ID or query
// parameter is a 400 on every backend, before the database is asked:
// PostgreSQL would refuse the bytes with a 500, SQLite would store them.
func TestHostileBytesInURLsAre400OnEveryBackend(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "kavach.db") },
		"postgres": func(t *testing.T) string { return pgtest.URL(t) },
		"mysql":    func(t *testing.T) string { return mysqltest.URL(t) },
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

// newEnvAt is newEnv on the database at url (a SQLite file or PostgreSQL).
func newEnvAt(t *testing.T, url string, opts service.Options) *env {
	t.Helper()
	svc, st, c := newServiceAt(t, url, opts)
	h := newServer(t, svc, sidecar.Options{MaxBodyBytes: 64 << 10})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{srv: h, svc: svc, url: srv.URL, st: st, cl: client.New(srv.URL).WithAPIKey(testAdminKey), clock: c}
}

// stored sums up what the database holds: agents, keys, approvals by
// status, and every audit row (every change of state writes one, in its
// own transaction).
func (e *env) stored(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	agents, _, err := e.st.ListAgents(ctx, store.AgentFilter{}, store.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := e.st.ListKeys(ctx, store.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	approvals, _, err := e.st.ListApprovals(ctx, store.ApprovalFilter{}, store.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, a := range approvals {
		statuses[string(a.Status)]++
	}
	rows := 0
	if err := e.st.ExportAudit(ctx, store.AuditFilter{}, func(domain.AuditEntry) error { rows++; return nil }); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d agents, %d keys, approvals %v, %d audit rows", len(agents), len(keys), statuses, rows)
}

// Invalid UTF-8 (raw, overlong, an encoded surrogate), a NUL (escaped or
// raw), a lone surrogate escape or a raw control character, in any string
// of any body (IDs, names, resources, actions, and deep inside arguments,
// metadata and constraints, names included): 400 on every backend, with a
// message that does not repeat the bytes, and nothing stored. PostgreSQL
// would refuse NUL with a 500, SQLite would keep it, and encoding/json
// would have made the rest U+FFFD.
func TestHostileBytesInJSONBodiesAre400OnEveryBackend(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "kavach.db") },
		"postgres": func(t *testing.T) string { return pgtest.URL(t) },
		"mysql":    func(t *testing.T) string { return mysqltest.URL(t) },
	}
	// Each body holds § once: where a hostile string goes. A and B are
	// agents, APR a pending approval.
	bodies := []struct{ method, path, body string }{
		{"POST", "/v1/authorize", `{"agentId":"§","action":"read","resource":"docs:x"}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"re§ad","resource":"docs:x"}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"read","resource":"docs:§"}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"read","resource":"docs:x","arguments":{"k":"§"}}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"read","resource":"docs:x","arguments":{"k§":1}}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"read","resource":"docs:x","arguments":{"k":[1,{"deep":["§"]}]}}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"read","resource":"docs:x","context":{"ip":"10.0.0.1§"}}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"read","resource":"docs:x","context":{"userAgent":"ua§"}}`},
		{"POST", "/v1/authorize", `{"agentId":"A","action":"execute","resource":"deploy:prod","approvalId":"APR§"}`},
		{"POST", "/v1/agents", `{"ownerId":"u§","name":"n","permissions":[]}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n§","permissions":[]}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","type":"autonomous§","permissions":[]}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"docs:§","actions":["read"]}]}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"docs:*","actions":["read§"]}]}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"docs:*","actions":["read"],"constraints":{"allowedArgPatterns":["^a§"]}}]}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"docs:*","actions":["read"],"constraints":{"timeWindow":{"start":"09:00","end":"17:00","timezone":"UTC§"}}}]}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[],"metadata":{"team":"§"}}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[],"metadata":{"te§am":"x"}}`},
		{"POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[],"metadata":{"a":{"b":[{"c":"§"}]}}}`},
		{"PATCH", "/v1/agents/A", `{"name":"n§"}`},
		{"PATCH", "/v1/agents/A", `{"permissions":[{"resource":"docs:§","actions":["read"]}]}`},
		{"PATCH", "/v1/agents/A", `{"metadata":{"k":"§"}}`},
		{"PATCH", "/v1/agents/A", `{"metadata":{"k§":1}}`},
		{"PATCH", "/v1/agents/A", `{"expiresAt":"2999-01-01T00:00:00Z§"}`},
		{"POST", "/v1/delegations", `{"fromAgent":"A§","toAgent":"B","permissions":[{"resource":"docs:x","actions":["read"]}],"expiresAt":"2999-01-01T00:00:00Z"}`},
		{"POST", "/v1/delegations", `{"fromAgent":"A","toAgent":"B§","permissions":[{"resource":"docs:x","actions":["read"]}],"expiresAt":"2999-01-01T00:00:00Z"}`},
		{"POST", "/v1/delegations", `{"fromAgent":"A","toAgent":"B","permissions":[{"resource":"docs:§","actions":["read"]}],"expiresAt":"2999-01-01T00:00:00Z"}`},
		{"POST", "/v1/delegations", `{"fromAgent":"A","toAgent":"B","permissions":[{"resource":"docs:x","actions":["read§"]}],"expiresAt":"2999-01-01T00:00:00Z"}`},
		{"POST", "/v1/delegations", `{"fromAgent":"A","toAgent":"B","permissions":[{"resource":"docs:x","actions":["read"],"constraints":{"allowedArgPatterns":["§"]}}],"expiresAt":"2999-01-01T00:00:00Z"}`},
		{"POST", "/v1/approvals/APR/approve", `{"onBehalfOf":"alice§"}`},
		{"POST", "/v1/approvals/APR/approve", `{"respondedBy":"alice§"}`},
		{"POST", "/v1/approvals/APR/deny", `{"note":"because§"}`},
		{"POST", "/v1/keys", `{"name":"app§","roles":["decider"]}`},
		{"POST", "/v1/keys", `{"name":"app","roles":["decider§"]}`},
		{"POST", "/v1/keys", `{"name":"app","roles":["decider"],"expiresAt":"2999-01-01T00:00:00Z§"}`},
	}
	hostile := []string{"\xff", "\xc0\x80", "\xed\xa0\x80", "\x00", "\x01", "\x1b", `\u0000`, `x\u0000y`, `\\\u0000`,
		`\ud800`, `\udfff`, `\ud800\u0041`, `\ud800x`}
	for name, url := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnvAt(t, url(t), service.Options{})
			a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "a", Permissions: []api.Permission{perm("docs:*", "read"),
				{Resource: "deploy:*", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}}}})
			b := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "b", Permissions: []api.Permission{}})
			res, err := e.cl.Authorize(t.Context(), api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "deploy:prod"}, "")
			if err != nil || res.ApprovalID == "" {
				t.Fatalf("Authorize = %+v, %v; want an approval request", res, err)
			}
			ids := strings.NewReplacer("APR", res.ApprovalID, "agents/A", "agents/"+a.ID, `"A`, `"`+a.ID, `"B`, `"`+b.ID)
			before := e.stored(t)
			for _, c := range bodies {
				for _, h := range hostile {
					body := strings.Replace(ids.Replace(c.body), "§", h, 1)
					status, resp := e.do(t, c.method, ids.Replace(c.path), body)
					var eb api.ErrorBody
					decErr := json.Unmarshal(resp, &eb)
					if status != http.StatusBadRequest || decErr != nil || eb.Error.Code != "invalid_json" && eb.Error.Code != "invalid_field" {
						t.Errorf("%s %s %q = %d %s; want 400 invalid_json or invalid_field", c.method, c.path, body, status, resp)
						continue
					}
					if !utf8.Valid(resp) || bytes.ContainsAny(resp, "\x00\x01\x1b") || strings.ContainsAny(eb.Error.Message, "\x00\x01\x1b\ufffd") {
						t.Errorf("%s %s %q: the message %q repeats the bytes", c.method, c.path, body, eb.Error.Message)
					}
				}
			}
			if after := e.stored(t); after != before {
				t.Errorf("hostile bodies changed the database: %s, then %s", before, after)
			}
		})
	}
}

// A request names one concrete resource and one action: a wildcard, a bidi
// control, a zero-width or other invisible character, an empty segment is
// a bad request (400 invalid_field, naming the character in ASCII), not a
// decision: no audit row, even where a pattern would have matched it.
func TestRequestResourcesNameOneResource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("mcp:github:*", "*")}})
	if res, err := e.cl.Authorize(t.Context(), api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: "mcp:github:repos"}, ""); err != nil || !res.Allowed {
		t.Fatalf("Authorize(mcp:github:repos) = %+v, %v; want allowed", res, err)
	}
	_, audits := e.counts(t)
	for _, tc := range []struct{ action, resource, message string }{
		{"read", "mcp:github:*", `'*' is for permission patterns`},
		{"read", "*", `'*' is for permission patterns`},
		{"read", "mcp:github:re*", `'*' is for permission patterns`},
		{"read", "mcp:github:re\u202eos", `('\u202e')`},
		{"read", "mcp:github:\u2066x", `('\u2066')`},
		{"read", "mcp:github:a\u200bb", `('\u200b')`},
		{"read", "mcp:github:a\ufeff", `('\ufeff')`},
		{"read", "mcp:github:\u3164", `('\u3164')`},
		{"read", "mcp:github:a\ufe0f", `('\ufe0f')`},
		{"read", "mcp:github:a\U000e0041", `('\U000e0041')`},
		{"read", "mcp:github:a b", `(' ')`},
		{"read", "mcp:github:", "empty segment at position 3"},
		{"read", "mcp::repos", "empty segment at position 2"},
		{"*", "mcp:github:repos", `action "*" is for permissions`},
		{"re\u200bad", "mcp:github:repos", `('\u200b')`},
		{"re\u202ead", "mcp:github:repos", `('\u202e')`},
	} {
		body, _ := json.Marshal(api.AuthorizeRequest{AgentID: a.ID, Action: tc.action, Resource: tc.resource})
		status, resp := e.do(t, "POST", "/v1/authorize", string(body))
		var eb api.ErrorBody
		if err := json.Unmarshal(resp, &eb); err != nil || status != http.StatusBadRequest || eb.Error.Code != "invalid_field" ||
			!strings.Contains(eb.Error.Message, tc.message) {
			t.Errorf("authorize %q on %q = %d %s; want 400 invalid_field saying %s", tc.action, tc.resource, status, resp, tc.message)
		}
	}
	if _, n := e.counts(t); n != audits {
		t.Errorf("malformed requests wrote %d decision rows; want none", n-audits)
	}
}

// An approval is good for its own agent, action and resource: another
// agent's is approval_mismatch (saying nothing of it), one for another
// call of the agent too, an unknown one approval_not_found; none of them
// uses the approval or names it in the audit row, and its agent may still
// use it.
func TestApprovalsOfOtherCallsAreDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	needs := api.Permission{Resource: "deploy:*", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}}
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "a", Permissions: []api.Permission{needs}})
	b := e.create(t, api.CreateAgentRequest{OwnerID: "v", Name: "b", Permissions: []api.Permission{needs}})
	first, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "deploy:prod"}, "")
	if err != nil || first.Code != "approval_required" || first.ApprovalID == "" {
		t.Fatalf("Authorize = %+v, %v; want approval_required", first, err)
	}
	if _, err := e.cl.ResolveApproval(ctx, first.ApprovalID, true, api.ResolveApprovalRequest{OnBehalfOf: "alice"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req          api.AuthorizeRequest
		code, reason string
	}{
		{api.AuthorizeRequest{AgentID: b.ID, Action: "execute", Resource: "deploy:prod", ApprovalID: first.ApprovalID},
			"approval_mismatch", fmt.Sprintf("approval %q belongs to another agent", first.ApprovalID)},
		{api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "deploy:staging", ApprovalID: first.ApprovalID},
			"approval_mismatch", fmt.Sprintf(`approval %q was given for "execute" on "deploy:prod", not for this call`, first.ApprovalID)},
		{api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "deploy:prod", ApprovalID: "apr_01M8T42V0001PE77BYJQ7MT8VM"},
			"approval_not_found", `approval "apr_01M8T42V0001PE77BYJQ7MT8VM" does not exist`},
	} {
		res, err := e.cl.Authorize(ctx, tc.req, "")
		if err != nil || res.Allowed || res.Code != tc.code || res.Reason != tc.reason || res.ApprovalID != "" {
			t.Errorf("Authorize(%+v) = %+v, %v; want %s: %s", tc.req, res, err, tc.code, tc.reason)
			continue
		}
		row := auditRow(t, e, tc.req.AgentID, res.AuditID)
		if row.Code != tc.code || row.ApprovalID != "" {
			t.Errorf("audit row of %+v = code %s, approval %q; want %s naming no approval", tc.req, row.Code, row.ApprovalID, tc.code)
		}
	}
	ap, err := e.cl.GetApproval(ctx, first.ApprovalID)
	if err != nil || ap.Status != "approved" || ap.UsedAt != nil {
		t.Fatalf("approval after the mismatches = %+v, %v; want approved and unused", ap, err)
	}
	res, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "deploy:prod", ApprovalID: first.ApprovalID}, "")
	if err != nil || !res.Allowed {
		t.Fatalf("its own agent's call = %+v, %v; want allowed", res, err)
	}
	if row := auditRow(t, e, a.ID, res.AuditID); row.ApprovalID != first.ApprovalID {
		t.Errorf("audit row of the call that used it names %q; want %s", row.ApprovalID, first.ApprovalID)
	}
}

func auditRow(t *testing.T, e *env, agentID, id string) api.AuditEntry {
	t.Helper()
	page, err := e.cl.QueryAudit(t.Context(), client.AuditFilter{AgentID: agentID, Kind: "decision"})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range page.Entries {
		if row.ID == id {
			return row
		}
	}
	t.Fatalf("no audit row %s", id)
	return api.AuditEntry{}
}

// A query parameter a route does not read is refused, naming it, with a
// hint when the name is a near miss.
func TestUnknownQueryParametersAre400(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	for _, tc := range []struct{ path, want string }{
		{"/v1/audit?agentid=x", `did you mean "agentId"`},
		{"/v1/agents?owner=alice", `did you mean "ownerId"`},
		{"/v1/agents?userId=alice", `did you mean "ownerId"`},
		{"/v1/agents?sincee=1", `unknown query parameter "sincee"`},
		{"/v1/keys/key_x?verbose=1", "this route takes none"},
	} {
		status, raw := e.do(t, "GET", tc.path, "")
		var eb api.ErrorBody
		_ = json.Unmarshal(raw, &eb)
		body := eb.Error.Code + ": " + eb.Error.Message
		if status != 400 || eb.Error.Code != "invalid_parameter" || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %s; want 400 invalid_parameter with %q", tc.path, status, body, tc.want)
		}
	}
	if status, body := e.do(t, "GET", "/v1/audit?agentId=agt_x&limit=5", ""); status != 200 {
		t.Errorf("known parameters: %d %s", status, body)
	}
}

// An unknown field names the one meant: KavachOS's names, or another case.
func TestUnknownFieldsHintTheFieldMeant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/agents", `{"userId":"u","name":"n","permissions":[]}`, `did you mean "ownerId"? (KavachOS calls it "userId")`},
		{"/v1/authorize", `{"agentId":"agt_x","action":"read","resource":"r:x","args":{}}`, `did you mean "arguments"?`},
		{"/v1/delegations", `{"fromAgentId":"a","toAgent":"b","permissions":[],"expiresAt":"2030-01-01T00:00:00Z"}`, `did you mean "fromAgent"?`},
		{"/v1/agents", `{"ownerid":"u","name":"n","permissions":[]}`, `did you mean "ownerId"?`},
	} {
		status, raw := e.do(t, "POST", tc.path, tc.body)
		var eb api.ErrorBody
		_ = json.Unmarshal(raw, &eb)
		if status != 400 || eb.Error.Code != "unknown_field" || !strings.Contains(eb.Error.Message, tc.want) {
			t.Errorf("POST %s %s = %d %s; want unknown_field with %q", tc.path, tc.body, status, raw, tc.want)
		}
	}
}
