package sidecar_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

// events returns the audit events with action, oldest first.
func events(t *testing.T, e *env, action string) []domain.AuditEntry {
	t.Helper()
	var out []domain.AuditEntry
	err := e.st.ExportAudit(t.Context(), store.AuditFilter{Kind: domain.KindEvent, Action: action}, func(a domain.AuditEntry) error {
		out = append(out, a)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every change of state writes one event naming who made it, what it
// targets and what changed (never a secret); a refused change writes none.
func TestChangesOfStateAreAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	k, err := e.cl.CreateKey(ctx, api.CreateKeyRequest{Name: "ops", Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	ops := client.New(e.url).WithAPIKey(k.Key)
	from, err := ops.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u1", Name: "orch", Permissions: []api.Permission{
		perm("mcp:github:*", "read"), {Resource: "mcp:deploy:*", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}}}})
	if err != nil {
		t.Fatal(err)
	}
	to := e.create(t, api.CreateAgentRequest{OwnerID: "u1", Name: "sub", Permissions: []api.Permission{}})
	newPerms := []api.Permission{perm("mcp:github:issues", "read")}
	if _, err := ops.UpdateAgent(ctx, to.ID, api.UpdateAgentRequest{Permissions: &newPerms}); err != nil {
		t.Fatal(err)
	}
	rotated, err := ops.RotateAgent(ctx, to.ID)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UTC()
	d, err := ops.Delegate(ctx, api.DelegateRequest{FromAgent: from.ID, ToAgent: to.ID, Permissions: []api.Permission{perm("mcp:github:repos", "read")}, ExpiresAt: api.NewTimePtr(&exp)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.RevokeDelegation(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	res, err := ops.Authorize(ctx, api.AuthorizeRequest{AgentID: from.ID, Action: "execute", Resource: "mcp:deploy:prod"}, "")
	if err != nil || res.ApprovalID == "" {
		t.Fatalf("Authorize = %+v, %v; want approval_required", res, err)
	}
	approved, err := ops.ResolveApproval(ctx, res.ApprovalID, true, api.ResolveApprovalRequest{OnBehalfOf: "alice", Note: "release"})
	if err != nil {
		t.Fatal(err)
	}
	if approved.RespondedBy != k.ID || approved.RespondedByName != "ops" || approved.OnBehalfOf != "alice" {
		t.Errorf("approval responder = %q %q on behalf of %q; want the key %s (ops) for alice", approved.RespondedBy, approved.RespondedByName, approved.OnBehalfOf, k.ID)
	}
	if _, err := ops.RevokeAgent(ctx, to.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.RevokeAgent(ctx, to.ID); err != nil { // repeating changes nothing: no second event
		t.Fatal(err)
	}
	if _, err := e.cl.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	// A write the rules refuse changes nothing and records nothing.
	if _, err := e.cl.UpdateAgent(ctx, to.ID, api.UpdateAgentRequest{Permissions: &newPerms}); apiCode(err) != "agent_revoked" {
		t.Fatalf("update of a revoked agent = %v; want agent_revoked", err)
	}

	byKey := api.Actor{Type: domain.ActorKey, ID: k.ID, Name: "ops"}
	admin := api.Actor{Type: domain.ActorAdminEnv, ID: "KAVACH_ADMIN_KEY", Name: "KAVACH_ADMIN_KEY"}
	for _, tt := range []struct {
		action, target string
		n              int
		actor          api.Actor
	}{
		{"key.create", k.ID, 1, admin},
		{"agent.create", from.ID, 1, byKey},
		{"agent.update", to.ID, 1, byKey},
		{"agent.rotate", to.ID, 1, byKey},
		{"delegation.create", d.ID, 1, byKey},
		{"delegation.revoke", d.ID, 1, byKey},
		{"approval.approve", res.ApprovalID, 1, api.Actor{Type: domain.ActorKey, ID: k.ID, Name: "ops", OnBehalfOf: "alice"}},
		{"agent.revoke", to.ID, 1, byKey},
		{"key.revoke", k.ID, 1, admin},
	} {
		var got []domain.AuditEntry
		for _, ev := range events(t, e, tt.action) {
			if ev.Resource == tt.target {
				got = append(got, ev)
			}
		}
		if len(got) != tt.n {
			t.Errorf("%s events on %s = %d; want %d", tt.action, tt.target, len(got), tt.n)
			continue
		}
		if api.Actor(got[0].Actor) != tt.actor || got[0].Result != "allowed" {
			t.Errorf("%s actor = %+v, result %s; want %+v, allowed", tt.action, got[0].Actor, got[0].Result, tt.actor)
		}
	}
	upd := events(t, e, "agent.update")
	var changes struct {
		Before, After map[string]json.RawMessage
	}
	if len(upd) != 1 || json.Unmarshal(upd[0].Changes, &changes) != nil {
		t.Fatalf("agent.update changes = %s; want before and after", upd[0].Changes)
	}
	if string(changes.Before["permissions"]) != "[]" || !strings.Contains(string(changes.After["permissions"]), "mcp:github:issues") {
		t.Errorf("agent.update changes = %s; want permissions before [] and after mcp:github:issues", upd[0].Changes)
	}
	if _, ok := changes.After["name"]; ok {
		t.Errorf("agent.update changes = %s; want only the fields that changed", upd[0].Changes)
	}
	// No secret in any event.
	all := events(t, e, "")
	for _, ev := range all {
		b, _ := json.Marshal(ev)
		for _, secret := range []string{k.Key, to.Token, rotated.Token, from.Token} {
			if strings.Contains(string(b), secret) {
				t.Errorf("event %s holds a secret: %s", ev.Action, b)
			}
		}
	}
	// The filter separates the kinds.
	page, err := e.cl.QueryAudit(ctx, client.AuditFilter{Kind: "decision"})
	if err != nil || len(page.Entries) != 1 || page.Entries[0].Kind != "decision" {
		t.Errorf("QueryAudit(kind=decision) = %d entries, %v; want the one decision", len(page.Entries), err)
	}
	if status, body := e.do(t, "GET", "/v1/audit?kind=both", ""); status != 400 || errorCode(t, body) != "invalid_parameter" {
		t.Errorf("GET /v1/audit?kind=both = %d %s; want 400 invalid_parameter", status, body)
	}
}

// Refused calls are counted in /metrics and audited, but a flood of them
// writes a bounded number of rows.
func TestRefusalsAreCountedAndAuditedWithinABudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	go e.svc.Run(t.Context()) // writes the refusals' rows
	// A long path is cut in the row: a refusal costs a few hundred bytes.
	if status, _ := e.do(t, "GET", "/v1/"+strings.Repeat("x", 20000), "", "Authorization", ""); status != 401 {
		t.Fatalf("long unknown path = %d; want 401", status)
	}
	const flood = 300
	for i := range flood {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", e.url+"/v1/agents", nil)
		var raw [32]byte
		raw[0], raw[1] = byte(i), byte(i>>8)
		req.Header.Set("Authorization", "Bearer kvk_"+base64.RawURLEncoding.EncodeToString(raw[:]))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("unknown key = %d; want 401", resp.StatusCode)
		}
	}
	status, body := e.do(t, "GET", "/metrics", "")
	if status != 200 || !strings.Contains(string(body), fmt.Sprintf(`kavach_api_refused_total{status="401",code="invalid_key"} %d`, flood)) {
		t.Errorf("/metrics does not count %d refusals:\n%s", flood, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	var n int
	for time.Now().Before(deadline) {
		if n = len(events(t, e, "api.refused")); n >= 60 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n < 1 || n > 60 {
		t.Errorf("api.refused rows = %d after %d refusals; want between 1 and the budget of 60", n, flood)
	}
	ev := events(t, e, "api.refused")[1] // after the long path's
	if ev.Result != "denied" || ev.Code != "invalid_key" || ev.Resource != "agents.list" || ev.Actor.Type != "anonymous" {
		t.Errorf("refusal row = %+v; want denied invalid_key on agents.list by anonymous", ev)
	}
	// Anonymous noise has used its budget; a known agent's refusal is still
	// written, on a budget of its own.
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("docs:*", "read")}})
	if status, _ := e.do(t, "PATCH", "/v1/agents/"+a.ID, `{"name":"x"}`, "Authorization", "Bearer "+a.Token); status != 403 {
		t.Fatalf("agent PATCH = %d; want 403", status)
	}
	var byAgent []domain.AuditEntry
	for time.Now().Before(deadline.Add(10 * time.Second)) {
		byAgent = byAgent[:0]
		for _, ev := range events(t, e, "api.refused") {
			if ev.Actor.ID == a.ID {
				byAgent = append(byAgent, ev)
			}
		}
		if len(byAgent) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(byAgent) != 1 || byAgent[0].AgentID != a.ID || byAgent[0].OwnerID != "u" || byAgent[0].Resource != "agents.update" {
		t.Errorf("the agent's refusal rows = %+v; want one on agents.update naming the agent and its owner", byAgent)
	}
	long := 0
	for _, ev := range events(t, e, "api.refused") {
		if strings.Contains(ev.Resource, "xxxx") {
			long++
		}
		if len(ev.Reason) > 600 || len(ev.Resource) > 200 {
			t.Errorf("refusal row of %d+%d bytes; want reason and route cut short", len(ev.Reason), len(ev.Resource))
		}
	}
	if long != 1 {
		t.Errorf("rows for the long path = %d; want 1, cut short", long)
	}
}

func TestHostHeaderMustBeOurs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	ready := make(chan string, 1)
	go func() {
		_ = e.srv.ListenAndServe(ctx, sidecar.Listener{Addr: "127.0.0.1:0"}, func(a net.Addr) { ready <- a.String() })
	}()
	addr := <-ready
	for _, tt := range []struct {
		host   string
		status int
	}{
		{addr, 200},
		{"localhost:7400", 200},
		{"127.0.0.1", 200},
		{"[::1]:7400", 200},
		{"evil.example:7400", 421},
		{"localhost.evil.example", 421},
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/health", nil)
		req.Host = tt.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("GET /health with Host %q = %d; want %d", tt.host, resp.StatusCode, tt.status)
		}
	}
}

// The API on a Unix socket: mode 0660, the app's group, reachable by the
// Go client with unix://; a stale socket from a crash is replaced.
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	dir, err := os.MkdirTemp("", "kv") // short: socket paths are limited to ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "kavach.sock")
	// A stale socket, as a crash leaves it.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()
	gid := os.Getgid()
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- e.srv.ListenAndServe(t.Context(), sidecar.Listener{Addr: "unix://" + path, SocketGroup: strconv.Itoa(gid)},
			func(net.Addr) { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("ListenAndServe(unix) = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v; want a socket with 0660", fi.Mode())
	}
	cl := client.New("unix://" + path).WithAPIKey(testAdminKey)
	if _, err := cl.ListAgents(t.Context(), client.AgentFilter{}); err != nil {
		t.Errorf("ListAgents over the socket = %v", err)
	}
	if _, err := client.New("unix://"+path).ListAgents(t.Context(), client.AgentFilter{}); apiStatus(err) != 401 {
		t.Errorf("ListAgents over the socket without a key = %v; want 401", err)
	}
	// A second sidecar on the same live socket is refused, not let to steal it.
	err = e.srv.ListenAndServe(t.Context(), sidecar.Listener{Addr: "unix://" + path}, nil)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second listener on a live socket = %v; want an error", err)
	}
}
