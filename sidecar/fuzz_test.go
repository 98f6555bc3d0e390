package sidecar_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

// The fuzz targets of the HTTP decoders, one per body the API reads. Their
// seeds run in every go test; `make fuzz` (FUZZTIME=1m) runs each in turn:
//
//	go test ./sidecar -run X -fuzz '^FuzzAuthorize$' -fuzztime 1m
//
// Every target holds the same invariants (checkFuzzAnswer): never a panic or a
// 5xx; an error is a 4xx JSON body with a code and a message free of
// control characters; a success is JSON of valid UTF-8 that re-encodes and
// holds no NUL, and so is what was stored (read back). Bodies name the
// fixtures by placeholder: agt_A and agt_B (agents; A holds permissions,
// some needing approval), apr_P (an approval request, pending at first).

// fuzzEnv is the real stack (SQLite in memory, OPA, service, the HTTP
// handler) with its fixtures.
type fuzzEnv struct {
	h   http.Handler
	ids *strings.Replacer
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
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
	e := &fuzzEnv{h: newServer(f, svc, sidecar.Options{MaxBodyBytes: 8192})}
	created := func(body string) map[string]any {
		status, resp, _ := e.serve(http.MethodPost, "/v1/agents", body, "")
		var v map[string]any
		if err := json.Unmarshal(resp, &v); status != http.StatusCreated || err != nil {
			f.Fatalf("create %s = %d %s", body, status, resp)
		}
		return v
	}
	a := created(`{"ownerId":"u","name":"a","permissions":[{"resource":"docs:*","actions":["read","write"]},` +
		`{"resource":"deploy:*","actions":["execute"],"constraints":{"requireApproval":true}},` +
		`{"resource":"mcp:fs:*","actions":["*"],"constraints":{"allowedArgPatterns":["^src/"],"maxCallsPerHour":1000000}}]}`)
	b := created(`{"ownerId":"v","name":"b","permissions":[]}`)
	status, resp, _ := e.serve(http.MethodPost, "/v1/authorize", fmt.Sprintf(`{"agentId":%q,"action":"execute","resource":"deploy:prod"}`, a["id"]), "")
	var res api.AuthorizeResponse
	if err := json.Unmarshal(resp, &res); status != http.StatusOK || err != nil || res.ApprovalID == "" {
		f.Fatalf("authorize = %d %s; want an approval request", status, resp)
	}
	e.ids = strings.NewReplacer("agt_A", a["id"].(string), "agt_B", b["id"].(string), "apr_P", res.ApprovalID)
	return e
}

// serve answers one request with the admin key, or auth if not "".
func (e *fuzzEnv) serve(method, path, body, auth string) (int, []byte, http.Header) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth == "" {
		auth = "Bearer " + testAdminKey
	}
	req.Header.Set("Authorization", auth)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes(), rec.Header()
}

// call sends the body (placeholders replaced) and checks the answer; for a
// success, readBack names what to read back (a path, or "" for nothing).
func (e *fuzzEnv) call(t *testing.T, method, path, body string, ok int, readBack func(http.Header) string) {
	t.Helper()
	path, body = e.ids.Replace(path), e.ids.Replace(body)
	status, resp, header := e.serve(method, path, body, "")
	if checkFuzzAnswer(t, method+" "+path, body, status, resp, ok) && readBack != nil {
		if p := readBack(header); p != "" {
			status, resp, _ := e.serve(http.MethodGet, p, "", "")
			checkFuzzAnswer(t, "GET "+p+" after "+method+" "+path, body, status, resp, http.StatusOK)
		}
	}
}

// checkFuzzAnswer holds an answer to the invariants and reports a success.
func checkFuzzAnswer(t *testing.T, call, body string, status int, resp []byte, ok int) bool {
	t.Helper()
	if status >= 500 || status < 200 {
		t.Fatalf("%s %q = %d %s", call, body, status, resp)
	}
	if status >= 300 {
		var eb api.ErrorBody
		if err := json.Unmarshal(resp, &eb); err != nil || status >= 500 || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("%s %q = %d %q; want a JSON error with a code and a message", call, body, status, resp)
		}
		if strings.ContainsFunc(eb.Error.Message, unicode.IsControl) || !utf8.ValidString(eb.Error.Message) {
			t.Fatalf("%s %q = %d: the message %q holds a control character or invalid UTF-8", call, body, status, eb.Error.Message)
		}
		return false
	}
	if status != ok {
		t.Fatalf("%s %q = %d %s; want %d or an error", call, body, status, resp, ok)
	}
	if err := cleanJSON(resp); err != nil {
		t.Fatalf("%s %q = %d %q: %v", call, body, status, resp, err)
	}
	return true
}

// cleanJSON checks a document: valid JSON of valid UTF-8 (jsontext refuses
// both, as encoding/json would not), re-encodable, and no string, name or
// value, holding a NUL.
func cleanJSON(doc []byte) error {
	if !jsontext.Value(doc).IsValid() {
		return fmt.Errorf("not valid JSON of valid UTF-8")
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return err
	}
	if _, err := json.Marshal(v); err != nil {
		return fmt.Errorf("does not re-encode: %w", err)
	}
	dec := jsontext.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil
		}
		if tok.Kind() == '"' && strings.ContainsRune(tok.String(), 0) {
			return fmt.Errorf("a string at %s holds NUL", dec.StackPointer())
		}
	}
}

func location(h http.Header) string { return h.Get("Location") }

// hostileSeeds are bodies every target starts from as well: broken JSON,
// invalid UTF-8, NUL, lone surrogates, duplicates, wrong types.
var hostileSeeds = []string{
	``, `[`, `{}`, `null`, `[]`, `"x"`, `{"a":1}`, "{\"name\":\"\xff\"}", `{"name":"\u0000"}`, `{"name":"\ud800"}`,
	`{"name":"a","name":"b"}`, `{"name":1}`, `{"NAME":"x"}`, `{"name":"x"} {}`,
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range append(seeds, hostileSeeds...) {
		f.Add(s)
	}
}

func FuzzAuthorize(f *testing.F) {
	addSeeds(f,
		`{"agentId":"agt_A","action":"read","resource":"docs:x"}`,
		`{"agentId":"agt_A","action":"write","resource":"docs:a:b","arguments":{"x":"y","n":[1,2.5,null,true]},"context":{"ip":"10.0.0.1","userAgent":"ua/1"}}`,
		`{"agentId":"agt_A","action":"execute","resource":"deploy:prod","approvalId":"apr_P"}`,
		`{"agentId":"agt_B","action":"execute","resource":"deploy:prod","approvalId":"apr_P"}`,
		`{"agentId":"agt_A","action":"execute","resource":"deploy:staging"}`,
		`{"agentId":"agt_A","action":"call","resource":"mcp:fs:repo","arguments":{"path":"src/x.ts","deep":{"a":["/etc/passwd"]}}}`,
		`{"agentId":"agt_A","action":"read","resource":"docs:*"}`,
		`{"agentId":"agt_A","action":"*","resource":"docs:x"}`,
		`{"agentId":"agt_A","action":"read","resource":"docs:a\u202eb"}`,
		`{"agentId":"agt_A","action":"read","resource":"docs:a\u200bb"}`,
		`{"agentId":"agt_A","action":"read","resource":"docs::x"}`,
		`{"agentId":"agt_A","action":"read","resource":"docs:x","arguments":{"k":"\u0000"}}`,
		`{"agentId":"agt_A","action":"read","resource":"docs:x","arguments":"not an object"}`,
		`{"agentId":"agt_A","action":"read","resource":"docs:x","context":{"ip":"::ffff:10.0.0.1%eth0"}}`,
		`{"agentId":"agt_nobody","action":"read","resource":"docs:x"}`,
		`{"action":"read","resource":"docs:x"}`,
	)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		e.call(t, http.MethodPost, "/v1/authorize", body, http.StatusOK, func(http.Header) string { return "/v1/audit?limit=1" })
	})
}

func FuzzCreateAgent(f *testing.F) {
	addSeeds(f,
		`{"ownerId":"u","name":"n","permissions":[{"resource":"mcp:github:*","actions":["read"]}]}`,
		`{"ownerId":"u","name":"n","type":"service","expiresAt":"2999-01-01T00:00:00Z","metadata":{"a":[1,{"b":null}],"c":"x\ny"}}`,
		`{"ownerId":"u","name":"n","permissions":[{"resource":"a","actions":["r"],"constraints":{"timeWindow":{"start":"09:00","end":"17:00","timezone":"Europe/Berlin","days":["mon"]}}}]}`,
		`{"ownerId":"u","name":"n","permissions":[{"resource":"a:*","actions":["r"],"constraints":{"ipAllowlist":["10.0.0.0/8","::1"],"maxCallsPerHour":5,"requireApproval":true,"allowedArgPatterns":["^a"]}}]}`,
		`{"ownerId":"u","name":"n","permissions":[{"resource":"a::b","actions":["r"]}]}`,
		`{"ownerId":"u","name":"n","permissions":[{"resource":"a:\u202e","actions":["r"]}]}`,
		`{"ownerId":"u","name":"n","permissions":[{"resource":"a","actions":["r"]},{"resource":"a","actions":["r"]}]}`,
		`{"ownerId":"u","name":"n","permissions":null}`,
		`{"ownerId":"u","name":"n","metadata":{"k\u0000":1}}`,
		`{"ownerId":"u","name":"n","expiresAt":"2000-01-01T00:00:00Z"}`,
	)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		e.call(t, http.MethodPost, "/v1/agents", body, http.StatusCreated, location)
	})
}

func FuzzUpdateAgent(f *testing.F) {
	addSeeds(f,
		`{"name":"renamed"}`,
		`{"permissions":[{"resource":"docs:*","actions":["read"]},{"resource":"x:*:y","actions":["*"],"constraints":{"maxCallsPerHour":3}}]}`,
		`{"permissions":[]}`,
		`{"expiresAt":null}`,
		`{"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"expiresAt":"yesterday"}`,
		`{"metadata":{"team":"a","nested":{"x":[1,2,3]}}}`,
		`{"metadata":null}`,
		`{"name":"","permissions":null}`,
		`{"permissions":[{"resource":"*","actions":["read\u200b"]}]}`,
	)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		e.call(t, http.MethodPatch, "/v1/agents/agt_A", body, http.StatusOK, func(http.Header) string { return "/v1/agents/agt_A" })
	})
}

func FuzzDelegate(f *testing.F) {
	addSeeds(f,
		`{"fromAgent":"agt_A","toAgent":"agt_B","permissions":[{"resource":"docs:x","actions":["read"]}],"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"fromAgent":"agt_A","toAgent":"agt_B","permissions":[{"resource":"docs:*","actions":["read","write"],"constraints":{"maxCallsPerHour":2}}],"expiresAt":"2999-01-01T00:00:00Z","maxDepth":3}`,
		`{"fromAgent":"agt_A","toAgent":"agt_B","permissions":[{"resource":"deploy:prod","actions":["execute"]}],"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"fromAgent":"agt_A","toAgent":"agt_B","permissions":[{"resource":"*","actions":["*"]}],"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"fromAgent":"agt_B","toAgent":"agt_A","permissions":[{"resource":"docs:x","actions":["read"]}],"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"fromAgent":"agt_A","toAgent":"agt_A","permissions":[{"resource":"docs:x","actions":["read"]}],"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"fromAgent":"agt_A","toAgent":"agt_B","permissions":[],"expiresAt":"2999-01-01T00:00:00Z","maxDepth":-1}`,
		`{"fromAgent":"agt_A","toAgent":"agt_B","permissions":[{"resource":"docs:x","actions":["read"]}],"expiresAt":null}`,
	)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		e.call(t, http.MethodPost, "/v1/delegations", body, http.StatusCreated, location)
	})
}

func FuzzCreateKey(f *testing.F) {
	addSeeds(f,
		`{"name":"app","roles":["decider"]}`,
		`{"name":"ops","roles":["admin","approver","metrics"],"expiresAt":"2999-01-01T00:00:00Z"}`,
		`{"name":"app","roles":[]}`,
		`{"name":"app","roles":["root"]}`,
		`{"name":"app","roles":["decider","decider"]}`,
		`{"name":"a\u202eb","roles":["decider"]}`,
		`{"name":"app","roles":["decider"],"expiresAt":"2000-01-01T00:00:00Z"}`,
	)
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body string) {
		e.call(t, http.MethodPost, "/v1/keys", body, http.StatusCreated, location)
	})
}

func FuzzResolveApproval(f *testing.F) {
	for _, s := range append([]string{
		`{}`, `{"onBehalfOf":"alice","note":"release 4.2\nsee ticket"}`, `{"respondedBy":"alice"}`,
		`{"onBehalfOf":"alice","respondedBy":"bob"}`, `{"note":"` + strings.Repeat("x", 3000) + `"}`,
	}, hostileSeeds...) {
		f.Add(s, true)
		f.Add(s, false)
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body string, approve bool) {
		path := "/v1/approvals/apr_P/deny"
		if approve {
			path = "/v1/approvals/apr_P/approve"
		}
		e.call(t, http.MethodPost, path, body, http.StatusOK, func(http.Header) string { return "/v1/approvals/apr_P" })
	})
}

// FuzzAPI throws arbitrary bodies and credentials at the write and
// decision endpoints: decisions are only ever 200.
func FuzzAPI(f *testing.F) {
	for _, seed := range []struct{ path, body, auth string }{
		{"/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"mcp:github:*","actions":["read"]}]}`, ""},
		{"/v1/authorize", `{"agentId":"agt_x","action":"read","resource":"a:b","arguments":{"x":"y"},"context":{"ip":"::1"}}`, ""},
		{"/v1/authorize", `{"action":"read","resource":"a"}`, "Bearer kv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"/v1/authorize", `{"action":"read","resource":"a"}`, "Bearer kv_"},
		{"/v1/agents", `{"ownerId":"\u0000"}`, ""},
		{"/v1/agents", `{"ownerId":"u","name":"n"}`, "Bearer kvk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"/v1/agents", `{"ownerId":"u","name":"n"}`, "Bearer a.b.c"},
		{"/v1/authorize", `{"agentId":"agt_x","action":"read","resource":"a","arguments":{"k":1,"k":2}}`, ""},
	} {
		f.Add(seed.path, seed.body, seed.auth)
	}
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, path, body, auth string) {
		ok := http.StatusCreated
		if path != "/v1/agents" {
			path, ok = "/v1/authorize", http.StatusOK
		}
		// No auth in the input means the admin key: the body must reach the
		// decoder. Any other value is a credential to try.
		status, resp, _ := e.serve(http.MethodPost, path, body, auth)
		checkFuzzAnswer(t, "POST "+path, body, status, resp, ok)
	})
}
