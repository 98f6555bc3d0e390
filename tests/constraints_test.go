package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

func constrained(resource string, constraints map[string]any, actions ...string) api.Permission {
	return api.Permission{Resource: resource, Actions: actions, Constraints: constraints}
}

func mustCreate(t *testing.T, cl *client.Client, perms ...api.Permission) api.AgentWithToken {
	t.Helper()
	a, err := cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "user-1", Name: "agent", Permissions: perms})
	if err != nil {
		t.Fatalf("CreateAgent = %v", err)
	}
	return a
}

func authz(t *testing.T, cl *client.Client, req api.AuthorizeRequest) api.AuthorizeResponse {
	t.Helper()
	res, err := cl.Authorize(t.Context(), req, "")
	if err != nil {
		t.Fatalf("Authorize(%+v) = %v", req, err)
	}
	return res
}

// TestRateLimitUnderConcurrency races 50 callers for a limit of 10 against
// the real binary: exactly 10 are allowed, denials do not consume quota,
// and the count survives a restart. Not parallel: the race is the test,
// and it should have the machine to itself.
func TestRateLimitUnderConcurrency(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kavach.db")
	s := start(t, "--database", db)
	cl := s.adminClient()
	a := mustCreate(t, cl, constrained("mcp:deploy:*", map[string]any{"maxCallsPerHour": 10}, "execute"))

	var allowed, limited atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			res, err := cl.Authorize(t.Context(), api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "mcp:deploy:staging"}, "")
			switch {
			case err != nil:
				t.Error(err)
			case res.Allowed:
				allowed.Add(1)
			case res.Code == "rate_limited":
				limited.Add(1)
			default:
				t.Errorf("unexpected decision %+v", res)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 10 || limited.Load() != 40 {
		t.Fatalf("50 racing calls under maxCallsPerHour 10: %d allowed, %d rate_limited; want 10 and 40", allowed.Load(), limited.Load())
	}
	// The window is per resource: another resource has its own quota.
	if res := authz(t, cl, api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "mcp:deploy:production"}); !res.Allowed {
		t.Errorf("another resource: %+v; want allowed", res)
	}
	s.stop(t)
	s2 := start(t, "--database", db)
	res := authz(t, s2.adminClient(), api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "mcp:deploy:staging"})
	if res.Code != "rate_limited" {
		t.Errorf("after restart: %+v; want rate_limited (counts survive)", res)
	}
}

// TestApprovalFlow walks requireApproval end to end, with a webhook that
// fails once and is retried.
func TestApprovalFlow(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	received := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &body)
		received <- body
	}))
	defer hook.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("approval:\n  ttl: 300\n  webhookUrl: %s\n", hook.URL))
	s := start(t, "--database", filepath.Join(dir, "kavach.db"), "--config", cfg)
	cl := s.adminClient()
	ctx := t.Context()
	a := mustCreate(t, cl, constrained("mcp:deploy:production", map[string]any{"requireApproval": true}, "execute"))
	req := api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "mcp:deploy:production"}

	first := authz(t, cl, req)
	if first.Allowed || first.Code != "approval_required" || first.ApprovalID == "" {
		t.Fatalf("first call = %+v; want approval_required with an approvalId", first)
	}
	if again := authz(t, cl, req); again.ApprovalID != first.ApprovalID {
		t.Errorf("a retry opened approval %s; want the pending %s reused", again.ApprovalID, first.ApprovalID)
	}
	select {
	case body := <-received:
		appr, _ := body["approval"].(map[string]any)
		if body["type"] != "approval.requested" || appr["id"] != first.ApprovalID {
			t.Errorf("webhook body = %v", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook was not retried and delivered within 20s")
	}

	pending, err := cl.ListApprovals(ctx, client.ApprovalFilter{Status: "pending", OwnerID: "user-1"})
	if err != nil || len(pending.Approvals) != 1 || pending.Approvals[0].ID != first.ApprovalID {
		t.Fatalf("pending approvals = %+v, %v; want the one request", pending, err)
	}
	withID := req
	withID.ApprovalID = first.ApprovalID
	if res := authz(t, cl, withID); res.Code != "approval_pending" {
		t.Errorf("before approval: %+v; want approval_pending", res)
	}
	if _, err := cl.ResolveApproval(ctx, first.ApprovalID, true, api.ResolveApprovalRequest{OnBehalfOf: "alice", RespondedBy: "bob"}); apiStatus(err) != 400 || apiCode(err) != "ambiguous_user" {
		t.Errorf("approve on behalf of two users = %v; want 400 ambiguous_user", err)
	}
	// The resolver is the credential; the user the app vouches for is
	// recorded beside it.
	approved, err := cl.ResolveApproval(ctx, first.ApprovalID, true, api.ResolveApprovalRequest{OnBehalfOf: "alice", Note: "ok for today"})
	if err != nil || approved.Status != "approved" || approved.RespondedBy != "KAVACH_ADMIN_KEY" || approved.RespondedByName != "KAVACH_ADMIN_KEY" ||
		approved.OnBehalfOf != "alice" || approved.Note != "ok for today" {
		t.Fatalf("approve = %+v, %v; want approved by KAVACH_ADMIN_KEY on behalf of alice", approved, err)
	}
	if _, err := cl.ResolveApproval(ctx, first.ApprovalID, false, api.ResolveApprovalRequest{RespondedBy: "bob"}); apiStatus(err) != 409 {
		t.Errorf("resolving a non-pending request = %v; want 409", err)
	}
	events, err := cl.QueryAudit(ctx, client.AuditFilter{Kind: "event", Action: "approval.approve"})
	if err != nil || len(events.Entries) != 1 || events.Entries[0].Resource != first.ApprovalID || events.Entries[0].AgentID != a.ID ||
		events.Entries[0].Actor != (api.Actor{Type: "admin_env", ID: "KAVACH_ADMIN_KEY", Name: "KAVACH_ADMIN_KEY", OnBehalfOf: "alice"}) {
		t.Errorf("audit events approval.approve = %+v, %v; want the one approval, by KAVACH_ADMIN_KEY on behalf of alice", events.Entries, err)
	}
	other := withID
	other.Resource = "mcp:deploy:staging"
	if res := authz(t, cl, other); res.Code != "no_permission" {
		t.Errorf("approval for another resource: %+v; want no_permission", res)
	}
	if res := authz(t, cl, withID); !res.Allowed {
		t.Fatalf("with the approved request: %+v; want allowed", res)
	}
	if res := authz(t, cl, withID); res.Code != "approval_used" {
		t.Errorf("reusing the approval: %+v; want approval_used", res)
	}
	used, _ := cl.GetApproval(ctx, first.ApprovalID)
	if used.Status != "used" || used.UsedAt == nil {
		t.Errorf("approval after use = %+v; want used", used)
	}

	// A denied request is denied with its own code.
	second := authz(t, cl, req)
	if second.ApprovalID == first.ApprovalID || second.ApprovalID == "" {
		t.Fatalf("after use, a new request must open: %+v", second)
	}
	// An approver's key may deny without naming anyone: the key is the
	// resolver.
	approver := s.mintKey(t, "approvals-app", "approver")
	denied, err := cl.WithAPIKey(approver.Key).ResolveApproval(ctx, second.ApprovalID, false, api.ResolveApprovalRequest{})
	if err != nil || denied.Status != "denied" || denied.RespondedBy != approver.ID || denied.RespondedByName != "approvals-app" || denied.OnBehalfOf != "" {
		t.Fatalf("deny with an approver key and an empty body = %+v, %v; want denied by %s, on behalf of nobody", denied, err, approver.ID)
	}
	withID.ApprovalID = second.ApprovalID
	if res := authz(t, cl, withID); res.Code != "approval_denied" {
		t.Errorf("with a denied request: %+v; want approval_denied", res)
	}
	withID.ApprovalID = "apr_doesnotexist"
	if res := authz(t, cl, withID); res.Code != "approval_not_found" {
		t.Errorf("with an unknown approval: %+v; want approval_not_found", res)
	}
	if _, err := cl.GetApproval(ctx, "apr_nope"); apiStatus(err) != 404 {
		t.Errorf("GET unknown approval = %v; want 404", err)
	}
	page, err := cl.QueryAudit(ctx, client.AuditFilter{AgentID: a.ID, Result: "allowed", Kind: "decision"})
	if err != nil || len(page.Entries) != 1 || page.Entries[0].ApprovalID != first.ApprovalID {
		t.Errorf("audit of the approved call = %+v, %v; want the approval ID recorded", page.Entries, err)
	}
}

// Not parallel, as TestRateLimitUnderConcurrency: racing callers.
func TestConcurrentUseOfOneApprovalAllowsOnce(t *testing.T) {
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	a := mustCreate(t, cl, constrained("db:prod", map[string]any{"requireApproval": true}, "drop"))
	req := api.AuthorizeRequest{AgentID: a.ID, Action: "drop", Resource: "db:prod"}
	id := authz(t, cl, req).ApprovalID
	if _, err := cl.ResolveApproval(t.Context(), id, true, api.ResolveApprovalRequest{RespondedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	req.ApprovalID = id
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if res, err := cl.Authorize(t.Context(), req, ""); err == nil && res.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 1 {
		t.Errorf("20 racing calls with one approval: %d allowed; want exactly 1", allowed.Load())
	}
}

func TestTimeWindowIPAndArguments(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	now := time.Now().UTC()
	hhmm := func(t time.Time) string { return t.Format("15:04") }
	a := mustCreate(t, cl,
		constrained("win:open", map[string]any{"timeWindow": map[string]any{"start": hhmm(now.Add(-time.Hour)), "end": hhmm(now.Add(time.Hour))}}, "run"),
		constrained("win:closed", map[string]any{"timeWindow": map[string]any{"start": hhmm(now.Add(2 * time.Hour)), "end": hhmm(now.Add(3 * time.Hour)), "timezone": "Europe/Berlin"}}, "run"),
		constrained("net:*", map[string]any{"ipAllowlist": []string{"10.0.0.0/8", "2001:db8::/32", "192.168.1.50"}}, "call"),
		constrained("fs:*", map[string]any{"allowedArgPatterns": []string{`^src/.*\.ts$`}}, "write"),
	)
	for _, tt := range []struct {
		req  api.AuthorizeRequest
		code string
	}{
		{api.AuthorizeRequest{Action: "run", Resource: "win:open"}, "allowed"},
		{api.AuthorizeRequest{Action: "run", Resource: "win:closed"}, "outside_time_window"},
		{api.AuthorizeRequest{Action: "call", Resource: "net:x", Context: &api.RequestContext{IP: "10.9.8.7"}}, "allowed"},
		{api.AuthorizeRequest{Action: "call", Resource: "net:x", Context: &api.RequestContext{IP: "2001:db8:0:0::1"}}, "allowed"},
		{api.AuthorizeRequest{Action: "call", Resource: "net:x", Context: &api.RequestContext{IP: "::ffff:192.168.1.50"}}, "allowed"},
		{api.AuthorizeRequest{Action: "call", Resource: "net:x", Context: &api.RequestContext{IP: "192.168.1.51"}}, "ip_not_allowed"},
		{api.AuthorizeRequest{Action: "call", Resource: "net:x"}, "ip_not_allowed"},
		{api.AuthorizeRequest{Action: "write", Resource: "fs:repo", Arguments: json.RawMessage(`{"path":"src/a.ts","also":["src/b/c.ts"]}`)}, "allowed"},
		{api.AuthorizeRequest{Action: "write", Resource: "fs:repo", Arguments: json.RawMessage(`{"path":"src/a.ts","x":{"y":"/etc/passwd"}}`)}, "argument_not_allowed"},
	} {
		tt.req.AgentID = a.ID
		if res := authz(t, cl, tt.req); res.Code != tt.code || res.Allowed != (tt.code == "allowed") {
			t.Errorf("Authorize(%s %s ctx=%+v args=%s) = %+v; want %s", tt.req.Action, tt.req.Resource, tt.req.Context, tt.req.Arguments, res, tt.code)
		}
	}
}

func TestBadConstraintsAreRejectedAndWriteNothing(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	for name, c := range map[string]map[string]any{
		"unknown key":          {"maxCalls": 3},
		"negative limit":       {"maxCallsPerHour": -1},
		"zero limit":           {"maxCallsPerHour": 0},
		"fractional limit":     {"maxCallsPerHour": 1.5},
		"bad CIDR":             {"ipAllowlist": []string{"10.0.0.0/33"}},
		"not an IP":            {"ipAllowlist": []string{"example.com"}},
		"empty allowlist":      {"ipAllowlist": []string{}},
		"bad time zone":        {"timeWindow": map[string]any{"start": "09:00", "end": "17:00", "timezone": "Mars/Olympus"}},
		"bad time":             {"timeWindow": map[string]any{"start": "9am", "end": "17:00"}},
		"bad day":              {"timeWindow": map[string]any{"start": "09:00", "end": "17:00", "days": []string{"funday"}}},
		"bad regex":            {"allowedArgPatterns": []string{"(["}},
		"approval not boolean": {"requireApproval": "yes"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "u", Name: "n",
				Permissions: []api.Permission{constrained("a:b", c, "read")}})
			if apiStatus(err) != 422 || apiCode(err) != "invalid_permission" {
				t.Errorf("constraints %v: %v; want 422 invalid_permission", c, err)
			}
		})
	}
	if agents, err := cl.ListAgents(t.Context(), client.AgentFilter{}); err != nil || len(agents.Agents) != 0 {
		t.Errorf("agents after bad input = %d, %v; want none written", len(agents.Agents), err)
	}
}

func apiStatus(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func apiCode(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
