package tests

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

// hostileStrings are JSON string literals (as they appear in a body, so
// that raw bytes and escapes both reach the server) an attacker puts where
// a string goes.
var hostileStrings = []string{
	`"a\u0000b"`,                           // NUL, escaped
	"\"a\x00b\"",                           // NUL, raw (invalid JSON)
	"\"a\xffb\"",                           // invalid UTF-8
	"\"a\xc3\"",                            // truncated UTF-8
	`"\ud800"`,                             // lone surrogate
	`"\udc00x"`,                            // lone low surrogate
	`"a\u0007b"`,                           // BEL
	"\"a\u202eb\"",                         // right-to-left override, raw
	`"mcp:github:\u202erepos"`,             // the same, escaped, in a resource
	"\"mcp:github:re\u200bpos\"",           // zero-width space
	"\"mcp:github:\ufeffrepos\"",           // BOM
	`"mcp:github:*"`,                       // a wildcard where one resource goes
	`""`,                                   // empty
	`"` + strings.Repeat("x", 70000) + `"`, // long
	`"../../etc/passwd"`,
	`"agt_` + strings.Repeat("0", 300) + `"`,
	`"a\nb"`,
}

// hostileNumbers go where maxCallsPerHour goes.
var hostileNumbers = []string{`1e400`, `-1`, `0`, `1.5`, `1000001`, `9223372036854775808`, `"10"`, `true`, `null`, `1e6`, `[]`}

// hostileBodies replace a whole body.
var hostileBodies = []string{``, `{`, `[]`, `null`, `"x"`, `{"a":1}{"b":2}`, `{"name":"a","name":"b"}`,
	strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "\xff\xfe{}", `{"ownerId":{"$ne":1}}`}

type hostileCall struct {
	method, path, body string
}

// hostileCorpus builds the requests: each string field of each body set
// to each hostile string, the numbers, whole bodies, IDs and parameters.
func hostileCorpus(agentID, approvalID string) []hostileCall {
	var calls []hostileCall
	type template struct {
		method, path string
		// body has one %s where the hostile value goes, per field.
		fields []string
	}
	perm := func(resource, constraints string) string {
		return `[{"resource":` + resource + `,"actions":["read"]` + constraints + `}]`
	}
	templates := []template{
		{"POST", "/v1/agents", []string{
			`{"ownerId":%s,"name":"n","permissions":[]}`,
			`{"ownerId":"o","name":%s,"permissions":[]}`,
			`{"ownerId":"o","name":"n","type":%s,"permissions":[]}`,
			`{"ownerId":"o","name":"n","permissions":` + perm(`%s`, ``) + `}`,
			`{"ownerId":"o","name":"n","permissions":[{"resource":"r:*","actions":[%s]}]}`,
			`{"ownerId":"o","name":"n","permissions":[],"metadata":{"k":%s}}`,
			`{"ownerId":"o","name":"n","permissions":[],"metadata":{%s:1}}`,
			`{"ownerId":"o","name":"n","permissions":` + perm(`"r:*"`, `,"constraints":{"allowedArgPatterns":{"path":[%s]}}`) + `}`,
			`{"ownerId":"o","name":"n","permissions":` + perm(`"r:*"`, `,"constraints":{"ipAllowlist":[%s]}}`) + `}`,
			`{"ownerId":"o","name":"n","expiresAt":%s,"permissions":[]}`,
		}},
		{"PATCH", "/v1/agents/" + agentID, []string{
			`{"name":%s}`, `{"permissions":` + perm(`%s`, ``) + `}`, `{"metadata":{"k":%s}}`, `{"expiresAt":%s}`,
		}},
		{"POST", "/v1/authorize", []string{
			`{"agentId":%s,"action":"read","resource":"mcp:github:repos"}`,
			`{"agentId":"` + agentID + `","action":%s,"resource":"mcp:github:repos"}`,
			`{"agentId":"` + agentID + `","action":"read","resource":%s}`,
			`{"agentId":"` + agentID + `","action":"read","resource":"mcp:github:repos","arguments":{"path":%s}}`,
			`{"agentId":"` + agentID + `","action":"read","resource":"mcp:github:repos","arguments":{%s:1}}`,
			`{"agentId":"` + agentID + `","action":"read","resource":"mcp:github:repos","context":{"ip":%s}}`,
			`{"agentId":"` + agentID + `","action":"read","resource":"mcp:github:repos","context":{"userAgent":%s}}`,
			`{"agentId":"` + agentID + `","action":"read","resource":"mcp:github:repos","approvalId":%s}`,
		}},
		{"POST", "/v1/delegations", []string{
			`{"fromAgent":%s,"toAgent":"` + agentID + `","permissions":[],"expiresAt":"2030-01-01T00:00:00Z"}`,
			`{"fromAgent":"` + agentID + `","toAgent":"` + agentID + `","permissions":` + perm(`%s`, ``) + `,"expiresAt":"2030-01-01T00:00:00Z"}`,
		}},
		{"POST", "/v1/keys", []string{`{"name":%s,"roles":["auditor"]}`, `{"name":"k","roles":[%s]}`}},
		{"POST", "/v1/approvals/" + approvalID + "/deny", []string{`{"onBehalfOf":%s}`, `{"note":%s}`}},
	}
	for _, tpl := range templates {
		for _, f := range tpl.fields {
			for _, v := range hostileStrings {
				calls = append(calls, hostileCall{tpl.method, tpl.path, fmt.Sprintf(f, v)})
			}
		}
		for _, b := range hostileBodies {
			calls = append(calls, hostileCall{tpl.method, tpl.path, b})
		}
	}
	for _, n := range hostileNumbers {
		calls = append(calls,
			hostileCall{"POST", "/v1/agents", `{"ownerId":"o","name":"n","permissions":` + perm(`"r:*"`, `,"constraints":{"maxCallsPerHour":`+n+`}`) + `}`},
			hostileCall{"PATCH", "/v1/agents/" + agentID, `{"permissions":` + perm(`"r:*"`, `,"constraints":{"maxCallsPerHour":`+n+`}`) + `}`},
			hostileCall{"POST", "/v1/delegations", `{"fromAgent":"` + agentID + `","toAgent":"` + agentID + `","permissions":[],"expiresAt":"2030-01-01T00:00:00Z","maxDepth":` + n + `}`})
	}
	ids := []string{"%00", "%ff", "a%00b", "..%2f..%2fetc", strings.Repeat("x", 5000), "%e2%80%ae", "%c3", "*", "agt_%0a"}
	for _, id := range ids {
		for _, p := range []string{"/v1/agents/%s", "/v1/agents/%s/delegations", "/v1/agents/%s/effective-permissions",
			"/v1/delegations/%s", "/v1/approvals/%s", "/v1/keys/%s"} {
			calls = append(calls, hostileCall{"GET", fmt.Sprintf(p, id), ""})
		}
		calls = append(calls, hostileCall{"POST", "/v1/agents/" + id + "/rotate", ""},
			hostileCall{"DELETE", "/v1/agents/" + id, ""}, hostileCall{"POST", "/v1/approvals/" + id + "/approve", "{}"})
	}
	for _, q := range []string{"ownerId=%00", "ownerId=%ff", "status=%00", "type=%ff", "agentId=%00", "limit=-1", "limit=0",
		"limit=99999999999999999999", "limit=1001", "limit=x", "cursor=%00", "cursor=%ff", "since=notatime", "until=%00",
		"result=maybe", "kind=%ff", "action=%00"} {
		for _, p := range []string{"/v1/agents", "/v1/approvals", "/v1/audit", "/v1/audit/export", "/v1/keys"} {
			calls = append(calls, hostileCall{"GET", p + "?" + q, ""})
		}
	}
	return calls
}

// hostileTally counts what a corpus got back.
type hostileTally struct {
	tried, ok, client, server int
	byStatus                  map[int]int
	bad                       []string
}

func (h hostileTally) String() string {
	var st []string
	for s, n := range h.byStatus {
		st = append(st, fmt.Sprintf("%d×%d", n, s))
	}
	sort.Strings(st)
	return fmt.Sprintf("%d tried: %d 2xx, %d 4xx, %d 5xx (%s)", h.tried, h.ok, h.client, h.server, strings.Join(st, " "))
}

func sendHostile(t *testing.T, s *sidecar, calls []hostileCall) hostileTally {
	t.Helper()
	tally := hostileTally{byStatus: map[int]int{}}
	hc := &http.Client{}
	for _, c := range calls {
		req, err := http.NewRequestWithContext(t.Context(), c.method, s.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			// A URL Go itself refuses to send is no test of the server.
			continue
		}
		req.Header.Set("Authorization", "Bearer "+adminKey)
		if c.body != "" || c.method != "GET" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		tally.tried++
		tally.byStatus[resp.StatusCode]++
		short := c.method + " " + c.path
		if len(short) > 80 {
			short = short[:80] + "…"
		}
		short += " " + strings.ToValidUTF8(string([]rune(strings.ToValidUTF8(c.body, "?"))[:min(80, utf8.RuneCountInString(strings.ToValidUTF8(c.body, "?")))]), "?")
		switch {
		case resp.StatusCode >= 500:
			tally.server++
			tally.bad = append(tally.bad, fmt.Sprintf("%d for %s: %s", resp.StatusCode, short, body))
		case resp.StatusCode >= 400:
			tally.client++
			var e api.ErrorBody
			if json.Unmarshal(body, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				tally.bad = append(tally.bad, fmt.Sprintf("%d without a JSON error for %s: %.200s", resp.StatusCode, short, body))
			}
		default:
			tally.ok++
			if testing.Verbose() {
				t.Logf("accepted: %d %s", resp.StatusCode, short)
			}
		}
	}
	return tally
}

// storedClean reads every text column of every row of the tables that hold
// what callers send and reports values with a NUL, invalid UTF-8 or a
// replacement character (the mark of bytes silently replaced).
func storedClean(t *testing.T, driver, dsn string) []string {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var bad []string
	for _, table := range []string{"agents", "permissions", "delegations", "approvals", "audit_log", "api_keys"} {
		bad = append(bad, dirtyValues(t, db, table)...)
	}
	return bad
}

// dirtyValues lists table's values with a NUL, invalid UTF-8 or U+FFFD.
func dirtyValues(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var bad []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if bytes.IndexByte(v, 0) >= 0 || !utf8.Valid(v) || bytes.Contains(v, []byte("\uFFFD")) || bytes.Contains(v, []byte(`\u0000`)) {
				bad = append(bad, fmt.Sprintf("%s.%s = %q", table, cols[i], truncate(v)))
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", table, err)
	}
	return bad
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// Every hostile request gets a clean 4xx with a JSON error, on SQLite,
// PostgreSQL and MySQL alike; none gets a 5xx, and nothing hostile is stored.
func TestHostileInputsOnEveryBackend(t *testing.T) {
	for _, be := range []struct{ name, driver string }{{"sqlite", "sqlite"}, {"postgres", "pgx"}, {"mysql", "mysql"}} {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "kavach.db")
			switch be.name {
			case "postgres":
				db = pgtest.URL(t)
			case "mysql":
				db = mysqltest.URL(t)
			}
			s := start(t, "--database", db)
			admin := s.adminClient()
			ctx := t.Context()
			agent, err := admin.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "alice", Name: "bot",
				Permissions: []api.Permission{{Resource: "mcp:github:*", Actions: []string{"read"}},
					{Resource: "mcp:deploy:prod", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}}}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := admin.Authorize(ctx, api.AuthorizeRequest{AgentID: agent.ID, Action: "execute", Resource: "mcp:deploy:prod"}, "")
			if err != nil || res.ApprovalID == "" {
				t.Fatalf("approval request: %+v %v", res, err)
			}
			tally := sendHostile(t, s, hostileCorpus(agent.ID, res.ApprovalID))
			t.Logf("%s: %s", be.name, tally)
			if tally.server > 0 || len(tally.bad) > 0 {
				t.Errorf("%d bad answers; the first:\n%s", len(tally.bad), strings.Join(tally.bad[:min(len(tally.bad), 15)], "\n"))
			}
			s.stop(t)
			dsn := db
			if be.name == "mysql" {
				dsn = mysqltest.DSN(t, db)
			}
			if bad := storedClean(t, be.driver, dsn); len(bad) > 0 {
				t.Errorf("hostile bytes stored (%d); the first:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
			}
			// The sidecar ran without a secret: verify without one too.
			if out, _, code := cli(t, nil, "audit", "verify", "--database", db); code != 0 {
				t.Errorf("audit trail after the hostile run: exit %d\n%s", code, out)
			}
		})
	}
}
