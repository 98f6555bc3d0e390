package tests

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	kavach "github.com/kavach-dev/kavach/sidecar"
)

// fixedWidth is the one shape of every time Kavach writes: RFC 3339, UTC,
// three fraction digits.
var fixedWidth = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// timesIn checks every time in a JSON document: each value named
// timestamp or …At (when not null), and each string that parses as an RFC
// 3339 time, however deep (in changes too), must be fixedWidth. It
// returns the names of the times it found.
func timesIn(t *testing.T, what string, body []byte) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, body)
	}
	var names []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if x != nil && (k == "timestamp" || strings.HasSuffix(k, "At")) {
					names = append(names, k)
					if s, ok := x.(string); !ok || !fixedWidth.MatchString(s) {
						t.Errorf("%s: %s.%s = %v; want a time like 2026-11-23T19:12:29.300Z", what, path, k, x)
					}
					continue
				}
				walk(path+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case string:
			if _, err := time.Parse(time.RFC3339Nano, v); err == nil && !fixedWidth.MatchString(v) {
				t.Errorf("%s: %s = %q; want a time like 2026-11-23T19:12:29.300Z", what, path, v)
			}
		}
	}
	walk("", doc)
	return names
}

// requireTimes fails unless names holds each of want.
func requireTimes(t *testing.T, what string, names []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("%s: no %s among its times %v", what, w, names)
		}
	}
}

// Every time Kavach writes, in every answer, export, CLI output and log
// line, is fixed-width (issue 14: 19:12:29.3Z sorted after 19:12:29.25Z);
// times are read in any RFC 3339 form; and the JSON export, written to
// the millisecond, still verifies offline.
func TestTimestampsAreFixedWidth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("secret: %q\n", chainSecret))
	s := start(t, "--database", filepath.Join(dir, "kavach.db"), "--config", cfg)
	admin := "Bearer " + adminKey
	call := func(method, path string, body any, want int) []byte {
		t.Helper()
		r := guardCall(t, s, method, path, admin, body)
		if r.status != want {
			t.Fatalf("%s %s = %d %s; want %d", method, path, r.status, r.body, want)
		}
		return r.body
	}
	check := func(method, path string, body any, want int, times ...string) []byte {
		t.Helper()
		b := call(method, path, body, want)
		requireTimes(t, method+" "+path, timesIn(t, method+" "+path, b), times...)
		return b
	}

	// Times come in many forms: nine fraction digits and an offset, none
	// and Z, one digit and a negative offset.
	base := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	precise := base.Add(123_456_789 * time.Nanosecond)
	agentBody := check(http.MethodPost, "/v1/agents", map[string]any{"ownerId": "alice", "name": "orch",
		"expiresAt": precise.In(time.FixedZone("", 5*3600+1800)).Format(time.RFC3339Nano),
		"permissions": []map[string]any{{"resource": "mcp:github:*", "actions": []string{"read"}},
			{"resource": "mcp:deploy:staging", "actions": []string{"execute"}, "constraints": map[string]any{"requireApproval": true}}}},
		http.StatusCreated, "createdAt", "updatedAt", "expiresAt")
	var orch api.AgentWithToken
	if err := json.Unmarshal(agentBody, &orch); err != nil {
		t.Fatal(err)
	}
	if got, want := orch.ExpiresAt.String(), precise.UTC().Format("2006-01-02T15:04:05.000Z"); got != want {
		t.Errorf("expiresAt sent as %s came back as %s; want %s (UTC, truncated to the millisecond)",
			precise.In(time.FixedZone("", 5*3600+1800)).Format(time.RFC3339Nano), got, want)
	}
	var sub api.AgentWithToken
	if err := json.Unmarshal(check(http.MethodPost, "/v1/agents", map[string]any{"ownerId": "alice", "name": "sub",
		"expiresAt": base.UTC().Format(time.RFC3339), "permissions": []any{}}, http.StatusCreated, "expiresAt"), &sub); err != nil {
		t.Fatal(err)
	}
	if got := sub.ExpiresAt.String(); !strings.HasSuffix(got, ".000Z") {
		t.Errorf("expiresAt sent without a fraction came back as %s; want .000Z", got)
	}
	check(http.MethodGet, "/v1/agents/"+orch.ID, nil, http.StatusOK, "createdAt", "updatedAt", "expiresAt")
	check(http.MethodGet, "/v1/agents", nil, http.StatusOK, "createdAt", "updatedAt", "expiresAt")

	var d api.Delegation
	if err := json.Unmarshal(check(http.MethodPost, "/v1/delegations", map[string]any{"fromAgent": orch.ID, "toAgent": sub.ID,
		"permissions": []map[string]any{{"resource": "mcp:github:*", "actions": []string{"read"}}},
		"expiresAt":   base.Add(-time.Hour + 500*time.Millisecond).In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano)},
		http.StatusCreated, "createdAt", "expiresAt"), &d); err != nil {
		t.Fatal(err)
	}
	check(http.MethodGet, "/v1/delegations/"+d.ID, nil, http.StatusOK, "createdAt", "expiresAt")
	check(http.MethodGet, "/v1/agents/"+sub.ID+"/delegations", nil, http.StatusOK, "createdAt", "expiresAt")
	check(http.MethodGet, "/v1/agents/"+sub.ID+"/effective-permissions", nil, http.StatusOK, "expiresAt")

	// An approval, approved and used.
	var res api.AuthorizeResponse
	if err := json.Unmarshal(call(http.MethodPost, "/v1/authorize",
		map[string]string{"agentId": orch.ID, "action": "execute", "resource": "mcp:deploy:staging"}, http.StatusOK), &res); err != nil || res.ApprovalID == "" {
		t.Fatalf("authorize = %+v, %v; want an approval request", res, err)
	}
	check(http.MethodGet, "/v1/approvals/"+res.ApprovalID, nil, http.StatusOK, "createdAt", "expiresAt")
	check(http.MethodPost, "/v1/approvals/"+res.ApprovalID+"/approve", map[string]string{"note": "ok"}, http.StatusOK,
		"createdAt", "expiresAt", "respondedAt")
	if err := json.Unmarshal(call(http.MethodPost, "/v1/authorize", map[string]string{"agentId": orch.ID, "action": "execute",
		"resource": "mcp:deploy:staging", "approvalId": res.ApprovalID}, http.StatusOK), &res); err != nil || !res.Allowed {
		t.Fatalf("authorize with the approval = %+v, %v; want allowed", res, err)
	}
	check(http.MethodGet, "/v1/approvals", nil, http.StatusOK, "createdAt", "expiresAt", "respondedAt", "usedAt")

	// A key with an expiry, revoked.
	var key api.KeyWithSecret
	if err := json.Unmarshal(check(http.MethodPost, "/v1/keys", map[string]any{"name": "short", "roles": []string{"auditor"},
		"expiresAt": base.Add(time.Hour).UTC().Format("2006-01-02T15:04:05.1Z07:00")}, http.StatusCreated, "createdAt", "expiresAt"), &key); err != nil {
		t.Fatal(err)
	}
	check(http.MethodPost, "/v1/keys/"+key.ID+"/revoke", nil, http.StatusOK, "createdAt", "expiresAt", "revokedAt")
	check(http.MethodGet, "/v1/keys", nil, http.StatusOK, "createdAt", "expiresAt", "revokedAt")

	// expiresAt sent back as it came equals what is stored: an update that
	// also renames changes only the name.
	check(http.MethodPatch, "/v1/agents/"+orch.ID, map[string]any{"name": "orch-2", "expiresAt": orch.ExpiresAt}, http.StatusOK, "expiresAt")
	check(http.MethodPatch, "/v1/agents/"+sub.ID, map[string]any{"expiresAt": base.Add(time.Hour).Format(time.RFC3339)}, http.StatusOK, "expiresAt")
	check(http.MethodPost, "/v1/agents/"+sub.ID+"/revoke", nil, http.StatusOK, "revokedAt")
	check(http.MethodGet, "/v1/policies", nil, http.StatusOK, "loadedAt")

	// since and until take any RFC 3339 form.
	q := url.Values{"since": {time.Now().Add(-time.Hour).In(time.FixedZone("", 3600)).Format(time.RFC3339)},
		"until": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)}, "limit": {"1000"}}
	var page api.AuditPage
	pageBody := check(http.MethodGet, "/v1/audit?"+q.Encode(), nil, http.StatusOK, "timestamp", "expiresAt")
	if err := json.Unmarshal(pageBody, &page); err != nil || len(page.Entries) < 10 {
		t.Fatalf("audit page: %v, %d entries; want every row", err, len(page.Entries))
	}
	for _, e := range page.Entries {
		if e.Action != "agent.update" || e.Resource != orch.ID {
			continue
		}
		var ch struct{ After map[string]any }
		if err := json.Unmarshal(e.Changes, &ch); err != nil {
			t.Fatal(err)
		}
		if _, ok := ch.After["expiresAt"]; ok || ch.After["name"] != "orch-2" {
			t.Errorf("update with expiresAt sent back unchanged recorded %s; want the name alone", e.Changes)
		}
	}

	// The CSV export.
	r := guardCall(t, s, http.MethodGet, "/v1/audit/export?format=csv", admin, nil)
	if r.status != http.StatusOK {
		t.Fatalf("CSV export = %d %s", r.status, r.body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || len(rows) < 11 {
		t.Fatalf("CSV export: %v, %d rows", err, len(rows))
	}
	col := slices.Index(kavach.CSVHeader, "timestamp")
	if !slices.Equal(rows[0], kavach.CSVHeader) || col < 0 {
		t.Fatalf("CSV header = %v", rows[0])
	}
	for _, row := range rows[1:] {
		if !fixedWidth.MatchString(row[col]) {
			t.Errorf("CSV row %s: timestamp %q; want a time like 2026-11-23T19:12:29.300Z", row[0], row[col])
		}
	}

	// The JSON export, through the CLI, and its offline verification.
	export := filepath.Join(dir, "export.json")
	if _, errOut, code := cli(t, nil, "audit", "export", "--server", s.URL, "--format", "json", "-o", export); code != 0 {
		t.Fatalf("export exited %d: %s", code, errOut)
	}
	raw, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	names := timesIn(t, "JSON export", raw)
	requireTimes(t, "JSON export", names, "timestamp", "expiresAt", "createdAt")
	if n := strings.Count(string(raw), `"timestamp":`); n != len(rows)-1 {
		t.Errorf("JSON export has %d rows; the CSV export %d", n, len(rows)-1)
	}
	if out, code := verifyCLI(t, "--file", export); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify of the JSON export exited %d:\n%s", code, out)
	}

	// The CLI's output.
	for _, args := range [][]string{{"agent", "get", orch.ID}, {"keys", "list"}, {"approval", "list"}, {"audit", "query", "--limit", "5"}} {
		out, errOut, code := cli(t, nil, append(args, "--server", s.URL)...)
		if code != 0 {
			t.Fatalf("kavach %s exited %d: %s", strings.Join(args, " "), code, errOut)
		}
		if names := timesIn(t, "kavach "+strings.Join(args, " "), []byte(out)); len(names) == 0 {
			t.Errorf("kavach %s printed no times:\n%s", strings.Join(args, " "), out)
		}
	}

	// The log lines.
	s.stop(t)
	lines := strings.Split(strings.TrimSpace(s.log()), "\n")
	for _, line := range lines {
		timesIn(t, "log line "+line, []byte(line))
		var rec struct{ Time string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || !fixedWidth.MatchString(rec.Time) {
			t.Errorf("log line's time %q; want a time like 2026-11-23T19:12:29.300Z: %s", rec.Time, line)
		}
	}
}

// The MCP authorization server's JSON writes times as the rest of the API:
// a pending consent's expiry, a verified token's.
func TestOAuthTimestampsAreFixedWidth(t *testing.T) {
	t.Parallel()
	s, issuer := mcpSidecar(t, deployScope)
	clientID, handle := consentRequest(t, issuer)
	r := guardCall(t, s, http.MethodGet, "/v1/oauth/requests/"+handle, "Bearer "+adminKey, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET the consent request = %d %s", r.status, r.body)
	}
	requireTimes(t, "consent request", timesIn(t, "consent request", r.body), "expiresAt")

	var approved struct {
		RedirectURL string `json:"redirectUrl"`
	}
	r = guardCall(t, s, http.MethodPost, "/v1/oauth/requests/"+handle+"/approve", "Bearer "+adminKey, map[string]any{"userId": "mcp-user"})
	if err := json.Unmarshal(r.body, &approved); r.status != http.StatusOK || err != nil {
		t.Fatalf("consent = %d %s; want 200", r.status, r.body)
	}
	back, _ := url.Parse(approved.RedirectURL)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	body := form(t, http.DefaultClient, issuer+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID},
		"code": {back.Query().Get("code")}, "redirect_uri": {"http://127.0.0.1:4567/cb"}, "code_verifier": {attackVerifier},
		"resource": {mcpResource}}, http.StatusOK)
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	r = guardCall(t, s, http.MethodPost, "/v1/oauth/verify", "Bearer "+adminKey,
		map[string]any{"token": tok.AccessToken, "resource": mcpResource, "scopes": []string{"tools:deploy"}})
	if r.status != http.StatusOK {
		t.Fatalf("verify = %d %s", r.status, r.body)
	}
	requireTimes(t, "verify", timesIn(t, "verify", r.body), "expiresAt")
}
